/**
 * Sums and means over a tensor's leading axes on the wasm backend, the
 * reductions of batch norm's statistics and of every bias's gradient (a
 * convolution's output [N, H, W, C] reduced to [C], a dense layer's
 * [N, units] to [units]).
 *
 * tfjs-wasm 4.22 reduces over the innermost axes only: for leading ones it
 * first transposes the whole tensor, which costs more than the sum (about
 * 5-10 ms for a [128, 14, 14, 64] batch against 2 ms here). These kernels
 * add the rows [outer, inner] one after another into the output instead:
 * each output value is the same float32 sum, in the same order, as
 * tfjs-wasm's (its kernel sums a transposed column front to back), so
 * results are bit for bit unchanged (tested). Any other reduction runs
 * tfjs-wasm's own kernel.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  type KernelArgs,
  originalWasmKernel,
  replaceWasmKernel,
  type WasmBackend,
} from "./blas.ts";

/**
 * The rows and columns [outer, inner] of a float32 reduction over the
 * leading axes 0..j-1 of `x` (0 < j < rank), or null for any other.
 */
function leadingSplit(
  x: tf.TensorInfo,
  axis: number | number[],
): { outer: number; inner: number; j: number } | null {
  if (x.dtype !== "float32") return null;
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
  const j = axes.length;
  if (j === 0 || j >= rank || axes.some((a, i) => a !== i)) return null;
  const outer = x.shape.slice(0, j).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(j).reduce((a, b) => a * b, 1);
  return { outer, inner, j };
}

/** `Sum` (mean: false) or `Mean` (mean: true) on wasm. */
function reduceLeading(name: "Sum" | "Mean", args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const { axis, keepDims } = args.attrs as unknown as {
    axis: number | number[];
    keepDims: boolean;
  };
  const split = leadingSplit(x, axis);
  if (!split) return originalWasmKernel(name)(args);
  const { outer, inner, j } = split;
  const shape = keepDims
    ? [...x.shape.slice(0, j).map(() => 1), ...x.shape.slice(j)]
    : x.shape.slice(j);
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput(shape, "float32");
  // Views after makeOutput, whose allocation may grow (detach) the heap.
  const xv = backend.typedArrayFromHeap(x);
  const sum = backend.typedArrayFromHeap(out);
  sum.fill(0);
  for (let o = 0, at = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++, at++) sum[i] += xv[at];
  }
  // tfjs-wasm's mean divides the sum by the count.
  if (name === "Mean") { for (let i = 0; i < inner; i++) sum[i] /= outer; }
  return out;
}

/**
 * Registers the wasm backend's `Sum` and `Mean` for reductions over leading
 * axes (once); the others run tfjs-wasm's own kernels.
 */
export function registerWasmReductions(): void {
  replaceWasmKernel("Sum", (args) => reduceLeading("Sum", args));
  replaceWasmKernel("Mean", (args) => reduceLeading("Mean", args));
}
