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
import { sampleLatent } from "./gan.ts";
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
 *
 * @throws {WriteError} when `path` cannot be written (checked before any
 *   image is generated) or the disk fills.
 * @throws {RangeError} for a PNG of more than {@linkcode PNG_MAX_IMAGES}.
 */
export async function writeSampleFile(
  path: string,
  generator: LoadedGenerator,
  options: SampleFileOptions,
): Promise<void> {
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
  const rng = new Rng(options.seed, 3);
  const metadata = generator.metadata;
  if (kind === "png") {
    const bytes = toBytes(
      await generateImages(generator, sampleLatent(metadata, n, rng)),
    );
    await writeFileAtomic(path, imageGrid(bytes, { encoding: "bytes" }));
    options.onProgress?.(n, n);
    return;
  }
  const tmp = temporaryName(path);
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const dims = [n, 28, 28];
    await writeAll(
      file,
      kind === "npy" ? npyHeader(dims, "|u1") : idxHeader(dims),
    );
    for (let done = 0; done < n;) {
      const m = Math.min(chunk, n - done);
      const z = sampleLatent(metadata, m, rng);
      await writeAll(file, toBytes(await generateImages(generator, z)));
      done += m;
      options.onProgress?.(done, n);
    }
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof WriteError) throw e;
    throw new WriteError(`cannot write ${path}: ${writeFailure(e)}`);
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await file.write(bytes.subarray(at));
  }
}
