/**
 * The dispatches the step is built from, made once with their buffers:
 * matrix products by plan (wide tiles, split K), convolutions as such
 * products, column sums, maxout, the gather of a batch and batch norm
 * (spectral normalisation's: `lib/wgsl/sn_kernels.ts`).
 *
 * @module
 */

import { IMAGE_PIXELS, type PixelRange, toFloat } from "../splits.ts";
import { COPY_DST, type Dispatch, GpuContext, S } from "./gpu.ts";
import {
  BN_MOVING_CODE,
  bnBackCode,
  bnStatsCode,
  bnSumsCode,
  COLSUM_CODE,
  COLSUM_WHOLE_CODE,
  GATHER_CODE,
  MATMUL_KINDS,
  matMulCode,
  type MatMulVariant,
  MAXOUT_CODE,
  SPLIT_SUM_CODE,
} from "./programs.ts";
import {
  NARROW_COLUMNS,
  narrowMatMulCode,
  narrowTakes,
} from "./narrow_program.ts";
import {
  type ConvForm,
  type ConvGeometry,
  convProduct,
} from "./conv_programs.ts";
import {
  type MatMulChoice,
  type MatMulPlan,
  matMulPlan,
  type MatMulTile,
  splitPlan,
} from "./plans.ts";

/** A product's buffers, A and B in, C out, E the epilogue's; offsets in floats. */
interface Operands {
  a: GPUBuffer;
  aOff?: number;
  b: GPUBuffer;
  bOff?: number;
  c: GPUBuffer;
  cOff?: number;
  e?: GPUBuffer;
  eOff?: number;
}

/** The training images on the GPU: the rows buffer a step writes, and the gather. */
export interface ImageGather {
  rows: GPUBuffer;
  dispatch: Dispatch;
}

/** A GPU context that records the step's kinds of dispatch. */
export class Kernels extends GpuContext {
  protected matMulChoice: MatMulChoice;
  /**
   * Split-K's partial products: one buffer serves every split product
   * (they run one after another), replaced by a larger one when a product
   * needs more (the products recorded before keep the one they were given).
   */
  protected scratch: { buffer: GPUBuffer; floats: number } | null = null;
  protected matMulFlops = 0;

  constructor(
    device: GPUDevice,
    transform: ((code: string) => string) | null,
    matMulChoice: MatMulChoice,
  ) {
    super(device, transform);
    this.matMulChoice = matMulChoice;
  }

  /**
   * How C[M, N] = A[M, K] B[K, N] is spread over the GPU (`options.matMul`);
   * only a `store` product without an output mask may split K (the step's
   * weight gradients; `splittable: false` keeps a product whole).
   */
  protected plan(
    o: MatMulVariant & {
      M: number;
      N: number;
      K: number;
      splittable?: boolean;
    },
  ): MatMulPlan {
    const splittable = o.epilogue.kind === "store" && !o.maskOut &&
      o.splittable !== false;
    const choice = this.matMulChoice;
    const whole = (tile: MatMulTile) => ({ tile, splits: 1, chunk: o.K });
    if (choice === "plain") return whole(64);
    if (choice === "auto") {
      return matMulPlan(o, {
        splittable,
        maxFloats: this.device.limits.maxStorageBufferBindingSize / 4,
      });
    }
    return splittable && choice.chunk
      ? splitPlan(choice.tile, o.K, choice.chunk)
      : whole(choice.tile);
  }

  /**
   * C = op(A) op(B), then the epilogue; offsets in floats. One program, or
   * with K split, the partial products into `#scratch`, then their sum.
   */
  protected matMul(
    o: MatMulVariant & Operands & {
      M: number;
      N: number;
      K: number;
      /** The dropout mask of `maskA` or `maskOut`, from float `mOff`. */
      mask?: GPUBuffer | null;
      mOff?: number;
      /** Floats between rows of A as stored (default K, or M with transA). */
      lda?: number;
      /** Floats between rows of C (default N). */
      ldc?: number;
      /** Floats between rows of E and of an output mask (default N). */
      lde?: number;
      /** false: K stays whole even where the plan would split it. */
      splittable?: boolean;
    },
  ): Dispatch[] {
    const plan = this.plan(o);
    const split = plan.splits > 1;
    if (split && o.ldc !== undefined && o.ldc !== o.N) {
      throw new Error("unreachable: a split product's C has rows of N");
    }
    // maxoutGrad's epilogue indexes C and E by N (rows of N * pieces).
    if (
      o.epilogue.kind === "maxoutGrad" &&
      ((o.ldc ?? o.N) !== o.N || (o.lde ?? o.N) !== o.N)
    ) {
      throw new Error("unreachable: maxoutGrad's rows have no stride");
    }
    this.matMulFlops += 2 * o.M * o.N * o.K;
    const floats = plan.splits * o.M * o.N;
    if (split && (this.scratch?.floats ?? 0) < floats) {
      this.scratch = { buffer: this.buffer(floats), floats };
    }
    const u = this.uniform([
      o.M,
      o.N,
      o.K,
      o.aOff ?? 0,
      o.bOff ?? 0,
      split ? 0 : o.cOff ?? 0,
      o.eOff ?? 0,
      o.mOff ?? 0,
      plan.chunk,
      o.lda ?? (o.transA ? o.M : o.K),
      o.ldc ?? o.N,
      o.lde ?? o.N,
    ]);
    const masked = o.mask ? { maskA: o.maskA, maskOut: o.maskOut } : {};
    const T = plan.tile;
    const variant: MatMulVariant = {
      transA: o.transA,
      transB: o.transB,
      epilogue: o.epilogue,
      tile: T,
      conv: o.conv,
      onesRow: o.onesRow,
      ...masked,
    };
    // A convolution's product of a column or a few (one output channel:
    // as many rows as pixels) on a thread a row instead of square tiles.
    const narrow = this.matMulChoice === "auto" && !split && !!o.conv &&
      o.N <= NARROW_COLUMNS && narrowTakes(variant);
    const product = this.dispatch(
      narrow ? narrowMatMulCode(variant) : matMulCode(variant),
      MATMUL_KINDS,
      [
        o.a,
        o.b,
        split ? this.scratch!.buffer : o.c,
        o.e ?? this.dummy(),
        u,
        o.mask ?? this.dummy(),
      ],
      narrow
        ? this.grid(o.M)
        : [Math.ceil(o.N / T), Math.ceil(o.M / T), plan.splits],
    );
    if (!split) return [product];
    const MN = o.M * o.N;
    return [
      product,
      this.readAWriteC(
        SPLIT_SUM_CODE,
        this.scratch!.buffer,
        o.c,
        [MN, 0, plan.splits, 0, 0, o.cOff ?? 0],
        this.grid(MN),
      ),
    ];
  }

  /**
   * One product of a convolution (`lib/wgsl/conv_programs.ts`), NHWC
   * images and [size, size, in, out] filters: `forward` y = conv(a = x,
   * b = W); `filterGrad` dW from a = x and b = dy; `inputGrad` dx from
   * a = dy and b = W, which is also a transposed convolution's output from
   * a = its input. Only `filterGrad` may split K (its K, batch x output
   * pixels, is long; the others' is size^2 x channels), unless
   * `splittable` says otherwise.
   */
  protected conv(
    o: Operands & {
      form: ConvForm;
      geometry: ConvGeometry;
      epilogue: MatMulVariant["epilogue"];
      splittable?: boolean;
      /** `filterGrad`: the bias's gradient as dW's last row (MatMulVariant's). */
      onesRow?: boolean;
    },
  ): Dispatch[] {
    const { form, geometry, ...rest } = o;
    const product = convProduct(geometry, form);
    return this.matMul({
      ...rest,
      ...product,
      // A row of ones below the patches: the bias's gradient after dW's.
      ...o.onesRow ? { M: product.M + 1 } : {},
      transA: form === "filterGrad",
      conv: { form, geometry },
      splittable: o.splittable ?? form === "filterGrad",
    });
  }

  /**
   * A program of {@linkcode MATMUL_BINDINGS} that reads A only and writes C,
   * with the uniform's first values `u` (the other bindings unused).
   */
  protected readAWriteC(
    code: string,
    a: GPUBuffer,
    c: GPUBuffer,
    u: number[],
    workgroups: Dispatch["workgroups"],
  ): Dispatch {
    const dummy = this.dummy();
    return this.dispatch(
      code,
      MATMUL_KINDS,
      [a, dummy, c, dummy, this.uniform(u), dummy],
      workgroups,
    );
  }

  /** C[m, n] = max of the `pieces` values A[m, n * pieces + p]. */
  protected maxout(
    rows: number,
    units: number,
    pieces: number,
    a: GPUBuffer,
    c: GPUBuffer,
  ): Dispatch {
    return this.readAWriteC(
      MAXOUT_CODE,
      a,
      c,
      [rows, units, pieces],
      this.grid(rows * units),
    );
  }

  /**
   * out[cOff + n] = sum over M rows of a (rows from aOff), via `partial`
   * (ceil(M / 256) N floats).
   */
  protected colSum(
    o: {
      M: number;
      N: number;
      a: GPUBuffer;
      aOff?: number;
      c: GPUBuffer;
      cOff: number;
      partial: GPUBuffer;
    },
  ): Dispatch[] {
    const chunks = Math.ceil(o.M / 256);
    const pass = (
      M: number,
      a: GPUBuffer,
      aOff: number,
      c: GPUBuffer,
      cOff: number,
      whole = false,
    ) =>
      this.readAWriteC(
        whole ? COLSUM_WHOLE_CODE : COLSUM_CODE,
        a,
        c,
        [M, o.N, 0, aOff, 0, cOff],
        [Math.ceil(o.N / 64), whole ? 1 : Math.ceil(M / 256)],
      );
    if (chunks === 1) return [pass(o.M, o.a, o.aOff ?? 0, o.c, o.cOff)];
    // Past 65,536 rows there are more than 256 partial sums: the second
    // pass adds them all in one workgroup per 64 columns.
    return [
      pass(o.M, o.a, o.aOff ?? 0, o.partial, 0),
      pass(chunks, o.partial, 0, o.c, o.cOff, chunks > 256),
    ];
  }

  /**
   * The training images kept on the GPU (one byte a pixel) and the program
   * that gathers `rows` of them, by their positions in the images (the
   * `rows` buffer a step writes), into `out` from float 0 as floats in
   * `data.range`, `stride` floats a row. Null (the batch is then uploaded
   * each step) without images, or when they do not fit one binding.
   */
  protected imageGather(
    data: { images: Uint8Array; range: PixelRange } | undefined,
    o: { rows: number; out: GPUBuffer; stride: number },
  ): ImageGather | null {
    if (
      !data || data.images.length === 0 ||
      data.images.length % IMAGE_PIXELS !== 0 ||
      data.images.byteLength > this.device.limits.maxStorageBufferBindingSize
    ) {
      return null;
    }
    const images = this.device.createBuffer({
      size: data.images.byteLength,
      usage: S | COPY_DST,
    });
    this.buffers.push(images);
    this.device.queue.writeBuffer(
      images,
      0,
      data.images.buffer as ArrayBuffer,
      data.images.byteOffset,
      data.images.byteLength,
    );
    // Each byte's float, looked up (toFloat's values to the bit).
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const lut = this.buffer(256);
    this.upload(lut, toFloat(bytes, data.range));
    const rows = this.buffer(o.rows);
    const words = (o.rows * IMAGE_PIXELS) / 4;
    const dispatch = this.dispatch(GATHER_CODE, [
      "read-only-storage",
      "read-only-storage",
      "read-only-storage",
      "storage",
      "uniform",
    ], [
      images,
      rows,
      lut,
      o.out,
      this.uniform([words, IMAGE_PIXELS / 4, o.stride]),
    ], this.grid(words));
    return { rows, dispatch };
  }

  /**
   * Batch norm's training forward pass over `channels` (features, or an
   * image's channels): the batch's means and variances of `pre` into
   * `stats`, then gamma x-hat + beta and the nonlinearity into `out`
   * (`values` of them; gamma and beta in `params`, where `u` says). With
   * `labels` (class-conditional, `apply` a conditional program), each
   * example's class picks its gamma and beta. With `moving`, the
   * statistics' program also updates the running statistics there.
   */
  protected batchNorm(o: {
    pre: GPUBuffer;
    stats: GPUBuffer;
    params: GPUBuffer;
    out: GPUBuffer;
    u: GPUBuffer;
    channels: number;
    values: number;
    apply: string;
    labels?: GPUBuffer;
    moving?: GPUBuffer;
  }): Dispatch[] {
    const moving = o.moving ? [o.moving] : [];
    return [
      this.dispatch(
        bnStatsCode(!!o.moving),
        [
          "read-only-storage",
          "storage",
          "uniform",
          ...moving.map(() => "storage" as const),
        ],
        [o.pre, o.stats, o.u, ...moving],
        [Math.ceil(o.channels / 64), 1],
      ),
      this.dispatch(
        o.apply,
        [
          "read-only-storage",
          "read-only-storage",
          "read-only-storage",
          "storage",
          "uniform",
          ...o.labels ? ["read-only-storage" as const] : [],
        ],
        [o.pre, o.params, o.stats, o.out, o.u, ...o.labels ? [o.labels] : []],
        this.grid(o.values),
      ),
    ];
  }

  /**
   * Batch norm's backward pass from `dy` (the gradient with respect to its
   * output before the nonlinearity's, `values` of them): gamma's and
   * beta's gradients into `grads`, then the gradient with respect to `pre`
   * into `next`. With `labels` and `classes`, class-conditional: a row of
   * gamma's and beta's gradients per class.
   */
  protected batchNormBackward(o: {
    dy: GPUBuffer;
    pre: GPUBuffer;
    stats: GPUBuffer;
    params: GPUBuffer;
    grads: GPUBuffer;
    next: GPUBuffer;
    u: GPUBuffer;
    channels: number;
    values: number;
    labels?: GPUBuffer;
    classes?: number;
  }): Dispatch[] {
    const read = "read-only-storage" as const;
    const classes = o.labels ? o.classes ?? 0 : 0;
    const labels = classes ? [o.labels!] : [];
    return [
      this.dispatch(
        bnSumsCode(classes > 0),
        [read, read, read, "storage", "uniform", ...labels.map(() => read)],
        [o.dy, o.pre, o.stats, o.grads, o.u, ...labels],
        [Math.ceil(o.channels / 64), Math.max(classes, 1)],
      ),
      this.dispatch(
        bnBackCode(classes),
        [
          read,
          read,
          read,
          read,
          read,
          "storage",
          "uniform",
          ...labels.map(() => read),
        ],
        [o.dy, o.pre, o.stats, o.params, o.grads, o.next, o.u, ...labels],
        this.grid(o.values),
      ),
    ];
  }

  /** The running statistics' update from a batch's `stats` into `moving`. */
  protected movingStatistics(
    stats: GPUBuffer,
    moving: GPUBuffer,
    u: GPUBuffer,
    channels: number,
  ): Dispatch {
    return this.dispatch(
      BN_MOVING_CODE,
      ["read-only-storage", "storage", "uniform"],
      [stats, moving, u],
      this.grid(2 * channels),
    );
  }

  /**
   * Throws unless `inputs` hold a D step's real batch of `rows` images of
   * `pixels` values: the images themselves (`real`), or with the images on
   * the GPU (`gather`), their positions (`rows`).
   */
  protected checkRealBatch(
    gather: ImageGather | null,
    inputs: { real?: Float32Array; rows?: Uint32Array },
    rows: number,
    pixels: number,
  ): void {
    if (
      gather
        ? inputs.rows?.length !== rows
        : inputs.real?.length !== rows * pixels
    ) {
      throw new Error(
        gather
          ? `a step takes the rows of ${rows} images (rows), the images being on the GPU`
          : `a step takes ${rows} images of ${pixels} pixels (real)`,
      );
    }
  }

  /**
   * The arithmetic of a step's matrix products, 2 M N K for each: with a
   * step's time, the rate its matMul programs reach at most.
   */
  get matMulFlopsPerStep(): number {
    return this.matMulFlops;
  }
}
