/**
 * Averaging a run's generators: a generator whose weights are the mean of
 * those of several epochs' generators from one run (Polyak averaging over
 * epochs; Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in
 * GAN Training"). Late in a GAN's training the generator's weights circle
 * around a good point instead of settling on it, as each player answers the
 * other's last move; their mean lies nearer the middle of the circle. How
 * much it gained on MNIST, and where it did little: docs/results.md,
 * "Averaging `sngan-fc`".
 *
 * Every weight is averaged, batch norm's running mean and variance
 * included; those then describe the averaged network's activations only
 * approximately (recomputing them changed `models/mnist-sngan-fc`'s FID by
 * less than 0.1: docs/results.md, "Generator EMA"), so an averaged
 * generator is evaluated like any other (`deno task eval --checkpoint`)
 * before it is trusted.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  CheckpointError,
  epochsText,
  type GeneratorMetadata,
  type LoadedGenerator,
  loadGenerator,
} from "./checkpoint.ts";
import {
  exists,
  isWithin,
  realPathOf,
  removeStaleTemporaries,
  WriteError,
} from "../io/files.ts";
import { saveLayersModel } from "../io/layers_model.ts";

/**
 * Where `train({ keepGenerators: true })` keeps an epoch's generator,
 * relative to the run folder: `generators/epoch_NNN`.
 */
export function keptGeneratorFolder(epoch: number): string {
  return `generators/epoch_${String(epoch).padStart(3, "0")}`;
}

/**
 * Removes the generators that `runDir/generators/` keeps for epochs after
 * `after` (all of them for 0); returns their epochs. Only folders of the
 * kept generators' form are touched (`epoch_NNN` holding model.json and
 * weights-NNN.bin, and temporary files of theirs); anything else there is
 * left alone.
 */
export function removeKeptGenerators(runDir: string, after: number): number[] {
  const removed: number[] = [];
  for (const e of keptEpochs(runDir)) {
    if (e <= after) continue;
    const dir = `${runDir}/${keptGeneratorFolder(e)}`;
    const ours = [...Deno.readDirSync(dir)].every((f) =>
      f.isFile && /^(model\.json|weights-\d+\.bin)(\.tmp-\d+)?$/.test(f.name)
    );
    if (!ours) continue;
    Deno.removeSync(dir, { recursive: true });
    removed.push(e);
  }
  return removed;
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
  "conditioning",
  "run",
  "seed",
] as const;

/** Options of {@linkcode averageGenerators}. */
export interface AverageOptions {
  /**
   * The epoch each generator is of, by its folder (a run's kept
   * `generators/epoch_NNN`): each must say so in its metadata and carry
   * the run id that shows the generators come from one run.
   */
  epochs?: number[];
}

/**
 * Loads the generators at `paths` (folders with model.json, run folders, or
 * model.json files) and returns the first one's model with the mean of all
 * their weights, and metadata naming the epochs averaged.
 *
 * @throws {CheckpointError} when fewer than two paths are given, a
 *   generator cannot be loaded (the message names it), the generators are
 *   not of one network or one run (preset, dataset, latent, run id, seed or
 *   weight shapes differ), or, with `epochs`, a generator's metadata names
 *   another epoch or no run.
 */
export async function averageGenerators(
  paths: string[],
  options: AverageOptions = {},
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
      const epoch = options.epochs?.[i];
      if (epoch !== undefined && g.metadata.epochs !== epoch) {
        throw new CheckpointError(
          `${g.path} is the generator of epoch ${g.metadata.epochs} by its ` +
            `metadata, not of epoch ${epoch} as its folder says (copied in ` +
            "from elsewhere?); remove it, or train the run again with " +
            "--keep-generators",
        );
      }
      if (epoch !== undefined && g.metadata.run === undefined) {
        throw new CheckpointError(
          `${g.path} carries no run id (kept by an older version), so ` +
            "nothing shows it comes from the same run as the others; " +
            "train the run again with --keep-generators to average it",
        );
      }
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
 * Files of a generator folder that describe the generator in it (its
 * evaluation, its training's animation): they go when it is replaced, so
 * that the page never shows the old generator's figures for the new one.
 */
const DESCRIBES_GENERATOR = ["eval.json", "progress.gif"];

/** A file an interrupted average leaves: content-named weights, a temporary file. */
const LEFTOVER = /^(weights-[0-9a-f]{16}\.bin|.*\.tmp-\d+)$/;

/** Where {@linkcode saveAveragedGenerator} writes, from {@linkcode checkAverageOut}. */
export interface AverageOut {
  /** The folder. */
  dir: string;
  /**
   * Files of the generator it replaces, removed once the new one is whole:
   * the weights its model.json names and {@linkcode DESCRIBES_GENERATOR}.
   */
  replaced: string[];
}

/**
 * Checks, before any work, where `deno task average` may write: a new or
 * empty folder outside the run folder `runDir`, or, with `overwrite`, a
 * folder holding a generator saved by this project (one of `models/`, an
 * earlier average), whose other files stay.
 *
 * @throws {WriteError} saying what is wrong and what to do: `dir` is the
 *   file system's root, a file, inside the run folder (its generators are
 *   the inputs, the rest is the run's own) or holding it, a folder of other
 *   files, or a generator without `overwrite`.
 */
export function checkAverageOut(
  dir: string,
  runDir: string,
  overwrite = false,
): AverageOut {
  const real = realPathOf(dir), run = realPathOf(runDir);
  if (real === "/") {
    throw new WriteError(
      `--out ${dir} is the file system's root; name a new folder such as ${runDir}-avg`,
    );
  }
  if (isWithin(real, run) || isWithin(run, real)) {
    throw new WriteError(
      `--out ${dir} is ${
        isWithin(real, run) ? "inside" : "above"
      } the run folder ${runDir}, whose generators are this command's ` +
        `inputs and whose other files are the run's own; write the average ` +
        `elsewhere, e.g. --out ${runDir}-avg`,
    );
  }
  if (!exists(dir)) return { dir, replaced: [] };
  if (!Deno.statSync(dir).isDirectory) {
    throw new WriteError(`--out ${dir} is a file; name a folder`);
  }
  // What an average killed before its model.json left (weights named by
  // their contents, temporary files) is no one's: it goes after the write.
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort()
    .filter((n) => !LEFTOVER.test(n));
  if (names.length === 0) return { dir, replaced: [] };
  if (!names.includes("model.json")) {
    throw new WriteError(
      `--out ${dir} holds other files (${names.slice(0, 3).join(", ")}${
        names.length > 3 ? ", ..." : ""
      }); write the average into a new or empty folder`,
    );
  }
  let json;
  try {
    json = JSON.parse(Deno.readTextFileSync(`${dir}/model.json`));
  } catch {
    json = null;
  }
  const gan = json?.userDefinedMetadata?.gan as GeneratorMetadata | undefined;
  if (!gan) {
    throw new WriteError(
      `--out ${dir} holds a model.json that is not a generator saved by ` +
        "this project; write the average into a new or empty folder",
    );
  }
  if (!overwrite) {
    throw new WriteError(
      `--out ${dir} holds a generator already (${gan.preset} on ` +
        `${gan.dataset}, ${epochsText(gan)}); pass --overwrite to replace ` +
        "it, or write the average into a new folder",
    );
  }
  const weights: string[] = (json.weightsManifest ?? [])
    .flatMap((g: { paths?: string[] }) => g.paths ?? [])
    .filter((p: unknown) => typeof p === "string" && !p.includes("/"));
  return {
    dir,
    replaced: [
      ...new Set([...weights, ...DESCRIBES_GENERATOR]),
    ].filter((f) => names.includes(f)),
  };
}

/**
 * Averages the generators at `paths` ({@linkcode averageGenerators}) and
 * writes the result into `out.dir` as a TF.js layers model, its weights
 * quantized to 8 bits when `quantize` is `"uint8"`: a weights file named
 * after its contents first, then model.json, then the replaced generator's
 * files go. An interruption at any point leaves the old generator or the
 * new one whole. Returns the new metadata and the files written.
 */
export async function saveAveragedGenerator(
  out: AverageOut,
  paths: string[],
  options: AverageOptions & { quantize?: "uint8" } = {},
): Promise<{ metadata: GeneratorMetadata; files: string[] }> {
  const averaged = await averageGenerators(paths, options);
  let weightsFile: string;
  try {
    weightsFile = await saveLayersModel(out.dir, averaged.model, {
      weightsFile: "by-content",
      metadata: { gan: averaged.metadata },
      quantize: options.quantize,
    });
  } finally {
    averaged.model.dispose();
  }
  for (const f of out.replaced) {
    if (f !== weightsFile) await Deno.remove(`${out.dir}/${f}`).catch(() => {});
  }
  // Weights an interrupted average wrote before its model.json, and its
  // temporary files: named by no model.json.
  for (const e of Deno.readDirSync(out.dir)) {
    if (/^weights-[0-9a-f]{16}\.bin$/.test(e.name) && e.name !== weightsFile) {
      await Deno.remove(`${out.dir}/${e.name}`).catch(() => {});
    }
  }
  removeStaleTemporaries(out.dir);
  return { metadata: averaged.metadata, files: ["model.json", weightsFile] };
}
