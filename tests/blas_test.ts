import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { nativeMatMulActive, useNativeMatMul } from "../lib/backends/blas.ts";
import { Rng } from "../lib/random/rng.ts";

const info = await initBackend("wasm");
// CI installs OpenBLAS (.ci/run), so there the native path is tested; on a
// machine without one the wasm kernel must stay and say how to get one.
const native = useNativeMatMul(true);

Deno.test("wasm reports its matMul: a system BLAS, or why not", () => {
  if (native.ok) {
    assert.equal(info.blas, native.library);
    assert.match(info.reason, new RegExp(`matMul in ${native.library}`));
    assert.ok(nativeMatMulActive());
  } else {
    assert.equal(info.blas, null);
    assert.match(native.why, /BLAS/);
    assert.ok(!nativeMatMulActive());
  }
});

function product(
  a: tf.Tensor,
  b: tf.Tensor,
  transposeA: boolean,
  transposeB: boolean,
) {
  return tf.tidy(() => tf.matMul(a, b, transposeA, transposeB).dataSync());
}

Deno.test("native matMul equals the wasm kernel for every transpose and batch shape", () => {
  if (!native.ok) return;
  const rng = new Rng(7);
  const t = (shape: number[]) =>
    tf.tensor(
      rng.fillUniform(
        new Float32Array(shape.reduce((x, y) => x * y, 1)),
        -1,
        1,
      ),
      shape,
    );
  const m = 33, k = 70, n = 17;
  const cases: [number[], number[], boolean, boolean][] = [
    [[m, k], [k, n], false, false],
    [[k, m], [k, n], true, false],
    [[m, k], [n, k], false, true],
    [[k, m], [n, k], true, true],
    [[3, m, k], [3, k, n], false, false],
    [[3, k, m], [3, n, k], true, true],
    [[1, m, k], [3, k, n], false, false], // broadcast: the wasm kernel's
    [[0, k], [k, n], false, false], // empty: the wasm kernel's
  ];
  for (const [sa, sb, ta, tb] of cases) {
    const a = t(sa), b = t(sb);
    useNativeMatMul(false);
    const expected = product(a, b, ta, tb);
    assert.ok(useNativeMatMul(true).ok);
    const actual = product(a, b, ta, tb);
    assert.equal(actual.length, expected.length, `${sa} x ${sb}`);
    let worst = 0;
    actual.forEach((v, i) =>
      worst = Math.max(worst, Math.abs(v - expected[i]))
    );
    assert.ok(worst < 1e-4, `${sa} x ${sb} (${ta}, ${tb}): off by ${worst}`);
    tf.dispose([a, b]);
  }
});

Deno.test("native matMul can be turned off and on again; gradients still flow", () => {
  if (!native.ok) return;
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const w = tf.tensor2d([[0.5, -1], [2, 0.25]]);
  const grads = () =>
    tf.tidy(() =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b).sum())([x, w])
        .map((g) => Array.from(g.dataSync()))
    );
  useNativeMatMul(false);
  assert.ok(!nativeMatMulActive());
  const off = grads();
  assert.ok(useNativeMatMul(true).ok);
  assert.ok(nativeMatMulActive());
  const on = grads();
  assert.deepEqual(on, off);
  // d(sum(xW))/dx = 1 W^T; d/dW = x^T 1.
  assert.deepEqual(on[0], [-0.5, 2.25, -0.5, 2.25]);
  assert.deepEqual(on[1], [4, 4, 6, 6]);
  tf.dispose([x, w]);
});
