/**
 * The products of one block of a layer-list network's WGSL passes
 * (`lib/wgsl/layer_passes.ts`): a dense or convolutional layer's forward
 * product, its input gradient's and its weight gradient; and, for D's
 * projection (`lib/wgsl/projection.ts`), the class term of its logit, the
 * input gradient in place of the dense layer's, and the embedding's
 * gradient.
 *
 * @module
 */

import type { Block } from "./layer_blocks.ts";
import type { Dispatch } from "./gpu.ts";
import { SpectralNormKernels } from "./sn_kernels.ts";
import type { Act, Epilogue } from "./programs.ts";
import {
  PROJECTION_CODE,
  PROJECTION_GRAD_CODE,
  projectionBackCode,
} from "./projection.ts";

const READ = "read-only-storage" as const;

/**
 * Whether block `b`'s weight gradient can take its bias's: a dense or
 * conv2d layer's bias sums dy over the rows of the product, a transposed
 * layer's over its patches.
 */
export function foldsBias(b: Block): boolean {
  if (b.bias < 0 || b.kind === "conv2dTranspose") return false;
  // The product's last row lands right after the kernel.
  if (b.bias !== b.kernel + b.kernelSize) {
    throw new Error("unreachable: a bias not right after its kernel");
  }
  return true;
}

/** A GPU context that records a block's products. */
export class BlockKernels extends SpectralNormKernels {
  /**
   * The product of block `b` over `rows` examples with `weight` (W, or
   * W / sigma): the layer's own (`forward`) or its input gradient's
   * (`backward`), through `epilogue`.
   */
  protected product(
    b: Block,
    rows: number,
    weight: { w: GPUBuffer; wOff: number },
    o: {
      form: "forward" | "backward";
      a: GPUBuffer;
      aOff?: number;
      c: GPUBuffer;
      cOff?: number;
      e?: GPUBuffer;
      eOff?: number;
      epilogue: Epilogue;
      /** Each output times this dropout mask (laid out as the output). */
      mask?: GPUBuffer | null;
    },
  ): Dispatch[] {
    const { w, wOff } = weight;
    const common = {
      ...o.mask ? { mask: o.mask, maskOut: true } : {},
      a: o.a,
      aOff: o.aOff ?? 0,
      b: w,
      bOff: wOff,
      c: o.c,
      cOff: o.cOff ?? 0,
      e: o.e,
      eOff: o.eOff,
      epilogue: o.epilogue,
    };
    if (b.kind === "dense") {
      return o.form === "forward"
        ? this.matMul({ ...common, M: rows, N: b.outputs, K: b.inputs })
        : this.matMul({
          ...common,
          M: rows,
          N: b.inputs,
          K: b.outputs,
          transB: true,
        });
    }
    // conv2d forward is the convolution's forward product, its input
    // gradient the input-gradient product; a transposed layer the reverse.
    const forwardForm = (o.form === "forward") === (b.kind === "conv2d");
    return this.conv({
      ...common,
      form: forwardForm ? "forward" : "inputGrad",
      geometry: b.geometry!(rows),
    });
  }

  /**
   * dW of block `b` from its input x and dy, into the gradients, and where
   * {@linkcode foldsBias} (not a transposed layer, whose bias is over the
   * product's patches), the bias's gradient (dy's column sums) in the same
   * product, as the row after dW's.
   */
  protected weightGradient(
    b: Block,
    rows: number,
    o: {
      x: GPUBuffer;
      xOff: number;
      dy: GPUBuffer;
      dyOff: number;
      grads: GPUBuffer;
    },
  ): Dispatch[] {
    const store = { kind: "store" } as const;
    const onesRow = foldsBias(b);
    if (b.kind === "dense") {
      // dW[inputs, units] = x^T dy (and db = 1^T dy below it)
      return this.matMul({
        M: b.inputs + (onesRow ? 1 : 0),
        N: b.outputs,
        K: rows,
        a: o.x,
        aOff: o.xOff,
        lda: b.inputs,
        onesRow,
        transA: true,
        b: o.dy,
        bOff: o.dyOff,
        c: o.grads,
        cOff: b.kernel,
        epilogue: store,
      });
    }
    // A transposed layer's kernel is the mirrored convolution's filter
    // gradient, with its output's gradient as that convolution's image.
    const conv = b.kind === "conv2d";
    return this.conv({
      form: "filterGrad",
      geometry: b.geometry!(rows),
      a: conv ? o.x : o.dy,
      aOff: conv ? o.xOff : o.dyOff,
      b: conv ? o.dy : o.x,
      bOff: conv ? o.dyOff : o.xOff,
      c: o.grads,
      cOff: b.kernel,
      epilogue: store,
      onesRow,
    });
  }

  /**
   * `out` from `outOff` += h . E[y] for `rows` examples of `features`
   * values each, in `h` from `hOff`; E in `e` from `eOff`.
   */
  protected projection(o: {
    rows: number;
    features: number;
    h: GPUBuffer;
    hOff: number;
    e: GPUBuffer;
    eOff: number;
    labels: GPUBuffer;
    out: GPUBuffer;
    outOff: number;
  }): Dispatch {
    return this.dispatch(
      PROJECTION_CODE,
      [READ, READ, READ, "storage", "uniform"],
      [
        o.h,
        o.e,
        o.labels,
        o.out,
        this.uniform([o.rows, o.features, o.hOff, o.eOff, o.outOff]),
      ],
      [o.rows, 1],
    );
  }

  /**
   * `next` = delta (w + E[y]) through the nonlinearity below (its output
   * in `below.out`) and its dropout `mask`, where given.
   */
  protected projectionInputGrad(o: {
    rows: number;
    features: number;
    delta: GPUBuffer;
    deltaOff: number;
    w: GPUBuffer;
    wOff: number;
    e: GPUBuffer;
    eOff: number;
    labels: GPUBuffer;
    below: { act: Act; out: GPUBuffer; outOff?: number };
    mask: GPUBuffer | null;
    next: GPUBuffer;
  }): Dispatch {
    const n = o.rows * o.features;
    return this.dispatch(
      projectionBackCode(o.below.act, !!o.mask),
      [READ, READ, READ, READ, READ, "storage", "uniform", READ],
      [
        o.delta,
        o.w,
        o.e,
        o.labels,
        o.below.out,
        o.next,
        this.uniform([
          n,
          o.features,
          o.deltaOff,
          o.wOff,
          o.eOff,
          o.below.outOff ?? 0,
        ]),
        o.mask ?? this.dummy(),
      ],
      this.grid(n),
    );
  }

  /** E's gradient, [classes, features], into `grads` from `gOff`. */
  protected projectionGrad(o: {
    classes: number;
    features: number;
    rows: number;
    h: GPUBuffer;
    hOff: number;
    delta: GPUBuffer;
    deltaOff: number;
    labels: GPUBuffer;
    grads: GPUBuffer;
    gOff: number;
  }): Dispatch {
    const n = o.classes * o.features;
    return this.dispatch(
      PROJECTION_GRAD_CODE,
      [READ, READ, READ, "storage", "uniform"],
      [
        o.h,
        o.delta,
        o.labels,
        o.grads,
        this.uniform([n, o.features, o.rows, o.hOff, o.deltaOff, o.gOff]),
      ],
      this.grid(n),
    );
  }
}
