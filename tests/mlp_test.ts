/**
 * The MLP presets' notation as lists of layers (`lib/nets/mlp.ts`): the
 * lists read back as the blocks they were written from, the paper's D as
 * a list, the variables' names old checkpoints use, and a refusal for a
 * network that is not an MLP.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import {
  asMlp,
  type LayerSpec,
  layerSpecs,
  mlpLayers,
} from "../lib/nets/mlp.ts";
import { conditional, preset, PRESET_NAMES } from "../lib/presets.ts";
import { validateConfig } from "../lib/config_check.ts";
import { createGan, disposeGan, IMAGE_DIM } from "../lib/gan.ts";
import { type LayerDesc } from "../lib/nets/layer_net.ts";
import { logicalName } from "../lib/nets/optim.ts";
import {
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
} from "../lib/run/checkpoint.ts";

await initBackend("cpu");

const mlpPresets = PRESET_NAMES.filter((n) => !preset(n).generator.layers);

/**
 * `classInputs` says which inputs dropout keeps; a block without dropout
 * has no dropout layer to carry it, and needs none.
 */
const withoutUnusedClassInputs = (specs: LayerSpec[]) =>
  specs.map(({ classInputs, ...s }) =>
    s.dropout > 0 && classInputs ? { ...s, classInputs } : s
  );

Deno.test("every MLP preset's networks read back as the blocks they were written from", () => {
  assert.ok(mlpPresets.length >= 5, mlpPresets.join(", "));
  const configs = [
    ...mlpPresets.map(preset),
    ...["paper", "mlp", "bn"].map((n) => conditional(preset(n))),
  ];
  for (const config of configs) {
    const gan = createGan(config, { seed: 0 });
    const what = `${config.preset}${config.classes ? " conditional" : ""}`;
    assert.deepEqual(
      asMlp(gan.generator).specs,
      withoutUnusedClassInputs(layerSpecs(
        config.latentDim,
        config.generator,
        IMAGE_DIM,
        config.output,
        config.classes,
      )),
      `${what} G`,
    );
    assert.deepEqual(
      asMlp(gan.discriminator).specs,
      withoutUnusedClassInputs(
        layerSpecs(
          IMAGE_DIM,
          config.discriminator,
          1,
          "linear",
          config.classes,
        ),
      ),
      `${what} D`,
    );
    disposeGan(gan);
  }
});

Deno.test("the paper's D is a list of layers: dropout, dense, maxout, three times", () => {
  const config = preset("paper");
  const specs = layerSpecs(IMAGE_DIM, config.discriminator, 1, "linear");
  const init = { uniform: 0.005 };
  const expected: LayerDesc[] = [
    { kind: "dropout", rate: 0.2 },
    { kind: "dense", units: 1200, init, name: "0" },
    { kind: "maxout", pieces: 5 },
    { kind: "dropout", rate: 0.5 },
    { kind: "dense", units: 1200, init, name: "1" },
    { kind: "maxout", pieces: 5 },
    { kind: "dropout", rate: 0.5 },
    { kind: "dense", units: 1, init, name: "2" },
  ];
  assert.deepEqual(mlpLayers(specs, config.discriminator.initRange), expected);
  // G: PyTorch's default initialisation is not the paper's; bn's G has
  // batch norm between each dense layer and its nonlinearity.
  const bn = preset("bn");
  const g = mlpLayers(
    layerSpecs(100, bn.generator, IMAGE_DIM, bn.output),
    bn.generator.initRange,
  );
  assert.deepEqual(g.slice(0, 3), [
    { kind: "dense", units: 128, init: "pytorch", name: "0" },
    {
      kind: "batchNorm",
      eps: 1e-5,
      momentum: 0.9,
      divide: true,
      name: "0",
    },
    { kind: "leakyRelu", slope: 0.2 },
  ]);
  assert.deepEqual(g[g.length - 1], { kind: "tanh" });
});

Deno.test("MLP variables keep the names their checkpoints have always used", () => {
  const gan = createGan(preset("bn"), { seed: 0 });
  const names = gan.generator.variables.map(logicalName);
  assert.deepEqual(names.slice(0, 6), [
    "G/0/kernel",
    "G/0/bias",
    "G/0/gamma",
    "G/0/beta",
    "G/0/moving_mean",
    "G/0/moving_variance",
  ]);
  assert.deepEqual(names.slice(-2), ["G/4/kernel", "G/4/bias"]);
  assert.deepEqual(
    gan.optimizerG.slots.slice(0, 2).map(logicalName),
    ["optG/G/0/kernel/m", "optG/G/0/bias/m"],
  );
  disposeGan(gan);
});

Deno.test("asMlp refuses a convolutional network, naming the layer", () => {
  const gan = createGan(preset("sngan"), { seed: 0 });
  assert.throws(
    () => asMlp(gan.discriminator),
    /needs an MLP network .* layer 0 of this one is reshape/,
  );
  disposeGan(gan);
});

Deno.test("a conv checkpoint that names the running variance moving_var still restores", async () => {
  const dir = await Deno.makeTempDir();
  const a = createGan(preset("sngan"), { seed: 1 });
  const b = createGan(preset("sngan"), { seed: 2 });
  const running = (gan: typeof a) =>
    gan.generator.variables.filter((v) => logicalName(v).includes("moving_"));
  assert.equal(running(a).length, 4);
  tf.tidy(() =>
    running(a).forEach((v, i) => v.assign(tf.fill(v.shape, i + 2)))
  );
  try {
    await saveCheckpoint(dir, a, { epoch: 1 }, {
      tag: "001",
      generator: {
        latentDim: 100,
        latent: "normal",
        output: "tanh",
        preset: "sngan",
        dataset: "mnist",
        epochs: 1,
      },
    });
    // As the first conv checkpoints were written.
    const json = `${dir}/checkpoint.json`;
    const text = await Deno.readTextFile(json);
    assert.ok(text.includes("/moving_variance"));
    await Deno.writeTextFile(
      json,
      text.replaceAll("/moving_variance", "/moving_var"),
    );
    restoreCheckpoint(b, await readCheckpoint(dir));
    for (const [i, v] of running(b).entries()) {
      assert.deepEqual([...await v.data()], new Array(v.size).fill(i + 2));
    }
  } finally {
    disposeGan(a);
    disposeGan(b);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a maxout layer in a list must follow a dense layer its pieces divide", () => {
  const withD = (units: number) => ({
    ...preset("sngan"),
    discriminator: {
      hidden: [],
      activation: "relu" as const,
      layers: [
        { kind: "dense", units } as const,
        { kind: "maxout", pieces: 3 } as const,
        { kind: "dense", units: 1 } as const,
      ],
    },
  });
  assert.throws(
    () => validateConfig(withD(10)),
    /D's maxout \(layer 1\) must follow a dense layer whose units are a multiple of its 3 pieces/,
  );
  validateConfig(withD(12));
  const gan = createGan(withD(12), { seed: 0 });
  assert.deepEqual(gan.discriminator.shapes, [[12], [4], [1]]);
  disposeGan(gan);
});
