// The projection discriminator's output layer and class-conditional batch
// norm (lib/nets/layer_net.ts), against values computed here by hand; the
// exported conditional G against LayerNet, in memory and through files.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import { LayerNet } from "../lib/nets/layer_net.ts";
import { layerNetAsLayersModel } from "../lib/nets/export.ts";
import { withClasses } from "../lib/nets/latent.ts";
import { conditional, preset } from "../lib/presets.ts";
import { disposeGan } from "../lib/gan.ts";
import { Rng } from "../lib/random/rng.ts";
import { loadGenerator } from "../lib/run/checkpoint.ts";
import {
  loadLayersModelFile,
  saveLayersModel,
} from "../lib/io/layers_model.ts";
import { train } from "../lib/train.ts";
import { wgslStepSupport } from "../lib/wgsl/step.ts";
import { tinyOptions } from "./tiny.ts";

await initBackend("wasm");

/** Rows of `pixels` values, then the one-hot class of each of `labels`. */
function rows(pixels: Float32Array[], labels: number[], classes: number) {
  const n = pixels[0].length + classes;
  const x = new Float32Array(labels.length * n);
  labels.forEach((c, r) => {
    x.set(pixels[r], r * n);
    x[r * n + pixels[r].length + c] = 1;
  });
  return tf.tensor2d(x, [labels.length, n]);
}

Deno.test("projection: D's logit is w.x + b + embed(y).x, and the embedding learns", () => {
  const rng = new Rng(3);
  const net = new LayerNet("D", 784 + 3, [
    { kind: "classInput", classes: 3 },
    { kind: "flatten" },
    { kind: "dense", units: 1, projection: { classes: 3 } },
  ], rng);
  const v = net.vars[2];
  v.bias!.assign(tf.tensor1d([0.25]));
  const images = [0, 1].map(() =>
    rng.fillUniform(new Float32Array(784), -1, 1)
  );
  const labels = [2, 0];
  const x = rows(images, labels, 3);
  const out = net.apply(x, { training: true }).dataSync();
  const w = v.kernel!.dataSync(), e = v.embedding!.dataSync();
  labels.forEach((c, r) => {
    let want = 0.25;
    for (let i = 0; i < 784; i++) {
      want += images[r][i] * (w[i] + e[c * 784 + i]);
    }
    assert.ok(Math.abs(out[r] - want) < 1e-4, `row ${r}: ${out[r]} vs ${want}`);
  });
  // The gradient reaches the rows of the classes asked for, and no other.
  const { grads } = tf.variableGrads(
    () => tf.sum(net.apply(x, { training: true })) as tf.Scalar,
    [v.embedding!],
  );
  const ge = grads[v.embedding!.name].dataSync();
  for (let i = 0; i < 784; i++) {
    assert.ok(Math.abs(ge[2 * 784 + i] - images[0][i]) < 1e-6);
    assert.equal(ge[784 + i], 0);
    assert.ok(Math.abs(ge[i] - images[1][i]) < 1e-6);
  }
  assert.equal(net.parameterCount, 784 + 1 + 3 * 784);
  assert.match(net.summary()[2].layer, /projection of 3 classes/);
  tf.dispose(grads);
  net.dispose();
});

Deno.test("projection: with spectral norm, the embedding is divided by its own sigma, u and v kept", () => {
  const rng = new Rng(4);
  const net = new LayerNet("D", 784 + 2, [
    { kind: "classInput", classes: 2 },
    { kind: "flatten" },
    { kind: "dense", units: 1, spectralNorm: true, projection: { classes: 2 } },
  ], rng);
  const v = net.vars[2];
  assert.ok(v.embeddingSn);
  const u0 = v.embeddingSn.u.dataSync().slice();
  const image = rng.fillUniform(new Float32Array(784), -1, 1);
  const x = rows([image], [1], 2);
  const out = net.apply(x, { training: true }).dataSync()[0];
  assert.notDeepEqual([...v.embeddingSn.u.dataSync()], [...u0], "u moved");
  // Inference with the stored u and v: the same sigmas as the pass above.
  const again = net.apply(x, { training: false }).dataSync()[0];
  assert.ok(Math.abs(out - again) < 1e-5);
  // By hand: kernel / sigma_w, embedding / sigma_e, sigma = u . (Wt^T v).
  const sigma = (k: tf.Tensor, s: { u: tf.Variable; v: tf.Variable }) => {
    const m = tf.reshape(k, [-1, k.shape[k.shape.length - 1]]);
    return tf.sum(
      tf.mul(s.u, tf.squeeze(tf.matMul(m, tf.expandDims(s.v, 1), true), [1])),
    )
      .dataSync()[0];
  };
  const sw = sigma(v.kernel!, v.sn!), se = sigma(v.embedding!, v.embeddingSn);
  const w = v.kernel!.dataSync(), e = v.embedding!.dataSync();
  let want = 0;
  for (let i = 0; i < 784; i++) {
    want += image[i] * (w[i] / sw + e[784 + i] / se);
  }
  assert.ok(Math.abs(again - want) < 1e-4, `${again} vs ${want}`);
  assert.equal(
    net.variables.length,
    7,
    "kernel, bias, u, v, embedding, its u, v",
  );
  net.dispose();
});

Deno.test("conditional batch norm: each row scaled and shifted by its class's gamma and beta", () => {
  const rng = new Rng(5);
  const net = new LayerNet("G", 2 + 3, [
    { kind: "dense", units: 4 },
    { kind: "batchNorm", classes: 3, momentum: 0.5 },
  ], rng);
  const bn = net.vars[1];
  assert.deepEqual(bn.gamma!.shape, [3, 4]);
  const gamma = rng.fillUniform(new Float32Array(12), 0.5, 2);
  const beta = rng.fillUniform(new Float32Array(12), -1, 1);
  bn.gamma!.assign(tf.tensor2d(gamma, [3, 4]));
  bn.beta!.assign(tf.tensor2d(beta, [3, 4]));
  const labels = [0, 2, 2, 1];
  const z = labels.map(() => rng.fillNormal(new Float32Array(2)));
  const x = rows(z, labels, 3);
  const pre = tf.matMul(x, net.vars[0].kernel! as tf.Tensor2D).dataSync();
  const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
  const out = net.apply(x, { training: true, batchStats: stats }).dataSync();
  for (let c = 0; c < 4; c++) {
    const col = labels.map((_, r) => pre[r * 4 + c]);
    const mean = col.reduce((a, b) => a + b) / 4;
    const variance = col.reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
    labels.forEach((k, r) => {
      const want = (col[r] - mean) / Math.sqrt(variance + 1e-3) *
          gamma[k * 4 + c] + beta[k * 4 + c];
      assert.ok(Math.abs(out[r * 4 + c] - want) < 1e-4, `${r},${c}`);
    });
  }
  // Running statistics as batch norm's; inference uses them.
  net.updateMovingStats(stats);
  const inference = net.apply(x, { training: false }).dataSync();
  const mm = bn.movingMean!.dataSync(), mv = bn.movingVar!.dataSync();
  labels.forEach((k, r) => {
    for (let c = 0; c < 4; c++) {
      const want = (pre[r * 4 + c] - mm[c]) / Math.sqrt(mv[c] + 1e-3) *
          gamma[k * 4 + c] + beta[k * 4 + c];
      assert.ok(Math.abs(inference[r * 4 + c] - want) < 1e-4, `${r},${c}`);
    }
  });
  assert.match(net.summary()[1].layer, /batch norm, conditional on 3 classes/);
  tf.dispose(stats.flatMap((s) => [s.mean, s.variance]));
  net.dispose();
});

Deno.test("a G with conditional batch norm exports as a functional model of standard layers, equal to LayerNet, through files too", async () => {
  const config = conditional(preset("sngan"));
  const rng = new Rng(6);
  const net = new LayerNet("G", 110, config.generator.layers!, rng);
  // Gammas, betas and running statistics away from their starting values.
  for (const v of net.vars) {
    for (const t of [v.gamma, v.beta, v.movingMean]) {
      t?.assign(
        tf.tensor(rng.fillUniform(new Float32Array(t.size), -1, 1), t.shape),
      );
    }
    v.movingVar?.assign(
      tf.tensor(
        rng.fillUniform(new Float32Array(v.movingVar.size), 0.5, 2),
        v.movingVar.shape,
      ),
    );
  }
  const z = withClasses(
    rng.fillNormal(new Float32Array(300)),
    [0, 4, 9],
    100,
    10,
  );
  const x = tf.tensor2d(z, [3, 110]);
  const want = net.apply(x, { training: false }).dataSync();
  const model = layerNetAsLayersModel(net);
  const classNames = new Set(
    model.layers.map((l) => l.getClassName()),
  );
  assert.deepEqual(
    [...classNames].sort(),
    [
      "Activation",
      "Add",
      "BatchNormalization",
      "Conv2DTranspose",
      "Dense",
      "Flatten",
      "InputLayer",
      "Multiply",
      "Reshape",
    ],
  );
  const got = (model.predict(x) as tf.Tensor).dataSync();
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  assert.ok(worst < 1e-4, `largest difference ${worst}`);
  // Saved and loaded with tf.loadLayersModel (as `deno task sample` and the
  // web page load a generator).
  const dir = await Deno.makeTempDir();
  await saveLayersModel(dir, model, { metadata: {} });
  const { model: loaded } = await loadLayersModelFile(`${dir}/model.json`);
  const again = (loaded.predict(x) as tf.Tensor).dataSync();
  assert.deepEqual([...again], [...got]);
  await Deno.remove(dir, { recursive: true });
  tf.dispose(x);
  model.dispose();
  loaded.dispose();
  net.dispose();
});

Deno.test("a projection sngan trains on the tfjs step, resumes exactly (the embedding and its u and v too), writes a generator that draws its classes; the WGSL step takes it, not the class planes", async () => {
  const mnist = await loadDataset("mnist", { log: () => {} });
  const config = { ...conditional(preset("sngan")), batchSize: 16 };
  assert.equal(wgslStepSupport(config), null);
  assert.match(
    wgslStepSupport(conditional(preset("sngan"), 10, "channels")) ?? "",
    /the class as D's input planes \(--conditioning channels\) is not written yet/,
  );
  const root = await Deno.makeTempDir();
  const base = tinyOptions(mnist as Dataset, { seed: 5, limit: 64 });
  const full = await train(base({ config, epochs: 2, outDir: `${root}/full` }));
  assert.equal(full.status, "completed");
  assert.ok(Number.isFinite(full.history[1].dLoss));
  const first = await train(
    base({ config, epochs: 1, outDir: `${root}/split` }),
  );
  disposeGan(first.gan);
  const resumed = await train(
    base({ epochs: 2, outDir: `${root}/split`, resume: true }),
  );
  // Every variable of both networks, D's embedding and its spectral-norm
  // vectors among them, as the uninterrupted run left them.
  const names = (vs: tf.Variable[]) =>
    vs.map((v) => v.name.replace(/^\d+:/, ""));
  for (const net of ["generator", "discriminator"] as const) {
    const va = full.gan[net].variables, vb = resumed.gan[net].variables;
    assert.deepEqual(names(vb), names(va));
    for (let i = 0; i < va.length; i++) {
      assert.deepEqual(await vb[i].data(), await va[i].data(), va[i].name);
    }
  }
  const d = full.gan.discriminator.vars.at(-1)!;
  assert.ok(d.embedding && d.embeddingSn, "D's last layer has the projection");

  // The written generator draws what the network draws, and the class
  // changes the image.
  const g = await loadGenerator(`${root}/full/generator`);
  assert.equal(g.metadata.classes, 10);
  assert.equal(g.metadata.conditioning, "projection");
  const noise = new Rng(1).fillNormal(new Float32Array(100));
  const z = withClasses(
    Float32Array.from([...noise, ...noise]),
    [3, 7],
    100,
    10,
  );
  const x = tf.tensor2d(z, [2, 110]);
  const drawn = (g.model.predict(x) as tf.Tensor).dataSync();
  const direct = full.gan.generator.apply(x, { training: false }).dataSync();
  let worst = 0, apart = 0;
  for (let i = 0; i < drawn.length; i++) {
    worst = Math.max(worst, Math.abs(drawn[i] - direct[i]));
  }
  for (let i = 0; i < 784; i++) {
    apart = Math.max(apart, Math.abs(drawn[i] - drawn[784 + i]));
  }
  assert.ok(worst < 1e-4, `${worst}`);
  assert.ok(
    apart > 0.01,
    `classes 3 and 7 from the same noise differ by ${apart}`,
  );
  tf.dispose(x);
  g.model.dispose();
  disposeGan(full.gan);
  disposeGan(resumed.gan);
  await Deno.remove(root, { recursive: true });
});
