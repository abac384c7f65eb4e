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
import { generatorMetadata } from "./generator_metadata.ts";
import type { GridLayout } from "./grid.ts";
import type { TrainState } from "./record.ts";

const pad = (n: number) => String(n).padStart(3, "0");

/**
 * Makes the run folder's `samples/` and, for a new run, writes `grid` (the
 * untrained G's samples) as `samples/epoch_000.png`, the first frame of
 * the progress pictures.
 */
export async function startOutputs(
  outDir: string,
  grid: Float32Array | null,
  layout: GridLayout,
): Promise<void> {
  await Deno.mkdir(`${outDir}/samples`, { recursive: true });
  if (grid === null) return;
  await writeFileAtomic(
    `${outDir}/samples/epoch_000.png`,
    gridPng(grid, layout),
  );
}

/** A sample grid as a PNG. */
function gridPng(grid: Float32Array, layout: GridLayout): Uint8Array {
  return imageGrid(grid, {
    encoding: layout.range,
    cols: layout.cols,
    rowLabels: layout.rowLabels,
  });
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
    layout: GridLayout;
    /** Also write the generator to `generators/epoch_NNN/`. */
    keepGenerator: boolean;
    state: TrainState;
    title: string;
  },
): Promise<void> {
  const epoch = o.state.epoch;
  await writeFileAtomic(
    `${outDir}/samples/epoch_${pad(epoch)}.png`,
    gridPng(o.grid, o.layout),
  );
  await writeFileAtomic(
    `${outDir}/history.json`,
    JSON.stringify(o.state.history, null, 1),
  );
  await writeFileAtomic(
    `${outDir}/loss.png`,
    lossCurvesPng(o.state.history, o.title),
  );
  // Up to 10 rows, evenly spread over the epochs so far, last one included.
  const epochs = [0, ...o.state.history.map((h) => h.epoch)];
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
  const generator = generatorMetadata(o.gan.config, {
    dataset: o.state.dataset,
    epochs: epoch,
    run: o.state.run,
    seed: o.state.seed,
  });
  if (o.keepGenerator) {
    // Before the checkpoint, its commit point: a run killed in between
    // trains this epoch again and writes this folder again. G as trained,
    // also in a run with a moving average: what deno task average averages.
    const { ema: _, ...raw } = generator;
    await saveGenerator(
      `${outDir}/${keptGeneratorFolder(epoch)}`,
      o.gan,
      raw,
      pad(epoch),
      o.gan.generator,
    );
  }
  await saveCheckpoint(outDir, o.gan, o.state, {
    tag: pad(epoch),
    generator,
  });
}

/**
 * Why training stopped early, and what the run folder still holds, for
 * train()'s result.
 */
export function stopMessage(
  stop: "interrupted" | "diverged",
  epoch: number,
  outDir: string | null,
  what = "",
): string {
  if (stop === "interrupted") {
    return `interrupted during epoch ${epoch + 1}; ` + (
      outDir === null
        ? "nothing was saved (no run folder)"
        : epoch > 0
        ? `the last checkpoint (epoch ${epoch}) is intact`
        : "no epoch was completed, so there is no checkpoint to resume"
    );
  }
  return what +
    (outDir === null
      ? ""
      : epoch > 0
      ? `; the last good checkpoint (epoch ${epoch}) is kept in ${outDir}`
      : "; no checkpoint was written (it diverged in the first epoch). " +
        "Lower --lr, or check the preset's settings");
}
