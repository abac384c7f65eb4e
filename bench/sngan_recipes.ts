/**
 * Recipes for the convolutional GAN on MNIST, compared on short runs: the
 * `sngan` preset and one change to it at a time, each trained for a few
 * epochs on the first 20,000 MNIST images (10,000 after the holdout),
 * seed 0, on wasm, then evaluated as `deno task eval --checkpoint` does
 * (10,000 samples, seed 0). Prints one row per recipe (see
 * docs/results.md, "Recipes tried on MNIST").
 *
 *     deno run -A bench/sngan_recipes.ts                      # every recipe, ~5 min each
 *     deno run -A bench/sngan_recipes.ts --recipes sngan,batch-64
 *
 * A recipe whose run folder already holds a finished run is evaluated
 * without training again.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initBackend } from "../lib/backends/choice.ts";
import {
  generateImages,
  hasCheckpoint,
  loadGenerator,
  readCheckpoint,
} from "../lib/run/checkpoint.ts";
import { loadDataset } from "../lib/data.ts";
import { evaluateImages } from "../lib/eval/evaluate.ts";
import { disposeGan } from "../lib/gan.ts";
import { type GanConfig, preset } from "../lib/presets.ts";
import { Rng } from "../lib/random/rng.ts";
import { generatorInputsFor } from "../lib/run/samples.ts";
import { train } from "../lib/train.ts";
import { type TrainState } from "../lib/run/record.ts";

/** `sngan` with these changes to G's and D's Adam settings. */
function withOptimizers(
  g: { lr?: number; beta1?: number },
  d: { lr?: number; beta1?: number },
): GanConfig {
  const c = preset("sngan");
  return {
    ...c,
    optimizerG: { ...c.optimizerG, ...g },
    optimizerD: { ...c.optimizerD, ...d },
  };
}

/** Each recipe: what it changes, and the configuration. */
const RECIPES: Record<string, [string, () => GanConfig]> = {
  "sngan": ["the preset", () => preset("sngan")],
  "no-smoothing": ["real label 1 (`--label-smoothing 1`)", () => ({
    ...preset("sngan"),
    realLabel: 1,
  })],
  "batch-64": ["batch 64 (`--batch-size 64`)", () => ({
    ...preset("sngan"),
    batchSize: 64,
  })],
  "beta1-0": [
    "Adam's beta1 0 (`--beta1 0`)",
    () => withOptimizers({ beta1: 0 }, { beta1: 0 }),
  ],
  "lr-1e-4": [
    "learning rate 1e-4 (`--lr 1e-4`)",
    () => withOptimizers({ lr: 1e-4 }, { lr: 1e-4 }),
  ],
  "k-2": ["two D steps per G step (`--k 2`)", () => ({
    ...preset("sngan"),
    k: 2,
  })],
  "no-sn-output": ["no spectral norm on D's output layer", () => {
    const c = preset("sngan");
    const layers = [...c.discriminator.layers!];
    layers[layers.length - 1] = { kind: "dense", units: 1 };
    return { ...c, discriminator: { ...c.discriminator, layers } };
  }],
  "ttur": [
    "D's learning rate 4e-4, G's 1e-4 (Heusel et al. 2017)",
    () => withOptimizers({ lr: 1e-4 }, { lr: 4e-4 }),
  ],
  "hinge": [
    "the hinge loss, no smoothing (`--loss hinge --label-smoothing 1`)",
    () => ({ ...preset("sngan"), loss: "hinge", realLabel: 1 }),
  ],
  "wide-d": ["D's convolutions twice as wide (128 and 256 filters)", () => {
    const c = preset("sngan");
    const layers = c.discriminator.layers!.map((l) =>
      l.kind === "conv2d" ? { ...l, filters: l.filters * 2 } : l
    );
    return { ...c, discriminator: { ...c.discriminator, layers } };
  }],
  "fc-1024": [
    "InfoGAN's dense 1024 layers: G's first (batch norm, ReLU), D's before its output (spectral norm, LeakyReLU)",
    // The preset `sngan-fc` at the preset's batch size.
    () => ({ ...preset("sngan-fc"), batchSize: preset("sngan").batchSize }),
  ],
  "fc-1024-d": [
    "D's dense 1024 layer only (spectral norm, LeakyReLU), G as the preset",
    () => ({
      ...preset("sngan"),
      discriminator: preset("sngan-fc").discriminator,
    }),
  ],
  "ema": [
    "a moving average of G's weights, samples from it (`--ema 0.99 --ema-start 100`)",
    () => ({ ...preset("sngan"), ema: { decay: 0.99, start: 100 } }),
  ],
  "least-squares": [
    "least squares, no smoothing (`--loss least-squares --label-smoothing 1`)",
    () => ({ ...preset("sngan"), loss: "least-squares", realLabel: 1 }),
  ],
  "wgan-gp": [
    "the Wasserstein critic with a gradient penalty, 5 D steps per G step (`--loss wgan-gp --label-smoothing 1`)",
    () => ({ ...preset("sngan"), loss: "wgan-gp", realLabel: 1, k: 5 }),
  ],
  "wgan-gp-k1": [
    "the same, one D step per G step (`--loss wgan-gp --label-smoothing 1 --k 1`)",
    () => ({ ...preset("sngan"), loss: "wgan-gp", realLabel: 1, k: 1 }),
  ],
  "bn-mlp": ["the `bn` MLP, for scale (`--preset bn`)", () => preset("bn")],
};

const { values } = parseArgs({
  options: {
    recipes: { type: "string", default: Object.keys(RECIPES).join(",") },
    epochs: { type: "string", default: "4" },
    limit: { type: "string", default: "20000" },
    out: { type: "string", default: "runs/sngan-recipes" },
  },
});
const names = values.recipes!.split(",");
for (const name of names) {
  if (!RECIPES[name]) {
    throw new Error(
      `unknown recipe ${name}; the recipes: ${Object.keys(RECIPES).join(", ")}`,
    );
  }
}
const epochs = Number(values.epochs), limit = Number(values.limit);
await initBackend("wasm");
const mnist = await loadDataset("mnist");
const rows: string[] = [];
for (const name of names) {
  const [what, config] = RECIPES[name];
  const dir = `${values.out}/${name}`;
  const done = hasCheckpoint(dir) &&
    (await readCheckpoint<TrainState>(dir)).file.state.epoch >= epochs;
  if (!done) {
    const r = await train({
      config: config(),
      dataset: mnist,
      epochs,
      seed: 0,
      outDir: dir,
      resume: hasCheckpoint(dir),
      limit,
      backend: "wasm",
      log: () => {},
    });
    disposeGan(r.gan);
  }
  const last = (await readCheckpoint<TrainState>(dir)).file.state.history.at(
    -1,
  )!;
  const generator = await loadGenerator(dir);
  const inputs = generatorInputsFor(generator, 10000, new Rng(0, 4));
  const images = await generateImages(generator, inputs.z);
  generator.model.dispose();
  const e = await evaluateImages(images, { dataset: mnist });
  const row = `| ${what} | ${e.fid.toFixed(1)} | ${e.parzen_ll.toFixed(1)} | ` +
    `${(100 * Math.min(...e.class_histogram)).toFixed(1)}% | ` +
    `${last.dReal.toFixed(2)} / ${last.dFake.toFixed(2)} |`;
  console.log(`${name}: ${row}`);
  rows.push(row);
}
console.log(
  `\n${epochs} epochs on the first ${limit} MNIST images, seed 0\n\n` +
    "| recipe | FID | Parzen | smallest class | D(x) / D(G(z)), last epoch |\n" +
    "| --- | --- | --- | --- | --- |\n" + rows.join("\n"),
);
