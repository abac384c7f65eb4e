/**
 * Why the `cgan` preset has no dropout in G (see `lib/presets.ts`): trains
 * `cgan` with the paper's dropout 0.5 in G too and no dropout on D's input
 * (the paper's dropout as this project first read it; or takes such a run with
 * `--checkpoint`), then evaluates the same weights sampled twice, as every
 * generator is sampled (no dropout) and with G's dropout on.
 *
 *     deno run -A bench/cgan_dropout.ts --epochs 17 --out runs/mnist-cgan-gdropout
 *     deno run -A bench/cgan_dropout.ts --checkpoint runs/mnist-cgan-gdropout
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { initBackend } from "../lib/backends/choice.ts";
import { readCheckpoint, restoreCheckpoint } from "../lib/run/checkpoint.ts";
import { loadDataset } from "../lib/data.ts";
import { evaluateImages } from "../lib/eval/evaluate.ts";
import { createGan, disposeGan, G_MASK_OFFSET } from "../lib/gan.ts";
import { preset } from "../lib/presets.ts";
import { sampleLatent, withClasses } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { train } from "../lib/train.ts";
import { type TrainState } from "../lib/run/record.ts";

const { values } = parseArgs({
  options: {
    checkpoint: { type: "string" },
    out: { type: "string", default: "runs/mnist-cgan-gdropout" },
    epochs: { type: "string", default: "17" },
  },
});
await initBackend("wasm");
const mnist = await loadDataset("mnist");
let dir = values.checkpoint;
if (!dir) {
  const config = preset("cgan");
  config.generator.dropout = 0.5; // the paper's dropout in G
  config.discriminator.inputDropout = 0; // and none on D's input
  const r = await train({
    config,
    dataset: mnist,
    epochs: Number(values.epochs),
    seed: 0,
    outDir: values.out!,
  });
  disposeGan(r.gan);
  dir = values.out!;
}
const checkpoint = await readCheckpoint<TrainState>(dir);
const gan = createGan(checkpoint.file.config, { seed: 0 });
restoreCheckpoint(gan, checkpoint);
const n = 10000, chunk = 1000, dim = gan.config.latentDim;
const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
const z = withClasses(
  sampleLatent(gan.config, n, new Rng(0, 4)),
  labels,
  dim,
  10,
);
for (const dropout of [false, true]) {
  const images = new Float32Array(n * 784);
  for (let s = 0; s < n; s += chunk) {
    const y = tf.tidy(() =>
      gan.generator.apply(
        tf.tensor2d(z.subarray(s * (dim + 10), (s + chunk) * (dim + 10)), [
          chunk,
          dim + 10,
        ]),
        { training: dropout, seed: s + G_MASK_OFFSET },
      )
    );
    images.set(await y.data(), s * 784);
    y.dispose();
  }
  const e = await evaluateImages(images, { dataset: mnist, labels });
  console.log(
    `${dir}, epoch ${checkpoint.file.state.epoch}, sampled ` +
      `${dropout ? "with G's dropout on" : "without dropout"}: Parzen ` +
      `${e.parzen_ll.toFixed(1)} +- ${e.parzen_se.toFixed(1)}, FID ` +
      `${e.fid.toFixed(1)}, conditional accuracy ` +
      `${(100 * e.conditional_acc!).toFixed(1)}%`,
  );
}
disposeGan(gan);
