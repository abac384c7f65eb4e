import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { readCheckpoint } from "../lib/run/checkpoint.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import { asMlp } from "../lib/nets/mlp.ts";
import { disposeGan } from "../lib/gan.ts";
import { train } from "../lib/train.ts";
import { type EpochStats } from "../lib/run/record.ts";
import { tiny, tinyOptions } from "./tiny.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });

const base = tinyOptions(mnist as Dataset, { epochs: 2, seed: 11, limit: 192 });

/** The figures of a history that depend on neither machine speed nor memory. */
const figures = (h: EpochStats[]) =>
  h.map((
    {
      seconds: _s,
      imagesPerSecond: _i,
      tensors: _t,
      tensorBytes: _b,
      gpuBytes: _g,
      rssBytes: _r,
      peakRssBytes: _p,
      ...rest
    },
  ) => rest);

Deno.test("same seed gives the same losses; another seed does not", async () => {
  const a = await train(base());
  const b = await train(base());
  const c = await train(base({ seed: 12 }));
  assert.equal(a.status, "completed");
  assert.equal(a.history.length, 2);
  assert.deepEqual(figures(a.history), figures(b.history));
  assert.notDeepEqual(figures(a.history), figures(c.history));
  for (const r of [a, b, c]) disposeGan(r.gan);
});

Deno.test("resume equals uninterrupted training; an interrupted epoch is discarded", async () => {
  const root = await Deno.makeTempDir();
  try {
    // keras-mlp: D on half batches, the first 5 of an epoch's 12 rounds.
    const configs = [
      ...["paper", "pylearn2", "bn", "cgan"].map((n) => tiny(n)),
      { ...tiny("keras-mlp"), stepsPerEpoch: 5 },
      // A moving average of G's weights (batch norm's statistics copied),
      // starting inside epoch 1.
      { ...tiny("bn"), ema: { decay: 0.9, start: 3 } },
      // The Wasserstein critic: its mixing weights drawn each round.
      { ...tiny("mlp"), loss: "wgan-gp" as const, k: 5 },
    ];
    for (const config of configs) {
      const name = config.preset + (config.ema ? "-ema" : "") +
        (config.loss === "wgan-gp" ? "-wgan" : "");
      const full = await train(
        base({ config, outDir: `${root}/${name}-full` }),
      );
      // Stop inside epoch 2: the checkpoint of epoch 1 must be what remains.
      const dir = `${root}/${name}-split`;
      const controller = new AbortController();
      const first = await train(base({
        config,
        outDir: dir,
        signal: controller.signal,
        progressUpdates: 3,
        onProgress: (p) => {
          if (p.epoch === 2) controller.abort();
        },
      }));
      assert.equal(first.status, "interrupted");
      assert.match(first.message!, /last checkpoint \(epoch 1\) is intact/);
      assert.equal(
        (await readCheckpoint<{ epoch: number }>(dir)).file.state.epoch,
        1,
      );
      disposeGan(first.gan);
      const resumed = await train(
        base({ config: tiny(), outDir: dir, resume: true }),
      );
      assert.equal(resumed.status, "completed");
      // The checkpoint's config wins.
      assert.equal(resumed.gan.config.preset, config.preset);
      assert.deepEqual(figures(resumed.history), figures(full.history));
      const va = [
          ...full.gan.generator.variables,
          ...full.gan.generatorEma?.variables ?? [],
        ],
        vb = [
          ...resumed.gan.generator.variables,
          ...resumed.gan.generatorEma?.variables ?? [],
        ];
      assert.equal(va.length, vb.length);
      for (let i = 0; i < va.length; i++) {
        assert.deepEqual(await va[i].data(), await vb[i].data());
      }
      assert.deepEqual(resumed.grid, full.grid);
      disposeGan(full.gan);
      disposeGan(resumed.gan);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("tensor count stays constant across epochs", async () => {
  // Alternating (paper) and simultaneous (pylearn2) updates.
  for (const name of ["paper", "pylearn2"]) {
    const counts: number[] = [];
    const r = await train(base({
      epochs: 4,
      config: tiny(name),
      onEpoch: () => {
        counts.push(tf.memory().numTensors);
      },
    }));
    assert.equal(counts.length, 4);
    assert.ok(
      counts.every((c) => c === counts[0]),
      `${name}: tensor counts ${counts}`,
    );
    // The history records the same memory figures, per epoch.
    const recorded = r.history.map((s) => s.tensors);
    assert.ok(recorded.every((c) => c === recorded[0]), `recorded ${recorded}`);
    for (const s of r.history) {
      assert.ok(s.rssBytes! > 0 && s.tensorBytes! > 0);
      if (Deno.build.os === "linux") {
        assert.ok(s.peakRssBytes! >= s.rssBytes!);
      }
    }
    disposeGan(r.gan);
  }
});

Deno.test("divergence stops the run and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await train(base({
      outDir: dir,
      epochs: 3,
      onEpoch: (s, run) => {
        // Sabotage after epoch 1: a NaN weight in D makes epoch 2 diverge.
        if (s.epoch === 1) {
          const k = asMlp(run.gan.discriminator).layers[0].kernel;
          k.assign(tf.fill(k.shape, NaN));
        }
      },
    }));
    assert.equal(r.status, "diverged");
    assert.match(
      r.message!,
      /diverged at epoch 2.*last good checkpoint \(epoch 1\)/,
    );
    assert.equal(
      (await readCheckpoint<{ epoch: number }>(dir)).file.state.epoch,
      1,
    );
    disposeGan(r.gan);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("existing checkpoints are never overwritten by accident", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await train(base({ outDir: dir, epochs: 1 }));
    disposeGan(r.gan);
    await assert.rejects(
      () => train(base({ outDir: dir })),
      /already holds a checkpoint; pass --resume/,
    );
    await assert.rejects(
      () => train(base({ outDir: `${dir}/other`, resume: true })),
      /nothing to resume/,
    );
    await assert.rejects(
      () => train(base({ limit: 10 })),
      /10 training images are fewer than one batch of 32/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a timer's abort (as Ctrl-C's handler) stops training within the epoch", async () => {
  const controller = new AbortController();
  const steps: number[] = [];
  // Long enough an epoch (60 steps) that it outlasts the timer's 300 ms;
  // no callback aborts, only the timer, which needs the event loop.
  const timer = setTimeout(() => controller.abort(), 300);
  const r = await train(base({
    epochs: 1,
    limit: 1920,
    signal: controller.signal,
    progressUpdates: 60,
    onProgress: (p) => steps.push(p.step),
  }));
  clearTimeout(timer);
  assert.equal(r.status, "interrupted");
  assert.equal(r.history.length, 0);
  assert.ok(steps.length < 59, `ran ${steps.length} of 60 steps`);
  disposeGan(r.gan);
});
