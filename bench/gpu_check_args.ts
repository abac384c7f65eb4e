/**
 * What the GPU check runs, shared by `gpu_check.ts` (which runs it on
 * WebGPU), `gpu_prepare.ts` (which records the CPU's figures for the same
 * training arguments) and the test of the check.
 *
 * @module
 */

/** The check's parts, in the order they run (`--only` names some). */
export const CHECK_PARTS: readonly string[] = [
  "correctness",
  "conv",
  "spectral-norm",
  "bench",
  "torch",
  "train",
  "train-sngan-fc",
];

/** One epoch of `paper` from seed 0; of 500 images for a quick check. */
export function trainArgs(quick: boolean): string[] {
  const args = ["--preset", "paper", "--epochs", "1", "--seed", "0"];
  return quick ? [...args, "--limit", "500", "--holdout", "0"] : args;
}

/**
 * One epoch of `sngan-fc` on MNIST from seed 0 (the preset of
 * models/mnist-sngan-fc); of 128 images for a quick check.
 */
export function convTrainArgs(quick: boolean): string[] {
  const args = ["--preset", "sngan-fc", "--epochs", "1", "--seed", "0"];
  return quick ? [...args, "--limit", "128", "--holdout", "0"] : args;
}

/** One call of `deno task bench` in the check's speed part. */
export interface BenchRun {
  /** Presets, as `--model` takes them. */
  models: string[];
  batches: number[];
  steps: ("wgsl" | "tfjs")[];
  /** Timed steps at most, untimed steps first, seconds at most. */
  timed: number;
  warmup: number;
  maxSeconds: number;
}

/**
 * The check's bench runs: the MLPs at batches 128 and 8192, `keras-mlp`
 * at 128, the convolutional presets' WGSL step at 128, 256 and 1024, and their tfjs
 * step at 128 and 256 (the batches docs/speed.md has figures for), with
 * PyTorch CUDA at the same models and batches. With `quick`, `mlp` and
 * `sngan` at tiny batches (what a software adapter can run in the test).
 */
export function benchRuns(quick: boolean): BenchRun[] {
  if (quick) {
    const small = { timed: 2, warmup: 1, maxSeconds: 5 };
    return [
      { models: ["mlp"], batches: [16], steps: ["wgsl", "tfjs"], ...small },
      { models: ["sngan"], batches: [4], steps: ["wgsl", "tfjs"], ...small },
    ];
  }
  const conv = ["dcgan", "sngan", "sngan-fc"];
  // A tfjs conv step takes up to a second at these batches on a GPU.
  const short = { timed: 20, warmup: 2, maxSeconds: 4 };
  return [
    {
      models: ["mlp", "paper"],
      batches: [128, 8192],
      steps: ["wgsl", "tfjs"],
      timed: 20,
      warmup: 3,
      maxSeconds: 8,
    },
    // The Keras recipe's MLPs (D on half batches), at the recipe's batch.
    {
      models: ["keras-mlp"],
      batches: [128],
      steps: ["wgsl", "tfjs"],
      timed: 20,
      warmup: 3,
      maxSeconds: 8,
    },
    { models: conv, batches: [128, 256, 1024], steps: ["wgsl"], ...short },
    { models: conv, batches: [128, 256], steps: ["tfjs"], ...short },
  ];
}

/**
 * The PyTorch calls for `runs`: models with the same batches in one call,
 * each at every batch any run times it at.
 */
export function torchRuns(
  runs: BenchRun[],
): { models: string[]; batches: number[] }[] {
  const of = new Map<string, Set<number>>();
  for (const r of runs) {
    for (const m of r.models) {
      const set = of.get(m) ?? new Set<number>();
      for (const b of r.batches) set.add(b);
      of.set(m, set);
    }
  }
  const calls = new Map<string, { models: string[]; batches: number[] }>();
  for (const [m, set] of of) {
    const batches = [...set].sort((a, b) => a - b);
    const key = batches.join(",");
    const call = calls.get(key) ?? { models: [], batches };
    call.models.push(m);
    calls.set(key, call);
  }
  return [...calls.values()];
}
