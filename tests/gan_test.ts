import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { asMlp, mlpNet } from "../lib/nets/mlp.ts";
import {
  batchFigures,
  bceWithLogits,
  createGan,
  discriminatorLoss,
  discriminatorStep,
  disposeGan,
  fakeInput,
  G_MASK_OFFSET,
  generate,
  generatorLoss,
  generatorStep,
  imagesFrom,
  logSigmoid,
  type Network,
  simultaneousStep,
  valueFunction,
} from "../lib/gan.ts";
import { dense, dropoutMask, maxOverPieces } from "../lib/nets/ops.ts";
import { type GanConfig, preset, PRESET_NAMES } from "../lib/presets.ts";
import {
  interpolateLatents,
  interpolationRows,
  sampleLatent,
  withClasses,
} from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");

const close = (a: number, b: number, tol = 1e-5) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);
const scalar = async (t: tf.Tensor) => (await t.data())[0];
const dense_ = (i: number, o: number) => i * o + o;

Deno.test("presets: shapes and parameter counts", async () => {
  // Counted by hand from the layer sizes (weights + biases [+ BN gamma, beta]).
  const expected: Record<string, [number, number]> = {
    paper: [
      dense_(100, 1200) + dense_(1200, 1200) + dense_(1200, 784),
      dense_(784, 240 * 5) + dense_(240, 240 * 5) + dense_(240, 1),
    ],
    pylearn2: [
      dense_(100, 1200) + dense_(1200, 1200) + dense_(1200, 784),
      dense_(784, 240 * 5) + dense_(240, 240 * 5) + dense_(240, 1),
    ],
    mlp: [
      dense_(100, 128) + dense_(128, 256) + dense_(256, 512) +
      dense_(512, 1024) + dense_(1024, 784),
      dense_(784, 1024) + dense_(1024, 512) + dense_(512, 256) +
      dense_(256, 1),
    ],
    bn: [
      dense_(100, 128) + dense_(128, 256) + dense_(256, 512) +
      dense_(512, 1024) + dense_(1024, 784) + 2 * (128 + 256 + 512 + 1024),
      dense_(784, 1024) + dense_(1024, 512) + dense_(512, 256) +
      dense_(256, 1),
    ],
    // TensorFlow's tutorial prints 2,330,944 for G, of which 25,472 are
    // batch norm's running statistics (not trained), and 212,865 for D.
    dcgan: [
      100 * 12544 + 2 * 12544 + 25 * 256 * 128 + 2 * 128 + 25 * 128 * 64 +
      2 * 64 + 25 * 64,
      25 * 64 + 64 + 25 * 64 * 128 + 128 + 6272 + 1,
    ],
    sngan: [
      100 * 6272 + 2 * 6272 + 16 * 128 * 64 + 2 * 64 + 16 * 64 + 1,
      16 * 64 + 64 + 16 * 64 * 128 + 128 + 6272 + 1,
    ],
    // sngan with a dense 1024 layer first in G (no bias, batch norm) and
    // before D's output.
    "sngan-fc": [
      100 * 1024 + 2 * 1024 + 1024 * 6272 + 2 * 6272 + 16 * 128 * 64 +
      2 * 64 + 16 * 64 + 1,
      16 * 64 + 64 + 16 * 64 * 128 + 128 + 6272 * 1024 + 1024 + 1024 + 1,
    ],
    // Mirza and Osindero: z -> 200 and y -> 1000 side by side (the weights
    // between them are fixed zeros, not parameters), joint 1200, 784; D:
    // x -> 240 x 5 and y -> 50 x 5, joint 240 x 4, 1.
    cgan: [
      dense_(100, 200) + dense_(10, 1000) + dense_(1200, 1200) +
      dense_(1200, 784),
      dense_(784, 240 * 5) + dense_(10, 50 * 5) + dense_(290, 240 * 4) +
      dense_(240, 1),
    ],
    // The Keras MLP GAN: latent 32, batch norm after each of G's hidden
    // dense layers.
    "keras-mlp": [
      dense_(32, 128) + dense_(128, 256) + dense_(256, 512) +
      dense_(512, 784) + 2 * (128 + 256 + 512),
      dense_(784, 512) + dense_(512, 256) + dense_(256, 128) +
      dense_(128, 1),
    ],
  };
  assert.deepEqual([...PRESET_NAMES].sort(), Object.keys(expected).sort());
  for (const name of PRESET_NAMES) {
    const config = preset(name);
    const gan = createGan(config, { seed: 0 });
    assert.equal(gan.generator.parameterCount, expected[name][0], name);
    assert.equal(gan.discriminator.parameterCount, expected[name][1], name);
    const z = labelled(
      config,
      sampleLatent(config, 5, new Rng(1)),
      config.latentDim,
    );
    const x = generate(gan, z);
    assert.deepEqual(x.shape, [5, 784]);
    const values = await x.data();
    const [lo, hi] = config.output === "tanh" ? [-1, 1] : [0, 1];
    assert.ok(values.every((v) => v >= lo && v <= hi), name);
    const logits = gan.discriminator.apply(fakeInput(gan, x, z), {
      training: false,
    });
    assert.deepEqual(logits.shape, [5, 1]);
    tf.dispose([z, x, logits]);
    disposeGan(gan);
  }
});

Deno.test("losses against hand-computed values", async () => {
  const l = tf.tensor1d([0, 2, -3]);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const ls = [0, 2, -3];
  close(
    await scalar(bceWithLogits(l, 1)),
    mean(ls.map((x) => -Math.log(sig(x)))),
  );
  close(
    await scalar(bceWithLogits(l, 0)),
    mean(ls.map((x) => -Math.log(1 - sig(x)))),
  );
  // Gradients: (sigmoid(l) - t) / n, for a target of 1 and of 0.
  for (const t of [1, 0]) {
    const g = await tf.grad((x: tf.Tensor) => bceWithLogits(x, t))(l).data();
    ls.forEach((x, i) => close(g[i], (sig(x) - t) / ls.length));
  }
  close(
    await scalar(bceWithLogits(l, 0.9)),
    mean(ls.map((x) => -(0.9 * Math.log(sig(x)) + 0.1 * Math.log(1 - sig(x))))),
  );
  // V(D, G) = mean log D(x) + mean log(1 - D(G(z))).
  const real = tf.tensor1d([1, 3]), fake = tf.tensor1d([-2, 0.5]);
  const V = mean([1, 3].map((x) => Math.log(sig(x)))) +
    mean([-2, 0.5].map((x) => Math.log(1 - sig(x))));
  close(await scalar(valueFunction(real, fake)), V);
  close(await scalar(discriminatorLoss(real, fake)), -V);
  // At D = 1/2 everywhere, V = -log 4 (the value of the game at its optimum).
  const zero = tf.zeros([4]);
  close(await scalar(valueFunction(zero, zero)), -Math.log(4));
  // G's losses.
  close(
    await scalar(generatorLoss(fake, "non-saturating")),
    mean([-2, 0.5].map((x) => -Math.log(sig(x)))),
  );
  close(
    await scalar(generatorLoss(fake, "saturating")),
    mean([-2, 0.5].map((x) => Math.log(1 - sig(x)))),
  );
  // Stable where a naive log(sigmoid) overflows or gives log(0).
  const extreme = await logSigmoid(tf.tensor1d([-200, 200])).data();
  close(extreme[0], -200);
  close(extreme[1], 0);
  assert.ok(
    Number.isFinite(await scalar(bceWithLogits(tf.tensor1d([-500]), 1))),
  );
});

Deno.test("the hinge game's losses and gradients against hand-computed values", async () => {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  // Scores on both sides of the margins: real above 1 and fake below -1 add nothing.
  const r = [1.5, 0.2, -0.4], f = [-2, -0.5, 0.3];
  const real = tf.tensor1d(r), fake = tf.tensor1d(f);
  close(
    await scalar(discriminatorLoss(real, fake, 1, "hinge")),
    mean(r.map((x) => Math.max(0, 1 - x))) +
      mean(f.map((x) => Math.max(0, 1 + x))),
  );
  close(await scalar(generatorLoss(fake, "hinge")), -mean(f));
  // D's gradient: -1/n on a real score below 1, +1/n on a fake score above
  // -1, 0 past the margin (compared with -0 read as 0).
  const [gr, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    discriminatorLoss(a, b, 1, "hinge")
  )([real, fake]);
  assert.deepEqual(
    Array.from(await gr.data(), (x) => x + 0),
    r.map((x) => x < 1 ? -1 / 3 : 0).map(Math.fround),
  );
  assert.deepEqual(
    Array.from(await gf.data(), (x) => x + 0),
    f.map((x) => x > -1 ? 1 / 3 : 0).map(Math.fround),
  );
  // G's gradient is -1/n everywhere: it never saturates.
  const gG = await tf.grad((x: tf.Tensor) => generatorLoss(x, "hinge"))(fake)
    .data();
  assert.deepEqual(Array.from(gG), [-1 / 3, -1 / 3, -1 / 3].map(Math.fround));
  // Label smoothing has no meaning for a hinge: refused, saying what to do.
  const c = preset("sngan");
  c.loss = "hinge";
  assert.throws(
    () => createGan(c, { seed: 0 }),
    /label smoothing \(0\.9\) moves a cross-entropy target; the hinge loss has none \(use --label-smoothing 1 with --loss hinge\)/,
  );
});

Deno.test("least squares' losses and gradients against hand-computed values", async () => {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const r = [1.5, 0.2, -0.4], f = [-2, -0.5, 0.3];
  const real = tf.tensor1d(r), fake = tf.tensor1d(f);
  // D: 1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2; G: 1/2 mean (D(G(z)) - 1)^2.
  close(
    await scalar(discriminatorLoss(real, fake, 1, "least-squares")),
    mean(r.map((x) => (x - 1) ** 2)) / 2 + mean(f.map((x) => x ** 2)) / 2,
  );
  close(
    await scalar(generatorLoss(fake, "least-squares")),
    mean(f.map((x) => (x - 1) ** 2)) / 2,
  );
  // The gradients are the scores' distances to their targets, over n: they
  // never vanish, however far a score is (a sigmoid's would).
  const [gr, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    discriminatorLoss(a, b, 1, "least-squares")
  )([real, fake]);
  (await gr.data()).forEach((g, i) => close(g, (r[i] - 1) / 3));
  (await gf.data()).forEach((g, i) => close(g, f[i] / 3));
  const gG = await tf.grad((x: tf.Tensor) => generatorLoss(x, "least-squares"))(
    fake,
  ).data();
  gG.forEach((g, i) => close(g, (f[i] - 1) / 3));
  const c = preset("sngan");
  c.loss = "least-squares";
  assert.throws(
    () => createGan(c, { seed: 0 }),
    /label smoothing \(0\.9\) moves a cross-entropy target; least squares has none \(use --label-smoothing 1 with --loss least-squares\)/,
  );
  tf.dispose([real, fake, gr, gf]);
});

Deno.test("the saturating G loss vanishes where D rejects G's samples", () => {
  // d/dl of each loss at a confidently rejected sample (D(G(z)) ~ 0.0025).
  const l = tf.scalar(-6);
  const gSat = tf.grad((x: tf.Tensor) => generatorLoss(x, "saturating"))(l);
  const gNon = tf.grad((x: tf.Tensor) => generatorLoss(x, "non-saturating"))(l);
  const sat = Math.abs(gSat.dataSync()[0]), non = Math.abs(gNon.dataSync()[0]);
  assert.ok(sat < 0.003, `saturating gradient ${sat}`);
  assert.ok(non > 0.99, `non-saturating gradient ${non}`);
});

Deno.test("maxout takes the max over each unit's pieces", async () => {
  const mlp = mlpNet(
    "M",
    [{
      inputs: 2,
      units: 2,
      activation: "maxout",
      pieces: 3,
      batchNorm: false,
      dropout: 0,
    }],
    0.1,
    new Rng(0),
  );
  const w = [[1, -1, 0, 2, 0, -2], [0, 1, 3, -1, 1, 0]];
  const { kernel, bias } = asMlp(mlp).layers[0];
  kernel.assign(tf.tensor2d(w));
  bias.assign(tf.tensor1d([0, 0, 0.5, 0, 0, 0]));
  const x = [2, 1];
  const z = w[0].map((_, j) =>
    x[0] * w[0][j] + x[1] * w[1][j] + (j === 2 ? 0.5 : 0)
  );
  const expected = [Math.max(...z.slice(0, 3)), Math.max(...z.slice(3))];
  const out = await mlp.apply(tf.tensor2d([x]), { training: false }).data();
  assert.deepEqual([...out], expected);
  mlp.dispose();
});

Deno.test("matMul's wasm gradient (explicit transposes) equals the cpu backend's", async () => {
  const rng = new Rng(4);
  const xs = rng.fillNormal(new Float32Array(6 * 5));
  const ws = rng.fillNormal(new Float32Array(5 * 3));
  const bs = rng.fillNormal(new Float32Array(3));
  const gradients = async () => {
    const x = tf.tensor2d(xs, [6, 5]), w = tf.tensor2d(ws, [5, 3]);
    const b = tf.tensor1d(bs);
    const f = (a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
      tf.sum(
        tf.square(dense(a as tf.Tensor2D, c as tf.Tensor2D, d as tf.Tensor1D)),
      );
    const out = await Promise.all(tf.grads(f)([x, w, b]).map((g) => g.data()));
    tf.dispose([x, w, b]);
    return out;
  };
  assert.equal(tf.getBackend(), "wasm");
  const ours = await gradients();
  await tf.setBackend("cpu");
  const ref = await gradients();
  await initBackend("wasm");
  for (let i = 0; i < 3; i++) {
    ours[i].forEach((v, j) => close(v, ref[i][j], 1e-4));
  }
});

Deno.test("one D step raises V(D, G); one G step lowers G's loss", async () => {
  for (const name of PRESET_NAMES) {
    const config = preset(name);
    config.batchSize = 64;
    const gan = createGan(config, { seed: 1 });
    const rng = new Rng(2);
    const low = config.output === "tanh" ? -1 : 0;
    const real = labelled(
      config,
      rng.fillUniform(new Float32Array(64 * 784), low, 1),
      784,
    );
    const z = labelled(config, sampleLatent(config, 64, rng), config.latentDim);
    const D = gan.discriminator;
    const V = () =>
      tf.tidy(() =>
        valueFunction(
          D.apply(real, { training: false }),
          D.apply(fakeInput(gan, generate(gan, z), z), { training: false }),
        )
      );
    // G's loss with G in training mode (batch statistics; its dropout masks
    // those of generatorStep with seed 8), D without dropout.
    const gLoss = () =>
      tf.tidy(() =>
        generatorLoss(
          D.apply(
            fakeInput(
              gan,
              gan.generator.apply(z, {
                training: true,
                seed: 8 + G_MASK_OFFSET,
              }),
              z,
            ),
            { training: false },
          ),
        )
      );
    const v0 = await scalar(V());
    tf.dispose(
      Object.values(
        discriminatorStep(gan, { real, noise: z, masks: 7, epoch: 0 }),
      ),
    );
    const v1 = await scalar(V());
    assert.ok(v1 > v0, `${name}: V went from ${v0} to ${v1}`);
    if (config.optimizerG.kind === "sgd") {
      // D starts at weights of +-0.005, so the gradient reaching G is ~1e-5
      // and one step changes the loss below float32 resolution. Check the
      // update itself: G's weights move against the gradient.
      const w = asMlp(gan.generator).layers[2].kernel;
      const { grads } = tf.variableGrads(() => gLoss(), [w]);
      const before = w.clone();
      generatorStep(gan, { noise: z, masks: 8, epoch: 0 }).dispose();
      const step = tf.sub(w, before);
      const cos = await scalar(
        tf.div(
          tf.sum(tf.mul(step, grads[w.name])),
          tf.mul(tf.norm(step), tf.norm(grads[w.name])),
        ),
      );
      assert.ok(
        cos < -0.5,
        `${name}: update not against the gradient (cos ${cos})`,
      );
      tf.dispose([before, step, ...Object.values(grads)]);
    } else {
      const g0 = await scalar(gLoss());
      generatorStep(gan, { noise: z, masks: 8, epoch: 0 }).dispose();
      const g1 = await scalar(gLoss());
      assert.ok(g1 < g0, `${name}: G loss went from ${g0} to ${g1}`);
    }
    tf.dispose([real, z]);
    disposeGan(gan);
  }
});

/**
 * `rows` (n rows of `dim` values) as a tensor, each row followed by a
 * one-hot class (classes in turn) when `config` is conditional.
 */
function labelled(config: GanConfig, rows: Float32Array, dim: number) {
  const n = rows.length / dim, classes = config.classes ?? 0;
  const labels = Array.from({ length: n }, (_, i) => i % 10);
  return tf.tensor2d(
    classes ? withClasses(rows, labels, dim, classes) : rows,
    [n, dim + classes],
  );
}

/** Every trainable variable of a network, read back. */
const weightsOf = (m: Network) => Promise.all(m.trainable.map((v) => v.data()));
/** Largest absolute difference between two lists of arrays. */
const maxDiff = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => {
  let m = 0;
  a.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) {
      m = Math.max(m, Math.abs(x[j] - b[i][j]));
    }
  });
  return m;
};

Deno.test("a simultaneous step equals a D step and a G step from the same weights", async () => {
  const config = preset("pylearn2");
  assert.equal(config.update, "simultaneous");
  const rng = new Rng(5);
  const real = tf.tensor2d(
    rng.fillUniform(new Float32Array(32 * 784), 0, 1),
    [32, 784],
  );
  const z = tf.tensor2d(sampleLatent(config, 32, rng), [32, 100]);
  const start = createGan(config, { seed: 3 });
  const both = createGan(config, { seed: 3 });
  const r = simultaneousStep(both, { real, noise: z, masks: 11, epoch: 0 });
  const dOnly = createGan(config, { seed: 3 });
  const d = discriminatorStep(dOnly, { real, noise: z, masks: 11, epoch: 0 });
  const gOnly = createGan(config, { seed: 3 });
  const g = generatorStep(gOnly, { noise: z, masks: 11 + 1000, epoch: 0 });
  const [d0, g0, dBoth, gBoth, dRef, gRef] = await Promise.all([
    weightsOf(start.discriminator),
    weightsOf(start.generator),
    weightsOf(both.discriminator),
    weightsOf(both.generator),
    weightsOf(dOnly.discriminator),
    weightsOf(gOnly.generator),
  ]);
  // Both players moved, each exactly as its own step from the start would.
  assert.ok(maxDiff(dBoth, d0) > 1e-4, "D did not move");
  assert.ok(maxDiff(gBoth, g0) > 1e-7, "G did not move");
  assert.ok(maxDiff(dBoth, dRef) <= 1e-7, "D's update differs");
  assert.ok(maxDiff(gBoth, gRef) <= 1e-9, "G's update differs");
  close(await scalar(r.loss), await scalar(d.loss));
  close(await scalar(r.dFake), await scalar(d.dFake));
  close(await scalar(r.gLoss), await scalar(g));
  // The alternating order differs: G's step then sees D after its update.
  const alt = createGan(config, { seed: 3 });
  tf.dispose(
    Object.values(
      discriminatorStep(alt, { real, noise: z, masks: 11, epoch: 0 }),
    ),
  );
  generatorStep(alt, { noise: z, masks: 11 + 1000, epoch: 0 }).dispose();
  assert.ok(maxDiff(await weightsOf(alt.generator), gRef) > 1e-9);
  tf.dispose([real, z, g, ...Object.values(r), ...Object.values(d)]);
  for (const gan of [start, both, dOnly, gOnly, alt]) disposeGan(gan);
});

Deno.test("dLossScale scales D's SGD step and leaves the reported loss alone", async () => {
  const rng = new Rng(6);
  const real = tf.tensor2d(
    rng.fillUniform(new Float32Array(32 * 784), 0, 1),
    [32, 784],
  );
  const z = tf.tensor2d(sampleLatent(preset("paper"), 32, rng), [32, 100]);
  const step = async (scale: number) => {
    const config = preset("paper");
    config.dLossScale = scale;
    const gan = createGan(config, { seed: 4 });
    const before = await weightsOf(gan.discriminator);
    const r = discriminatorStep(gan, { real, noise: z, masks: 12, epoch: 0 });
    const loss = await scalar(r.loss);
    const after = await weightsOf(gan.discriminator);
    tf.dispose(Object.values(r));
    disposeGan(gan);
    return {
      loss,
      delta: after.map((w, i) => w.map((v, j) => v - before[i][j])),
    };
  };
  const full = await step(1);
  const half = await step(0.5);
  close(half.loss, full.loss);
  const scaled = full.delta.map((d) => d.map((v) => v / 2));
  const biggest = maxDiff(full.delta, full.delta.map((d) => d.map(() => 0)));
  assert.ok(biggest > 1e-4, "D did not move");
  assert.ok(maxDiff(half.delta, scaled) <= 1e-3 * biggest, "not half the step");
  tf.dispose([real, z]);
});

Deno.test("dropoutMask is exactly tfjs' step(keep - randomUniform) / keep", async () => {
  // The formula the paper run in models/mnist was trained with.
  for (
    const [n, keep, seed] of [[1000, 0.8, 0], [4321, 0.5, 7], [3, 0.5, 1001]]
  ) {
    const reference = tf.tidy(() =>
      tf.mul(
        tf.step(tf.sub(keep, tf.randomUniform([n], 0, 1, "float32", seed))),
        1 / keep,
      )
    );
    const mask = dropoutMask(n, keep, seed);
    assert.deepEqual(Array.from(mask), Array.from(await reference.data()));
    reference.dispose();
  }
  const mask = dropoutMask(100_000, 0.8, 3);
  const kept = mask.filter((m) => m > 0).length / mask.length;
  close(kept, 0.8, 0.01);
  assert.ok(mask.every((m) => m === 0 || m === Math.fround(1 / 0.8)));
  assert.notDeepEqual(dropoutMask(50, 0.5, 1), dropoutMask(50, 0.5, 2));
});

Deno.test("the same seed builds the same networks; another seed does not", async () => {
  const weights = async (seed: number) => {
    const gan = createGan(preset("mlp"), { seed });
    const w = await asMlp(gan.generator).layers[0].kernel.data();
    disposeGan(gan);
    return w;
  };
  assert.deepEqual(await weights(3), await weights(3));
  assert.notDeepEqual(await weights(3), await weights(4));
});

Deno.test("batch norm: training uses batch statistics, inference the running ones", async () => {
  const config = preset("bn");
  const gan = createGan(config, { seed: 0 });
  const z = tf.tensor2d(sampleLatent(config, 32, new Rng(0)), [32, 100]);
  const before = await asMlp(gan.generator).layers[0].movingMean!.data();
  assert.ok(before.every((v) => v === 0));
  generatorStep(gan, { noise: z, masks: 1, epoch: 0 }).dispose();
  const after = await asMlp(gan.generator).layers[0].movingMean!.data();
  assert.ok(after.some((v) => v !== 0), "running mean was not updated");
  const train = await gan.generator.apply(z, { training: true }).data();
  const infer = await generate(gan, z).data();
  assert.notDeepEqual(train, infer);
  disposeGan(gan);
});

Deno.test("configuration errors are readable", () => {
  const c = preset("mlp");
  c.batchSize = 0;
  c.optimizerD.lr = -1;
  assert.throws(
    () => createGan(c, { seed: 0 }),
    /batch size must be a positive integer, got 0; learning rate must be > 0, got -1/,
  );
  const g = preset("mlp");
  g.generator.activation = "maxout";
  assert.throws(
    () => createGan(g, { seed: 0 }),
    /maxout is supported in D only/,
  );
  const s = preset("pylearn2");
  s.k = 2;
  s.dLossScale = 0;
  assert.throws(
    () => createGan(s, { seed: 0 }),
    /D loss scale must be > 0, got 0; a simultaneous update needs k = 1 and one G step, got k = 2, 1 G steps \(use alternating updates, --update alternating\)/,
  );
  assert.throws(
    () => preset("wgan"),
    /unknown preset "wgan"; expected one of paper, pylearn2, mlp, bn, cgan, dcgan, sngan, sngan-fc, keras-mlp$/,
  );
});

Deno.test("latent interpolation starts and ends at its endpoints", () => {
  const rng = new Rng(9);
  const a = sampleLatent({ latent: "normal", latentDim: 8 }, 1, rng);
  const b = sampleLatent({ latent: "normal", latentDim: 8 }, 1, rng);
  for (const kind of ["normal", "uniform"] as const) {
    const path = interpolateLatents(a, b, 5, kind);
    assert.equal(path.length, 40);
    a.forEach((v, i) => close(path[i], v));
    b.forEach((v, i) => close(path[32 + i], v));
  }
});

Deno.test("batchFigures reads V, D(x), D(G(z)) and G's loss of a batch", async () => {
  const config = preset("mlp");
  const gan = createGan(config, { seed: 3 });
  const rng = new Rng(4);
  const real = tf.tensor2d(
    rng.fillUniform(new Float32Array(32 * 784), -1, 1),
    [32, 784],
  );
  const z = tf.tensor2d(sampleLatent(config, 32, rng), [32, 100]);
  const f = await batchFigures(gan, real, z);
  const D = gan.discriminator;
  const realLogits = D.apply(real, { training: false });
  const fakeLogits = D.apply(generate(gan, z), { training: false });
  close(f.value, await scalar(valueFunction(realLogits, fakeLogits)));
  close(f.dReal, await scalar(tf.mean(tf.sigmoid(realLogits))));
  close(f.dFake, await scalar(tf.mean(tf.sigmoid(fakeLogits))));
  close(f.gLoss, await scalar(generatorLoss(fakeLogits)));
  tf.dispose([real, z, realLogits, fakeLogits]);
  disposeGan(gan);
});

Deno.test("imagesFrom maps tanh output to [0, 1] across chunks", async () => {
  const n = 1500, dim = 2;
  const z = Float32Array.from({ length: n * dim }, (_, i) => (i % 7) / 7 - 0.5);
  // A "generator" whose every pixel is tanh(z0).
  const predict = (x: tf.Tensor2D) =>
    tf.tile(tf.tanh(tf.slice(x, [0, 0], [-1, 1])), [1, 784]);
  const images = await imagesFrom(predict, z, {
    latentDim: dim,
    output: "tanh",
  });
  assert.equal(images.length, n * 784);
  for (const i of [0, 999, 1000, n - 1]) {
    close(images[i * 784 + 5], (Math.tanh(z[i * dim]) + 1) / 2);
  }
});

Deno.test("interpolation rows: rows x steps latents, each row a path", () => {
  const config = { latent: "uniform" as const, latentDim: 3 };
  const z = interpolationRows(config, 4, 5, new Rng(1));
  assert.equal(z.length, 4 * 5 * 3);
  // Uniform latents interpolate linearly: the middle is the endpoints' mean.
  for (let r = 0; r < 4; r++) {
    const at = (s: number, d: number) => z[(r * 5 + s) * 3 + d];
    for (let d = 0; d < 3; d++) close(at(2, d), (at(0, d) + at(4, d)) / 2);
  }
});

Deno.test("maxout's gradient equals that of tf.max, ties included", async () => {
  const rng = new Rng(9);
  const data = rng.fillNormal(new Float32Array(4 * 3 * 5));
  data[7] = data[8] = 10; // a tie for the max of one unit
  const x = tf.tensor3d(data, [4, 3, 5]);
  const loss = (f: (t: tf.Tensor3D) => tf.Tensor) => (t: tf.Tensor) =>
    tf.sum(tf.mul(f(t as tf.Tensor3D), tf.range(1, 13).reshape([4, 3])));
  const ours = await tf.grad(loss(maxOverPieces))(x).data();
  const ref = await tf.grad(loss((t) => tf.max(t, 2)))(x).data();
  assert.deepEqual([...ours], [...ref]);
  assert.deepEqual(
    [...await maxOverPieces(x).data()],
    [...await tf.max(x, 2).data()],
  );
  x.dispose();
});

Deno.test("every preset takes another latent size: G maps latentDim values to an image, and a D step runs", () => {
  for (const name of PRESET_NAMES) {
    const config = { ...preset(name), latentDim: 32 };
    const gan = createGan(config, { seed: 1 });
    try {
      // A conditional G's input: 32 noise values, then the one-hot class.
      const z = labelled(config, sampleLatent(config, 4, new Rng(2)), 32);
      const x = generate(gan, z);
      assert.deepEqual(x.shape, [4, 784], name);
      const real = labelled(config, new Float32Array(4 * 784), 784);
      tf.dispose(Object.values(
        discriminatorStep(gan, { real, noise: z, masks: 1, epoch: 0 }),
      ));
      tf.dispose([z, x, real]);
    } finally {
      disposeGan(gan);
    }
  }
});
