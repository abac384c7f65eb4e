/**
 * The training loop: Algorithm 1 of the paper over epochs of shuffled
 * mini-batches, with everything a run needs around it: seeded randomness,
 * figures per epoch, sample grids from fixed noise, loss curves, atomic
 * checkpoints, exact resumption, and a stop on divergence.
 *
 * Figures are accumulated on the device and read back only at progress
 * updates and at the end of each epoch, never once per step.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { restoreCheckpoint } from "./run/checkpoint.ts";
import {
  batches,
  batchesPerEpoch,
  classLabels,
  type Dataset,
  head,
  IMAGE_PIXELS,
  type Split,
} from "./data.ts";
import { checkRunFolderPath } from "./io/files.ts";
import { classGridInputs, sampleLatent } from "./nets/latent.ts";
import { createGan, type Gan, generate } from "./gan.ts";
import {
  type GanConfig,
  generatorInputs,
  pixelRange,
  validateConfig,
} from "./presets.ts";
import { Rng } from "./random/rng.ts";
import { lockRunFolder } from "./run/lock.ts";
import { openRun } from "./run/open.ts";
import { startOutputs, writeOutputs } from "./run/outputs.ts";
import { type EpochStats, memorySnapshot } from "./run/record.ts";
import {
  chooseStep,
  type RoundMeans,
  type Rounds,
  type SelfCheck,
  type StepChoice,
  TfjsRounds,
  WgslRounds,
} from "./rounds.ts";
import type { WgslStepOptions } from "./wgsl/step.ts";

/** A progress update within an epoch (running means over the epoch so far). */
export interface Progress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  dLoss: number;
  gLoss: number;
  dReal: number;
  dFake: number;
  imagesPerSecond: number;
  seconds: number;
}

/** Options of {@linkcode train}. */
export interface TrainOptions {
  config: GanConfig;
  dataset: Dataset;
  /** Total epochs (a resumed run continues up to this number). */
  epochs: number;
  /** Seed of everything: weights, noise, dropout, batch order. Default 0. */
  seed?: number;
  /** Run folder for outputs; `null` writes nothing (notebooks, tests). */
  outDir?: string | null;
  /** Continue the checkpoint in `outDir`. Its configuration is used. */
  resume?: boolean;
  /** Train on the first N training images only (quick runs). */
  limit?: number;
  /**
   * Images kept out at the end of the training split for validation (the
   * paper's protocol: train on 50,000, validate on 10,000). Default 10,000
   * (0 for a dataset too small for it, said in the log). A value that
   * leaves less than one batch is refused.
   */
  holdout?: number;
  /** Backend name, for the record. */
  backend?: string;
  /**
   * Which code runs the training step: `tfjs`, its ops (every backend and
   * preset); `wgsl`, the whole step as hand-written WebGPU programs
   * (`lib/wgsl/step.ts`: WebGPU, every preset); `auto` (default), `wgsl`
   * where it can run, else `tfjs`.
   */
  step?: StepChoice;
  /**
   * With `step: "auto"` on WebGPU, whether the WGSL step is first compared
   * with the tfjs step for one step (see {@linkcode SelfCheck}; default
   * `gpu`).
   */
  selfCheck?: SelfCheck;
  /** Options of the WGSL step (the matMul plans; a test's program rewrite). */
  wgsl?: Pick<WgslStepOptions, "matMul" | "transformProgram">;
  /**
   * Also keep each epoch's generator, in `generators/epoch_NNN/` of the run
   * folder, for `deno task average` (default false: only the latest, in
   * `generator/`). Each is the size of `generator/` (27 MB for `sngan-fc`).
   */
  keepGenerators?: boolean;
  /** Latent vectors of the fixed sample grid (default 100: 10 x 10). */
  gridSize?: number;
  /** Progress updates per epoch (default 20). */
  progressUpdates?: number;
  /** Called with running figures during each epoch. */
  onProgress?: (p: Progress) => void;
  /** Called after each epoch (after its checkpoint is written). */
  onEpoch?: (stats: EpochStats, run: RunView) => void | Promise<void>;
  /** Aborting stops at the next step; the epoch in progress is discarded. */
  signal?: AbortSignal;
  /** One-line messages (resume, outputs). Default: stderr. */
  log?: (message: string) => void;
}

/** What callbacks and the result see of a run. */
export interface RunView {
  gan: Gan;
  history: EpochStats[];
  /** G's images for the fixed noise after the latest epoch, in the data's range. */
  grid: Float32Array;
  /**
   * G's inputs for the grid: the fixed latent vectors (in a conditional GAN
   * each followed by its one-hot class: a class grid, one row per class).
   */
  fixedNoise: Float32Array;
}

/** How a run ended. */
export interface TrainResult extends RunView {
  status: "completed" | "diverged" | "interrupted";
  /** Why it stopped, when not completed. */
  message?: string;
  outDir: string | null;
}

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

/**
 * The rounds of the game for `gan`: the WGSL step's where `options.step`
 * and the backend allow it (after its self-check), else tfjs ops.
 */
async function roundsFor(
  gan: Gan,
  rng: Rng,
  split: Split,
  options: TrainOptions,
  epoch: number,
  log: (m: string) => void,
): Promise<Rounds> {
  const chosen = await chooseStep(gan, options.step, {
    ...options.wgsl,
    // The training images stay on the GPU; each batch is gathered there.
    data: { images: split.images, range: pixelRange(gan.config) },
    selfCheck: options.selfCheck,
    epoch,
    log,
  });
  const wgsl = chosen.step;
  if (tf.getBackend() === "webgpu") {
    log(
      wgsl
        ? `training step: WGSL programs, ${wgsl.dispatchesPerStep} dispatches (lib/wgsl/step.ts)${
          wgsl.gathers ? "; the training images on the GPU" : ""
        }`
        : `training step: tfjs ops (${chosen.why})`,
    );
  }
  return wgsl ? new WgslRounds(wgsl, gan, rng) : new TfjsRounds(gan, rng);
}

/** Why training stopped early, for the result's message. */
function stopMessage(
  stop: "interrupted" | "diverged",
  epoch: number,
  outDir: string | null,
  what: string,
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

/** An epoch's record from its figures, time and rounds. */
function epochStats(
  epoch: number,
  m: RoundMeans,
  seconds: number,
  images: number,
): EpochStats {
  return {
    epoch,
    dLoss: m.d[0],
    gLoss: m.g,
    value: m.d[1],
    dReal: m.d[2],
    dFake: m.d[3],
    accReal: m.d[4],
    accFake: m.d[5],
    dAccuracy: (m.d[4] + m.d[5]) / 2,
    seconds,
    imagesPerSecond: images / seconds,
  };
}

const finite = (m: RoundMeans) =>
  m.d.every(Number.isFinite) && (m.gSteps === 0 || Number.isFinite(m.g));

/** Gives the event loop a turn when `last` is more than 200 ms ago. */
async function yieldNow(last: { at: number }): Promise<void> {
  // A round never gives the event loop a turn (on wasm even read-backs
  // resolve at once), so Ctrl-C's handler and timers would wait for the
  // epoch's end.
  if (performance.now() - last.at > 200) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    last.at = performance.now();
  }
}

/**
 * Trains a GAN: Algorithm 1 over epochs of shuffled mini-batches. Writes
 * into `outDir` (unless null) after every epoch: `samples/epoch_NNN.png`,
 * `loss.png`, `progress.png`, `history.json` and the checkpoint with
 * `generator/` in the TF.js layers format.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const log = options.log ?? ((m: string) => console.error(m));
  const outDir = options.outDir ?? null;
  if (outDir !== null) checkRunFolderPath(outDir);
  // One training per run folder: a second one is refused while this one
  // runs (released however train() ends; the OS releases it if the process
  // is killed).
  using _lock = outDir !== null ? lockRunFolder(outDir) : null;
  const run = await openRun(options, outDir, log);
  const { config, seed, history } = run;
  validateConfig(config);
  if (!Number.isInteger(options.epochs) || options.epochs < 1) {
    throw new Error(`epochs must be a positive integer, got ${options.epochs}`);
  }
  const { split, holdout, note } = trainingSplit(options.dataset, {
    holdout: run.holdout,
    limit: run.limit,
    batchSize: config.batchSize,
  });
  if (note) log(`note: ${note}`);
  checkLabels(config, split, options.dataset.name);
  const gan = createGan(config, {
    seed,
    pixelMeans: config.outputBiasFromData ? pixelMeans(split) : undefined,
  });
  if (run.checkpoint) restoreCheckpoint(gan, run.checkpoint);
  const rng = new Rng(seed, 1);
  if (run.rngState) rng.setState(run.rngState);
  using rounds = await roundsFor(gan, rng, split, options, run.epoch, log);

  const range = pixelRange(config);
  const bs = config.batchSize;
  const steps = batchesPerEpoch(split.size, bs);
  const every = Math.max(
    1,
    Math.floor(steps / Math.max(1, options.progressUpdates ?? 20)),
  );
  // The grid of the samples/ pictures: fixed noise, so that the epochs can
  // be compared. A conditional GAN's is a class grid: one row per class,
  // the same noise down each column.
  const gridSize = options.gridSize ?? 100;
  const classes = config.classes ?? 0;
  const gridCols = classes
    ? Math.max(1, Math.round(gridSize / classes))
    : undefined;
  const fixedNoise = gridCols
    ? classGridInputs({ ...config, classes }, gridCols, new Rng(seed, 2))
      .inputs
    : sampleLatent(config, gridSize, new Rng(seed, 2));
  const gridOf = async () => {
    const z = tf.tensor2d(fixedNoise, [
      fixedNoise.length / generatorInputs(config),
      generatorInputs(config),
    ]);
    const images = generate(gan, z);
    const data = await images.data<"float32">();
    tf.dispose([z, images]);
    return data;
  };
  let grid = await gridOf();
  const rowLabels = classes
    ? classLabels(options.dataset.name, classes)
    : undefined;
  const view = (): RunView => ({ gan, history, grid, fixedNoise });
  if (outDir !== null) {
    // A new run's first frame: the untrained G's samples.
    await startOutputs(outDir, run.epoch === 0 ? grid : null, {
      range,
      cols: gridCols,
      rowLabels,
    });
  }

  const last = { at: performance.now() };
  for (let epoch = run.epoch; epoch < options.epochs; epoch++) {
    const started = performance.now();
    rounds.startEpoch(epoch, steps);
    let stop: "interrupted" | "diverged" | null = null;
    let what = "";
    let step = 0;
    const order = { batchSize: bs, seed, epoch, range };
    for (
      const batch of batches(split, { ...order, images: rounds.needsImages })
    ) {
      await yieldNow(last);
      if (options.signal?.aborted) {
        stop = "interrupted";
        break;
      }
      // (1) Update D on the batch and fresh noise, (2) update G.
      await rounds.round(batch);
      step++;
      if (step % every === 0 && step < steps) {
        const m = await rounds.means();
        if (!finite(m)) {
          stop = "diverged";
          what = `diverged at epoch ${epoch + 1}, step ${step}: ` +
            `D loss ${m.d[0]}, G loss ${m.g}`;
          break;
        }
        const seconds = (performance.now() - started) / 1000;
        options.onProgress?.({
          epoch: epoch + 1,
          epochs: options.epochs,
          step,
          steps,
          dLoss: m.d[0],
          gLoss: m.g,
          dReal: m.d[2],
          dFake: m.d[3],
          imagesPerSecond: (step * bs) / seconds,
          seconds,
        });
      }
    }
    const m = await rounds.means();
    await rounds.endEpoch();
    if (!stop && !finite(m)) {
      stop = "diverged";
      what = `diverged in epoch ${epoch + 1}: D loss ${m.d[0]}, G loss ${m.g}`;
    }
    if (stop) {
      const message = stopMessage(stop, epoch, outDir, what);
      return { ...view(), status: stop, message, outDir };
    }
    const seconds = (performance.now() - started) / 1000;
    const stats = epochStats(epoch + 1, m, seconds, step * bs);
    Object.assign(
      stats,
      memorySnapshot(
        rounds instanceof WgslRounds ? rounds.step.gpuBytes : undefined,
      ),
    );
    history.push(stats);
    grid = await gridOf();
    if (outDir !== null) {
      await writeOutputs(outDir, {
        gan,
        grid,
        history,
        epoch: epoch + 1,
        range,
        cols: gridCols,
        rowLabels,
        keepGenerator: options.keepGenerators ?? false,
        state: {
          epoch: epoch + 1,
          seed,
          rng: rng.getState(),
          history,
          dataset: options.dataset.name,
          trainSize: split.size,
          holdout,
          limit: run.limit ?? null,
          backend: options.backend ?? tf.getBackend(),
          epochs: options.epochs,
          run: run.id,
          keepGenerators: options.keepGenerators ?? false,
        },
        title: `${config.preset}${
          classes && config.preset !== "cgan" ? " (conditional)" : ""
        } on ${options.dataset.name}`,
      });
    }
    await options.onEpoch?.(stats, view());
  }
  if (outDir !== null) {
    log(
      `outputs in ${outDir}: samples/, loss.png, progress.png, progress.gif, history.json, generator/`,
    );
  }
  return { ...view(), status: "completed", outDir };
}
