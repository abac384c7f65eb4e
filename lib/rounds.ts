/**
 * One round of the game on one batch, as the training loop calls it:
 * (1) update D, (2) update G (Algorithm 1), with the epoch's running
 * figures kept on the device. Two implementations: {@linkcode TfjsRounds},
 * tfjs ops on any backend; {@linkcode WgslRounds}, the whole round as
 * hand-written WebGPU programs (`lib/wgsl/step.ts`). Both draw the same
 * numbers from the run's generator in the same order, so they train to
 * the same figures within float rounding, and a run can resume on either.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { probeWebGpu } from "./backends/choice.ts";
import { type Batch, IMAGE_PIXELS } from "./data.ts";
import {
  discriminatorStep,
  type DiscriminatorStepResult,
  type Gan,
  generatorStep,
  simultaneousStep,
} from "./gan.ts";
import { type GanConfig } from "./presets.ts";
import { sampleLatent, withClasses } from "./nets/latent.ts";
import { NoiseWorkers } from "./random/noise_workers.ts";
import type { Rng } from "./random/rng.ts";
import { compareWithTfjs, describeComparison } from "./wgsl/check.ts";
import {
  WgslStep,
  type WgslStepOptions,
  wgslStepSupport,
} from "./wgsl/step.ts";

/** The epoch's figures so far, means over its rounds. */
export interface RoundMeans {
  /** D loss, V, D(x), D(G(z)), accuracy on real, accuracy on generated. */
  d: number[];
  /** G's loss (NaN before G's first step). */
  g: number;
  /** G steps taken. */
  gSteps: number;
}

/** One round of the game per batch, and the epoch's running figures. */
export interface Rounds extends Disposable {
  /** Whether batches must carry their images (else their indices do). */
  readonly needsImages: boolean;
  /** Starts an epoch of `steps` rounds: the figures start from zero. */
  startEpoch(epoch: number, steps: number): void;
  /** (1) Update D on the batch and fresh noise, (2) update G. */
  round(batch: Batch): Promise<void>;
  /** The figures so far (one read-back). */
  means(): Promise<RoundMeans>;
  /** Ends the epoch: the GAN's variables hold the trained state. */
  endEpoch(): Promise<void>;
}

/** The round as tfjs ops: D's steps, then G's (`lib/gan.ts`). */
export class TfjsRounds implements Rounds {
  readonly needsImages = true;
  #gan: Gan;
  #rng: Rng;
  #epoch = 0;
  #rounds = 0;
  #gSteps = 0;
  /** Running sums: D loss, V, D(x), D(G(z)), acc real, acc fake. */
  #dSums: tf.Tensor | null = null;
  #gSum: tf.Tensor | null = null;

  constructor(gan: Gan, rng: Rng) {
    this.#gan = gan;
    this.#rng = rng;
  }

  startEpoch(epoch: number): void {
    this.#free();
    this.#epoch = epoch;
    this.#rounds = this.#gSteps = 0;
    this.#dSums = tf.zeros([6]);
    this.#gSum = tf.zeros([]);
  }

  round(batch: Batch): Promise<void> {
    const gan = this.#gan, config = gan.config, rng = this.#rng;
    const bs = config.batchSize, epoch = this.#epoch;
    // A conditional GAN: D sees each real image with its class, and G is
    // asked for the batch's classes (so its classes follow the data's).
    const classes = config.classes ?? 0;
    const labelled = (x: Float32Array, dim: number) =>
      tf.tensor2d(
        classes ? withClasses(x, batch.labels, dim, classes) : x,
        [bs, dim + classes],
      );
    const real = labelled(batch.images, IMAGE_PIXELS);
    const z = labelled(sampleLatent(config, bs, rng), config.latentDim);
    let d: DiscriminatorStepResult;
    if (config.update === "simultaneous") {
      // pylearn2's round: both players' gradients from one pass.
      const { gLoss, ...figures } = simultaneousStep(
        gan,
        real,
        z,
        rng.nextUint32(),
        epoch,
      );
      d = figures;
      this.#addGLoss(gLoss);
    } else {
      // (1) Update D: ascend log D(x) + log(1 - D(G(z))).
      d = discriminatorStep(gan, real, z, rng.nextUint32(), epoch);
    }
    const next = tf.tidy(() =>
      tf.add(
        this.#dSums!,
        tf.stack([d.loss, d.value, d.dReal, d.dFake, d.accReal, d.accFake]),
      )
    );
    tf.dispose([this.#dSums!, real, z, ...Object.values(d)]);
    this.#dSums = next;
    this.#rounds++;
    if (
      config.update !== "simultaneous" && this.#rounds % config.k === 0
    ) {
      // (2) Update G on fresh noise, after every k-th D step.
      for (let g = 0; g < config.gSteps; g++) {
        const zg = labelled(sampleLatent(config, bs, rng), config.latentDim);
        this.#addGLoss(generatorStep(gan, zg, rng.nextUint32(), epoch));
        zg.dispose();
      }
    }
    return Promise.resolve();
  }

  #addGLoss(loss: tf.Scalar) {
    const next = tf.add(this.#gSum!, loss);
    tf.dispose([this.#gSum!, loss]);
    this.#gSum = next;
    this.#gSteps++;
  }

  async means(): Promise<RoundMeans> {
    const [d, g] = await Promise.all([this.#dSums!.data(), this.#gSum!.data()]);
    const n = Math.max(this.#rounds, 1);
    return {
      d: Array.from(d, (v) => v / n),
      g: this.#gSteps ? g[0] / this.#gSteps : NaN,
      gSteps: this.#gSteps,
    };
  }

  endEpoch(): Promise<void> {
    this.#free();
    return Promise.resolve();
  }

  #free() {
    if (this.#dSums) tf.dispose([this.#dSums, this.#gSum!]);
    this.#dSums = this.#gSum = null;
  }

  [Symbol.dispose](): void {
    this.#free();
  }
}

/**
 * The round as the WGSL step's programs. Its inputs are drawn one round
 * ahead (normal noise computed meanwhile by worker threads), in the tfjs
 * round's order; the weights stay on the GPU during an epoch and are
 * written back into the GAN's variables when it ends or stops.
 */
export class WgslRounds implements Rounds {
  readonly needsImages: boolean;
  #wgsl: WgslStep;
  #gan: Gan;
  #rng: Rng;
  #noise: NoiseWorkers | null;
  #epoch = 0;
  #steps = 0;
  #rounds = 0;
  #ahead: ReturnType<WgslRounds["draw"]> | null = null;

  /** Takes ownership of `wgsl` (disposed with this). */
  constructor(wgsl: WgslStep, gan: Gan, rng: Rng) {
    this.#wgsl = wgsl;
    this.#gan = gan;
    this.#rng = rng;
    this.needsImages = !wgsl.gathers;
    // The GPU's part of a round is a few milliseconds, so the CPU's normal
    // noise would bound it: worker threads compute it (the same numbers).
    this.#noise = gan.config.latent === "normal" ? NoiseWorkers.create() : null;
  }

  /** The WGSL step this runs. */
  get step(): WgslStep {
    return this.#wgsl;
  }

  /** One round's draws from the run's generator, in the tfjs round's order. */
  draw() {
    const config = this.#gan.config, rng = this.#rng;
    const latent = () =>
      latentLater(config, config.batchSize, rng, this.#noise);
    const zD = latent();
    const dSeed = rng.nextUint32();
    if (config.update === "simultaneous") return { zD, dSeed };
    const zG = latent();
    return { zD, dSeed, zG, gSeed: rng.nextUint32() };
  }

  startEpoch(epoch: number, steps: number): void {
    this.#wgsl.resetFigures();
    this.#epoch = epoch;
    this.#steps = steps;
    this.#rounds = 0;
    this.#ahead = steps > 0 ? this.draw() : null;
  }

  async round(batch: Batch): Promise<void> {
    // This round's draws were made a round ago; the next round's are made
    // (and its noise computed) while this one runs.
    const { zD, dSeed, zG, gSeed } = this.#ahead!;
    this.#ahead = batch.index + 1 < this.#steps ? this.draw() : null;
    this.#wgsl.step({
      ...(this.#wgsl.gathers
        ? { rows: batch.indices }
        : { real: batch.images }),
      zD: await zD,
      zG: await zG,
      dSeed,
      gSeed,
      epoch: this.#epoch,
    });
    this.#rounds++;
  }

  async means(): Promise<RoundMeans> {
    const sums = await this.#wgsl.figures();
    const n = Math.max(this.#rounds, 1);
    return {
      d: Array.from(sums.subarray(0, 6), (v) => v / n),
      g: this.#rounds ? sums[6] / this.#rounds : NaN,
      gSteps: this.#rounds,
    };
  }

  async endEpoch(): Promise<void> {
    await this.#wgsl.exportTo(this.#gan);
  }

  [Symbol.dispose](): void {
    this.#noise?.[Symbol.dispose]();
    this.#wgsl.dispose();
  }
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
 * the tfjs step (`lib/wgsl/check.ts`): `gpu`, on a GPU adapter but not on a
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
