/**
 * The measuring instruments: the Parzen-window log-likelihood of the paper's
 * Table 1, the Fréchet distance between Gaussians fitted to features (FID),
 * the Inception Score, and class coverage. Pure numerics on arrays; the
 * features and class probabilities come from `lib/eval/classifier.ts`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { symmetricEigen } from "../math/linalg.ts";
import { Rng } from "../random/rng.ts";
import { blockDistances } from "./neighbours.ts";

// ---------------------------------------------------------------------------
// Parzen window

/**
 * The sigma grid of the paper's protocol (goodfeli/adversarial,
 * parzen_ll.py): ten values log-spaced from 0.1 to 1.
 */
export const PARZEN_SIGMAS: readonly number[] = Array.from(
  { length: 10 },
  (_, i) => 10 ** (-1 + i / 9),
);

/**
 * Log-likelihood of each of `m` points under a Gaussian Parzen window on `n`
 * samples (both row-major, `dim` values per row), for every sigma:
 *
 *     log p(x) = logsumexp_i(-|x - s_i|^2 / (2 sigma^2)) - log n - (dim / 2) log(2 pi sigma^2)
 *
 * Squared distances come from one matrix product per chunk of points
 * (|x|^2 + |s|^2 - 2 x.s), shared by all sigmas; the sum over samples is a
 * log-sum-exp, so no exp underflows.
 *
 * @returns one Float64Array of m log-likelihoods per sigma.
 */
export async function parzenLogLikelihoods(
  samples: Float32Array,
  points: Float32Array,
  dim: number,
  sigmas: readonly number[],
  chunk = 500,
): Promise<Float64Array[]> {
  const n = samples.length / dim, m = points.length / dim;
  if (!Number.isInteger(n) || !Number.isInteger(m) || n === 0 || m === 0) {
    throw new RangeError("parzen: arrays are not whole, non-empty rows");
  }
  const out = sigmas.map(() => new Float64Array(m));
  // Samples transposed once: tfjs-wasm's matMul with a transposed operand is slow.
  const sT = tf.tidy(() => tf.transpose(tf.tensor2d(samples, [n, dim])));
  const sNorm = tf.tidy(() => tf.sum(tf.square(sT), 0));
  for (let start = 0; start < m; start += chunk) {
    const rows = Math.min(chunk, m - start);
    const results = tf.tidy(() => {
      const x = tf.tensor2d(
        points.subarray(start * dim, (start + rows) * dim),
        [rows, dim],
      );
      const xNorm = tf.sum(tf.square(x), 1, true);
      const d2 = tf.relu(
        tf.add(tf.sub(xNorm, tf.mul(tf.matMul(x, sT), 2)), sNorm),
      );
      return sigmas.map((s) => tf.logSumExp(tf.mul(d2, -1 / (2 * s * s)), 1));
    });
    for (let k = 0; k < sigmas.length; k++) {
      const values = await results[k].data();
      const s = sigmas[k];
      const constant = -Math.log(n) - (dim / 2) * Math.log(2 * Math.PI * s * s);
      for (let i = 0; i < rows; i++) out[k][start + i] = values[i] + constant;
    }
    tf.dispose(results);
  }
  tf.dispose([sT, sNorm]);
  return out;
}

/** Result of {@linkcode parzenEstimate}. */
export interface ParzenResult {
  /** Mean log-likelihood of the test points (nats). */
  mean: number;
  /** Its standard error: standard deviation / sqrt(m). */
  se: number;
  /** The sigma chosen on the validation points. */
  sigma: number;
  /** Mean validation log-likelihood per sigma of the grid. */
  validation: { sigma: number; ll: number }[];
}

function meanAndSe(values: Float64Array): { mean: number; se: number } {
  const n = values.length;
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  let sq = 0;
  for (const v of values) sq += (v - mean) ** 2;
  return { mean, se: Math.sqrt(sq / n) / Math.sqrt(n) };
}

/**
 * The paper's protocol: choose sigma from `sigmas` by the mean
 * log-likelihood of `validation` points, then report the mean (and standard
 * error) on `test` points. All images with pixel values in [0, 1].
 */
export async function parzenEstimate(
  samples: Float32Array,
  validation: Float32Array,
  test: Float32Array,
  dim: number,
  sigmas: readonly number[] = PARZEN_SIGMAS,
): Promise<ParzenResult> {
  const val = await parzenLogLikelihoods(samples, validation, dim, sigmas);
  const scores = val.map((v, k) => ({
    sigma: sigmas[k],
    ll: meanAndSe(v).mean,
  }));
  const best = scores.reduce((a, b) => (b.ll > a.ll ? b : a));
  const [ll] = await parzenLogLikelihoods(samples, test, dim, [best.sigma]);
  return { ...meanAndSe(ll), sigma: best.sigma, validation: scores };
}

// ---------------------------------------------------------------------------
// Fréchet distance

/** Mean and (unbiased) covariance of `n` rows of `dim` features. */
export function meanAndCovariance(
  x: Float32Array,
  dim: number,
): { mean: Float64Array; cov: Float64Array } {
  const n = x.length / dim;
  if (n < 2) throw new RangeError("covariance needs at least two rows");
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) mean[j] += x[i * dim + j];
  }
  for (let j = 0; j < dim; j++) mean[j] /= n;
  const cov = new Float64Array(dim * dim);
  const row = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) row[j] = x[i * dim + j] - mean[j];
    for (let a = 0; a < dim; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < dim; b++) cov[a * dim + b] += ra * row[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b] / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { mean, cov };
}

function matMul(a: Float64Array, b: Float64Array, dim: number): Float64Array {
  const out = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let k = 0; k < dim; k++) {
      const aik = a[i * dim + k];
      if (aik === 0) continue;
      for (let j = 0; j < dim; j++) out[i * dim + j] += aik * b[k * dim + j];
    }
  }
  return out;
}

/**
 * Fréchet distance between N(mu1, c1) and N(mu2, c2):
 *
 *     |mu1 - mu2|^2 + Tr(c1 + c2 - 2 (c1 c2)^(1/2))
 *
 * with Tr (c1 c2)^(1/2) = Tr (s c2 s)^(1/2), s = c1^(1/2): the matrix
 * s c2 s is symmetric, so both roots come from symmetric eigensystems.
 */
export function frechetDistance(
  mu1: Float64Array,
  c1: Float64Array,
  mu2: Float64Array,
  c2: Float64Array,
  dim: number,
): number {
  let meanTerm = 0;
  for (let i = 0; i < dim; i++) meanTerm += (mu1[i] - mu2[i]) ** 2;
  const e1 = symmetricEigen(c1, dim);
  // s = V diag(sqrt(max(lambda, 0))) V^T
  const s = new Float64Array(dim * dim);
  for (let k = 0; k < dim; k++) {
    const r = Math.sqrt(Math.max(e1.values[k], 0));
    if (r === 0) continue;
    for (let i = 0; i < dim; i++) {
      const vik = e1.vectors[i * dim + k] * r;
      for (let j = 0; j < dim; j++) {
        s[i * dim + j] += vik * e1.vectors[j * dim + k];
      }
    }
  }
  const m = matMul(matMul(s, c2, dim), s, dim);
  for (let i = 0; i < dim; i++) {
    for (let j = i + 1; j < dim; j++) {
      const avg = (m[i * dim + j] + m[j * dim + i]) / 2;
      m[i * dim + j] = m[j * dim + i] = avg;
    }
  }
  let traceSqrt = 0;
  for (const l of symmetricEigen(m, dim).values) {
    traceSqrt += Math.sqrt(Math.max(l, 0));
  }
  let trace = 0;
  for (let i = 0; i < dim; i++) trace += c1[i * dim + i] + c2[i * dim + i];
  return meanTerm + trace - 2 * traceSqrt;
}

/** FID between two sets of feature rows. */
export function frechetFeatureDistance(
  a: Float32Array,
  b: Float32Array,
  dim: number,
): number {
  const x = meanAndCovariance(a, dim), y = meanAndCovariance(b, dim);
  return frechetDistance(x.mean, x.cov, y.mean, y.cov, dim);
}

// ---------------------------------------------------------------------------
// Class probabilities: Inception Score, histogram, coverage

/** {@linkcode precisionRecall}'s result. */
export interface PrecisionRecall {
  /** Share of the samples inside the real images' k-NN balls (fidelity). */
  precision: number;
  /** Share of the real images inside the samples' k-NN balls (diversity). */
  recall: number;
  /** Mean number of real balls a sample is in, over k (about 1 for a match). */
  density: number;
  /** Share of the real images whose ball holds at least one sample. */
  coverage: number;
  k: number;
}

/**
 * Improved precision and recall (Kynkäänniemi et al. 2019) and density and
 * coverage (Naeem et al. 2020) of `fake` against `real` (rows of `dim`
 * features): each point's ball reaches its k-th nearest neighbour in its
 * own set (Euclidean); precision is the share of samples inside some real
 * ball, recall the share of real points inside some sample's ball, density
 * the mean count of real balls holding a sample over k, coverage the share
 * of real balls holding a sample. Distances come from matrix products on
 * the tfjs backend, `block` rows at a time, so memory stays at
 * `block` x (n + m) distances.
 *
 * @throws {RangeError} when a set has k rows or fewer.
 */
export async function precisionRecall(
  real: Float32Array,
  fake: Float32Array,
  dim: number,
  options: { k?: number; block?: number } = {},
): Promise<PrecisionRecall> {
  const k = options.k ?? 3, block = options.block ?? 1000;
  const n = real.length / dim, m = fake.length / dim;
  if (!(n > k && m > k)) {
    throw new RangeError(
      `precision and recall with k = ${k} need more than ${k} rows of each ` +
        `set, got ${n} real and ${m} generated`,
    );
  }
  const rReal = await kthNeighbour(real, n, dim, k, block);
  const rFake = await kthNeighbour(fake, m, dim, k, block);
  let inReal = 0, balls = 0;
  const covered = new Uint8Array(n), recalled = new Uint8Array(n);
  await blockDistances(fake, m, real, n, dim, block, (j, d) => {
    // Sample j against every real point i.
    let inside = false;
    for (let i = 0; i < n; i++) {
      if (d[i] <= rReal[i]) {
        inside = true;
        balls++;
        covered[i] = 1;
      }
      if (d[i] <= rFake[j]) recalled[i] = 1;
    }
    if (inside) inReal++;
  });
  const sum = (a: Uint8Array) => a.reduce((t, v) => t + v, 0);
  return {
    precision: inReal / m,
    recall: sum(recalled) / n,
    density: balls / (k * m),
    coverage: sum(covered) / n,
    k,
  };
}

/** Each row's squared distance to its k-th nearest other row of the set. */
async function kthNeighbour(
  x: Float32Array,
  n: number,
  dim: number,
  k: number,
  block: number,
): Promise<Float64Array> {
  const out = new Float64Array(n);
  const best = new Float64Array(k);
  await blockDistances(x, n, x, n, dim, block, (i, d) => {
    best.fill(Infinity);
    for (let j = 0; j < n; j++) {
      if (j === i || d[j] >= best[k - 1]) continue;
      // Insert into the k smallest so far, kept sorted.
      let p = k - 1;
      while (p > 0 && best[p - 1] > d[j]) {
        best[p] = best[p - 1];
        p--;
      }
      best[p] = d[j];
    }
    out[i] = best[k - 1];
  });
  return out;
}

/** Options of {@linkcode kernelInceptionDistance}. */
export interface KidOptions {
  /** Subsets averaged over (default 100, as torch-fidelity). */
  subsets?: number;
  /** Rows of each set in a subset (default 1,000, at most the smaller set). */
  subsetSize?: number;
  /** Seed of the subsets' draws (default 0). */
  seed?: number;
}

/** {@linkcode kernelInceptionDistance}'s result. */
export interface KidResult {
  /** The mean over subsets of the unbiased MMD^2 estimate. */
  mean: number;
  /** Its standard deviation over the subsets. */
  std: number;
  subsets: number;
  subsetSize: number;
}

/**
 * Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD
 * GANs"): the squared maximum mean discrepancy between two sets of
 * features (rows of `dim` values) under the cubic polynomial kernel
 * k(x, y) = (x . y / dim + 1)^3, estimated without bias:
 *
 *     MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1))
 *           + sum_{i != j} k(y_i, y_j) / (m (m - 1))
 *           - 2 sum_{i, j} k(x_i, y_j) / m^2
 *
 * on `subsets` random subsets of m rows of each set (drawn without
 * replacement), then averaged. Unlike FID it has no bias at small sample
 * counts, so it can be negative when the sets match. The products run on
 * the tfjs backend in float32; the kernel's sums are taken in float64.
 *
 * @throws {RangeError} when either set has fewer than 2 rows.
 */
export async function kernelInceptionDistance(
  a: Float32Array,
  b: Float32Array,
  dim: number,
  options: KidOptions = {},
): Promise<KidResult> {
  const nA = a.length / dim, nB = b.length / dim;
  const m = Math.min(options.subsetSize ?? 1000, nA, nB);
  if (!(m >= 2)) {
    throw new RangeError(
      `KID needs at least 2 rows of each set, got ${nA} and ${nB}`,
    );
  }
  const subsets = options.subsets ?? 100;
  const rng = new Rng(options.seed ?? 0, 0x6b1d);
  const pick = (v: Float32Array, n: number) => {
    const out = new Float32Array(m * dim);
    rng.permutation(n).subarray(0, m).forEach((r, i) =>
      out.set(v.subarray(r * dim, (r + 1) * dim), i * dim)
    );
    return out;
  };
  const values: number[] = [];
  for (let s = 0; s < subsets; s++) {
    values.push(await polynomialMmd(pick(a, nA), pick(b, nB), m, dim));
  }
  const mean = values.reduce((t, v) => t + v, 0) / subsets;
  const variance = values.reduce((t, v) => t + (v - mean) ** 2, 0) / subsets;
  return { mean, std: Math.sqrt(variance), subsets, subsetSize: m };
}

/** The unbiased MMD^2 of two sets of m rows under the cubic kernel. */
async function polynomialMmd(
  x: Float32Array,
  y: Float32Array,
  m: number,
  dim: number,
): Promise<number> {
  const grams = tf.tidy(() => {
    const X = tf.tensor2d(x, [m, dim]), Y = tf.tensor2d(y, [m, dim]);
    return [
      tf.matMul(X, X, false, true),
      tf.matMul(Y, Y, false, true),
      tf.matMul(X, Y, false, true),
    ];
  });
  const [xx, yy, xy] = await Promise.all(grams.map((g) => g.data()));
  tf.dispose(grams);
  const k = (v: number) => (v / dim + 1) ** 3;
  let sxx = 0, syy = 0, sxy = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const e = i * m + j;
      if (i !== j) {
        sxx += k(xx[e]);
        syy += k(yy[e]);
      }
      sxy += k(xy[e]);
    }
  }
  return (sxx + syy) / (m * (m - 1)) - (2 * sxy) / (m * m);
}

/**
 * Inception Score (Salimans et al. 2016) with the project's classifier:
 * exp(mean over samples of KL(p(y|x) || p(y))), p(y) the mean of p(y|x).
 * 1 when every sample gets the same distribution; the number of classes when
 * each sample is one class for sure and the classes are balanced.
 */
export function inceptionScore(probs: Float32Array, classes = 10): number {
  const n = probs.length / classes;
  const marginal = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) marginal[c] += probs[i * classes + c] / n;
  }
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) {
      const p = probs[i * classes + c];
      if (p > 0) kl += p * (Math.log(p) - Math.log(marginal[c]));
    }
  }
  return Math.exp(kl / n);
}

/** The most probable class of each row of `probs` (n x classes). */
function predictedClasses(
  probs: Float32Array,
  classes = 10,
): Uint8Array {
  const n = probs.length / classes;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) {
      if (probs[i * classes + c] > probs[i * classes + best]) best = c;
    }
    out[i] = best;
  }
  return out;
}

/** Fraction of rows of `probs` whose most probable class is the label. */
export function accuracyOf(probs: Float32Array, labels: Uint8Array): number {
  const predicted = predictedClasses(probs, probs.length / labels.length);
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    if (predicted[i] === labels[i]) correct++;
  }
  return correct / labels.length;
}

/** Fraction of samples whose most probable class is each class. */
export function classHistogram(probs: Float32Array, classes = 10): number[] {
  const predicted = predictedClasses(probs, classes);
  const hist = new Array(classes).fill(0);
  for (const c of predicted) hist[c]++;
  return hist.map((h) => h / predicted.length);
}

/** Coverage figures of a class histogram. */
export function coverage(
  histogram: number[],
): { classesAtLeast1Pct: number; klFromUniform: number } {
  const k = histogram.length;
  let kl = 0;
  for (const h of histogram) if (h > 0) kl += h * Math.log(h * k);
  return {
    classesAtLeast1Pct: histogram.filter((h) => h >= 0.01).length,
    klFromUniform: kl,
  };
}
