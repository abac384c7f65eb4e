/**
 * `deno task sample`: draws images from a trained generator.
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
import { checkWritableFile, writeFileAtomic } from "../lib/io/files.ts";
import { classLabels, type DatasetName, loadDataset } from "../lib/data.ts";
import { MIN_TRUNCATION } from "../lib/nets/latent.ts";
import { neighbourFigure, type NeighbourSpace } from "../lib/run/neighbours.ts";
import { median } from "../lib/eval/neighbours.ts";
import { interpolationRows, withClasses } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { conditioningText } from "../lib/run/generator_metadata.ts";
import {
  checkLabel,
  FILE_MAX_IMAGES,
  generatorInputsFor,
  labelsPath,
  PNG_MAX_IMAGES,
  recordPath,
  sampleFileKind,
  writeSampleFile,
} from "../lib/run/samples.ts";
import { imageGrid } from "../lib/pictures/figures.ts";
import { toBytes } from "../lib/data.ts";
import {
  choiceFlag,
  intFlag,
  parseFlags,
  runCli,
  stopSignals,
  truncationFlag,
  UsageError,
} from "./args.ts";

/** Most samples of a --neighbours figure (each searched against 60,000). */
const NEIGHBOURS_MAX = 1000;

const SPACES: readonly NeighbourSpace[] = ["pixels", "features"];

const USAGE = `Usage: deno task sample --checkpoint DIR --out FILE [options]

Draws images from a trained generator.

  --checkpoint DIR   a run folder (runs/...) or a models/ folder (models/mnist)
  --out FILE         .png (a grid, at most ${PNG_MAX_IMAGES} images),
                     .npy (uint8 N x 28 x 28, np.load reads it), or
                     .idx / *-idx3-ubyte (IDX unsigned bytes, like MNIST's);
                     .npy and IDX take up to 100,000,000 (written in
                     chunks of 10,000, in bounded memory)
  --n N              number of images (default 100)
  --class C          a conditional generator's class for every image (0..9;
                     Fashion-MNIST: 0 T-shirt/top ... 9 Ankle boot). Without
                     it a conditional generator's PNG is a class grid (one
                     row per class, the same noise down each column), and
                     its .npy / IDX images take the classes in turn, their
                     labels written beside them (x.npy -> x.labels.npy,
                     x.idx -> x.labels.idx, x-images-idx3-ubyte ->
                     x-labels-idx1-ubyte); .npy and IDX files get a record
                     beside them (x.npy.json: count, checksums, generator)
                     that deno task eval checks
  --seed N           seed of the noise (default 0)
  --interpolate      a latent interpolation grid instead: each row walks from
                     one random latent vector to another (PNG output)
  --rows N           rows of the interpolation (default 10, at most 100)
  --steps N          images per row of the interpolation (default 10, at
                     most 100)
  --neighbours       the paper's Figure 2 instead: each of --n samples
                     (default 30, at most ${NEIGHBOURS_MAX}) beside its nearest
                     training image, framed in yellow, 5 pairs a row (PNG
                     output); prints the distances
  --space S          where --neighbours searches: pixels (L2, as the paper;
                     the default) or features (the project classifier's)
  --truncation T     the truncation trick (Brock et al. 2019): noise values
                     outside [-T, T] are drawn again; smaller T trades
                     variety for fidelity (at least ${MIN_TRUNCATION}; 0.5 to 2 is usual;
                     with --interpolate, the walks' ends)
  --backend B        auto | webgpu | wasm | cpu (default auto)
  --help             this text
`;

/** Most rows, and most images per row, of an interpolation grid. */
const WALK_MAX = Math.sqrt(PNG_MAX_IMAGES);

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    checkpoint: { type: "string" },
    out: { type: "string" },
    n: { type: "string" },
    class: { type: "string" },
    seed: { type: "string" },
    interpolate: { type: "boolean" },
    rows: { type: "string" },
    steps: { type: "string" },
    neighbours: { type: "boolean" },
    space: { type: "string" },
    truncation: { type: "string" },
    backend: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.checkpoint) throw new UsageError("--checkpoint is required");
  if (values.out === undefined) throw new UsageError("--out is required");
  const file = values.out;
  const kind = sampleFileKind(file);
  if (kind === null) {
    throw new UsageError(
      `--out must end in .png, .npy, .idx or -ubyte, got "${file}"`,
    );
  }
  if (values.interpolate && kind !== "png") {
    throw new UsageError("--interpolate writes a .png grid");
  }
  if (values.neighbours && kind !== "png") {
    throw new UsageError("--neighbours writes a .png figure");
  }
  if (values.neighbours && values.interpolate) {
    throw new UsageError("give one of --neighbours and --interpolate");
  }
  const space = choiceFlag("space", values.space, SPACES);
  if (space && !values.neighbours) {
    throw new UsageError("--space goes with --neighbours");
  }
  const truncation = truncationFlag(values.truncation);
  const backendChoice =
    choiceFlag("backend", values.backend, BACKEND_CHOICES) ??
      "auto";
  const n = intFlag("n", values.n) ?? (values.neighbours ? 30 : 100);
  if (values.neighbours && n > NEIGHBOURS_MAX) {
    throw new UsageError(
      `--n must be at most ${NEIGHBOURS_MAX} with --neighbours, got ${n}`,
    );
  }
  if (n > FILE_MAX_IMAGES) {
    throw new UsageError(
      `--n must be at most ${FILE_MAX_IMAGES} (one file of 78 GB), got ${n}; ` +
        "write more in several files, each with its own --seed",
    );
  }
  const label = intFlag("class", values.class, 0);
  const seed = intFlag("seed", values.seed, 0) ?? 0;
  const rows = intFlag("rows", values.rows) ?? 10;
  const steps = intFlag("steps", values.steps) ?? 10;
  if (values.interpolate && (rows > WALK_MAX || steps > WALK_MAX)) {
    // Before any latent vector is drawn: a walk is a PNG grid too.
    throw new UsageError(
      `--rows and --steps must be at most ${WALK_MAX} each (a grid of at ` +
        `most ${PNG_MAX_IMAGES} images), got ${rows} x ${steps}`,
    );
  }
  if (
    kind === "png" && !values.interpolate && !values.neighbours &&
    n > PNG_MAX_IMAGES
  ) {
    throw new UsageError(
      `--n ${n} is too many for a PNG grid (at most ${PNG_MAX_IMAGES}); ` +
        "write them to a .npy or IDX file instead",
    );
  }
  // Before anything slow: a bad destination fails now, by its name.
  checkWritableFile(file);
  const backend = await initBackend(backendChoice);
  console.error(`backend: ${backend.name} (${backend.reason})`);
  const loaded = await loadGenerator(values.checkpoint);
  const { metadata, path } = loaded;
  if (!loaded.verified) {
    console.error(noChecksumNote(path, "its size was checked"));
  }
  try {
    checkLabel(loaded, label);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const classes = metadata.classes ?? 0;
  let count = n;
  if (values.neighbours) {
    const dataset = await loadDataset(metadata.dataset as DatasetName, {
      log: (m) => console.error(m),
    });
    const { z } = generatorInputsFor(loaded, n, new Rng(seed, 3), {
      label,
      truncation,
    });
    const samples = await generateImages(loaded, z);
    const figure = await neighbourFigure(samples, dataset, {
      space: space ?? "pixels",
    });
    await writeFileAtomic(file, figure.png);
    const d = figure.pixelDistance;
    console.error(
      `nearest training images (of ${dataset.train.size}, in ${
        space ?? "pixels"
      }): pixel L2 distance median ${median(d).toFixed(2)}, smallest ${
        Math.min(...d).toFixed(2)
      }, largest ${Math.max(...d).toFixed(2)} (pixels in [0, 1]; 0 is a copy)`,
    );
  } else if (values.interpolate) {
    let z = interpolationRows(
      { ...metadata, truncation },
      rows,
      steps,
      new Rng(seed, 3),
    );
    count = rows * steps;
    if (classes) {
      // Row r in class --class, or in class r mod classes.
      const labels = Uint8Array.from(
        { length: count },
        (_, i) => label ?? Math.floor(i / steps) % classes,
      );
      z = withClasses(z, labels, metadata.latentDim, classes);
    }
    const bytes = toBytes(await generateImages(loaded, z));
    await writeFileAtomic(
      file,
      imageGrid(bytes, { encoding: "bytes", cols: steps }),
    );
  } else {
    const started = performance.now();
    const tty = Deno.stderr.isTerminal();
    let shown = 0;
    // Ctrl-C (or kill) stops a .npy or IDX file after the chunk in progress,
    // leaving nothing (exit 130); a PNG grid is one piece, ended as usual.
    using stop = kind === "png" ? null : stopSignals();
    count = await writeSampleFile(file, loaded, {
      n,
      seed,
      label,
      truncation,
      signal: stop?.signal,
      log: (m) => console.error(m),
      onProgress: (done) => {
        // Progress only for long work: in place on a terminal, else every 10%.
        if (done === n || n <= 20000) return;
        const tenth = Math.floor((10 * done) / n);
        if (!tty && tenth <= shown) return;
        shown = tenth;
        const seconds = (performance.now() - started) / 1000;
        const left = (seconds / done) * (n - done);
        const text = `${done}/${n} images (${Math.floor((100 * done) / n)}%)` +
          `, ${Math.round(left)}s left`;
        console.error(tty ? `\r${text}\x1b[K` : text);
      },
    });
    if (tty && n > 20000) console.error("");
  }
  const what = !classes
    ? ""
    : label !== undefined
    ? ` of class ${label} (${classLabels(metadata.dataset, classes)[label]})`
    : kind === "png" && !values.interpolate && !values.neighbours
    ? ", a class grid: one row per class"
    : kind !== "png"
    ? `, classes in turn (labels in ${labelsPath(file)})`
    : "";
  const record = kind === "png" ? "" : `; its record in ${recordPath(file)}`;
  const how =
    (values.neighbours ? " beside their nearest training images" : "") +
    (truncation !== undefined ? `, noise truncated at ${truncation}` : "");
  console.error(
    `wrote ${count} images${what}${how} to ${file} (generator ${path}: ` +
      `${metadata.preset}${
        classes ? ` conditional${conditioningText(metadata)}` : ""
      } ` +
      `on ${metadata.dataset}, ${epochsText(metadata)})${record}`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
