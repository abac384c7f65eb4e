/**
 * The WGSL training step of a GAN whose networks are layer lists (the
 * convolutional presets), on the passes of `lib/wgsl/layer_passes.ts`: a
 * round is D's update, then G's, each one command buffer, as
 * `lib/gan.ts`'s discriminatorStep and generatorStep compute them.
 *
 * D's step: G(z) (batch statistics, no update of the running ones) into
 * the generated half of D's input; D on the real half (pass slot 0), then
 * on the generated half (slot 1), each with its own power iteration, the
 * second starting from the first's u, as the tfjs step's two D calls; the
 * loss and its gradients for both halves (one program); each half's
 * backward pass into a gradient buffer of its own (its own correction
 * through sigma), their sum, the optimiser. G's step: G(z) again, D on it
 * (slot 2, a third power iteration, as the tfjs step's D call in G's
 * step), G's loss, back through D into G, the optimiser, and the moving
 * average of G's weights; this step's G pass also updates batch norm's
 * running statistics (in its statistics' programs).
 * Between rounds u and v are slot 2's. With halfBatchD (`keras-mlp`), D's
 * step runs G and D on half a batch (D's real images and G's output from
 * as much noise) and G's step on a whole batch, as the tfjs step does.
 *
 * D's dropout masks are drawn on the GPU from the step's seeds as the tfjs
 * step draws them (dSeed, dSeed + FAKE_MASK_OFFSET, gSeed).
 *
 * A conditional GAN (the projection form: class-conditional batch norm in
 * G, a projection in D) carries the batch's classes in a labels buffer that
 * both networks' passes read, and G's noise rows end with the one-hot
 * class, as the tfjs step's; D's input is the images alone.
 *
 * Not yet: the class as D's input planes, G's dropout, the simultaneous
 * and reused rounds, the gradient penalty. {@linkcode layerStepSupport}
 * says.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { PixelRange } from "../splits.ts";
import { FAKE_MASK_OFFSET, type Gan } from "../gan.ts";
import { type GanConfig, realBatchSize } from "../presets.ts";
import { copyStatistics } from "../nets/ema.ts";
import { checkBatchLabels, withClasses } from "../nets/latent.ts";
import { emaUniform, optimizerUniform } from "./settings.ts";
import { assignFlat, flatten } from "./flat.ts";
import { COPY_DST, type Dispatch } from "./gpu.ts";
import { type ImageGather, Kernels } from "./kernels.ts";
import { LayerPasses } from "./layer_passes.ts";
import { layerBlocks } from "./layer_blocks.ts";
import type { MatMulChoice } from "./plans.ts";
import { ADAM_CODE, EMA_CODE, SGD_CODE } from "./programs.ts";
import { LOSS_CODE } from "./loss_program.ts";

const IMAGE = 784;

/** Adds B into A, n values: A[i] += B[i]. */
const ADD_CODE = `
struct U { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<uniform> u: U;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.y * nw.x * 256u + id.x;
  if (i >= u.n) { return; }
  A[i] = A[i] + B[i];
}`;

/**
 * Why the layer-list WGSL step cannot train `gan` (a sentence), or null
 * when it can.
 */
export function layerStepSupport(gan: Gan): string | null {
  const c = gan.config;
  const dFirst = gan.discriminator.descs[0]?.kind;
  if (c.classes && dFirst === "classChannels") {
    return "the class as D's input planes (--conditioning channels) is not " +
      "written yet; the projection form (the default) is";
  }
  if (c.classes && dFirst !== "classInput") {
    return "a conditional D must take the class off the image for its " +
      "projection (a classInput layer first)";
  }
  if ((c.update ?? "alternating") !== "alternating") {
    return `the ${c.update} round is not written yet`;
  }
  if (c.loss === "wgan-gp") {
    return "the gradient penalty (--loss wgan-gp) needs D's second " +
      "derivatives, which its programs do not compute";
  }
  if (c.loss === "hinge" && c.optimizerD.kind === "adam") {
    return "with Adam, D's output bias under the hinge loss follows " +
      "rounding noise, so the WGSL step cannot be checked against the tfjs step";
  }
  // G's output is D's input as rows of 784 values: an image flattened, or
  // a dense layer's (keras-mlp's).
  const gOut = gan.generator.shapes.at(-1) ?? [];
  if (gOut.length !== 1 || gOut[0] !== IMAGE) {
    return `G's output is ${gOut.join(" x ")}, not a row of ${IMAGE} values`;
  }
  try {
    if (layerBlocks(gan.generator).blocks.some((b) => b.dropout)) {
      return "G's dropout is not written yet";
    }
  } catch (e) {
    return (e as Error).message;
  }
  const dBlocks = layerBlocks(gan.discriminator).blocks;
  const last = dBlocks.at(-1)!;
  if (last.outputs !== 1 || last.act !== "linear") {
    return "D's last layer is not one logit";
  }
  // Each of D's three passes a round starts its power iteration from the
  // pass before it in a round of one D and one G update (slot 0 from 2, 1
  // from 0, 2 from 1); more updates of a player in a row would start from
  // a stale u.
  if (
    (c.k > 1 || c.gSteps > 1) && dBlocks.some((b) => b.sn || b.projection?.sn)
  ) {
    return `${
      c.k > 1 ? `k ${c.k}` : `${c.gSteps} G steps a round`
    } with a spectrally normalised D is not written yet (its power ` +
      "iterations follow one D and one G update a round)";
  }
  return null;
}

/** How {@linkcode LayerStep.create} builds the step. */
export interface LayerStepOptions {
  matMul?: MatMulChoice;
  /** A rewrite of every program's text (a test's broken program). */
  transformProgram?: (c: string) => string;
  /**
   * The training images, kept on the GPU (one byte a pixel), from which
   * each D step gathers its real batch by `rows`.
   */
  data?: { images: Uint8Array; range: PixelRange };
}

/**
 * One round's inputs, as `WgslStepInputs` (the training loop's): the real
 * batch (`real`, or with the images on the GPU, its `rows`); with dropout
 * in D, the masks' seeds (`dSeed`, `gSeed`).
 */
export interface LayerStepInputs {
  /** The real batch, [H, 784] (H: a batch, or half of one with halfBatchD). */
  real?: Float32Array;
  /** The real batch as H positions in the images on the GPU ({@linkcode LayerStep.gathers}). */
  rows?: Uint32Array;
  zD: Float32Array;
  zG?: Float32Array;
  dSeed?: number;
  gSeed?: number;
  /**
   * A conditional GAN's batch classes (a batch of them): D sees each real
   * image with its class, and G is asked for these classes in both steps.
   */
  labels?: ArrayLike<number>;
  epoch?: number;
}

/** The WGSL step of a layer-list GAN. */
export class LayerStep extends Kernels {
  readonly G: LayerPasses;
  readonly D: LayerPasses;
  protected config: GanConfig;
  protected batch: number;
  /** Rows of D's passes in its step: a batch, or half of one (halfBatchD). */
  protected dRows: number;
  protected latent: number;
  protected classes: number;
  /** G's input: the noise rows, each followed by the one-hot class if conditional. */
  protected z: GPUBuffer;
  /** A conditional GAN's batch classes (u32), which both networks read. */
  protected labels: GPUBuffer | undefined;
  /**
   * D's input: the real rows from row 0 (H of them in D's step), the
   * generated ones from row B (H in D's step, B in G's).
   */
  protected dIn: GPUBuffer;
  /** D's logits and their gradients: the real rows, then the generated. */
  protected logits: GPUBuffer;
  protected delta: GPUBuffer;
  /** The generated half's gradients, added to the real half's. */
  protected gradsFake: GPUBuffer;
  protected figureSums: GPUBuffer;
  protected opt: {
    G: { m: GPUBuffer; v: GPUBuffer; settings: GPUBuffer };
    D: { m: GPUBuffer; v: GPUBuffer; settings: GPUBuffer };
  };
  protected ema: { params: GPUBuffer; settings: GPUBuffer } | null = null;
  protected steps: Dispatch[][];
  /** The training images on the GPU, D's rows of a step and their gather. */
  protected gather: ImageGather | null = null;
  protected updatesD: number;
  protected updatesG: number;

  private constructor(
    device: GPUDevice,
    gan: Gan,
    o: LayerStepOptions,
  ) {
    super(device, o.transformProgram ?? null, o.matMul ?? "auto");
    const c = gan.config, B = c.batchSize;
    this.config = c;
    this.batch = B;
    this.dRows = realBatchSize(c);
    this.latent = c.latentDim;
    this.classes = c.classes ?? 0;
    this.updatesD = gan.optimizerD.step;
    this.updatesG = gan.optimizerG.step;
    this.labels = this.classes ? this.buffer(B) : undefined;
    const passes = {
      rows: B,
      matMul: o.matMul,
      transformProgram: o.transformProgram,
      labels: this.labels,
    };
    this.G = new LayerPasses(device, gan.generator, passes);
    this.D = new LayerPasses(device, gan.discriminator, {
      ...passes,
      slots: 3,
    });
    this.z = this.buffer(B * (this.latent + this.classes));
    this.dIn = this.buffer(2 * B * IMAGE);
    this.logits = this.buffer(2 * B);
    this.delta = this.buffer(2 * B);
    this.gradsFake = this.buffer(this.D.size);
    this.figureSums = this.buffer(8);
    const settings = () => this.buffer(8, GPUBufferUsage.UNIFORM | COPY_DST);
    this.opt = {
      G: {
        m: this.buffer(this.G.size),
        v: this.buffer(this.G.size),
        settings: settings(),
      },
      D: {
        m: this.buffer(this.D.size),
        v: this.buffer(this.D.size),
        settings: settings(),
      },
    };
    if (c.ema) {
      this.ema = {
        params: this.buffer(this.G.size),
        settings: this.buffer(4, GPUBufferUsage.UNIFORM | COPY_DST),
      };
    }
    this.steps = this.record();
    this.gather = this.imageGather(o.data, {
      rows: this.dRows,
      out: this.dIn,
      stride: IMAGE,
    });
    if (this.gather) this.steps[0].unshift(this.gather.dispatch);
  }

  /** Copies `gan`'s state to the GPU of tfjs's WebGPU backend. */
  static async create(
    gan: Gan,
    options: LayerStepOptions = {},
  ): Promise<LayerStep> {
    const why = layerStepSupport(gan);
    if (why) throw new Error(`the WGSL step cannot train this GAN: ${why}`);
    if (tf.getBackend() !== "webgpu") {
      throw new Error(
        `the WGSL step runs on WebGPU; the backend is ${tf.getBackend()}`,
      );
    }
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    const step = new LayerStep(device, gan, options);
    await step.load(gan);
    return step;
  }

  /** The optimiser's program over one network's parameters. */
  protected optimizer(net: "G" | "D"): Dispatch {
    const passes = net === "G" ? this.G : this.D;
    const c = net === "G" ? this.config.optimizerG : this.config.optimizerD;
    const slots = this.opt[net];
    return this.dispatch(
      c.kind === "adam" ? ADAM_CODE : SGD_CODE,
      ["storage", "read-only-storage", "storage", "storage", "uniform"],
      [passes.params, passes.grads, slots.m, slots.v, slots.settings],
      this.grid(passes.size),
    );
  }

  /**
   * The losses' program (LOSS_CODE's modes) on `rows` logits (D's step:
   * `rows` real, then `rows` generated).
   */
  protected loss(mode: number, rows: number): Dispatch {
    const u = this.uniform(
      [
        rows,
        mode,
        this.config.realLabel,
        this.config.dLossScale ?? 1,
        0,
      ],
      [false, false, true, true, false],
    );
    return this.dispatch(
      LOSS_CODE,
      ["read-only-storage", "storage", "storage", "uniform"],
      [this.logits, this.delta, this.figureSums, u],
      [1, 1],
    );
  }

  protected record(): Dispatch[][] {
    const B = this.batch, G = this.G, D = this.D, c = this.config;
    // D's passes: half a batch of each kind with halfBatchD.
    const H = this.dRows;
    const [dMode, gMode] = c.loss === "hinge"
      ? [3, 4]
      : c.loss === "least-squares"
      ? [5, 6]
      : [0, c.loss === "saturating" ? 2 : 1];
    const gOut = G.blocks.at(-1)!.act;
    const fake = B * IMAGE;
    // G's own step updates batch norm's running statistics (as the tfjs
    // step's training call of G does), D's step does not.
    const forwardG = (rows: number, moving: boolean) =>
      G.forward({
        input: this.z,
        rows,
        moving,
        out: { buffer: this.dIn, off: fake },
      });
    const dStep = [
      ...forwardG(H, false),
      ...D.forward({
        input: this.dIn,
        rows: H,
        slot: 0,
        from: 2,
        out: { buffer: this.logits, off: 0 },
      }),
      ...D.forward({
        input: this.dIn,
        inOff: fake,
        rows: H,
        slot: 1,
        from: 0,
        out: { buffer: this.logits, off: H },
      }),
      this.loss(dMode, H),
      ...D.backward({
        input: this.dIn,
        delta: this.delta,
        rows: H,
        slot: 0,
        weights: true,
      }).dispatches,
      ...D.backward({
        input: this.dIn,
        inOff: fake,
        delta: this.delta,
        deltaOff: H,
        rows: H,
        slot: 1,
        weights: true,
        grads: this.gradsFake,
      }).dispatches,
      this.dispatch(
        ADD_CODE,
        ["storage", "read-only-storage", "uniform"],
        [D.grads, this.gradsFake, this.uniform([D.size])],
        this.grid(D.size),
      ),
      this.optimizer("D"),
    ];
    const throughD = D.backward({
      input: this.dIn,
      inOff: fake,
      delta: this.delta,
      slot: 2,
      weights: false,
      below: { act: gOut, out: this.dIn, outOff: fake },
    });
    const gStep = [
      ...forwardG(B, true),
      ...D.forward({
        input: this.dIn,
        inOff: fake,
        slot: 2,
        from: 1,
        out: { buffer: this.logits, off: 0 },
      }),
      this.loss(gMode, B),
      ...throughD.dispatches,
      ...G.backward({ input: this.z, delta: throughD.last, weights: true })
        .dispatches,
      this.optimizer("G"),
      ...this.ema
        ? [this.dispatch(
          EMA_CODE,
          ["storage", "read-only-storage", "uniform"],
          [this.ema.params, G.params, this.ema.settings],
          this.grid(G.size),
        )]
        : [],
    ];
    return [dStep, gStep];
  }

  /** The products' floating-point operations a round, both networks'. */
  override get matMulFlopsPerStep(): number {
    return super.matMulFlopsPerStep + this.G.matMulFlopsPerStep +
      this.D.matMulFlopsPerStep;
  }

  /** Dispatches per round (D's step and G's). */
  get dispatchesPerStep(): number {
    return this.steps.reduce((n, s) => n + s.length, 0);
  }

  /** Writes the settings of a network's next update (as WgslStep's). */
  protected writeOptimizer(net: "G" | "D", epoch: number): void {
    const c = net === "G" ? this.config.optimizerG : this.config.optimizerD;
    const size = (net === "G" ? this.G : this.D).size;
    const t = net === "G" ? this.updatesG++ : this.updatesD++;
    const u = optimizerUniform(c, t, epoch, size);
    this.device.queue.writeBuffer(this.opt[net].settings, 0, u);
    if (net === "G" && this.ema && this.config.ema) {
      // The average's decay after this update, the (t + 1)-th.
      this.device.queue.writeBuffer(
        this.ema.settings,
        0,
        emaUniform(this.config.ema, t, size),
      );
    }
  }

  protected checkNoise(
    z: Float32Array | undefined,
    name: string,
    rows = this.batch,
  ): void {
    if (z?.length !== rows * this.latent) {
      throw new Error(
        `a step takes ${rows} x ${this.latent} noise values (${name})`,
      );
    }
  }

  /** One round, queued: D's update on `real` and `zD`, then G's on `zG`. */
  step(inputs: LayerStepInputs): void {
    this.checkNoise(inputs.zG, "zG");
    if (this.D.hasDropout && inputs.gSeed === undefined) {
      throw new Error("D has dropout: a step needs dSeed and gSeed");
    }
    this.stepD(inputs);
    this.stepG({
      zG: inputs.zG!,
      labels: inputs.labels,
      gSeed: inputs.gSeed,
      epoch: inputs.epoch,
    });
  }

  /**
   * Whether the training images are on the GPU (`data` given to
   * {@linkcode LayerStep.create}): D's steps then take `rows`, not `real`.
   */
  get gathers(): boolean {
    return this.gather !== null;
  }

  /**
   * Throws unless a conditional GAN's step has a batch of `labels`, each a
   * class (the programs index gamma's and the embedding's rows by them),
   * before the step writes anything.
   */
  protected checkLabels(labels: ArrayLike<number> | undefined): void {
    if (this.classes) checkBatchLabels(labels, this.batch, this.classes);
  }

  /**
   * A conditional GAN's `labels` (checked) onto the GPU, and `z` with
   * them: the noise rows followed by their one-hot classes (`z` as it is
   * otherwise).
   */
  protected writeLabels(
    labels: ArrayLike<number> | undefined,
    z: Float32Array,
  ): Float32Array {
    if (!this.classes) return z;
    this.upload(this.labels!, Uint32Array.from(labels!));
    return withClasses(z, labels!, this.latent, this.classes);
  }

  /** D's update on `real` and `zD`, queued. */
  stepD(inputs: Omit<LayerStepInputs, "zG" | "gSeed">): void {
    const H = this.dRows;
    this.checkLabels(inputs.labels);
    const gather = this.gather;
    this.checkRealBatch(gather, inputs, H, IMAGE);
    this.checkNoise(inputs.zD, "zD", H);
    if (this.D.hasDropout) {
      if (inputs.dSeed === undefined) {
        throw new Error("D has dropout: a step needs dSeed (and gSeed)");
      }
      // As discriminatorGrads: the real pass's masks from dSeed, the
      // generated pass's from dSeed + FAKE_MASK_OFFSET.
      this.D.writeMaskSeeds(0, inputs.dSeed);
      this.D.writeMaskSeeds(1, inputs.dSeed + FAKE_MASK_OFFSET);
    }
    if (gather) this.upload(gather.rows, inputs.rows!);
    else this.upload(this.dIn, inputs.real!);
    this.upload(this.z, this.writeLabels(inputs.labels, inputs.zD));
    this.writeOptimizer("D", inputs.epoch ?? 0);
    this.submit(this.steps[0]);
  }

  /** G's update on `zG` through D, queued after the D step before it. */
  stepG(
    inputs: Pick<LayerStepInputs, "labels" | "gSeed" | "epoch"> & {
      zG: Float32Array;
    },
  ): void {
    this.checkNoise(inputs.zG, "zG");
    this.checkLabels(inputs.labels);
    if (this.D.hasDropout) {
      if (inputs.gSeed === undefined) {
        throw new Error("D has dropout: a step needs gSeed");
      }
      this.D.writeMaskSeeds(2, inputs.gSeed);
    }
    this.upload(this.z, this.writeLabels(inputs.labels, inputs.zG));
    this.writeOptimizer("G", inputs.epoch ?? 0);
    this.submit(this.steps[1]);
  }

  /** Zeroes the figures' sums. */
  resetFigures(): void {
    this.device.queue.writeBuffer(this.figureSums, 0, new Float32Array(8));
  }

  /** Reads the figures' sums (as WgslStep's FigureSums). */
  async figures(): Promise<Float32Array> {
    return await this.read(this.figureSums, 0, 7);
  }

  protected async load(gan: Gan): Promise<void> {
    await this.G.load(gan.generator);
    await this.D.load(gan.discriminator, 2);
    for (
      const [net, passes, opt, slots] of [
        [gan.generator, this.G, gan.optimizerG, this.opt.G],
        [gan.discriminator, this.D, gan.optimizerD, this.opt.D],
      ] as const
    ) {
      const n = net.trainable.length;
      this.upload(
        slots.m,
        await flatten(passes.size, passes.offsets, (i) => opt.slots[i]),
      );
      if (opt.slots.length > n) {
        this.upload(
          slots.v,
          await flatten(passes.size, passes.offsets, (i) => opt.slots[n + i]),
        );
      }
    }
    if (this.ema && gan.generatorEma) {
      const average = gan.generatorEma;
      this.upload(
        this.ema.params,
        await flatten(this.G.size, this.G.offsets, (i) => average.trainable[i]),
      );
    }
    this.resetFigures();
  }

  /**
   * Writes the weights, running statistics, u and v, the optimisers' slots
   * and step counts back into `gan` (waits for the queued steps), and the
   * moving average of G's weights when there is one.
   */
  async exportTo(gan: Gan): Promise<void> {
    for (
      const [net, passes, opt, slots, step, slot] of [
        [gan.generator, this.G, gan.optimizerG, this.opt.G, this.updatesG, 0],
        [
          gan.discriminator,
          this.D,
          gan.optimizerD,
          this.opt.D,
          this.updatesD,
          2,
        ],
      ] as const
    ) {
      const [p, m, v] = await Promise.all(
        [passes.params, slots.m, slots.v].map((b) =>
          this.read(b, 0, passes.size)
        ),
      );
      const moving = await Promise.all(
        passes.moving.map((b) => b && this.read(b, 0, b.size / 4)),
      );
      const sn = await passes.readSpectralNorm(slot);
      const n = net.trainable.length;
      tf.tidy(() => {
        net.trainable.forEach((variable, i) => {
          const at = passes.offsets[i];
          const slice = (a: Float32Array) =>
            tf.tensor(a.slice(at, at + variable.size), variable.shape);
          variable.assign(slice(p));
          opt.slots[i].assign(slice(m));
          opt.slots[n + i]?.assign(slice(v));
        });
        let k = 0;
        passes.blocks.forEach((b, i) => {
          if (b.bn) {
            const vars = net.vars[b.bn.layer], r = moving[i]!;
            vars.movingMean!.assign(tf.tensor(r.slice(0, b.channels)));
            vars.movingVar!.assign(
              tf.tensor(r.slice(b.channels, 2 * b.channels)),
            );
          }
          // As readSpectralNorm lists them: the kernel's, the embedding's.
          const vars = net.vars[b.layer];
          for (
            const state of [
              b.sn && vars.sn,
              b.projection?.sn && vars.embeddingSn,
            ]
          ) {
            if (!state) continue;
            state.u.assign(tf.tensor(sn[k].u));
            state.v.assign(tf.tensor(sn[k].v));
            k++;
          }
        });
      });
      opt.step = step;
    }
    if (this.ema && gan.generatorEma) {
      const values = await this.read(this.ema.params, 0, this.G.size);
      assignFlat(values, this.G.offsets, gan.generatorEma.trainable);
      copyStatistics(gan.generatorEma, gan.generator);
    }
  }

  override dispose(): void {
    this.G.dispose();
    this.D.dispose();
    super.dispose();
  }
}
