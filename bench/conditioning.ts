/**
 * How should the class enter an MLP GAN? Trains the same preset twice on
 * the same data and seed, with the one-hot class appended to each
 * network's input, and with hidden units of its own in the first layer
 * (Mirza and Osindero's form, `NetConfig.labelUnits`), then prints the
 * conditional accuracy and FID of each (10,000 samples, a tenth per class).
 *
 *     deno run -A bench/conditioning.ts --preset bn --dataset fashion --epochs 5 --limit 20000
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initBackend } from "../lib/backends/choice.ts";
import { type DatasetName, loadDataset } from "../lib/data.ts";
import { evaluateImages } from "../lib/eval/evaluate.ts";
import { conditional, type GanConfig, preset } from "../lib/presets.ts";
import { disposeGan, sampleImages } from "../lib/gan.ts";
import { sampleLatent, withClasses } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { train } from "../lib/train.ts";

const { values } = parseArgs({
  options: {
    preset: { type: "string", default: "bn" },
    dataset: { type: "string", default: "fashion" },
    epochs: { type: "string", default: "5" },
    limit: { type: "string", default: "20000" },
    seed: { type: "string", default: "0" },
  },
});
const epochs = Number(values.epochs), limit = Number(values.limit);
const seed = Number(values.seed);
await initBackend("wasm");
const data = await loadDataset(values.dataset as DatasetName);

/** The two forms of one preset: appended, and with units of its own. */
function variants(name: string): [string, GanConfig][] {
  const base = conditional(preset(name));
  const appended = structuredClone(base);
  const own = structuredClone(base);
  if (base.generator.labelUnits) {
    delete appended.generator.labelUnits;
    delete appended.discriminator.labelUnits;
  } else {
    // Mirza and Osindero's proportions: G gives the class about five times
    // the units it gives the noise, D a fifth of the image's.
    own.generator.labelUnits = base.generator.hidden[0] * 5;
    own.discriminator.labelUnits = Math.round(
      base.discriminator.hidden[0] / 5,
    );
  }
  return [["appended to the input", appended], ["units of its own", own]];
}

for (const [form, config] of variants(values.preset!)) {
  const started = performance.now();
  const result = await train({
    config,
    dataset: data,
    epochs,
    seed,
    limit,
    outDir: null,
    log: () => {},
  });
  const minutes = (performance.now() - started) / 60000;
  const labels = Uint8Array.from({ length: 10000 }, (_, i) => i % 10);
  const z = withClasses(
    sampleLatent(config, 10000, new Rng(0, 4)),
    labels,
    config.latentDim,
    10,
  );
  const e = await evaluateImages(await sampleImages(result.gan, z), {
    dataset: data,
    labels,
    skipParzen: true,
  });
  disposeGan(result.gan);
  const line = `${values.preset} on ${data.name}, class ${form}: ` +
    `conditional accuracy ${(100 * e.conditional_acc!).toFixed(1)}%, ` +
    `FID ${e.fid.toFixed(2)} after ${epochs} epochs on ${limit} images ` +
    `(${minutes.toFixed(1)} min)`;
  console.log(line);
}
