import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import {
  createGan,
  disposeGan,
  generate,
  generatorStep,
  outputGenerator,
} from "../lib/gan.ts";
import {
  copyStatistics,
  emaDecay,
  recomputeBatchNormStats,
} from "../lib/nets/ema.ts";
import { LayerNet } from "../lib/nets/layer_net.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { validateConfig } from "../lib/config_check.ts";
import { generateImages, loadGenerator } from "../lib/run/checkpoint.ts";
import { Rng } from "../lib/random/rng.ts";
import { averageStatistics, train } from "../lib/train.ts";
import { wgslStepSupport } from "../lib/wgsl/step.ts";
import { tiny, tinyOptions } from "./tiny.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });

Deno.test("the decay: a copy up to the start, then the configured decay", () => {
  const c = { decay: 0.999, start: 2 };
  assert.deepEqual([1, 2, 3, 10].map((s) => emaDecay(c, s)), [
    0,
    0,
    0.999,
    0.999,
  ]);
  assert.equal(emaDecay({ decay: 0.9, start: 0 }, 1), 0.9);
});

Deno.test("the average of G's weights: decay * average + (1 - decay) * w after each update, statistics copied", async () => {
  const config = { ...tiny("bn"), ema: { decay: 0.9, start: 2 } };
  const bs = config.batchSize;
  const gan = createGan(config, { seed: 5 });
  // The same network without an average trains to the same G.
  const plain = createGan(tiny("bn"), { seed: 5 });
  try {
    const rng = new Rng(8);
    const G = gan.generator, E = gan.generatorEma!;
    assert.equal(E.variables.length, G.variables.length);
    const trainable = new Set(G.trainable);
    // Expected average, in float32 as the backend computes it.
    let expected: Float32Array[] = [];
    const d = Math.fround(0.9), e = Math.fround(1 - 0.9);
    for (let step = 1; step <= 5; step++) {
      const z = tf.tensor2d(sampleLatent(config, bs, rng), [bs, 100]);
      const masks = rng.nextUint32();
      generatorStep(gan, { noise: z, masks, epoch: 0 }).dispose();
      generatorStep(plain, { noise: z, masks, epoch: 0 }).dispose();
      z.dispose();
      const w = await Promise.all(G.variables.map((v) => v.data<"float32">()));
      expected = w.map((wi, i) =>
        step <= 2 || !trainable.has(G.variables[i])
          ? wi.slice()
          : wi.map((x, j) =>
            Math.fround(Math.fround(expected[i][j] * d) + Math.fround(x * e))
          )
      );
      const got = await Promise.all(
        E.variables.map((v) => v.data<"float32">()),
      );
      got.forEach((g, i) => {
        let worst = 0;
        for (let j = 0; j < g.length; j++) {
          const e = expected[i][j];
          worst = Math.max(worst, Math.abs(g[j] - e) / (1 + Math.abs(e)));
        }
        assert.ok(
          worst <= 1e-7,
          `step ${step}, ${E.variables[i].name}: ${worst}`,
        );
      });
    }
    // After the start the average is not G, and G is what it is without one.
    assert.notDeepEqual(
      await E.trainable[0].data(),
      await G.trainable[0].data(),
    );
    const pv = plain.generator.variables;
    for (let i = 0; i < pv.length; i++) {
      assert.deepEqual(await G.variables[i].data(), await pv[i].data());
    }
    assert.equal(outputGenerator(gan), E);
    assert.equal(outputGenerator(plain), plain.generator);
  } finally {
    disposeGan(gan);
    disposeGan(plain);
  }
});

Deno.test("a run with an average: samples and generator/ from it, G as trained in generator-raw/", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = tinyOptions(mnist as Dataset, {
      epochs: 1,
      seed: 2,
      limit: 256,
    });
    const r = await train(run({
      config: { ...tiny("bn"), ema: { decay: 0.8, start: 1 } },
      outDir: dir,
    }));
    assert.equal(r.status, "completed");
    const averaged = await loadGenerator(dir);
    const raw = await loadGenerator(`${dir}/generator-raw`);
    assert.deepEqual(averaged.metadata.ema, { decay: 0.8, start: 1 });
    assert.equal(raw.metadata.ema, undefined);
    assert.equal(raw.metadata.run, averaged.metadata.run);
    const z = sampleLatent(r.gan.config, 8, new Rng(1));
    const zt = tf.tensor2d(z, [8, 100]);
    const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${i}: ${a[i]} vs ${b[i]}`);
      }
    };
    const fromAverage = await generate(r.gan, zt).data();
    const fromG = await generate(r.gan, zt, r.gan.generator).data();
    // generateImages maps tanh's [-1, 1] to [0, 1].
    const to01 = (x: Float32Array | Int32Array | Uint8Array) =>
      Array.from(x, (v) => (v + 1) / 2);
    close(await generateImages(averaged, z), to01(fromAverage as Float32Array));
    close(await generateImages(raw, z), to01(fromG as Float32Array));
    assert.ok(
      fromAverage.some((v, i) => Math.abs(v - fromG[i]) > 1e-3),
      "the average's images equal G's",
    );
    // The epoch's sample grid is the average's.
    const grid = tf.tensor2d(r.fixedNoise, [r.fixedNoise.length / 100, 100]);
    close(r.grid, await generate(r.gan, grid).data());
    tf.dispose([zt, grid]);
    // The average's batch-norm statistics are its own, recomputed on the
    // epoch's noise, not G's copied at each update.
    const ema = r.gan.generatorEma!;
    const stats = (net: typeof ema) =>
      net.vars.flatMap((v) =>
        v.movingMean ? [v.movingMean.dataSync(), v.movingVar!.dataSync()] : []
      );
    const kept = stats(ema);
    assert.equal(kept.length, 2 * 4); // four batch-norm layers in bn's G
    assert.notDeepEqual(kept, stats(r.gan.generator));
    copyStatistics(ema, r.gan.generator);
    averageStatistics(r.gan, 2, 0);
    assert.deepEqual(stats(ema), kept);
    averaged.model.dispose();
    raw.model.dispose();
    disposeGan(r.gan);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad settings of the average are refused with what to do", () => {
  for (
    const [ema, pattern] of [
      [{ decay: 1, start: 0 }, /decay must be in \(0, 1\), got 1/],
      [{ decay: 0, start: 0 }, /decay must be in \(0, 1\), got 0/],
      [{ decay: NaN, start: 0 }, /decay must be in \(0, 1\), got NaN/],
      [{ decay: 0.9, start: -1 }, /start must be an integer >= 0/],
      [{ decay: 0.9, start: 1.5 }, /start must be an integer >= 0/],
    ] as const
  ) {
    assert.throws(() => validateConfig({ ...tiny(), ema }), pattern);
  }
  // The WGSL step keeps the average too (tests/wgsl_step_test.ts).
  assert.equal(
    wgslStepSupport({ ...tiny(), ema: { decay: 0.999, start: 0 } }),
    null,
  );
});

Deno.test("batch norm's statistics recomputed: the mean of the batches' means and variances", async () => {
  const config = tiny("bn");
  const gan = createGan(config, { seed: 2 });
  try {
    const G = gan.generator, rng = new Rng(3);
    const batches = [0, 1, 2].map(() =>
      tf.tensor2d(sampleLatent(config, 8, rng), [8, 100])
    );
    // By hand: each batch's statistics in training mode, averaged.
    const sums: number[][] = [];
    for (const z of batches) {
      const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
      tf.tidy(() => {
        G.apply(z, { training: true, batchStats: stats });
        stats.forEach((s, l) => {
          const m = s.mean.dataSync(), v = s.variance.dataSync();
          sums[2 * l] = Array.from(m, (x, j) => (sums[2 * l]?.[j] ?? 0) + x);
          sums[2 * l + 1] = Array.from(
            v,
            (x, j) => (sums[2 * l + 1]?.[j] ?? 0) + x,
          );
        });
      });
    }
    recomputeBatchNormStats(G, (i) => batches[i].clone(), 3);
    const layers = G.vars.filter((v) => v.movingMean);
    assert.equal(layers.length, sums.length / 2);
    for (const [l, v] of layers.entries()) {
      const m = await v.movingMean!.data(), s = await v.movingVar!.data();
      m.forEach((x, j) => assert.ok(Math.abs(x - sums[2 * l][j] / 3) < 1e-5));
      s.forEach((x, j) =>
        assert.ok(Math.abs(x - sums[2 * l + 1][j] / 3) < 1e-4)
      );
    }
    tf.dispose(batches);
  } finally {
    disposeGan(gan);
  }
});

Deno.test("standing statistics of a network with dropout before a batch norm: masks on, one seed a batch", async () => {
  const net = new LayerNet("bn-dropout", 6, [
    { kind: "dense", units: 5 },
    { kind: "dropout", rate: 0.5 },
    { kind: "batchNorm" },
    { kind: "relu" },
    { kind: "dense", units: 3 },
  ], new Rng(4));
  const z = tf.tensor2d(new Rng(5).fillNormal(new Float32Array(8 * 6)), [8, 6]);
  try {
    recomputeBatchNormStats(net, () => z.clone(), 2);
    const bn = net.vars.find((v) => v.movingMean)!;
    // By hand: the batch's mean with the masks of seeds 0 and 1.
    const want = tf.tidy(() => {
      const means = [0, 1].map((seed) => {
        const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
        net.apply(z, { training: true, seed, batchStats: stats });
        return stats[0].mean;
      });
      return tf.div(tf.add(means[0], means[1]), 2);
    });
    const got = await bn.movingMean!.data(), w = await want.data();
    got.forEach((x, j) => assert.ok(Math.abs(x - w[j]) < 1e-5, `${j}`));
    want.dispose();
  } finally {
    z.dispose();
    net.dispose();
  }
});
