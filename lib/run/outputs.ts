/**
 * What a training run writes into its folder after each epoch.
 *
 * @module
 */

import { type Gan } from "../gan.ts";
import { exists, writeFileAtomic } from "../io/files.ts";
import {
  imageGrid,
  lossCurvesPng,
  progressGif,
  progressStrip,
} from "../pictures/figures.ts";
import { keptGeneratorFolder } from "./average.ts";
import { saveCheckpoint, saveGenerator } from "./checkpoint.ts";
import type { EpochStats, TrainState } from "./record.ts";

const pad = (n: number) => String(n).padStart(3, "0");

/**
 * Makes the run folder's `samples/` and, for a new run, writes `grid` (the
 * untrained G's samples) as `samples/epoch_000.png`, the first frame of
 * the progress pictures.
 */
export async function startOutputs(
  outDir: string,
  grid: Float32Array | null,
  o: {
    range: "[-1,1]" | "[0,1]";
    cols?: number;
    rowLabels?: string[];
  },
): Promise<void> {
  await Deno.mkdir(`${outDir}/samples`, { recursive: true });
  if (grid === null) return;
  await writeFileAtomic(
    `${outDir}/samples/epoch_000.png`,
    imageGrid(grid, {
      encoding: o.range,
      cols: o.cols,
      rowLabels: o.rowLabels,
    }),
  );
}

/** Up to `n` of `items`, evenly spread, the first and the last included. */
function spread<T>(items: T[], n: number): T[] {
  return items.length <= n ? items : Array.from(
    { length: n },
    (_, i) => items[Math.round((i * (items.length - 1)) / (n - 1))],
  );
}

/**
 * Writes an epoch's outputs into the run folder: its sample grid, the
 * history, the loss curves, the progress strip and animation, the kept
 * generator (`keepGenerator`), then the checkpoint, each file atomically
 * and the checkpoint last, its commit point.
 */
export async function writeOutputs(
  outDir: string,
  o: {
    gan: Gan;
    grid: Float32Array;
    history: EpochStats[];
    epoch: number;
    range: "[-1,1]" | "[0,1]";
    /** Columns of the sample grid (default: square). */
    cols?: number;
    /** Row captions of the sample grid (a class grid's class names). */
    rowLabels?: string[];
    /** Also write the generator to `generators/epoch_NNN/`. */
    keepGenerator: boolean;
    state: TrainState;
    title: string;
  },
): Promise<void> {
  const sample = `${outDir}/samples/epoch_${pad(o.epoch)}.png`;
  await writeFileAtomic(
    sample,
    imageGrid(o.grid, {
      encoding: o.range,
      cols: o.cols,
      rowLabels: o.rowLabels,
    }),
  );
  await writeFileAtomic(
    `${outDir}/history.json`,
    JSON.stringify(o.history, null, 1),
  );
  await writeFileAtomic(
    `${outDir}/loss.png`,
    lossCurvesPng(o.history, o.title),
  );
  // Up to 10 rows, evenly spread over the epochs so far, last one included.
  const epochs = [0, ...o.history.map((h) => h.epoch)];
  const files = spread(epochs, 10)
    .map((e) => ({
      label: `epoch ${e}`,
      path: `${outDir}/samples/epoch_${pad(e)}.png`,
    }))
    .filter((f) => exists(f.path));
  await writeFileAtomic(`${outDir}/progress.png`, await progressStrip(files));
  // The animation: up to 50 frames, evenly spread, the last one included.
  const frames = spread(epochs, 50)
    .map((e) => ({
      label: `epoch ${e}`,
      path: `${outDir}/samples/epoch_${pad(e)}.png`,
    }))
    .filter((f) => exists(f.path));
  await writeFileAtomic(`${outDir}/progress.gif`, await progressGif(frames));
  const g = o.gan.config;
  const generator = {
    latentDim: g.latentDim,
    latent: g.latent,
    output: g.output,
    ...(g.classes ? { classes: g.classes } : {}),
    preset: g.preset,
    dataset: o.state.dataset,
    epochs: o.epoch,
    run: o.state.run,
    seed: o.state.seed,
  };
  if (o.keepGenerator) {
    // Before the checkpoint, its commit point: a run killed in between
    // trains this epoch again and writes this folder again.
    await saveGenerator(
      `${outDir}/${keptGeneratorFolder(o.epoch)}`,
      o.gan,
      generator,
      pad(o.epoch),
    );
  }
  await saveCheckpoint(outDir, o.gan, o.state, {
    tag: pad(o.epoch),
    generator,
  });
}
