import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import {
  createGan,
  discriminatorLoss,
  discriminatorStep,
  disposeGan,
  fakeInput,
  generatorLoss,
} from "../lib/gan.ts";
import { validateConfig } from "../lib/config_check.ts";
import {
  gradientPenalty,
  secondDerivativeError,
} from "../lib/nets/gradient_penalty.ts";
import { logicalName } from "../lib/nets/optim.ts";
import { conditional, preset } from "../lib/presets.ts";
import { Rng } from "../lib/random/rng.ts";
import { train } from "../lib/train.ts";
import { wgslStepSupport } from "../lib/wgsl/step.ts";
import { tiny, tinyOptions } from "./tiny.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });
const webgpu = (await probeWebGpu()).ok;

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(
    Math.abs(a - b) <= tol * (1 + Math.abs(b)),
    `${what}: ${a} vs ${b}`,
  );

Deno.test("the Wasserstein losses and their gradients, by hand", async () => {
  const real = tf.tensor1d([2, -1, 0.5, 3]), fake = tf.tensor1d([1, -2]);
  // D minimises mean D(G(z)) - mean D(x); G minimises -mean D(G(z)).
  close(
    (await discriminatorLoss(real, fake, 1, "wgan-gp").data())[0],
    -0.5 - 1.125,
    1e-6,
    "D",
  );
  close((await generatorLoss(fake, "wgan-gp").data())[0], 0.5, 1e-6, "G");
  const [dr, df] = tf.grads((r: tf.Tensor, f: tf.Tensor) =>
    discriminatorLoss(r, f, 1, "wgan-gp")
  )([real, fake]);
  assert.deepEqual(Array.from(await dr.data()), [-0.25, -0.25, -0.25, -0.25]);
  assert.deepEqual(Array.from(await df.data()), [0.5, 0.5]);
  tf.dispose([real, fake, dr, df]);
});

Deno.test("the gradient penalty by hand: a linear critic, and one weight per pair", async () => {
  // D(x) = x . w + b: its input gradient is w for every x, so the penalty
  // is 10 (|w| - 1)^2 and its gradient 20 (|w| - 1) w / |w|.
  const w = tf.variable(tf.tensor2d([[3], [0], [4]]), true, "gp-w");
  const b = tf.variable(tf.scalar(0.7), true, "gp-b");
  const real = tf.tensor2d([[1, 2, 3], [0, -1, 2]]);
  const fake = tf.tensor2d([[-1, 0, 1], [5, 5, 5]]);
  const mix = tf.tensor1d([0.3, 0.9]);
  const critic = (x: tf.Tensor2D) => tf.add(tf.matMul(x, w), b);
  const { value, grads } = tf.variableGrads(
    () => gradientPenalty(critic, real, fake, mix),
    [w, b],
  );
  close((await value.data())[0], 10 * 16, 1e-6, "penalty");
  const gw = await grads[w.name].data();
  [3, 0, 4].forEach((wi, i) => close(gw[i], 20 * 4 * wi / 5, 1e-5, `dw${i}`));
  // The penalty does not depend on b: no gradient, or zero.
  close((await grads[b.name]?.data())?.[0] ?? 0, 0, 1e-6, "db");
  // D(x) = |x|^2 / 2: its gradient is x itself, so the penalty is
  // 10 mean (|e x + (1 - e) x~| - 1)^2 with each row's own e.
  const square = (x: tf.Tensor2D) => tf.mul(tf.sum(tf.square(x), 1), 0.5);
  const e = [0.3, 0.9],
    r = [[1, 2, 3], [0, -1, 2]],
    f = [[-1, 0, 1], [5, 5, 5]];
  const want = 10 * e.map((ei, i) => {
    const x = r[i].map((ri, j) => ei * ri + (1 - ei) * f[i][j]);
    return (Math.hypot(...x) - 1) ** 2;
  }).reduce((a, c) => a + c) / 2;
  const got = gradientPenalty(square, real, fake, mix);
  close((await got.data())[0], want, 1e-5, "per-row mix");
  // Over the image's values only (a conditional D's class is left out).
  const firstTwo = gradientPenalty(square, real, fake, mix, { columns: 2 });
  const wantTwo = 10 * e.map((ei, i) => {
    const x = r[i].slice(0, 2).map((ri, j) => ei * ri + (1 - ei) * f[i][j]);
    return (Math.hypot(...x) - 1) ** 2;
  }).reduce((a, c) => a + c) / 2;
  close((await firstTwo.data())[0], wantTwo, 1e-5, "columns");
  tf.dispose([
    w,
    b,
    real,
    fake,
    mix,
    value,
    got,
    firstTwo,
    ...Object.values(grads),
  ]);
});

/**
 * The penalty's gradient with respect to each of D's weights, along a
 * random direction, against central differences: the second derivative
 * through every kind of layer D has, on one backend.
 */
async function checkPenaltyGradient(name: string) {
  const config = { ...tiny(name), loss: "wgan-gp" as const, realLabel: 1 };
  const layers = config.discriminator.layers;
  if (layers) {
    // A convolutional D's thousands of leaky relus make the penalty jump
    // at every step of a difference: without them the convolutions,
    // spectral norm and dense layer are checked here, and the whole D
    // across backends below.
    config.discriminator = {
      ...config.discriminator,
      layers: layers.filter((l) => l.kind !== "leakyRelu"),
    };
  } else {
    // An MLP D of the preset's kind with 8 units a layer (and 4 label
    // units), so that few units sit near a kink of their nonlinearity.
    const d = config.discriminator;
    config.discriminator = {
      ...d,
      hidden: d.hidden.map(() => 8),
      ...d.labelUnits ? { labelUnits: 4 } : {},
    };
  }
  const gan = createGan(config, { seed: 4 });
  const D = gan.discriminator, rng = new Rng(6);
  const dim = 784 + (config.classes ?? 0), n = 3;
  const rows = () => {
    const x = rng.fillUniform(new Float32Array(n * dim), -1, 1);
    if (config.classes) {
      for (let i = 0; i < n; i++) {
        x.fill(0, i * dim + 784, (i + 1) * dim);
        x[i * dim + 784 + i] = 1;
      }
    }
    return tf.tensor2d(x, [n, dim]);
  };
  const real = rows(), fake = rows(), mix = tf.tensor1d([0.2, 0.5, 0.9]);
  // Spectral norm's power iteration, run to convergence (a training pass
  // makes one step of it): sigma is then the kernels' largest singular
  // value, as after some training, rather than an estimate from random u.
  for (let i = 0; i < 30; i++) {
    tf.tidy(() => D.apply(real, { training: true, seed: 1 }));
  }
  const penalty = () =>
    gradientPenalty(
      (x) => D.apply(x, { training: false }),
      real,
      fake,
      mix,
      { columns: config.classes ? 784 : undefined },
    );
  // D's kernels scaled so that its input gradient's norm is about 2 (the
  // penalty 10, its slope 20 per unit of norm): a freshly drawn D's can
  // be 1e-4 (the paper's), and the penalty then hardly moves with the
  // weights (nor at a norm of 1, the penalty's minimum).
  const kernels = D.trainable.filter((v) => v.name.endsWith("/kernel"));
  const p0 = (await penalty().data())[0];
  const norm = Math.max(1e-6, 1 - Math.sqrt(p0 / 10));
  const gain = (2 / norm) ** (1 / kernels.length);
  for (const k of kernels) k.assign(tf.mul(k, gain));
  const { grads } = tf.variableGrads(penalty, D.trainable);
  for (const v of D.trainable) {
    if (!v.name.endsWith("/kernel")) {
      // D is piecewise linear: its input gradient does not depend on a
      // bias (which moves only where the pieces meet), so neither does the
      // penalty.
      const g = grads[v.name];
      assert.ok(!g || (await g.abs().max().data())[0] === 0, v.name);
      continue;
    }
    // D's relus and maxouts make the penalty jump where a unit's mask
    // flips. Central differences over a step and half of it agree to
    // O(h^2) where the penalty is smooth; where they do not, the step
    // crossed such a point, and another direction is drawn with a shorter
    // step.
    let checked = false;
    for (let attempt = 0; attempt < 8 && !checked; attempt++) {
      const u = tf.tensor(
        rng.fillUniform(new Float32Array(v.size), -1, 1),
        v.shape,
      );
      // The output bias moves no gradient: tfjs gives none for it.
      const analytic = grads[v.name]
        ? (await tf.sum(tf.mul(grads[v.name], u)).data())[0]
        : 0;
      const original = v.clone();
      // Each weight moved by up to 1% of the kernel's root mean square.
      const rms = Math.sqrt((await tf.mean(tf.square(original)).data())[0]);
      const h = 1e-2 * rms / 2 ** attempt;
      const at = async (s: number) => {
        v.assign(tf.add(original, tf.mul(u, s)));
        const p = penalty();
        const x = (await p.data())[0];
        p.dispose();
        return x;
      };
      const central = async (step: number) =>
        (await at(step) - await at(-step)) / (2 * step);
      const [whole, half, mid] = [
        await central(h),
        await central(h / 2),
        await at(0),
      ];
      v.assign(original);
      tf.dispose([u, original]);
      // The differences' float32 rounding.
      const rounding = 8 * 2 ** -24 * Math.abs(mid) / h;
      if (Math.abs(whole - half) > 0.03 * Math.abs(half) + rounding) {
        continue;
      }
      // Richardson's extrapolation of the two: error O(h^4).
      const numeric = (4 * half - whole) / 3;
      assert.ok(
        Math.abs(analytic - numeric) <=
          0.02 * Math.abs(numeric) + rounding + 1e-3,
        `${name} on ${tf.getBackend()}, ${v.name}: ${analytic} vs ${numeric} (rounding ${rounding})`,
      );
      checked = true;
    }
    assert.ok(checked, `${name}, ${v.name}: no smooth direction found`);
  }
  tf.dispose([real, fake, mix, ...Object.values(grads)]);
  disposeGan(gan);
}

Deno.test("the gradient penalty's second derivative through D's layers, on every backend", async () => {
  // Leaky relu (mlp), maxout (paper), convolutions and spectral norm
  // (sngan), a conditional D's label units (cgan).
  const backends = [
    "wasm",
    "cpu",
    ...webgpu ? ["webgpu" as const] : [],
  ] as const;
  try {
    for (const backend of backends) {
      await initBackend(backend);
      for (const name of ["mlp", "paper", "sngan", "cgan"]) {
        await checkPenaltyGradient(name);
      }
    }
  } finally {
    await initBackend("wasm");
  }
});

/** The penalty's gradients for `name`'s D on the running backend. */
async function penaltyGradients(
  name: string,
): Promise<Map<string, Float32Array>> {
  const config = { ...tiny(name), loss: "wgan-gp" as const, realLabel: 1 };
  const gan = createGan(config, { seed: 4 });
  const D = gan.discriminator, rng = new Rng(6);
  const rows = () =>
    tf.tensor2d(rng.fillUniform(new Float32Array(3 * 784), -1, 1), [3, 784]);
  const real = rows(), fake = rows(), mix = tf.tensor1d([0.2, 0.5, 0.9]);
  const { grads } = tf.variableGrads(
    () =>
      gradientPenalty(
        (x) => D.apply(x, { training: true, seed: 1 }),
        real,
        fake,
        mix,
      ),
    D.trainable,
  );
  // By the variables' names (without tfjs's unique prefix); a variable
  // with no gradient reads as zeros.
  const out = new Map<string, Float32Array>();
  for (const v of D.trainable) {
    out.set(
      logicalName(v),
      grads[v.name]
        ? await grads[v.name].data<"float32">()
        : new Float32Array(v.size),
    );
  }
  tf.dispose([real, fake, mix, ...Object.values(grads)]);
  disposeGan(gan);
  return out;
}

Deno.test("a convolutional D's penalty gradients agree across backends (cpu the reference)", async () => {
  const backends = ["wasm", ...webgpu ? ["webgpu" as const] : []] as const;
  try {
    for (const name of ["sngan", "dcgan"]) {
      await initBackend("cpu");
      const want = await penaltyGradients(name);
      for (const backend of backends) {
        await initBackend(backend);
        const got = await penaltyGradients(name);
        assert.deepEqual([...got.keys()], [...want.keys()]);
        for (const [v, g] of got) {
          const w = want.get(v)!;
          const scale = w.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
          for (let j = 0; j < g.length; j++) {
            assert.ok(
              Math.abs(g[j] - w[j]) <= 1e-3 * scale + 1e-6,
              `${name} on ${backend}, ${v}[${j}]: ${g[j]} vs ${w[j]}`,
            );
          }
        }
      }
    }
  } finally {
    await initBackend("wasm");
  }
});

Deno.test("a wgan-gp run trains: the critic's five steps a G step, finite figures", async () => {
  const run = tinyOptions(mnist as Dataset, { epochs: 1, seed: 3, limit: 320 });
  const config = { ...tiny("mlp"), loss: "wgan-gp" as const, k: 5 };
  const r = await train(run({ config }));
  const gSteps = r.gan.optimizerG.step;
  assert.equal(r.status, "completed");
  assert.equal(r.gan.optimizerD.step, 10);
  assert.equal(gSteps, 2);
  assert.ok(
    Number.isFinite(r.history[0].dLoss) && Number.isFinite(r.history[0].gLoss),
  );
  disposeGan(r.gan);
  // A D step without its mixing weights is a bug in the caller, said so.
  const gan = createGan(config, { seed: 1 });
  const x = tf.zeros([32, 784]) as tf.Tensor2D,
    z = tf.zeros([32, 100]) as tf.Tensor2D;
  assert.throws(
    () => discriminatorStep(gan, { real: x, noise: z, masks: 1, epoch: 0 }),
    /needs its mixing weights/,
  );
  tf.dispose([x, z]);
  disposeGan(gan);
});

Deno.test("a wgan-gp D step takes the critic's loss plus the penalty, over the image's values only", async () => {
  // A D without dropout or batch norm (mlp): its pass is the same in and
  // out of the step, so the loss can be rebuilt from outside.
  for (const classes of [0, 10]) {
    const plain = { ...tiny("mlp"), loss: "wgan-gp" as const, k: 5 };
    const config = classes ? conditional(plain, classes) : plain;
    const n = 6, rng = new Rng(5, 1);
    const oneHot = classes
      ? tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5], "int32"), classes).toFloat()
      : null;
    const withClass = (t: tf.Tensor2D) =>
      oneHot ? tf.concat([t, oneHot], 1) as tf.Tensor2D : t;
    const real = withClass(
      tf.tensor2d(rng.fillUniform(new Float32Array(n * 784), -1, 1), [n, 784]),
    );
    const noise = withClass(
      tf.tensor2d(rng.fillNormal(new Float32Array(n * 100)), [n, 100]),
    );
    const mix = tf.tensor1d([0, 0.2, 0.4, 0.6, 0.8, 1]);
    const losses: number[] = [], weights: Float32Array[] = [];
    for (const m of [mix, tf.onesLike(mix)]) {
      const gan = createGan(config, { seed: 2 });
      const D = gan.discriminator;
      const expected = tf.tidy(() => {
        const fake = fakeInput(
          gan,
          gan.generator.apply(noise, { training: true }),
          noise,
        );
        const critic = (x: tf.Tensor2D) => D.apply(x, { training: true });
        return tf.add(
          discriminatorLoss(critic(real), critic(fake), 1, "wgan-gp"),
          gradientPenalty(critic, real, fake, m, {
            columns: classes ? 784 : undefined,
          }),
        );
      });
      const r = discriminatorStep(gan, {
        real,
        noise,
        masks: 1,
        epoch: 0,
        mix: m,
      });
      const got = (await r.loss.data())[0];
      close(got, (await expected.data())[0], 1e-5, `${classes} classes`);
      losses.push(got);
      weights.push(await D.trainable[0].data() as Float32Array);
      tf.dispose([expected, ...Object.values(r)]);
      disposeGan(gan);
    }
    // Other mixing weights, another penalty and another update of D.
    assert.notEqual(losses[0], losses[1]);
    assert.notDeepEqual(weights[0], weights[1]);
    tf.dispose([...oneHot ? [oneHot] : [], real, noise, mix]);
  }
});

Deno.test("wgan-gp's bad settings are refused with what to do", () => {
  const wgan = (name: string) => ({
    ...preset(name),
    loss: "wgan-gp" as const,
  });
  assert.throws(
    () => validateConfig({ ...wgan("mlp"), realLabel: 0.9 }),
    /the Wasserstein critic has none \(use --label-smoothing 1/,
  );
  const bnD = wgan("mlp");
  bnD.discriminator = {
    ...bnD.discriminator,
    layers: [{ kind: "dense", units: 8 }, { kind: "batchNorm" }, {
      kind: "dense",
      units: 1,
    }],
  };
  assert.throws(
    () => validateConfig(bnD),
    /batch norm in D mixes a batch's images/,
  );
  const sigmoidD = wgan("mlp");
  sigmoidD.discriminator = {
    ...sigmoidD.discriminator,
    layers: [{ kind: "dense", units: 1 }, { kind: "sigmoid" }],
  };
  assert.throws(() => validateConfig(sigmoidD), /last layer is a sigmoid/);
  assert.throws(
    () => validateConfig({ ...wgan("pylearn2") }),
    /use alternating updates with --loss wgan-gp/,
  );
  assert.match(
    wgslStepSupport(wgan("mlp"))!,
    /second derivatives.*--step tfjs/,
  );
  // tfjs's own error where an op has no gradient, turned into what to do.
  const e = secondDerivativeError(
    new Error("Cannot compute gradient: gradient function not found for Erf."),
  ) as Error;
  assert.match(
    e.message,
    /no gradient for the Erf op that D's gradient uses on the wasm backend/,
  );
  const other = new Error("something else");
  assert.equal(secondDerivativeError(other), other);
});
