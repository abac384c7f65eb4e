/**
 * Evaluating generated images against a dataset: the Parzen estimate of the
 * paper's Table 1, FID, KID, precision and recall and the data-copying test
 * in the project classifier's feature space, the Inception Score, and class
 * coverage. Also reads sample files (`.npy`, IDX).
 *
 * @module
 */

import { classify, FEATURE_DIM, loadClassifier } from "./classifier.ts";
import { type Dataset, IMAGE_PIXELS, toFloat } from "../data.ts";
import { PROJECT_ROOT } from "../io/files.ts";
import { isGzip, parseIdx } from "../io/idx.ts";
import {
  accuracyOf,
  classHistogram,
  coverage,
  frechetFeatureDistance,
  inceptionScore,
  kernelInceptionDistance,
  parzenEstimate,
  precisionRecall,
} from "./metrics.ts";
import { decodeNpy } from "../io/npy.ts";
import { dataCopying } from "./neighbours.ts";
import { cachedFeatures } from "./feature_cache.ts";

/** The committed classifier of a dataset. */
export function defaultClassifierDir(dataset: string): string {
  return `${PROJECT_ROOT}models/classifier/${dataset}`;
}

/**
 * Fewest samples an evaluation takes: one KID subset (1,000), which also
 * gives precision and recall's k-NN balls and the data-copying test's cells
 * enough points.
 */
export const MIN_SAMPLES = 1000;

/** Samples that precision, recall, density and coverage use at most. */
const PR_SAMPLES = 10000;

/** Every figure of an evaluation; the CLI prints it as its last line. */
export interface Evaluation {
  dataset: string;
  n_samples: number;
  /** Mean Parzen log-likelihood of the test images (nats). */
  parzen_ll: number;
  parzen_se: number;
  parzen_sigma: number;
  fid: number;
  /**
   * KID in the same features: the mean and standard deviation over 100
   * subsets of 1,000 samples and 1,000 test images (fewer when there are
   * fewer), unbiased, so comparable across sample counts.
   */
  kid: number;
  kid_std: number;
  /**
   * Improved precision and recall (k = 3) and density and coverage, in the
   * same features, of the first 10,000 samples against the test images:
   * fidelity and diversity apart.
   */
  precision: number;
  recall: number;
  density: number;
  coverage: number;
  /**
   * The data-copying test (Meehan et al. 2020) in the same features: C_T,
   * about 0 when the samples are as far from G's training images as the
   * test images are, well below 0 (under -3) when they sit closer (copies).
   */
  copying_ct: number;
  /**
   * Median distance from a sample to its nearest training image over the
   * test images' median: below 1 when samples sit closer than new data.
   */
  copying_distance_ratio: number;
  /**
   * Cells of the test's 20 that held at least 20 samples and 20 test
   * images; 0 makes `copying_ct` NaN (no verdict).
   */
  copying_cells: number;
  is: number;
  classes_ge_1pct: number;
  kl_uniform: number;
  /** Fraction of samples per class, by the classifier. */
  class_histogram: number[];
  /** The classifier's accuracy on the test images, measured in this run. */
  classifier_test_acc: number;
  /**
   * For samples with the classes they were asked for (a conditional
   * generator): the conditional accuracy, the share of samples that the
   * classifier assigns to the class asked for, overall and per class.
   */
  conditional_acc?: number;
  conditional_acc_per_class?: number[];
  /**
   * Per class: FID of that class's samples against that class's test
   * images (about 1,000 each, so higher than an FID of 10,000: compare
   * classes and generators at the same counts).
   */
  fid_per_class?: number[];
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
  /**
   * Training images the data-copying test measures against: the first N
   * (default: all before the validation images, the ones training keeps
   * with the default `--holdout`).
   */
  copyingReference?: number;
  /**
   * Where the training images' features are kept between evaluations
   * (default: `features/` in the datasets' cache).
   */
  featureCacheDir?: string;
  /** One-line notes (a feature cache rebuilt). Default: none. */
  log?: (message: string) => void;
  /**
   * The class each image was generated for (a conditional generator's
   * samples): adds the conditional accuracy and the per-class FID.
   */
  labels?: Uint8Array;
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
  if (!(n >= MIN_SAMPLES)) {
    throw new RangeError(
      `an evaluation needs at least ${MIN_SAMPLES} images (one KID subset), ` +
        `got ${n}`,
    );
  }
  const nVal = Math.min(options.validation ?? 10000, dataset.train.size);
  const nTest = Math.min(options.test ?? 10000, dataset.test.size);
  const val = toFloat(
    dataset.train.images.subarray((dataset.train.size - nVal) * IMAGE_PIXELS),
    "[0,1]",
  );
  const nRef = Math.min(
    options.copyingReference ?? dataset.train.size - nVal,
    dataset.train.size - nVal,
  );
  const testBytes = dataset.test.images.subarray(0, nTest * IMAGE_PIXELS);
  const test = toFloat(testBytes, "[0,1]");

  let t = performance.now();
  const parzen = options.skipParzen
    ? { mean: NaN, se: NaN, sigma: NaN }
    : await parzenEstimate(images, val, test, IMAGE_PIXELS);
  const parzenSeconds = (performance.now() - t) / 1000;

  t = performance.now();
  const classifierDir = options.classifierDir ??
    defaultClassifierDir(dataset.name);
  const { model } = await loadClassifier(classifierDir);
  const real = await classify(model, test);
  const fake = await classify(model, images);
  // The same in every evaluation: from the cache after the first.
  const seen = await cachedFeatures(
    model,
    classifierDir,
    dataset.train.images.subarray(0, nRef * IMAGE_PIXELS),
    { cacheDir: options.featureCacheDir, log: options.log },
  );
  model.dispose();
  const hist = classHistogram(fake.probs);
  const cov = coverage(hist);
  const testLabels = dataset.test.labels.subarray(0, nTest);
  const conditional = options.labels
    ? conditionalFigures(fake, real, options.labels, testLabels)
    : {};
  const kid = await kernelInceptionDistance(
    fake.features,
    real.features,
    FEATURE_DIM,
  );
  // k-NN over every pair: at most 10,000 samples (the first), as the
  // field reports it; 60,000 would take 36 times as long.
  const pr = await precisionRecall(
    real.features,
    fake.features.subarray(0, PR_SAMPLES * FEATURE_DIM),
    FEATURE_DIM,
  );
  const copying = await dataCopying(
    seen,
    real.features,
    fake.features.subarray(0, PR_SAMPLES * FEATURE_DIM),
    FEATURE_DIM,
  );
  return {
    dataset: dataset.name,
    n_samples: n,
    parzen_ll: parzen.mean,
    parzen_se: parzen.se,
    parzen_sigma: parzen.sigma,
    fid: frechetFeatureDistance(fake.features, real.features, FEATURE_DIM),
    kid: kid.mean,
    kid_std: kid.std,
    precision: pr.precision,
    recall: pr.recall,
    density: pr.density,
    coverage: pr.coverage,
    copying_ct: copying.ct,
    copying_distance_ratio: copying.sampleMedian / copying.testMedian,
    copying_cells: copying.cellsUsed,
    is: inceptionScore(fake.probs),
    classes_ge_1pct: cov.classesAtLeast1Pct,
    kl_uniform: cov.klFromUniform,
    class_histogram: hist,
    classifier_test_acc: accuracyOf(real.probs, testLabels),
    ...conditional,
    seconds: {
      parzen: parzenSeconds,
      classifier: (performance.now() - t) / 1000,
    },
  };
}

/**
 * The conditional accuracy and per-class FID of samples generated for
 * `labels`, from their classifier outputs and the test images'.
 */
export function conditionalFigures(
  fake: { features: Float32Array; probs: Float32Array },
  real: { features: Float32Array; probs: Float32Array },
  labels: Uint8Array,
  testLabels: Uint8Array,
  classes = 10,
): Pick<
  Evaluation,
  "conditional_acc" | "conditional_acc_per_class" | "fid_per_class"
> {
  const n = labels.length;
  if (fake.probs.length !== n * classes) {
    throw new RangeError(
      `${fake.probs.length / classes} samples but ${n} labels`,
    );
  }
  // The rows (each `width` values) of `values` whose label in `of` is `c`.
  const rowsOf = (
    values: Float32Array,
    width: number,
    of: Uint8Array,
    c: number,
  ) => {
    const idx = [...of.keys()].filter((i) => of[i] === c);
    const out = new Float32Array(idx.length * width);
    idx.forEach((i, k) =>
      out.set(values.subarray(i * width, (i + 1) * width), k * width)
    );
    return out;
  };
  const perClass: number[] = [], fids: number[] = [];
  for (let c = 0; c < classes; c++) {
    const probs = rowsOf(fake.probs, classes, labels, c);
    const asked = new Uint8Array(probs.length / classes).fill(c);
    perClass.push(asked.length ? accuracyOf(probs, asked) : NaN);
    const a = rowsOf(fake.features, FEATURE_DIM, labels, c);
    const b = rowsOf(real.features, FEATURE_DIM, testLabels, c);
    // A covariance needs at least two rows on each side.
    fids.push(
      a.length >= 2 * FEATURE_DIM && b.length >= 2 * FEATURE_DIM
        ? frechetFeatureDistance(a, b, FEATURE_DIM)
        : NaN,
    );
  }
  return {
    conditional_acc: accuracyOf(fake.probs, labels),
    conditional_acc_per_class: perClass,
    fid_per_class: fids,
  };
}

/**
 * Reads the labels of a sample file: a 1-D `.npy` or IDX file of unsigned
 * bytes (`deno task sample` writes them beside a conditional generator's
 * samples).
 *
 * @throws {Error} naming the file and what is wrong with it.
 */
export async function readLabelsFile(path: string): Promise<Uint8Array> {
  const bytes = await readFileNamed(path);
  const { shape, data } = bytes[0] === 0x93 ? decodeNpy(bytes, path) : (() => {
    const { dims, data } = parseIdx(bytes, path);
    return { shape: dims, data };
  })();
  if (shape.length !== 1 || !(data instanceof Uint8Array)) {
    throw new Error(
      `${path}: expected one label byte per image (shape (N,), uint8), ` +
        `got shape (${shape.join(", ")})`,
    );
  }
  return data;
}

/**
 * Reads generated images from a file: `.npy` (uint8 N x 28 x 28 or N x 784,
 * or float32 in [0, 1] or [-1, 1]) or an IDX file of unsigned bytes
 * (gzipped or not). Returns n x 784 values in [0, 1].
 *
 * @throws {Error} naming the file and what is wrong with it.
 */
export async function readSamplesFile(path: string): Promise<Float32Array> {
  return decodeSamples(await readFileNamed(path), path);
}

/** The bytes of `path`; an error naming it when it cannot be read. */
export async function readFileNamed(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch {
    throw new Error(`${path}: cannot read the file (does it exist?)`);
  }
}

/**
 * The images of a sample file's bytes, as {@linkcode readSamplesFile}
 * returns them; `path` names the file in errors.
 *
 * @throws {Error} naming the file and what is wrong with it.
 */
export function decodeSamples(bytes: Uint8Array, path: string): Float32Array {
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
