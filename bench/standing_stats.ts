/**
 * Do the running statistics of batch norm that `deno task average` averages
 * suit the averaged weights? Loads a generator, evaluates it (10,000
 * samples: FID, Parzen, the class figures), sets each batch-norm layer's
 * moving mean and variance to those of the generator's own activations
 * over fresh noise (BigGAN's standing statistics, as the training loop
 * gives a moving average of G's weights: lib/nets/ema.ts), and evaluates
 * it again on the same noise. `--out DIR` also saves the generator with
 * the new statistics.
 *
 *     deno run -A bench/standing_stats.ts --checkpoint models/mnist-sngan-fc [--batches 100] [--seed 1] [--out DIR]
 *
 * @module
 */

import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { type DatasetName, loadDataset } from "../lib/data.ts";
import { evaluateImages } from "../lib/eval/evaluate.ts";
import { saveLayersModel } from "../lib/io/layers_model.ts";
import { Rng } from "../lib/random/rng.ts";
import {
  generateImages,
  type LoadedGenerator,
  loadGenerator,
} from "../lib/run/checkpoint.ts";
import { generatorInputsFor } from "../lib/run/samples.ts";

const { values } = parseArgs({
  options: {
    checkpoint: { type: "string" },
    batches: { type: "string", default: "100" },
    seed: { type: "string", default: "1" },
    out: { type: "string" },
    backend: { type: "string", default: "wasm" },
  },
});
if (!values.checkpoint) {
  throw new Error("--checkpoint GENERATOR_FOLDER is required");
}
await initBackend(values.backend as "wasm");
const generator = await loadGenerator(values.checkpoint);
const data = await loadDataset(generator.metadata.dataset as DatasetName);

/**
 * Sets the moving mean and variance of every batch-norm layer of the
 * (sequential) model to the mean, over `batches` batches of 128 fresh
 * inputs, of the batch statistics the layer sees in training mode, where
 * it normalises with them.
 */
function standingStats(g: LoadedGenerator, batches: number): number {
  const norms = g.model.layers.filter((l) =>
    l.getClassName() === "BatchNormalization"
  );
  const sums: tf.Tensor[][] = norms.map(() => []);
  const rng = new Rng(Number(values.seed), 7), n = 128;
  for (let b = 0; b < batches; b++) {
    const { z } = generatorInputsFor(g, n, rng, { first: b * n });
    tf.tidy(() => {
      let h: tf.Tensor = tf.tensor2d(z, [n, z.length / n]);
      let k = 0;
      for (const layer of g.model.layers) {
        if (layer.getClassName() === "BatchNormalization") {
          const { mean, variance } = tf.moments(h, [
            ...Array(h.rank - 1).keys(),
          ]);
          const s = sums[k++];
          const next = s.length
            ? [tf.add(s[0], mean), tf.add(s[1], variance)]
            : [mean, variance];
          tf.dispose(s);
          sums[k - 1] = next.map((t) => tf.keep(t));
        }
        h = layer.apply(h, { training: true }) as tf.Tensor;
      }
    });
  }
  tf.tidy(() =>
    norms.forEach((layer, k) => {
      // gamma and beta (trainable) come first, then the moving mean and variance.
      const w = layer.getWeights();
      w.splice(-2, 2, tf.div(sums[k][0], batches), tf.div(sums[k][1], batches));
      layer.setWeights(w);
    })
  );
  tf.dispose(sums.flat());
  return norms.length;
}

const { z } = generatorInputsFor(generator, 10000, new Rng(0, 4));

async function row(what: string) {
  const images = await generateImages(generator, z);
  const e = await evaluateImages(images, { dataset: data });
  console.log(
    `| ${what} | ${e.fid.toFixed(2)} | ${e.parzen_ll.toFixed(1)} | ` +
      `${e.precision.toFixed(3)} | ${e.recall.toFixed(3)} | ` +
      `${(100 * Math.min(...e.class_histogram)).toFixed(1)}% | ` +
      `${e.kl_uniform.toFixed(4)} |`,
  );
}

console.log(
  `${values.checkpoint}: ${generator.metadata.preset} on ${data.name}`,
);
console.log(
  "| statistics | FID | Parzen | precision | recall | smallest class | KL to uniform |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
await row("as saved");
const batches = Number(values.batches);
if (standingStats(generator, batches) === 0) {
  throw new Error(`${values.checkpoint} has no batch norm`);
}
await row(`recomputed (${batches} batches, seed ${values.seed})`);
if (values.out) {
  await saveLayersModel(values.out, generator.model, {
    weightsFile: "by-content",
    metadata: { gan: generator.metadata },
  });
}
