/**
 * The wasm kernels the project replaces, against what it replaces them
 * with, on a conv layer's batch [128, 14, 14, 64]: tfjs-wasm's LeakyRelu
 * and tfjs' gradient of it against `leakyRelu` of `lib/nets/ops.ts`, and a
 * sum over the leading axes as tfjs-wasm computes it (transpose, then sum
 * the innermost axis) against `lib/backends/wasm_reduce.ts`'s. Prints ms, minimum and
 * median of 40 runs.
 *
 * Usage: `deno run -A bench/wasm_kernels.ts`
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { leakyRelu } from "../lib/nets/ops.ts";

await initBackend("wasm");
const x = tf.randomNormal([128, 14, 14, 64], 0, 1, "float32", 1);
const dy = tf.randomNormal([128, 14, 14, 64], 0, 1, "float32", 2);

function time(name: string, f: () => tf.Tensor | tf.Tensor[]): void {
  for (let i = 0; i < 3; i++) tf.dispose(f());
  const ms: number[] = [];
  for (let i = 0; i < 40; i++) {
    const t = performance.now();
    const r = f();
    ms.push(performance.now() - t);
    tf.dispose(r);
  }
  ms.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(44)} min ${ms[0].toFixed(2).padStart(6)}  median ${
      ms[20].toFixed(2).padStart(6)
    }`,
  );
}

const slope = 0.1;
time("a product x * dy", () => tf.mul(x, dy));
time("tf.leakyRelu (tfjs-wasm's kernel)", () => tf.leakyRelu(x, slope));
time("leakyRelu (x * step(x, slope))", () => leakyRelu(x, slope));
time(
  "gradient of tf.leakyRelu",
  () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.leakyRelu(t, slope))(x, dy)),
);
time(
  "gradient of leakyRelu",
  () => tf.tidy(() => tf.grad((t: tf.Tensor) => leakyRelu(t, slope))(x, dy)),
);
time(
  "sum over [0, 1, 2] as tfjs-wasm (transpose)",
  () => tf.tidy(() => tf.sum(tf.transpose(x, [3, 0, 1, 2]), [1, 2, 3])),
);
time(
  "sum over [0, 1, 2] (lib/backends/wasm_reduce.ts)",
  () => tf.sum(x, [0, 1, 2]),
);
tf.dispose([x, dy]);
