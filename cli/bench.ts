/**
 * `deno task bench`: times the full training step (one D step and one G
 * step on a batch) per backend, batch size and model, and prints one JSON
 * line for each. Nothing is read back during the timed steps, only once at
 * the end, so the figure measures training, not synchronisation.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  BACKEND_CHOICES,
  type BackendChoice,
  initBackend,
} from "../lib/backends/choice.ts";
import { createGan, disposeGan, type Gan, playRound } from "../lib/gan.ts";
import { preset, realBatchSize } from "../lib/presets.ts";
import { labelledRows, sampleLatent } from "../lib/nets/latent.ts";
import { toFloat } from "../lib/data.ts";
import { NoiseWorkers } from "../lib/random/noise_workers.ts";
import { Rng } from "../lib/random/rng.ts";
import { memorySnapshot } from "../lib/run/record.ts";
import { latentLater } from "../lib/rounds.ts";
import { createTrainingStep, wgslStepSupport } from "../lib/wgsl/step.ts";
import {
  countGpuWork,
  setDirectUploads,
  setFusedUpdates,
} from "../lib/backends/webgpu_fusions.ts";
import { intFlag, parseFlags, runCli, UsageError } from "./args.ts";

const USAGE = `Usage: deno task bench [options]

Times the training step (one D step + one G step) after warm-up and prints
one JSON line per backend, batch size and model:
{"backend", "batch", "model", "images_per_s", "ms_per_step", "steps",
 "blas", ...} ("blas": the library that ran wasm's matMul, or null; "gflop_per_step"
and "gflop_per_s": the products' and convolutions' GFLOP in one step
(tfjs step; counted from a profiled step's kernels) and their rate; on
WebGPU, "step", "fused", "uploads" and "matmul" give the settings below,
"issue_ms_per_step" the CPU time spent issuing a step (the GPU runs
meanwhile), and "passes_per_step", "dispatches_per_step",
"uploads_per_step" and "staging_buffers_per_step" count one extra, untimed
step's compute passes, dispatches, CPU-to-GPU uploads and staging buffers
created for them)

  --backend LIST     comma-separated: auto, webgpu, wasm, cpu (default auto)
  --batch LIST       comma-separated batch sizes (default 128,512,2048)
  --model LIST       paper (the MNIST default), mlp (the "seed-003" MLP GAN:
                     G 100-128-256-512-1024-784, D 784-1024-512-256-1, Adam),
                     bn, cgan (conditional), dcgan, sngan, sngan-fc (the
                     convolutional presets), keras-mlp (D on half a batch)
                     (default paper,mlp)
  --blas LIST        on wasm, matMul in a system BLAS (auto: when one loads)
                     or in tfjs-wasm's own kernel (off); comma-separated
                     (default auto)
  --step LIST        on WebGPU, the step as tfjs ops (tfjs) or as the WGSL
                     programs of lib/wgsl/step.ts (wgsl); comma-separated
                     (default tfjs,wgsl)
  --matmul LIST      with --step wgsl, the matMul programs chosen by shape
                     (auto: 128 x 128 tiles for large products, split K for
                     weight gradients with few tiles) or 64 x 64 tiles
                     only (plain); comma-separated (default auto)
  --fused LIST       on WebGPU with --step tfjs, the optimiser updates as fused programs (on)
                     or as tfjs op chains (off); comma-separated (default on)
  --uploads LIST     on WebGPU with --step tfjs, CPU data written straight into pooled GPU
                     buffers (direct) or through a new staging buffer each
                     time, tfjs's own way (staged); comma-separated
                     (default direct)
  --steps N          timed steps per configuration (default 20)
  --warmup N         untimed steps first (default 3)
  --max-seconds S    stop a configuration's timed steps after S seconds,
                     with at least 3 done (default 60)
  --help             this text
`;

function list(
  name: string,
  value: string,
  check: (s: string) => boolean,
): string[] {
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = items.find((s) => !check(s));
  if (items.length === 0 || bad !== undefined) {
    throw new UsageError(`--${name}: bad value "${bad ?? value}"`);
  }
  return items;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Floating-point operations of the products and convolutions among
 * `kernels` (a profiled step's), two per multiply-add: what bounds a conv
 * GAN's step, and what a FLOP rate against the machine's peak counts.
 */
export function productFlops(
  kernels: Awaited<ReturnType<typeof tf.profile>>["kernels"],
): number {
  let flops = 0;
  for (const k of kernels) {
    const [a, b] = k.inputShapes as number[][];
    const out = k.outputShapes[0] as number[];
    switch (k.name) {
      case "BatchMatMul": {
        // a [B, m, k] (or transposed) times b: size(a) size(b) = B k^2 m n.
        const batch = out.length > 2 ? size(out.slice(0, -2)) : 1;
        flops += 2 * Math.sqrt(size(a) * size(b) * size(out) / batch);
        break;
      }
      case "Conv2D": // out [N, OH, OW, Cout], filter [KH, KW, Cin, Cout]
        flops += 2 * size(out) * size(b.slice(0, 3));
        break;
      case "Conv2DBackpropInput": // dy [N, OH, OW, Cout], filter [KH, KW, Cin, Cout]
        flops += 2 * size(a) * size(b.slice(0, 3));
        break;
      case "Conv2DBackpropFilter": // x, dy [N, OH, OW, Cout], out the filter
        flops += 2 * size(b) * size(out.slice(0, 3));
        break;
    }
  }
  return flops;
}

/**
 * One round of the tfjs step as the bench times it: {@linkcode playRound}
 * on the fixed batch `real` (batch x 784), with one noise batch from `rng`
 * for both players, D's dropout masks from `i` and G's from `i + 1`.
 * Returns G's loss: read it to wait for the round, then dispose it.
 */
export function tfjsRound(
  gan: Gan,
  real: Float32Array,
  rng: Rng,
  i: number,
): tf.Scalar {
  const batch = real.length / 784;
  // D's real images and noise: the first half with halfBatchD (keras-mlp).
  const half = realBatchSize(gan.config);
  // A conditional GAN (cgan): each row followed by its one-hot class, the
  // classes in turn.
  const classes = gan.config.classes ?? 0;
  const labels = benchLabels(batch, classes);
  const rows = (v: Float32Array, dim: number) =>
    labelledRows(v, labels, dim, classes);
  const x = rows(real, 784);
  const z = rows(sampleLatent(gan.config, batch, rng), gan.config.latentDim);
  const [xD, zD] = half < batch ? [x.slice(0, half), z.slice(0, half)] : [x, z];
  const { gLosses, ...d } = playRound(gan, {
    real: xD,
    noise: zD,
    masks: i,
    epoch: 0,
    generator: [{ noise: z, masks: i + 1 }],
  });
  tf.dispose([x, z, xD, zD, ...Object.values(d)]);
  return gLosses[0];
}

/** The bench's classes of a conditional GAN's batch: 0, 1, ..., in turn. */
function benchLabels(batch: number, classes: number): Uint8Array {
  return Uint8Array.from(
    { length: batch },
    (_, i) => classes ? i % classes : 0,
  );
}

/** Times one configuration; returns its JSON record. */
async function timeConfiguration(
  model: string,
  batch: number,
  options: {
    steps: number;
    warmup: number;
    maxSeconds: number;
    blas: string | null;
    /** On WebGPU: the step, and the settings of lib/backends/webgpu_fusions.ts in force. */
    webgpu: WebGpuSettings | null;
  },
) {
  const config = preset(model);
  config.batchSize = batch;
  const gan = createGan(config, { seed: 0 });
  const rng = new Rng(1);
  // One fixed "real" batch. The tfjs step uploads it every step, as
  // training does; the WGSL step, as in training, keeps the images (here
  // random bytes, one batch of them) on the GPU and gathers the batch.
  const bytes = new Uint8Array(batch * 784).map(() => rng.int(256));
  const range = config.output === "tanh" ? "[-1,1]" : "[0,1]";
  const real = toFloat(bytes, range);
  // D's real images a step: a batch, or half of one (keras-mlp).
  const half = realBatchSize(config);
  const rows = Uint32Array.from({ length: half }, (_, i) => i);
  using wgsl = options.webgpu?.step === "wgsl"
    ? await createTrainingStep(gan, {
      data: { images: bytes, range },
      matMul: options.webgpu!.matMul,
    })
    : null;
  // As training does with the WGSL step: worker threads compute the next
  // step's normal noise while a step is issued.
  using noise = wgsl && config.latent === "normal"
    ? NoiseWorkers.create()
    : null;
  const latent = () => latentLater(config, batch, rng, noise);
  let ahead = wgsl ? latent() : null;
  /** One step; returns what to read to wait for it. */
  const step = async (
    i: number,
  ): Promise<{ data(): Promise<unknown>; dispose(): void }> => {
    if (wgsl) {
      // As below: one noise batch for both players, D's masks from i and
      // G's from i + 1.
      const z = await ahead!;
      ahead = latent();
      wgsl.step({
        ...(wgsl.gathers ? { rows } : { real: real.subarray(0, half * 784) }),
        labels: config.classes ? benchLabels(batch, config.classes) : undefined,
        zD: z.subarray(0, half * config.latentDim),
        zG: z,
        dSeed: i,
        gSeed: i + 1,
      });
      return { data: () => wgsl.figures(), dispose: () => {} };
    }
    return tfjsRound(gan, real, rng, i);
  };
  for (let i = 0; i < options.warmup; i++) {
    const g = await step(i);
    await g.data();
    g.dispose();
  }
  const tensorsBefore = tf.memory().numTensors;
  const started = performance.now();
  let last: Awaited<ReturnType<typeof step>> | null = null;
  let steps = 0;
  let issuing = 0;
  while (steps < options.steps) {
    last?.dispose();
    const t = performance.now();
    last = await step(1000 + steps);
    issuing += performance.now() - t;
    steps++;
    const elapsed = (performance.now() - started) / 1000;
    if (steps >= 3 && elapsed > options.maxSeconds) break;
  }
  await last!.data(); // the one read-back: waits for all queued work
  const seconds = (performance.now() - started) / 1000;
  const memory = memorySnapshot(wgsl?.gpuBytes);
  last!.dispose();
  // One more, untimed step, counting what it issues on WebGPU.
  const calls = options.webgpu && await countGpuWork(async () => {
    const g = await step(9999);
    await g.data();
    g.dispose();
  });
  // The products' and convolutions' FLOPs of one more, untimed step (tfjs
  // step only: the WGSL step's programs are not tfjs kernels).
  let flops: number | null = null;
  if (!wgsl) {
    const profile = await tf.profile(async () => {
      const g = await step(9998);
      await g.data();
      g.dispose();
    });
    flops = productFlops(profile.kernels);
  }
  const record = {
    backend: tf.getBackend(),
    batch,
    model,
    images_per_s: Math.round((steps * batch) / seconds),
    ms_per_step: Number(((1000 * seconds) / steps).toFixed(2)),
    steps,
    gflop_per_step: flops === null ? null : Number((flops / 1e9).toFixed(3)),
    gflop_per_s: flops === null
      ? null
      : Number((flops / 1e9 * steps / seconds).toFixed(1)),
    blas: options.blas,
    ...(options.webgpu && calls && {
      step: options.webgpu.step,
      fused: wgsl ? null : options.webgpu.fused,
      matmul: wgsl ? options.webgpu.matMul : null,
      matmul_gflop_per_step: wgsl
        ? Number((wgsl.matMulFlopsPerStep / 1e9).toFixed(3))
        : null,
      uploads: wgsl ? null : options.webgpu.direct ? "direct" : "staged",
      issue_ms_per_step: Number((issuing / steps).toFixed(2)),
      passes_per_step: calls.passes,
      dispatches_per_step: calls.dispatches,
      uploads_per_step: calls.staged + calls.direct,
      staging_buffers_per_step: calls.staged,
    }),
    tensor_growth: tf.memory().numTensors - tensorsBefore,
    tensor_bytes: memory.tensorBytes,
    gpu_bytes: memory.gpuBytes,
    rss_bytes: memory.rssBytes,
    peak_rss_bytes: memory.peakRssBytes,
  };
  disposeGan(gan);
  return record;
}

/** What runs a step on WebGPU. */
interface WebGpuSettings {
  step: "tfjs" | "wgsl";
  /** Fused optimiser updates (tfjs step). */
  fused: boolean;
  /** Direct uploads (tfjs step). */
  direct: boolean;
  /** The matMul programs (WGSL step). */
  matMul: "auto" | "plain";
}

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    backend: { type: "string" },
    batch: { type: "string" },
    model: { type: "string" },
    blas: { type: "string" },
    step: { type: "string" },
    fused: { type: "string" },
    uploads: { type: "string" },
    matmul: { type: "string" },
    steps: { type: "string" },
    warmup: { type: "string" },
    "max-seconds": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const backends = list(
    "backend",
    values.backend ?? "auto",
    (s) => BACKEND_CHOICES.includes(s as BackendChoice),
  ) as BackendChoice[];
  const batches = list(
    "batch",
    values.batch ?? "128,512,2048",
    (s) => Number.isInteger(Number(s)) && Number(s) > 0,
  ).map(Number);
  const models = list(
    "model",
    values.model ?? "paper,mlp",
    (s) =>
      [
        "paper",
        "mlp",
        "bn",
        "cgan",
        "dcgan",
        "sngan",
        "sngan-fc",
        "keras-mlp",
      ].includes(s),
  );
  const blasModes = list(
    "blas",
    values.blas ?? "auto",
    (s) => ["auto", "off"].includes(s),
  );
  const stepModes = list(
    "step",
    values.step ?? "tfjs,wgsl",
    (s) => ["tfjs", "wgsl"].includes(s),
  );
  const fusedModes = list(
    "fused",
    values.fused ?? "on",
    (s) => ["on", "off"].includes(s),
  );
  const uploadModes = list(
    "uploads",
    values.uploads ?? "direct",
    (s) => ["direct", "staged"].includes(s),
  );
  const matMulModes = list(
    "matmul",
    values.matmul ?? "auto",
    (s) => ["auto", "plain"].includes(s),
  ) as ("auto" | "plain")[];
  const timing = {
    steps: intFlag("steps", values.steps) ?? 20,
    warmup: intFlag("warmup", values.warmup, 0) ?? 3,
    maxSeconds: intFlag("max-seconds", values["max-seconds"]) ?? 60,
  };
  for (const b of backends) {
    for (const blas of blasModes) {
      const info = await initBackend(b, { blas: blas !== "off" });
      console.error(`backend: ${info.name} (${info.reason})`);
      // --step, --fused and --uploads matter on WebGPU only, --blas on wasm
      // only; --fused and --uploads with the tfjs step only.
      if (info.name !== "webgpu" && !stepModes.includes("tfjs")) {
        console.error(
          `--step wgsl runs on WebGPU only: timing the tfjs step on ${info.name}`,
        );
      }
      const settings: (WebGpuSettings | null)[] = info.name === "webgpu"
        ? stepModes.flatMap((step): WebGpuSettings[] =>
          step === "wgsl"
            ? matMulModes.map((matMul) => ({
              step,
              fused: true,
              direct: true,
              matMul,
            }))
            : fusedModes.flatMap((f) =>
              uploadModes.map((u) => ({
                step: "tfjs" as const,
                fused: f === "on",
                direct: u === "direct",
                matMul: "auto" as const,
              }))
            )
        )
        : [null];
      for (const webgpu of settings) {
        setFusedUpdates(webgpu?.fused ?? true);
        setDirectUploads(webgpu?.direct ?? true);
        const options = { ...timing, blas: info.blas ?? null, webgpu };
        for (const model of models) {
          const why = webgpu?.step === "wgsl" && wgslStepSupport(preset(model));
          if (why) {
            console.error(`${model}: no WGSL step (${why})`);
            continue;
          }
          for (const batch of batches) {
            console.log(
              JSON.stringify(await timeConfiguration(model, batch, options)),
            );
          }
        }
      }
      setFusedUpdates(true);
      setDirectUploads(true);
      if (info.name !== "wasm") break;
    }
  }
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
