/**
 * The GPU check: is the WGSL step right on this GPU, and how fast is it?
 * Run by `bench/gpu_check.sh` from the bundle that `deno task gpu:prepare`
 * writes (a GPU machine has no registry); it also runs from source:
 * `deno run -A bench/gpu_check.ts --quick --out runs/gpu-check`.
 *
 * Parts, each bounded in time; a failed part does not stop the others:
 * 1. correctness: per MLP preset (and the conditional `mlp` and `paper`,
 *    `cgan`, `paper` with the hinge loss, `sngan` at batch 128 (and
 *    conditional, the projection form, under SGD), `dcgan`
 *    at 256 (under SGD), `keras-mlp` at 128 and `sngan-fc` at 64 on the
 *    layer-list step), 3 training steps of the
 *    WGSL step against the tfjs step from the same state
 *    (`lib/wgsl/check.ts`), and the matMul plans (wide tiles, split K)
 *    against the plain 64 x 64 tiles at batch 8192;
 * 1b. the convolution programs of the layer-list step
 *    (`bench/conv_kernels.ts`) against tfjs's kernels at `sngan`'s and
 *    `dcgan`'s shapes, batch 128: their largest difference, and the time
 *    and TFLOP/s of each;
 * 1c. the spectral-norm programs (`lib/wgsl/sn_weight.ts`) against
 *    `lib/nets/spectral_norm.ts` at the shapes of `sngan`'s D and
 *    `sngan-fc`'s dense layer, with their times;
 * 2. speed: the bench (`benchRuns` in `gpu_check_args.ts`: the MLPs at
 *    batches 128 and 8192, the convolutional presets at 128, 256 and 1024)
 *    and, where PyTorch with CUDA is installed, `bench/reference_torch.py
 *    --device cuda` at the same models and batches, with ratios;
 * 3. one epoch of `train --preset paper` with the WGSL step: its epoch line,
 *    its sample grid, and its figures against the CPU's from the same seed
 *    (recorded by `gpu:prepare`);
 * 4. one epoch of `train --preset sngan-fc --step auto` (the self-check
 *    first on a GPU): its lines, time end to end and sample grid.
 * Writes `gpu-check.json` and PNGs into `--out`, and a summary to stdout.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { createGan, disposeGan } from "../lib/gan.ts";
import { conditional, type GanConfig, preset } from "../lib/presets.ts";
import {
  compareWithPlainPlan,
  compareWithTfjs,
  type StepComparison,
} from "../lib/wgsl/check.ts";
import {
  benchRuns,
  CHECK_PARTS,
  convTrainArgs,
  torchRuns,
  trainArgs,
} from "./gpu_check_args.ts";
import { convKernels } from "./conv_kernels.ts";
import {
  compareSpectralNorm,
  compareSpectralNorms,
} from "../lib/wgsl/sn_weight.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    quick: { type: "boolean" },
    /** Comma-separated parts to run (a rerun of what failed); default all. */
    only: { type: "string" },
    /** The folder holding the bundles (bench.js, train.js); else source. */
    bundles: { type: "string" },
    /** The repository root (for bench/reference_torch.py). */
    root: { type: "string" },
    reference: { type: "string" },
  },
});
const quick = values.quick ?? false;
const only = values.only?.split(",") ?? CHECK_PARTS;
const unknown = only.filter((p) => !CHECK_PARTS.includes(p));
if (unknown.length > 0) {
  console.error(
    `--only: no part named ${unknown.join(", ")}; the parts: ${
      CHECK_PARTS.join(", ")
    }`,
  );
  Deno.exit(2);
}
const out = values.out ?? "runs/gpu-check";
const root = values.root ?? new URL("../", import.meta.url).pathname;
await Deno.mkdir(out, { recursive: true });

/** Everything the check found; written as gpu-check.json. */
const report: Record<string, unknown> = {
  quick,
  started: new Date().toISOString(),
};
const save = () =>
  Deno.writeTextFile(`${out}/gpu-check.json`, JSON.stringify(report, null, 1));

/** Runs one part with a time limit; records its result or its failure. */
async function part<T>(
  name: string,
  seconds: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T | null> {
  if (!only.includes(name)) {
    console.log(`== ${name}: not run (--only)`);
    return null;
  }
  const started = performance.now();
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`timed out after ${seconds} s`));
    }, seconds * 1000);
  });
  console.log(`== ${name}`);
  try {
    const result = await Promise.race([fn(controller.signal), timeout]);
    report[name] = {
      ok: true,
      seconds: (performance.now() - started) / 1000,
      result,
    };
    return result;
  } catch (e) {
    console.log(`   FAILED: ${(e as Error).message}`);
    // What a part saved as it went (the bench's lines) stays.
    const partial = (report[name] as { partial?: unknown } | undefined)
      ?.partial;
    report[name] = {
      ok: false,
      seconds: (performance.now() - started) / 1000,
      error: (e as Error).message,
      ...(partial ? { partial } : {}),
    };
    return null;
  } finally {
    clearTimeout(timer);
    await save();
  }
}

/** Runs a command with a time limit; its stdout and stderr as text. */
async function command(
  cmd: string,
  args: string[],
  signal: AbortSignal,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    signal,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: r.code,
    stdout: dec.decode(r.stdout),
    stderr: dec.decode(r.stderr),
  };
}

/** `deno run -A` of a CLI: its bundle when there are bundles, else its source. */
function cli(name: "bench" | "train"): [string, string[]] {
  const script = values.bundles
    ? `${values.bundles}/${name}.js`
    : `${root}cli/${name}.ts`;
  const flags = values.bundles
    ? ["run", "-A", "--no-config", "--node-modules-dir=manual"]
    : ["run", "-A"];
  return [Deno.execPath(), [...flags, script]];
}

// 0. The adapter.
const probe = await probeWebGpu();
report.adapter = probe;
console.log(
  probe.ok
    ? `adapter: ${probe.description}${
      probe.fallback ? " (a software adapter)" : ""
    }`
    : `no WebGPU adapter: ${probe.why}`,
);
await save();
if (!probe.ok) {
  console.log(
    "   VK_LOADER_DEBUG=error,driver bash bench/gpu_check.sh shows what the " +
      "Vulkan loader tried (a driver that fails to start names its library)",
  );
  Deno.exit(1);
}
await initBackend("webgpu");

// 1. Correctness.
function sized(name: string): GanConfig {
  const c = preset(name);
  if (quick) {
    // Small enough for a software adapter; the same kinds of layer.
    c.generator.hidden = [24, 40];
    c.discriminator.hidden = [48, 20];
    c.batchSize = 20;
  }
  return c;
}
/** `cgan`, its label units and hidden layers small with --quick. */
function sizedCgan(): GanConfig {
  const c = sized("cgan");
  if (quick) {
    c.generator.labelUnits = 12;
    c.discriminator.labelUnits = 6;
  }
  return c;
}
const line = (c: StepComparison) =>
  `${c.ok ? "ok" : "WRONG"}  largest difference ${
    c.maxDifference.toExponential(2)
  } (weights ${c.weights.toExponential(1)}, optimiser ${
    c.optimizer.toExponential(1)
  }, figures ${c.figures.toExponential(1)})${c.ok ? "" : ` at ${c.where}`}`;

await part("correctness", quick ? 240 : 90, async (signal) => {
  const results: Record<string, StepComparison> = {};
  const cases: [string, GanConfig][] = [
    ...["paper", "mlp", "bn", "pylearn2"].map((n): [string, GanConfig] => [
      n,
      sized(n),
    ]),
    // The class appended to both networks' inputs; the hinge game.
    ["mlp-cond", conditional(sized("mlp"))],
    ["paper-cond", conditional(sized("paper"))],
    ["paper-hinge", { ...sized("paper"), loss: "hinge" }],
    ["cgan", sizedCgan()],
    // The layer-list step (lib/wgsl/layer_step.ts) at sngan's own batch.
    ["sngan", { ...preset("sngan"), batchSize: quick ? 4 : 128 }],
    // The projection D and class-conditional batch norm (--conditional),
    // under SGD: a class's gamma, beta and embedding rows take their first
    // gradient in the round its class first appears, and Adam's first step
    // is lr times the gradient's sign, so a gradient within rounding of 0
    // there (seen at batch 4) moves by lr either way on each path.
    [
      "sngan-cond-sgd",
      conditional({ ...preset("sngan"), batchSize: quick ? 4 : 128 }),
    ],
    // dcgan under SGD: under Adam its leaky ReLUs' kinks part any two
    // implementations (docs/speed.md, "dcgan on the WGSL step").
    ["dcgan-sgd", { ...preset("dcgan"), batchSize: quick ? 4 : 256 }],
    // D on half a batch of real and half of generated images.
    ["keras-mlp", { ...preset("keras-mlp"), batchSize: quick ? 8 : 128 }],
    // The large spectrally normalised dense layer (6272 x 1024): its three
    // programs a pass; too slow for a software adapter's quick check.
    ...(quick ? [] : [["sngan-fc", preset("sngan-fc")] as [string, GanConfig]]),
  ];
  for (const [name, config] of cases) {
    // Timed out: no more GPU work in the background of the next parts.
    signal.throwIfAborted();
    const gan = createGan(config, { seed: 1 });
    const sgd = name.endsWith("-sgd");
    results[name] = await compareWithTfjs(gan, { steps: 3, epoch: 0, sgd });
    console.log(
      `   ${name.padEnd(11)} WGSL vs tfjs, 3 steps: ${line(results[name])}`,
    );
    disposeGan(gan);
  }
  // The matMul plans where they differ from the plain tiles.
  const big = sized("mlp");
  big.batchSize = quick ? 512 : 8192;
  const gan = createGan(big, { seed: 1 });
  const plans = await compareWithPlainPlan(gan, { steps: 3 });
  console.log(
    `   mlp b${big.batchSize} wide tiles + split K vs plain: ${line(plans)}`,
  );
  disposeGan(gan);
  results[`plans-b${big.batchSize}`] = plans;
  const wrong = Object.entries(results).filter(([, c]) => !c.ok);
  if (wrong.length > 0) {
    report.correct = false;
    throw new Error(
      `the WGSL step is WRONG on this GPU for ${
        wrong.map(([n]) => n).join(", ")
      }: fix it before anything else`,
    );
  }
  report.correct = true;
  return results;
});

// 1b. The convolution programs, one by one.
await part("conv", quick ? 120 : 90, async (signal) => {
  const rows = await convKernels({
    batch: quick ? 4 : 128,
    ms: quick ? 1 : 30,
    signal,
    log: (r) =>
      console.log(
        `   ${r.layer.padEnd(14)} ${r.form.padEnd(10)} WGSL ${r.wgsl_ms} ms ` +
          `(${r.wgsl_tflops} TFLOP/s), tfjs ${r.tfjs_ms} ms (${r.tfjs_tflops}), ` +
          `difference ${r.difference}`,
      ),
  });
  const wrong = rows.filter((r) => !(r.difference < 1e-4));
  if (wrong.length > 0) {
    throw new Error(
      `the WGSL convolution programs are WRONG on this GPU: ${
        wrong.map((r) => `${r.layer} ${r.form} ${r.difference}`).join(", ")
      }`,
    );
  }
  return rows;
});

// 1c. The spectral-norm programs, one by one and then all in one list:
// workgroups with barriers, which a software adapter could pass wrongly.
await part("spectral-norm", 60, async (signal) => {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    },
  });
  const shapes: [string, number[]][] = [
    ["sngan D1 4x4, 1 -> 64", [4, 4, 1, 64]],
    ["sngan D2 4x4, 64 -> 128", [4, 4, 64, 128]],
    ["sngan D3 6272 -> 1", [6272, 1]],
    ["sngan-fc D3 6272 -> 1024", quick ? [627, 102] : [6272, 1024]],
  ];
  const rows = [];
  try {
    for (const [i, [layer, shape]] of shapes.entries()) {
      signal.throwIfAborted();
      const c = await compareSpectralNorm(device, shape, {
        seed: i,
        reps: quick ? 2 : 50,
      });
      const worst = Math.max(c.u, c.v, c.sigma, c.wn, c.grad);
      console.log(
        `   ${layer.padEnd(25)} difference ${worst.toExponential(2)}, ` +
          `forward + backward ${c.ms?.toFixed(3)} ms`,
      );
      rows.push({ layer, shape, ...c, worst });
    }
    // All of them in one list, as the step's passes take them (the small
    // ones a workgroup each in one dispatch each way).
    signal.throwIfAborted();
    const together = await compareSpectralNorms(
      device,
      shapes.map(([, shape]) => shape),
      { seed: shapes.length, reps: quick ? 2 : 50 },
    );
    for (const [i, c] of together.entries()) {
      const layer = `${shapes[i][0]}, in a list`;
      const worst = Math.max(c.u, c.v, c.sigma, c.wn, c.grad);
      console.log(
        `   ${layer.padEnd(25)} difference ${worst.toExponential(2)}`,
      );
      rows.push({ layer, shape: shapes[i][1], ...c, worst });
    }
    console.log(
      `   the list, forward + backward ${together[0].ms?.toFixed(3)} ms`,
    );
  } finally {
    device.destroy();
  }
  const wrong = rows.filter((r) => !(r.worst < 1e-4));
  if (wrong.length > 0) {
    throw new Error(
      `the WGSL spectral-norm programs are WRONG on this GPU: ${
        wrong.map((r) => `${r.layer} ${r.worst}`).join(", ")
      }`,
    );
  }
  return rows;
});

// 2. Speed.
type BenchLine = {
  model: string;
  batch: number;
  step: string;
  images_per_s: number;
  ms_per_step: number;
  dispatches_per_step?: number;
  matmul_gflop_per_step?: number;
};
const runs = benchRuns(quick);
const bench = await part("bench", quick ? 240 : 150, async (signal) => {
  const [cmd, args] = cli("bench");
  const lines: BenchLine[] = [];
  for (const run of runs) {
    const r = await command(cmd, [
      ...args,
      "--backend",
      "webgpu",
      "--model",
      run.models.join(","),
      "--batch",
      run.batches.join(","),
      "--step",
      run.steps.join(","),
      "--steps",
      String(run.timed),
      "--warmup",
      String(run.warmup),
      "--max-seconds",
      String(run.maxSeconds),
    ], signal);
    if (r.code !== 0) {
      throw new Error(`bench exited ${r.code}: ${r.stderr.slice(-2000)}`);
    }
    for (const text of r.stdout.trim().split("\n")) {
      const l: BenchLine = JSON.parse(text);
      // The products' rate: their arithmetic over the whole step's time.
      const tflops = l.matmul_gflop_per_step
        ? `, products ${
          (l.matmul_gflop_per_step / l.ms_per_step).toPrecision(3)
        } TFLOP/s`
        : "";
      console.log(
        `   ${l.model} b${l.batch} ${l.step}: ${l.images_per_s} images/s ` +
          `(${l.ms_per_step} ms/step, ${l.dispatches_per_step} dispatches${tflops})`,
      );
      lines.push(l);
      report.bench = { ok: false, partial: lines };
      await save();
    }
  }
  return lines;
});

await part("torch", quick ? 90 : 100, async (signal) => {
  const probe = await command("python3", [
    "-c",
    "import torch; print(torch.__version__, torch.cuda.is_available())",
  ], signal).catch(() => null);
  if (!probe || probe.code !== 0 || !/True/.test(probe.stdout)) {
    console.log("   skipped: PyTorch with CUDA is not installed here");
    return { skipped: "PyTorch with CUDA is not installed here" };
  }
  if (!bench) {
    console.log(
      "   (the bench did not run in this call, so no ratios: run " +
        "--only bench,torch together)",
    );
  }
  const torch: { model: string; batch: number; images_per_s: number }[] = [];
  for (const call of torchRuns(runs)) {
    const r = await command("python3", [
      `${root}bench/reference_torch.py`,
      "--device",
      "cuda",
      "--model",
      call.models.join(","),
      "--batch",
      call.batches.join(","),
      "--steps",
      "50",
      "--max-seconds",
      quick ? "2" : "5",
    ], signal);
    if (r.code !== 0) {
      throw new Error(
        `reference_torch.py exited ${r.code}: ${r.stderr.slice(-2000)}`,
      );
    }
    torch.push(...r.stdout.trim().split("\n").map((l) => JSON.parse(l)));
  }
  const ratios = torch.map((t) => {
    const mine = (bench ?? []).filter((b) =>
      b.model === t.model && b.batch === t.batch
    );
    const of = (step: string) =>
      mine.find((b) => b.step === step)?.images_per_s;
    const ratio = (x?: number) =>
      x ? Number((x / t.images_per_s).toFixed(3)) : null;
    const row = {
      model: t.model,
      batch: t.batch,
      torch: t.images_per_s,
      wgsl: of("wgsl") ?? null,
      tfjs: of("tfjs") ?? null,
      wgsl_ratio: ratio(of("wgsl")),
      tfjs_ratio: ratio(of("tfjs")),
    };
    console.log(
      `   ${t.model} b${t.batch}: torch ${t.images_per_s}, WGSL ${row.wgsl} (${row.wgsl_ratio}x), tfjs ${row.tfjs} (${row.tfjs_ratio}x)`,
    );
    return row;
  });
  return { torch: probe.stdout.trim(), lines: torch, ratios };
});

// 3. One epoch of the paper preset, against the CPU's.
await part("train", quick ? 240 : 120, async (signal) => {
  const ref = values.reference
    ? JSON.parse(await Deno.readTextFile(values.reference))
    : null;
  const runDir = `${out}/train-paper`;
  await Deno.remove(runDir, { recursive: true }).catch(() => {});
  const [cmd, args] = cli("train");
  const r = await command(cmd, [
    ...args,
    ...(ref?.args ?? trainArgs(quick)),
    "--backend",
    "webgpu",
    "--step",
    "wgsl",
    "--out",
    runDir,
  ], signal);
  const epochLine = r.stderr.split(/[\r\n]/).filter((l) =>
    /^epoch 1\/1 +D /.test(l)
  ).pop();
  console.log(`   ${epochLine ?? "(no epoch line)"}`);
  if (r.code !== 0) {
    throw new Error(`train exited ${r.code}: ${r.stderr.slice(-2000)}`);
  }
  await Deno.copyFile(
    `${runDir}/samples/epoch_001.png`,
    `${out}/paper-epoch1-webgpu.png`,
  );
  const history = JSON.parse(await Deno.readTextFile(`${runDir}/history.json`));
  const got = history[0];
  const keys = ["dLoss", "gLoss", "value", "dReal", "dFake", "dAccuracy"];
  const differences = ref
    ? Object.fromEntries(
      keys.map((k) => [k, Math.abs(got[k] - ref.figures[k])]),
    )
    : null;
  if (differences) {
    console.log(
      "   against the CPU (wasm, same seed): " +
        keys.map((k) =>
          `${k} ${got[k].toFixed(4)} vs ${ref.figures[k].toFixed(4)}`
        ).join(", "),
    );
  }
  return {
    args: ref?.args,
    epochLine,
    webgpu: Object.fromEntries(keys.map((k) => [k, got[k]])),
    cpu: ref?.figures ?? null,
    differences,
    imagesPerSecond: got.imagesPerSecond,
    grid: "paper-epoch1-webgpu.png",
  };
});

// 4. One epoch of sngan-fc, the preset of models/mnist-sngan-fc, with
// --step auto: on a GPU the self-check against the tfjs step comes first.
await part("train-sngan-fc", quick ? 240 : 120, async (signal) => {
  const runDir = `${out}/train-sngan-fc`;
  await Deno.remove(runDir, { recursive: true }).catch(() => {});
  const [cmd, args] = cli("train");
  const trainFlags = [
    ...convTrainArgs(quick),
    "--backend",
    "webgpu",
    "--step",
    "auto",
    "--out",
    runDir,
  ];
  const started = performance.now();
  const r = await command(cmd, [...args, ...trainFlags], signal);
  const seconds = (performance.now() - started) / 1000;
  const lines = r.stderr.split(/[\r\n]/);
  const epochLine = lines.filter((l) => /^epoch 1\/1 +D /.test(l)).pop();
  const selfCheck = lines.filter((l) => /^self-check:/.test(l));
  const stepLine = lines.find((l) => /^training step: /.test(l));
  for (const l of [...selfCheck, stepLine, epochLine]) {
    if (l) console.log(`   ${l}`);
  }
  if (r.code !== 0) {
    throw new Error(`train exited ${r.code}: ${r.stderr.slice(-2000)}`);
  }
  await Deno.copyFile(
    `${runDir}/samples/epoch_001.png`,
    `${out}/sngan-fc-epoch1-webgpu.png`,
  );
  const got = JSON.parse(await Deno.readTextFile(`${runDir}/history.json`))[0];
  console.log(`   ${seconds.toFixed(1)} s end to end`);
  return {
    args: trainFlags,
    selfCheck,
    step: stepLine ?? null,
    epochLine,
    seconds,
    figures: {
      dLoss: got.dLoss,
      gLoss: got.gLoss,
      dReal: got.dReal,
      dFake: got.dFake,
    },
    imagesPerSecond: got.imagesPerSecond,
    grid: "sngan-fc-epoch1-webgpu.png",
  };
});

report.finished = new Date().toISOString();
await save();
const failed = only.filter((p) =>
  !(report[p] as { ok: boolean } | undefined)?.ok
);
console.log(
  `== ${
    report.correct === false
      ? "THE WGSL STEP IS WRONG ON THIS GPU"
      : report.correct
      ? "the WGSL step is correct here"
      : "correctness unknown"
  }; ` +
    `${
      failed.length ? `failed parts: ${failed.join(", ")}` : "every part ran"
    }; ` +
    `results in ${out}/gpu-check.json`,
);
Deno.exit(report.correct === false ? 3 : failed.length > 0 ? 1 : 0);
