import assert from "node:assert/strict";
import { initBackend } from "../lib/backends/choice.ts";
import { head, loadDataset, toFloat } from "../lib/data.ts";
import { evaluateImages, readSamplesFile } from "../lib/eval/evaluate.ts";
import { encodeIdx } from "../lib/io/idx.ts";
import { decodeNpy, encodeNpy } from "../lib/io/npy.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });

Deno.test("npy round trip and errors", () => {
  const data = Uint8Array.from({ length: 2 * 784 }, (_, i) => i % 256);
  const back = decodeNpy(encodeNpy({ shape: [2, 28, 28], data }));
  assert.deepEqual(back.shape, [2, 28, 28]);
  assert.deepEqual(back.data, data);
  const f = decodeNpy(
    encodeNpy({ shape: [3], data: Float32Array.from([0.5, -1, 1]) }),
  );
  assert.deepEqual([...f.data], [0.5, -1, 1]);
  const bytes = encodeNpy({ shape: [2, 784], data: new Uint8Array(2 * 784) });
  assert.throws(
    () => decodeNpy(bytes.subarray(0, bytes.length - 3), "s.npy"),
    /s.npy: truncated/,
  );
  assert.throws(
    () => decodeNpy(new Uint8Array(20), "x.npy"),
    /not a .npy file/,
  );
});

Deno.test("sample files: npy bytes and floats, IDX; malformed ones are errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = Uint8Array.from({ length: 3 * 784 }, (_, i) => (i * 7) % 256);
    const expected = toFloat(bytes, "[0,1]");
    await Deno.writeFile(
      `${dir}/a.npy`,
      encodeNpy({ shape: [3, 28, 28], data: bytes }),
    );
    assert.deepEqual(await readSamplesFile(`${dir}/a.npy`), expected);
    await Deno.writeFile(
      `${dir}/b.npy`,
      encodeNpy({ shape: [3, 784], data: expected.map((v) => 2 * v - 1) }),
    );
    const tanh = await readSamplesFile(`${dir}/b.npy`);
    tanh.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6));
    await Deno.writeFile(
      `${dir}/c-idx3-ubyte`,
      encodeIdx({ dims: [3, 28, 28], data: bytes }),
    );
    assert.deepEqual(await readSamplesFile(`${dir}/c-idx3-ubyte`), expected);

    await Deno.writeFile(
      `${dir}/d.npy`,
      encodeNpy({ shape: [3, 32, 32], data: new Uint8Array(3 * 1024) }),
    );
    await assert.rejects(
      () => readSamplesFile(`${dir}/d.npy`),
      /shape \(3, 32, 32\), expected \(N, 28, 28\)/,
    );
    await Deno.writeFile(
      `${dir}/e.npy`,
      encodeNpy({ shape: [2, 784], data: new Float32Array(2 * 784).fill(3) }),
    );
    await assert.rejects(
      () => readSamplesFile(`${dir}/e.npy`),
      /span \[3, 3\]; expected \[0, 1\] or \[-1, 1\]/,
    );
    await Deno.writeTextFile(`${dir}/f.npy`, "hello");
    await assert.rejects(
      () => readSamplesFile(`${dir}/f.npy`),
      /neither a .npy nor an IDX file/,
    );
    await assert.rejects(
      () => readSamplesFile(`${dir}/missing.npy`),
      /cannot read the file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Sanity figures on small sizes (docs/training.md reports them at 10,000 images).
// The data-copying test compares against the first 5,000 training images.
const small = {
  dataset: mnist,
  validation: 1000,
  test: 1000,
  copyingReference: 5000,
};

Deno.test("real images: high likelihood, small FID, every class covered", async () => {
  const real = toFloat(head(mnist.train, 2000).images, "[0,1]");
  const r = await evaluateImages(real, small);
  assert.ok(
    // On these 1,000 test images; the whole test set: classifier_test.ts.
    r.classifier_test_acc >= 0.97,
    `classifier accuracy ${r.classifier_test_acc}`,
  );
  // 2,000 kernel centres score 144 here; 10,000 score 241 (docs/training.md). Noise: below -400.
  assert.ok(r.parzen_ll > 120, `Parzen ${r.parzen_ll}`);
  // FID is biased upward on small sets: 10 here, 1.03 with 10,000 images; noise > 100.
  assert.ok(r.fid < 20, `FID ${r.fid}`);
  // KID, unbiased, is small for real images: 0.9 here, where the first
  // 1,000 test images (MNIST's cleaner writers) differ from the training
  // mix; all 60,000 training images against the test set score 0.05.
  // Noise: 44.
  assert.ok(r.kid < 3 && r.kid_std >= 0, `KID ${r.kid}`);
  // Real images lie on the real images' manifold, and cover it.
  for (const key of ["precision", "recall", "coverage"] as const) {
    assert.ok(r[key] > 0.6 && r[key] <= 1, `${key} ${r[key]}`);
  }
  assert.ok(r.is > 9, `IS ${r.is}`);
  assert.equal(r.classes_ge_1pct, 10);
  assert.ok(r.kl_uniform < 0.01);
  // They are the training images themselves: the data-copying test says so.
  assert.ok(r.copying_ct < -10, `C_T ${r.copying_ct}`);
  // (0 but for float32 rounding in |a|^2 + |b|^2 - 2 a . b.)
  assert.ok(r.copying_distance_ratio < 0.01);
});

Deno.test("data-copying test: flags training images with small noise, passes held-out images", async () => {
  const rng = new Rng(5);
  const copies = toFloat(head(mnist.train, 2000).images, "[0,1]").map((v) =>
    Math.min(1, Math.max(0, v + 0.1 * (rng.next() - 0.5)))
  );
  const copied = await evaluateImages(copies, { ...small, skipParzen: true });
  assert.ok(copied.copying_ct < -10, `copies: C_T ${copied.copying_ct}`);
  assert.ok(copied.copying_distance_ratio < 0.5);
  // Test images the generator never saw, of the same writers as the first
  // 1,000 the test compares with (MNIST's first 5,000 test images).
  const heldOut = toFloat(
    mnist.test.images.subarray(1000 * 784, 3000 * 784),
    "[0,1]",
  );
  const fresh = await evaluateImages(heldOut, { ...small, skipParzen: true });
  assert.ok(
    Math.abs(fresh.copying_ct) < 3,
    `held out: C_T ${fresh.copying_ct}`,
  );
  assert.ok(
    Math.abs(fresh.copying_distance_ratio - 1) < 0.15,
    `ratio ${fresh.copying_distance_ratio}`,
  );
});

Deno.test("uniform noise: very low likelihood, very large FID", async () => {
  const noise = new Rng(0).fillUniform(new Float32Array(2000 * 784));
  const r = await evaluateImages(noise, small);
  assert.ok(r.parzen_ll < -400, `Parzen ${r.parzen_ll}`);
  assert.ok(r.fid > 100, `FID ${r.fid}`);
  assert.ok(r.kid > 20, `KID ${r.kid}`);
  // Noise is nowhere near a digit, and covers none.
  assert.ok(r.precision < 0.05, `precision ${r.precision}`);
  assert.ok(r.coverage < 0.05, `coverage ${r.coverage}`);
});

Deno.test("ten images repeated: low class coverage", async () => {
  const ten = toFloat(head(mnist.train, 10).images, "[0,1]");
  const repeated = new Float32Array(2000 * 784);
  for (let i = 0; i < 200; i++) repeated.set(ten, i * 10 * 784);
  const labels = new Set(mnist.train.labels.subarray(0, 10));
  const r = await evaluateImages(repeated, { ...small, skipParzen: true });
  assert.ok(r.classes_ge_1pct <= labels.size, `${r.classes_ge_1pct} classes`);
  assert.ok(r.kl_uniform > 0.1, `KL ${r.kl_uniform}`);
  assert.ok(Number.isNaN(r.parzen_ll));
});
