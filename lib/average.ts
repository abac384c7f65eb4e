/**
 * Averaging a run's generators: a generator whose weights are the mean of
 * those of several epochs' generators from one run (Polyak averaging over
 * epochs; Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in
 * GAN Training"). Late in a GAN's training the generator's weights circle
 * around a good point instead of settling on it, as each player answers the
 * other's last move; their mean lies nearer the middle of the circle. On
 * MNIST the mean of `sngan-fc`'s epochs 10 to 15 scores FID 1.37 where the
 * best single epoch scores 2.21 (docs/results.md).
 *
 * Every weight is averaged, batch norm's running mean and variance
 * included; those then describe the averaged network's activations only
 * approximately, so an averaged generator is evaluated like any other
 * (`deno task eval --checkpoint`) before it is trusted.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  CheckpointError,
  type GeneratorMetadata,
  type LoadedGenerator,
  loadGenerator,
} from "./checkpoint.ts";
import { exists } from "./files.ts";
import { saveLayersModel } from "./layers_io.ts";

/**
 * Where `train({ keepGenerators: true })` keeps an epoch's generator,
 * relative to the run folder: `generators/epoch_NNN`.
 */
export function keptGeneratorFolder(epoch: number): string {
  return `generators/epoch_${String(epoch).padStart(3, "0")}`;
}

/** The epochs whose generators the run folder `runDir` keeps, in order. */
export function keptEpochs(runDir: string): number[] {
  if (!exists(`${runDir}/generators`)) return [];
  return [...Deno.readDirSync(`${runDir}/generators`)]
    .filter((e) => e.isDirectory)
    .map((e) => e.name.match(/^epoch_(\d+)$/)?.[1])
    .filter((n) => n !== undefined).map(Number).sort((a, b) => a - b);
}

/** The fields that two generators of one run share. */
const SAME = [
  "preset",
  "dataset",
  "latentDim",
  "latent",
  "output",
  "classes",
] as const;

/**
 * Loads the generators at `paths` (folders with model.json, run folders, or
 * model.json files) and returns the first one's model with the mean of all
 * their weights, and metadata naming the epochs averaged.
 *
 * @throws {CheckpointError} when fewer than two paths are given, a
 *   generator cannot be loaded (the message names it), or the generators
 *   are not of one network (preset, dataset, latent or weight shapes differ).
 */
export async function averageGenerators(
  paths: string[],
): Promise<LoadedGenerator> {
  if (paths.length < 2) {
    throw new CheckpointError(
      `averaging needs at least two generators, got ${paths.length}`,
    );
  }
  const loaded: LoadedGenerator[] = [];
  try {
    for (const p of paths) loaded.push(await loadGenerator(p));
    const first = loaded[0];
    const weights = loaded.map((g) => g.model.getWeights());
    const shapes = weights.map((ws) =>
      ws.map((w) => w.shape.join("x")).join(", ")
    );
    for (const [i, g] of loaded.entries()) {
      for (const field of SAME) {
        if (g.metadata[field] !== first.metadata[field]) {
          throw new CheckpointError(
            `${g.path} and ${first.path} are not generators of one run: ` +
              `${field} ${g.metadata[field]} against ${first.metadata[field]}`,
          );
        }
      }
      if (shapes[i] !== shapes[0]) {
        throw new CheckpointError(
          `${g.path} and ${first.path} are not the same network: weights ` +
            `${shapes[i]} against ${shapes[0]}`,
        );
      }
    }
    const mean = tf.tidy(() =>
      weights[0].map((_, i) =>
        tf.div(tf.addN(weights.map((w) => w[i])), loaded.length)
      )
    );
    first.model.setWeights(mean);
    tf.dispose(mean);
    const epochs = loaded.map((g) => g.metadata.epochs);
    const metadata: GeneratorMetadata = {
      ...first.metadata,
      epochs: Math.max(...epochs),
      averagedEpochs: epochs,
    };
    for (const g of loaded.slice(1)) g.model.dispose();
    return { ...first, metadata, verified: loaded.every((g) => g.verified) };
  } catch (e) {
    for (const g of loaded) g.model.dispose();
    throw e;
  }
}

/**
 * Averages the generators at `paths` ({@linkcode averageGenerators}) and
 * writes the result to `outDir` as a TF.js layers model, its weights
 * quantized to 8 bits when `quantize` is `"uint8"`.
 */
export async function saveAveragedGenerator(
  outDir: string,
  paths: string[],
  options: { quantize?: "uint8" } = {},
): Promise<GeneratorMetadata> {
  const averaged = await averageGenerators(paths);
  // A generator written there before: its weights files, left out of the new one, go.
  let before: string[] = [];
  try {
    const json = JSON.parse(await Deno.readTextFile(`${outDir}/model.json`));
    before = json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths);
  } catch {
    // no generator there
  }
  try {
    await saveLayersModel(outDir, averaged.model, {
      metadata: { gan: averaged.metadata },
      quantize: options.quantize,
    });
  } finally {
    averaged.model.dispose();
  }
  for (const p of before) {
    if (p !== "weights.bin" && !p.includes("/")) {
      await Deno.remove(`${outDir}/${p}`).catch(() => {});
    }
  }
  return averaged.metadata;
}
