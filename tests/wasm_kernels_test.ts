/**
 * The wasm backend's replacements for slow tfjs-wasm kernels give the same
 * values bit for bit as the kernels they replace: sums and means over
 * leading axes (`lib/backends/wasm_reduce.ts`) and LeakyReLU with its gradient
 * (`leakyRelu` of `lib/nets/ops.ts`).
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { leakyRelu } from "../lib/nets/ops.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(new Rng(seed).fillNormal(new Float32Array(n)), shape);
}

/** tfjs-wasm's own result: the reduction written as transpose + innermost sum, as its kernel does. */
function reference(
  x: tf.Tensor,
  axes: number[],
  mean: boolean,
): Float32Array {
  return tf.tidy(() => {
    const rest = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const t = tf.transpose(x, [...rest, ...axes]);
    const inner = axes.reduce((n, a) => n * x.shape[a], 1);
    const rows = tf.reshape(t, [-1, inner]);
    // Over the last axis, which tfjs-wasm sums without a transpose.
    const r = mean ? tf.mean(rows, 1) : tf.sum(rows, 1);
    return r.dataSync() as Float32Array;
  });
}

Deno.test("wasm: sums and means over leading axes equal tfjs-wasm's, bit for bit", () => {
  const cases: [number[], number[]][] = [
    [[128, 14, 14, 64], [0, 1, 2]], // batch norm over channels, conv bias
    [[100, 1200], [0]], // dense bias, batch norm over features
    [[7, 3, 5], [0, 1]],
    [[7, 3, 5], [0]],
    [[1, 9], [0]],
  ];
  for (const [i, [shape, axes]] of cases.entries()) {
    const x = randomTensor(shape, i);
    for (const mean of [false, true]) {
      for (const keepDims of [false, true]) {
        const got = mean
          ? tf.mean(x, axes, keepDims)
          : tf.sum(x, axes, keepDims);
        const want = reference(x, axes, mean);
        assert.deepEqual(
          got.shape,
          keepDims
            ? shape.map((d, a) => axes.includes(a) ? 1 : d)
            : shape.filter((_, a) => !axes.includes(a)),
        );
        const values = got.dataSync();
        for (let j = 0; j < want.length; j++) {
          assert.ok(
            Object.is(values[j], want[j]),
            `${shape} over ${axes} (${mean ? "mean" : "sum"})[${j}]: ${
              values[j]
            } vs ${want[j]}`,
          );
        }
        got.dispose();
      }
    }
    // Reductions handled by tfjs-wasm's own kernel still work.
    const last = tf.sum(x, -1);
    assert.deepEqual(last.shape, shape.slice(0, -1));
    const all = tf.sum(x);
    const total = Array.from(x.dataSync()).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(all.dataSync()[0] - total) < 1e-3 * x.size);
    tf.dispose([x, last, all]);
  }
  // Integer sums are not replaced.
  const ints = tf.tensor2d([1, 2, 3, 4], [2, 2], "int32");
  assert.deepEqual([...tf.sum(ints, 0).dataSync()], [4, 6]);
  ints.dispose();
});

Deno.test("wasm: leakyRelu and its gradient equal tf.leakyRelu's, bit for bit", () => {
  // Zeros and negative zeros included.
  const x = tf.tidy(() =>
    tf.mul(
      randomTensor([64, 33], 1),
      tf.cast(tf.greater(randomTensor([64, 33], 2), -1), "float32"),
    )
  );
  const dy = randomTensor([64, 33], 3);
  for (const slope of [0.3, 0.2, 0.1, 0.01]) {
    const pairs = [
      [tf.leakyRelu(x, slope), leakyRelu(x, slope)],
      [
        tf.grad((t: tf.Tensor) => tf.leakyRelu(t, slope))(x, dy),
        tf.grad((t: tf.Tensor) => leakyRelu(t, slope))(x, dy),
      ],
    ];
    for (const [want, got] of pairs) {
      const [w, g] = [want.dataSync(), got.dataSync()];
      assert.equal(g.length, w.length);
      for (let i = 0; i < w.length; i++) {
        assert.ok(
          Object.is(g[i], w[i]),
          `slope ${slope} [${i}]: ${g[i]} vs ${w[i]}`,
        );
      }
      tf.dispose([want, got]);
    }
  }
  tf.dispose([x, dy]);
});
