/**
 * The sample grid a run draws after every epoch: G's images for one fixed
 * batch of noise, so that the epochs can be compared. A conditional GAN's
 * is a class grid: one row per class, the same noise down each column.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { classLabels } from "../splits.ts";
import { type Gan, generate } from "../gan.ts";
import { classGridInputs, sampleLatent } from "../nets/latent.ts";
import { type GanConfig, generatorInputs, pixelRange } from "../presets.ts";
import { Rng } from "../random/rng.ts";

/** How a grid is drawn: its pixel range, columns and row captions. */
export interface GridLayout {
  range: "[-1,1]" | "[0,1]";
  /** Columns (default: square). */
  cols?: number;
  /** Row captions (a class grid's class names). */
  rowLabels?: string[];
}

/** The fixed noise of a run's sample grid, and how the grid is drawn. */
export class SampleGrid {
  /**
   * G's inputs: the fixed latent vectors (in a conditional GAN each
   * followed by its one-hot class).
   */
  readonly fixedNoise: Float32Array;
  readonly layout: GridLayout;
  #config: GanConfig;

  /**
   * `size` latent vectors drawn from the run's seed (stream 2, apart from
   * the weights' and the training noise's); for a conditional GAN, rows of
   * about `size / classes` columns, captioned with `dataset`'s class names.
   */
  constructor(
    config: GanConfig,
    o: { seed: number; size: number; dataset: string },
  ) {
    this.#config = config;
    const classes = config.classes ?? 0;
    const range = pixelRange(config);
    if (!classes) {
      this.fixedNoise = sampleLatent(config, o.size, new Rng(o.seed, 2));
      this.layout = { range };
      return;
    }
    const cols = Math.max(1, Math.round(o.size / classes));
    this.fixedNoise = classGridInputs(
      { ...config, classes },
      cols,
      new Rng(o.seed, 2),
    ).inputs;
    this.layout = { range, cols, rowLabels: classLabels(o.dataset, classes) };
  }

  /** G's images for the fixed noise, in the data's range. */
  async images(gan: Gan): Promise<Float32Array> {
    const dim = generatorInputs(this.#config);
    const z = tf.tensor2d(this.fixedNoise, [this.fixedNoise.length / dim, dim]);
    const images = generate(gan, z);
    const data = await images.data<"float32">();
    tf.dispose([z, images]);
    return data;
  }
}
