import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { useNativeMatMul } from "../lib/backends/blas.ts";
import { Rng } from "../lib/random/rng.ts";

/** Convolutions of every shape the conv presets use, and odd ones. */
const CASES: {
  x: [number, number, number, number];
  k: [number, number, number, number];
  stride: number;
  pad: "same" | "valid";
}[] = [
  { x: [2, 28, 28, 1], k: [5, 5, 1, 8], stride: 2, pad: "same" },
  { x: [3, 14, 14, 8], k: [5, 5, 8, 6], stride: 2, pad: "same" },
  { x: [2, 7, 9, 3], k: [3, 3, 3, 4], stride: 1, pad: "same" },
  { x: [2, 11, 13, 2], k: [4, 4, 2, 5], stride: 2, pad: "valid" },
  { x: [1, 9, 9, 4], k: [3, 2, 4, 3], stride: 1, pad: "valid" },
];

/** The gradients of sum(conv2d(x, w) * g) with respect to w and x, on `backend`. */
async function gradients(
  backend: string,
  c: (typeof CASES)[number],
  seed: number,
) {
  await tf.setBackend(backend);
  const rng = new Rng(seed);
  const xs = rng.fillUniform(
    new Float32Array(c.x.reduce((a, b) => a * b)),
    -1,
    1,
  );
  const ws = rng.fillUniform(
    new Float32Array(c.k.reduce((a, b) => a * b)),
    -1,
    1,
  );
  const x = tf.tensor4d(xs, c.x), w = tf.tensor4d(ws, c.k);
  const y = tf.conv2d(x, w, c.stride, c.pad);
  const g = tf.tensor(
    rng.fillUniform(new Float32Array(y.size), -1, 1),
    y.shape,
  );
  const f = (x: tf.Tensor4D, w: tf.Tensor4D) =>
    tf.sum(tf.mul(tf.conv2d(x, w, c.stride, c.pad), g));
  const [dx, dw] = tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)([x, w]);
  // A transposed convolution back from y's shape to x's (G's layers).
  const t = tf.conv2dTranspose(g as tf.Tensor4D, w, c.x, c.stride, c.pad);
  const out = {
    dx: await dx.data(),
    dw: await dw.data(),
    y: await y.data(),
    t: await t.data(),
  };
  tf.dispose([x, w, y, g, dx, dw, t]);
  return out;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= 1e-4 * Math.max(1, Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
  }
}

Deno.test("wasm: convolutions, their gradients and transposed convolutions equal the cpu backend's (BLAS and plain)", async () => {
  await initBackend("wasm");
  await import("@tensorflow/tfjs-backend-cpu").catch(() => {});
  for (const blas of [true, false]) {
    for (const [i, c] of CASES.entries()) {
      await tf.setBackend("wasm");
      useNativeMatMul(blas);
      const wasm = await gradients("wasm", c, i);
      const cpu = await gradients("cpu", c, i);
      const what = `${JSON.stringify(c)} blas ${blas}`;
      close(wasm.y, cpu.y, `${what} y`);
      close(wasm.dw, cpu.dw, `${what} dW`);
      close(wasm.dx, cpu.dx, `${what} dx`);
      close(wasm.t, cpu.t, `${what} transposed`);
    }
  }
  await tf.setBackend("wasm");
  useNativeMatMul(true);
});
