/**
 * `deno task build:web`: writes the web page with the trained generators as
 * a folder of static files that any static host serves (GitHub Pages, a
 * plain `python3 -m http.server`, ...).
 *
 * It never deletes or replaces a folder it did not write: `--out` must be a
 * new folder, an empty one, or one it built before, which it knows by the
 * list of its files ({@linkcode MARKER}) that every build writes into its
 * folder. The build is written into a temporary folder beside `--out` and
 * put in its place at the end, so an interruption leaves the earlier build
 * or the new one, whole.
 *
 * @module
 */

import { dirname } from "node:path";
import {
  Interrupted,
  isWithin,
  PROJECT_ROOT,
  realPathOf,
  writeFailure,
} from "../lib/io/files.ts";
import { parseFlags, runCli, stopSignals, UsageError } from "./args.ts";
import { DATASET_NAMES } from "../lib/data.ts";
import {
  buildManifest,
  bundlePage,
  DATA_FILES,
  favicon,
  generatorFiles,
  PAGE_FILES,
  trainingFiles,
  WASM_FILES,
  wasmDir,
} from "./site.ts";

const USAGE = `Usage: deno task build:web [--out DIR] [--models DIR]

Writes the page, its bundled script, TF.js's wasm files, the generators and
their manifest, and the datasets' training splits (for the Train view) into
one folder that any static file server can serve.

  --out DIR      where to write (default dist/web): a new folder, an empty
                 one, or one that build:web wrote before (replaced)
  --models DIR   the generators' folder (default models/)
  --help         this text
`;

/** The file in which a build lists the files and folders it wrote. */
const MARKER = ".gan-web-build.json";

/** What {@linkcode MARKER} holds: paths relative to the build's folder. */
interface BuildRecord {
  by: "deno task build:web";
  files: string[];
  folders: string[];
}

/** A folder's files and folders, relative to it, links not followed. */
function listTree(dir: string): {
  files: string[];
  folders: string[];
  others: string[];
} {
  const files: string[] = [], folders: string[] = [], others: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(rel ? `${dir}/${rel}` : dir)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) {
        folders.push(path);
        walk(path);
      } else if (e.isFile) files.push(path);
      else others.push(path); // a symbolic link: never written by a build
    }
  };
  walk("");
  return { files, folders, others };
}

/**
 * What `--out` is now: missing, an empty folder, or an earlier build (with
 * what it holds, every entry of which that build listed).
 *
 * @throws {Error} for anything else: a file, a folder that is not empty and
 * not a build, or a build that holds files it did not write (named).
 */
function outState(
  out: string,
  target: string,
):
  | { kind: "new" }
  | { kind: "empty" }
  | { kind: "build"; files: string[]; folders: string[] } {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(target);
  } catch {
    return { kind: "new" };
  }
  if (!info.isDirectory) {
    throw new Error(
      `--out ${out} is a file, not a folder; choose a new or empty folder`,
    );
  }
  const tree = listTree(target);
  if (tree.files.length + tree.folders.length + tree.others.length === 0) {
    return { kind: "empty" };
  }
  if (!tree.files.includes(MARKER)) {
    throw new Error(
      `--out ${out} is a folder that is not empty and that build:web did not write (it has no ${MARKER}), so it is left alone; choose a new or empty folder, e.g. --out dist/web`,
    );
  }
  let record: BuildRecord;
  try {
    record = JSON.parse(Deno.readTextFileSync(`${target}/${MARKER}`));
    if (!Array.isArray(record.files) || !Array.isArray(record.folders)) {
      throw new Error("no list of files");
    }
  } catch (e) {
    throw new Error(
      `--out ${out}: its ${MARKER} cannot be read (${
        (e as Error).message
      }), so the folder is left alone; choose a new or empty folder`,
    );
  }
  const files = new Set(record.files), folders = new Set(record.folders);
  const strangers = [
    ...tree.files.filter((f) => f !== MARKER && !files.has(f)),
    ...tree.folders.filter((f) => !folders.has(f)),
    ...tree.others,
  ];
  if (strangers.length > 0) {
    const shown = strangers.slice(0, 5).map((f) => `${out}/${f}`).join(", ");
    throw new Error(
      `--out ${out} holds ${
        strangers.length === 1 ? "a file" : `${strangers.length} files`
      } that the earlier build did not write: ${shown}${
        strangers.length > 5 ? ", ..." : ""
      }; move ${
        strangers.length === 1 ? "it" : "them"
      } out of the folder, or choose another --out (build:web replaces only what it wrote)`,
    );
  }
  return { kind: "build", files: tree.files, folders: tree.folders };
}

/**
 * Removes the files and folders of `dir` that a build wrote (`files`,
 * `folders`, relative), then `dir` itself; never anything else, so a folder
 * that still holds something afterwards stays. Returns true when `dir` is
 * gone.
 */
function removeBuild(
  dir: string,
  files: Iterable<string>,
  folders: Iterable<string>,
): boolean {
  for (const f of files) {
    try {
      if (Deno.lstatSync(`${dir}/${f}`).isFile) Deno.removeSync(`${dir}/${f}`);
    } catch {
      // gone already
    }
  }
  // Deepest first; a folder that is not empty is kept (not recursive).
  for (const f of [...folders].sort((a, b) => b.length - a.length)) {
    try {
      Deno.removeSync(`${dir}/${f}`);
    } catch {
      // not empty, or gone
    }
  }
  try {
    Deno.removeSync(dir);
    return true;
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
}

/**
 * Refuses an `--out` that is the file system's root, the project's folder
 * or a folder holding it, or that is, holds or lies inside one of the
 * build's inputs (the models folder, `web/`, TF.js's wasm files), before
 * anything is read or written.
 *
 * @throws {UsageError} naming `out` and what to do.
 */
function checkOutPath(out: string, target: string, models: string) {
  const choose = "choose a folder of its own, e.g. --out dist/web";
  if (dirname(target) === target) {
    throw new UsageError(
      `--out ${out} is the file system's root; ${choose}`,
    );
  }
  const root = realPathOf(PROJECT_ROOT);
  if (isWithin(root, target)) {
    throw new UsageError(
      `--out ${out} is ${
        root === target
          ? "the project's folder"
          : "a folder holding the project"
      }, which the build would replace; ${choose}`,
    );
  }
  const inputs: [string, string][] = [
    [realPathOf(models), "the models folder (--models)"],
    [realPathOf(`${PROJECT_ROOT}web`), "the page's sources (web/)"],
    [realPathOf(wasmDir()), "TF.js's wasm files"],
  ];
  for (const [input, what] of inputs) {
    if (isWithin(target, input) || isWithin(input, target)) {
      throw new UsageError(
        `--out ${out} is ${
          target === input
            ? what
            : isWithin(target, input)
            ? `inside ${what}`
            : `a folder holding ${what}`
        }, which the build reads; ${choose}`,
      );
    }
  }
}

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    out: { type: "string" },
    models: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const out = values.out ?? `${PROJECT_ROOT}dist/web`;
  if (out.trim() === "" || /^\/+$/.test(out)) {
    throw new UsageError(`--out must name a folder, got "${out}"`);
  }
  const models = values.models ?? `${PROJECT_ROOT}models`;
  const modelsName = values.models?.replace(/\/+$/, "") ?? "models";
  try {
    if (!Deno.statSync(models).isDirectory) throw new Error();
  } catch {
    throw new UsageError(`--models ${models} is not a folder`);
  }
  const target = realPathOf(out);
  checkOutPath(out, target, models);
  const state = outState(out, target);
  const manifest = await buildManifest(models);

  const parent = dirname(target);
  let tmp: string;
  try {
    Deno.mkdirSync(parent, { recursive: true });
    // Beside --out, so that the swap at the end is a rename on one disk;
    // made by mkdir (not makeTempDir, whose 0700 would shut out a web
    // server running as another user), which fails if the name is taken.
    tmp = `${target}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    Deno.mkdirSync(tmp);
  } catch (e) {
    throw new Error(`cannot write in ${parent}: ${writeFailure(e)}`);
  }
  // Ctrl-C, kill and a closed terminal all stop it the same way, so that
  // its temporary folder is removed on every exit but SIGKILL's.
  using controller = stopSignals();
  const check = () => {
    if (controller.signal.aborted) {
      throw new Interrupted(`interrupted; ${out} is left as it was`);
    }
  };
  // Every path is listed before it is written, so that a failure removes
  // whatever part of it was written.
  const files: string[] = [], folders: string[] = [];
  const folder = (rel: string) => {
    folders.push(rel);
    Deno.mkdirSync(`${tmp}/${rel}`);
  };
  // Asynchronous, so that a signal is seen between two files.
  const copy = async (from: string, rel: string) => {
    check();
    files.push(rel);
    await Deno.copyFile(from, `${tmp}/${rel}`);
  };
  const write = async (rel: string, data: Uint8Array | string) => {
    check();
    files.push(rel);
    if (typeof data === "string") {
      await Deno.writeTextFile(`${tmp}/${rel}`, data);
    } else await Deno.writeFile(`${tmp}/${rel}`, data);
  };
  let swapped = false;
  try {
    for (const f of PAGE_FILES) await copy(`${PROJECT_ROOT}web/${f}`, f);
    await write("favicon.ico", favicon());
    files.push("app.js");
    console.error("bundling web/main.ts for the browser ...");
    try {
      await bundlePage(`${tmp}/app.js`, controller.signal);
    } catch (e) {
      check();
      throw e;
    }
    folder("wasm");
    const wasm = wasmDir();
    for (const f of WASM_FILES) await copy(wasm + f, `wasm/${f}`);
    folder("models");
    for (const g of manifest.generators) {
      folder(`models/${g.name}`);
      // Only the files the page loads, each inside the models folder.
      const found = generatorFiles(models, g.name);
      for (const [name, real] of found?.files ?? []) {
        await copy(real, `models/${g.name}/${name}`);
      }
    }
    // The Train view's datasets: the training splits, gzipped IDX.
    folder("data");
    for (const name of DATASET_NAMES) {
      let made;
      try {
        made = await trainingFiles(name);
      } catch (e) {
        console.error(
          `left out data/${name}: ${(e as Error).message} (the Train view ` +
            "says so when it is asked for)",
        );
        continue;
      }
      folder(`data/${name}`);
      for (const f of DATA_FILES) await write(`data/${name}/${f}`, made[f]);
    }
    await write("manifest.json", JSON.stringify(manifest, null, 1));
    const record: BuildRecord = {
      by: "deno task build:web",
      files: [...files].sort(),
      folders: [...folders].sort(),
    };
    await write(MARKER, JSON.stringify(record, null, 1) + "\n");
    check();

    // The swap: synchronous from here on, so a signal waits for its end.
    if (state.kind === "new") {
      Deno.renameSync(tmp, target);
    } else if (state.kind === "empty") {
      Deno.removeSync(target); // not recursive: fails if no longer empty
      Deno.renameSync(tmp, target);
    } else {
      const old = `${target}.old-${crypto.randomUUID().slice(0, 8)}`;
      Deno.renameSync(target, old);
      try {
        Deno.renameSync(tmp, target);
      } catch (e) {
        Deno.renameSync(old, target);
        throw e;
      }
      swapped = true; // the new build is in place, whatever befalls the old
      if (!removeBuild(old, state.files, state.folders)) {
        console.error(
          `note: the earlier build, moved to ${old}, still holds files it did not write (added during the build?); they are kept there`,
        );
      }
    }
    swapped = true;
  } catch (e) {
    if (e instanceof Interrupted) throw e;
    throw new Error(`cannot write ${out}: ${writeFailure(e)}`);
  } finally {
    if (!swapped) removeBuild(tmp, files, folders);
  }

  let bytes = 0, pageBytes = 0, dataBytes = 0;
  for (const f of files) {
    const size = Deno.statSync(`${target}/${f}`).size;
    bytes += size;
    if (f.startsWith("data/")) dataBytes += size;
    else if (!f.startsWith("models/")) pageBytes += size;
  }
  const mb = (n: number) => (n / 1e6).toFixed(1);
  for (const s of manifest.skipped) {
    // A model.json that is not JSON is listed all the same: the page says why.
    const listed = manifest.generators.some((g) => g.name === s.name);
    console.error(
      `${
        listed ? "listed, broken" : "left out"
      } ${modelsName}/${s.name}: ${s.why}`,
    );
  }
  console.error(
    `wrote ${out}: ${manifest.generators.length} generators; ` +
      `${mb(bytes)} MB in all, the page and its assets ${mb(pageBytes)} MB, ` +
      `the Train view's datasets ${mb(dataBytes)} MB. ` +
      `Serve it with any static server, e.g. python3 -m http.server -d ${out}`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
