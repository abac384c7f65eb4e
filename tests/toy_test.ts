import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { figure1, ToyGan, virtualCriterion } from "../lib/toy.ts";

await initBackend("cpu");

Deno.test("virtual criterion: C(G) = -log 4 + 2 JSD, -log 4 when p_g = p_data", () => {
  const x = Array.from({ length: 401 }, (_, i) => -4 + 8 * i / 400);
  const dx = 8 / 400;
  const n = (m: number, s: number) =>
    x.map((v) =>
      Math.exp(-0.5 * ((v - m) / s) ** 2) / (s * Math.sqrt(2 * Math.PI))
    );
  const same = virtualCriterion(n(0, 1), n(0, 1), dx);
  // (up to the Gaussian's mass outside the grid)
  assert.ok(Math.abs(same.criterion + Math.log(4)) < 1e-3);
  assert.ok(Math.abs(same.jsd) < 1e-12);
  const apart = virtualCriterion(n(-1, 0.5), n(1, 0.5), dx);
  assert.ok(
    Math.abs(apart.criterion - (-Math.log(4) + 2 * apart.jsd)) < 1e-3,
  );
  // Disjoint supports: JSD = log 2, C(G) = 0.
  const far = virtualCriterion(n(-3, 0.2), n(3, 0.2), dx);
  assert.ok(Math.abs(far.jsd - Math.log(2)) < 1e-3);
  assert.ok(Math.abs(far.criterion) < 1e-3);
});

Deno.test("toy: D trained with G fixed approaches D* (Proposition 1)", () => {
  const toy = new ToyGan({ seed: 0, batchSize: 256 });
  try {
    toy.trainD(400);
    const p = toy.snapshot("(b)", "");
    // Where both densities have mass, D is within 0.15 of D* on average.
    let err = 0, count = 0;
    p.x.forEach((_, i) => {
      if (p.pData[i] > 0.1 && p.pG[i] > 0.1) {
        err += Math.abs(p.d[i] - p.dStar[i]);
        count++;
      }
    });
    assert.ok(count > 10, `overlap of ${count} grid points`);
    assert.ok(err / count < 0.15, `mean |D - D*| = ${err / count}`);
    // V(D, G) <= C(G) = max over D.
    assert.ok(p.value <= p.criterion + 1e-3, `${p.value} > ${p.criterion}`);
  } finally {
    toy.dispose();
  }
});

Deno.test("toy: Figure 1's run brings p_g towards p_data, deterministically, without leaks", () => {
  const before = tf.memory().numTensors;
  const options = { innerSteps: 100, rounds: 60, k: 2, batchSize: 128 };
  const a = figure1(options);
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(a.map((p) => p.label), ["(a)", "(b)", "(c)", "(d)"]);
  // G's steps lower the JSD from panel (b) to panel (d).
  assert.ok(a[3].jsd < a[1].jsd, `JSD ${a[1].jsd} -> ${a[3].jsd}`);
  const b = figure1(options);
  assert.deepEqual(b[3].pG, a[3].pG);
  // Each density integrates to about 1 on the grid (p_g may lose tails).
  const dx = a[0].x[1] - a[0].x[0];
  const mass = (p: number[]) => p.reduce((s, v) => s + v, 0) * dx;
  assert.ok(Math.abs(mass(a[0].pData) - 1) < 1e-3);
  assert.ok(mass(a[3].pG) > 0.95 && mass(a[3].pG) < 1.01);
});
