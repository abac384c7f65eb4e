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
import { epochsText } from "../lib/checkpoint.ts";
import { classLabels } from "../lib/data.ts";
import { exists, PROJECT_ROOT } from "../lib/files.ts";
import type { Manifest, ManifestEntry } from "../lib/manifest.ts";

export type { Manifest, ManifestEntry };

/**
 * The manifest of the generators in `modelsDir` (default `models/`): every
 * folder whose `model.json` is a generator saved by this project, with its
 * metadata, `eval.json`'s figures and `progress.gif` where present. Paths
 * are relative to the page, under `models/`.
 */
export async function buildManifest(
  modelsDir = `${PROJECT_ROOT}models`,
): Promise<Manifest> {
  const manifest: Manifest = { generators: [], skipped: [] };
  const names = [...Deno.readDirSync(modelsDir)]
    .filter((e) => e.isDirectory)
    .map((e) => e.name)
    .sort();
  for (const name of names) {
    const dir = `${modelsDir}/${name}`;
    if (!exists(`${dir}/model.json`)) continue;
    let json;
    try {
      json = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
    } catch (e) {
      // Listed all the same: the page says what is wrong with it.
      manifest.generators.push({ name, path: `models/${name}/model.json` });
      manifest.skipped.push({
        name,
        why: `model.json is not valid JSON (${(e as Error).message})`,
      });
      continue;
    }
    const gan = json?.userDefinedMetadata?.gan;
    if (!gan) {
      manifest.skipped.push({ name, why: "not a generator (no gan metadata)" });
      continue;
    }
    const entry: ManifestEntry = {
      name,
      path: `models/${name}/model.json`,
      preset: gan.preset,
      dataset: gan.dataset,
      epochs: gan.epochs,
      ...(typeof gan.epochs === "number" ? { training: epochsText(gan) } : {}),
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
    if (exists(`${dir}/eval.json`)) {
      const e = JSON.parse(await Deno.readTextFile(`${dir}/eval.json`));
      entry.evaluation = {
        parzen: e.parzen_ll ?? undefined,
        fid: e.fid ?? undefined,
        classes: e.classes_ge_1pct ?? undefined,
        conditionalAccuracy: e.conditional_acc ?? undefined,
      };
    }
    if (exists(`${dir}/progress.gif`)) {
      entry.progress = `models/${name}/progress.gif`;
    }
    manifest.generators.push(entry);
  }
  return manifest;
}

/** Where tfjs-backend-wasm keeps its `.wasm` files. */
export function wasmDir(): string {
  const require = createRequire(`${PROJECT_ROOT}lib/backend.ts`);
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
 * Bundles `web/main.ts` for the browser (minified) into `outFile`.
 *
 * @throws {Error} with deno bundle's output when it fails.
 */
export async function bundlePage(outFile: string): Promise<void> {
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
  }).output();
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
    png: "image/png",
  }[ext] ?? "application/octet-stream";
}
