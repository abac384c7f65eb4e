/**
 * Tiny training runs for tests: a preset with batch 32, and train()'s
 * options for a few batches of MNIST, silent and writing nothing unless
 * told.
 *
 * @module
 */

import type { Dataset } from "../lib/data.ts";
import { type GanConfig, preset } from "../lib/presets.ts";
import type { TrainOptions } from "../lib/train.ts";

/** `name`'s preset with batch 32. */
export function tiny(name = "mlp"): GanConfig {
  const c = preset(name);
  c.batchSize = 32;
  return c;
}

/** train()'s options: `defaults`, then `over`, on `dataset` with tiny("mlp"). */
export function tinyOptions(
  dataset: Dataset,
  defaults: Partial<TrainOptions>,
): (over?: Partial<TrainOptions>) => TrainOptions {
  return (over = {}) => ({
    config: tiny(),
    dataset,
    epochs: 1,
    outDir: null,
    log: () => {},
    ...defaults,
    ...over,
  });
}
