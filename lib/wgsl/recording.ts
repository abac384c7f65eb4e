/**
 * The recording of a training step: a network's forward and backward
 * passes, the losses, the optimisers and batch norm's running statistics as
 * lists of prepared dispatches, one list per player (or one for
 * `pylearn2`'s simultaneous round), each submitted as one command buffer.
 *
 * @module
 */

import {
  ALEA_CHUNK,
  ALEA_MASK_CODE,
  aleaJumpTable,
  keepThreshold,
} from "../random/dropout_masks.ts";
import { blockMask } from "../nets/layer_net.ts";
import { asMlp, BN_EPS, BN_MOMENTUM } from "../nets/mlp.ts";
import { type Gan } from "../gan.ts";
import { type GanConfig } from "../presets.ts";
import { COPY_DST, type Dispatch } from "./gpu.ts";
import { Kernels } from "./kernels.ts";
import { layout, type NetBuffers, type NetLayout } from "./layout.ts";
import type { MatMulChoice } from "./plans.ts";
import {
  type Act,
  ADAM_CODE,
  bnApplyCode,
  EMA_CODE,
  MASK_MUL_CODE,
  ONE_HOT_CODE,
  SGD_CODE,
} from "./programs.ts";
import { LOSS_CODE } from "./loss_program.ts";

/** The options a recording needs. */
export interface RecordingOptions {
  matMul?: MatMulChoice;
  transformProgram?: (code: string) => string;
}

/** Kernels with a GAN's buffers and its step recorded. */
export class StepRecording extends Kernels {
  protected batch: number;
  protected latent: number;
  protected G: NetLayout;
  protected D: NetLayout;
  protected gBuf: NetBuffers;
  protected dBuf: NetBuffers;
  /** G's input: B rows of noise (each followed by its one-hot class in a conditional GAN). */
  protected z: GPUBuffer;
  /**
   * D's input: rows 0..B-1 real, B..2B-1 generated (G writes them); in a
   * conditional GAN each row is the image followed by its one-hot class.
   */
  protected dIn: GPUBuffer;
  /** A conditional GAN's classes (0 otherwise). */
  protected classes: number;
  /** A conditional GAN's batch classes (B u32), for D's one-hot columns. */
  protected labels: GPUBuffer | null = null;
  /** The epoch's figure sums (see FigureSums). */
  protected figureSums: GPUBuffer;
  /** The step's command buffers: D's and G's, or one (simultaneous). */
  protected steps: Dispatch[][] = [];
  protected config: GanConfig;
  /** The alea jump table and start states (when D has dropout). */
  protected aleaTable: GPUBuffer | null = null;
  protected aleaSeeds: GPUBuffer | null = null;
  /**
   * The moving average of G's parameters (`config.ema`), laid out as G's,
   * and its program's settings; null without one.
   */
  protected ema: { params: GPUBuffer; settings: GPUBuffer } | null = null;

  constructor(device: GPUDevice, gan: Gan, options: RecordingOptions) {
    super(
      device,
      options.transformProgram ?? null,
      options.matMul ?? "auto",
    );
    this.config = gan.config;
    this.batch = gan.config.batchSize;
    this.latent = gan.config.latentDim;
    this.G = layout(asMlp(gan.generator));
    this.D = layout(asMlp(gan.discriminator));
    const B = this.batch;
    const image = this.D.specs[0].inputs;
    const widest = this.widest;
    const limit = device.limits.maxStorageBufferBindingSize;
    if (2 * B * widest * 4 > limit) {
      throw new Error(
        `batch ${B} needs GPU buffers of ${2 * B * widest * 4} bytes, more ` +
          `than this adapter's ${limit}; use a smaller batch or --step tfjs`,
      );
    }
    this.gBuf = this.netBuffers(this.G, B);
    this.dBuf = this.netBuffers(this.D, 2 * B);
    this.classes = gan.config.classes ?? 0;
    this.z = this.buffer(B * this.G.specs[0].inputs);
    this.dIn = this.buffer(2 * B * image);
    if (this.classes) this.labels = this.buffer(B);
    this.figureSums = this.buffer(8);
    if (gan.config.ema) {
      this.ema = {
        params: this.buffer(this.G.size),
        settings: this.buffer(4, GPUBufferUsage.UNIFORM | COPY_DST),
      };
    }
    const deltas = [0, 1, 2].map(() => this.buffer(2 * B * widest));
    const partial = this.buffer(Math.ceil((2 * B) / 256) * widest);
    if (this.dBuf.masks.some((m) => m)) {
      // D's dropout masks are drawn on the GPU (lib/random/dropout_masks.ts): the jumps to
      // each chunk of a part's stream, and each step's start states.
      const longest = Math.max(...this.D.specs.map((s) => B * s.inputs));
      const table = aleaJumpTable(Math.ceil(longest / ALEA_CHUNK));
      this.aleaTable = this.buffer(table.length);
      device.queue.writeBuffer(this.aleaTable, 0, table);
      this.aleaSeeds = this.buffer(4 * 3 * this.D.specs.length);
    }
    this.record(deltas, partial);
  }

  /** The widest layer's input or output, in floats per row. */
  protected get widest(): number {
    return Math.max(
      ...[...this.G.specs, ...this.D.specs].map((s) =>
        Math.max(s.inputs, s.units * s.pieces)
      ),
    );
  }

  protected netBuffers(net: NetLayout, rows: number): NetBuffers {
    return {
      params: this.buffer(net.size),
      grads: this.buffer(net.size),
      m: this.buffer(net.size),
      v: this.buffer(net.size),
      acts: net.specs.map((s) => this.buffer(rows * s.units)),
      pre: net.specs.map((s) =>
        s.pieces > 1 || s.batchNorm
          ? this.buffer(rows * s.units * s.pieces)
          : null
      ),
      stats: net.specs.map((s) =>
        s.batchNorm ? this.buffer(2 * s.units) : null
      ),
      moving: net.specs.map((s) =>
        s.batchNorm ? this.buffer(2 * s.units) : null
      ),
      masks: net.specs.map((s) =>
        s.dropout > 0 ? this.buffer(rows * s.inputs) : null
      ),
      blockMasks: net.specs.map((s) => {
        if (!s.labelBlock) return null;
        const cols = s.units * s.pieces;
        const mask = blockMask(s.inputs, cols, {
          inputs: s.labelBlock.inputs,
          units: s.labelBlock.units * s.pieces,
        });
        const b = this.buffer(mask.length);
        this.upload(b, mask);
        return b;
      }),
      opt: this.buffer(8, GPUBufferUsage.UNIFORM | COPY_DST),
    };
  }

  /** A batch-norm program's settings for layer `l` of `net` over `rows`. */
  protected bnUniform(net: NetLayout, l: number, rows: number): GPUBuffer {
    const units = net.specs[l].units;
    return this.uniform(
      [
        rows,
        units,
        net.gamma[l],
        net.beta[l],
        BN_EPS,
        BN_MOMENTUM,
        Math.fround(1 - BN_MOMENTUM),
        0,
      ],
      [false, false, false, false, true, true, true, false],
    );
  }

  /**
   * Forward passes of a network over `rows` rows of `input` (from row
   * `inRow`), each layer's output into its `acts` buffer (or, for the
   * last, into `out` from row `outRow`). A layer with dropout multiplies
   * its input by its mask (rows from 0) as it reads it; a maxout layer
   * writes its pieces to `pre`, then takes their max; a batch-norm layer
   * writes its affine output to `pre`, takes the batch's statistics, then
   * normalises and applies the nonlinearity.
   */
  protected forward(
    net: NetLayout,
    buf: NetBuffers,
    o: {
      rows: number;
      input: GPUBuffer;
      inRow: number;
      out?: GPUBuffer;
      outRow?: number;
      /** Floats between rows of `out` (default: the last layer's units). */
      outStride?: number;
    },
  ): Dispatch[] {
    return net.specs.flatMap((s, l) => {
      const last = l === net.specs.length - 1;
      const input = l === 0 ? o.input : buf.acts[l - 1];
      const output = last && o.out ? o.out : buf.acts[l];
      const pre = buf.pre[l];
      const affine = this.matMul({
        M: o.rows,
        N: s.units * s.pieces,
        K: s.inputs,
        a: input,
        aOff: l === 0 ? o.inRow * s.inputs : 0,
        maskA: true,
        mask: buf.masks[l],
        b: buf.params,
        bOff: net.kernel[l],
        c: pre ?? output,
        cOff: !pre && last && o.out
          ? (o.outRow ?? 0) * (o.outStride ?? s.units)
          : 0,
        ldc: !pre && last && o.out ? o.outStride : undefined,
        e: buf.params,
        eOff: net.bias[l],
        epilogue: { kind: "bias", act: pre ? "linear" : s.activation },
      });
      if (!pre) return affine;
      if (s.pieces > 1) {
        return [
          ...affine,
          this.maxout(o.rows, s.units, s.pieces, pre, output),
        ];
      }
      if (last && o.out) {
        throw new Error("unreachable: batch norm at G's output");
      }
      return [
        ...affine,
        ...this.batchNorm({
          pre,
          stats: buf.stats[l]!,
          params: buf.params,
          out: output,
          u: this.bnUniform(net, l, o.rows),
          channels: s.units,
          values: o.rows * s.units,
          apply: bnApplyCode(s.activation),
        }),
      ];
    });
  }

  /**
   * Backward pass of a network from the gradient with respect to its last
   * layer's pre-activation (in `deltas[0]`): weight and bias gradients when
   * `weights`, and the gradient with respect to the input's pre-activation
   * (through `below`'s nonlinearity, whose output is `below.out` from row
   * `below.row`) when `below` is given. `deltas` are three buffers that
   * take turns; returns the dispatches and the buffer that holds the last
   * gradient.
   */
  protected backward(
    net: NetLayout,
    buf: NetBuffers,
    o: {
      rows: number;
      input: GPUBuffer;
      inRow: number;
      weights: boolean;
      deltas: GPUBuffer[];
      partial: GPUBuffer;
      below?: { act: Act; out: GPUBuffer; row: number };
      /**
       * Where the pass's rows start in the network's own buffers (outputs,
       * pre-activations, masks); default 0. Input gradients only.
       */
      row?: number;
      /**
       * Values at the end of each input row that are not a gradient's
       * destination (a conditional D's one-hot class); default 0.
       */
      classInputs?: number;
    },
  ): { dispatches: Dispatch[]; last: GPUBuffer } {
    const row = o.row ?? 0;
    if (row && o.weights) throw new Error("unreachable: weights from row 0");
    const out: Dispatch[] = [];
    let cur = o.deltas[0];
    /** A delta buffer other than the ones given. */
    const spare = (...busy: GPUBuffer[]) =>
      o.deltas.find((d) => !busy.includes(d))!;
    for (let l = net.specs.length - 1; l >= 0; l--) {
      const s = net.specs[l];
      const cols = s.units * s.pieces;
      if (s.batchNorm) {
        if (row) throw new Error("unreachable: batch norm in D");
        // cur holds the gradient with respect to the normalised output:
        // gamma's and beta's gradients, then the affine output's.
        const next = spare(cur);
        out.push(...this.batchNormBackward({
          dy: cur,
          pre: buf.pre[l]!,
          stats: buf.stats[l]!,
          params: buf.params,
          grads: buf.grads,
          next,
          u: this.bnUniform(net, l, o.rows),
          channels: s.units,
          values: o.rows * s.units,
        }));
        cur = next;
      }
      if (o.weights) {
        const x = l === 0 ? o.input : buf.acts[l - 1];
        // dW[inputs, cols] = (X * mask)^T delta
        out.push(...this.matMul({
          M: s.inputs,
          N: cols,
          K: o.rows,
          a: x,
          aOff: l === 0 ? o.inRow * s.inputs : 0,
          transA: true,
          maskA: true,
          mask: buf.masks[l],
          b: cur,
          c: buf.grads,
          cOff: net.kernel[l],
          epilogue: { kind: "store" },
        }));
        const block = buf.blockMasks[l];
        if (block) {
          // The label block's zeros stay zero: their gradient is masked,
          // as tfjs's gradient of kernel * mask is.
          out.push(this.readAWriteC(
            MASK_MUL_CODE,
            block,
            buf.grads,
            [s.inputs * cols, 0, 0, 0, 0, net.kernel[l]],
            this.grid(s.inputs * cols),
          ));
        }
        out.push(...this.colSum({
          M: o.rows,
          N: cols,
          a: cur,
          c: buf.grads,
          cOff: net.bias[l],
          partial: o.partial,
        }));
      }
      const inner = l > 0 ? net.specs[l - 1] : null;
      const below = inner
        ? { act: inner.activation, out: buf.acts[l - 1], row }
        : o.below;
      if (!below) continue;
      // The gradient with respect to this layer's input, delta W^T, times
      // its dropout mask, then through the nonlinearity below.
      const maxout = inner && inner.pieces > 1;
      const next = spare(cur);
      // Into G's output from D's first layer: the image's columns only (a
      // conditional D's input ends with the one-hot class, no one's output).
      const classes = inner ? 0 : o.classInputs ?? 0;
      out.push(...this.matMul({
        M: o.rows,
        N: s.inputs - classes,
        K: cols,
        lde: s.inputs,
        a: cur,
        b: buf.params,
        bOff: net.kernel[l],
        transB: true,
        maskOut: true,
        mask: buf.masks[l],
        mOff: row * s.inputs,
        c: next,
        e: maxout ? buf.pre[l - 1]! : below.out,
        eOff: below.row * s.inputs * (maxout ? inner.pieces : 1),
        epilogue: maxout
          ? { kind: "maxoutGrad", pieces: inner.pieces }
          : { kind: "actGrad", act: below.act },
      }));
      cur = next;
    }
    return { dispatches: out, last: cur };
  }

  /** The running statistics' updates of a network's batch-norm layers. */
  protected movingStats(net: NetLayout, buf: NetBuffers): Dispatch[] {
    return net.specs.flatMap((s, l) => {
      if (!s.batchNorm) return [];
      return [this.movingStatistics(
        buf.stats[l]!,
        buf.moving[l]!,
        this.bnUniform(net, l, this.batch),
        s.units,
      )];
    });
  }

  protected record(deltas: GPUBuffer[], partial: GPUBuffer): void {
    const B = this.batch;
    const G = this.G, D = this.D;
    const gOut = G.specs[G.specs.length - 1].activation;
    const dLast = this.dBuf.acts[D.specs.length - 1];
    const c = this.config;
    // The losses' program's modes (LOSS_CODE): D's, then G's.
    const [dMode, gMode] = c.loss === "hinge"
      ? [3, 4]
      : c.loss === "least-squares"
      ? [5, 6]
      : [0, c.loss === "saturating" ? 2 : 1];
    // G(z) into rows B..2B-1 of D's input.
    const forwardG = () =>
      this.forward(G, this.gBuf, {
        rows: B,
        input: this.z,
        inRow: 0,
        out: this.dIn,
        outRow: B,
        outStride: D.specs[0].inputs,
      });
    // D on all 2B rows, real and generated.
    const forwardD = () =>
      this.forward(D, this.dBuf, { rows: 2 * B, input: this.dIn, inRow: 0 });
    // From D's loss (in deltas[0]) to D's update.
    const backwardD = () => [
      ...this.backward(D, this.dBuf, {
        rows: 2 * B,
        input: this.dIn,
        inRow: 0,
        weights: true,
        deltas,
        partial,
      }).dispatches,
      this.optimizerDispatch(D, this.dBuf, c.optimizerD.kind),
    ];
    // From G's loss (in deltas[0]) back through D, whose pass over the
    // generated rows starts at `row` of its buffers, into G's update.
    const backwardG = (row: number) => {
      const throughD = this.backward(D, this.dBuf, {
        rows: B,
        input: this.dIn,
        inRow: B,
        weights: false,
        deltas,
        partial,
        below: { act: gOut, out: this.dIn, row: B },
        row,
        classInputs: this.classes,
      });
      return [
        ...throughD.dispatches,
        ...this.backward(G, this.gBuf, {
          rows: B,
          input: this.z,
          inRow: 0,
          weights: true,
          deltas: [
            throughD.last,
            ...deltas.filter((d) => d !== throughD.last),
          ],
          partial,
        }).dispatches,
        this.optimizerDispatch(G, this.gBuf, c.optimizerG.kind),
        // From this pass's batch statistics, as generatorStep does.
        ...this.movingStats(G, this.gBuf),
        // The average of G's parameters follows them.
        ...this.ema
          ? [this.dispatch(
            EMA_CODE,
            ["storage", "read-only-storage", "uniform"],
            [this.ema.params, this.gBuf.params, this.ema.settings],
            this.grid(G.size),
          )]
          : [],
      ];
    };
    if ((c.update ?? "alternating") === "simultaneous") {
      // simultaneousStep: one pass of G and D; G's gradients through D's
      // pass on the generated rows (rows B..2B-1 of D's buffers, their
      // masks), D's from the whole pass; both taken before either update.
      this.steps = [[
        ...this.oneHotDispatches(),
        ...this.maskDispatches(2),
        ...forwardG(),
        ...forwardD(),
        this.lossDispatch(dLast, deltas[0], gMode, B),
        ...backwardG(B),
        this.lossDispatch(dLast, deltas[0], dMode),
        ...backwardD(),
      ]];
      return;
    }
    // D's step, then G's: G(z) again, D on the B generated rows only (its
    // buffers from row 0), back through D into G.
    this.steps = [
      [
        ...this.oneHotDispatches(),
        ...this.maskDispatches(2),
        ...forwardG(),
        ...forwardD(),
        this.lossDispatch(dLast, deltas[0], dMode),
        ...backwardD(),
      ],
      [
        ...this.maskDispatches(1),
        ...forwardG(),
        ...this.forward(D, this.dBuf, {
          rows: B,
          input: this.dIn,
          inRow: B,
        }),
        this.lossDispatch(dLast, deltas[0], gMode),
        ...backwardG(0),
      ],
    ];
  }

  /**
   * The programs that draw D's dropout masks for a pass of one part (G's
   * step: B generated rows) or two (D's step: B real rows, then B
   * generated), each part from its own seed as `lib/gan.ts` draws them:
   * layer l's mask from the part's seed + l. The start states are in
   * `#aleaSeeds`: D's pass's (layer l, part p) at 2l + p, G's pass's at
   * 2L + l (L layers), written by {@linkcode WgslStep.writeSeeds}.
   */
  protected maskDispatches(parts: 1 | 2): Dispatch[] {
    const B = this.batch, layers = this.D.specs.length;
    return this.D.specs.flatMap((s, l) => {
      const mask = this.dBuf.masks[l];
      if (!mask) return [];
      const len = B * s.inputs, chunks = Math.ceil(len / ALEA_CHUNK);
      const keep = 1 - s.dropout;
      const u = this.uniform([
        len,
        parts === 2 ? len : 0,
        keepThreshold(keep),
        Math.fround(1 / keep),
        parts === 2 ? 2 * l : 2 * layers + l,
        chunks,
        parts * chunks,
        s.inputs,
        // A conditional D's one-hot class is never dropped.
        l === 0 ? this.classes : 0,
      ], [false, false, false, true]);
      return [this.dispatch(
        ALEA_MASK_CODE,
        [
          "read-only-storage",
          "read-only-storage",
          "storage",
          "uniform",
        ],
        [this.aleaTable!, this.aleaSeeds!, mask, u],
        this.grid(parts * chunks, 64),
      )];
    });
  }

  /**
   * A conditional GAN's one-hot classes in D's input, real and generated
   * rows alike (from `labels`, written by each step); none otherwise.
   */
  protected oneHotDispatches(): Dispatch[] {
    if (!this.classes) return [];
    const B = this.batch, width = this.D.specs[0].inputs;
    const n = 2 * B * this.classes;
    return [this.dispatch(
      ONE_HOT_CODE,
      ["read-only-storage", "storage", "uniform"],
      [
        this.labels!,
        this.dIn,
        this.uniform([n, B, this.classes, width, width - this.classes]),
      ],
      this.grid(n),
    )];
  }

  /** Dispatches per training step (D's and G's). */
  get dispatchesPerStep(): number {
    return this.steps.reduce((n, s) => n + s.length, 0);
  }

  /** The update of all of a network's parameters (Adam or SGD). */
  protected optimizerDispatch(
    net: NetLayout,
    buf: NetBuffers,
    kind: "adam" | "sgd",
  ): Dispatch {
    return this.dispatch(
      kind === "adam" ? ADAM_CODE : SGD_CODE,
      ["storage", "read-only-storage", "storage", "storage", "uniform"],
      [buf.params, buf.grads, buf.m, buf.v, buf.opt],
      this.grid(net.size),
    );
  }

  /**
   * The losses' program: mode 0 (cross-entropy), 3 (hinge) or 5 (least
   * squares) for D, 1, 2, 4 or 6 for G (logits from row `row`).
   */
  protected lossDispatch(
    logits: GPUBuffer,
    delta: GPUBuffer,
    mode: number,
    row = 0,
  ): Dispatch {
    const u = this.uniform(
      [
        this.batch,
        mode,
        this.config.realLabel,
        this.config.dLossScale ?? 1,
        row,
      ],
      [false, false, true, true, false],
    );
    return this.dispatch(
      LOSS_CODE,
      ["read-only-storage", "storage", "storage", "uniform"],
      [logits, delta, this.figureSums, u],
      [1, 1],
    );
  }
}
