/**
 * Nearest neighbours and the data-copying test: does G draw new images, or
 * its training images again? The paper answers with a picture (Figure 2:
 * samples beside their nearest training example, {@linkcode nearestNeighbours});
 * Meehan et al. (2020, "A non-parametric test to detect data-copying in
 * generative models") with a number ({@linkcode dataCopying}). Distances come
 * from matrix products on the tfjs backend.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../random/rng.ts";

/**
 * Calls `each(i, d)` for every row i of `a` with d the squared Euclidean
 * distances from it to every row of `b` (|a|^2 + |b|^2 - 2 a . b, in
 * float64 from a float32 product, clamped at 0), `block` rows of `a` at a
 * time.
 */
export async function blockDistances(
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  dim: number,
  block: number,
  each: (i: number, d: Float64Array) => void,
): Promise<void> {
  const norms = (v: Float32Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, r) => {
      let s = 0;
      for (let c = 0; c < dim; c++) s += v[r * dim + c] ** 2;
      return s;
    });
  const na = norms(a, n), nb = norms(b, m);
  const B = tf.tensor2d(b, [m, dim]);
  const d = new Float64Array(m);
  try {
    for (let start = 0; start < n; start += block) {
      const rows = Math.min(block, n - start);
      const dots = tf.tidy(() =>
        tf.matMul(
          tf.tensor2d(a.subarray(start * dim, (start + rows) * dim), [
            rows,
            dim,
          ]),
          B,
          false,
          true,
        )
      );
      const p = await dots.data();
      dots.dispose();
      for (let r = 0; r < rows; r++) {
        const i = start + r;
        for (let j = 0; j < m; j++) {
          d[j] = Math.max(0, na[i] + nb[j] - 2 * p[r * m + j]);
        }
        each(i, d);
      }
    }
  } finally {
    B.dispose();
  }
}

/** Each query's nearest reference row: its index and Euclidean distance. */
export interface Neighbours {
  index: Uint32Array;
  distance: Float64Array;
}

/**
 * The nearest row of `reference` to each row of `queries` (rows of `dim`
 * values), in Euclidean distance; the products are taken a slice of the
 * reference and a block of queries at a time, about ten million distances
 * a block (`sliceRows`: the reference rows of a slice, default 64 MB of
 * them).
 *
 * @throws {RangeError} when `reference` is empty or a set is not whole rows.
 */
export async function nearestNeighbours(
  queries: Float32Array,
  reference: Float32Array,
  dim: number,
  options: { sliceRows?: number } = {},
): Promise<Neighbours> {
  const n = queries.length / dim, m = reference.length / dim;
  if (!Number.isInteger(n) || !Number.isInteger(m) || m === 0) {
    throw new RangeError(
      `nearest neighbours need whole rows of ${dim} values and at least one ` +
        `reference row, got ${queries.length} and ${reference.length} values`,
    );
  }
  const index = new Uint32Array(n);
  const distance = new Float64Array(n).fill(Infinity);
  // The reference a slice at a time (a tensor of at most 64 MB: software
  // WebGPU adapters read bigger buffers as zeros), each query's best kept.
  const slice = options.sliceRows ?? Math.max(1, Math.floor(16e6 / dim));
  for (let from = 0; from < m; from += slice) {
    const rows = Math.min(slice, m - from);
    const part = reference.subarray(from * dim, (from + rows) * dim);
    // About ten million distances a block, and a query tensor of 64 MB at most.
    const block = Math.max(
      1,
      Math.min(Math.floor(1e7 / rows), Math.floor(16e6 / dim)),
    );
    await blockDistances(queries, n, part, rows, dim, block, (i, d) => {
      let best = 0;
      for (let j = 1; j < rows; j++) if (d[j] < d[best]) best = j;
      const e = Math.sqrt(d[best]);
      if (e < distance[i]) [index[i], distance[i]] = [from + best, e];
    });
  }
  return { index, distance };
}

/**
 * The Mann-Whitney U test's z-score of `a` against `b` (normal
 * approximation): U counts the pairs with a_i > b_j, ties a half, and
 * z = (U - nm / 2) / sd with the variance corrected for ties,
 * sd^2 = nm / 12 ((n + m + 1) - sum (t^3 - t) / ((n + m)(n + m - 1))) over
 * each group of t equal values. Negative when `a`'s values tend to be
 * smaller; 0 when every value is the same.
 *
 * @throws {RangeError} when either set is empty.
 */
export function mannWhitneyZ(a: ArrayLike<number>, b: ArrayLike<number>) {
  const n = a.length, m = b.length;
  if (n === 0 || m === 0) {
    throw new RangeError(`the U test needs two non-empty sets, got ${n}, ${m}`);
  }
  const all = [
    ...Array.from(a, (v) => ({ v, inA: true })),
    ...Array.from(b, (v) => ({ v, inA: false })),
  ].sort((x, y) => x.v - y.v);
  // Rank sum of a, ties at their mean rank (1-based), and the ties' term.
  let rankSum = 0, ties = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j].v === all[i].v) j++;
    const rank = (i + 1 + j) / 2, t = j - i;
    for (let k = i; k < j; k++) if (all[k].inA) rankSum += rank;
    ties += t ** 3 - t;
    i = j;
  }
  const u = rankSum - (n * (n + 1)) / 2, total = n + m;
  const variance = ((n * m) / 12) *
    (total + 1 - ties / (total * (total - 1) || 1));
  return variance > 0 ? (u - (n * m) / 2) / Math.sqrt(variance) : 0;
}

/**
 * Lloyd's k-means with k-means++ seeding: `k` centres of the rows of `x`
 * (each `dim` values), `iterations` rounds at most.
 */
export function kMeans(
  x: Float32Array,
  dim: number,
  k: number,
  rng: Rng,
  iterations = 25,
): Float32Array {
  const n = x.length / dim;
  if (!(n >= k && k >= 1)) {
    throw new RangeError(`k-means with k = ${k} needs at least ${k} rows`);
  }
  const centres = new Float32Array(k * dim);
  const nearest = new Float64Array(n).fill(Infinity);
  // k-means++: each next centre drawn in proportion to its squared distance.
  let pick = rng.int(n);
  for (let c = 0; c < k; c++) {
    centres.set(x.subarray(pick * dim, (pick + 1) * dim), c * dim);
    let total = 0;
    for (let i = 0; i < n; i++) {
      nearest[i] = Math.min(nearest[i], squared(x, i, centres, c, dim));
      total += nearest[i];
    }
    let r = rng.next() * total;
    pick = n - 1;
    for (let i = 0; i < n; i++) {
      r -= nearest[i];
      if (r < 0) {
        pick = i;
        break;
      }
    }
  }
  const cell = new Int32Array(n).fill(-1);
  for (let it = 0; it < iterations; it++) {
    const next = assignCells(x, centres, dim);
    if (next.every((c, i) => c === cell[i])) break;
    cell.set(next);
    const sums = new Float64Array(k * dim), counts = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      counts[cell[i]]++;
      for (let d = 0; d < dim; d++) sums[cell[i] * dim + d] += x[i * dim + d];
    }
    for (let c = 0; c < k; c++) {
      // An emptied centre stays where it was.
      if (!counts[c]) continue;
      for (let d = 0; d < dim; d++) {
        centres[c * dim + d] = sums[c * dim + d] / counts[c];
      }
    }
  }
  return centres;
}

/** The nearest of `centres` to each row of `x`. */
export function assignCells(
  x: Float32Array,
  centres: Float32Array,
  dim: number,
): Int32Array {
  const n = x.length / dim, k = centres.length / dim;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0, bestD = Infinity;
    for (let c = 0; c < k; c++) {
      const d = squared(x, i, centres, c, dim);
      if (d < bestD) [best, bestD] = [c, d];
    }
    out[i] = best;
  }
  return out;
}

function squared(
  a: Float32Array,
  i: number,
  b: Float32Array,
  j: number,
  dim: number,
): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += (a[i * dim + d] - b[j * dim + d]) ** 2;
  return s;
}

/** Options of {@linkcode dataCopying}. */
export interface DataCopyingOptions {
  /** Cells of the k-means partition of the training rows (default 20). */
  cells?: number;
  /**
   * A cell counts when it holds at least this many samples and test rows
   * (default 20, Meehan et al.'s threshold).
   */
  minPerCell?: number;
  /** Training rows the partition is fitted on at most (default 10,000). */
  fitRows?: number;
  /** Seed of the partition (default 0). */
  seed?: number;
}

/** {@linkcode dataCopying}'s result. */
export interface DataCopying {
  /**
   * Meehan et al.'s C_T: the cells' Mann-Whitney z-scores of the samples'
   * distances to their nearest training row against the test rows',
   * weighted by each cell's share of test rows. About 0 for a generator
   * whose samples are as far from the training set as new data; well below
   * 0 (say under -3) when samples sit closer: copies.
   */
  ct: number;
  /** z-score per cell (NaN where too few samples or test rows). */
  zPerCell: number[];
  /** Cells that held enough samples and test rows; 0 makes C_T NaN. */
  cellsUsed: number;
  /** Median distance from a sample to its nearest training row. */
  sampleMedian: number;
  /** Median distance from a test row to its nearest training row. */
  testMedian: number;
}

/**
 * Meehan et al.'s data-copying test of generated rows `samples` against the
 * `train` rows G learnt from, with `test` rows of the same distribution
 * that G never saw (all rows of `dim` features). The space is cut into
 * k-means cells of the training rows; in each cell the distances of the
 * samples to their nearest training row are compared with the test rows'
 * by a Mann-Whitney U test; C_T is the z-scores' mean weighted by the
 * cells' shares of test rows. A generator that copies (or stays close to)
 * its training rows gives C_T well below zero; one whose samples are as
 * new as held-out data gives about zero; positive values mean samples
 * farther from the training set than new data (underfitting). C_T is a
 * significance score, not an effect size: it grows with the square root of
 * the rows per cell, so compare it at equal sample counts. NaN when no cell
 * holds enough samples and test rows.
 *
 * @throws {RangeError} when the training rows are fewer than the cells.
 */
export async function dataCopying(
  train: Float32Array,
  test: Float32Array,
  samples: Float32Array,
  dim: number,
  options: DataCopyingOptions = {},
): Promise<DataCopying> {
  const k = options.cells ?? 20, min = options.minPerCell ?? 20;
  const rng = new Rng(options.seed ?? 0, 0xc0b1);
  const nTrain = train.length / dim;
  if (nTrain < k) {
    throw new RangeError(
      `the data-copying test cuts the training rows into ${k} cells and ` +
        `needs at least ${k} of them, got ${nTrain}`,
    );
  }
  const fitRows = Math.min(options.fitRows ?? 10000, nTrain);
  const fit = new Float32Array(fitRows * dim);
  rng.permutation(nTrain).subarray(0, fitRows).forEach((r, i) =>
    fit.set(train.subarray(r * dim, (r + 1) * dim), i * dim)
  );
  const centres = kMeans(fit, dim, k, rng);
  const testCells = assignCells(test, centres, dim);
  const sampleCells = assignCells(samples, centres, dim);
  const testD = (await nearestNeighbours(test, train, dim)).distance;
  const sampleD = (await nearestNeighbours(samples, train, dim)).distance;
  const zPerCell: number[] = [];
  let weighted = 0, weights = 0, cellsUsed = 0;
  for (let c = 0; c < k; c++) {
    const q = sampleD.filter((_, i) => sampleCells[i] === c);
    const p = testD.filter((_, i) => testCells[i] === c);
    if (q.length < min || p.length < min) {
      zPerCell.push(NaN);
      continue;
    }
    const z = mannWhitneyZ(q, p);
    zPerCell.push(z);
    weighted += p.length * z;
    weights += p.length;
    cellsUsed++;
  }
  return {
    // No cell holds enough of both (samples all in cells that test rows
    // hardly reach: a collapsed generator): no verdict.
    ct: cellsUsed ? weighted / weights : NaN,
    zPerCell,
    cellsUsed,
    sampleMedian: median(sampleD),
    testMedian: median(testD),
  };
}

/** The median of `v` (the mean of the middle two for an even count). */
export function median(v: ArrayLike<number>): number {
  const s = Float64Array.from(v).sort();
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
