/**
 * `deno task average`: a generator whose weights are the mean of several
 * epochs' generators of one run (`lib/average.ts`).
 *
 * @module
 */

import { initBackend } from "../lib/backend.ts";
import {
  keptEpochs,
  keptGeneratorFolder,
  saveAveragedGenerator,
} from "../lib/average.ts";
import { exists } from "../lib/files.ts";
import { choiceFlag, parseFlags, runCli, UsageError } from "./args.ts";

const USAGE =
  `Usage: deno task average --run DIR --epochs LIST --out DIR [options]

Writes a generator whose weights are the mean of those of several epochs'
generators of one run (Polyak averaging; Yazıcı et al. 2019). The run must
have kept them: deno task train --keep-generators writes each epoch's
generator to DIR/generators/epoch_NNN/.

  --run DIR           the run folder
  --epochs LIST       the epochs to average: 10-15, or 10,12,14, or both
                      (10-12,14)
  --out DIR           where to write the averaged generator (model.json +
                      weights.bin, a TF.js layers model like generator/)
  --quantize uint8    store each weight of more than 4096 values in 8 bits
                      (a quarter of the size; tf.loadLayersModel reads it
                      back as float32); default: none, float32 throughout
  --help              this text

Then evaluate it like any generator: deno task eval --checkpoint DIR.
`;

/** "10-12,14" -> [10, 11, 12, 14]; a UsageError for anything else. */
export function parseEpochList(spec: string): number[] {
  const epochs: number[] = [];
  for (const part of spec.split(",")) {
    const m = part.trim().match(/^(\d+)(?:-(\d+))?$/);
    const from = m ? Number(m[1]) : NaN;
    const to = m?.[2] !== undefined ? Number(m[2]) : from;
    if (!m || from < 1 || to < from) {
      throw new UsageError(
        `--epochs must be epochs >= 1 as a list or ranges (10-15, 10,12,14), got "${spec}"`,
      );
    }
    for (let e = from; e <= to; e++) epochs.push(e);
  }
  const unique = [...new Set(epochs)].sort((a, b) => a - b);
  if (unique.length < 2) {
    throw new UsageError(
      `--epochs must name at least two epochs to average, got "${spec}"`,
    );
  }
  return unique;
}

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    run: { type: "string" },
    epochs: { type: "string" },
    out: { type: "string" },
    quantize: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  for (const flag of ["run", "epochs", "out"] as const) {
    if (values[flag] === undefined) {
      throw new UsageError(`--${flag} is required`);
    }
  }
  const run = values.run!.replace(/\/+$/, "");
  const epochs = parseEpochList(values.epochs!);
  const quantize = choiceFlag("quantize", values.quantize, ["uint8", "none"]);
  const out = values.out!;
  if (!exists(run)) throw new Error(`${run} does not exist`);
  const folder = (e: number) => `${run}/${keptGeneratorFolder(e)}`;
  const missing = epochs.filter((e) => !exists(`${folder(e)}/model.json`));
  if (missing.length > 0) {
    const kept = keptEpochs(run);
    throw new Error(
      `${run} has no generator of epoch ${missing.join(", ")} ` +
        `(${folder(missing[0])}/model.json); ` +
        (kept.length > 0
          ? `it keeps epochs ${kept.join(", ")}`
          : "it keeps none: train with --keep-generators to keep each epoch's"),
    );
  }
  if (exists(out) && !Deno.statSync(out).isDirectory) {
    throw new Error(`--out ${out} is a file; give a folder`);
  }
  await initBackend("cpu");
  const metadata = await saveAveragedGenerator(out, epochs.map(folder), {
    quantize: quantize === "uint8" ? "uint8" : undefined,
  });
  // What it wrote (the folder may hold other files).
  const bytes = ["model.json", "weights.bin"]
    .reduce((n, f) => n + Deno.statSync(`${out}/${f}`).size, 0);
  console.error(
    `${out}: the mean of ${metadata.preset}'s generators of epochs ` +
      `${epochs.join(", ")} (${(bytes / 1e6).toFixed(1)} MB` +
      `${quantize === "uint8" ? ", 8-bit weights" : ""}); evaluate it with ` +
      `deno task eval --checkpoint ${out}`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
