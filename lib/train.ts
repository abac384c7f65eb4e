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
import {
  hasCheckpoint,
  noChecksumNote,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import {
  batches,
  batchesPerEpoch,
  type Dataset,
  head,
  IMAGE_PIXELS,
  type Split,
} from "./data.ts";
import {
  checkRunFolderPath,
  exists,
  removeStaleTemporaries,
  writeFileAtomic,
} from "./files.ts";
import { lockRunFolder } from "./run_lock.ts";
import {
  createGan,
  discriminatorStep,
  type DiscriminatorStepResult,
  type Gan,
  type GanConfig,
  generate,
  generatorStep,
  pixelRange,
  sampleLatent,
  simultaneousStep,
  validateConfig,
} from "./gan.ts";
import { Rng, type RngState } from "./rng.ts";
import { imageGrid, lossCurvesPng, progressStrip } from "./viz.ts";
import { NoiseWorkers } from "./noise_workers.ts";
import { probeWebGpu } from "./backend.ts";
import { compareWithTfjs, describeComparison } from "./wgsl_check.ts";
import {
  WgslStep,
  type WgslStepOptions,
  wgslStepSupport,
} from "./wgsl_step.ts";

/**
 * Figures of one epoch, means over its steps, and the memory at its end
 * ({@linkcode MemorySnapshot}; absent in histories written before these
 * were recorded).
 */
export interface EpochStats extends Partial<MemorySnapshot> {
  /** Epoch number, from 1. */
  epoch: number;
  /** D's loss, BCE(D(x), 1) + BCE(D(G(z)), 0) (= -V when labels are not smoothed). */
  dLoss: number;
  /** G's loss (non-saturating: -log D(G(z)); saturating: log(1 - D(G(z)))). */
  gLoss: number;
  /** V(D, G) (eq. 1); -log 4 = -1.386 at the game's equilibrium. */
  value: number;
  /** Mean D(x) on real images. */
  dReal: number;
  /** Mean D(G(z)) on generated images (during D's steps). */
  dFake: number;
  /** D's accuracy on real and generated images together (1/2 at equilibrium). */
  dAccuracy: number;
  accReal: number;
  accFake: number;
  seconds: number;
  imagesPerSecond: number;
}

/** Memory figures of the process now (see {@linkcode EpochStats}). */
export interface MemorySnapshot {
  tensors: number;
  tensorBytes: number;
  gpuBytes: number | null;
  rssBytes: number;
  peakRssBytes: number | null;
}

/**
 * Live tensors and their bytes, bytes in GPU buffers (WebGPU; null
 * elsewhere), and the process's resident set size and its peak so far
 * (Linux: VmHWM; null where the OS does not say).
 */
export function memorySnapshot(
  /** GPU bytes held outside tfjs (the WGSL step's buffers). */
  otherGpuBytes = 0,
): MemorySnapshot {
  const memory = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
  // The current RSS first, the peak after it, so that peak >= current.
  const rssBytes = Deno.memoryUsage().rss;
  let peakRssBytes: number | null = null;
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = status.match(/^VmHWM:\s+(\d+) kB/m);
    if (kb) peakRssBytes = Number(kb[1]) * 1024;
  } catch {
    // not Linux
  }
  return {
    tensors: memory.numTensors,
    tensorBytes: memory.numBytes,
    gpuBytes: memory.numBytesInGPU === undefined
      ? null
      : memory.numBytesInGPU + otherGpuBytes,
    rssBytes,
    peakRssBytes,
  };
}

/** What a checkpoint stores besides the tensors. */
export interface TrainState {
  /** Completed epochs. */
  epoch: number;
  seed: number;
  rng: RngState;
  history: EpochStats[];
  dataset: string;
  trainSize: number;
  holdout: number;
  limit: number | null;
  backend: string;
  /**
   * The total epochs the run was asked for, which `--resume` continues to
   * when not told otherwise (absent in checkpoints written before it was
   * recorded).
   */
  epochs?: number;
}

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
   * (`lib/wgsl_step.ts`: WebGPU, every preset); `auto` (default), `wgsl`
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
  /** The fixed latent vectors of the grid. */
  fixedNoise: Float32Array;
}

/** How a run ended. */
export interface TrainResult extends RunView {
  status: "completed" | "diverged" | "interrupted";
  /** Why it stopped, when not completed. */
  message?: string;
  outDir: string | null;
}

/** Values of {@linkcode TrainOptions.step}. */
export type StepChoice = "auto" | "tfjs" | "wgsl";

/** The step choices, for flags. */
export const STEP_CHOICES: readonly StepChoice[] = ["auto", "tfjs", "wgsl"];

/**
 * Why the WGSL step cannot train `config` on the running backend, or null
 * when it can.
 */
export function wgslStepUnavailable(config: GanConfig): string | null {
  if (tf.getBackend() !== "webgpu") {
    return `it runs on WebGPU only, and the backend is ${tf.getBackend()}`;
  }
  return wgslStepSupport(config);
}

/**
 * When `--step auto` picks the WGSL step, whether it is first compared with
 * the tfjs step (`lib/wgsl_check.ts`): `gpu`, on a GPU adapter but not on a
 * software one (the default; the test suite covers the software adapter);
 * `always`; `never`. `--step wgsl` is never checked.
 */
export type SelfCheck = "gpu" | "always" | "never";

/** Options of {@linkcode wgslStepFor} and {@linkcode chooseStep}. */
export interface StepOptions extends WgslStepOptions {
  /** Default `gpu`. */
  selfCheck?: SelfCheck;
  /** The epoch training continues from (for the self-check's schedules). */
  epoch?: number;
  /** Where the self-check reports. Default: stderr. */
  log?: (message: string) => void;
}

/**
 * The WGSL step for `gan` when `choice` and the backend allow it and (for
 * `auto`) it passes the self-check, else null (the tfjs step) and why.
 *
 * @throws {Error} when `wgsl` is asked for and cannot run.
 */
export async function chooseStep(
  gan: Gan,
  choice: StepChoice = "auto",
  options: StepOptions = {},
): Promise<{ step: WgslStep | null; why: string }> {
  if (!STEP_CHOICES.includes(choice)) {
    throw new Error(
      `unknown step "${choice}"; expected one of ${STEP_CHOICES.join(", ")}`,
    );
  }
  if (choice === "tfjs") return { step: null, why: "as asked" };
  const why = wgslStepUnavailable(gan.config);
  if (why && choice === "wgsl") {
    throw new Error(`the WGSL step cannot run: ${why}; use --step tfjs`);
  }
  if (why) return { step: null, why };
  const { selfCheck = "gpu", epoch = 0, log: logTo, ...wgslOptions } = options;
  const log = logTo ?? ((m: string) => console.error(m));
  if (choice === "auto" && selfCheck !== "never") {
    const probe = await probeWebGpu();
    const adapter = probe.ok ? probe.description : "the WebGPU adapter";
    if (selfCheck === "always" || (probe.ok && !probe.fallback)) {
      // One step of each from the same state, on throwaway copies.
      const { data: _data, ...programs } = wgslOptions;
      const c = await compareWithTfjs(gan, { wgsl: programs, epoch });
      if (!c.ok) {
        log(
          `self-check: on ${adapter} the WGSL step ${describeComparison(c)}; ` +
            "training with the tfjs step instead (--step wgsl skips this " +
            "check; please report it with bench/gpu_check.sh's output)",
        );
        return {
          step: null,
          why: `the WGSL step failed its self-check on ${adapter}`,
        };
      }
      log(`self-check: on ${adapter} the WGSL step ${describeComparison(c)}`);
    }
  }
  return { step: await WgslStep.create(gan, wgslOptions), why: "" };
}

/**
 * The WGSL step for `gan` when `choice` and the backend allow it, else null
 * (the tfjs step); see {@linkcode chooseStep}.
 *
 * @throws {Error} when `wgsl` is asked for and cannot run.
 */
export async function wgslStepFor(
  gan: Gan,
  choice: StepChoice = "auto",
  options: StepOptions = {},
): Promise<WgslStep | null> {
  return (await chooseStep(gan, choice, options)).step;
}

/**
 * `n` latent vectors of `config`'s noise, drawn from `rng` now (as
 * `sampleLatent` would draw them), normal noise computed by `noise`'s
 * worker threads when given. Drawn ahead of its step, it may be dropped
 * (training stopped, a benchmark's last one): that is not an error.
 */
export function latentLater(
  config: GanConfig,
  n: number,
  rng: Rng,
  noise: NoiseWorkers | null,
): Promise<Float32Array> {
  if (!noise || config.latent !== "normal") {
    return Promise.resolve(sampleLatent(config, n, rng));
  }
  const z = noise.normals(rng, n * config.latentDim);
  z.catch(() => {});
  return z;
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

/** Mean of each pixel over a split, in [0, 1]. */
export function pixelMeans(split: Split): Float32Array {
  const sums = new Float64Array(IMAGE_PIXELS);
  for (let i = 0; i < split.size; i++) {
    const o = i * IMAGE_PIXELS;
    for (let p = 0; p < IMAGE_PIXELS; p++) sums[p] += split.images[o + p];
  }
  return Float32Array.from(sums, (s) => s / split.size / 255);
}

const pad = (n: number) => String(n).padStart(3, "0");

/**
 * Trains a GAN. Writes into `outDir` (unless null) after every epoch:
 * `samples/epoch_NNN.png`, `loss.png`, `progress.png`, `history.json` and
 * the checkpoint with `generator/` in the TF.js layers format.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const log = options.log ?? ((m: string) => console.error(m));
  const outDir = options.outDir ?? null;
  let config = options.config;
  let seed = options.seed ?? 0;
  let history: EpochStats[] = [];
  let startEpoch = 0;
  let rngState: RngState | null = null;
  let checkpoint:
    | Awaited<ReturnType<typeof readCheckpoint<TrainState>>>
    | null = null;

  if (outDir !== null) checkRunFolderPath(outDir);
  // One training per run folder: a second one is refused while this one
  // runs (released however train() ends; the kernel releases it if the
  // process is killed).
  using _lock = outDir !== null ? lockRunFolder(outDir) : null;
  if (outDir !== null) {
    // Files a killed run was writing (`NAME.tmp-PID`) are never completed.
    const stale = removeStaleTemporaries(outDir, ["samples", "generator"]);
    if (stale.length > 0) {
      log(
        `removed ${stale.length} unfinished file(s) left by an interrupted ` +
          `run: ${stale.join(", ")}`,
      );
    }
  }
  if (outDir !== null && hasCheckpoint(outDir)) {
    if (!options.resume) {
      throw new Error(
        `${outDir} already holds a checkpoint; pass --resume to continue it, ` +
          "or choose another --out",
      );
    }
    checkpoint = await readCheckpoint<TrainState>(outDir);
    if (!checkpoint.verified) {
      log(noChecksumNote(`${outDir}/checkpoint.json`));
    }
    const s = checkpoint.file.state;
    config = checkpoint.file.config;
    seed = s.seed;
    history = s.history;
    startEpoch = s.epoch;
    rngState = s.rng;
    if (s.dataset !== options.dataset.name) {
      throw new Error(
        `${outDir} was trained on ${s.dataset}, not ${options.dataset.name}`,
      );
    }
    options = { ...options, limit: s.limit ?? undefined, holdout: s.holdout };
    if (options.epochs < startEpoch) {
      throw new Error(
        `${outDir} has already trained ${startEpoch} epochs, more than the ` +
          `${options.epochs} asked for; pass --epochs N with N > ${startEpoch} ` +
          "to train it further",
      );
    }
    log(
      options.epochs === startEpoch
        ? `${outDir} has already trained all ${startEpoch} epochs asked for; ` +
          `nothing to do (pass --epochs N with N > ${startEpoch} to train further)`
        : `resuming ${outDir} after epoch ${startEpoch} of ${options.epochs}: ` +
          `preset ${config.preset}, batch ${config.batchSize}, seed ${seed} ` +
          "(the checkpoint's configuration)",
    );
  } else if (options.resume) {
    throw new Error(
      `nothing to resume: ${outDir ?? "(no --out)"} holds no checkpoint.json`,
    );
  }
  validateConfig(config);
  if (!Number.isInteger(options.epochs) || options.epochs < 1) {
    throw new Error(`epochs must be a positive integer, got ${options.epochs}`);
  }

  const { split, holdout, note } = trainingSplit(options.dataset, {
    holdout: options.holdout,
    limit: options.limit,
    batchSize: config.batchSize,
  });
  if (note) log(`note: ${note}`);
  const gan = createGan(config, {
    seed,
    pixelMeans: config.outputBiasFromData ? pixelMeans(split) : undefined,
  });
  if (checkpoint) restoreCheckpoint(gan, checkpoint);
  // The WGSL step holds the weights on the GPU during an epoch and writes
  // them back into the variables when the epoch ends or stops, before
  // anything reads them. Its buffers are freed however train() ends.
  // It keeps the training images on the GPU and gathers each batch there.
  const chosen = await chooseStep(gan, options.step, {
    ...options.wgsl,
    data: { images: split.images, range: pixelRange(config) },
    selfCheck: options.selfCheck,
    epoch: startEpoch,
    log,
  });
  using wgsl = chosen.step;
  if (tf.getBackend() === "webgpu") {
    log(
      wgsl
        ? `training step: WGSL programs, ${wgsl.dispatchesPerStep} dispatches (lib/wgsl_step.ts)${
          wgsl.gathers ? "; the training images on the GPU" : ""
        }`
        : `training step: tfjs ops (${chosen.why})`,
    );
  }
  const rng = new Rng(seed, 1);
  if (rngState) rng.setState(rngState);
  // With the WGSL step the GPU's part of a step is a few milliseconds, so
  // the CPU's normal noise would bound it: worker threads compute it, one
  // step ahead (lib/noise_workers.ts; the same numbers).
  using noise = wgsl && config.latent === "normal"
    ? NoiseWorkers.create()
    : null;
  /** One WGSL step's draws from rng, in the tfjs step's order. */
  const drawStep = () => {
    const latent = () => latentLater(config, bs, rng, noise);
    const zD = latent();
    const dSeed = rng.nextUint32();
    if (config.update === "simultaneous") return { zD, dSeed };
    const zG = latent();
    return { zD, dSeed, zG, gSeed: rng.nextUint32() };
  };
  const gridSize = options.gridSize ?? 100;
  const fixedNoise = sampleLatent(config, gridSize, new Rng(seed, 2));
  const range = pixelRange(config);
  const bs = config.batchSize;
  const steps = batchesPerEpoch(split.size, bs);
  const updates = Math.max(1, options.progressUpdates ?? 20);
  const every = Math.max(1, Math.floor(steps / updates));

  const gridOf = async () => {
    const z = tf.tensor2d(fixedNoise, [gridSize, config.latentDim]);
    const images = generate(gan, z);
    const data = await images.data<"float32">();
    tf.dispose([z, images]);
    return data;
  };
  let grid = await gridOf();
  const view = (): RunView => ({ gan, history, grid, fixedNoise });

  if (outDir !== null) {
    await Deno.mkdir(`${outDir}/samples`, { recursive: true });
    if (startEpoch === 0) {
      await writeFileAtomic(
        `${outDir}/samples/epoch_000.png`,
        imageGrid(grid, { encoding: range }),
      );
    }
  }

  for (let epoch = startEpoch; epoch < options.epochs; epoch++) {
    const started = performance.now();
    // Running sums on the device: D loss, V, D(x), D(G(z)), acc real, acc fake.
    // (The WGSL step keeps sums of its own on the GPU.)
    let dSums: tf.Tensor = tf.zeros([6]);
    let gSum: tf.Tensor = tf.zeros([]);
    wgsl?.resetFigures();
    let gCount = 0;
    /** Adds one G step's loss to the epoch's sum and frees it. */
    const addGLoss = (loss: tf.Scalar) => {
      const next = tf.add(gSum, loss);
      tf.dispose([gSum, loss]);
      gSum = next;
      gCount++;
    };
    const read = async (n: number) => {
      const sums = wgsl && await wgsl.figures();
      const [d, g] = sums
        ? [sums.subarray(0, 6), sums.subarray(6)]
        : await Promise.all([dSums.data(), gSum.data()]);
      return {
        d: Array.from(d, (v) => v / n),
        g: gCount ? g[0] / gCount : NaN,
      };
    };
    const finite = (x: { d: number[]; g: number }) =>
      x.d.every(Number.isFinite) && (gCount === 0 || Number.isFinite(x.g));
    let stop: TrainResult["status"] | null = null;
    let message = "";
    let step = 0;
    let lastYield = performance.now();
    let ahead = wgsl && steps > 0 ? drawStep() : null;
    const images = !wgsl?.gathers;
    for (
      const batch of batches(split, {
        batchSize: bs,
        seed,
        epoch,
        range,
        images,
      })
    ) {
      // The steps never give the event loop a turn (on wasm even read-backs
      // resolve at once), so Ctrl-C's handler and timers would wait for the
      // epoch's end: yield a few times a second.
      if (performance.now() - lastYield > 200) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYield = performance.now();
      }
      if (options.signal?.aborted) {
        stop = "interrupted";
        message = `interrupted during epoch ${epoch + 1}; ` + (
          outDir === null
            ? "nothing was saved (no run folder)"
            : epoch > 0
            ? `the last checkpoint (epoch ${epoch}) is intact`
            : "no epoch was completed, so there is no checkpoint to resume"
        );
        break;
      }
      if (wgsl) {
        // The same draws from rng, in the same order, as the tfjs step's;
        // the next step's are drawn (and its noise computed) meanwhile.
        const { zD, dSeed, zG, gSeed } = ahead!;
        ahead = batch.index + 1 < steps ? drawStep() : null;
        wgsl.step({
          ...(wgsl.gathers ? { rows: batch.indices } : { real: batch.images }),
          zD: await zD,
          zG: await zG,
          dSeed,
          gSeed,
          epoch,
        });
        gCount++;
      } else {
        const real = tf.tensor2d(batch.images, [bs, IMAGE_PIXELS]);
        const z = tf.tensor2d(sampleLatent(config, bs, rng), [
          bs,
          config.latentDim,
        ]);
        let d: DiscriminatorStepResult;
        if (config.update === "simultaneous") {
          const { gLoss, ...figures } = simultaneousStep(
            gan,
            real,
            z,
            rng.nextUint32(),
            epoch,
          );
          d = figures;
          addGLoss(gLoss);
        } else {
          d = discriminatorStep(gan, real, z, rng.nextUint32(), epoch);
        }
        const nextD = tf.tidy(() =>
          tf.add(
            dSums,
            tf.stack([d.loss, d.value, d.dReal, d.dFake, d.accReal, d.accFake]),
          )
        );
        tf.dispose([dSums, real, z, ...Object.values(d)]);
        dSums = nextD;
        if (config.update !== "simultaneous" && (step + 1) % config.k === 0) {
          for (let g = 0; g < config.gSteps; g++) {
            const zg = tf.tensor2d(sampleLatent(config, bs, rng), [
              bs,
              config.latentDim,
            ]);
            addGLoss(generatorStep(gan, zg, rng.nextUint32(), epoch));
            zg.dispose();
          }
        }
      }
      step++;
      if (step % every === 0 && step < steps) {
        const m = await read(step);
        if (!finite(m)) {
          stop = "diverged";
          message = `diverged at epoch ${epoch + 1}, step ${step}: ` +
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
    const m = await read(Math.max(step, 1));
    tf.dispose([dSums, gSum]);
    await wgsl?.exportTo(gan);
    if (!stop && !finite(m)) {
      stop = "diverged";
      message = `diverged in epoch ${epoch + 1}: D loss ${
        m.d[0]
      }, G loss ${m.g}`;
    }
    if (stop) {
      if (stop === "diverged" && outDir !== null) {
        message += epoch > 0
          ? `; the last good checkpoint (epoch ${epoch}) is kept in ${outDir}`
          : "; no checkpoint was written (it diverged in the first epoch). " +
            "Lower --lr, or check the preset's settings";
      }
      return { ...view(), status: stop, message, outDir };
    }
    const seconds = (performance.now() - started) / 1000;
    const stats: EpochStats = {
      epoch: epoch + 1,
      dLoss: m.d[0],
      gLoss: m.g,
      value: m.d[1],
      dReal: m.d[2],
      dFake: m.d[3],
      accReal: m.d[4],
      accFake: m.d[5],
      dAccuracy: (m.d[4] + m.d[5]) / 2,
      seconds,
      imagesPerSecond: (step * bs) / seconds,
    };
    Object.assign(stats, memorySnapshot(wgsl?.gpuBytes));
    history.push(stats);
    grid = await gridOf();
    if (outDir !== null) {
      await writeOutputs(outDir, {
        gan,
        grid,
        history,
        epoch: epoch + 1,
        range,
        state: {
          epoch: epoch + 1,
          seed,
          rng: rng.getState(),
          history,
          dataset: options.dataset.name,
          trainSize: split.size,
          holdout,
          limit: options.limit ?? null,
          backend: options.backend ?? tf.getBackend(),
          epochs: options.epochs,
        },
        title: `${config.preset} on ${options.dataset.name}`,
      });
    }
    await options.onEpoch?.(stats, view());
  }
  if (outDir !== null) {
    log(
      `outputs in ${outDir}: samples/, loss.png, progress.png, history.json, generator/`,
    );
  }
  return { ...view(), status: "completed", outDir };
}

async function writeOutputs(
  outDir: string,
  o: {
    gan: Gan;
    grid: Float32Array;
    history: EpochStats[];
    epoch: number;
    range: "[-1,1]" | "[0,1]";
    state: TrainState;
    title: string;
  },
): Promise<void> {
  const sample = `${outDir}/samples/epoch_${pad(o.epoch)}.png`;
  await writeFileAtomic(sample, imageGrid(o.grid, { encoding: o.range }));
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
  const rows = 10;
  const picked = epochs.length <= rows ? epochs : Array.from(
    { length: rows },
    (_, i) => epochs[Math.round((i * (epochs.length - 1)) / (rows - 1))],
  );
  const files = picked
    .map((e) => ({
      label: `epoch ${e}`,
      path: `${outDir}/samples/epoch_${pad(e)}.png`,
    }))
    .filter((f) => exists(f.path));
  await writeFileAtomic(`${outDir}/progress.png`, await progressStrip(files));
  const g = o.gan.config;
  await saveCheckpoint(outDir, o.gan, o.state, {
    tag: pad(o.epoch),
    generator: {
      latentDim: g.latentDim,
      latent: g.latent,
      output: g.output,
      preset: g.preset,
      dataset: o.state.dataset,
      epochs: o.epoch,
    },
  });
}
