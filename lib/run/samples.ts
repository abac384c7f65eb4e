/**
 * Writing a trained generator's samples to a file: a PNG grid, or every
 * image as `.npy` or IDX bytes. Large counts are generated and written in
 * chunks, so memory stays bounded whatever the number of images.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  epochsText,
  generateImages,
  type LoadedGenerator,
} from "./checkpoint.ts";
import {
  checkWritableFile,
  exists,
  Interrupted,
  removeStaleTemporariesOf,
  sha256File,
  sha256Hex,
  temporaryName,
  WriteError,
  writeFailure,
  writeFileAtomic,
} from "../io/files.ts";
import { CLASS_NAMES, classLabels, toBytes } from "../data.ts";
import {
  decodeSamples,
  readFileNamed,
  readLabelsFile,
} from "../eval/evaluate.ts";
import {
  checkTruncation,
  classGridInputs,
  sampleLatent,
  withClasses,
} from "../nets/latent.ts";
import { idxHeader } from "../io/idx.ts";
import { npyHeader } from "../io/npy.ts";
import { Rng } from "../random/rng.ts";
import { imageGrid } from "../pictures/figures.ts";

/** Most images a PNG grid holds (100 x 100 images, 2,800 x 2,800 pixels). */
export const PNG_MAX_IMAGES = 10000;

/**
 * Most images a `.npy` or IDX file holds: 78 GB of pixels, and a count
 * that IDX's 32-bit header holds (a conditional generator's labels, one
 * byte each, are kept in memory until the end).
 */
export const FILE_MAX_IMAGES = 100_000_000;

/** The file kinds `writeSampleFile` writes, by the output's name. */
export type SampleFileKind = "png" | "npy" | "idx";

/** The kind of sample file `path` names, or null for an unknown ending. */
export function sampleFileKind(path: string): SampleFileKind | null {
  if (path.endsWith(".png")) return "png";
  if (path.endsWith(".npy")) return "npy";
  if (path.endsWith(".idx") || path.endsWith("-ubyte")) return "idx";
  return null;
}

/** Options of {@linkcode writeSampleFile}. */
export interface SampleFileOptions {
  /** Number of images. */
  n: number;
  /** Seed of the noise (stream 3 of {@linkcode Rng}, as `deno task sample`). */
  seed: number;
  /** Images generated and written at a time (default 10,000; even). */
  chunk?: number;
  /** Called after each chunk with the images written so far. */
  onProgress?: (done: number, n: number) => void;
  /**
   * A conditional generator's class for every image. Without it, a
   * conditional generator draws the classes in turn (image i is of class
   * i mod classes) and a PNG is a class grid (one row per class, the same
   * noise down each column).
   */
  label?: number;
  /**
   * Stops the work between chunks ({@linkcode Interrupted}); nothing is
   * left behind.
   */
  signal?: AbortSignal;
  /** One-line notes (files removed). Default: none. */
  log?: (message: string) => void;
  /**
   * The truncation trick: noise values outside [-T, T] drawn again
   * (`LatentConfig.truncation` in lib/nets/latent.ts); default none.
   */
  truncation?: number;
}

/**
 * What `deno task sample` records beside a `.npy` or IDX file of samples
 * ({@linkcode recordPath}): their count and checksum, their labels file's
 * checksum (or none), and the generator, so that `deno task eval` reads a
 * labels file only with the samples it was written with, and knows the
 * dataset they imitate.
 */
export interface SampleRecord {
  format: "gan-samples";
  version: 1;
  count: number;
  /** SHA-256 of the samples file. */
  sha256: string;
  /** The labels file (a name beside the samples) and its SHA-256, or null. */
  labels: { file: string; sha256: string } | null;
  generator: {
    path: string;
    preset: string;
    dataset: string;
    training: string;
    classes?: number;
    run?: string;
  };
  seed: number;
  /** The class every image was drawn for (`--class`), if one was. */
  label?: number;
  /** The noise's truncation (`--truncation`), if one was used. */
  truncation?: number;
}

/** Where a sample file's {@linkcode SampleRecord} goes: `x.npy` -> `x.npy.json`. */
export function recordPath(path: string): string {
  return `${path}.json`;
}

/**
 * Where the labels of a conditional generator's `.npy` or IDX samples go,
 * beside the images: `x.npy` -> `x.labels.npy`, `x.idx` -> `x.labels.idx`,
 * `x-images-idx3-ubyte` -> `x-labels-idx1-ubyte` (MNIST's naming), other
 * `x-ubyte` -> `x.labels-idx1-ubyte`.
 */
export function labelsPath(path: string): string {
  if (path.endsWith(".npy")) return path.slice(0, -4) + ".labels.npy";
  if (path.endsWith(".idx")) return path.slice(0, -4) + ".labels.idx";
  if (path.endsWith("-images-idx3-ubyte")) {
    return path.slice(0, -"-images-idx3-ubyte".length) + "-labels-idx1-ubyte";
  }
  return path.replace(/-ubyte$/, "") + ".labels-idx1-ubyte";
}

/**
 * Checks `label` against `generator`: a class needs a conditional
 * generator, and one of its classes.
 *
 * @throws {RangeError} saying what to do.
 */
export function checkLabel(
  generator: LoadedGenerator,
  label: number | undefined,
): void {
  if (label === undefined) return;
  const { classes, dataset, preset } = generator.metadata;
  if (!classes) {
    throw new RangeError(
      `--class needs a conditional generator, and ${generator.path} (${preset} ` +
        `on ${dataset}) was trained without classes; train one with ` +
        "--preset cgan or --conditional, or leave --class out",
    );
  }
  if (!Number.isInteger(label) || label < 0 || label >= classes) {
    const names = classLabels(dataset, classes);
    throw new RangeError(
      `--class must be a class of ${dataset}, 0..${classes - 1} (` +
        names.map((n, i) => i === Number(n) ? `${i}` : `${i} ${n}`).join(
          ", ",
        ) + `), got ${label}`,
    );
  }
}

/**
 * The generator's inputs for `n` images from `rng`: latent vectors, each
 * followed by its one-hot class in a conditional generator (all `label`,
 * or the classes in turn from class `first`), with those classes; the
 * noise truncated at `truncation` if one is given.
 */
export function generatorInputsFor(
  generator: LoadedGenerator,
  n: number,
  rng: Rng,
  options: { label?: number; first?: number; truncation?: number } = {},
): { z: Float32Array; labels: Uint8Array | null } {
  const meta = generator.metadata;
  const z = sampleLatent({ ...meta, truncation: options.truncation }, n, rng);
  if (!meta.classes) return { z, labels: null };
  const classes = meta.classes, first = options.first ?? 0;
  const labels = Uint8Array.from(
    { length: n },
    (_, i) => options.label ?? (first + i) % classes,
  );
  return { z: withClasses(z, labels, meta.latentDim, classes), labels };
}

/**
 * Draws `n` images from `generator` and writes them to `path`: a grid for
 * `.png` (at most {@linkcode PNG_MAX_IMAGES}), uint8 N x 28 x 28 for `.npy`
 * and IDX (any N the disk holds, `chunk` images at a time, into a temporary
 * file renamed into place at the end). The images do not depend on `chunk`.
 * Returns the number of images written: `n`, or for a conditional
 * generator's class grid `n` rounded up to full rows.
 *
 * @throws {WriteError} when `path` cannot be written (checked before any
 *   image is generated) or the disk fills.
 * @throws {RangeError} for a PNG of more than {@linkcode PNG_MAX_IMAGES}.
 */
export async function writeSampleFile(
  path: string,
  generator: LoadedGenerator,
  options: SampleFileOptions,
): Promise<number> {
  const kind = sampleFileKind(path);
  if (kind === null) {
    throw new RangeError(
      `${path}: the file name must end in .png, .npy, .idx or -ubyte`,
    );
  }
  const { n } = options;
  const chunk = options.chunk ?? 10000;
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`the number of images must be >= 1, got ${n}`);
  }
  if (!Number.isInteger(chunk) || chunk < 2 || chunk % 2 !== 0) {
    // Normal noise is drawn in pairs: an even chunk keeps the stream whole.
    throw new RangeError(`chunk must be an even integer >= 2, got ${chunk}`);
  }
  if (n > FILE_MAX_IMAGES) {
    throw new RangeError(
      `at most ${FILE_MAX_IMAGES} images go in one file, got ${n}; ` +
        "write them in several files (--seed tells their noise apart)",
    );
  }
  if (kind === "png" && n > PNG_MAX_IMAGES) {
    throw new RangeError(
      `a PNG grid holds at most ${PNG_MAX_IMAGES} images (100 x 100), ` +
        `got ${n}; write that many to a .npy or IDX file instead`,
    );
  }
  checkWritableFile(path);
  checkLabel(generator, options.label);
  if (options.truncation !== undefined) checkTruncation(options.truncation);
  const rng = new Rng(options.seed, 3);
  const metadata = generator.metadata;
  const classes = metadata.classes ?? 0;
  // The labels file belongs to the samples file of its name: written with
  // a conditional generator's, removed with an unconditional one's.
  const beside = labelsPath(path), record = recordPath(path);
  // What a killed sample of this file left (`x.npy.tmp-PID`, ...).
  const stale = removeStaleTemporariesOf(
    kind === "png" ? [path] : [path, beside, record],
  );
  if (stale.length > 0) {
    options.log?.(
      `removed ${stale.join(", ")}, left by an interrupted deno task sample`,
    );
  }
  if (kind === "png") {
    const grid = await sampleGrid(generator, n, rng, options);
    await writeFileAtomic(path, grid.png);
    options.onProgress?.(n, n);
    return grid.count;
  }
  const labelsFile = classes ? beside : null;
  if (labelsFile) checkWritableFile(labelsFile);
  const tmp = temporaryName(path), labelsTmp = temporaryName(beside);
  let file: Deno.FsFile | null = null;
  const allLabels = new Uint8Array(classes ? n : 0);
  const hash = createHash("sha256");
  try {
    file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const dims = [n, 28, 28];
    const header = kind === "npy" ? npyHeader(dims, "|u1") : idxHeader(dims);
    await writeAll(file, header);
    hash.update(header);
    for (let done = 0; done < n;) {
      if (options.signal?.aborted) {
        throw new Interrupted(
          `interrupted: ${path} was not written, and nothing was left behind`,
        );
      }
      const m = Math.min(chunk, n - done);
      const { z, labels } = generatorInputsFor(generator, m, rng, {
        label: options.label,
        first: done,
        truncation: options.truncation,
      });
      if (labels) allLabels.set(labels, done);
      const bytes = toBytes(await generateImages(generator, z));
      await writeAll(file, bytes);
      hash.update(bytes);
      done += m;
      options.onProgress?.(done, n);
    }
    file.close();
    file = null;
    let labels: SampleRecord["labels"] = null;
    if (labelsFile) {
      const header = kind === "npy" ? npyHeader([n], "|u1") : idxHeader([n]);
      const bytes = new Uint8Array(header.length + n);
      bytes.set(header);
      bytes.set(allLabels, header.length);
      await Deno.writeFile(labelsTmp, bytes);
      labels = {
        file: labelsFile.slice(labelsFile.lastIndexOf("/") + 1),
        sha256: await sha256Hex(bytes),
      };
    }
    // The old record goes first, and an unconditional generator's samples
    // take the old labels with it: from here until the new record is
    // written, eval finds no record rather than one of other samples, and
    // no labels but the new ones.
    await Deno.remove(record).catch(() => {});
    if (labelsFile) await Deno.rename(labelsTmp, labelsFile);
    else if (exists(beside)) {
      await Deno.remove(beside);
      options.log?.(
        `removed ${beside}: the labels of the samples ${path} held before`,
      );
    }
    await Deno.rename(tmp, path);
    const m = generator.metadata;
    const entry: SampleRecord = {
      format: "gan-samples",
      version: 1,
      count: n,
      sha256: hash.digest("hex"),
      labels,
      generator: {
        path: generator.path,
        preset: m.preset,
        dataset: m.dataset,
        training: epochsText(m),
        ...(m.classes ? { classes: m.classes } : {}),
        ...(m.run ? { run: m.run } : {}),
      },
      seed: options.seed,
      ...(options.label !== undefined ? { label: options.label } : {}),
      ...(options.truncation !== undefined
        ? { truncation: options.truncation }
        : {}),
    };
    await writeFileAtomic(record, JSON.stringify(entry, null, 1) + "\n");
    return n;
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    await Deno.remove(labelsTmp).catch(() => {});
    if (e instanceof WriteError || e instanceof Interrupted) throw e;
    throw new WriteError(`cannot write ${path}: ${writeFailure(e)}`);
  }
}

/** Options of {@linkcode readSampleFiles}. */
export interface ReadSamplesOptions {
  /** The dataset the samples are scored against. */
  dataset: string;
  /** Score them against `dataset` even if their generator learnt another. */
  anyDataset?: boolean;
  /** One-line notes. Default: none. */
  log?: (message: string) => void;
}

/**
 * Reads a file of samples (`.npy`, IDX) and, where there is one, the labels
 * file beside it ({@linkcode labelsPath}). With the record that `deno task
 * sample` writes ({@linkcode recordPath}), both must be the files it
 * describes (checksums), and their generator must have learnt `dataset`;
 * without one, a labels file beside is taken by its name and count, with a
 * note. Every label must be a class of `dataset`.
 *
 * @throws {Error} naming the file and what to do, when any of that fails.
 */
export async function readSampleFiles(
  path: string,
  options: ReadSamplesOptions,
): Promise<{ images: Float32Array; labels?: Uint8Array; labelsFile?: string }> {
  // Read once: decoded for the images, hashed for the record's check.
  const bytes = await readFileNamed(path);
  const images = decodeSamples(bytes, path);
  const n = images.length / 784;
  const beside = labelsPath(path), recordFile = recordPath(path);
  let record: SampleRecord | null = null;
  if (exists(recordFile)) {
    try {
      record = JSON.parse(await Deno.readTextFile(recordFile));
    } catch (e) {
      throw new Error(
        `${recordFile} is not valid JSON (${(e as Error).message}); remove ` +
          `it to evaluate ${path} as plain images`,
      );
    }
    if (record?.format !== "gan-samples" || typeof record.sha256 !== "string") {
      throw new Error(
        `${recordFile} is not a record of deno task sample; remove it to ` +
          `evaluate ${path} as plain images`,
      );
    }
  }
  if (record) {
    if (record.count !== n || await sha256Hex(bytes) !== record.sha256) {
      throw new Error(
        `${path} is not the file ${recordFile} describes (changed or ` +
          "replaced after deno task sample wrote it); sample it again, or " +
          `remove ${recordFile}${
            exists(beside) ? ` and ${beside}` : ""
          } to evaluate it as plain images`,
      );
    }
    const learnt = record.generator?.dataset;
    if (learnt && learnt !== options.dataset && !options.anyDataset) {
      throw new Error(
        `${path} holds samples of a generator trained on ${learnt} ` +
          `(${recordFile}), not ${options.dataset}; pass --dataset ${learnt}, ` +
          `or --any-dataset to score them against ${options.dataset} anyway`,
      );
    }
  }
  let labels: Uint8Array | undefined;
  if (record && record.labels === null) {
    if (exists(beside)) {
      throw new Error(
        `${beside} is not the labels of ${path}: ${recordFile} says its ` +
          "samples have none (an unconditional generator's); remove " +
          `${beside}`,
      );
    }
  } else if (record?.labels) {
    if (!exists(beside)) {
      throw new Error(
        `${beside}, the labels ${recordFile} names, is missing; sample ` +
          `${path} again`,
      );
    }
    if (await sha256File(beside) !== record.labels.sha256) {
      throw new Error(
        `${beside} is not the labels file ${recordFile} describes (changed ` +
          `or written with other samples); sample ${path} again`,
      );
    }
    labels = await readLabelsFile(beside);
  } else if (exists(beside)) {
    labels = await readLabelsFile(beside);
    options.log?.(
      `note: ${beside} taken as the classes of ${path} by its name alone ` +
        `(no ${recordFile}, which deno task sample writes beside its ` +
        "samples, ties them)",
    );
  }
  if (labels) {
    if (labels.length !== n) {
      throw new Error(
        `${beside} holds ${labels.length} labels for the ${n} images of ` +
          `${path}; write both again with deno task sample`,
      );
    }
    const classes =
      (CLASS_NAMES as Record<string, readonly string[]>)[options.dataset]
        ?.length ?? 10;
    const bad = labels.findIndex((l) => l >= classes);
    if (bad >= 0) {
      throw new Error(
        `${beside}: label ${labels[bad]} (image ${bad}) is not a class of ` +
          `${options.dataset} (0..${classes - 1}); these are not its labels`,
      );
    }
  }
  return { images, labels, ...(labels ? { labelsFile: beside } : {}) };
}

/**
 * A PNG grid of `n` samples. A conditional generator without a class gives
 * a class grid: one row per class (captioned with its name), the same
 * noise down each column, `ceil(n / classes)` columns.
 */
async function sampleGrid(
  generator: LoadedGenerator,
  n: number,
  rng: Rng,
  options: { label?: number; truncation?: number },
): Promise<{ png: Uint8Array; count: number }> {
  const meta = generator.metadata;
  const classes = meta.classes ?? 0;
  if (!classes || options.label !== undefined) {
    const { z } = generatorInputsFor(generator, n, rng, options);
    const bytes = toBytes(await generateImages(generator, z));
    return { png: imageGrid(bytes, { encoding: "bytes" }), count: n };
  }
  const cols = Math.ceil(n / classes);
  const { inputs } = classGridInputs(
    { ...meta, classes, truncation: options.truncation },
    cols,
    rng,
  );
  const bytes = toBytes(await generateImages(generator, inputs));
  const png = imageGrid(bytes, {
    encoding: "bytes",
    cols,
    rowLabels: classLabels(meta.dataset, classes),
  });
  return { png, count: classes * cols };
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await file.write(bytes.subarray(at));
  }
}
