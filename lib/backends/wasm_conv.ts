/**
 * The weight gradient of a convolution on the wasm backend.
 * tfjs-backend-wasm 4.22 registers `Conv2D` and `Conv2DBackpropInput` but
 * no `Conv2DBackpropFilter`, so training a convolution's weights fails
 * there. This module registers one: the input's patches (im2col) times the
 * output's gradient,
 *
 *     dW[kh, kw, ci, co] = sum over n, oh, ow of
 *         x[n, oh sh + kh dh - top, ow sw + kw dw - left, ci] dy[n, oh, ow, co]
 *
 * as one matrix product P^T dY, with P = patches [N OH OW, KH KW Cin] and
 * dY = [N OH OW, Cout]: in the system BLAS where one loads (`lib/backends/blas.ts`),
 * else in plain loops. (NHWC, the layout tfjs uses.)
 *
 * With a BLAS, the forward convolution (P W) and the input gradient, which
 * is also a transposed convolution's forward pass (col2im(dY W^T)), run the
 * same way: tfjs-wasm's own kernels use one core, the BLAS every core.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  type KernelArgs,
  originalWasmKernel,
  replaceWasmKernel,
  sgemmOrNull,
  type WasmBackend,
} from "./blas.ts";

/**
 * Two scratch arrays, grown as needed and reused: the large patch and
 * column matrices would otherwise be allocated (and zeroed) at every call.
 * A kernel is done with them when it returns.
 */
const scratches: Float32Array[] = [new Float32Array(0), new Float32Array(0)];

function scratch(which: 0 | 1, n: number): Float32Array {
  if (scratches[which].length < n) scratches[which] = new Float32Array(n);
  return scratches[which].subarray(0, n);
}

/**
 * The patches of `x` that each output position of the convolution reads
 * (in a scratch array, valid until the next call).
 */
function patches(
  x: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): Float32Array {
  const {
    batchSize: N,
    inHeight: H,
    inWidth: W,
    inChannels: C,
    outHeight: OH,
    outWidth: OW,
    filterHeight: KH,
    filterWidth: KW,
    strideHeight: sh,
    strideWidth: sw,
    dilationHeight: dh,
    dilationWidth: dw,
  } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const cols = KH * KW * C;
  const p = scratch(0, N * OH * OW * cols);
  let row = 0;
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, row++) {
        let at = row * cols;
        const iw0 = ow * sw - left;
        // The whole kernel row in bounds (no dilation): its KW pixels are
        // one run of KW C values in x as in the patch, so one copy.
        const whole = dw === 1 && iw0 >= 0 && iw0 + KW <= W;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sh + kh * dh - top;
          if (whole && ih >= 0 && ih < H) {
            const from = ((n * H + ih) * W + iw0) * C;
            const run = KW * C;
            if (run < 16) {
              for (let c = 0; c < run; c++) p[at + c] = x[from + c];
            } else {
              p.set(x.subarray(from, from + run), at);
            }
            at += run;
            continue;
          }
          for (let kw = 0; kw < KW; kw++, at += C) {
            const iw = ow * sw + kw * dw - left;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              p.fill(0, at, at + C); // zero padding
              continue;
            }
            const from = ((n * H + ih) * W + iw) * C;
            // A view per copy costs more than the copy for a few channels.
            if (C < 16) {
              for (let c = 0; c < C; c++) p[at + c] = x[from + c];
            } else {
              p.set(x.subarray(from, from + C), at);
            }
          }
        }
      }
    }
  }
  return p;
}

/** `Conv2DBackpropFilter` for the wasm backend (NHWC). */
function conv2DBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const dy = args.inputs.dy as tf.TensorInfo;
  const a = args.attrs as unknown as {
    strides: number | [number, number];
    pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
    dataFormat: "NHWC" | "NCHW";
    dimRoundingMode?: "floor" | "round" | "ceil";
    filterShape: [number, number, number, number];
  };
  if (a.dataFormat === "NCHW") {
    throw new Error("Conv2DBackpropFilter on wasm: only NHWC is supported");
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
    false,
    "channelsLast",
  );
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput(a.filterShape, "float32");
  // Views after makeOutput: allocating may grow the heap, which detaches
  // earlier views of it.
  const xv = backend.typedArrayFromHeap(x);
  const dyv = backend.typedArrayFromHeap(dy);
  const p = patches(xv, info);
  const dw = backend.typedArrayFromHeap(out);
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const cout = info.outChannels;
  const sgemm = sgemmOrNull();
  if (sgemm) {
    // dW [k, cout] = P^T [k, rows] dY [rows, cout]
    sgemm.transposedTimes(rows, k, cout, p, dyv, dw);
  } else {
    dw.fill(0);
    for (let r = 0; r < rows; r++) {
      const pr = r * k, dr = r * cout;
      for (let i = 0; i < k; i++) {
        const v = p[pr + i];
        if (v === 0) continue;
        const o = i * cout;
        for (let j = 0; j < cout; j++) dw[o + j] += v * dyv[dr + j];
      }
    }
  }
  return out;
}

/** Adds columns `cols` [rows, KH KW C] back into the image `dx` (col2im). */
function addPatches(
  cols: Float32Array,
  dx: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const {
    batchSize: N,
    inHeight: H,
    inWidth: W,
    inChannels: C,
    outHeight: OH,
    outWidth: OW,
    filterHeight: KH,
    filterWidth: KW,
    strideHeight: sh,
    strideWidth: sw,
    dilationHeight: dh,
    dilationWidth: dw,
  } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const k = KH * KW * C;
  dx.fill(0);
  let row = 0;
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, row++) {
        let at = row * k;
        const iw0 = ow * sw - left;
        const whole = dw === 1 && iw0 >= 0 && iw0 + KW <= W; // as in patches
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sh + kh * dh - top;
          if (whole && ih >= 0 && ih < H) {
            const to = ((n * H + ih) * W + iw0) * C - at;
            const end = at + KW * C;
            for (; at < end; at++) dx[to + at] += cols[at];
            continue;
          }
          for (let kw = 0; kw < KW; kw++, at += C) {
            const iw = ow * sw + kw * dw - left;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const to = ((n * H + ih) * W + iw) * C;
            for (let c = 0; c < C; c++) dx[to + c] += cols[at + c];
          }
        }
      }
    }
  }
}

type ConvAttrs = {
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat: "NHWC" | "NCHW";
  dilations?: number | [number, number];
  dimRoundingMode?: "floor" | "round" | "ceil";
};

/** Runs tfjs-wasm's own kernel `name`. */
function original(name: string, args: KernelArgs): tf.TensorInfo {
  return originalWasmKernel(name)(args);
}

/**
 * `Conv2D` as patches times the kernel in the system BLAS: Y [N OH OW,
 * Cout] = P [N OH OW, KH KW Cin] W [KH KW Cin, Cout].
 */
function conv2DBlas(args: KernelArgs): tf.TensorInfo {
  const sgemm = sgemmOrNull();
  const a = args.attrs as unknown as ConvAttrs;
  const x = args.inputs.x as tf.TensorInfo;
  const filter = args.inputs.filter as tf.TensorInfo;
  if (!sgemm || a.dataFormat === "NCHW") return original("Conv2D", args);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
  );
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput(info.outShape, "float32");
  const p = patches(backend.typedArrayFromHeap(x), info);
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  sgemm.times(
    rows,
    k,
    info.outChannels,
    p,
    backend.typedArrayFromHeap(filter),
    backend.typedArrayFromHeap(out),
  );
  return out;
}

/**
 * `Conv2DBackpropInput` (also a transposed convolution's forward pass) as
 * the output gradient times the kernel transposed in the system BLAS, its
 * columns added back into the image: dX = col2im(dY W^T).
 */
function conv2DBackpropInputBlas(args: KernelArgs): tf.TensorInfo {
  const sgemm = sgemmOrNull();
  const a = args.attrs as unknown as ConvAttrs & {
    inputShape: [number, number, number, number];
  };
  const dy = args.inputs.dy as tf.TensorInfo;
  const filter = args.inputs.filter as tf.TensorInfo;
  if (!sgemm || a.dataFormat === "NCHW") {
    return original("Conv2DBackpropInput", args);
  }
  const info = tf.backend_util.computeConv2DInfo(
    a.inputShape,
    filter.shape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput(a.inputShape, "float32");
  const cols = scratch(1, rows * k);
  // cols [rows, k] = dY [rows, Cout] W^T, with W [k, Cout].
  sgemm.timesTransposed(
    rows,
    info.outChannels,
    k,
    backend.typedArrayFromHeap(dy),
    backend.typedArrayFromHeap(filter),
    cols,
  );
  addPatches(cols, backend.typedArrayFromHeap(out), info);
  return out;
}

/**
 * Registers the wasm backend's `Conv2DBackpropFilter` (once), and
 * `Conv2D` and `Conv2DBackpropInput` through the system BLAS, which fall
 * back to tfjs-wasm's own kernels while wasm's matMul does not run in a
 * BLAS (`--blas off`, or none loaded). Returns whether it is registered now.
 */
export function registerWasmConvGrad(): boolean {
  if (!tf.getKernel("Conv2DBackpropFilter", "wasm")) {
    tf.registerKernel({
      kernelName: "Conv2DBackpropFilter",
      backendName: "wasm",
      kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc,
    });
  }
  replaceWasmKernel("Conv2D", conv2DBlas);
  replaceWasmKernel("Conv2DBackpropInput", conv2DBackpropInputBlas);
  return true;
}
