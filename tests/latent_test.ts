import assert from "node:assert/strict";
import { sampleLatent } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";

Deno.test("truncation redraws: values in (-T, T), the truncated distribution, however many are drawn at once", () => {
  const t = 0.5;
  for (const latent of ["normal", "uniform"] as const) {
    // 3 values a vector, drawn as 13 vectors or as 5 then 8: odd counts, so
    // the normal pairs do not line up with the calls.
    const config = { latent, latentDim: 3, truncation: t };
    const all = sampleLatent(config, 13, new Rng(7));
    const rng = new Rng(7);
    const parts = [sampleLatent(config, 5, rng), sampleLatent(config, 8, rng)];
    assert.deepEqual([...parts[0], ...parts[1]], [...all], latent);
    // Redrawn, not clipped: no value sits on the bound, and the mean |z|
    // is the truncated distribution's. Normal on [-0.5, 0.5]: 0.2449
    // (clipping would give 0.38); uniform on it: 0.25.
    const many = sampleLatent(config, 20000, new Rng(3));
    assert.ok(many.every((v) => Math.abs(v) < t), latent);
    const meanAbs = many.reduce((s, v) => s + Math.abs(v), 0) / many.length;
    const want = latent === "normal" ? 0.2449 : 0.25;
    assert.ok(
      Math.abs(meanAbs - want) < 0.005,
      `${latent}: mean |z| ${meanAbs}`,
    );
  }
  // Without a truncation, the draws are the untruncated stream as before.
  const plain = { latent: "normal" as const, latentDim: 10 };
  assert.deepEqual(
    sampleLatent(plain, 4, new Rng(1)),
    new Rng(1).fillNormal(new Float32Array(40)),
  );
  for (const bad of [0, -1, NaN, 0.001]) {
    assert.throws(
      () => sampleLatent({ ...plain, truncation: bad }, 1, new Rng(1)),
      /truncation must be a number of at least 0.01/,
    );
  }
});
