/**
 * The whole training step of an MLP GAN (D's update, G's update) as a fixed
 * list of hand-written WGSL dispatches on the GPU device of tfjs's WebGPU
 * backend.
 *
 * Why: through tfjs, each op of a step costs a bind group, a uniform buffer
 * and a dispatch built anew on the CPU (Deno's `createBindGroup` alone is
 * ~25-45 us), and a step is 245 (`paper`), 300 (`mlp`) or 572 (`bn`) ops.
 * Here every buffer is made once, so every bind group is made once too; a
 * step writes its inputs (the real batch or its rows in the images kept on
 * the GPU, the noise, the start states of D's dropout masks, the
 * optimiser's settings) with `queue.writeBuffer`, records its dispatches
 * (46, 52 and 80; `pylearn2`'s simultaneous round 35) into one command
 * buffer per player and submits them. Fewer dispatches, because each does
 * more:
 *
 * - a dense layer's forward pass is one matMul program that multiplies its
 *   input by the dropout mask as it reads it, and whose epilogue adds the
 *   bias and applies the nonlinearity (maxout: one more program, the max
 *   over each unit's pieces; batch norm: two more, the batch's statistics,
 *   then the normalisation and the nonlinearity);
 * - the gradient with respect to a layer's input is one matMul program whose
 *   epilogue multiplies by the dropout mask and the derivative of the
 *   nonlinearity below, taken from that layer's output (relu: y > 0; leaky
 *   relu: 1 or 0.2; tanh: 1 - y^2; sigmoid: y (1 - y); maxout: the gradient
 *   goes to the pieces that attain the max), as tfjs's gradients do;
 * - D sees the real and the generated batch in one pass of 2B rows, with
 *   the masks `lib/gan.ts` would draw for each half (drawn on the GPU by
 *   `lib/random/dropout_masks.ts`, one program per layer);
 * - with the images on the GPU, one program gathers the real batch;
 * - the losses and their gradients with respect to D's logits are one
 *   program, which also adds the step's figures to sums kept on the GPU;
 * - the optimiser (Adam, or SGD with momentum) updates all of a network's
 *   parameters in one program: each network's parameters (and gradients,
 *   and slots) are one buffer.
 *
 * At large batches the matMul programs change shape (`matMulPlan` in
 * `lib/wgsl/plans.ts`): 128 x 128 tiles for products with many outputs,
 * and the weight gradients' K (the batch) split into runs whose partial
 * products a second program adds, for products with few outputs.
 *
 * The arithmetic is `lib/gan.ts`'s and `lib/nets/optim.ts`'s, with the same
 * dropout masks (tests compare steps with the tfjs step), in float32,
 * summed in another order. D's and G's updates are submitted one by one
 * ({@linkcode WgslStep.stepD}, {@linkcode WgslStep.stepG}), so k D updates
 * per G update, and several G updates, are the training loop's to order.
 * Conditional GANs carry the one-hot class in their inputs, as the tfjs
 * step's do. What is left to the tfjs step (convolutional networks, among
 * others), {@linkcode wgslStepSupport} says.
 *
 * The code is a folder along its seams: `lib/wgsl/programs.ts` (the WGSL
 * texts), `plans.ts` (how a product is spread over the GPU), `layout.ts`
 * (where parameters live), `gpu.ts` (buffers, pipelines, dispatch),
 * `kernels.ts` and `recording.ts` (a step's dispatches, recorded once),
 * and this module, the public {@linkcode WgslStep}.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { aleaStart } from "../random/dropout_masks.ts";
import { IMAGE_PIXELS, type PixelRange } from "../splits.ts";
import { asMlp } from "../nets/mlp.ts";
import { createGan, disposeGan, FAKE_MASK_OFFSET, type Gan } from "../gan.ts";
import { checkBatchLabels, withClasses } from "../nets/latent.ts";
import { type GanConfig } from "../presets.ts";
import { copyStatistics } from "../nets/ema.ts";
import { emaUniform, optimizerUniform } from "./settings.ts";
import { assignFlat, flatten } from "./flat.ts";
import type { MatMulChoice } from "./plans.ts";
import { StepRecording } from "./recording.ts";
import type { ImageGather } from "./kernels.ts";
import { LayerStep, layerStepSupport } from "./layer_step.ts";

/**
 * Why the WGSL step cannot train `config` (a sentence), or null when it can.
 */
export function wgslStepSupport(config: GanConfig): string | null {
  if (config.generator.layers || config.discriminator.layers) {
    // Layer lists: lib/wgsl/layer_step.ts, which reads the networks.
    const gan = createGan(config, { seed: 0 });
    try {
      return layerStepSupport(gan);
    } finally {
      disposeGan(gan);
    }
  }
  if (config.loss === "wgan-gp") {
    return "the gradient penalty (--loss wgan-gp) needs D's second " +
      "derivatives, which its programs do not compute: train with the tfjs " +
      "step (--step tfjs)";
  }
  if (config.halfBatchD) {
    return "its buffers hold one batch size for both players, and this " +
      "preset's D steps on half a batch";
  }
  for (
    const [name, net] of [["G", config.generator], [
      "D",
      config.discriminator,
    ]] as const
  ) {
    if (
      !["relu", "leaky_relu", "tanh"].includes(net.activation) &&
      !(name === "D" && net.activation === "maxout")
    ) {
      return `${name}'s ${net.activation} layers are not written in WGSL`;
    }
    if (name === "G" && (net.dropout || net.inputDropout)) {
      return "G's dropout is not written in WGSL";
    }
  }
  if (config.loss === "hinge" && config.optimizerD.kind === "adam") {
    // D's output bias's gradient under the hinge loss is (generated rows
    // inside their margin - real rows inside theirs) / B: exactly 0 while
    // every row is inside (at the start), so its computed value is
    // rounding noise, which Adam turns into a step of up to lr either way.
    // Both steps are right, and differ by that step: the WGSL step could
    // not be checked against the tfjs step.
    return "with Adam, D's output bias under the hinge loss follows " +
      "rounding noise (its gradient is 0 while every example is inside " +
      "its margin), so the WGSL step cannot be checked against the tfjs " +
      "step; train it with the tfjs step (--step tfjs), or a preset whose D " +
      "uses SGD (paper, pylearn2)";
  }
  return null;
}

/** The WGSL step of a GAN: an MLP GAN's, or a layer-list GAN's. */
export type TrainingStep = WgslStep | LayerStep;

/**
 * The WGSL step for `gan`: {@linkcode WgslStep} for the MLP presets,
 * `LayerStep` (`lib/wgsl/layer_step.ts`) for layer lists.
 */
export function createTrainingStep(
  gan: Gan,
  options: WgslStepOptions = {},
): Promise<TrainingStep> {
  if (gan.config.generator.layers || gan.config.discriminator.layers) {
    const { matMul, transformProgram, data } = options;
    return LayerStep.create(gan, { matMul, transformProgram, data });
  }
  return WgslStep.create(gan, options);
}

/** One step's inputs, as the training loop draws them on the CPU. */
export interface WgslStepInputs {
  /** The real batch, [B, 784] row-major, images only (or give `rows`). */
  real?: Float32Array;
  /**
   * The real batch as B positions in the images given to
   * {@linkcode WgslStep.create} (`data`), which the GPU gathers itself.
   */
  rows?: Uint32Array;
  /**
   * A conditional GAN's batch classes (B of them): D sees each real image
   * with its class, and G is asked for these classes in both steps.
   */
  labels?: ArrayLike<number>;
  /** Noise of D's step (of the round, when simultaneous), [B, latentDim]. */
  zD: Float32Array;
  /** Noise of G's step, [B, latentDim] (alternating updates only). */
  zG?: Float32Array;
  /** Seed of D's dropout masks in D's step (needed when D has dropout). */
  dSeed?: number;
  /** Seed of D's dropout masks in G's step (needed when D has dropout). */
  gSeed?: number;
  /** The epoch (0-based), for SGD's momentum ramp (default 0). */
  epoch?: number;
}

/** Options of {@linkcode WgslStep.create}. */
export interface WgslStepOptions {
  /**
   * The training images, kept on the GPU (one byte a pixel) so that a step
   * names its real batch by positions (`rows`) instead of uploading it:
   * at batch 8192 building and uploading the batch costs ~20 ms of CPU and
   * 25 MB a step. `range` is the pixels' range, as `lib/data.ts`'s
   * `toFloat` gives it. Images that would not fit one GPU buffer binding
   * are left on the CPU (see {@linkcode WgslStep.gathers}).
   */
  data?: { images: Uint8Array; range: PixelRange };
  /**
   * The matMul programs: by shape (`"auto"`, the default), the 64 x 64
   * tiles without split-K (`"plain"`), or forced (see
   * {@linkcode MatMulChoice}).
   */
  matMul?: MatMulChoice;
  /**
   * Rewrites each program's WGSL before it is compiled. For tests only: a
   * deliberately broken program shows that a comparison with the tfjs step
   * (`lib/wgsl/check.ts`) catches a wrong step.
   */
  transformProgram?: (code: string) => string;
}

/**
 * Sums over the steps since the last {@linkcode WgslStep.resetFigures}, in
 * the training loop's order: D loss, V(D, G), D(x), D(G(z)), accuracy on
 * real, accuracy on generated, G loss.
 */
export type FigureSums = Float32Array;

/**
 * A GAN's training step in WGSL. Made from a {@linkcode Gan} (its weights,
 * the optimisers' state and batch norm's running statistics are copied to
 * the GPU); while it trains, the GAN's variables are stale until
 * {@linkcode WgslStep.exportTo} writes the state back.
 */
export class WgslStep extends StepRecording {
  /** The training images, their rows of a step and the gather program. */
  protected gather: ImageGather | null = null;
  /** Each network's updates so far (as Optimizer.step). */
  protected updatesD: number;
  protected updatesG: number;

  private constructor(
    device: GPUDevice,
    gan: Gan,
    options: WgslStepOptions,
  ) {
    super(device, gan, options);
    this.updatesD = gan.optimizerD.step;
    this.updatesG = gan.optimizerG.step;
    const B = this.batch;
    const image = this.D.specs[0].inputs - this.classes;
    this.gather = this.imageGather(
      image === IMAGE_PIXELS ? options.data : undefined,
      { rows: B, out: this.dIn, stride: image + this.classes },
    );
    if (this.gather) this.steps[0].unshift(this.gather.dispatch);
  }

  /**
   * Copies `gan`'s state to the GPU of tfjs's running WebGPU backend and
   * records its programs.
   */
  static async create(
    gan: Gan,
    options: WgslStepOptions = {},
  ): Promise<WgslStep> {
    const why = wgslStepSupport(gan.config);
    if (why) throw new Error(`the WGSL step cannot train this GAN: ${why}`);
    const step = new WgslStep(tfjsDevice(), gan, options);
    await step.load(gan);
    return step;
  }

  /**
   * Whether the training images are on the GPU: steps then take `rows`,
   * not `real`.
   */
  get gathers(): boolean {
    return this.gather !== null;
  }

  /** Writes the settings of a network's next update (Adam or SGD). */
  protected writeOptimizer(net: "G" | "D", epoch: number): void {
    const c = net === "G" ? this.config.optimizerG : this.config.optimizerD;
    const size = (net === "G" ? this.G : this.D).size;
    // The number of updates so far, before this one (as Optimizer.step).
    const t = net === "G" ? this.updatesG++ : this.updatesD++;
    const u = optimizerUniform(c, t, epoch, size);
    const buf = net === "G" ? this.gBuf : this.dBuf;
    this.device.queue.writeBuffer(buf.opt, 0, u);
    if (net === "G" && this.ema && this.config.ema) {
      // The average's decay after this update, the (t + 1)-th.
      this.device.queue.writeBuffer(
        this.ema.settings,
        0,
        emaUniform(this.config.ema, t, size),
      );
    }
  }

  /** Writes the start states of a pass's masks, its parts from `seeds`. */
  protected writeSeeds(seeds: number[]): void {
    const layers = this.D.specs.length;
    const states = new Uint32Array(4 * seeds.length * layers);
    this.D.specs.forEach((_, l) =>
      seeds.forEach((seed, p) =>
        states.set(aleaStart(seed + l), 4 * (seeds.length * l + p))
      )
    );
    const at = seeds.length === 2 ? 0 : 2 * layers;
    this.device.queue.writeBuffer(this.aleaSeeds!, 16 * at, states);
  }

  /**
   * One round of the game, queued on the GPU; nothing is read back.
   * Alternating updates: one D step on `real` and `zD` (D's masks from
   * `dSeed`), then one G step on `zG` (masks from `gSeed`), as
   * discriminatorStep and generatorStep ({@linkcode WgslStep.stepD}, then
   * {@linkcode WgslStep.stepG}). Simultaneous: both players from one pass
   * on `real` and `zD` (masks from `dSeed`), as simultaneousStep.
   */
  step(inputs: WgslStepInputs): void {
    if (this.steps.length === 1) {
      this.stepD(inputs);
      return;
    }
    // G's inputs are checked before D's update is queued: a bad call
    // leaves both players as they were.
    this.checkNoise(inputs.zG, "zG");
    if (this.hasDropout && inputs.gSeed === undefined) {
      throw new Error("D has dropout: a step needs dSeed (and gSeed)");
    }
    this.stepD(inputs);
    this.stepG({ ...inputs, zG: inputs.zG! });
  }

  /**
   * D's update on `real` and `zD` (its masks from `dSeed` on the real rows,
   * `dSeed + 1000` on the generated ones), queued; with simultaneous
   * updates, both players' (the whole round).
   */
  stepD(inputs: Omit<WgslStepInputs, "zG" | "gSeed">): void {
    const B = this.batch;
    const image = this.D.specs[0].inputs - this.classes;
    const simultaneous = this.steps.length === 1;
    const gather = this.gather;
    this.checkRealBatch(gather, inputs, B, image);
    this.checkNoise(inputs.zD, "zD");
    const labelled = this.labelled(inputs.labels);
    if (this.hasDropout && inputs.dSeed === undefined) {
      throw new Error("D has dropout: a step needs dSeed (and gSeed)");
    }
    const epoch = inputs.epoch ?? 0;
    if (gather) this.upload(gather.rows, inputs.rows!);
    else this.upload(this.dIn, labelled(inputs.real!, image));
    if (this.classes) {
      this.lastLabels = Uint32Array.from(inputs.labels!);
      this.upload(this.labels!, this.lastLabels);
    }
    this.upload(this.z, labelled(inputs.zD, this.latent));
    if (this.hasDropout) {
      this.writeSeeds([inputs.dSeed!, inputs.dSeed! + FAKE_MASK_OFFSET]);
    }
    this.writeOptimizer("D", epoch);
    if (simultaneous) this.writeOptimizer("G", epoch);
    this.submit(this.steps[0]);
  }

  /**
   * G's update on `zG` through D (D's masks from `gSeed`), queued after the
   * D step before it (whose batch's classes a conditional G is asked for:
   * give the same `labels`). Alternating updates only.
   */
  stepG(
    inputs: Pick<WgslStepInputs, "labels" | "gSeed" | "epoch"> & {
      zG: Float32Array;
    },
  ): void {
    if (this.steps.length === 1) {
      throw new Error("unreachable: a simultaneous round has no G step");
    }
    this.checkNoise(inputs.zG, "zG");
    if (this.hasDropout && inputs.gSeed === undefined) {
      throw new Error("D has dropout: a step needs dSeed (and gSeed)");
    }
    // D's rows of generated images carry the classes of the last D step's
    // batch (written by its one-hot program): G must be asked for those.
    const last = this.lastLabels;
    if (
      this.classes &&
      (!last || !Array.from(last).every((c, i) => c === inputs.labels?.[i]))
    ) {
      throw new Error(
        "a conditional G step takes the labels of the D step before it",
      );
    }
    // (Queue writes and submits run in order: the steps before have read
    // their noise and masks before these land.)
    this.upload(this.z, this.labelled(inputs.labels)(inputs.zG, this.latent));
    if (this.hasDropout) this.writeSeeds([inputs.gSeed!]);
    this.writeOptimizer("G", inputs.epoch ?? 0);
    this.submit(this.steps[1]);
  }

  /** The classes of the last D step's batch (a conditional GAN's). */
  protected lastLabels: Uint32Array | null = null;

  /** Whether D has dropout (a step then needs its masks' seeds). */
  protected get hasDropout(): boolean {
    return this.dBuf.masks.some((m) => m);
  }

  protected checkNoise(z: Float32Array | undefined, name: string): void {
    if (z?.length !== this.batch * this.latent) {
      throw new Error(
        `a step takes ${this.batch} x ${this.latent} noise values (${name})`,
      );
    }
  }

  /** Rows followed by their one-hot classes, in a conditional GAN. */
  protected labelled(
    labels: ArrayLike<number> | undefined,
  ): (x: Float32Array, dim: number) => Float32Array {
    const classes = this.classes;
    if (!classes) return (x) => x;
    checkBatchLabels(labels, this.batch, classes);
    return (x, dim) => withClasses(x, labels, dim, classes);
  }

  /** Zeroes the figures' sums (at the start of an epoch). */
  resetFigures(): void {
    this.device.queue.writeBuffer(this.figureSums, 0, new Float32Array(8));
  }

  /** Reads the figures' sums (waits for the queued steps). */
  async figures(): Promise<FigureSums> {
    return (await this.read(this.figureSums, 0, 7));
  }

  protected async load(gan: Gan): Promise<void> {
    const nets = [
      [asMlp(gan.generator), this.G, this.gBuf, gan.optimizerG],
      [asMlp(gan.discriminator), this.D, this.dBuf, gan.optimizerD],
    ] as const;
    for (const [net, lay, buf, opt] of nets) {
      const n = net.trainable.length;
      this.upload(
        buf.params,
        await flatten(lay.size, lay.offsets, (i) => net.trainable[i]),
      );
      // Adam's slots are m then v; SGD's, the increments only.
      this.upload(
        buf.m,
        await flatten(lay.size, lay.offsets, (i) => opt.slots[i]),
      );
      if (opt.slots.length > n) {
        this.upload(
          buf.v,
          await flatten(lay.size, lay.offsets, (i) => opt.slots[n + i]),
        );
      }
      for (const [l, p] of net.layers.entries()) {
        if (!buf.moving[l]) continue;
        const units = net.specs[l].units;
        this.upload(
          buf.moving[l]!,
          await p.movingMean!.data() as Float32Array,
        );
        this.upload(
          buf.moving[l]!,
          await p.movingVar!.data() as Float32Array,
          units,
        );
      }
    }
    if (this.ema && gan.generatorEma) {
      const average = asMlp(gan.generatorEma);
      this.upload(
        this.ema.params,
        await flatten(this.G.size, this.G.offsets, (i) => average.trainable[i]),
      );
    }
    this.resetFigures();
  }

  /**
   * Writes the weights, the optimisers' slots and step counts back into `gan`'s
   * variables and optimisers (waits for the queued steps), and the moving
   * average of G's weights when there is one.
   */
  async exportTo(gan: Gan): Promise<void> {
    const nets = [
      [asMlp(gan.generator), this.G, this.gBuf, gan.optimizerG, this.updatesG],
      [
        asMlp(gan.discriminator),
        this.D,
        this.dBuf,
        gan.optimizerD,
        this.updatesD,
      ],
    ] as const;
    for (const [net, lay, buf, opt, step] of nets) {
      const [p, m, v] = [
        await this.read(buf.params, 0, lay.size),
        await this.read(buf.m, 0, lay.size),
        await this.read(buf.v, 0, lay.size),
      ];
      const n = net.trainable.length;
      const moving = await Promise.all(
        buf.moving.map((b) => b && this.read(b, 0, b.size / 4)),
      );
      tf.tidy(() => {
        net.trainable.forEach((variable, i) => {
          const at = lay.offsets[i];
          const slice = (a: Float32Array) =>
            tf.tensor(a.slice(at, at + variable.size), variable.shape);
          variable.assign(slice(p));
          opt.slots[i].assign(slice(m));
          opt.slots[n + i]?.assign(slice(v));
        });
        net.layers.forEach((layer, l) => {
          const r = moving[l];
          if (!r) return;
          const units = net.specs[l].units;
          layer.movingMean!.assign(tf.tensor(r.slice(0, units)));
          layer.movingVar!.assign(tf.tensor(r.slice(units, 2 * units)));
        });
      });
      opt.step = step;
    }
    if (this.ema && gan.generatorEma) {
      const values = await this.read(this.ema.params, 0, this.G.size);
      const average = asMlp(gan.generatorEma);
      assignFlat(values, this.G.offsets, average.trainable);
      // Running statistics copied from G, as each tfjs update copies them.
      copyStatistics(gan.generatorEma, gan.generator);
    }
  }
}

/** The GPU device of tfjs's WebGPU backend (which must be running). */
function tfjsDevice(): GPUDevice {
  if (tf.getBackend() !== "webgpu") {
    throw new Error(
      `the WGSL step runs on WebGPU; the backend is ${tf.getBackend()}`,
    );
  }
  return (tf.backend() as unknown as { device: GPUDevice }).device;
}
