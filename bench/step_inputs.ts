/**
 * The CPU's part of a WGSL training step: what the training loop does on
 * its own thread to feed the GPU, the old way and the current way, per
 * step, at batch 128 and 8192. Needs no GPU (the GPU's own time is what
 * `deno task bench` measures). Prints one JSON line per piece and batch.
 *
 *   deno run -A bench/step_inputs.ts [--workers N]
 */

import { parseArgs } from "node:util";
import { aleaStart } from "../lib/random/dropout_masks.ts";
import { batches, loadDataset } from "../lib/data.ts";
import { dropoutMask } from "../lib/nets/ops.ts";
import { FAKE_MASK_OFFSET } from "../lib/gan.ts";
import { preset } from "../lib/presets.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { NoiseWorkers } from "../lib/random/noise_workers.ts";
import { Rng } from "../lib/random/rng.ts";
import { trainingSplit } from "../lib/run/split.ts";

const { values } = parseArgs({ options: { workers: { type: "string" } } });
const workers = values.workers ? Number(values.workers) : undefined;

/** Mean milliseconds of `f` over `reps` calls, after one untimed call. */
async function time(f: () => unknown, reps: number): Promise<number> {
  await f();
  const t = performance.now();
  for (let i = 0; i < reps; i++) await f();
  return (performance.now() - t) / reps;
}

const print = (record: Record<string, unknown>) =>
  console.log(JSON.stringify(record));
const ms = (x: number) => Number(x.toFixed(3));

const dataset = await loadDataset("mnist", { log: () => {} });
using pool = NoiseWorkers.create({ workers });
for (const batch of [128, 8192]) {
  const reps = batch > 1000 ? 5 : 100;
  // D's dropout masks of the paper preset: D's pass (real and generated
  // rows) and G's pass, layer l of each from its seed + l.
  const paper = preset("paper").discriminator;
  const layers = [
    [784, 1 - paper.inputDropout!],
    [240, 1 - paper.dropout!],
    [240, 1 - paper.dropout!],
  ];
  const seeds = [1, 1 + FAKE_MASK_OFFSET, 2];
  print({
    piece: "D's dropout masks (paper)",
    batch,
    before_ms: ms(
      await time(
        () =>
          seeds.forEach((s) =>
            layers.forEach(([n, keep], l) =>
              dropoutMask(batch * n, keep, s + l)
            )
          ),
        reps,
      ),
    ),
    now_ms: ms(
      await time(
        () => seeds.forEach((s) => layers.forEach((_, l) => aleaStart(s + l))),
        reps,
      ),
    ),
    now:
      "alea start states; the GPU draws the masks (lib/random/dropout_masks.ts)",
  });

  // Two batches of normal noise (D's step, G's step).
  const mlp = preset("mlp");
  const rng = new Rng(1);
  const n = batch * mlp.latentDim;
  const inPlace = await time(() => {
    sampleLatent(mlp, batch, rng);
    sampleLatent(mlp, batch, rng);
  }, reps);
  let ahead = [pool.normals(rng, n), pool.normals(rng, n)];
  await Promise.all(ahead);
  let busy = 0;
  const wall = await time(async () => {
    const [a, b] = ahead;
    const t = performance.now();
    ahead = [pool.normals(rng, n), pool.normals(rng, n)];
    busy += performance.now() - t;
    await a;
    await b;
  }, reps);
  await Promise.all(ahead);
  print({
    piece: "two normal noise batches",
    batch,
    before_ms: ms(inPlace),
    now_ms: ms(busy / (reps + 1)),
    now: `integers on the training thread; Box-Muller in ${pool.size} ` +
      `worker thread(s), one step ahead (lib/random/noise_workers.ts)`,
    workers_ms_per_step: ms(wall),
  });

  // The real batch.
  const { split } = trainingSplit(dataset, {
    holdout: 10000,
    batchSize: batch,
  });
  const build = (images: boolean) => {
    const it = batches(split, {
      batchSize: batch,
      seed: 0,
      epoch: 1,
      range: "[-1,1]",
      images,
    });
    return () => it.next().value;
  };
  print({
    piece: "the real batch",
    batch,
    before_ms: ms(await time(build(true), Math.min(reps, 5))),
    before_upload_bytes: batch * 784 * 4,
    now_ms: ms(await time(build(false), Math.min(reps, 5))),
    now_upload_bytes: batch * 4,
    now: "the batch's positions; the GPU gathers the images it holds",
  });
}
