/**
 * A layer-list network (`lib/nets/layer_net.ts`) compiled to the WGSL
 * programs: its training forward pass and its backward pass as prepared
 * dispatches, for the convolutional presets' WGSL step.
 *
 * The network is read as blocks (`lib/wgsl/layer_blocks.ts`); reshape and
 * flatten move nothing (an NHWC image is its row of values). A block's product writes its
 * output with the bias and the nonlinearity in the matMul's epilogue, or,
 * with batch norm, its affine output, which the batch's statistics then
 * normalise. The backward pass goes from the gradient with respect to the
 * last block's output before its nonlinearity: batch norm's two programs,
 * the weight gradient (a dense or conv2d layer's bias gradient in the same
 * product, a transposed layer's as column sums), and the input's gradient
 * through the nonlinearity below in the product's epilogue; after every
 * block, the gradients through sigma of the spectrally normalised weights.
 *
 * A transposed convolution is the convolution of the mirrored shape run
 * backwards (`lib/wgsl/conv_programs.ts`): its forward pass is that
 * convolution's input-gradient product, its weight gradient that
 * convolution's filter gradient with the roles of image and gradient
 * swapped, and its input's gradient that convolution's forward product.
 *
 * Dropout multiplies the block's output by its mask in the product's
 * epilogue, and the gradient below by it in the next block's
 * input-gradient product; the masks are drawn on the GPU
 * (`lib/random/dropout_masks.ts`) as `LayerNet.apply` draws them.
 *
 * A conditional network's passes read each example's class from `labels`:
 * class-conditional batch norm's gamma and beta rows, and D's projection
 * (`lib/wgsl/projection.ts`), whose embedding is spectrally
 * normalised with a power iteration of its own in each pass, as the
 * kernel's.
 *
 * @module
 */

import type { LayerNet } from "../nets/layer_net.ts";
import { type Block, layerBlocks } from "./layer_blocks.ts";
import type { Dispatch } from "./gpu.ts";
import type { SpectralNormOperands } from "./sn_kernels.ts";
import type { MatMulChoice } from "./plans.ts";
import {
  ALEA_CHUNK,
  ALEA_MASK_CODE,
  aleaJumpTable,
  aleaStart,
  keepThreshold,
} from "../random/dropout_masks.ts";
import { type Act, bnApplyCode, type Epilogue } from "./programs.ts";
import { BlockKernels, foldsBias } from "./block_kernels.ts";

/** A pass's own buffers: what its backward pass reads of it. */
export interface PassBuffers {
  /** Each block's output (after batch norm and the nonlinearity). */
  acts: GPUBuffer[];
  /** A batch-norm block's product before normalisation. */
  pre: (GPUBuffer | null)[];
  /** A batch-norm block's batch means and variances. */
  stats: (GPUBuffer | null)[];
  /** A block with dropout: its output's mask (0 or 1 / keep). */
  masks: (GPUBuffer | null)[];
}

/**
 * One network's buffers and passes on the GPU, for passes of `rows`
 * examples. Each of its `slots` keeps one pass (its outputs, batch
 * statistics, and each spectrally normalised weight's u, v, sigma and
 * W / sigma) until that pass's backward pass: D's step in the tfjs step
 * runs D twice, on the real and on the generated batch, each with a power
 * iteration of its own, and G's step a third time.
 */
export class LayerPasses extends BlockKernels {
  readonly blocks: Block[];
  readonly size: number;
  readonly offsets: number[];
  readonly rows: number;
  readonly slots: number;
  readonly params: GPUBuffer;
  readonly grads: GPUBuffer;
  /** u, v and sigma of each spectrally normalised weight, per slot. */
  readonly snState: GPUBuffer;
  /** Each spectrally normalised weight divided by its sigma, per slot. */
  readonly normed: GPUBuffer;
  /** Floats of one slot in `snState` and in `normed`. */
  protected snStride: number;
  protected normedStride: number;
  readonly passes: PassBuffers[];
  /** A batch-norm block's running means and variances. */
  readonly moving: (GPUBuffer | null)[];
  /** Three gradient buffers that take turns, and the column sums' partials. */
  readonly deltas: GPUBuffer[];
  protected partial: GPUBuffer;
  /** Zeros for the bias of a block without one that has a nonlinearity. */
  protected zeros: GPUBuffer;
  protected bnScratch: GPUBuffer | null;
  /** The dropout masks' jump table and start states (with dropout). */
  protected alea: { table: GPUBuffer; seeds: GPUBuffer } | null = null;
  /** Each example's class (u32), for a conditional network's layers. */
  protected labels: GPUBuffer | null;

  /** Whether the network has dropout (a pass then needs its seed). */
  get hasDropout(): boolean {
    return this.alea !== null;
  }

  /**
   * Writes the start states of slot `slot`'s masks from the pass's `seed`
   * (each dropout layer's from seed + the weight layers before it).
   */
  writeMaskSeeds(slot: number, seed: number): void {
    if (!this.alea) return;
    const n = this.blocks.length;
    const states = new Uint32Array(4 * n);
    this.blocks.forEach((b, i) => {
      if (b.dropout) states.set(aleaStart(seed + b.dropout.seed), 4 * i);
    });
    this.upload(this.alea.seeds, states, 4 * n * slot);
  }

  /** The programs that draw slot `slot`'s masks for a pass of `rows`. */
  protected maskDispatches(slot: number, rows: number): Dispatch[] {
    const n = this.blocks.length;
    return this.blocks.flatMap((b, i) => {
      if (!b.dropout) return [];
      const len = rows * b.outputs, chunks = Math.ceil(len / ALEA_CHUNK);
      const keep = 1 - b.dropout.rate;
      const u = this.uniform(
        [
          len,
          0,
          keepThreshold(keep),
          Math.fround(1 / keep),
          slot * n + i,
          chunks,
          chunks,
          b.outputs,
          0,
        ],
        [false, false, false, true],
      );
      return [this.dispatch(
        ALEA_MASK_CODE,
        ["read-only-storage", "read-only-storage", "storage", "uniform"],
        [this.alea!.table, this.alea!.seeds, this.passes[slot].masks[i]!, u],
        this.grid(chunks, 64),
      )];
    });
  }

  constructor(
    device: GPUDevice,
    net: LayerNet,
    o: {
      rows: number;
      slots?: number;
      matMul?: MatMulChoice;
      transformProgram?: (code: string) => string;
      /**
       * Each example's class, one u32 a row of a pass (a conditional
       * network's; the caller writes it before each pass).
       */
      labels?: GPUBuffer;
    },
  ) {
    super(device, o.transformProgram ?? null, o.matMul ?? "auto");
    const compiled = layerBlocks(net);
    this.blocks = compiled.blocks;
    this.labels = o.labels ?? null;
    if (
      !this.labels && this.blocks.some((b) => b.projection || b.bn?.classes)
    ) {
      throw new Error(
        `${net.name} reads the class: its passes need a labels buffer`,
      );
    }
    this.size = compiled.size;
    this.offsets = compiled.offsets;
    this.rows = o.rows;
    this.slots = o.slots ?? 1;
    const R = o.rows;
    const widest = Math.max(
      ...this.blocks.flatMap((b) => [b.inputs, b.outputs]),
    );
    const limit = device.limits.maxStorageBufferBindingSize;
    if (R * widest * 4 > limit) {
      throw new Error(
        `${R} rows need GPU buffers of ${R * widest * 4} bytes, more than ` +
          `this adapter's ${limit}; use a smaller batch or --step tfjs`,
      );
    }
    this.params = this.buffer(this.size);
    this.grads = this.buffer(this.size);
    this.snStride = compiled.snState;
    this.normedStride = compiled.snNormed;
    this.snState = this.buffer(this.slots * compiled.snState);
    this.normed = this.buffer(this.slots * compiled.snNormed);
    this.passes = Array.from({ length: this.slots }, () => ({
      acts: this.blocks.map((b) => this.buffer(R * b.outputs)),
      pre: this.blocks.map((b) => b.bn ? this.buffer(R * b.outputs) : null),
      stats: this.blocks.map((b) => b.bn ? this.buffer(2 * b.channels) : null),
      masks: this.blocks.map((b) =>
        b.dropout ? this.buffer(R * b.outputs) : null
      ),
    }));
    if (this.blocks.some((b) => b.dropout)) {
      // The masks' generator: the jumps to each chunk of a mask's stream,
      // and each (slot, block)'s start state, written per step.
      const longest = Math.max(
        ...this.blocks.map((b) => b.dropout ? R * b.outputs : 0),
      );
      const table = aleaJumpTable(Math.ceil(longest / ALEA_CHUNK));
      this.alea = {
        table: this.buffer(table.length),
        seeds: this.buffer(4 * this.slots * this.blocks.length),
      };
      this.upload(this.alea.table, table);
    }
    this.moving = this.blocks.map((b) =>
      b.bn ? this.buffer(2 * b.channels) : null
    );
    this.deltas = [0, 1, 2].map(() => this.buffer(R * widest));
    // A column sum's partials: ceil(M / 256) rows of N, M N <= R widest.
    this.partial = this.buffer(Math.ceil(R * widest / 256) + widest);
    // What a batch-norm block's backward pass writes of gamma's and beta's
    // gradients when the pass takes no weight gradients.
    this.bnScratch = this.blocks.some((b) => b.bn)
      ? this.buffer(this.size)
      : null;
    this.zeros = this.buffer(widest);
  }

  /** Each block's output buffer in pass slot `slot` (default 0). */
  acts(slot = 0): GPUBuffer[] {
    return this.passes[slot].acts;
  }

  /**
   * Copies `net`'s parameters, running statistics and spectral-norm
   * vectors to the GPU (u and v into slot `slot`).
   */
  async load(net: LayerNet, slot = 0): Promise<void> {
    const flat = new Float32Array(this.size);
    for (const [i, v] of net.trainable.entries()) {
      flat.set(await v.data() as Float32Array, this.offsets[i]);
    }
    this.upload(this.params, flat);
    for (const [i, b] of this.blocks.entries()) {
      const vars = net.vars[b.layer];
      for (
        const [sn, state] of [
          [b.sn, vars.sn],
          [b.projection?.sn, vars.embeddingSn],
        ] as const
      ) {
        if (!sn) continue;
        const at = slot * this.snStride + sn.state;
        this.upload(this.snState, await state!.u.data() as Float32Array, at);
        this.upload(
          this.snState,
          await state!.v.data() as Float32Array,
          at + sn.out,
        );
      }
      if (b.bn) {
        const bn = net.vars[b.bn.layer];
        this.upload(
          this.moving[i]!,
          await bn.movingMean!.data() as Float32Array,
        );
        this.upload(
          this.moving[i]!,
          await bn.movingVar!.data() as Float32Array,
          b.channels,
        );
      }
    }
  }

  /** The gradients, one array per variable of `LayerNet.trainable`. */
  async readGrads(grads = this.grads): Promise<Float32Array[]> {
    const all = await this.read(grads, 0, this.size);
    return this.offsets.map((at, i) =>
      all.slice(
        at,
        i + 1 < this.offsets.length ? this.offsets[i + 1] : this.size,
      )
    );
  }

  /**
   * Each spectrally normalised weight's u, v and sigma in slot `slot`, in
   * block order: a block's kernel's, then its embedding's.
   */
  async readSpectralNorm(slot = 0): Promise<
    { u: Float32Array; v: Float32Array; sigma: number }[]
  > {
    const out = [];
    for (const b of this.blocks) {
      for (const sn of [b.sn, b.projection?.sn]) {
        if (!sn) continue;
        const s = await this.read(
          this.snState,
          slot * this.snStride + sn.state,
          sn.out + sn.rest + 1,
        );
        out.push({
          u: s.slice(0, sn.out),
          v: s.slice(sn.out, sn.out + sn.rest),
          sigma: s[sn.out + sn.rest],
        });
      }
    }
    return out;
  }

  /** A buffer's first `floats` values (waits for the queued work). */
  readBuffer(buffer: GPUBuffer, floats: number): Promise<Float32Array> {
    return this.read(buffer, 0, floats);
  }

  /** Queues dispatches as one command buffer. */
  run(dispatches: Dispatch[]): void {
    this.submit(dispatches);
  }

  /** Writes values into a buffer from float `at`. */
  write(buffer: GPUBuffer, data: Float32Array, at = 0): void {
    this.upload(buffer, data, at);
  }

  /** A buffer of its own, for a pass's input or gradient. */
  allocate(floats: number): GPUBuffer {
    return this.buffer(floats);
  }

  /** A pass's examples: at most the buffers' `rows`. */
  protected passRows(rows: number | undefined): number {
    if (rows !== undefined && (rows > this.rows || rows < 1)) {
      throw new Error(
        `a pass of ${rows} examples, the buffers hold ${this.rows}`,
      );
    }
    return rows ?? this.rows;
  }

  /** Rows of pixels a block's product has per example (1 for dense). */
  protected pixels(b: Block): number {
    return b.outputs / b.channels;
  }

  /** The weight a block's products read in a slot: W, or W / sigma. */
  protected weight(b: Block, slot: number): { w: GPUBuffer; wOff: number } {
    return b.sn
      ? { w: this.normed, wOff: slot * this.normedStride + b.sn.normed }
      : { w: this.params, wOff: b.kernel };
  }

  /**
   * A spectrally normalised block's operands in slot `slot`, its power
   * iteration starting from slot `from`'s u.
   */
  protected snOperands(
    b: Block,
    slot: number,
    from = slot,
    embedding = false,
  ) {
    const sn = embedding ? b.projection!.sn! : b.sn!;
    return {
      params: this.params,
      grads: this.grads,
      wOff: embedding ? b.projection!.embedding : b.kernel,
      state: this.snState,
      sOff: slot * this.snStride + sn.state,
      srcOff: from * this.snStride + sn.state,
      normed: this.normed,
      nOff: slot * this.normedStride + sn.normed,
      rest: sn.rest,
      out: sn.out,
    };
  }

  /** The embedding a projection block's programs read in a slot: E, or E / sigma. */
  protected embedding(b: Block, slot: number): { e: GPUBuffer; eOff: number } {
    const p = b.projection!;
    return p.sn
      ? { e: this.normed, eOff: slot * this.normedStride + p.sn.normed }
      : { e: this.params, eOff: p.embedding };
  }

  /** A batch-norm program's settings for block `b` over `rows` examples. */
  protected bnUniform(b: Block, rows: number): GPUBuffer {
    const bn = b.bn!;
    return this.uniform(
      [
        rows * this.pixels(b),
        b.channels,
        bn.gamma,
        bn.beta,
        bn.eps,
        // The running statistics: R momentum + S (1 - momentum), as
        // LayerNet.updateMovingStats (BN_MOVING_CODE's keep, then its share).
        1 - bn.momentum,
        bn.momentum,
        this.pixels(b),
      ],
      [false, false, false, false, true, true, true, false],
    );
  }

  /**
   * A training forward pass over `rows` examples of `input` (from float
   * `inOff`) into slot `slot`: each block's spectral normalisation (one
   * power iteration from slot `from`'s u, by default the slot's own),
   * product, batch statistics and normalisation; with `moving`, batch
   * norm's running statistics updated from this pass's statistics.
   */
  forward(o: {
    input: GPUBuffer;
    inOff?: number;
    rows?: number;
    slot?: number;
    from?: number;
    moving?: boolean;
    /** Where the last block writes its output instead (from float `off`). */
    out?: { buffer: GPUBuffer; off: number };
  }): Dispatch[] {
    const R = this.passRows(o.rows);
    const slot = o.slot ?? 0;
    const pass = this.passes[slot];
    const lastBlock = this.blocks.length - 1;
    if (o.out && this.blocks[lastBlock].bn) {
      throw new Error("unreachable: batch norm writes its own output");
    }
    const masks = this.maskDispatches(slot, R);
    // Every weight's power iteration first: the small ones in one dispatch.
    const from = o.from ?? slot;
    const normalised = this.blocks.flatMap((b) => [
      ...b.sn ? [this.snOperands(b, slot, from)] : [],
      ...b.projection?.sn ? [this.snOperands(b, slot, from, true)] : [],
    ]);
    return [
      ...masks,
      ...this.spectralNorm(normalised),
      ...this.blocks.flatMap((b, i) => {
        const out: Dispatch[] = [];
        const x = i === 0 ? o.input : pass.acts[i - 1];
        const elsewhere = i === lastBlock && o.out;
        const target = b.bn
          ? pass.pre[i]!
          : elsewhere
          ? o.out!.buffer
          : pass.acts[i];
        const act = b.bn ? "linear" : b.act;
        const epilogue: Epilogue = b.bias >= 0 || act !== "linear"
          ? { kind: "bias", act }
          : { kind: "store" };
        out.push(...this.product(b, R, this.weight(b, slot), {
          form: "forward",
          a: x,
          aOff: i === 0 ? o.inOff : 0,
          c: target,
          cOff: elsewhere ? o.out!.off : 0,
          e: b.bias >= 0 ? this.params : this.zeros,
          eOff: b.bias >= 0 ? b.bias : 0,
          epilogue,
          mask: pass.masks[i],
        }));
        if (b.projection) {
          // + h . E[y], onto the logits the product wrote.
          out.push(this.projection({
            rows: R,
            features: b.inputs,
            h: x,
            hOff: i === 0 ? o.inOff ?? 0 : 0,
            ...this.embedding(b, slot),
            labels: this.labels!,
            out: target,
            outOff: elsewhere ? o.out!.off : 0,
          }));
        }
        if (b.bn) {
          out.push(...this.batchNorm({
            pre: pass.pre[i]!,
            stats: pass.stats[i]!,
            params: this.params,
            out: pass.acts[i],
            u: this.bnUniform(b, R),
            channels: b.channels,
            values: R * b.outputs,
            apply: bnApplyCode(b.act, b.bn.divide, !!b.bn.classes),
            ...b.bn.classes ? { labels: this.labels! } : {},
            ...o.moving ? { moving: this.moving[i]! } : {},
          }));
        }
        return out;
      }),
    ];
  }

  /**
   * The backward pass of slot `slot`'s pass over `rows` examples from
   * `delta`, the gradient with respect to the last block's output before
   * its nonlinearity: the parameters' gradients into `grads` (default the
   * network's own) when `weights`, and, with `below`, the gradient with
   * respect to the input's value before the nonlinearity `below.act` whose
   * output `below.out` holds from float `below.outOff`. Returns the
   * dispatches and the buffer with the last gradient.
   */
  backward(o: {
    input: GPUBuffer;
    inOff?: number;
    delta: GPUBuffer;
    /** Where the gradient starts in `delta` (floats; default 0). */
    deltaOff?: number;
    rows?: number;
    slot?: number;
    weights: boolean;
    grads?: GPUBuffer;
    below?: { act: Act; out: GPUBuffer; outOff?: number };
  }): { dispatches: Dispatch[]; last: GPUBuffer } {
    const R = this.passRows(o.rows);
    const slot = o.slot ?? 0;
    const pass = this.passes[slot];
    // Without weight gradients, batch norm's gamma and beta sums (which its
    // input gradient reads) go to the scratch buffer.
    const grads = o.weights
      ? o.grads ?? this.grads
      : this.bnScratch ?? this.grads;
    const out: Dispatch[] = [];
    let cur = o.delta;
    // The offset of `cur`: deltaOff in the given gradient, 0 in ours.
    let curOff = o.deltaOff ?? 0;
    if (curOff && this.blocks[this.blocks.length - 1].bn) {
      throw new Error("unreachable: batch norm's gradient from an offset");
    }
    const spare = (...busy: GPUBuffer[]) =>
      this.deltas.find((d) => !busy.includes(d))!;
    // The gradients through sigma, taken after every weight's gradient (the
    // small weights' in one dispatch); the input gradients read W / sigma.
    const normalised: SpectralNormOperands[] = [];
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const b = this.blocks[i];
      const x = i === 0 ? o.input : pass.acts[i - 1];
      const xOff = i === 0 ? o.inOff ?? 0 : 0;
      if (b.bn) {
        const next = spare(cur, o.delta);
        out.push(...this.batchNormBackward({
          dy: cur,
          pre: pass.pre[i]!,
          stats: pass.stats[i]!,
          params: this.params,
          grads,
          next,
          u: this.bnUniform(b, R),
          channels: b.channels,
          values: R * b.outputs,
          ...b.bn.classes
            ? { labels: this.labels!, classes: b.bn.classes }
            : {},
        }));
        cur = next;
        curOff = 0;
      }
      if (o.weights) {
        out.push(
          ...this.weightGradient(b, R, {
            x,
            xOff,
            dy: cur,
            dyOff: curOff,
            grads,
          }),
        );
        if (b.sn) normalised.push({ ...this.snOperands(b, slot), grads });
        if (b.bias >= 0 && !foldsBias(b)) {
          out.push(...this.colSum({
            M: R * this.pixels(b),
            N: b.channels,
            a: cur,
            aOff: curOff,
            c: grads,
            cOff: b.bias,
            partial: this.partial,
          }));
        }
        if (b.projection) {
          // dE: each class's row gathers delta h over its examples.
          const p = b.projection;
          out.push(this.projectionGrad({
            classes: p.classes,
            features: b.inputs,
            rows: R,
            h: x,
            hOff: xOff,
            delta: cur,
            deltaOff: curOff,
            labels: this.labels!,
            grads,
            gOff: p.embedding,
          }));
          if (p.sn) {
            normalised.push({ ...this.snOperands(b, slot, slot, true), grads });
          }
        }
      }
      const inner = i > 0 ? this.blocks[i - 1] : null;
      const below = inner
        ? { act: inner.act, out: pass.acts[i - 1], outOff: 0 }
        : o.below;
      if (!below) continue;
      const next = spare(cur, o.delta);
      if (b.projection) {
        // delta (w + E[y]), through the nonlinearity below and its mask.
        out.push(this.projectionInputGrad({
          rows: R,
          features: b.inputs,
          delta: cur,
          deltaOff: curOff,
          ...this.weight(b, slot),
          ...this.embedding(b, slot),
          labels: this.labels!,
          below,
          mask: inner ? pass.masks[i - 1] : null,
          next,
        }));
        cur = next;
        curOff = 0;
        continue;
      }
      out.push(...this.product(b, R, this.weight(b, slot), {
        form: "backward",
        a: cur,
        aOff: curOff,
        c: next,
        mask: inner ? pass.masks[i - 1] : null,
        e: below.out,
        eOff: below.outOff ?? 0,
        epilogue: { kind: "actGrad", act: below.act },
      }));
      cur = next;
      curOff = 0;
    }
    out.push(...this.spectralNormGrad(normalised));
    return { dispatches: out, last: cur };
  }
}
