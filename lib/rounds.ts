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
import { type Batch, IMAGE_PIXELS } from "./splits.ts";
import { type Gan, playRound, type Round } from "./gan.ts";
import { type GanConfig, pixelRange, realBatchSize } from "./presets.ts";
import { labelledRows, sampleLatent } from "./nets/latent.ts";
import { NoiseWorkers } from "./random/noise_workers.ts";
import type { Rng } from "./random/rng.ts";
import { compareWithTfjs, describeComparison } from "./wgsl/check.ts";
import {
  createTrainingStep,
  type TrainingStep,
  type WgslStepOptions,
  wgslStepSupport,
} from "./wgsl/step.ts";
import { LayerStep } from "./wgsl/layer_step.ts";

/** The epoch's figures so far, means over its rounds. */
export interface RoundMeans {
  /** D's loss. */
  dLoss: number;
  /** V(D, G) (eq. 1). */
  value: number;
  /** D(x): mean over real images. */
  dReal: number;
  /** D(G(z)): mean over generated images. */
  dFake: number;
  /** D's accuracy on real images (D(x) > 1/2). */
  accReal: number;
  /** D's accuracy on generated images (D(G(z)) < 1/2). */
  accFake: number;
  /** G's loss (NaN before G's first update). */
  gLoss: number;
  /** G's updates so far. */
  gSteps: number;
}

/**
 * The order of the figures' running sums, on the device: D's six, then
 * G's loss (the WGSL step keeps its sums in this order too).
 */
const FIGURES = [
  "dLoss",
  "value",
  "dReal",
  "dFake",
  "accReal",
  "accFake",
  "gLoss",
] as const;

/** Means from sums in {@linkcode FIGURES}' order. */
function meansOf(
  sums: ArrayLike<number>,
  rounds: number,
  gSteps: number,
): RoundMeans {
  const n = Math.max(rounds, 1);
  const m = { gSteps } as RoundMeans;
  FIGURES.forEach((name, i) => m[name] = sums[i] / n);
  m.gLoss = gSteps ? sums[6] / gSteps : NaN;
  return m;
}

/** Whether every figure of the epoch so far is a number. */
export function finiteMeans(m: RoundMeans): boolean {
  return FIGURES.every((name) =>
    Number.isFinite(m[name]) || (name === "gLoss" && m.gSteps === 0)
  );
}

/** One round of the game per batch, and the epoch's running figures. */
export interface Rounds extends Disposable {
  /** Whether batches must carry their images (else their indices do). */
  readonly needsImages: boolean;
  /** Starts an epoch of `steps` rounds: the figures start from zero. */
  startEpoch(epoch: number, steps: number): void;
  /** One round of the game on the batch (lib/gan.ts, {@linkcode playRound}). */
  round(batch: Batch): Promise<void>;
  /** The figures so far (one read-back). */
  means(): Promise<RoundMeans>;
  /** Ends the epoch: the GAN's variables hold the trained state. */
  endEpoch(): Promise<void>;
}

/** The rounds as tfjs ops: {@linkcode playRound}, on any backend. */
export class TfjsRounds implements Rounds {
  readonly needsImages = true;
  #gan: Gan;
  #rng: Rng;
  #epoch = 0;
  #rounds = 0;
  /** D's updates since G's last (G moves after D's k-th). */
  #dSinceG = 0;
  #gSteps = 0;
  /** Running sums in the order of FIGURES, on the device. */
  #sums: tf.Tensor | null = null;

  constructor(gan: Gan, rng: Rng) {
    this.#gan = gan;
    this.#rng = rng;
  }

  startEpoch(epoch: number): void {
    this.#free();
    this.#epoch = epoch;
    this.#rounds = this.#gSteps = this.#dSinceG = 0;
    this.#sums = tf.zeros([FIGURES.length]);
  }

  round(batch: Batch): Promise<void> {
    const config = this.#gan.config, rng = this.#rng;
    const bs = config.batchSize;
    // A conditional GAN: D sees each real image with its class, and G is
    // asked for the batch's classes (so its classes follow the data's).
    const classes = config.classes ?? 0;
    const labelled = (x: Float32Array, dim: number) =>
      labelledRows(x, batch.labels, dim, classes);
    const noise = (n = bs) =>
      labelled(sampleLatent(config, n, rng), config.latentDim);
    const real = labelled(batch.images, IMAGE_PIXELS);
    // Drawn in this order, so that a run repeats from its seed. D's noise
    // matches its real images (half a batch with halfBatchD); G's is a batch.
    const round: Round = {
      real,
      noise: noise(realBatchSize(config)),
      masks: rng.nextUint32(),
      epoch: this.#epoch,
      generator: [],
    };
    if (config.loss === "wgan-gp") {
      // The gradient penalty's weights: one per real image, after D's seed.
      const n = realBatchSize(config);
      round.mix = tf.tensor1d(rng.fillUniform(new Float32Array(n)));
    }
    if (config.update === "reuse") {
      // G's step on the batch D's step generated: no draws of its own.
      round.generator.push({ noise: round.noise, masks: round.masks });
    } else if (
      config.update !== "simultaneous" && ++this.#dSinceG === config.k
    ) {
      this.#dSinceG = 0;
      for (let g = 0; g < config.gSteps; g++) {
        round.generator.push({ noise: noise(), masks: rng.nextUint32() });
      }
    }
    const stats = playRound(this.#gan, round);
    const { gLosses, ...d } = stats;
    const next = tf.tidy(() =>
      tf.add(
        this.#sums!,
        tf.stack([
          d.loss,
          d.value,
          d.dReal,
          d.dFake,
          d.accReal,
          d.accFake,
          gLosses.length ? tf.addN(gLosses) : tf.scalar(0),
        ]),
      )
    );
    tf.dispose([
      this.#sums!,
      real,
      round.noise,
      ...round.mix ? [round.mix] : [],
      ...round.generator.map((g) => g.noise),
      ...Object.values(d),
      ...gLosses,
    ]);
    this.#sums = next;
    this.#rounds++;
    this.#gSteps += gLosses.length;
    return Promise.resolve();
  }

  async means(): Promise<RoundMeans> {
    return meansOf(await this.#sums!.data(), this.#rounds, this.#gSteps);
  }

  endEpoch(): Promise<void> {
    this.#free();
    return Promise.resolve();
  }

  #free() {
    this.#sums?.dispose();
    this.#sums = null;
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
  #wgsl: TrainingStep;
  #gan: Gan;
  #rng: Rng;
  #noise: NoiseWorkers | null;
  #epoch = 0;
  #steps = 0;
  #rounds = 0;
  #gSteps = 0;
  /** D's updates drawn for since G's last (G moves after D's k-th). */
  #drawnSinceG = 0;
  #ahead: ReturnType<WgslRounds["draw"]> | null = null;

  /** Takes ownership of `wgsl` (disposed with this). */
  constructor(wgsl: TrainingStep, gan: Gan, rng: Rng) {
    this.#wgsl = wgsl;
    this.#gan = gan;
    this.#rng = rng;
    this.needsImages = !wgsl.gathers;
    // The GPU's part of a round is a few milliseconds, so the CPU's normal
    // noise would bound it: worker threads compute it (the same numbers).
    this.#noise = gan.config.latent === "normal" && NoiseWorkers.available
      ? NoiseWorkers.create()
      : null;
  }

  /** The WGSL step this runs. */
  get step(): TrainingStep {
    return this.#wgsl;
  }

  /**
   * One round's draws from the run's generator, in the tfjs round's order:
   * D's noise and masks' seed, then, after D's k-th update, each G update's.
   */
  draw() {
    const config = this.#gan.config, rng = this.#rng;
    const latent = (rows = config.batchSize) =>
      latentLater(config, rows, rng, this.#noise);
    // D's noise matches its real images (half a batch with halfBatchD).
    const zD = latent(realBatchSize(config));
    const dSeed = rng.nextUint32();
    const generator: { z: Promise<Float32Array>; seed: number }[] = [];
    if (config.update === "reuse") {
      generator.push({ z: zD, seed: dSeed });
    } else if (
      config.update !== "simultaneous" && ++this.#drawnSinceG === config.k
    ) {
      this.#drawnSinceG = 0;
      for (let g = 0; g < config.gSteps; g++) {
        generator.push({ z: latent(), seed: rng.nextUint32() });
      }
    }
    return { zD, dSeed, generator };
  }

  startEpoch(epoch: number, steps: number): void {
    this.#wgsl.resetFigures();
    this.#epoch = epoch;
    this.#steps = steps;
    this.#rounds = this.#gSteps = this.#drawnSinceG = 0;
    this.#ahead = steps > 0 ? this.draw() : null;
  }

  async round(batch: Batch): Promise<void> {
    // This round's draws were made a round ago; the next round's are made
    // (and its noise computed) while this one runs.
    const { zD, dSeed, generator } = this.#ahead!;
    this.#ahead = batch.index + 1 < this.#steps ? this.draw() : null;
    const labels = this.#gan.config.classes ? batch.labels : undefined;
    const epoch = this.#epoch;
    this.#wgsl.stepD({
      ...(this.#wgsl.gathers
        ? { rows: batch.indices }
        : { real: batch.images }),
      labels,
      zD: await zD,
      dSeed,
      epoch,
    });
    this.#rounds++;
    if (this.#gan.config.update === "simultaneous") this.#gSteps++;
    for (const g of generator) {
      this.#wgsl.stepG({ labels, zG: await g.z, gSeed: g.seed, epoch });
      this.#gSteps++;
    }
  }

  async means(): Promise<RoundMeans> {
    return meansOf(await this.#wgsl.figures(), this.#rounds, this.#gSteps);
  }

  async endEpoch(): Promise<void> {
    await this.#wgsl.exportTo(this.#gan);
  }

  [Symbol.dispose](): void {
    this.#noise?.[Symbol.dispose]();
    this.#wgsl.dispose();
  }
}

/** What {@linkcode roundsFor} reads: train()'s step options. */
export interface RoundsOptions {
  step?: StepChoice;
  selfCheck?: SelfCheck;
  wgsl?: Pick<WgslStepOptions, "matMul" | "transformProgram">;
  /** The training images (the WGSL step keeps them on the GPU). */
  images: Uint8Array;
  /** The epoch training continues from (the self-check's schedules). */
  epoch: number;
  log: (message: string) => void;
}

/**
 * The rounds of the game for `gan`: the WGSL step's where `options.step`
 * and the backend allow it (after its self-check), else tfjs ops.
 */
export async function roundsFor(
  gan: Gan,
  rng: Rng,
  options: RoundsOptions,
): Promise<Rounds> {
  const { log } = options;
  const chosen = await chooseStep(gan, options.step, {
    ...options.wgsl,
    // The training images stay on the GPU; each batch is gathered there.
    data: { images: options.images, range: pixelRange(gan.config) },
    selfCheck: options.selfCheck,
    epoch: options.epoch,
    log,
  });
  const wgsl = chosen.step;
  if (tf.getBackend() === "webgpu") {
    log(
      wgsl
        ? `training step: WGSL programs, ${wgsl.dispatchesPerStep} dispatches (${
          wgsl instanceof LayerStep
            ? "lib/wgsl/layer_step.ts"
            : "lib/wgsl/step.ts"
        })${wgsl.gathers ? "; the training images on the GPU" : ""}`
        : `training step: tfjs ops (${chosen.why})`,
    );
  }
  return wgsl ? new WgslRounds(wgsl, gan, rng) : new TfjsRounds(gan, rng);
}

/** Values of {@linkcode TrainOptions.step}. */
export type StepChoice = "auto" | "tfjs" | "wgsl";

/** The step choices, for flags. */
export const STEP_CHOICES: readonly StepChoice[] = ["auto", "tfjs", "wgsl"];

/**
 * Why the WGSL step cannot train `config` on the running backend, or null
 * when it can.
 */
function wgslStepUnavailable(config: GanConfig): string | null {
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
 * How far apart one Adam step can move two copies of a weight whose
 * gradients differ only by rounding: each moves by about lr at most, so 2
 * lr (the larger player's), with room for the bias correction; 0 when
 * neither player uses Adam.
 */
function adamReach(gan: Gan): number {
  const lrs = [gan.config.optimizerG, gan.config.optimizerD]
    .filter((o) => o.kind === "adam").map((o) => o.lr);
  return lrs.length ? 3 * Math.max(...lrs) : 0;
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
): Promise<{ step: TrainingStep | null; why: string }> {
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
      let c = await compareWithTfjs(gan, { wgsl: programs, epoch });
      let first = "";
      if (!c.ok && c.weights <= adamReach(gan)) {
        // Adam can turn one value's rounding across a leaky ReLU's kink
        // into a step of up to lr (dcgan; docs/speed.md): when the weights
        // are no further apart than such steps, the programs are compared
        // again under SGD, where rounding stays rounding. A race or a
        // missing barrier fails both.
        first = ` with Adam ${describeComparison(c)}, and under SGD`;
        c = await compareWithTfjs(gan, { wgsl: programs, epoch, sgd: true });
      }
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
      log(
        `self-check: on ${adapter} the WGSL step${first} ${
          describeComparison(c)
        }`,
      );
    }
  }
  return { step: await createTrainingStep(gan, wgslOptions), why: "" };
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
): Promise<TrainingStep | null> {
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
