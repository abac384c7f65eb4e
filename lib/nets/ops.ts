/**
 * The operations of the networks that tfjs lacks or runs slowly, written as
 * plain tfjs ops with the same values: a dense layer, dropout's mask, maxout's
 * max over pieces and LeakyReLU. `lib/nets/layer_net.ts` builds networks from them.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { alea } from "../random/dropout_masks.ts";

/**
 * A dense layer `x W + b`. (On wasm, its gradient's matMuls transpose
 * explicitly: see `lib/backends/choice.ts`.)
 */
export function dense(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  b: tf.Tensor1D,
): tf.Tensor2D {
  return tf.add(tf.matMul(x, w), b);
}

/**
 * An inverted-dropout mask of `n` values: `1 / keep` where a unit is kept
 * (probability `keep`), else 0.
 *
 * It is exactly the mask `step(keep - u) * (1 / keep)` with
 * `u = tf.randomUniform([n], 0, 1, "float32", seed)` (the same generator,
 * seedrandom's alea, seeded the same way), so the committed models stay
 * reproducible; built as one array on the CPU, it is one upload instead of
 * a uniform tensor and three ops (see docs/speed.md). `lib/random/dropout_masks.ts` draws
 * the same masks on the GPU for the WGSL step.
 */
export function dropoutMask(
  n: number,
  keep: number,
  seed: number,
): Float32Array {
  const uniform = alea(seed);
  // In float32, keep - u > 0 exactly when u < keep.
  const keep32 = Math.fround(keep), scale = Math.fround(1 / keep);
  const mask = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (Math.fround(uniform()) < keep32) mask[i] = scale;
  }
  return mask;
}

/**
 * Maxout's max over each unit's pieces ([n, units, pieces] -> [n, units]).
 * The gradient is tfjs' own (dy to the piece, or tied pieces, that attained
 * the max), but its mask compares same-shape tensors, the max broadcast by a
 * multiplication, since tfjs-wasm's broadcasting `equal` (and `tile`) are
 * far slower than its same-shape ops (see docs/speed.md).
 */
export const maxOverPieces: (x: tf.Tensor3D) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor3D;
    const save = args[1] as tf.GradSaveFunc;
    const y = tf.max(x, 2, true);
    save([x, y]);
    return {
      value: tf.squeeze(y, [2]),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, ys] = saved;
        const ones = tf.onesLike(xs);
        const mask = tf.cast(tf.equal(xs, tf.mul(ys, ones)), "float32");
        return [tf.mul(mask, tf.mul(tf.expandDims(dy as tf.Tensor, 2), ones))];
      },
    };
  },
);

/**
 * LeakyReLU. On wasm as x * step(x, slope), its gradient dy * step(x,
 * slope): the same values as `tf.leakyRelu` and its gradient there, bit
 * for bit (slope times x is one float32 product either way), but
 * tfjs-wasm's LeakyRelu kernel costs about ten times a product, and tfjs'
 * gradient of it (greater, a product, where) twenty (docs/speed.md). Other
 * backends run `tf.leakyRelu` (the cpu backend's multiplies by the slope
 * in double precision, so the product form would change its last bits).
 */
export function leakyRelu<T extends tf.Tensor>(x: T, slope: number): T {
  return (tf.getBackend() === "wasm"
    ? leakyReluOp(x, slope)
    : tf.leakyRelu(x, slope)) as T;
}

const leakyReluOp = (x: tf.Tensor, slope: number): tf.Tensor =>
  tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[1] as tf.GradSaveFunc;
    const mask = tf.step(args[0] as tf.Tensor, slope);
    save([mask]);
    return {
      value: tf.mul(args[0] as tf.Tensor, mask),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        tf.mul(dy as tf.Tensor, saved[0]),
    };
  })(x);
