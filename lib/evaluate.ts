/**
 * Evaluating generated images against a dataset: the Parzen estimate of the
 * paper's Table 1, FID in the project classifier's feature space, the
 * Inception Score, and class coverage. Also reads sample files (`.npy`, IDX).
 *
 * @module
 */

import { classify, FEATURE_DIM, loadClassifier } from "./classifier.ts";
import { type Dataset, IMAGE_PIXELS, toFloat } from "./data.ts";
import { PROJECT_ROOT } from "./files.ts";
import { isGzip, parseIdx } from "./idx.ts";
import {
  accuracyOf,
  classHistogram,
  coverage,
  frechetFeatureDistance,
  inceptionScore,
  parzenEstimate,
} from "./metrics.ts";
import { decodeNpy } from "./npy.ts";

/** The committed classifier of a dataset. */
export function defaultClassifierDir(dataset: string): string {
  return `${PROJECT_ROOT}models/classifier/${dataset}`;
}

/** Every figure of an evaluation; the CLI prints it as its last line. */
export interface Evaluation {
  dataset: string;
  n_samples: number;
  /** Mean Parzen log-likelihood of the test images (nats). */
  parzen_ll: number;
  parzen_se: number;
  parzen_sigma: number;
  fid: number;
  is: number;
  classes_ge_1pct: number;
  kl_uniform: number;
  /** Fraction of samples per class, by the classifier. */
  class_histogram: number[];
  /** The classifier's accuracy on the test images, measured in this run. */
  classifier_test_acc: number;
  seconds: { parzen: number; classifier: number };
}

/** Options of {@linkcode evaluateImages}. */
export interface EvaluateOptions {
  dataset: Dataset;
  /** Default: `models/classifier/<dataset>`. */
  classifierDir?: string;
  /** Held-out training images that choose sigma (the last N; default 10,000). */
  validation?: number;
  /** Test images (the first N; default 10,000). */
  test?: number;
  /** Skip the Parzen estimate (figures become NaN). */
  skipParzen?: boolean;
}

/**
 * Evaluates `images` (n x 784 values in [0, 1]). Sigma is chosen on the
 * last `validation` training images, which training keeps out by default
 * (`--holdout`); the likelihood and FID are measured on the test images.
 */
export async function evaluateImages(
  images: Float32Array,
  options: EvaluateOptions,
): Promise<Evaluation> {
  const { dataset } = options;
  const n = images.length / IMAGE_PIXELS;
  const nVal = Math.min(options.validation ?? 10000, dataset.train.size);
  const nTest = Math.min(options.test ?? 10000, dataset.test.size);
  const val = toFloat(
    dataset.train.images.subarray((dataset.train.size - nVal) * IMAGE_PIXELS),
    "[0,1]",
  );
  const testBytes = dataset.test.images.subarray(0, nTest * IMAGE_PIXELS);
  const test = toFloat(testBytes, "[0,1]");

  let t = performance.now();
  const parzen = options.skipParzen
    ? { mean: NaN, se: NaN, sigma: NaN }
    : await parzenEstimate(images, val, test, IMAGE_PIXELS);
  const parzenSeconds = (performance.now() - t) / 1000;

  t = performance.now();
  const { model } = await loadClassifier(
    options.classifierDir ?? defaultClassifierDir(dataset.name),
  );
  const real = await classify(model, test);
  const fake = await classify(model, images);
  model.dispose();
  const hist = classHistogram(fake.probs);
  const cov = coverage(hist);
  return {
    dataset: dataset.name,
    n_samples: n,
    parzen_ll: parzen.mean,
    parzen_se: parzen.se,
    parzen_sigma: parzen.sigma,
    fid: frechetFeatureDistance(fake.features, real.features, FEATURE_DIM),
    is: inceptionScore(fake.probs),
    classes_ge_1pct: cov.classesAtLeast1Pct,
    kl_uniform: cov.klFromUniform,
    class_histogram: hist,
    classifier_test_acc: accuracyOf(
      real.probs,
      dataset.test.labels.subarray(0, nTest),
    ),
    seconds: {
      parzen: parzenSeconds,
      classifier: (performance.now() - t) / 1000,
    },
  };
}

/**
 * Reads generated images from a file: `.npy` (uint8 N x 28 x 28 or N x 784,
 * or float32 in [0, 1] or [-1, 1]) or an IDX file of unsigned bytes
 * (gzipped or not). Returns n x 784 values in [0, 1].
 *
 * @throws {Error} naming the file and what is wrong with it.
 */
export async function readSamplesFile(path: string): Promise<Float32Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    throw new Error(`${path}: cannot read the file (does it exist?)`);
  }
  let shape: number[], data: Uint8Array | Float32Array;
  if (bytes[0] === 0x93) {
    ({ shape, data } = decodeNpy(bytes, path));
  } else if ((bytes[0] === 0 && bytes[1] === 0) || isGzip(bytes)) {
    ({ dims: shape, data } = parseIdx(bytes, path));
  } else {
    throw new Error(`${path}: neither a .npy nor an IDX file`);
  }
  const ok = (shape.length === 3 && shape[1] === 28 && shape[2] === 28) ||
    (shape.length === 2 && shape[1] === IMAGE_PIXELS);
  if (!ok || shape[0] < 2) {
    throw new Error(
      `${path}: shape (${
        shape.join(", ")
      }), expected (N, 28, 28) or (N, 784) with N >= 2`,
    );
  }
  if (data instanceof Uint8Array) return toFloat(data, "[0,1]");
  let min = Infinity, max = -Infinity;
  for (const v of data) {
    if (Number.isNaN(v)) throw new Error(`${path}: holds NaN values`);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min < -1.0001 || max > 1.0001) {
    throw new Error(
      `${path}: float values span [${min}, ${max}]; expected [0, 1] or [-1, 1]`,
    );
  }
  // Negative values mean tanh output in [-1, 1].
  return min < 0 ? data.map((v) => (v + 1) / 2) : Float32Array.from(data);
}
