/**
 * Checkpoints of a training run in `runs/<name>/`, and the generator in the
 * TF.js layers format.
 *
 * A checkpoint is `checkpoint.json` (configuration, training state, and a
 * manifest of every tensor) plus one binary file of float32 values named
 * after the epoch. The binary file is written first and `checkpoint.json`
 * last, each atomically (temporary file, then rename): the JSON file is the
 * commit point, so a run killed at any moment leaves the previous complete
 * checkpoint in place and loses at most the epoch in progress.
 *
 * `checkpoint.json` records the SHA-256 of the binary file, and reading a
 * checkpoint verifies it and that every value is finite, so a damaged file
 * stops a resume with its name instead of training on wrong numbers.
 * (Checkpoints written before checksums were recorded still load; the
 * reader is told they carry none.)
 *
 * The generator is also written as `generator/model.json` + weights, a
 * standard TF.js layers model that `tf.loadLayersModel` reads in a browser;
 * `models/mnist/` and `models/fashion/` hold such folders.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { exists, sha256Hex, writeFileAtomic } from "../io/files.ts";
import { loadLayersModelFile, saveLayersModel } from "../io/layers_model.ts";
import {
  type Gan,
  ganVariables,
  generatorModel,
  imagesFrom,
  type Network,
  outputGenerator,
} from "../gan.ts";
import type { GanConfig } from "../presets.ts";
import { logicalName } from "../nets/optim.ts";

const FORMAT = "gan-checkpoint";
const VERSION = 1;

/** A checkpoint that cannot be read; the message names the file and the problem. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

interface TensorEntry {
  name: string;
  shape: number[];
  /** Offset in float32 values. */
  offset: number;
}

/** The contents of `checkpoint.json`. */
export interface CheckpointFile<S> {
  format: typeof FORMAT;
  version: number;
  config: GanConfig;
  /** Training state: epoch, RNG state, history... (owned by the caller). */
  state: S;
  optimizerSteps: { G: number; D: number };
  weights: string;
  /** SHA-256 of the `weights` file (absent in older checkpoints). */
  sha256?: string;
  tensors: TensorEntry[];
}

import type { GeneratorMetadata } from "./generator_metadata.ts";

export type { GeneratorMetadata };

/**
 * A generator's training length in words: "15 epochs", or for an averaged
 * one "the mean of epochs 10-15" (a list where they are not consecutive).
 */
export function epochsText(m: GeneratorMetadata): string {
  const e = m.averagedEpochs;
  const ema = m.ema ? `, moving average ${m.ema.decay}` : "";
  if (!e || e.length === 0) return `${m.epochs} epochs${ema}`;
  return `the mean of epochs ${epochRanges(e)}${ema}`;
}

/** [1, 2, 3, 5] -> "1-3, 5" (runs of three or more as ranges): a long list in one short line. */
export function epochRanges(epochs: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < epochs.length;) {
    let j = i;
    while (j + 1 < epochs.length && epochs[j + 1] === epochs[j] + 1) j++;
    parts.push(
      j - i >= 2
        ? `${epochs[i]}-${epochs[j]}`
        : epochs.slice(i, j + 1).join(", "),
    );
    i = j + 1;
  }
  return parts.join(", ");
}

/**
 * Saves the GAN and `state` into `dir` (created if needed): the checkpoint,
 * and {@linkcode outputGenerator} in `generator/` (with a moving average of
 * G's weights, G as trained in `generator-raw/` too). `tag` names the
 * binary files (for example the epoch, zero-padded).
 */
export async function saveCheckpoint<S>(
  dir: string,
  gan: Gan,
  state: S,
  options: { tag: string; generator: GeneratorMetadata },
): Promise<void> {
  await Deno.mkdir(`${dir}/generator`, { recursive: true });
  const vars = ganVariables(gan);
  const values = await Promise.all(vars.map((v) => v.data<"float32">()));
  const total = values.reduce((n, a) => n + a.length, 0);
  const flat = new Float32Array(total);
  const tensors: TensorEntry[] = [];
  let offset = 0;
  vars.forEach((v, i) => {
    flat.set(values[i], offset);
    tensors.push({ name: logicalName(v), shape: v.shape, offset });
    offset += values[i].length;
  });
  const weights = `checkpoint-${options.tag}.bin`;
  const bytes = new Uint8Array(flat.buffer);
  await writeFileAtomic(`${dir}/${weights}`, bytes);
  await saveGenerator(`${dir}/generator`, gan, options.generator, options.tag);
  if (gan.generatorEma) {
    const { ema: _, ...raw } = options.generator;
    await saveGenerator(
      `${dir}/generator-raw`,
      gan,
      raw,
      options.tag,
      gan.generator,
    );
  }
  const file: CheckpointFile<S> = {
    format: FORMAT,
    version: VERSION,
    config: gan.config,
    state,
    optimizerSteps: { G: gan.optimizerG.step, D: gan.optimizerD.step },
    weights,
    sha256: await sha256Hex(bytes),
    tensors,
  };
  await writeFileAtomic(
    `${dir}/checkpoint.json`,
    JSON.stringify(file, null, 1),
  );
  for (const entry of Deno.readDirSync(dir)) {
    if (/^checkpoint-.*\.bin$/.test(entry.name) && entry.name !== weights) {
      await Deno.remove(`${dir}/${entry.name}`);
    }
  }
}

/** True when `dir` holds a checkpoint. */
export function hasCheckpoint(dir: string): boolean {
  return exists(`${dir}/checkpoint.json`);
}

/**
 * Reads `dir/checkpoint.json` alone (configuration and state), without its
 * binary file.
 *
 * @throws {CheckpointError} when it is missing or not a checkpoint.
 */
export async function readCheckpointFile<S>(
  dir: string,
): Promise<CheckpointFile<S>> {
  const path = `${dir}/checkpoint.json`;
  let file: CheckpointFile<S>;
  try {
    file = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new CheckpointError(
      e instanceof Deno.errors.NotFound
        ? `${path} does not exist: no checkpoint in ${dir}`
        : `${path} is not valid JSON (${(e as Error).message})`,
    );
  }
  if (file?.format !== FORMAT || file.version !== VERSION) {
    throw new CheckpointError(
      `${path} is not a version-${VERSION} ${FORMAT} file`,
    );
  }
  return file;
}

/**
 * Reads `dir/checkpoint.json` and checks its binary file (size, checksum,
 * finite values), without touching any model; {@linkcode restoreCheckpoint}
 * then loads the values. `verified` is false for a checkpoint that carries
 * no checksum (written by an older version).
 *
 * @throws {CheckpointError} naming the file and what is wrong with it.
 */
export async function readCheckpoint<S>(
  dir: string,
): Promise<
  { file: CheckpointFile<S>; values: Float32Array; verified: boolean }
> {
  const path = `${dir}/checkpoint.json`;
  const file = await readCheckpointFile<S>(dir);
  const binPath = `${dir}/${file.weights}`;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(binPath);
  } catch {
    throw new CheckpointError(`${binPath}, named by ${path}, is missing`);
  }
  const expected = file.tensors.reduce(
    (n, t) => n + t.shape.reduce((a, b) => a * b, 1),
    0,
  );
  if (bytes.length !== expected * 4) {
    throw new CheckpointError(
      `${binPath} holds ${bytes.length} bytes, ${path} expects ${expected * 4}`,
    );
  }
  if (file.sha256 !== undefined && await sha256Hex(bytes) !== file.sha256) {
    throw new CheckpointError(
      `${binPath} is corrupt (checksum mismatch with ${path}): the file ` +
        "changed after it was written. Restore it from a copy, or start the " +
        "run again in another --out.",
    );
  }
  const values = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
  );
  let bad = 0;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) bad++;
  }
  if (bad > 0) {
    throw new CheckpointError(
      `${binPath} is corrupt: ${bad} of its ${values.length} values are NaN ` +
        "or infinite (a saved checkpoint never holds such values). Restore " +
        "it from a copy, or start the run again in another --out.",
    );
  }
  return { file, values, verified: file.sha256 !== undefined };
}

/** The note to show for a checkpoint or generator that carries no checksum. */
export function noChecksumNote(
  path: string,
  checked = "its size and values were checked",
): string {
  return `note: ${path} carries no checksum (written by an older version), ` +
    `so damage to its binary file cannot be detected; ${checked}`;
}

/** Loads a checkpoint's values into `gan`, which must have the same configuration. */
export function restoreCheckpoint<S>(
  gan: Gan,
  checkpoint: { file: CheckpointFile<S>; values: Float32Array },
): void {
  const { file, values } = checkpoint;
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const find = (name: string) =>
    byName.get(name) ??
      // The first checkpoints of the convolutional presets named batch
      // norm's running variance "moving_var".
      byName.get(name.replace(/moving_variance$/, "moving_var"));
  const vars = ganVariables(gan);
  for (const v of vars) {
    const name = logicalName(v);
    const entry = find(name);
    if (!entry || entry.shape.join("x") !== v.shape.join("x")) {
      throw new CheckpointError(
        `checkpoint does not fit this model: ${name} ${
          entry ? `has shape ${entry.shape.join("x")}` : "is missing"
        }, the model's is ${v.shape.join("x")}. The checkpoint's weights ` +
          `are of another network than its checkpoint.json describes (a ` +
          `file copied from another run, or edited): start a new run in ` +
          `another --out, or restore the run's own checkpoint.json`,
      );
    }
  }
  tf.tidy(() => {
    for (const v of vars) {
      const entry = find(logicalName(v))!;
      v.assign(
        tf.tensor(
          values.subarray(entry.offset, entry.offset + v.size),
          v.shape,
        ),
      );
    }
  });
  gan.optimizerG.step = file.optimizerSteps.G;
  gan.optimizerD.step = file.optimizerSteps.D;
}

/**
 * Writes a generator as a TF.js layers model: `dir/model.json` and
 * `dir/weights-<tag>.bin`, the weights first and the JSON last. The
 * generator is `net`, by default {@linkcode outputGenerator} (the moving
 * average of G's weights when the run keeps one, else G).
 */
export async function saveGenerator(
  dir: string,
  gan: Gan,
  metadata: GeneratorMetadata,
  tag = "final",
  net: Network = outputGenerator(gan),
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const model = generatorModel(net);
  const weightsFile = `weights-${tag}.bin`;
  try {
    await saveLayersModel(dir, model, {
      weightsFile,
      metadata: { gan: metadata },
    });
  } finally {
    model.dispose();
  }
  for (const entry of Deno.readDirSync(dir)) {
    if (/^weights-.*\.bin$/.test(entry.name) && entry.name !== weightsFile) {
      await Deno.remove(`${dir}/${entry.name}`);
    }
  }
}

/** A generator loaded from disk. */
export interface LoadedGenerator {
  model: tf.LayersModel;
  metadata: GeneratorMetadata;
  /** The model.json it came from. */
  path: string;
  /** Whether its weights were checked against a checksum in model.json. */
  verified: boolean;
}

/**
 * Loads a generator saved by {@linkcode saveGenerator}. `path` may be the
 * folder holding model.json, a run folder (its `generator/` is used), or the
 * model.json itself.
 */
export async function loadGenerator(path: string): Promise<LoadedGenerator> {
  let jsonPath = path;
  if (!path.endsWith(".json")) {
    jsonPath = exists(`${path}/model.json`)
      ? `${path}/model.json`
      : `${path}/generator/model.json`;
  }
  if (!exists(jsonPath)) {
    throw new CheckpointError(
      `no generator at ${path}: expected ${path}/model.json or ${path}/generator/model.json ` +
        "(a run folder from `deno task train`, or a models/ folder)",
    );
  }
  let loaded;
  try {
    loaded = await loadLayersModelFile(jsonPath);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  const metadata = loaded.metadata.gan as GeneratorMetadata | undefined;
  if (!metadata) {
    loaded.model.dispose();
    throw new CheckpointError(
      `${jsonPath} is not a generator saved by this project (no gan metadata)`,
    );
  }
  const model = loaded.model;
  return { model, metadata, path: jsonPath, verified: loaded.verified };
}

/**
 * Draws images from a loaded generator, in chunks, with values mapped to
 * [0, 1] whatever G's output activation. `z` holds the latent vectors
 * (n x latentDim).
 */
export function generateImages(
  generator: LoadedGenerator,
  z: Float32Array,
): Promise<Float32Array> {
  return imagesFrom(
    (x) => generator.model.predict(x) as tf.Tensor,
    z,
    generator.metadata,
  );
}
