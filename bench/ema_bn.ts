/**
 * Which batch-norm statistics suit a moving average of G's weights? Reads a
 * run trained with `--ema` and evaluates (10,000 samples, FID and the
 * class figures) G as trained, the average with the running statistics
 * copied from G (as each update copies them), and the average with its
 * statistics recomputed on its own activations over fresh noise (BigGAN's
 * standing statistics; what training then gives it), all on the same
 * noise.
 *
 *     deno run -A bench/ema_bn.ts --run runs/fashion-bn-ema [--batches 100]
 *
 * @module
 */

import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { type DatasetName, loadDataset } from "../lib/data.ts";
import { evaluateImages } from "../lib/eval/evaluate.ts";
import { createGan, generate, type Network } from "../lib/gan.ts";
import { copyStatistics, recomputeBatchNormStats } from "../lib/nets/ema.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { readCheckpoint, restoreCheckpoint } from "../lib/run/checkpoint.ts";
import type { TrainState } from "../lib/run/record.ts";

const { values } = parseArgs({
  options: {
    run: { type: "string" },
    batches: { type: "string", default: "100" },
    backend: { type: "string", default: "wasm" },
  },
});
if (!values.run) throw new Error("--run RUN_FOLDER is required");
await initBackend(values.backend as "wasm");
const checkpoint = await readCheckpoint<TrainState>(values.run);
const config = checkpoint.file.config;
if (!config.ema) throw new Error(`${values.run} was trained without --ema`);
const data = await loadDataset(checkpoint.file.state.dataset as DatasetName);
const gan = createGan(config, { seed: 0 });
restoreCheckpoint(gan, checkpoint);
const z = sampleLatent(config, 10000, new Rng(0, 4));

async function row(what: string, net: Network) {
  const images = new Float32Array(10000 * 784);
  for (let s = 0; s < 10000; s += 1000) {
    const x = tf.tidy(() => {
      const y = generate(
        gan,
        tf.tensor2d(
          z.subarray(s * config.latentDim, (s + 1000) * config.latentDim),
          [1000, config.latentDim],
        ),
        net,
      );
      return config.output === "tanh" ? tf.div(tf.add(y, 1), 2) : y;
    });
    images.set(await x.data<"float32">(), s * 784);
    x.dispose();
  }
  const e = await evaluateImages(images, { dataset: data, skipParzen: true });
  const smallest = Math.min(...e.class_histogram);
  console.log(
    `| ${what} | ${e.fid.toFixed(2)} | ${e.precision.toFixed(3)} | ` +
      `${e.recall.toFixed(3)} | ${(100 * smallest).toFixed(1)}% | ` +
      `${e.kl_uniform.toFixed(4)} |`,
  );
}

console.log(
  `${values.run}: ${config.preset} on ${data.name}, epoch ` +
    `${checkpoint.file.state.epoch}, moving average ${config.ema.decay} from update ${
      config.ema.start + 1
    }`,
);
console.log(
  "| generator | FID | precision | recall | smallest class | KL to uniform |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
await row("G as trained", gan.generator);
// The checkpoint's average holds statistics recomputed after its epoch:
// G's are put in their place, as each update copies them.
const average = gan.generatorEma!;
copyStatistics(average, gan.generator);
await row("average, statistics copied from G", average);
const batches = Number(values.batches), rng = new Rng(1, 7);
recomputeBatchNormStats(
  gan.generatorEma!,
  () =>
    tf.tensor2d(sampleLatent(config, config.batchSize, rng), [
      config.batchSize,
      config.latentDim,
    ]),
  batches,
);
await row(
  `average, statistics recomputed (${batches} batches)`,
  gan.generatorEma!,
);
