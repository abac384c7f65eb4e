/**
 * How far two correct implementations of one training step drift apart over
 * a few rounds: the WGSL step, the tfjs step on WebGPU and the tfjs step on
 * wasm (tfjs's own kernels, with BLAS), compared in pairs. All three
 * start from the same weights and take the same inputs; the
 * differences are measured as `lib/wgsl/check.ts` measures them (weights
 * and figures over max(1, |value|), optimiser slots over their kind's
 * largest value), and each round count starts afresh.
 *
 * Each cell is "weights / slots". Where each of the three implementations is
 * in turn the one that differs, the drift belongs to the game, not to the
 * WGSL programs: `dcgan`'s leaky ReLUs (slope 0.3)
 * change their derivative where rounding moves a value across 0, and
 * Adam's small epsilon (1e-7) turns a gradient's rounding into a step.
 * docs/speed.md has the figures.
 *
 *   deno run -A bench/step_agreement.ts [--presets dcgan,sngan] [--batch 4]
 *     [--rounds 3] [--seeds 0,1]
 *
 * Runs on the WebGPU backend (llvmpipe where there is no GPU) and wasm.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initBackend } from "../lib/backends/choice.ts";
import { createGan, disposeGan } from "../lib/gan.ts";
import { type GanConfig, preset } from "../lib/presets.ts";
import {
  compareRuns,
  playTfjsRounds,
  type Run,
  runWgsl,
  type StepComparison,
  stepInputs,
} from "../lib/wgsl/check.ts";

const { values } = parseArgs({
  options: {
    presets: { type: "string", default: "dcgan,sngan" },
    batch: { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
    seeds: { type: "string", default: "0,1" },
  },
});
const batch = Number(values.batch), rounds = Number(values.rounds);
const seeds = values.seeds.split(",").map(Number);
if (!(batch >= 1) || !(rounds >= 1) || seeds.some((s) => !(s >= 0))) {
  console.error(
    "--batch and --rounds take a positive whole number, --seeds a list of them",
  );
  Deno.exit(2);
}

/** `steps` tfjs rounds on `backend` from `config`'s seeded initial state. */
async function tfjsRun(
  backend: "webgpu" | "wasm",
  config: GanConfig,
  steps: number,
  seed: number,
): Promise<Run> {
  await initBackend(backend);
  const gan = createGan(config, { seed: 3 });
  return await playTfjsRounds(gan, stepInputs(config, steps, seed), 0);
}

const cell = (c: StepComparison) =>
  `${c.weights.toExponential(1)} / ${c.optimizer.toExponential(1)}`;
console.log(
  "| preset | seed | rounds | WGSL vs tfjs | tfjs wasm vs tfjs | WGSL vs tfjs wasm |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const name of values.presets.split(",")) {
  const config: GanConfig = { ...preset(name), batchSize: batch };
  for (const seed of seeds) {
    for (let steps = 1; steps <= rounds; steps++) {
      const o = { tolerance: 1e-4, steps, started: performance.now() };
      const want = await tfjsRun("webgpu", config, steps, seed);
      const mine = createGan(config, { seed: 3 });
      const got = await runWgsl(mine, stepInputs(config, steps, seed), 0, {});
      const wgsl = await compareRuns(got, want, o);
      const wasm = await tfjsRun("wasm", config, steps, seed);
      const other = await compareRuns(wasm, want, o);
      const third = await compareRuns(got, wasm, o);
      console.log(
        `| \`${name}\` | ${seed} | ${steps} | ${cell(wgsl)} | ${
          cell(other)
        } | ${cell(third)} |`,
      );
      [want, got, wasm].forEach((r) => disposeGan(r.gan));
    }
  }
}
