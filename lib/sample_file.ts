/**
 * Writing a trained generator's samples to a file: a PNG grid, or every
 * image as `.npy` or IDX bytes. Large counts are generated and written in
 * chunks, so memory stays bounded whatever the number of images.
 *
 * @module
 */

import { generateImages, type LoadedGenerator } from "./checkpoint.ts";
import {
  checkWritableFile,
  temporaryName,
  WriteError,
  writeFailure,
  writeFileAtomic,
} from "./files.ts";
import { classLabels } from "./data.ts";
import { classGridInputs, sampleLatent, withClasses } from "./gan.ts";
import { idxHeader } from "./idx.ts";
import { npyHeader } from "./npy.ts";
import { Rng } from "./rng.ts";
import { imageGrid } from "./viz.ts";

/** Most images a PNG grid holds (100 x 100 images, 2,800 x 2,800 pixels). */
export const PNG_MAX_IMAGES = 10000;

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
 * or the classes in turn from class `first`), with those classes.
 */
export function generatorInputsFor(
  generator: LoadedGenerator,
  n: number,
  rng: Rng,
  options: { label?: number; first?: number } = {},
): { z: Float32Array; labels: Uint8Array | null } {
  const meta = generator.metadata;
  const z = sampleLatent(meta, n, rng);
  if (!meta.classes) return { z, labels: null };
  const classes = meta.classes, first = options.first ?? 0;
  const labels = Uint8Array.from(
    { length: n },
    (_, i) => options.label ?? (first + i) % classes,
  );
  return { z: withClasses(z, labels, meta.latentDim, classes), labels };
}

/** Generator outputs in [0, 1] as bytes 0..255. */
export function toBytes(images: Float32Array): Uint8Array {
  return Uint8Array.from(
    images,
    (v) => Math.max(0, Math.min(255, Math.round(v * 255))),
  );
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
  if (kind === "png" && n > PNG_MAX_IMAGES) {
    throw new RangeError(
      `a PNG grid holds at most ${PNG_MAX_IMAGES} images (100 x 100), ` +
        `got ${n}; write that many to a .npy or IDX file instead`,
    );
  }
  checkWritableFile(path);
  checkLabel(generator, options.label);
  const rng = new Rng(options.seed, 3);
  const metadata = generator.metadata;
  const classes = metadata.classes ?? 0;
  if (kind === "png") {
    const grid = await sampleGrid(generator, n, rng, options);
    await writeFileAtomic(path, grid.png);
    options.onProgress?.(n, n);
    return grid.count;
  }
  const labelsFile = classes ? labelsPath(path) : null;
  if (labelsFile) checkWritableFile(labelsFile);
  const tmp = temporaryName(path);
  let file: Deno.FsFile | null = null;
  const allLabels = new Uint8Array(classes ? n : 0);
  try {
    file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const dims = [n, 28, 28];
    await writeAll(
      file,
      kind === "npy" ? npyHeader(dims, "|u1") : idxHeader(dims),
    );
    for (let done = 0; done < n;) {
      const m = Math.min(chunk, n - done);
      const { z, labels } = generatorInputsFor(generator, m, rng, {
        label: options.label,
        first: done,
      });
      if (labels) allLabels.set(labels, done);
      await writeAll(file, toBytes(await generateImages(generator, z)));
      done += m;
      options.onProgress?.(done, n);
    }
    file.close();
    file = null;
    if (labelsFile) {
      const header = kind === "npy" ? npyHeader([n], "|u1") : idxHeader([n]);
      const bytes = new Uint8Array(header.length + n);
      bytes.set(header);
      bytes.set(allLabels, header.length);
      await writeFileAtomic(labelsFile, bytes);
    }
    await Deno.rename(tmp, path);
    return n;
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof WriteError) throw e;
    throw new WriteError(`cannot write ${path}: ${writeFailure(e)}`);
  }
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
  options: { label?: number },
): Promise<{ png: Uint8Array; count: number }> {
  const meta = generator.metadata;
  const classes = meta.classes ?? 0;
  if (!classes || options.label !== undefined) {
    const { z } = generatorInputsFor(generator, n, rng, options);
    const bytes = toBytes(await generateImages(generator, z));
    return { png: imageGrid(bytes, { encoding: "bytes" }), count: n };
  }
  const cols = Math.ceil(n / classes);
  const { inputs } = classGridInputs({ ...meta, classes }, cols, rng);
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
