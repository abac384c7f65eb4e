import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { loadGenerator } from "../lib/run/checkpoint.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import { conditionalFigures } from "../lib/eval/evaluate.ts";
import { asMlp } from "../lib/nets/mlp.ts";
import { LayerNet } from "../lib/nets/layer_net.ts";
import { classGridInputs, oneHot, withClasses } from "../lib/nets/latent.ts";
import { conditional, type GanConfig, preset } from "../lib/presets.ts";
import { generatorMetadata } from "../lib/run/generator_metadata.ts";
import { validateConfig } from "../lib/config_check.ts";
import {
  createGan,
  discriminatorStep,
  disposeGan,
  generate,
  generatorModel,
  generatorStep,
} from "../lib/gan.ts";
import { Rng } from "../lib/random/rng.ts";
import { labelsPath } from "../lib/run/samples.ts";
import { train } from "../lib/train.ts";
import { checkLabels } from "../lib/run/split.ts";
import { wgslStepSupport } from "../lib/wgsl/step.ts";
import { runCli } from "./run.ts";
import { tiny, tinyOptions } from "./tiny.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });
const base = tinyOptions(mnist as Dataset, { epochs: 1, seed: 5, limit: 128 });

Deno.test("oneHot, withClasses and the class grid's inputs", () => {
  assert.deepEqual([...oneHot([2, 0], 3)], [0, 0, 1, 1, 0, 0]);
  assert.throws(() => oneHot([3], 3), /class 3 is outside 0..2/);
  const x = Float32Array.from([1, 2, 3, 4]);
  assert.deepEqual([...withClasses(x, [1, 0], 2, 2)], [1, 2, 0, 1, 3, 4, 1, 0]);
  assert.throws(() => withClasses(x, [1], 2, 2), /not 1 rows of 2/);
  const config = { latent: "normal" as const, latentDim: 3, classes: 4 };
  const { inputs, labels } = classGridInputs(config, 5, new Rng(1, 2));
  assert.equal(inputs.length, 4 * 5 * 7);
  assert.deepEqual([...labels.subarray(0, 6)], [0, 0, 0, 0, 0, 1]);
  // The same noise down each column, its class one-hot after it.
  const row = (
    r: number,
    c: number,
  ) => [...inputs.subarray((r * 5 + c) * 7, (r * 5 + c + 1) * 7)];
  assert.deepEqual(row(0, 2).slice(0, 3), row(3, 2).slice(0, 3));
  assert.notDeepEqual(row(0, 2).slice(0, 3), row(0, 3).slice(0, 3));
  assert.deepEqual(row(3, 2).slice(3), [0, 0, 0, 1]);
});

Deno.test("configurations: what can and cannot be conditional", () => {
  assert.equal(conditional(preset("mlp")).classes, 10);
  assert.equal(preset("cgan").classes, 10);
  // A convolutional D sees the class as planes beside the image, or
  // projects it (the default).
  const conv = conditional(preset("dcgan"), 10, "channels");
  validateConfig(conv);
  assert.deepEqual(conv.discriminator.layers![0], {
    kind: "classChannels",
    classes: 10,
  });
  const projected = conditional(preset("dcgan"));
  validateConfig(projected);
  assert.deepEqual(projected.discriminator.layers![0], {
    kind: "classInput",
    classes: 10,
  });
  assert.deepEqual(projected.discriminator.layers!.at(-1), {
    ...preset("dcgan").discriminator.layers!.at(-1),
    projection: { classes: 10 },
  });
  assert.deepEqual(
    projected.generator.layers!.flatMap((l) =>
      l.kind === "batchNorm" ? [l.classes] : []
    ),
    [10, 10, 10],
  );
  assert.deepEqual(preset("dcgan").discriminator.layers![0].kind, "reshape");
  // A generator's metadata says which form its D took.
  const meta = (c: GanConfig) =>
    generatorMetadata(c, { dataset: "mnist", epochs: 1, seed: 0 })
      .conditioning;
  assert.equal(meta(conv), "channels");
  assert.equal(meta(projected), "projection");
  assert.equal(meta(conditional(preset("mlp"))), undefined);
  assert.equal(meta(preset("dcgan")), undefined);
  // keras-mlp's dense D has no reshape to put the planes in place of.
  assert.throws(
    () => validateConfig(conditional(preset("keras-mlp"))),
    /keras-mlp cannot be conditional: a layer list's D must start with a classChannels or classInput layer/,
  );
  // The planes belong first in a conditional D, nowhere else.
  const inG = preset("sngan");
  inG.generator.layers!.unshift({ kind: "classChannels", classes: 10 });
  assert.throws(() => validateConfig(inG), /belongs in D only/);
  const unconditional = preset("sngan");
  unconditional.discriminator.layers![0] = {
    kind: "classChannels",
    classes: 10,
  };
  assert.throws(
    () => validateConfig(unconditional),
    /D's classChannels layer \(layer 0\) reads 10 classes, and the GAN is not conditional/,
  );
  // A first layer of another number of classes is one problem, said once.
  const five = conditional(preset("sngan"), 10, "channels");
  five.discriminator.layers![0] = { kind: "classChannels", classes: 5 };
  assert.throws(() => validateConfig(five), (e: Error) => {
    assert.match(
      e.message,
      /D's classChannels layer \(layer 0\) reads 5 classes, and the GAN is conditional on 10/,
    );
    assert.doesNotMatch(e.message, /must start/);
    return true;
  });
  const second = conditional(preset("sngan"));
  second.discriminator.layers!.splice(1, 0, {
    kind: "classInput",
    classes: 10,
  });
  assert.throws(
    () => validateConfig(second),
    /belongs in D only, as its first layer/,
  );
  const other = conditional(preset("sngan"));
  other.generator.layers![1] = { kind: "batchNorm", classes: 3 };
  assert.throws(
    () => validateConfig(other),
    /G's conditional batch norm \(layer 1\) reads 3 classes, and the GAN is conditional on 10/,
  );
  const unprojected = conditional(preset("sngan"));
  const last = unprojected.discriminator.layers!.at(-1)!;
  if (last.kind === "dense") delete last.projection;
  assert.throws(
    () => validateConfig(unprojected),
    /D's classInput layer takes the class off the image for a projection, and D has none/,
  );
  const early = conditional(preset("sngan"));
  early.discriminator.layers!.splice(-1, 0, {
    kind: "dense",
    units: 8,
    projection: { classes: 10 },
  });
  assert.throws(
    () => validateConfig(early),
    /a projection belongs in D's last layer/,
  );
  const c = preset("mlp");
  c.discriminator.labelUnits = 50;
  assert.throws(
    () => validateConfig(c),
    /label units but the GAN is not conditional/,
  );
  const p = preset("cgan");
  p.discriminator.pieces = [5];
  assert.throws(
    () => validateConfig(p),
    /2 hidden layers but 1 maxout piece counts/,
  );
  // The class appended to the inputs and cgan's label units both train on
  // the WGSL step.
  assert.equal(wgslStepSupport(conditional(preset("mlp"))), null);
  assert.equal(wgslStepSupport(conditional(preset("paper"))), null);
  assert.equal(wgslStepSupport(preset("cgan")), null);
});

Deno.test("cgan: Mirza and Osindero's shapes; the blocks between class and image stay zero through training", async () => {
  const gan = createGan(tiny("cgan"), { seed: 3 });
  const G = asMlp(gan.generator), D = asMlp(gan.discriminator);
  // G: z (100) -> 200 and class (10) -> 1000, joint 1200, 784.
  assert.deepEqual(G.layers.map((l) => l.kernel.shape), [
    [110, 1200],
    [1200, 1200],
    [1200, 784],
  ]);
  // D: x (784) -> 240 x 5 and class -> 50 x 5, joint 240 x 4, 1.
  assert.deepEqual(D.layers.map((l) => l.kernel.shape), [
    [794, 290 * 5],
    [290, 240 * 4],
    [240, 1],
  ]);
  const offBlocks = async () => {
    const g = await G.layers[0].kernel.array() as number[][];
    const d = await D.layers[0].kernel.array() as number[][];
    // z rows into the class units, class rows into the z units; same in D.
    const gz = g.slice(0, 100).flatMap((r) => r.slice(200));
    const gy = g.slice(100).flatMap((r) => r.slice(0, 200));
    const dx = d.slice(0, 784).flatMap((r) => r.slice(1200));
    const dy = d.slice(784).flatMap((r) => r.slice(0, 1200));
    const inBlock = g.slice(100).flatMap((r) => r.slice(200));
    return { off: [...gz, ...gy, ...dx, ...dy], inBlock };
  };
  const before = await offBlocks();
  assert.ok(before.off.every((v) => v === 0));
  assert.ok(before.inBlock.some((v) => v !== 0));
  const rng = new Rng(4, 1);
  const labels = Uint8Array.from({ length: 32 }, (_, i) => i % 10);
  const real = tf.tensor2d(
    withClasses(
      rng.fillUniform(new Float32Array(32 * 784), 0, 1),
      labels,
      784,
      10,
    ),
    [32, 794],
  );
  const z = () =>
    tf.tensor2d(
      withClasses(
        rng.fillUniform(new Float32Array(3200), -1, 1),
        labels,
        100,
        10,
      ),
      [32, 110],
    );
  for (let step = 0; step < 3; step++) {
    const zd = z(), zg = z();
    tf.dispose(
      Object.values(
        discriminatorStep(gan, { real, noise: zd, masks: 7 + step, epoch: 0 }),
      ),
    );
    generatorStep(gan, { noise: zg, masks: 9 + step, epoch: 0 }).dispose();
    tf.dispose([zd, zg]);
  }
  const after = await offBlocks();
  assert.ok(after.off.every((v) => v === 0), "off-block weights moved");
  assert.notDeepEqual(
    after.inBlock,
    before.inBlock,
    "the class block did not learn",
  );
  real.dispose();
  disposeGan(gan);
});

Deno.test("dropout at a conditional network's input never drops the class", async () => {
  const config = conditional(tiny("paper"));
  config.discriminator.inputDropout = 0.9; // drops nearly every input...
  config.discriminator.dropout = 0; // ...and nothing later
  const gan = createGan(config, { seed: 2 });
  const D = asMlp(gan.discriminator);
  assert.equal(D.specs[0].classInputs, 10);
  // A blank image with its class: only the class reaches D, so if the
  // class is never dropped (nor rescaled) every mask gives the output of
  // D without dropout.
  const x = tf.tensor2d(withClasses(new Float32Array(784), [4], 784, 10), [
    1,
    794,
  ]);
  const out = (training: boolean, seed = 0) =>
    tf.tidy(() => gan.discriminator.apply(x, { training, seed })).data();
  const plain = await out(false);
  for (let seed = 1; seed <= 20; seed++) {
    assert.deepEqual(await out(true, seed), plain, `seed ${seed}`);
  }
  x.dispose();
  disposeGan(gan);
});

Deno.test("a conditional G depends on its class, and exports as a layers model with the same output", async () => {
  for (const name of ["cgan", "mlp"]) {
    const gan = createGan(conditional(tiny(name)), { seed: 8 });
    const dim = 100;
    const zs = new Rng(2, 0).fillUniform(new Float32Array(2 * dim), -1, 1);
    const inputs = tf.tensor2d(withClasses(zs, [3, 3], dim, 10), [2, 110]);
    const other = tf.tensor2d(withClasses(zs, [7, 7], dim, 10), [2, 110]);
    const a = await generate(gan, inputs).data();
    const b = await generate(gan, other).data();
    assert.ok(
      a.some((v, i) => Math.abs(v - b[i]) > 1e-4),
      `${name}: class ignored`,
    );
    const model = generatorModel(gan.generator);
    const c = await (model.predict(inputs) as tf.Tensor).data();
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - c[i]));
    }
    assert.ok(worst <= 1e-5, `${name}: exported model differs by ${worst}`);
    model.dispose();
    tf.dispose([inputs, other]);
    disposeGan(gan);
  }
});

Deno.test("conditional training: class-grid samples, labels checked, resume exact", async () => {
  const root = await Deno.makeTempDir();
  try {
    const config = conditional(tiny("mlp"));
    const full = await train(
      base({ config, epochs: 2, outDir: `${root}/full` }),
    );
    assert.equal(full.status, "completed");
    // The grid: 10 rows (classes) x 10 columns, the same noise down each column.
    assert.equal(full.fixedNoise.length, 100 * 110);
    const g = await loadGenerator(`${root}/full`);
    assert.equal(g.metadata.classes, 10);
    assert.equal(g.metadata.conditioning, undefined, "an MLP appends it");
    g.model.dispose();
    const first = await train(
      base({ config, epochs: 1, outDir: `${root}/split` }),
    );
    disposeGan(first.gan);
    const resumed = await train(
      base({
        config: tiny(),
        epochs: 2,
        outDir: `${root}/split`,
        resume: true,
      }),
    );
    assert.equal(resumed.gan.config.classes, 10);
    const va = full.gan.generator.variables,
      vb = resumed.gan.generator.variables;
    for (let i = 0; i < va.length; i++) {
      assert.deepEqual(await vb[i].data(), await va[i].data());
    }
    disposeGan(full.gan);
    disposeGan(resumed.gan);

    // Training data without labels, or with a label outside the classes.
    const split = { ...mnist.train, labels: new Uint8Array(0) };
    assert.throws(
      () => checkLabels(config, split, "mnist"),
      /conditional on 10 classes, but the training images of mnist carry no labels/,
    );
    const bad = mnist.train.labels.slice();
    bad[5] = 12;
    assert.throws(
      () => checkLabels(config, { ...mnist.train, labels: bad }, "mnist"),
      /training image 5 of mnist has label 12/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a conditional convolutional GAN: the class as planes beside D's image; it trains, and its G exports", async () => {
  // The planes: the image, then all ones for the row's class.
  const net = new LayerNet("D", 784 + 3, [{
    kind: "classChannels",
    classes: 3,
  }], new Rng(0));
  const x = new Float32Array(2 * 787);
  for (let i = 0; i < 784; i++) x[i] = x[787 + i] = i / 784;
  x[784 + 2] = 1; // row 0: class 2
  x[787 + 784] = 1; // row 1: class 0
  const y = net.apply(tf.tensor2d(x, [2, 787]), { training: false });
  assert.deepEqual(y.shape, [2, 28, 28, 4]);
  const v = await y.data();
  const at = (r: number, p: number, ch: number) => v[(r * 784 + p) * 4 + ch];
  assert.equal(at(0, 100, 0), x[100]);
  assert.deepEqual([1, 2, 3].map((ch) => at(0, 500, ch)), [0, 0, 1]);
  assert.deepEqual([1, 2, 3].map((ch) => at(1, 7, ch)), [1, 0, 0]);
  tf.dispose(y);
  net.dispose();

  // A few rounds of a small conditional sngan, and its G as a layers model.
  const config = {
    ...conditional(preset("sngan"), 10, "channels"),
    batchSize: 16,
  };
  const run = await train(base({ config, limit: 64 }));
  assert.equal(run.status, "completed");
  assert.ok(Number.isFinite(run.history[0].dLoss));
  assert.equal(wgslStepSupport(config) !== null, true, "the tfjs step runs it");
  const model = generatorModel(run.gan.generator);
  assert.deepEqual(model.inputs[0].shape, [null, 110]);
  const z = withClasses(
    new Rng(1).fillNormal(new Float32Array(200)),
    [3, 7],
    100,
    10,
  );
  const out = model.predict(tf.tensor2d(z, [2, 110])) as tf.Tensor;
  assert.deepEqual(out.shape, [2, 784]);
  tf.dispose(out);
  model.dispose();
  disposeGan(run.gan);
});

Deno.test("conditional accuracy and per-class FID from classifier outputs", () => {
  // 20 samples, 2 per class; the classifier agrees on all but one of class 3.
  const labels = Uint8Array.from({ length: 20 }, (_, i) => i % 10);
  const probs = new Float32Array(200);
  labels.forEach((l, i) => probs[i * 10 + (i === 13 ? 4 : l)] = 1);
  const features = new Float32Array(20 * 128);
  const r = conditionalFigures(
    { features, probs },
    { features, probs },
    labels,
    labels,
  );
  assert.equal(r.conditional_acc, 19 / 20);
  assert.deepEqual(r.conditional_acc_per_class, [
    1,
    1,
    1,
    0.5,
    1,
    1,
    1,
    1,
    1,
    1,
  ]);
  // The same features on both sides: no distance within any class.
  assert.equal(r.fid_per_class!.length, 10);
  assert.ok(r.fid_per_class!.every((f) => Math.abs(f) < 1e-6));
  assert.equal(labelsPath("a/x.npy"), "a/x.labels.npy");
  assert.equal(labelsPath("x.idx"), "x.labels.idx");
  assert.equal(labelsPath("s-images-idx3-ubyte"), "s-labels-idx1-ubyte");
});

Deno.test("CLI: a conditional run, sampled by class and evaluated per class; bad input refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/run`;
    const t = await runCli("train.ts", [
      "--conditional",
      "--preset",
      "mlp",
      "--limit",
      "256",
      "--epochs",
      "1",
      "--batch-size",
      "64",
      "--backend",
      "wasm",
      "--out",
      out,
    ]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stderr, /conditional on 10 classes/);
    const s = await runCli("sample.ts", [
      "--checkpoint",
      out,
      "--class",
      "3",
      "--n",
      "1000",
      "--out",
      `${dir}/threes.npy`,
    ]);
    assert.equal(s.code, 0, s.stderr);
    const labels = await Deno.readFile(`${dir}/threes.labels.npy`);
    assert.deepEqual(
      [...labels.subarray(labels.length - 1000)],
      new Array(1000).fill(3),
    );
    const grid = await runCli("sample.ts", [
      "--checkpoint",
      out,
      "--out",
      `${dir}/g.png`,
    ]);
    assert.equal(grid.code, 0, grid.stderr);
    assert.match(grid.stderr, /a class grid: one row per class/);
    const e = await runCli("eval.ts", [
      "--checkpoint",
      out,
      "--n",
      "1000",
      "--no-parzen",
    ]);
    assert.equal(e.code, 0, e.stderr);
    const figures = JSON.parse(e.stdout.trim().split("\n").at(-1)!);
    assert.equal(figures.conditional_acc_per_class.length, 10);
    assert.ok(figures.conditional_acc >= 0 && figures.conditional_acc <= 1);
    // The same samples from a file, their labels beside them.
    const ev = await runCli("eval.ts", [
      "--samples",
      `${dir}/threes.npy`,
      "--dataset",
      "mnist",
      "--no-parzen",
    ]);
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stderr, /with their classes from .*threes.labels.npy/);

    const refused: [string, string[], RegExp][] = [
      ["sample.ts", [
        "--checkpoint",
        out,
        "--class",
        "12",
        "--out",
        `${dir}/x.png`,
      ], /--class must be a class of mnist, 0..9/],
      [
        "sample.ts",
        [
          "--checkpoint",
          "models/mnist",
          "--class",
          "3",
          "--out",
          `${dir}/x.png`,
        ],
        /--class needs a conditional generator/,
      ],
      [
        "train.ts",
        ["--conditional", "--preset", "keras-mlp"],
        /--conditional: .*keras-mlp cannot be conditional/,
      ],
      [
        "train.ts",
        ["--out", out, "--resume", "--conditional"],
        /--conditional cannot be given with it/,
      ],
      [
        "train.ts",
        ["--preset", "sngan", "--conditioning", "channels"],
        /--conditioning says how a conditional GAN is told the class: add --conditional/,
      ],
      [
        "train.ts",
        ["--conditional", "--preset", "bn", "--conditioning", "projection"],
        /--conditioning is for the convolutional presets; bn is an MLP/,
      ],
      [
        "train.ts",
        ["--conditional", "--preset", "sngan", "--conditioning", "planes"],
        /--conditioning must be one of projection, channels, got "planes"/,
      ],
    ];
    for (const [script, args, pattern] of refused) {
      const r = await runCli(script, args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train --conditional without --preset takes the dataset's MLP preset, also where the default is convolutional", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runCli("train.ts", [
      "--dataset",
      "fashion",
      "--conditional",
      "--limit",
      "32",
      "--epochs",
      "1",
      "--batch-size",
      "16",
      "--backend",
      "wasm",
      "--out",
      `${dir}/run`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /preset: bn, conditional on 10 classes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
