/**
 * The noise z ~ p_z that G maps to images: normal or uniform vectors drawn
 * on the CPU from a seeded generator (the same numbers on every backend and
 * in a browser), and walks between them.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../random/rng.ts";

/** What drawing a latent vector needs to know. */
export interface LatentConfig {
  /** Standard normal, or uniform on [-1, 1]. */
  latent: "normal" | "uniform";
  latentDim: number;
  /**
   * Sampling only: the truncation trick (Brock et al. 2019), every value
   * outside [-T, T] drawn again until it falls inside. Smaller T trades
   * diversity for fidelity; uniform noise on [-1, 1] is unchanged by T >= 1.
   */
  truncation?: number;
}

/**
 * Draws `n` latent vectors on the CPU (the same on every backend). With a
 * truncation T each value is drawn on its own (a fresh normal pair, or a
 * uniform value, at a time) until one falls in [-T, T], so the vectors do
 * not depend on how many are drawn at once.
 *
 * @throws {RangeError} for a truncation that is not a number of at least
 *   {@linkcode MIN_TRUNCATION}.
 */
export function sampleLatent(
  config: LatentConfig,
  n: number,
  rng: Rng,
): Float32Array {
  const out = new Float32Array(n * config.latentDim);
  const t = config.truncation;
  if (t === undefined) {
    return config.latent === "normal"
      ? rng.fillNormal(out)
      : rng.fillUniform(out, -1, 1);
  }
  checkTruncation(t);
  const pair = new Float32Array(2);
  for (let i = 0; i < out.length; i++) {
    let v = Infinity;
    while (!(Math.abs(v) <= t)) {
      if (config.latent === "uniform") {
        v = rng.fillUniform(pair.subarray(0, 1), -1, 1)[0];
      } else {
        rng.fillNormal(pair);
        v = Math.abs(pair[0]) <= t ? pair[0] : pair[1];
      }
    }
    out[i] = v;
  }
  return out;
}

/** The smallest truncation {@linkcode sampleLatent} takes. */
export const MIN_TRUNCATION = 0.01;

/**
 * Checks a truncation of the noise (see {@linkcode LatentConfig}).
 *
 * @throws {RangeError} saying what is wrong.
 */
export function checkTruncation(t: number): void {
  // Below 0.01 most values take hundreds of draws: say so rather than hang.
  if (!(Number.isFinite(t) && t >= MIN_TRUNCATION)) {
    throw new RangeError(
      `the truncation must be a number of at least ${MIN_TRUNCATION} ` +
        `(values outside [-T, T] are drawn again; 0.5 to 2 is usual), got ${t}`,
    );
  }
}

/**
 * `steps` latent vectors from `a` to `b` (each `latentDim` long). For normal
 * noise the path is spherical (slerp), which keeps every point at a typical
 * distance from the origin; for uniform noise it is a straight line.
 */
export function interpolateLatents(
  a: Float32Array,
  b: Float32Array,
  steps: number,
  latent: LatentConfig["latent"],
): Float32Array {
  const dim = a.length;
  const out = new Float32Array(steps * dim);
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  let dot = 0;
  for (let i = 0; i < dim; i++) dot += a[i] * b[i];
  const omega = Math.acos(
    Math.min(1, Math.max(-1, dot / (norm(a) * norm(b) || 1))),
  );
  for (let s = 0; s < steps; s++) {
    const t = steps === 1 ? 0 : s / (steps - 1);
    let wa = 1 - t, wb = t;
    if (latent === "normal" && omega > 1e-6) {
      wa = Math.sin((1 - t) * omega) / Math.sin(omega);
      wb = Math.sin(t * omega) / Math.sin(omega);
    }
    for (let i = 0; i < dim; i++) out[s * dim + i] = wa * a[i] + wb * b[i];
  }
  return out;
}

/**
 * `rows` interpolations of `steps` latent vectors each, every row between
 * two fresh random endpoints: the latents of an interpolation grid.
 */
export function interpolationRows(
  config: LatentConfig,
  rows: number,
  steps: number,
  rng: Rng,
): Float32Array {
  const z = new Float32Array(rows * steps * config.latentDim);
  for (let r = 0; r < rows; r++) {
    const a = sampleLatent(config, 1, rng), b = sampleLatent(config, 1, rng);
    z.set(
      interpolateLatents(a, b, steps, config.latent),
      r * steps * config.latentDim,
    );
  }
  return z;
}

/** `labels` as one-hot rows of `classes` values. */
export function oneHot(
  labels: ArrayLike<number>,
  classes: number,
): Float32Array {
  const out = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    if (!Number.isInteger(c) || c < 0 || c >= classes) {
      throw new RangeError(`class ${c} is outside 0..${classes - 1}`);
    }
    out[i * classes + c] = 1;
  }
  return out;
}

/**
 * Rows of `x` (each `dim` values) as an [n, dim + classes] tensor: in a
 * conditional network (`classes` > 0) each followed by the one-hot class of
 * its label ({@linkcode withClasses}), otherwise as they are.
 *
 * @throws {Error} when a conditional network's rows come without labels.
 */
export function labelledRows(
  x: Float32Array,
  labels: ArrayLike<number> | undefined,
  dim: number,
  classes: number,
): tf.Tensor2D {
  const n = x.length / dim;
  if (!classes) return tf.tensor2d(x, [n, dim]);
  if (!labels) {
    throw new Error(`the ${n} rows of a conditional network need their labels`);
  }
  return tf.tensor2d(withClasses(x, labels, dim, classes), [n, dim + classes]);
}

/**
 * Throws unless `labels` are a conditional step's batch of `rows` classes,
 * each an integer from 0 to `classes` - 1 (the WGSL programs index rows of
 * gamma and of the embedding by them), with an error that says which.
 */
export function checkBatchLabels(
  labels: ArrayLike<number> | undefined,
  rows: number,
  classes: number,
): asserts labels is ArrayLike<number> {
  if (labels?.length !== rows) {
    throw new Error(
      `this GAN is conditional: a step takes the ${rows} classes of its batch (labels)`,
    );
  }
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!(Number.isInteger(y) && y >= 0 && y < classes)) {
      throw new Error(
        `label ${i} is ${y}: the classes are 0 to ${classes - 1}`,
      );
    }
  }
}

/**
 * Rows of `x` (each `dim` values) each followed by the one-hot class of its
 * label: a conditional generator's input (latent vectors and the classes
 * asked for) or a conditional discriminator's (images and their classes).
 */
export function withClasses(
  x: Float32Array,
  labels: ArrayLike<number>,
  dim: number,
  classes: number,
): Float32Array {
  const n = labels.length;
  if (x.length !== n * dim) {
    throw new RangeError(
      `${x.length} values are not ${n} rows of ${dim} (one per label)`,
    );
  }
  const hot = oneHot(labels, classes);
  const out = new Float32Array(n * (dim + classes));
  for (let i = 0; i < n; i++) {
    out.set(x.subarray(i * dim, (i + 1) * dim), i * (dim + classes));
    out.set(
      hot.subarray(i * classes, (i + 1) * classes),
      i * (dim + classes) + dim,
    );
  }
  return out;
}

/**
 * The inputs of a conditional generator's class grid: one row per class,
 * `cols` latent vectors drawn from `rng`, the same vector down each column,
 * so that a column shows one "style" across the classes. Returns G's
 * inputs (`classes * cols` rows, row-major by grid row) and their labels.
 */
export function classGridInputs(
  config: LatentConfig & { classes: number },
  cols: number,
  rng: Rng,
): { inputs: Float32Array; labels: Uint8Array } {
  const { latentDim, classes } = config;
  const z = sampleLatent(config, cols, rng);
  const rows = new Float32Array(classes * cols * latentDim);
  const labels = new Uint8Array(classes * cols);
  for (let c = 0; c < classes; c++) {
    rows.set(z, c * cols * latentDim);
    labels.fill(c, c * cols, (c + 1) * cols);
  }
  return { inputs: withClasses(rows, labels, latentDim, classes), labels };
}
