import assert from "node:assert/strict";
import { initBackend } from "../lib/backends/choice.ts";
import {
  classHistogram,
  coverage,
  frechetDistance,
  frechetFeatureDistance,
  inceptionScore,
  kernelInceptionDistance,
  meanAndCovariance,
  PARZEN_SIGMAS,
  parzenEstimate,
  parzenLogLikelihoods,
  precisionRecall,
} from "../lib/eval/metrics.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");

const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

Deno.test("Fréchet distance of two Gaussians equals the closed form", () => {
  // Diagonal (commuting) covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
  const mu1 = Float64Array.from([0, 1, 2]), mu2 = Float64Array.from([1, 1, 0]);
  const d1 = [1, 4, 9], d2 = [4, 1, 0.25];
  const diag = (d: number[]) => {
    const m = new Float64Array(9);
    d.forEach((v, i) => m[i * 3 + i] = v);
    return m;
  };
  const expected = 1 + 0 + 4 +
    d1.reduce((s, a, i) => s + (Math.sqrt(a) - Math.sqrt(d2[i])) ** 2, 0);
  close(frechetDistance(mu1, diag(d1), mu2, diag(d2), 3), expected, 1e-9);
  // A general 2 x 2 pair, against sqrt of a 2 x 2 PSD matrix in closed form:
  // Tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), with M = s c2 s, s = sqrt(c1).
  const c1 = Float64Array.from([2, 0.6, 0.6, 1]);
  const c2 = Float64Array.from([1.5, -0.4, -0.4, 0.8]);
  const sqrt2x2 = (m: Float64Array) => {
    const det = m[0] * m[3] - m[1] * m[2], r = Math.sqrt(det);
    const t = Math.sqrt(m[0] + m[3] + 2 * r);
    return Float64Array.from([
      (m[0] + r) / t,
      m[1] / t,
      m[2] / t,
      (m[3] + r) / t,
    ]);
  };
  const s = sqrt2x2(c1);
  const mul = (a: Float64Array, b: Float64Array) =>
    Float64Array.from([
      a[0] * b[0] + a[1] * b[2],
      a[0] * b[1] + a[1] * b[3],
      a[2] * b[0] + a[3] * b[2],
      a[2] * b[1] + a[3] * b[3],
    ]);
  const m = mul(mul(s, c2), s);
  const trSqrt = Math.sqrt(
    m[0] + m[3] + 2 * Math.sqrt(m[0] * m[3] - m[1] * m[2]),
  );
  const zero = new Float64Array(2);
  close(
    frechetDistance(zero, c1, zero, c2, 2),
    // Tr(c1) + Tr(c2) - 2 Tr sqrt(c1 c2); the means are equal.
    3 + 2.3 - 2 * trSqrt,
    1e-9,
  );
  close(frechetDistance(zero, c1, zero, c1, 2), 0, 1e-9);
});

Deno.test("FID of samples from one Gaussian is near 0, of shifted ones near |shift|^2", () => {
  const rng = new Rng(2), dim = 4, n = 20000;
  const a = rng.fillNormal(new Float32Array(n * dim));
  const b = rng.fillNormal(new Float32Array(n * dim));
  assert.ok(frechetFeatureDistance(a, b, dim) < 0.01);
  const shifted = b.map((v, i) => (i % dim === 0 ? v + 3 : v));
  close(frechetFeatureDistance(a, shifted, dim), 9, 0.02);
  const { cov } = meanAndCovariance(a, dim);
  close(cov[0], 1, 0.05);
});

Deno.test("Parzen estimate of a tiny mixture equals a direct computation", async () => {
  const dim = 3;
  const samples = Float32Array.from([0, 0, 0, 1, 0, 0, 0, 2, 1]);
  const points = Float32Array.from([0.5, 0, 0, 0, 1, 1]);
  const sigmas = [0.3, 1];
  const got = await parzenLogLikelihoods(samples, points, dim, sigmas);
  sigmas.forEach((s, k) => {
    for (let p = 0; p < 2; p++) {
      let sum = 0;
      for (let i = 0; i < 3; i++) {
        let d2 = 0;
        for (let j = 0; j < dim; j++) {
          d2 += (points[p * dim + j] - samples[i * dim + j]) ** 2;
        }
        sum += Math.exp(-d2 / (2 * s * s)) / (2 * Math.PI * s * s) ** (dim / 2);
      }
      close(got[k][p], Math.log(sum / 3), 1e-5);
    }
  });
  // Far points do not underflow to -Infinity: log-sum-exp.
  const far = await parzenLogLikelihoods(
    samples,
    Float32Array.from([50, 50, 50]),
    dim,
    [0.1],
  );
  assert.ok(Number.isFinite(far[0][0]) && far[0][0] < -1e5);
});

Deno.test("Parzen protocol picks the sigma that fits the validation points", async () => {
  const rng = new Rng(3), dim = 2;
  // Data: a standard 2-D Gaussian; Silverman's rule puts the best window
  // near 2000^(-1/6) = 0.28, inside the grid.
  const gen = (n: number) => rng.fillNormal(new Float32Array(n * dim));
  const r = await parzenEstimate(gen(2000), gen(500), gen(500), dim);
  assert.equal(r.validation.length, PARZEN_SIGMAS.length);
  assert.ok(r.sigma > 0.15 && r.sigma < 0.6, `sigma ${r.sigma}`);
  // The true log density of N(0, I) averages -log(2 pi) - 1 = -2.838.
  assert.ok(
    Math.abs(r.mean - (-Math.log(2 * Math.PI) - 1)) < 0.15,
    `mean ${r.mean}`,
  );
  assert.ok(r.se > 0 && r.se < 0.1);
});

Deno.test("Inception Score of a uniform and of a one-hot classifier", () => {
  const uniform = new Float32Array(100 * 10).fill(0.1);
  close(inceptionScore(uniform), 1);
  const oneHot = new Float32Array(100 * 10);
  for (let i = 0; i < 100; i++) oneHot[i * 10 + (i % 10)] = 1;
  close(inceptionScore(oneHot), 10);
  // All samples sure of the same class: a score of 1, one class covered.
  const collapsed = new Float32Array(100 * 10);
  for (let i = 0; i < 100; i++) collapsed[i * 10 + 3] = 1;
  close(inceptionScore(collapsed), 1);
  const hist = classHistogram(collapsed);
  assert.deepEqual(hist, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  const c = coverage(hist);
  assert.equal(c.classesAtLeast1Pct, 1);
  close(c.klFromUniform, Math.log(10));
  const balanced = coverage(classHistogram(oneHot));
  assert.equal(balanced.classesAtLeast1Pct, 10);
  close(balanced.klFromUniform, 0);
});

/** KID's estimate computed directly, in float64, from every row of both sets. */
function directKid(a: Float32Array, b: Float32Array, dim: number): number {
  const n = a.length / dim;
  const k = (p: Float32Array, i: number, q: Float32Array, j: number) => {
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += p[i * dim + d] * q[j * dim + d];
    return (dot / dim + 1) ** 3;
  };
  let xx = 0, yy = 0, xy = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i !== j) {
        xx += k(a, i, a, j);
        yy += k(b, i, b, j);
      }
      xy += k(a, i, b, j);
    }
  }
  return (xx + yy) / (n * (n - 1)) - (2 * xy) / (n * n);
}

Deno.test("KID equals a direct computation, is near 0 for one distribution and grows with a shift", async () => {
  const rng = new Rng(9), dim = 6, n = 40;
  const a = rng.fillNormal(new Float32Array(n * dim));
  const b = rng.fillNormal(new Float32Array(n * dim));
  // One subset of every row: no randomness left, the direct sum.
  const whole = await kernelInceptionDistance(a, b, dim, {
    subsets: 1,
    subsetSize: n,
  });
  close(whole.mean, directKid(a, b, dim), 1e-5);
  assert.equal(whole.std, 0);
  // Subsets: the mean of their estimates, each within the sets' spread.
  const big = 2000;
  const x = rng.fillNormal(new Float32Array(big * dim));
  const y = rng.fillNormal(new Float32Array(big * dim));
  const same = await kernelInceptionDistance(x, y, dim, {
    subsets: 10,
    subsetSize: 500,
  });
  assert.equal(same.subsetSize, 500);
  assert.ok(Math.abs(same.mean) < 0.05, `same distribution: ${same.mean}`);
  assert.ok(same.std > 0);
  const shifted = y.map((v, i) => (i % dim === 0 ? v + 2 : v));
  const far = await kernelInceptionDistance(x, shifted, dim, {
    subsets: 10,
    subsetSize: 500,
  });
  assert.ok(
    far.mean > 20 * Math.abs(same.mean) && far.mean > 0.5,
    `${far.mean}`,
  );
  // Too few rows: said, not a NaN.
  await assert.rejects(
    () => kernelInceptionDistance(a.subarray(0, dim), b, dim),
    /KID needs at least 2 rows of each set, got 1 and 40/,
  );
});

/** Precision, recall, density and coverage by brute force, in float64. */
function directPrecisionRecall(
  real: Float32Array,
  fake: Float32Array,
  dim: number,
  k: number,
) {
  const n = real.length / dim, m = fake.length / dim;
  const dist = (p: Float32Array, i: number, q: Float32Array, j: number) => {
    let s = 0;
    for (let c = 0; c < dim; c++) s += (p[i * dim + c] - q[j * dim + c]) ** 2;
    return Math.sqrt(s);
  };
  const radius = (x: Float32Array, rows: number, i: number) =>
    Array.from({ length: rows }, (_, j) => j)
      .filter((j) => j !== i)
      .map((j) => dist(x, i, x, j))
      .sort((a, b) => a - b)[k - 1];
  const rReal = Array.from({ length: n }, (_, i) => radius(real, n, i));
  const rFake = Array.from({ length: m }, (_, j) => radius(fake, m, j));
  let precision = 0, balls = 0, recall = 0, coverage = 0;
  for (let j = 0; j < m; j++) {
    let inside = false;
    for (let i = 0; i < n; i++) {
      if (dist(fake, j, real, i) <= rReal[i]) {
        inside = true;
        balls++;
      }
    }
    if (inside) precision++;
  }
  for (let i = 0; i < n; i++) {
    let inFake = false, cov = false;
    for (let j = 0; j < m; j++) {
      const d = dist(real, i, fake, j);
      if (d <= rFake[j]) inFake = true;
      if (d <= rReal[i]) cov = true;
    }
    if (inFake) recall++;
    if (cov) coverage++;
  }
  return {
    precision: precision / m,
    recall: recall / n,
    density: balls / (k * m),
    coverage: coverage / n,
  };
}

Deno.test("precision, recall, density and coverage equal a brute-force computation", async () => {
  const rng = new Rng(11), dim = 4;
  const real = rng.fillNormal(new Float32Array(30 * dim));
  // Samples partly on the data, partly off it: every figure strictly
  // between 0 and 1.
  const fake = rng.fillNormal(new Float32Array(25 * dim))
    .map((v, i) => i < 12 * dim ? v : v + 1.5);
  const got = await precisionRecall(real, fake, dim, { k: 3, block: 7 });
  const want = directPrecisionRecall(real, fake, dim, 3);
  for (const key of ["precision", "recall", "density", "coverage"] as const) {
    close(got[key], want[key], 1e-9);
  }
  assert.ok(got.precision > 0 && got.precision < 1, `${got.precision}`);
  // The same set: every point in its own ball.
  const same = await precisionRecall(real, real, dim);
  assert.equal(same.precision, 1);
  assert.equal(same.recall, 1);
  assert.equal(same.coverage, 1);
  // Far apart: nothing in anything.
  const far = await precisionRecall(real, real.map((v) => v + 100), dim);
  assert.deepEqual(
    [far.precision, far.recall, far.density, far.coverage],
    [0, 0, 0, 0],
  );
  await assert.rejects(
    () => precisionRecall(real.subarray(0, 3 * dim), fake, dim),
    /with k = 3 need more than 3 rows of each set, got 3 real and 25 generated/,
  );
});
