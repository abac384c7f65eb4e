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
import { batchesPerEpoch, type Dataset } from "./splits.ts";
import { createGan, type Gan } from "./gan.ts";
import { checkRunFolderPath } from "./io/files.ts";
import { type GanConfig, realBatchSize } from "./presets.ts";
import { validateConfig } from "./config_check.ts";
import { Rng } from "./random/rng.ts";
import {
  roundsFor,
  type SelfCheck,
  type StepChoice,
  WgslRounds,
} from "./rounds.ts";
import { restoreCheckpoint } from "./run/checkpoint.ts";
import { epochStats, playEpoch, type Progress } from "./epoch.ts";
import { SampleGrid } from "./run/grid.ts";
import { lockRunFolder } from "./run/lock.ts";
import { openRun, type RunStart } from "./run/open.ts";
import { startOutputs, stopMessage, writeOutputs } from "./run/outputs.ts";
import {
  type EpochStats,
  memorySnapshot,
  type TrainState,
} from "./run/record.ts";
import { checkLabels, pixelMeans, trainingSplit } from "./run/split.ts";
import { recomputeBatchNormStats } from "./nets/ema.ts";
import { labelledRows, sampleLatent } from "./nets/latent.ts";
import type { WgslStepOptions } from "./wgsl/step.ts";

export type { Progress };

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
   * With a moving average of G's weights (`config.ema`), these are G as
   * trained, as in `generator-raw/`.
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
  const available = batchesPerEpoch(split.size, realBatchSize(config));
  if (config.stepsPerEpoch !== undefined && config.stepsPerEpoch > available) {
    log(
      `note: ${split.size} training images make ${available} batches, ` +
        `fewer than the preset's ${config.stepsPerEpoch} steps an epoch: ` +
        `each epoch plays ${available}`,
    );
  }
  checkLabels(config, split, options.dataset.name);

  // The players, where the run left them, and the run's random stream.
  const gan = createGan(config, {
    seed,
    pixelMeans: config.outputBiasFromData ? pixelMeans(split) : undefined,
  });
  if (run.checkpoint) restoreCheckpoint(gan, run.checkpoint);
  const rng = new Rng(seed, 1);
  if (run.rngState) rng.setState(run.rngState);
  using rounds = await roundsFor(gan, rng, {
    ...options,
    images: split.images,
    epoch: run.epoch,
    log,
  });
  const grid = new SampleGrid(config, {
    seed,
    size: options.gridSize ?? 100,
    dataset: options.dataset.name,
  });
  let images = await grid.images(gan);
  const view = (): RunView => ({
    gan,
    history,
    grid: images,
    fixedNoise: grid.fixedNoise,
  });
  // A new run's first frame: the untrained G's samples.
  if (outDir !== null) {
    await startOutputs(outDir, run.epoch === 0 ? images : null, grid.layout);
  }

  const last = { at: performance.now() };
  for (let epoch = run.epoch; epoch < options.epochs; epoch++) {
    // For each minibatch: play a round of the game.
    const played = await playEpoch(rounds, split, {
      ...options,
      config,
      seed,
      epoch,
      last,
    });
    if (played.stop) {
      const message = stopMessage(played.stop, epoch, outDir, played.what);
      return { ...view(), status: played.stop, message, outDir };
    }
    const stats: EpochStats = {
      ...epochStats(epoch + 1, played, played.rounds * realBatchSize(config)),
      ...memorySnapshot(
        rounds instanceof WgslRounds ? rounds.step.gpuBytes : undefined,
      ),
    };
    history.push(stats);
    if (gan.generatorEma) averageStatistics(gan, seed, epoch);
    images = await grid.images(gan);
    if (outDir !== null) {
      await writeOutputs(outDir, {
        gan,
        grid: images,
        layout: grid.layout,
        keepGenerator: options.keepGenerators ?? false,
        state: {
          ...runState(options, run, split.size, holdout),
          epoch: epoch + 1,
          rng: rng.getState(),
        },
        title: runTitle(config, options.dataset.name),
      });
    }
    await options.onEpoch?.(stats, view());
  }
  if (outDir !== null) {
    log(
      `outputs in ${outDir}: samples/, loss.png, progress.png, progress.gif, history.json, generator/${
        gan.generatorEma
          ? " (the moving average of G's weights), generator-raw/ (G as trained)"
          : ""
      }`,
    );
  }
  return { ...view(), status: "completed", outDir };
}

/**
 * Batches of fresh noise over which the moving average of G's weights gets
 * batch-norm statistics of its own (100 batches measured as well as more).
 */
const AVERAGE_STATISTICS_BATCHES = 100;

/**
 * Gives the moving average of G's weights the batch-norm statistics of its
 * own activations, on fresh noise from a stream of the run's seed and the
 * epoch (so a resumed run draws the same): G's running statistics, which
 * it copies at each update, describe G's activations, and sampling with
 * them did worse (docs/results.md, "Generator EMA"). `train` calls it
 * before each epoch's outputs; `epoch` counts from 0.
 */
export function averageStatistics(
  gan: Gan,
  seed: number,
  epoch: number,
): void {
  const config = gan.config, n = config.batchSize;
  const classes = config.classes ?? 0;
  const rng = new Rng(seed, epoch, 0xe3a);
  // A conditional G is asked for every class in turn.
  const labels = classes
    ? Uint8Array.from({ length: n }, (_, i) => i % classes)
    : undefined;
  recomputeBatchNormStats(
    gan.generatorEma!,
    () =>
      labelledRows(
        sampleLatent(config, n, rng),
        labels,
        config.latentDim,
        classes,
      ),
    AVERAGE_STATISTICS_BATCHES,
  );
}

/** What a checkpoint records of the run besides its epoch and generator state. */
function runState(
  options: TrainOptions,
  run: RunStart,
  trainSize: number,
  holdout: number,
): Omit<TrainState, "epoch" | "rng"> {
  return {
    seed: run.seed,
    history: run.history,
    dataset: options.dataset.name,
    trainSize,
    holdout,
    limit: run.limit ?? null,
    backend: options.backend ?? tf.getBackend(),
    epochs: options.epochs,
    run: run.id,
    keepGenerators: options.keepGenerators ?? false,
  };
}

/** The loss curves' title: "sngan on mnist", "dcgan (conditional) on fashion". */
function runTitle(config: GanConfig, dataset: string): string {
  const conditional = config.classes && config.preset !== "cgan";
  return `${config.preset}${conditional ? " (conditional)" : ""} on ${dataset}`;
}
