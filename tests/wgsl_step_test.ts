import assert from "node:assert/strict";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import { asMlp } from "../lib/nets/mlp.ts";
import { createGan, disposeGan, type Gan } from "../lib/gan.ts";
import { playTfjsRounds } from "../lib/wgsl/check.ts";
import { conditional, type GanConfig, preset } from "../lib/presets.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { train } from "../lib/train.ts";
import { type EpochStats } from "../lib/run/record.ts";
import { wgslStepFor } from "../lib/rounds.ts";
import { type MatMulChoice, matMulPlan } from "../lib/wgsl/plans.ts";
import { WgslStep, wgslStepSupport } from "../lib/wgsl/step.ts";
import { batchOfRows, playWholeAndResumed, state } from "./step_state.ts";

const probe = await probeWebGpu();

/** A small plain MLP GAN: every branch of the WGSL step, cheap on llvmpipe. */
function small(over: Partial<GanConfig> = {}): GanConfig {
  const c = preset("mlp");
  c.generator.hidden = [24, 40];
  c.discriminator.hidden = [48, 20];
  c.batchSize = 20;
  return { ...c, ...over };
}

/** The same steps' inputs for both implementations. */
function inputs(config: GanConfig, steps: number) {
  const rng = new Rng(5);
  const B = config.batchSize;
  const low = config.output === "tanh" ? -1 : 0;
  const classes = config.classes ?? 0;
  return Array.from({ length: steps }, () => ({
    real: rng.fillUniform(new Float32Array(B * 784), low, 1),
    zD: sampleLatent(config, B, rng),
    zG: sampleLatent(config, B, rng),
    // A conditional GAN's batch classes, every class in turn from a start.
    ...(classes
      ? {
        labels: Uint8Array.from(
          { length: B },
          (_, i) => (i + rng.nextUint32()) % classes,
        ),
      }
      : {}),
  }));
}

/**
 * Compares two GANs' states. The biases of batch-norm layers are left
 * out: the normalisation cancels them, so their gradient is rounding noise
 * around 0, which Adam turns into steps of up to lr either way (tfjs's
 * noise and the WGSL step's differ); nothing else depends on them.
 */
async function assertSameState(a: Gan, b: Gan, tol: number) {
  const [x, y] = [await state(a), await state(b)];
  assert.deepEqual([...x.keys()], [...y.keys()]);
  const bnBias = new Set(
    asMlp(a.generator).specs.flatMap((s, l) =>
      s.batchNorm ? [`G/${l}/bias`, `Gema/${l}/bias`] : []
    ),
  );
  for (const [name, values] of x) {
    const free = [...bnBias].some((b) => name.includes(b));
    assertClose(values, y.get(name)!, free ? 0.01 : tol, name);
  }
  assert.ok([...y.values()].flat().some((v) => v !== 0 && v !== 1));
}

/**
 * Asserts two states equal bit for bit, value by value (a failing
 * deepEqual of whole states builds a diff too large to print).
 */
function assertSameBits(
  got: Map<string, number[]>,
  want: Map<string, number[]>,
) {
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [name, values] of got) {
    const w = want.get(name)!;
    const i = values.findIndex((v, j) => !Object.is(v, w[j]));
    assert.equal(i, -1, `${name}[${i}]: ${values[i]} vs ${w[i]}`);
  }
}

function assertClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  tol: number,
  what = "",
) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
  }
}

Deno.test("the WGSL step says which configurations it cannot train", () => {
  assert.equal(wgslStepSupport(preset("mlp")), null);
  assert.equal(wgslStepSupport(preset("paper")), null);
  assert.equal(wgslStepSupport(preset("bn")), null);
  assert.equal(wgslStepSupport(preset("pylearn2")), null);
  assert.equal(wgslStepSupport(small({ k: 2, gSteps: 3 })), null);
  const maxoutG = small();
  maxoutG.generator.activation = "maxout";
  assert.match(wgslStepSupport(maxoutG)!, /G's maxout/);
  assert.equal(wgslStepSupport({ ...preset("paper"), loss: "hinge" }), null);
  assert.match(
    wgslStepSupport(small({ loss: "hinge" }))!,
    /with Adam, D's output bias under the hinge loss follows rounding noise/,
  );
});

/**
 * The label blocks' zeros (between the class and the other inputs' units of
 * each first layer) are exactly 0: their gradient is masked, not small.
 */
async function assertBlocksZero(gan: Gan) {
  for (const net of [gan.generator, gan.discriminator]) {
    const layer = net.vars.find((v) => v.mask)!;
    const [k, m] = [await layer.kernel!.data(), await layer.mask!.data()];
    const off = k.filter((_, i) => m[i] === 0);
    assert.ok(off.length > 0);
    assert.ok(off.every((v) => v === 0), `${net.name}: a label block moved`);
  }
}

/** The `cgan` preset's kinds of layer, small, its schedules as `smallPaper`'s. */
function smallCgan(): GanConfig {
  const c = preset("cgan");
  const p = smallPaper();
  c.generator = { ...c.generator, hidden: [30, 36], labelUnits: 12 };
  c.discriminator = {
    ...c.discriminator,
    hidden: [12, 10],
    labelUnits: 6,
    initRange: 0.2,
  };
  c.batchSize = 20;
  c.optimizerG = p.optimizerG;
  c.optimizerD = p.optimizerD;
  return c;
}

/** The `paper` preset's kinds of layer and optimiser, small. */
function smallPaper(): GanConfig {
  const c = preset("paper");
  c.generator.hidden = [30, 36];
  c.discriminator.hidden = [12, 10];
  c.batchSize = 20;
  // The paper's small initial D (weights within 0.005) passes G almost no
  // gradient: larger, so that G's gradient through D is tested too.
  c.discriminator.initRange = 0.2;
  // Both schedules move within the test's steps and epochs.
  for (const o of [c.optimizerG, c.optimizerD]) {
    if (o.kind === "sgd") {
      o.lrDecay = 1.05;
      o.momentumStart = 0;
      o.momentumSaturate = 3;
    }
  }
  return c;
}

/** small() with batch norm and leaky ReLU in G. */
function smallBn(): GanConfig {
  return {
    ...small(),
    generator: { hidden: [24, 40], activation: "leaky_relu", batchNorm: true },
  };
}

Deno.test("off WebGPU the WGSL step is skipped, or refused when asked for", async () => {
  await initBackend("wasm");
  const gan = createGan(small(), { seed: 1 });
  assert.equal(await wgslStepFor(gan, "auto"), null);
  await assert.rejects(
    () => wgslStepFor(gan, "wgsl"),
    /WebGPU only, and the backend is wasm; use --step tfjs/,
  );
  await assert.rejects(
    () => wgslStepFor(gan, "fast" as "auto"),
    /unknown step "fast"/,
  );
  disposeGan(gan);
});

Deno.test({
  name:
    "webgpu: the WGSL step equals the tfjs step (weights, optimiser slots, figures)",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    const cases: [string, GanConfig][] = [
      ["mlp-shaped", small()],
      // 2B = 400 rows: the bias gradients' sums take two passes.
      ["batch 200", small({ batchSize: 200 })],
      // tanh in G, sigmoid output, the saturating loss, smoothing, scale.
      ["variants", {
        ...small({
          output: "sigmoid",
          loss: "saturating",
          realLabel: 0.9,
          dLossScale: 0.5,
        }),
        generator: { hidden: [24, 40], activation: "tanh" },
      }],
      // Maxout, dropout (masks from the step's seeds), SGD with momentum
      // and both schedules, sigmoid output.
      ["paper-shaped", smallPaper()],
      // pylearn2: both players from one pass, D's loss halved.
      ["pylearn2-shaped", {
        ...smallPaper(),
        update: "simultaneous",
        dLossScale: 0.5,
      }],
      // Batch norm and leaky ReLU in G (running statistics included).
      ["bn-shaped", smallBn()],
      // The hinge game: D's score, both players' hinge losses, D's scale
      // (with SGD: see wgslStepSupport on Adam).
      ["hinge", { ...smallPaper(), loss: "hinge", dLossScale: 0.5 }],
      // Conditional: the one-hot class appended to G's noise and to D's
      // images (D's input dropout never drops it), with each kind of layer.
      ["conditional, mlp-shaped", conditional(small())],
      ["conditional, paper-shaped", conditional(smallPaper())],
      ["conditional, bn-shaped", conditional(smallBn())],
      [
        "conditional, pylearn2-shaped",
        conditional({
          ...smallPaper(),
          update: "simultaneous",
          dLossScale: 0.5,
        }),
      ],
      // cgan's label units: the class into units of its own in each first
      // layer (a block-diagonal kernel whose zeros stay zero), maxout with
      // pieces per layer, D's dropout kept off the class.
      ["cgan-shaped", smallCgan()],
      // Least squares (LSGAN): D's score, both players' squared distances,
      // with Adam; and in pylearn2's simultaneous round.
      ["least-squares", small({ loss: "least-squares", dLossScale: 0.5 })],
      ["least-squares, simultaneous", {
        ...smallPaper(),
        update: "simultaneous",
        loss: "least-squares",
      }],
      // The hinge game in pylearn2's simultaneous round, with dropout.
      ["hinge, simultaneous", {
        ...smallPaper(),
        update: "simultaneous",
        loss: "hinge",
      }],
      // The moving average of G's weights: a copy at the first update,
      // then averaged (running statistics copied); in a simultaneous round.
      ["ema", { ...small(), ema: { decay: 0.9, start: 1 } }],
      ["ema, bn-shaped", { ...smallBn(), ema: { decay: 0.8, start: 0 } }],
      ["ema, pylearn2-shaped", {
        ...smallPaper(),
        update: "simultaneous",
        dLossScale: 0.5,
        ema: { decay: 0.9, start: 1 },
      }],
    ];
    for (const [name, config] of cases) {
      // Seeds and epochs as the training loop passes them.
      const steps = inputs(config, 3).map((s, i) => ({
        ...s,
        dSeed: 7 + 2 * i,
        gSeed: 8 + 2 * i,
      }));
      const ref = createGan(config, { seed: 3 });
      const gan = createGan(config, { seed: 3 });
      const wgsl = await WgslStep.create(gan);
      const want = await playTfjsRounds(ref, steps, 0);
      for (const [epoch, s] of steps.entries()) {
        wgsl.step(
          config.update === "simultaneous"
            ? {
              real: s.real,
              zD: s.zD,
              dSeed: s.dSeed,
              labels: s.labels,
              epoch,
            }
            : { ...s, epoch },
        );
      }
      const figures = await wgsl.figures();
      assertClose(figures, want.figures, 1e-5);
      await wgsl.exportTo(gan);
      assert.equal(gan.optimizerD.step, 3);
      assert.equal(gan.optimizerD.slots.length, ref.optimizerD.slots.length);
      assert.equal(gan.optimizerG.step, 3);
      // The slots carry the gradients' scale: a wrong gradient shows.
      await assertSameState(gan, ref, 1e-5);
      if (config.generator.labelUnits) await assertBlocksZero(gan);
      wgsl.dispose();
      disposeGan(ref);
      disposeGan(gan);
      console.log(`  ${name}: equal within 1e-5`);
    }
  },
});

Deno.test({
  name: "webgpu: writing the state back and starting again continues exactly",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    const config = small();
    const steps = inputs(config, 3);
    const a = createGan(config, { seed: 4 });
    const b = createGan(config, { seed: 4 });
    await playWholeAndResumed((g) => WgslStep.create(g), a, b, steps);
    assert.deepEqual(await state(b), await state(a));
    assert.ok((await state(a)).size > 0);
    assert.equal(b.optimizerD.step, 3);
    disposeGan(a);
    disposeGan(b);
  },
});

Deno.test("matMulPlan: wide tiles for many outputs, split K for few", () => {
  // The mlp step at batch 8192 (D sees 2B = 16,384 rows).
  assert.deepEqual(matMulPlan({ M: 16384, N: 1024, K: 784 }), {
    tile: 128,
    splits: 1,
    chunk: 784,
  });
  // 8192 x 256 has 128 wide tiles: too few, so 64 x 64 tiles.
  assert.equal(matMulPlan({ M: 8192, N: 256, K: 128 }).tile, 64);
  // A narrow product keeps 64 x 64 tiles however many rows it has (a
  // critic's last layer, one output a row).
  assert.equal(matMulPlan({ M: 65536, N: 1, K: 1024 }).tile, 64);
  assert.equal(matMulPlan({ M: 65536, N: 100, K: 1024 }).tile, 64);
  // D's first weight gradient: 784 x 1024 (208 tiles) over K = 16,384.
  const dW = matMulPlan({ M: 784, N: 1024, K: 16384 }, { splittable: true });
  assert.deepEqual(dW, { tile: 64, splits: 5, chunk: 3280 });
  // Not for a product whose epilogue needs the whole sum.
  assert.equal(matMulPlan({ M: 784, N: 1024, K: 16384 }).splits, 1);
  // At most ~1,024 workgroups' worth of runs, none shorter than 256.
  for (
    const [M, N, K] of [[512, 256, 16384], [256, 1, 16384], [100, 128, 8192], [
      784,
      1024,
      300,
    ]]
  ) {
    const p = matMulPlan({ M, N, K }, { splittable: true });
    assert.ok(p.splits === 1 || p.chunk >= 256, `${M}x${N}x${K}`);
    assert.ok(p.chunk % 16 === 0 || p.splits === 1);
    assert.ok(p.splits * p.chunk >= K && (p.splits - 1) * p.chunk < K);
    const tiles = Math.ceil(M / 64) * Math.ceil(N / 64);
    assert.ok(tiles * (p.splits - 1) < 1024, `${M}x${N}x${K}: ${p.splits}`);
  }
  assert.equal(
    matMulPlan({ M: 784, N: 1024, K: 300 }, { splittable: true }).splits,
    1,
  );
  // The partial products fit the buffer binding given.
  const capped = matMulPlan({ M: 784, N: 1024, K: 16384 }, {
    splittable: true,
    maxFloats: 3 * 784 * 1024,
  });
  assert.equal(capped.splits, 3);
  // At batch 128 nothing is split or widened: the products are small (D's
  // and G's forward passes; D's and G's largest weight gradients).
  for (
    const [M, N, K, splittable] of [
      [256, 1024, 784, false],
      [128, 784, 1024, false],
      [784, 1024, 256, true],
      [1024, 784, 128, true],
    ] as const
  ) {
    assert.deepEqual(matMulPlan({ M, N, K }, { splittable }), {
      tile: 64,
      splits: 1,
      chunk: K,
    });
  }
});

Deno.test({
  name:
    "webgpu: 128 x 128 tiles give the 64 x 64 tiles' bits; split K the same within rounding",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    for (const config of [small(), smallPaper(), smallBn()]) {
      const steps = inputs(config, 3);
      const train = async (matMul: MatMulChoice) => {
        const gan = createGan(config, { seed: 4 });
        using wgsl = await WgslStep.create(gan, { matMul });
        const dispatches = wgsl.dispatchesPerStep;
        for (const [i, s] of steps.entries()) {
          wgsl.step({ ...s, dSeed: 7 + 2 * i, gSeed: 8 + 2 * i, epoch: i });
        }
        const figures = await wgsl.figures();
        await wgsl.exportTo(gan);
        const values = await state(gan);
        const layers = asMlp(gan.generator).specs.length +
          asMlp(gan.discriminator).specs.length;
        return { gan, values, figures, dispatches, layers };
      };
      const plain = await train("plain");
      const wide = await train({ tile: 128 });
      assert.equal(wide.dispatches, plain.dispatches);
      assertSameBits(wide.values, plain.values);
      assert.deepEqual(wide.figures, plain.figures);
      // Batch 20: G's K (20 rows) in runs of 16 and 4, D's (40) of 16, 16
      // and 8; each weight gradient gains the program that adds the runs.
      const split = await train({ tile: 64, chunk: 16 });
      assert.equal(split.dispatches, plain.dispatches + split.layers);
      await assertSameState(split.gan, plain.gan, 1e-5);
      assertClose(split.figures, plain.figures, 1e-5);
      // Both on the wide tile, as the auto plan would have them at scale.
      const both = await train({ tile: 128, chunk: 16 });
      assertSameBits(both.values, split.values);
      for (const run of [plain, wide, split, both]) disposeGan(run.gan);
    }
  },
});

Deno.test({
  name:
    "webgpu: a batch gathered from the images on the GPU is the uploaded batch, bit for bit",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    for (const config of [small(), small({ output: "sigmoid" })]) {
      const B = config.batchSize;
      const range = config.output === "tanh" ? "[-1,1]" : "[0,1]";
      const rng = new Rng(8);
      // 3 batches' worth of images with every byte value.
      const images = new Uint8Array(3 * B * 784).map((_, i) =>
        i < 256 ? i : rng.int(256)
      );
      const a = createGan(config, { seed: 2 });
      const b = createGan(config, { seed: 2 });
      using uploads = await WgslStep.create(a);
      using gathers = await WgslStep.create(b, { data: { images, range } });
      assert.ok(gathers.gathers && !uploads.gathers);
      assert.equal(gathers.dispatchesPerStep, uploads.dispatchesPerStep + 1);
      const steps = inputs(config, 3);
      for (const [i, s] of steps.entries()) {
        const { rows, real } = batchOfRows(images, B, i, range);
        uploads.step({ ...s, real });
        gathers.step({ ...s, real: undefined, rows });
      }
      assert.throws(() => gathers.step(steps[0]), /rows of 20 images/);
      await uploads.exportTo(a);
      await gathers.exportTo(b);
      assertSameBits(await state(b), await state(a));
      assert.deepEqual(await gathers.figures(), await uploads.figures());
      disposeGan(a);
      disposeGan(b);
    }
  },
});

Deno.test({
  name: "webgpu: training with the WGSL step gives the tfjs step's history",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    const mnist = await loadDataset("mnist", { log: () => {} });
    const run = async (step: "tfjs" | "wgsl", config: GanConfig) => {
      const messages: string[] = [];
      const result = await train({
        config,
        dataset: mnist as Dataset,
        epochs: 2,
        seed: 2,
        limit: 100,
        holdout: 0,
        outDir: null,
        step,
        log: (m) => messages.push(m),
      });
      const history = result.history.map((h: EpochStats) => [
        h.dLoss,
        h.gLoss,
        h.value,
        h.dReal,
        h.dFake,
        h.accReal,
        h.accFake,
      ]);
      const grid = result.grid;
      disposeGan(result.gan);
      return { history, grid, messages };
    };
    const pylearn2: GanConfig = {
      ...smallPaper(),
      update: "simultaneous",
      dLossScale: 0.5,
    };
    // Two D updates per G update, two G updates each time; conditional.
    const k2 = small({ k: 2, gSteps: 2 });
    for (
      const config of [
        small(),
        smallPaper(),
        smallBn(),
        pylearn2,
        k2,
        conditional(small()),
        // A layer list (lib/wgsl/layer_step.ts) with D on half batches: D's
        // noise drawn for half a batch, G's for a whole one, as the tfjs
        // rounds draw them.
        { ...preset("keras-mlp"), batchSize: 10, stepsPerEpoch: 5 },
      ]
    ) {
      const ref = await run("tfjs", config);
      const wgsl = await run("wgsl", config);
      assert.match(wgsl.messages.join("\n"), /training step: WGSL programs/);
      assert.match(ref.messages.join("\n"), /training step: tfjs ops/);
      assertClose(wgsl.history.flat(), ref.history.flat(), 1e-4);
      // The grid is drawn from the variables, written back after each epoch.
      assertClose(wgsl.grid, ref.grid, 1e-4);
    }
  },
});

Deno.test({
  name:
    "webgpu: with the WGSL step, an interrupted and resumed run equals an uninterrupted one",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    const mnist = await loadDataset("mnist", { log: () => {} });
    const root = await Deno.makeTempDir();
    const options = {
      // With a moving average of G's weights, kept on the GPU too.
      config: { ...smallPaper(), ema: { decay: 0.9, start: 2 } },
      dataset: mnist as Dataset,
      epochs: 2,
      seed: 5,
      limit: 100,
      holdout: 0,
      step: "wgsl" as const,
      log: () => {},
    };
    try {
      const full = await train({ ...options, outDir: `${root}/full` });
      const controller = new AbortController();
      const first = await train({
        ...options,
        outDir: `${root}/split`,
        signal: controller.signal,
        progressUpdates: 3,
        onProgress: (p) => {
          if (p.epoch === 2) controller.abort();
        },
      });
      assert.equal(first.status, "interrupted");
      disposeGan(first.gan);
      const resumed = await train({
        ...options,
        outDir: `${root}/split`,
        resume: true,
      });
      assert.equal(resumed.status, "completed");
      const history = (h: EpochStats[]) => h.map((e) => [e.dLoss, e.gLoss]);
      assert.deepEqual(history(resumed.history), history(full.history));
      assert.deepEqual(await state(resumed.gan), await state(full.gan));
      disposeGan(full.gan);
      disposeGan(resumed.gan);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "webgpu: a step with a bad G input moves neither player; a conditional G step takes its D step's classes",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    const config = conditional(small());
    const [s] = inputs(config, 1);
    const gan = createGan(config, { seed: 4 });
    const before = await state(gan);
    {
      using wgsl = await WgslStep.create(gan);
      assert.throws(
        () => wgsl.step({ ...s, zG: s.zG.subarray(1) }),
        /noise values \(zG\)/,
      );
      // A class out of range is refused before anything is written.
      const bad = Uint32Array.from(s.labels!);
      bad[3] = 10;
      assert.throws(
        () => wgsl.step({ ...s, labels: bad }),
        /label 3 is 10: the classes are 0 to 9/,
      );
      await wgsl.exportTo(gan);
      assert.equal(gan.optimizerD.step, 0);
      assert.deepEqual(await state(gan), before);
      wgsl.stepD(s);
      const other = s.labels!.map((c) => (c + 1) % 10);
      assert.throws(
        () => wgsl.stepG({ ...s, labels: other }),
        /a conditional G step takes the labels of the D step before it/,
      );
      wgsl.stepG(s);
      await wgsl.exportTo(gan);
      assert.equal(gan.optimizerD.step, 1);
      assert.equal(gan.optimizerG.step, 1);
    }
    disposeGan(gan);
  },
});
