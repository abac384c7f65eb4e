/**
 * `deno task train`: trains a GAN headless and writes a run folder.
 *
 * @module
 */

import {
  BACKEND_CHOICES,
  type BackendChoice,
  initBackend,
} from "../lib/backends/choice.ts";
import {
  CLASS_NAMES,
  DATASET_NAMES,
  type DatasetName,
  loadDataset,
} from "../lib/data.ts";
import {
  conditional,
  CONDITIONINGS,
  DEFAULT_CONDITIONAL_PRESET,
  DEFAULT_EPOCHS,
  DEFAULT_PRESET,
  type GanConfig,
  LOSS_KINDS,
  preset,
  PRESET_NAMES,
  UPDATE_KINDS,
} from "../lib/presets.ts";
import { validateConfig } from "../lib/config_check.ts";
import { conditioningForm } from "../lib/run/generator_metadata.ts";
import { hasCheckpoint, readCheckpointFile } from "../lib/run/checkpoint.ts";
import { checkRunFolderPath } from "../lib/io/files.ts";
import { type Progress, train } from "../lib/train.ts";
import { type EpochStats, type TrainState } from "../lib/run/record.ts";
import { STEP_CHOICES } from "../lib/rounds.ts";
import {
  choiceFlag,
  intFlag,
  numberFlag,
  parseFlags,
  runCli,
  UsageError,
} from "./args.ts";

/** G's updates before --ema's average starts, unless --ema-start says. */
const DEFAULT_EMA_START = 1000;

/** Largest --latent-dim: G's first layer has latentDim x its width weights. */
const MAX_LATENT_DIM = 4096;

const USAGE = `Usage: deno task train [options]

Trains a GAN (Goodfellow et al. 2014) and writes samples, curves and a
checkpoint into a run folder.

Options:
  --dataset mnist|fashion    dataset (default mnist)
  --preset NAME              ${PRESET_NAMES.join(" | ")} (default: ${
  Object.entries(DEFAULT_PRESET).map(([d, p]) => `${p} for ${d}`).join(", ")
})
  --conditional              give G and D the class (Mirza and Osindero
                             2014): samples can then be asked for by class
                             (deno task sample --class N); MLP and
                             convolutional presets (cgan is conditional
                             already; default: ${
  Object.entries(DEFAULT_CONDITIONAL_PRESET).map(([d, p]) => `${p} for ${d}`)
    .join(", ")
})
  --conditioning FORM        how a conditional convolutional GAN is told the
                             class: projection (a projection D and class-
                             conditional batch norm in G, the default) or
                             channels (the class as planes beside D's image)
  --epochs N                 total epochs (on --resume: the run's own; default per preset: ${
  Object.entries(DEFAULT_EPOCHS).map(([p, e]) => `${p} ${e}`).join(", ")
})
  --batch-size N             mini-batch size (default per preset)
  --latent-dim N             size of the noise z (default per preset: 100,
                             keras-mlp 32; at most ${MAX_LATENT_DIM})
  --lr X                     learning rate of both players
  --beta1 X                  Adam's beta1 (Adam presets)
  --beta2 X                  Adam's beta2 (Adam presets)
  --k N                      discriminator steps per generator step (Algorithm 1)
  --g-steps N                generator steps per round (default 1)
  --update alternating|simultaneous|reuse
                             D then G on fresh noise (Algorithm 1); both from
                             one batch as the authors' code did; or G's step
                             on the batch D's step generated, as PyTorch's
                             dcgan example (default: alternating; pylearn2:
                             simultaneous; the last two need k 1, one G step)
  --loss non-saturating|saturating|hinge|least-squares|wgan-gp
                             G's loss, or hinge, least squares or the
                             Wasserstein critic with a gradient penalty (k 5
                             unless --k says; a D without batch norm) for
                             both players (default non-saturating)
  --label-smoothing X        target for real images in D's loss (default 1: none)
  --ema DECAY                keep a moving average of G's weights, in (0, 1)
                             (0.999 is usual): samples/ and generator/ come
                             from it, G as trained is kept in generator-raw/
  --ema-start N              G's updates before the average starts; until
                             then it is a copy of G (default ${DEFAULT_EMA_START})
  --seed N                   seed of weights, noise, dropout and batch order (default 0)
  --backend auto|webgpu|wasm|cpu   where to run (default auto)
  --blas auto|off            on wasm, matMul in a system BLAS such as OpenBLAS
                             when one loads (auto, ~3x faster) or in
                             tfjs-wasm's own kernel (off)
  --step auto|tfjs|wgsl      on WebGPU, the whole training step as WGSL
                             programs (wgsl: the MLP presets) or as
                             tfjs ops (tfjs); auto (default): wgsl where it
                             can run, on a GPU after a one-step self-check
                             against tfjs (tfjs if they differ)
  --out DIR                  run folder (default runs/<dataset>-<preset>)
  --resume                   continue the checkpoint in --out with its
                             dataset, configuration and seed (flags that
                             would change them are refused; --epochs,
                             --backend, --blas, --step and --keep-generators
                             apply)
  --limit N                  train on the first N images only (quick runs)
  --holdout N                training images kept out for validation (default 10000)
  --keep-generators          also keep each epoch's generator in
                             generators/epoch_NNN/, for deno task average
                             (a generator's size an epoch: 27 MB for sngan-fc;
                             with --ema, G as trained)
  --help                     this text

Outputs in the run folder: samples/epoch_NNN.png, loss.png, progress.png,
progress.gif (training as an animation), history.json, checkpoint.json +
checkpoint-NNN.bin, generator/ (TF.js layers model; with --ema the average,
and G as trained in generator-raw/). Ctrl-C stops after the
current step; --resume continues from the last completed epoch. One training
at a time per run folder (train.lock).
`;

/** Flags that set the run's configuration, which --resume takes from the checkpoint. */
const CONFIG_FLAGS = [
  "preset",
  "conditional",
  "conditioning",
  "batch-size",
  "latent-dim",
  "lr",
  "beta1",
  "beta2",
  "k",
  "g-steps",
  "update",
  "loss",
  "label-smoothing",
  "ema",
  "ema-start",
  "seed",
  "limit",
  "holdout",
] as const;

function parse(args: string[]) {
  const { values } = parseFlags(args, {
    dataset: { type: "string" },
    preset: { type: "string" },
    conditional: { type: "boolean" },
    conditioning: { type: "string" },
    epochs: { type: "string" },
    "batch-size": { type: "string" },
    "latent-dim": { type: "string" },
    lr: { type: "string" },
    beta1: { type: "string" },
    beta2: { type: "string" },
    k: { type: "string" },
    "g-steps": { type: "string" },
    update: { type: "string" },
    loss: { type: "string" },
    "label-smoothing": { type: "string" },
    ema: { type: "string" },
    "ema-start": { type: "string" },
    seed: { type: "string" },
    backend: { type: "string" },
    blas: { type: "string" },
    step: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean" },
    limit: { type: "string" },
    holdout: { type: "string" },
    "keep-generators": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.resume) {
    const given = CONFIG_FLAGS.filter((f) => values[f] !== undefined);
    if (given.length > 0) {
      throw new UsageError(
        `--resume continues the run with its own configuration, so ` +
          `${given.map((f) => `--${f}`).join(", ")} cannot be given with it ` +
          "(only --epochs, --backend, --blas, --step and --keep-generators apply); to train with " +
          "other settings, start a new run in another --out",
      );
    }
  }
  const dataset = choiceFlag("dataset", values.dataset, DATASET_NAMES) ??
    "mnist";
  const presetName = choiceFlag("preset", values.preset, PRESET_NAMES) ??
    (values.conditional ? DEFAULT_CONDITIONAL_PRESET : DEFAULT_PRESET)[dataset];
  let config: GanConfig = preset(presetName);
  const form = choiceFlag("conditioning", values.conditioning, CONDITIONINGS);
  if (form && !values.conditional) {
    throw new UsageError(
      "--conditioning says how a conditional GAN is told the class: add " +
        "--conditional",
    );
  }
  if (form && !config.generator.layers) {
    throw new UsageError(
      `--conditioning is for the convolutional presets; ${presetName} is an ` +
        "MLP, which takes the class appended to each network's input",
    );
  }
  if (values.conditional) {
    try {
      config = conditional(
        config,
        CLASS_NAMES[dataset as DatasetName].length,
        form ?? "projection",
      );
      validateConfig(config);
    } catch (e) {
      throw new UsageError(`--conditional: ${(e as Error).message}`);
    }
  }
  const named = `${presetName}${
    values.conditional && presetName !== "cgan" ? "-conditional" : ""
  }${form === "channels" ? "-channels" : ""}`;
  const batch = intFlag("batch-size", values["batch-size"]);
  if (batch) config.batchSize = batch;
  const latentDim = intFlag("latent-dim", values["latent-dim"]);
  if (latentDim !== undefined && latentDim > MAX_LATENT_DIM) {
    throw new UsageError(
      `--latent-dim must be at most ${MAX_LATENT_DIM}, got ${latentDim}`,
    );
  }
  // G's first layer takes latentDim inputs (and a conditional G's class
  // after them), whatever the preset's networks.
  if (latentDim) config.latentDim = latentDim;
  const lr = numberFlag("lr", values.lr, (x) => x > 0, "a number > 0");
  if (lr) config.optimizerG.lr = config.optimizerD.lr = lr;
  for (const beta of ["beta1", "beta2"] as const) {
    const value = numberFlag(
      beta,
      values[beta],
      (x) => x >= 0 && x < 1,
      "in [0, 1)",
    );
    if (value === undefined) continue;
    for (const o of [config.optimizerG, config.optimizerD]) {
      if (o.kind !== "adam") {
        throw new UsageError(
          `--${beta} applies to Adam; preset ${presetName} uses SGD`,
        );
      }
      o[beta] = value;
    }
  }
  config.k = intFlag("k", values.k) ?? config.k;
  config.gSteps = intFlag("g-steps", values["g-steps"]) ?? config.gSteps;
  config.update = choiceFlag("update", values.update, UPDATE_KINDS) ??
    config.update;
  config.loss = choiceFlag("loss", values.loss, LOSS_KINDS) ?? config.loss;
  // The critic's five steps per G step (Gulrajani et al.'s n_critic);
  // --update reuse takes one D step a round by its nature.
  if (
    config.loss === "wgan-gp" && values.k === undefined &&
    config.update !== "reuse"
  ) config.k = 5;
  config.realLabel = numberFlag(
    "label-smoothing",
    values["label-smoothing"],
    (x) => x > 0 && x <= 1,
    "in (0, 1]",
  ) ?? config.realLabel;
  const decay = numberFlag(
    "ema",
    values.ema,
    (x) => x > 0 && x < 1,
    "in (0, 1): the weight of the average so far at each update, 0.999 usually",
  );
  const start = intFlag("ema-start", values["ema-start"], 0);
  if (start !== undefined && decay === undefined) {
    throw new UsageError(
      "--ema-start sets when the moving average of --ema starts: give " +
        "--ema DECAY too (for example --ema 0.999)",
    );
  }
  if (decay !== undefined) {
    config.ema = { decay, start: start ?? DEFAULT_EMA_START };
  }
  if (!values.resume) {
    // Settings that cannot train together, said before any data loads.
    try {
      validateConfig(config);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const seed = intFlag("seed", values.seed, 0) ?? 0;
  return {
    help: values.help ?? false,
    dataset: dataset as DatasetName,
    datasetGiven: values.dataset !== undefined,
    config,
    epochsGiven: intFlag("epochs", values.epochs),
    epochs: intFlag("epochs", values.epochs) ?? DEFAULT_EPOCHS[presetName] ??
      100,
    seed,
    backend: choiceFlag("backend", values.backend, BACKEND_CHOICES) ??
      "auto" as BackendChoice,
    blas: (choiceFlag("blas", values.blas, ["auto", "off"]) ?? "auto") !==
      "off",
    step: choiceFlag("step", values.step, STEP_CHOICES) ?? "auto",
    out: values.out ?? `runs/${dataset}-${named}`,
    resume: values.resume ?? false,
    limit: intFlag("limit", values.limit),
    holdout: intFlag("holdout", values.holdout, 0),
    keepGenerators: values["keep-generators"] ?? false,
  };
}

function formatProgress(p: Progress, tty: boolean): string {
  const width = 24;
  const filled = Math.round((p.step / p.steps) * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const eta = (p.seconds / p.step) * (p.steps - p.step);
  const text = `epoch ${p.epoch}/${p.epochs} [${bar}] ${p.step}/${p.steps}` +
    `  D ${p.dLoss.toFixed(3)}  G ${p.gLoss.toFixed(3)}` +
    `  D(x) ${p.dReal.toFixed(2)}  D(G(z)) ${p.dFake.toFixed(2)}` +
    `  ${Math.round(p.imagesPerSecond)} img/s  ${Math.round(eta)}s left`;
  return tty ? `\r${text}\x1b[K` : text + "\n";
}

const MIB = 1024 * 1024;

/** " RSS 465 MiB (peak 650)", plus GPU buffers on WebGPU. */
function memoryText(s: EpochStats): string {
  if (s.rssBytes === undefined) return "";
  const peak = s.peakRssBytes
    ? ` (peak ${Math.round(s.peakRssBytes / MIB)})`
    : "";
  const gpu = s.gpuBytes ? `  GPU ${Math.round(s.gpuBytes / MIB)} MiB` : "";
  return `  RSS ${Math.round(s.rssBytes / MIB)} MiB${peak}${gpu}`;
}

/** The parent process id now (Linux), or null where the OS does not say. */
function currentParent(): number | null {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

/**
 * Calls `onGone` once if this process was started by `deno task` and that
 * process ends; returns the interval to clear. Does nothing elsewhere (a
 * trainer started by a shell keeps running after the shell, as with nohup).
 */
function watchParent(onGone: () => void): number | undefined {
  const parent = currentParent();
  if (parent === null) return undefined;
  let args: string[];
  try {
    args = Deno.readTextFileSync(`/proc/${parent}/cmdline`).split("\0");
  } catch {
    return undefined;
  }
  if (!/deno$/.test(args[0] ?? "") || args[1] !== "task") return undefined;
  const id = Number(setInterval(() => {
    if (currentParent() !== parent) {
      clearInterval(id);
      onGone();
    }
  }, 1000));
  Deno.unrefTimer(id);
  return id;
}

async function main(): Promise<number> {
  const opts = parse(Deno.args);
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  checkRunFolderPath(opts.out);
  if (opts.resume && hasCheckpoint(opts.out)) {
    // A resumed run continues on its own dataset, up to its own number of
    // epochs, unless told otherwise.
    const { state } = await readCheckpointFile<TrainState>(opts.out);
    if (!opts.datasetGiven) opts.dataset = state.dataset as DatasetName;
    if (opts.epochsGiven === undefined && state.epochs !== undefined) {
      opts.epochs = state.epochs;
    }
  }
  const backend = await initBackend(opts.backend, { blas: opts.blas });
  console.error(`backend: ${backend.name} (${backend.reason})`);
  const dataset = await loadDataset(opts.dataset);
  console.error(`data: ${dataset.name} from ${dataset.source}`);
  const c = opts.config;
  if (!opts.resume) {
    const form = conditioningForm(c);
    // On --resume the checkpoint's configuration and seed apply; train() says so.
    console.error(
      `preset: ${c.preset}${
        c.classes
          ? `, conditional on ${c.classes} classes${
            form ? `, conditioning ${form}` : ""
          }`
          : ""
      } (${c.source}); latent ${c.latentDim}, batch ${c.batchSize}, ` +
        `k ${c.k}, ` +
        `${c.update ?? "alternating"} updates, ` +
        `${
          c.loss !== "non-saturating" && c.loss !== "saturating"
            ? `${c.loss} loss`
            : `${c.loss} G loss`
        }, ${
          c.realLabel === 1
            ? "no label smoothing"
            : `label smoothing ${c.realLabel}`
        }${
          c.ema
            ? `, moving average of G's weights (decay ${c.ema.decay}, from update ${
              c.ema.start + 1
            })`
            : ""
        }, ${opts.epochs} epochs, seed ${opts.seed} -> ${opts.out}`,
    );
  }

  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) Deno.exit(130);
    console.error("\nstopping after this step (Ctrl-C again to quit at once)");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  // Under `deno task train`, this process is the task's child: if the task
  // is killed (kill -9 leaves its children running), stop too, cleanly,
  // rather than train on unseen in the background.
  const watch = watchParent(() => {
    console.error(
      "\nthe `deno task` process that started this training has ended; " +
        "stopping after this step",
    );
    controller.abort();
  });
  const tty = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let lastLine = 0;
  const result = await train({
    config: c,
    dataset,
    epochs: opts.epochs,
    seed: opts.seed,
    outDir: opts.out,
    resume: opts.resume,
    limit: opts.limit,
    holdout: opts.holdout,
    keepGenerators: opts.keepGenerators,
    step: opts.step,
    backend: backend.blas ? `${backend.name}+${backend.blas}` : backend.name,
    signal: controller.signal,
    onProgress: (p) => {
      // On a terminal the bar redraws in place; in a log, a line every ~25%.
      const quarter = Math.floor((4 * p.step) / p.steps);
      if (tty || quarter > lastLine) {
        lastLine = quarter;
        Deno.stderr.writeSync(encoder.encode(formatProgress(p, tty)));
      }
    },
    onEpoch: (s) => {
      lastLine = 0;
      const line = `epoch ${s.epoch}/${opts.epochs}  D ${s.dLoss.toFixed(3)}` +
        `  G ${s.gLoss.toFixed(3)}  V ${s.value.toFixed(3)}` +
        `  D(x) ${s.dReal.toFixed(3)}  D(G(z)) ${s.dFake.toFixed(3)}` +
        `  D acc ${(100 * s.dAccuracy).toFixed(1)}%` +
        `  ${s.seconds.toFixed(1)}s  ${Math.round(s.imagesPerSecond)} img/s` +
        memoryText(s);
      Deno.stderr.writeSync(
        encoder.encode((tty ? "\r\x1b[K" : "") + line + "\n"),
      );
    },
  });
  Deno.removeSignalListener("SIGINT", onSigint);
  clearInterval(watch);
  if (result.status === "completed") {
    console.error(
      `done: ${opts.out}/samples/epoch_${
        String(result.history.length).padStart(3, "0")
      }.png, ${opts.out}/loss.png; sample more with ` +
        `deno task sample --checkpoint ${opts.out} --n 100 --out samples.png`,
    );
    return 0;
  }
  console.error(
    `${result.status}: ${result.message}` +
      (result.status === "interrupted" && hasCheckpoint(opts.out)
        ? `\ncontinue with: deno task train --out ${opts.out} --resume${
          // The one flag that changes what the resumed run writes and that
          // the checkpoint does not carry over (its epochs it does).
          opts.keepGenerators ? " --keep-generators" : ""}`
        : ""),
  );
  return result.status === "interrupted" ? 130 : 3;
}

if (import.meta.main) await runCli(USAGE, main);
