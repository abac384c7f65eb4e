/**
 * The convolutional presets: both train on wasm (whose convolution weight
 * gradient `lib/backends/wasm_conv.ts` supplies) and on WebGPU with the tfjs step,
 * resume exactly (spectral norm's u and v included), and export G as a
 * standard TF.js layers model that computes what G computes.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { readCheckpoint, restoreCheckpoint } from "../lib/run/checkpoint.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import { createGan, disposeGan, generate, generatorModel } from "../lib/gan.ts";
import { type GanConfig, preset } from "../lib/presets.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { train } from "../lib/train.ts";
import { type EpochStats } from "../lib/run/record.ts";
import { chooseStep } from "../lib/rounds.ts";

const probe = await probeWebGpu();
await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });

/**
 * `name`'s preset with every layer's width cut to an eighth (the same kinds
 * of layer, strides and shapes), batch 16: cheap enough for tests.
 */
function small(name: string): GanConfig {
  const c = preset(name);
  c.batchSize = 16;
  for (const net of [c.generator, c.discriminator]) {
    net.layers = net.layers!.map((l) => {
      if (l.kind === "reshape" && l.shape[2] > 1) {
        return { ...l, shape: [l.shape[0], l.shape[1], l.shape[2] / 8] };
      }
      if (l.kind === "dense" && l.units > 1) {
        return { ...l, units: l.units / 8 };
      }
      if ("filters" in l && l.filters > 1) {
        return { ...l, filters: l.filters / 8 };
      }
      return l;
    });
  }
  return c;
}

const figures = (h: EpochStats[]) =>
  h.map(({ epoch, dLoss, gLoss, dReal, dFake }) => [
    epoch,
    dLoss,
    gLoss,
    dReal,
    dFake,
  ]);

Deno.test("conv presets train on wasm and resume exactly (spectral norm's u and v included)", async () => {
  const root = await Deno.makeTempDir();
  try {
    for (const name of ["dcgan", "sngan", "sngan-fc"]) {
      const base = {
        config: small(name),
        dataset: mnist as Dataset,
        seed: 3,
        limit: 48,
        holdout: 0,
        log: () => {},
      };
      const full = await train({
        ...base,
        epochs: 2,
        outDir: `${root}/${name}-full`,
      });
      assert.equal(full.status, "completed");
      for (const s of full.history) {
        assert.ok(Number.isFinite(s.dLoss) && Number.isFinite(s.gLoss), name);
      }
      const dir = `${root}/${name}-split`;
      disposeGan((await train({ ...base, epochs: 1, outDir: dir })).gan);
      const resumed = await train({
        ...base,
        epochs: 2,
        outDir: dir,
        resume: true,
      });
      assert.deepEqual(figures(resumed.history), figures(full.history), name);
      const names = (await readCheckpoint(dir)).file.tensors.map((t) => t.name);
      if (name === "sngan") {
        assert.ok(names.includes("D/1/sn_u") && names.includes("D/6/sn_v"));
      }
      // The generator a run writes loads and draws digits-shaped images.
      assert.ok(names.includes("G/0/kernel"));
      disposeGan(full.gan);
      disposeGan(resumed.gan);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a checkpoint of another network is refused, saying what to do", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = await train({
      config: small("sngan"),
      dataset: mnist as Dataset,
      seed: 0,
      limit: 16,
      holdout: 0,
      epochs: 1,
      outDir: dir,
      log: () => {},
    });
    disposeGan(run.gan);
    const checkpoint = await readCheckpoint(dir);
    for (const other of [small("dcgan"), preset("paper")]) {
      const gan = createGan(other, { seed: 0 });
      assert.throws(
        () => restoreCheckpoint(gan, checkpoint),
        /checkpoint does not fit this model: G\/0\/kernel has shape 100x784, the model's is .*another network.*start a new run/,
      );
      disposeGan(gan);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a conv generator exports as a TF.js layers model equal to G", async () => {
  for (const name of ["dcgan", "sngan", "sngan-fc"]) {
    const gan = createGan(small(name), { seed: 1 });
    // Move batch norm's running statistics away from 0 and 1 first.
    const z0 = tf.tensor2d(sampleLatent(gan.config, 16, new Rng(2)), [16, 100]);
    const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
    tf.tidy(() => {
      gan.generator.apply(z0, { training: true, batchStats: stats });
      gan.generator.updateMovingStats(stats);
    });
    const z = tf.tensor2d(sampleLatent(gan.config, 5, new Rng(3)), [5, 100]);
    const model = generatorModel(gan.generator);
    const want = await generate(gan, z).data();
    const got = await (model.predict(z) as tf.Tensor).data();
    assert.equal(got.length, 5 * 784);
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `${name}[${i}]`);
    }
    model.dispose();
    tf.dispose([z0, z]);
    disposeGan(gan);
  }
});

Deno.test({
  name:
    "webgpu: dcgan and sngan choose the WGSL step; a round it cannot run says why and to use --step tfjs",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    try {
      const gan = createGan(small("dcgan"), { seed: 0 });
      const auto = await chooseStep(gan, "auto", { log: () => {} });
      assert.ok(auto.step, auto.why);
      auto.step[Symbol.dispose]();
      disposeGan(gan);
      const other = createGan(
        { ...small("dcgan"), update: "simultaneous" },
        { seed: 0 },
      );
      await assert.rejects(
        () => chooseStep(other, "wgsl"),
        /the WGSL step cannot run: .*simultaneous.*use --step tfjs/,
      );
      disposeGan(other);
      const lines: string[] = [];
      const r = await train({
        config: small("sngan"),
        dataset: mnist as Dataset,
        epochs: 1,
        limit: 32,
        holdout: 0,
        log: (m) => lines.push(m),
      });
      assert.equal(r.status, "completed");
      assert.ok(Number.isFinite(r.history[0].dLoss));
      assert.ok(
        lines.some((l) => /training step: WGSL programs.*layer_step/.test(l)),
        lines.join("\n"),
      );
      disposeGan(r.gan);
    } finally {
      await initBackend("wasm");
    }
  },
});

Deno.test("LayerNet.summary lists each layer, its output shape and weights", () => {
  const gan = createGan(preset("sngan"), { seed: 0 });
  for (const net of [gan.generator, gan.discriminator]) {
    const rows = net.summary();
    assert.equal(rows.length, net.descs.length);
    // Every trainable weight is in some row (no label block here).
    assert.equal(
      rows.reduce((n, r) => n + r.weights, 0),
      net.parameterCount,
    );
    assert.equal(rows.at(-1)!.output, net.shapes.at(-1)!.join(" × "));
  }
  const d = gan.discriminator.summary();
  assert.deepEqual(d[0], {
    layer: "reshape",
    output: "28 × 28 × 1",
    weights: 0,
  });
  assert.match(d[1].layer, /^conv \d+ × \d×\d, stride \d, spectral norm$/);
  const g = gan.generator.summary();
  assert.ok(g.some((r) => r.layer.startsWith("transposed conv ")));
  disposeGan(gan);
});
