/**
 * The training split a run uses: the training images less the validation
 * holdout, limited for quick runs, checked for a conditional GAN's labels,
 * and its mean image (the MLP presets' initial output bias).
 *
 * @module
 */

import { type Dataset, head, IMAGE_PIXELS, type Split } from "../splits.ts";
import type { GanConfig } from "../presets.ts";

/** Training images kept out for validation unless told otherwise. */
export const DEFAULT_HOLDOUT = 10000;

/**
 * The training split a run uses: holdout removed, then limited. `note`
 * says when the default holdout did not fit the dataset and none was kept.
 *
 * @throws {Error} when a holdout that was asked for leaves less than one
 *   batch, or the split is smaller than one batch.
 */
export function trainingSplit(
  dataset: Dataset,
  options: { holdout?: number; limit?: number; batchSize: number },
): { split: Split; holdout: number; note?: string } {
  const size = dataset.train.size;
  const bs = options.batchSize;
  let holdout = options.holdout ?? DEFAULT_HOLDOUT;
  let note: string | undefined;
  if (options.holdout === undefined && size - holdout < bs) {
    note = `${dataset.name} has only ${size} training images, too few to ` +
      `keep the default ${DEFAULT_HOLDOUT} out for validation: training on ` +
      "all of them (pass --holdout N to keep N out)";
    holdout = 0;
  }
  if (!Number.isInteger(holdout) || holdout < 0) {
    throw new Error(`--holdout must be an integer >= 0, got ${holdout}`);
  }
  if (size - holdout < bs) {
    throw new Error(
      `--holdout ${holdout} leaves ${Math.max(0, size - holdout)} of the ` +
        `${size} training images of ${dataset.name}, fewer than one batch ` +
        `of ${bs}: keep at most ${size - bs} out (the default is ` +
        `${DEFAULT_HOLDOUT}), or pass --holdout 0 to train on all ${size}`,
    );
  }
  let split = head(dataset.train, size - holdout);
  if (options.limit !== undefined) split = head(split, options.limit);
  if (split.size < options.batchSize) {
    throw new Error(
      `${split.size} training images are fewer than one batch of ${options.batchSize}; ` +
        "raise --limit or lower --batch-size",
    );
  }
  return { split, holdout, note };
}

/**
 * A conditional GAN learns from the class of each image: refuses training
 * data without labels, or with labels outside the GAN's classes.
 */
export function checkLabels(config: GanConfig, split: Split, name: string) {
  const classes = config.classes ?? 0;
  if (!classes) return;
  if (!split.labels || split.labels.length < split.size) {
    throw new Error(
      `this GAN is conditional on ${classes} classes, but the training ` +
        `images of ${name} carry no labels (${split.labels?.length ?? 0} ` +
        `for ${split.size} images): give the dataset its labels file, or ` +
        "train an unconditional preset (without --conditional)",
    );
  }
  for (let i = 0; i < split.size; i++) {
    if (split.labels[i] >= classes) {
      throw new Error(
        `this GAN is conditional on ${classes} classes (0..${classes - 1}), ` +
          `but training image ${i} of ${name} has label ${split.labels[i]}: ` +
          "check the labels file, or train on data with these classes",
      );
    }
  }
}

/** Mean of each pixel over a split, in [0, 1]. */
export function pixelMeans(split: Split): Float32Array {
  const sums = new Float64Array(IMAGE_PIXELS);
  for (let i = 0; i < split.size; i++) {
    const o = i * IMAGE_PIXELS;
    for (let p = 0; p < IMAGE_PIXELS; p++) sums[p] += split.images[o + p];
  }
  return Float32Array.from(sums, (s) => s / split.size / 255);
}
