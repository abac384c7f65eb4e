import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { type Batch, type Dataset, loadDataset, toFloat } from "../lib/data.ts";
import {
  createGan,
  discriminatorStep,
  disposeGan,
  type Gan,
  generatorStep,
} from "../lib/gan.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { type GanConfig } from "../lib/presets.ts";
import { validateConfig } from "../lib/config_check.ts";
import { wgslStepSupport } from "../lib/wgsl/step.ts";
import { Rng } from "../lib/random/rng.ts";
import { TfjsRounds } from "../lib/rounds.ts";
import { train } from "../lib/train.ts";
import { tiny, tinyOptions } from "./tiny.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });

const weights = (gan: Gan) =>
  Promise.all(
    [...gan.generator.trainable, ...gan.discriminator.trainable].map((v) =>
      v.data()
    ),
  );

/** The first `n` training images as an epoch's first batch, in [-1, 1]. */
function firstBatch(n: number): Batch {
  return {
    images: toFloat(mnist.train.images.subarray(0, n * 784), "[-1,1]"),
    labels: mnist.train.labels.subarray(0, n),
    indices: Uint32Array.from({ length: n }, (_, i) => i),
    size: n,
    index: 0,
  };
}

Deno.test("a reuse round: G's step is on the batch D's step generated, drawing nothing more", async () => {
  const config = { ...tiny("bn"), update: "reuse" as const };
  const bs = config.batchSize;
  const batch = firstBatch(bs), images = batch.images;
  const a = createGan(config, { seed: 3 }), b = createGan(config, { seed: 3 });
  try {
    const rngA = new Rng(9), rngB = new Rng(9);
    using rounds = new TfjsRounds(a, rngA);
    rounds.startEpoch(0);
    await rounds.round(batch);
    // By hand: D's step on z, then G's on the same z and masks.
    const z = tf.tensor2d(sampleLatent(config, bs, rngB), [bs, 100]);
    const masks = rngB.nextUint32();
    const real = tf.tensor2d(images, [bs, 784]);
    tf.dispose(Object.values(
      discriminatorStep(b, { real, noise: z, masks, epoch: 0 }),
    ));
    generatorStep(b, { noise: z, masks, epoch: 0 }).dispose();
    tf.dispose([z, real]);
    assert.deepEqual(await weights(a), await weights(b));
    assert.deepEqual(rngA.getState(), rngB.getState());
    const m = await rounds.means();
    assert.ok(m.gLoss > 0 && Number.isFinite(m.gLoss));
    await rounds.endEpoch();
  } finally {
    disposeGan(a);
    disposeGan(b);
  }
});

Deno.test("reuse trains without leaking tensors; it needs k = 1 and one G step", async () => {
  const counts: number[] = [];
  const r = await train(
    tinyOptions(mnist as Dataset, {})({
      config: { ...tiny("mlp"), update: "reuse" },
      epochs: 3,
      limit: 96,
      seed: 1,
      onEpoch: () => {
        counts.push(tf.memory().numTensors);
      },
    }),
  );
  assert.equal(r.status, "completed");
  assert.ok(counts.every((c) => c === counts[0]), `tensor counts ${counts}`);
  assert.ok(r.history.every((s) => s.gLoss > 0));
  disposeGan(r.gan);
  assert.throws(
    () => validateConfig({ ...tiny("mlp"), update: "reuse", k: 2 }),
    /a reuse update needs k = 1 and one G step, got k = 2/,
  );
});

Deno.test("halfBatchD: D steps on half a batch of real and generated images, G on a whole batch", async () => {
  const config = { ...tiny("mlp"), halfBatchD: true };
  const half = config.batchSize / 2;
  const batch = firstBatch(half), images = batch.images;
  const a = createGan(config, { seed: 4 }), b = createGan(config, { seed: 4 });
  try {
    const rngA = new Rng(6), rngB = new Rng(6);
    using rounds = new TfjsRounds(a, rngA);
    rounds.startEpoch(0);
    await rounds.round(batch);
    // By hand: D on half a batch of each, then G on a whole batch of noise.
    const zD = tf.tensor2d(sampleLatent(config, half, rngB), [half, 100]);
    const dMasks = rngB.nextUint32();
    const zG = tf.tensor2d(
      sampleLatent(config, config.batchSize, rngB),
      [config.batchSize, 100],
    );
    const gMasks = rngB.nextUint32();
    const real = tf.tensor2d(images, [half, 784]);
    tf.dispose(Object.values(
      discriminatorStep(b, { real, noise: zD, masks: dMasks, epoch: 0 }),
    ));
    generatorStep(b, { noise: zG, masks: gMasks, epoch: 0 }).dispose();
    tf.dispose([zD, zG, real]);
    assert.deepEqual(await weights(a), await weights(b));
    assert.deepEqual(rngA.getState(), rngB.getState());
    await rounds.endEpoch();
  } finally {
    disposeGan(a);
    disposeGan(b);
  }
});

Deno.test("stepsPerEpoch and halfBatchD set an epoch's rounds; bad settings are refused", async () => {
  const options = tinyOptions(mnist as Dataset, { limit: 192, seed: 2 });
  // 192 images, batch 32: 6 rounds an epoch; the first 2 only; or 12 of 16
  // real images each with half batches.
  for (
    const [over, rounds] of [
      [{}, 6],
      [{ stepsPerEpoch: 2 }, 2],
      [{ halfBatchD: true }, 12],
      [{ halfBatchD: true, stepsPerEpoch: 5 }, 5],
    ] as const
  ) {
    const r = await train(options({ config: { ...tiny("mlp"), ...over } }));
    assert.equal(r.gan.optimizerD.step, rounds, JSON.stringify(over));
    assert.equal(r.gan.optimizerG.step, rounds, JSON.stringify(over));
    disposeGan(r.gan);
  }
  // More steps than the split has batches: each epoch plays them all, and
  // the run says so.
  const notes: string[] = [];
  const capped = await train(options({
    config: { ...tiny("mlp"), stepsPerEpoch: 50 },
    log: (m) => notes.push(m),
  }));
  assert.equal(capped.gan.optimizerD.step, 6);
  assert.match(
    notes.join("\n"),
    /192 training images make 6 batches, fewer than the preset's 50 steps an epoch: each epoch plays 6/,
  );
  disposeGan(capped.gan);
  for (
    const [over, pattern] of [
      [{ halfBatchD: true, batchSize: 33 }, /needs an even batch size, got 33/],
      [{ halfBatchD: true, classes: 10 }, /not written for conditional GANs/],
      [
        { halfBatchD: true, update: "reuse" },
        /half batch for D \(keras-mlp's\) needs alternating updates, got reuse; leave --update out/,
      ],
      [{ stepsPerEpoch: 0 }, /steps per epoch must be a positive integer/],
    ] as const
  ) {
    assert.throws(
      () => validateConfig({ ...tiny("mlp"), ...over } as GanConfig),
      pattern,
    );
  }
  assert.match(
    wgslStepSupport({ ...tiny("mlp"), halfBatchD: true })!,
    /D steps on half a batch/,
  );
});
