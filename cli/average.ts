/**
 * `deno task average`: a generator whose weights are the mean of several
 * epochs' generators of one run (`lib/run/average.ts`).
 *
 * @module
 */

import { initBackend } from "../lib/backends/choice.ts";
import {
  checkAverageOut,
  keptEpochs,
  keptGeneratorFolder,
  saveAveragedGenerator,
} from "../lib/run/average.ts";
import { epochRanges } from "../lib/run/checkpoint.ts";
import { exists } from "../lib/io/files.ts";
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
                      weights-HASH.bin, a TF.js layers model like
                      generator/): a new or empty folder outside the run
  --overwrite         replace the generator --out holds (a models/ folder,
                      an earlier average): its weights, eval.json and
                      progress.gif go, other files stay
  --quantize uint8    store each weight of more than 4096 values in 8 bits
                      (a quarter of the size; tf.loadLayersModel reads it
                      back as float32); default: none, float32 throughout
  --help              this text

Then evaluate it like any generator: deno task eval --checkpoint DIR.
`;

/** The most epochs one average takes (and the highest epoch named). */
const MAX_EPOCHS = 10000;

/** "10-12,14" -> [10, 11, 12, 14]; a UsageError for anything else. */
export function parseEpochList(spec: string): number[] {
  const epochs: number[] = [];
  const shown = spec.length > 60 ? `${spec.slice(0, 60)}...` : spec;
  for (const part of spec.split(",")) {
    const m = part.trim().match(/^(\d+)(?:-(\d+))?$/);
    const from = m ? Number(m[1]) : NaN;
    const to = m?.[2] !== undefined ? Number(m[2]) : from;
    if (!m || from < 1 || to < from) {
      throw new UsageError(
        `--epochs must be epochs >= 1 as a list or ranges (10-15, 10,12,14), got "${shown}"`,
      );
    }
    // Before any list is made: "1-20000000" is a typo, not 20 million epochs.
    if (to > MAX_EPOCHS || epochs.length + (to - from + 1) > MAX_EPOCHS) {
      throw new UsageError(
        `--epochs names epochs up to ${MAX_EPOCHS} at most, got "${shown}"`,
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
    overwrite: { type: "boolean" },
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
  if (out.trim() === "") {
    throw new UsageError(
      `--out is empty; name a new folder, e.g. --out ${run}-avg`,
    );
  }
  if (!exists(run)) throw new Error(`${run} does not exist`);
  const folder = (e: number) => `${run}/${keptGeneratorFolder(e)}`;
  const missing = epochs.filter((e) => !exists(`${folder(e)}/model.json`));
  if (missing.length > 0) {
    const kept = keptEpochs(run);
    throw new Error(
      `${run} has no generator of epoch ${epochRanges(missing)} ` +
        `(${folder(missing[0])}/model.json); ` +
        (kept.length > 0
          ? `it keeps epochs ${kept.join(", ")}`
          : "it keeps none: train with --keep-generators to keep each epoch's"),
    );
  }
  const target = checkAverageOut(out, run, values.overwrite ?? false);
  await initBackend("cpu");
  const { metadata, files } = await saveAveragedGenerator(
    target,
    epochs.map(folder),
    { quantize: quantize === "uint8" ? "uint8" : undefined, epochs },
  );
  // What it wrote (the folder may hold other files).
  const bytes = files.reduce(
    (n, f) => n + Deno.statSync(`${out}/${f}`).size,
    0,
  );
  const gone = target.replaced.filter((f) => !files.includes(f));
  console.error(
    `${out}: the mean of ${metadata.preset}'s generators of epochs ` +
      `${epochRanges(epochs)} (${(bytes / 1e6).toFixed(1)} MB` +
      `${quantize === "uint8" ? ", 8-bit weights" : ""})` +
      (gone.length > 0
        ? `, replacing the generator there (removed ${
          gone.join(", ")
        }, of the old one)`
        : "") +
      `; evaluate it with deno task eval --checkpoint ${out}`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
