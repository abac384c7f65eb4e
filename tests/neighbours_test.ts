import assert from "node:assert/strict";
import { initBackend } from "../lib/backends/choice.ts";
import {
  assignCells,
  dataCopying,
  kMeans,
  mannWhitneyZ,
  nearestNeighbours,
} from "../lib/eval/neighbours.ts";
import { head, loadDataset, toFloat } from "../lib/data.ts";
import { neighbourFigure } from "../lib/run/neighbours.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");

Deno.test("nearestNeighbours: the index and distance a direct search finds", async () => {
  const rng = new Rng(3);
  const dim = 7, n = 37, m = 101;
  const q = rng.fillNormal(new Float32Array(n * dim));
  const r = rng.fillNormal(new Float32Array(m * dim));
  const { index, distance } = await nearestNeighbours(q, r, dim);
  // The reference in slices of 10 rows finds the same.
  const sliced = await nearestNeighbours(q, r, dim, { sliceRows: 10 });
  assert.deepEqual(sliced.index, index);
  for (let i = 0; i < n; i++) {
    let best = -1, bestD = Infinity;
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += (q[i * dim + d] - r[j * dim + d]) ** 2;
      if (s < bestD) [best, bestD] = [j, s];
    }
    assert.equal(index[i], best, `query ${i}`);
    assert.ok(Math.abs(distance[i] - Math.sqrt(bestD)) < 1e-4);
  }
  // A reference row is its own nearest neighbour, at distance 0.
  const self = await nearestNeighbours(r.subarray(5 * dim, 6 * dim), r, dim);
  assert.equal(self.index[0], 5);
  assert.ok(self.distance[0] < 1e-3);
  await assert.rejects(
    () => nearestNeighbours(q, new Float32Array(0), dim),
    /at least one reference row/,
  );
});

Deno.test("mannWhitneyZ: U from its definition, ties a half, sign", () => {
  // a = [1, 2, 3], b = [2, 4]: pairs a > b: (3, 2); ties: (2, 2) a half;
  // U = 1.5, nm / 2 = 3; one tie of two values: sd^2 = 6 / 12 (6 - 6 / 20).
  assert.ok(
    Math.abs(mannWhitneyZ([1, 2, 3], [2, 4]) - -1.5 / Math.sqrt(2.85)) < 1e-12,
  );
  // Antisymmetric, and 0 for the same values.
  const rng = new Rng(1);
  const a = Array.from({ length: 50 }, () => rng.next());
  const b = Array.from({ length: 70 }, () => rng.next() + 0.3);
  assert.ok(Math.abs(mannWhitneyZ(a, b) + mannWhitneyZ(b, a)) < 1e-12);
  assert.equal(mannWhitneyZ(a, a), 0);
  // All of a below all of b: U = 0, z = -nm/2 / sd.
  const z = mannWhitneyZ([0, 0.1], [1, 2, 3]);
  assert.ok(Math.abs(z - -3 / Math.sqrt((2 * 3 * 6) / 12)) < 1e-12);
  assert.throws(() => mannWhitneyZ([], [1]), /non-empty/);
  // Ties shrink the variance: a = [0, 0, 0], b = [0, 1]; U = 3 pairs tied
  // (1.5), nm / 2 = 3; ties: one group of 4 zeros, sum t^3 - t = 60;
  // sd^2 = 6 / 12 (6 - 60 / 20) = 1.5.
  assert.ok(
    Math.abs(mannWhitneyZ([0, 0, 0], [0, 1]) - -1.5 / Math.sqrt(1.5)) < 1e-12,
  );
  assert.equal(mannWhitneyZ([2, 2], [2, 2, 2]), 0);
});

Deno.test("kMeans finds well-separated clusters, and assignCells keeps them apart", () => {
  const rng = new Rng(2);
  const dim = 3, per = 40, centres = [[0, 0, 0], [10, 0, 0], [0, 10, 0]];
  const x = new Float32Array(3 * per * dim);
  centres.forEach((c, k) => {
    for (let i = 0; i < per; i++) {
      for (let d = 0; d < dim; d++) {
        x[(k * per + i) * dim + d] = c[d] + 0.3 * (rng.next() - 0.5);
      }
    }
  });
  const found = kMeans(x, dim, 3, rng);
  const cells = assignCells(x, found, dim);
  for (let k = 0; k < 3; k++) {
    const mine = new Set(cells.subarray(k * per, (k + 1) * per));
    assert.equal(mine.size, 1, `cluster ${k} split over cells`);
  }
  assert.equal(new Set(cells).size, 3);
  assert.throws(
    () => kMeans(x.subarray(0, 2 * dim), dim, 3, rng),
    /at least 3/,
  );
});

Deno.test("dataCopying: near-copies of the training rows score far below 0, new rows about 0", async () => {
  const rng = new Rng(4);
  const dim = 8;
  const draw = (n: number) => rng.fillNormal(new Float32Array(n * dim));
  const train = draw(2000), test = draw(1000), fresh = draw(1000);
  // Training rows with a little noise: closer to the training set than new data.
  const copies = Float32Array.from(
    train.subarray(0, 1000 * dim),
    (v) => v + 0.05 * rng.fillNormal(new Float32Array(1))[0],
  );
  const options = { cells: 5 };
  const copied = await dataCopying(train, test, copies, dim, options);
  const honest = await dataCopying(train, test, fresh, dim, options);
  assert.ok(copied.ct < -10, `copies: C_T ${copied.ct}`);
  assert.ok(copied.sampleMedian < 0.5 * copied.testMedian);
  assert.ok(Math.abs(honest.ct) < 3, `new rows: C_T ${honest.ct}`);
  assert.equal(honest.cellsUsed, 5);
  // Rows far from everything: farther than new data, C_T above 0.
  const far = Float32Array.from(fresh, (v) => 3 * v);
  assert.ok((await dataCopying(train, test, far, dim, options)).ct > 3);
  // Too few samples for any cell: no verdict, rather than a failed evaluation.
  const few = await dataCopying(
    train,
    test,
    copies.subarray(0, 10 * dim),
    dim,
    options,
  );
  assert.ok(Number.isNaN(few.ct));
  assert.equal(few.cellsUsed, 0);
  await assert.rejects(
    () => dataCopying(train.subarray(0, 3 * dim), test, fresh, dim, options),
    /cuts the training rows into 5 cells and needs at least 5 of them, got 3/,
  );
});

Deno.test("neighbourFigure: a training image's nearest is itself, in pixels and in features", async () => {
  const mnist = await loadDataset("mnist", { log: () => {} });
  // The search over the first 2,000 training images (the figure's own
  // search covers all 60,000).
  const small = { ...mnist, train: head(mnist.train, 2000) };
  const picks = [7, 123, 1999];
  const samples = new Float32Array(picks.length * 784);
  picks.forEach((p, i) =>
    samples.set(
      toFloat(small.train.images.subarray(p * 784, (p + 1) * 784), "[0,1]"),
      i * 784,
    )
  );
  for (const space of ["pixels", "features"] as const) {
    const f = await neighbourFigure(samples, small, { space, pairs: 3 });
    assert.deepEqual([...f.index], picks, space);
    assert.ok(f.pixelDistance.every((d) => d < 1e-3), space);
    // One row of three pairs: 6 images of 58 px and a 2 px gap across.
    const view = new DataView(f.png.buffer);
    assert.deepEqual([view.getUint32(16), view.getUint32(20)], [
      6 * 58 + 2,
      60,
    ]);
  }
});
