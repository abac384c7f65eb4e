/**
 * Where a training step's time goes on a backend: one D step and one G step
 * of a preset, profiled with `tf.profile` after two warm-up steps, kernels
 * summed by name and by name and input shapes.
 *
 * Usage: `deno run -A bench/profile_step.ts [--model sngan] [--batch 128]
 * [--backend wasm]` (OPENBLAS_NUM_THREADS=1 for one BLAS thread).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { type BackendChoice, initBackend } from "../lib/backends/choice.ts";
import { createGan } from "../lib/gan.ts";
import { preset } from "../lib/presets.ts";
import { Rng } from "../lib/random/rng.ts";
import { parseArgs } from "node:util";
import { tfjsRound } from "../cli/bench.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "sngan" },
    batch: { type: "string", default: "128" },
    backend: { type: "string", default: "wasm" },
  },
});
const batch = Number(values.batch);
const info = await initBackend(values.backend as BackendChoice);
const config = preset(values.model!);
config.batchSize = batch;
const gan = createGan(config, { seed: 0 });
const rng = new Rng(1);
const real = Float32Array.from(
  { length: batch * 784 },
  () => rng.int(256) / 127.5 - 1,
);
const step = (i: number) => tfjsRound(gan, real, rng, i);
for (let i = 0; i < 2; i++) {
  const g = step(i);
  await g.data();
  g.dispose();
}
const started = performance.now();
const profile = await tf.profile(async () => {
  const g = step(5);
  await g.data();
  g.dispose();
});
const total = performance.now() - started;
const byName = new Map<string, number>();
const byShape = new Map<string, [number, number]>();
let kernelMs = 0;
for (const k of profile.kernels) {
  const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
  kernelMs += ms;
  byName.set(k.name, (byName.get(k.name) ?? 0) + ms);
  const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
  const e = byShape.get(key) ?? [0, 0];
  byShape.set(key, [e[0] + ms, e[1] + 1]);
}
console.log(
  `${values.model}, batch ${batch}, ${info.name}: step ${
    total.toFixed(0)
  } ms, ` +
    `kernels ${kernelMs.toFixed(0)} ms in ${profile.kernels.length} calls`,
);
console.log("\nms by kernel:");
for (const [name, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  console.log(`${ms.toFixed(1).padStart(8)}  ${name}`);
}
console.log("\nms (calls) by kernel and input shapes:");
for (
  const [key, [ms, n]] of [...byShape].sort((a, b) => b[1][0] - a[1][0])
    .slice(0, 15)
) {
  console.log(`${ms.toFixed(1).padStart(8)} (${n})  ${key}`);
}
