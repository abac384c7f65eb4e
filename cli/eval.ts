/**
 * `deno task eval`: measures a generator or a file of samples.
 *
 * @module
 */

import { BACKEND_CHOICES, initBackend } from "../lib/backends/choice.ts";
import {
  epochsText,
  generateImages,
  loadGenerator,
  noChecksumNote,
} from "../lib/run/checkpoint.ts";
import { DATASET_NAMES, type DatasetName, loadDataset } from "../lib/data.ts";
import { evaluateImages, MIN_SAMPLES } from "../lib/eval/evaluate.ts";
import { MIN_TRUNCATION } from "../lib/nets/latent.ts";
import { generatorInputsFor, readSampleFiles } from "../lib/run/samples.ts";
import { Rng } from "../lib/random/rng.ts";
import { conditioningText } from "../lib/run/generator_metadata.ts";
import {
  choiceFlag,
  intFlag,
  parseFlags,
  runCli,
  truncationFlag,
  UsageError,
} from "./args.ts";

/** Most samples eval draws from a generator (n x 784 floats in memory). */
const MAX_SAMPLES = 100000;

const USAGE =
  `Usage: deno task eval (--checkpoint PATH | --samples FILE --dataset NAME) [options]

Measures generated images: the Parzen-window log-likelihood of the paper's
Table 1, FID, KID, precision and recall, density and coverage, the
data-copying test (are samples closer to the training images than new
images are?) and Inception Score in the project classifier's space, and
class coverage. For a conditional generator (or samples with a labels file
beside them) also the conditional accuracy, the share of samples the
classifier assigns to the class asked for, and the FID within each class.
Prints a table, then one JSON line with every figure.

  --checkpoint PATH   a run folder, a models/ folder, or a generator's model.json
  --samples FILE      .npy (uint8 N x 28 x 28 or N x 784, float32 in [0,1] or
                      [-1,1]) or an IDX images file; the labels file that
                      deno task sample writes beside a conditional
                      generator's samples (x.labels.npy ...) is read too,
                      checked against the record sample writes (x.npy.json)
  --dataset NAME      mnist | fashion (default: the generator's own)
  --any-dataset       score a generator (or samples whose record names
                      one) against --dataset though it learnt another
  --n N               samples to draw from a checkpoint (default 10000, at
                      least ${MIN_SAMPLES}, at most ${MAX_SAMPLES}; a conditional
                      generator's are N / 10 per class)
  --seed N            seed of their noise (default 0)
  --truncation T      draw them with the truncation trick: noise values
                      outside [-T, T] drawn again (at least ${MIN_TRUNCATION})
  --no-parzen         skip the Parzen estimate
  --backend B         auto | webgpu | wasm | cpu (default auto)
  --help              this text
`;

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    checkpoint: { type: "string" },
    samples: { type: "string" },
    dataset: { type: "string" },
    n: { type: "string" },
    seed: { type: "string" },
    truncation: { type: "string" },
    "no-parzen": { type: "boolean" },
    "any-dataset": { type: "boolean" },
    backend: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.checkpoint === !values.samples) {
    throw new UsageError("give exactly one of --checkpoint and --samples");
  }
  const datasetFlag = choiceFlag("dataset", values.dataset, DATASET_NAMES);
  if (values.samples && !datasetFlag) {
    throw new UsageError("--samples needs --dataset");
  }
  const n = intFlag("n", values.n, 1) ?? 10000;
  if (n < MIN_SAMPLES) {
    throw new UsageError(
      `--n must be at least ${MIN_SAMPLES} (one KID subset), got ${n}`,
    );
  }
  if (n > MAX_SAMPLES) {
    throw new UsageError(
      `--n must be at most ${MAX_SAMPLES}, got ${n}; to measure more, ` +
        "write them with deno task sample --out x.npy and evaluate chunks",
    );
  }
  const truncation = truncationFlag(values.truncation);
  if (truncation !== undefined && values.samples) {
    throw new UsageError(
      "--truncation draws samples from a --checkpoint; a --samples file's " +
        "noise was drawn already (deno task sample --truncation writes one)",
    );
  }
  const anyDataset = values["any-dataset"] ?? false;
  const seed = intFlag("seed", values.seed, 0) ?? 0;
  const backend = await initBackend(
    choiceFlag("backend", values.backend, BACKEND_CHOICES) ?? "auto",
  );
  console.error(`backend: ${backend.name} (${backend.reason})`);

  let images: Float32Array, name: DatasetName, what: string;
  let labels: Uint8Array | undefined;
  if (values.checkpoint) {
    const generator = await loadGenerator(values.checkpoint);
    if (!generator.verified) {
      console.error(noChecksumNote(generator.path, "its size was checked"));
    }
    const m = generator.metadata;
    if (datasetFlag && datasetFlag !== m.dataset && !anyDataset) {
      throw new UsageError(
        `${generator.path} was trained on ${m.dataset}, not ${datasetFlag}: ` +
          `its samples would be scored as ${datasetFlag} images; leave ` +
          `--dataset out to use its own, or pass --any-dataset to score it ` +
          `against ${datasetFlag} anyway`,
      );
    }
    name = datasetFlag ?? m.dataset as DatasetName;
    // A conditional generator's samples take the classes in turn.
    const inputs = generatorInputsFor(generator, n, new Rng(seed, 4), {
      truncation,
    });
    images = await generateImages(generator, inputs.z);
    labels = inputs.labels ?? undefined;
    what = `${n} samples of ${generator.path} (${m.preset}${
      m.classes
        ? `, conditional${conditioningText(m)}: ${n / m.classes} per class`
        : ""
    } on ${m.dataset}, ${epochsText(m)}${
      truncation !== undefined ? `, noise truncated at ${truncation}` : ""
    })`;
  } else {
    name = datasetFlag!;
    const read = await readSampleFiles(values.samples!, {
      dataset: name,
      anyDataset,
      log: (m) => console.error(m),
    });
    images = read.images;
    labels = read.labels;
    what = `${images.length / 784} images from ${values.samples}` +
      (read.labelsFile ? ` with their classes from ${read.labelsFile}` : "");
    if (images.length / 784 < MIN_SAMPLES) {
      throw new UsageError(
        `${values.samples} holds ${images.length / 784} images; an ` +
          `evaluation needs at least ${MIN_SAMPLES} (one KID subset)`,
      );
    }
  }
  const dataset = await loadDataset(name);
  console.error(`evaluating ${what} against ${name} (${dataset.source})`);
  const r = await evaluateImages(images, {
    dataset,
    skipParzen: values["no-parzen"],
    labels,
    log: (m) => console.error(m),
  });
  const f = (x: number, d = 2) => (Number.isNaN(x) ? "-" : x.toFixed(d));
  const rows: [string, string][] = [
    ["Parzen log-likelihood (nats)", `${f(r.parzen_ll)} +- ${f(r.parzen_se)}`],
    ["  sigma (chosen on validation)", f(r.parzen_sigma, 3)],
    ["FID (classifier features)", f(r.fid)],
    [
      "KID x 1000 (same features)",
      `${f(1000 * r.kid, 3)} +- ${f(1000 * r.kid_std, 3)}`,
    ],
    [
      "precision, recall (k = 3)",
      `${f(r.precision, 3)}, ${f(r.recall, 3)}`,
    ],
    ["density, coverage", `${f(r.density, 3)}, ${f(r.coverage, 3)}`],
    [
      "data copying C_T (< -3: copies)",
      `${f(r.copying_ct)} (nearest-training distance ratio ${
        f(r.copying_distance_ratio, 3)
      }; ${r.copying_cells} of 20 cells)`,
    ],
    ["Inception Score (classifier)", f(r.is)],
    ["classes with >= 1% of samples", String(r.classes_ge_1pct)],
    ["KL(class histogram || uniform)", f(r.kl_uniform, 4)],
    [
      "class histogram (%)",
      r.class_histogram.map((h) => (100 * h).toFixed(1)).join(" "),
    ],
    [
      "classifier test accuracy",
      `${(100 * r.classifier_test_acc).toFixed(2)}%`,
    ],
    [
      "seconds (Parzen, classifier)",
      `${f(r.seconds.parzen, 1)}, ${f(r.seconds.classifier, 1)}`,
    ],
  ];
  if (r.conditional_acc !== undefined) {
    const pct = (xs: number[]) => xs.map((x) => (100 * x).toFixed(1)).join(" ");
    rows.push(
      [
        "conditional accuracy",
        `${(100 * r.conditional_acc).toFixed(2)}% (per class: ${
          pct(r.conditional_acc_per_class!)
        })`,
      ],
      [
        "FID within each class",
        r.fid_per_class!.map((x) => f(x, 1)).join(" "),
      ],
    );
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  console.log(
    JSON.stringify(truncation !== undefined ? { ...r, truncation } : r),
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
