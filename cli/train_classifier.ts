/**
 * `deno task classifier`: trains the evaluation classifier of a dataset and
 * saves it in `models/classifier/<dataset>/`.
 *
 * @module
 */

import { BACKEND_CHOICES, initBackend } from "../lib/backends/choice.ts";
import { saveClassifier, trainClassifier } from "../lib/eval/classifier.ts";
import { DATASET_NAMES, loadDataset } from "../lib/data.ts";
import { choiceFlag, intFlag, parseFlags, runCli, UsageError } from "./args.ts";

const USAGE = `Usage: deno task classifier --dataset mnist|fashion [options]

Trains the small CNN whose features and class probabilities the evaluation
(FID, Inception Score, class coverage) uses, and saves it as a TF.js layers
model.

  --dataset mnist|fashion   dataset (required)
  --epochs N                epochs (default 3)
  --seed N                  seed of the initial weights and batch order (default 0)
  --out DIR                 where to save (default models/classifier/<dataset>)
  --backend B               auto | webgpu | wasm | cpu (default auto)
  --help                    this text
`;

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    dataset: { type: "string" },
    epochs: { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    backend: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const name = choiceFlag("dataset", values.dataset, DATASET_NAMES);
  if (!name) throw new UsageError("--dataset is required");
  const epochs = intFlag("epochs", values.epochs) ?? 3;
  const seed = intFlag("seed", values.seed, 0) ?? 0;
  const out = values.out ?? `models/classifier/${name}`;
  const backend = await initBackend(
    choiceFlag("backend", values.backend, BACKEND_CHOICES) ?? "auto",
  );
  console.error(`backend: ${backend.name} (${backend.reason})`);
  const dataset = await loadDataset(name);
  const { model, testAccuracy } = await trainClassifier(dataset, {
    epochs,
    seed,
    onEpoch: (e, acc, s) =>
      console.error(
        `epoch ${e}/${epochs}  test accuracy ${(100 * acc).toFixed(2)}%  ${
          s.toFixed(0)
        }s`,
      ),
  });
  await saveClassifier(out, model, {
    dataset: name,
    testAccuracy,
    epochs,
    seed,
    backend: backend.name,
  });
  console.error(
    `saved ${out} (test accuracy ${(100 * testAccuracy).toFixed(2)}%)`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
