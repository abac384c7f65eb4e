/**
 * The paper's Figure 2: samples beside their nearest training image, to
 * show that G does not just recall its training set. The search is over
 * every training image of the generator's dataset, in pixels (L2, as the
 * paper) or in the project classifier's features.
 *
 * @module
 */

import { classify, FEATURE_DIM, loadClassifier } from "../eval/classifier.ts";
import { defaultClassifierDir } from "../eval/evaluate.ts";
import { nearestNeighbours } from "../eval/neighbours.ts";
import { type Dataset, IMAGE_PIXELS, toFloat } from "../data.ts";
import { imageGrid } from "../pictures/figures.ts";
import { toBytes } from "../splits.ts";

/** Where neighbours are searched: pixel L2, or the classifier's features. */
export type NeighbourSpace = "pixels" | "features";

/** Options of {@linkcode neighbourFigure}. */
export interface NeighbourFigureOptions {
  /** Sample-neighbour pairs per row (default 5). */
  pairs?: number;
  /** Default `"pixels"`. */
  space?: NeighbourSpace;
}

/** {@linkcode neighbourFigure}'s result. */
export interface NeighbourFigure {
  /** The PNG: each sample followed by its neighbour, framed in yellow. */
  png: Uint8Array;
  /** Each sample's nearest training image (an index into the training split). */
  index: Uint32Array;
  /** Each sample's pixel L2 distance to it (pixels in [0, 1]). */
  pixelDistance: Float64Array;
}

/**
 * Finds the nearest of `dataset`'s training images to each of `samples`
 * (rows of 784 pixels in [0, 1]) and draws the figure.
 */
export async function neighbourFigure(
  samples: Float32Array,
  dataset: Dataset,
  options: NeighbourFigureOptions = {},
): Promise<NeighbourFigure> {
  const n = samples.length / IMAGE_PIXELS, pairs = options.pairs ?? 5;
  const train = toFloat(dataset.train.images, "[0,1]");
  let index: Uint32Array;
  if (options.space === "features") {
    const { model } = await loadClassifier(defaultClassifierDir(dataset.name));
    try {
      const a = await classify(model, samples),
        b = await classify(model, train);
      index = (await nearestNeighbours(a.features, b.features, FEATURE_DIM))
        .index;
    } finally {
      model.dispose();
    }
  } else {
    index = (await nearestNeighbours(samples, train, IMAGE_PIXELS)).index;
  }
  const pixelDistance = new Float64Array(n);
  const cells = new Uint8Array(2 * n * IMAGE_PIXELS);
  const bytes = toBytes(samples);
  for (let i = 0; i < n; i++) {
    const near = dataset.train.images.subarray(
      index[i] * IMAGE_PIXELS,
      (index[i] + 1) * IMAGE_PIXELS,
    );
    cells.set(
      bytes.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS),
      2 * i * IMAGE_PIXELS,
    );
    cells.set(near, (2 * i + 1) * IMAGE_PIXELS);
    let s = 0;
    for (let p = 0; p < IMAGE_PIXELS; p++) {
      s += (samples[i * IMAGE_PIXELS + p] - near[p] / 255) ** 2;
    }
    pixelDistance[i] = Math.sqrt(s);
  }
  const png = imageGrid(cells, {
    encoding: "bytes",
    cols: 2 * pairs,
    framedColumns: Array.from({ length: pairs }, (_, p) => 2 * p + 1),
  });
  return { png, index, pixelDistance };
}
