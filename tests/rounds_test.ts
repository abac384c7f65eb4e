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
import { validateConfig } from "../lib/presets.ts";
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

Deno.test("a reuse round: G's step is on the batch D's step generated, drawing nothing more", async () => {
  const config = { ...tiny("bn"), update: "reuse" as const };
  const bs = config.batchSize;
  const images = toFloat(mnist.train.images.subarray(0, bs * 784), "[-1,1]");
  const batch: Batch = {
    images,
    labels: mnist.train.labels.subarray(0, bs),
    indices: Uint32Array.from({ length: bs }, (_, i) => i),
    size: bs,
    index: 0,
  };
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
