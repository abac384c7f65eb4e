import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import {
  ClassifierNet,
  classify,
  FEATURE_DIM,
  loadClassifier,
  trainClassifier,
} from "../lib/eval/classifier.ts";
import { head, loadDataset } from "../lib/data.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");

Deno.test("training's im2col network equals the exported conv layers", async () => {
  const net = new ClassifierNet(3);
  const model = net.toLayersModel();
  const x = tf.tensor2d(new Rng(1).fillUniform(new Float32Array(4 * 784)), [
    4,
    784,
  ]);
  const a = await net.apply(x).logits.data();
  const b = await (model.predict(tf.reshape(x, [4, 28, 28, 1])) as tf.Tensor)
    .data();
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-4, `${v} vs ${b[i]}`));
  net.dispose();
  model.dispose();
});

Deno.test("training a few steps runs and is seeded", async () => {
  const mnist = await loadDataset("mnist", { log: () => {} });
  const tiny = {
    ...mnist,
    train: head(mnist.train, 64),
    test: head(mnist.test, 32),
  };
  const run = () =>
    trainClassifier(tiny, { epochs: 1, seed: 5, batchSize: 16 });
  const a = await run(), b = await run();
  assert.ok(a.testAccuracy >= 0 && a.testAccuracy <= 1);
  const wa = await a.model.getLayer("logits").getWeights()[0].data();
  const wb = await b.model.getLayer("logits").getWeights()[0].data();
  assert.deepEqual(wa, wb);
});

for (const [name, target] of [["mnist", 0.99], ["fashion", 0.9]] as const) {
  Deno.test(`the committed ${name} classifier reaches ${100 * target}% on the test set`, async () => {
    const { model, metadata } = await loadClassifier(
      `models/classifier/${name}`,
    );
    assert.equal(metadata.dataset, name);
    const data = await loadDataset(name, { log: () => {} });
    const images = new Float32Array(data.test.images.length);
    data.test.images.forEach((v, i) => images[i] = v / 255);
    const { features, probs } = await classify(model, images);
    assert.equal(features.length, 10000 * FEATURE_DIM);
    let correct = 0;
    for (let i = 0; i < 10000; i++) {
      const p = probs.subarray(i * 10, i * 10 + 10);
      if (p.indexOf(Math.max(...p)) === data.test.labels[i]) correct++;
    }
    assert.ok(correct / 10000 >= target, `${name}: ${correct / 100}%`);
    assert.ok(Math.abs(correct / 10000 - metadata.testAccuracy) < 1e-9);
  });
}
