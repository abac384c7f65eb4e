import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { Rng } from "../lib/random/rng.ts";
import {
  createSpectralNorm,
  largestSingularValue,
  powerIteration,
  sigmaOf,
  spectralNormalized,
} from "../lib/nets/spectral_norm.ts";

await initBackend("wasm");

Deno.test("spectral norm: power iteration converges to the largest singular value", async () => {
  const rng = new Rng(3);
  // A dense kernel and a convolution's [kh, kw, in, out].
  for (const shape of [[20, 12], [5, 5, 3, 8], [4, 4, 16, 1]]) {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = rng.fillNormal(new Float32Array(size));
    const kernel = tf.tensor(values, shape);
    const state = createSpectralNorm(kernel, `test/${shape}`, rng);
    const want = largestSingularValue(values, shape[shape.length - 1]);
    for (let i = 0; i < 200; i++) powerIteration(kernel, state);
    const sigma = (await sigmaOf(kernel, state).data())[0];
    assert.ok(
      Math.abs(sigma - want) < 1e-3 * want,
      `${shape}: ${sigma} vs ${want}`,
    );
    // After normalisation the largest singular value is 1.
    const normed = spectralNormalized(kernel, state, false);
    const again = largestSingularValue(
      await normed.data() as Float32Array,
      shape[shape.length - 1],
    );
    assert.ok(Math.abs(again - 1) < 1e-3, `${shape}: ${again}`);
    tf.dispose([kernel, state.u, state.v, normed]);
  }
});

Deno.test("spectral norm: one step's forward and gradient equal a hand-written reference", async () => {
  const rng = new Rng(9);
  const [rest, out] = [6, 4];
  const w = rng.fillNormal(new Float32Array(rest * out));
  const kernel = tf.tensor2d(w, [rest, out]);
  const state = createSpectralNorm(kernel, "test/ref", rng);
  const u0 = Array.from(await state.u.data()), v0 = await state.v.data();
  // The reference, in doubles: one iteration from u0, then sigma.
  const wt = (r: number, o: number) => w[r * out + o];
  const norm = (x: number[]) => {
    const n = Math.max(Math.hypot(...x), 1e-12);
    return x.map((e) => e / n);
  };
  const v = norm(
    Array.from(
      { length: rest },
      (_, r) => u0.reduce((s, uo, o) => s + wt(r, o) * uo, 0),
    ),
  );
  const u = norm(
    Array.from(
      { length: out },
      (_, o) => v.reduce((s, vr, r) => s + wt(r, o) * vr, 0),
    ),
  );
  let sigma = 0;
  for (let o = 0; o < out; o++) {
    for (let r = 0; r < rest; r++) sigma += u[o] * wt(r, o) * v[r];
  }
  assert.equal(v0.length, rest);
  // Forward: W / sigma, and u, v updated.
  const g = rng.fillNormal(new Float32Array(rest * out));
  const f = (k: tf.Tensor) =>
    tf.sum(
      tf.mul(spectralNormalized(k, state, true), tf.tensor2d(g, [rest, out])),
    );
  const { value, grad } = tf.valueAndGrad(f)(kernel);
  const y = Array.from(w, (x) => x / sigma);
  const wantValue = y.reduce((s, yi, i) => s + yi * g[i], 0);
  assert.ok(Math.abs((await value.data())[0] - wantValue) < 1e-4);
  const uNow = await state.u.data(), vNow = await state.v.data();
  u.forEach((x, i) => assert.ok(Math.abs(uNow[i] - x) < 1e-5));
  v.forEach((x, i) => assert.ok(Math.abs(vNow[i] - x) < 1e-5));
  // Gradient with u, v constant: d/dW sum(g W / sigma) with
  // dsigma/dW[r, o] = u[o] v[r]:  g / sigma - (sum(g W) / sigma^2) u[o] v[r].
  const gw = g.reduce((s, gi, i) => s + gi * w[i], 0);
  const got = await grad.data();
  for (let r = 0; r < rest; r++) {
    for (let o = 0; o < out; o++) {
      const want = g[r * out + o] / sigma - (gw / sigma ** 2) * u[o] * v[r];
      assert.ok(
        Math.abs(got[r * out + o] - want) < 1e-4,
        `[${r}, ${o}]: ${got[r * out + o]} vs ${want}`,
      );
    }
  }
  tf.dispose([kernel, state.u, state.v, value, grad]);
});
