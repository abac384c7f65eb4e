/**
 * `deno task notebooks`: executes the notebooks headlessly in the real Deno
 * Jupyter kernel and fails on an error, a missing picture or a lost output
 * (see cli/run_notebook.py for how outputs are collected).
 *
 * Writing rule: every run writes runs/notebooks/NAME.ipynb; the committed
 * notebooks/NAME.ipynb is replaced only with `--overwrite`, which is
 * refused with `--quick` or while a notebook parameter (GAN_*) is set in
 * the environment, and then only by a complete, checked run, atomically.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  checkWritableFile,
  PROJECT_ROOT,
  writeFileAtomic,
} from "../lib/io/files.ts";
import { intFlag, runCli, UsageError } from "./args.ts";

const USAGE =
  `Usage: deno task notebooks [--quick] [--overwrite] [--timeout S] [--dir DIR] [NAME ...]

Runs notebooks/*.ipynb (or only the NAMEs given, e.g. gan_mnist) top to
bottom in the Deno Jupyter kernel and writes each one, with its outputs, to
runs/notebooks/NAME.ipynb. The committed notebooks are left alone.

  --quick        small parameters (1 epoch on 2,048 images, 1,000 samples):
                 checks that every cell runs and shows what it should, in
                 a few minutes. A GAN_* variable set in the environment
                 wins over the quick value.
  (default)      the parameters set in each notebook's first code cell, or
                 the GAN_* variables set in the environment
  --overwrite    on success, also write the outputs into notebooks/NAME.ipynb
                 (the committed ones). Only with the notebooks' own
                 parameters: refused with --quick or while a GAN_* variable
                 is set.
  --timeout S    seconds allowed per cell (default: 1800 quick, none full)
  --dir DIR      the notebooks' folder (default notebooks/)
  --help         this text

Notebook parameters (read and checked in each notebook's first code cell,
and checked here before a kernel starts): GAN_EPOCHS, GAN_LIMIT,
GAN_EVAL_SAMPLES, GAN_BACKEND, GAN_PRESET (not gan_mnist), GAN_TOY_ROUNDS
(gan_mnist only), GAN_DATASET (conditional_gan only); see docs/notebooks.md.

Needs Python 3 with jupyter_client (Debian/Ubuntu:
sudo apt-get install python3-nbclient python3-ipykernel). The Deno kernel is
registered with \`deno jupyter --install\` when missing.`;

/** Environment of a quick run: the notebooks read these in their first cell. */
export const QUICK_ENV: Record<string, string> = {
  GAN_EPOCHS: "1",
  GAN_LIMIT: "2048",
  GAN_EVAL_SAMPLES: "1000",
  GAN_TOY_ROUNDS: "300",
};

/**
 * GAN_* variables that are not notebook parameters: where the datasets are
 * read from and cached (lib/data.ts). They do not change what a notebook
 * computes, so `--overwrite` allows them.
 */
export const NOT_PARAMETERS: readonly string[] = [
  "GAN_DATA_DIR",
  "GAN_CACHE_DIR",
];

/** The notebook parameters set in `env`, sorted. */
export function parametersSet(env: Record<string, string>): string[] {
  return Object.keys(env)
    .filter((k) => k.startsWith("GAN_") && !NOT_PARAMETERS.includes(k))
    .sort();
}

/**
 * The environment a run adds to the user's: plain text outputs, and for
 * `--quick` its small values, except where the user set the variable (the
 * user's value wins; `notes` says so, one line each).
 */
export function runEnvironment(
  quick: boolean,
  userEnv: Record<string, string>,
): { env: Record<string, string>; notes: string[] } {
  const env: Record<string, string> = { NO_COLOR: "1" };
  const notes: string[] = [];
  if (quick) {
    for (const [k, v] of Object.entries(QUICK_ENV)) {
      if (userEnv[k] === undefined) env[k] = v;
      else {
        notes.push(
          `${k}=${userEnv[k]} from the environment overrides --quick's ${v}`,
        );
      }
    }
  }
  return { env, notes };
}

/** The source of a notebook's first code cell ("" when it has none). */
export function firstCodeCell(path: string): string {
  const nb = JSON.parse(Deno.readTextFileSync(path));
  const cell = (nb.cells ?? []).find((c: { cell_type: string }) =>
    c.cell_type === "code"
  );
  if (!cell) return "";
  return Array.isArray(cell.source) ? cell.source.join("") : cell.source;
}

/** The GAN_* variables a parameter cell reads (the names it quotes). */
export function parameterNames(source: string): string[] {
  return [
    ...new Set([...source.matchAll(/["'](GAN_[A-Z0-9_]+)["']/g)]
      .map((m) => m[1])),
  ];
}

/**
 * Runs the parameter cells (a first code cell that imports
 * lib/notebook/params.ts) of `notebooks` in one Deno process, with `env`,
 * the whole environment the kernel will get, so that their own checks
 * refuse a bad value before any kernel starts.
 *
 * @returns per notebook whose cell failed: the message, and whether it was
 *   a parameter's (a NotebookParameterError).
 */
export async function checkParameterCells(
  notebooks: { name: string; path: string; source: string }[],
  env: Record<string, string>,
): Promise<{ name: string; message: string; parameter: boolean }[]> {
  const cells = notebooks.filter((n) =>
    n.source.includes("lib/notebook/params.ts")
  );
  if (!cells.length) return [];
  const tmp = await Deno.makeTempDir({ prefix: "notebook-params-" });
  try {
    const modules: [string, string][] = [];
    for (const { name, path, source } of cells) {
      // The cell's relative imports ("../lib/...") resolved from its folder.
      const base = pathToFileURL(resolve(path, "..")).href;
      const code = source.replace(
        /(\bfrom\s*|\bimport\s*\(?\s*)(["'])(\.\.?\/[^"']*)\2/g,
        (_, kw, q, spec) => `${kw}${q}${new URL(spec, `${base}/`)}${q}`,
      );
      const file = `${tmp}/${name}.ts`;
      await Deno.writeTextFile(file, code);
      modules.push([name, pathToFileURL(file).href]);
    }
    const script = `
      const out = [];
      for (const [name, url] of ${JSON.stringify(modules)}) {
        try { await import(url); } catch (e) {
          out.push({ name, message: e?.message ?? String(e), parameter: e?.name === "NotebookParameterError" });
        }
      }
      console.log(JSON.stringify(out));`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", `${PROJECT_ROOT}deno.json`, script],
      cwd: resolve(cells[0].path, ".."),
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout).trim();
    if (!r.success) {
      throw new Error(
        `could not run the notebooks' parameter cells: ${
          new TextDecoder().decode(r.stderr).trim()
        }`,
      );
    }
    return JSON.parse(text.split("\n").pop()!);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function output(cmd: string, args: string[]) {
  try {
    const r = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      ok: r.success,
      text: new TextDecoder().decode(r.stdout).trim(),
    };
  } catch {
    return { ok: false, text: "" };
  }
}

/** A Python that has jupyter_client: Debian's first, then PATH's. */
async function findPython(): Promise<string> {
  for (const py of ["/usr/bin/python3", "python3"]) {
    if ((await output(py, ["-c", "import jupyter_client"])).ok) return py;
  }
  throw new Error(
    "no Python 3 with jupyter_client found. On Debian/Ubuntu: " +
      "sudo apt-get install python3-nbclient python3-ipykernel",
  );
}

async function ensureKernel(python: string): Promise<void> {
  const specs = await output(python, [
    "-c",
    "from jupyter_client.kernelspec import KernelSpecManager as K; print(' '.join(K().find_kernel_specs()))",
  ]);
  if (specs.text.split(" ").includes("deno")) return;
  console.error("registering the Deno kernel: deno jupyter --install");
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["jupyter", "--install"],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!r.success) throw new Error("deno jupyter --install failed");
}

/** `path` relative to the project when inside it. */
function shown(path: string): string {
  return path.startsWith(PROJECT_ROOT) ? path.slice(PROJECT_ROOT.length) : path;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      overwrite: { type: "boolean", default: false },
      timeout: { type: "string" },
      dir: { type: "string" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const dir = values.dir === undefined
    ? `${PROJECT_ROOT}notebooks`
    : resolve(values.dir);
  let all: string[];
  try {
    all = [...Deno.readDirSync(dir)]
      .map((e) => e.name)
      .filter((n) => n.endsWith(".ipynb"))
      .map((n) => n.slice(0, -".ipynb".length))
      .sort();
  } catch {
    throw new UsageError(`--dir ${values.dir}: not a folder that can be read`);
  }
  const names = positionals.length
    ? positionals.map((p) => p.replace(/^.*\//, "").replace(/\.ipynb$/, ""))
    : all;
  for (const n of names) {
    if (!all.includes(n)) {
      throw new UsageError(
        `no notebook "${n}" in ${shown(dir)}/; expected one of ${
          all.join(", ") || "(none there)"
        }`,
      );
    }
  }
  const timeout = intFlag("timeout", values.timeout) ??
    (values.quick ? 1800 : 0);
  const userEnv = Deno.env.toObject();
  const set = parametersSet(userEnv);
  if (values.overwrite && values.quick) {
    throw new UsageError(
      "--overwrite with --quick: the committed outputs come from the " +
        "notebooks' own parameters, not the quick ones. Drop --quick to " +
        "replace them, or --overwrite to write runs/notebooks/ only",
    );
  }
  if (values.overwrite && set.length) {
    throw new UsageError(
      `--overwrite while ${set.map((k) => `${k}=${userEnv[k]}`).join(", ")} ` +
        `${set.length > 1 ? "are" : "is"} set: the committed outputs come ` +
        "from the notebooks' own parameters. Unset " +
        `${set.length > 1 ? "them" : "it"} (env -u ${
          set.join(" -u ")
        } deno task notebooks --overwrite ...), or drop --overwrite to ` +
        "write runs/notebooks/ only",
    );
  }
  const notebooks = names.map((name) => {
    const path = `${dir}/${name}.ipynb`;
    let source: string;
    try {
      source = firstCodeCell(path);
    } catch (e) {
      throw new Error(
        `${shown(path)}: not a notebook (${(e as Error).message})`,
      );
    }
    return { name, path, source };
  });
  if (values.overwrite) {
    for (const n of notebooks) {
      checkWritableFile(n.path);
    }
  }

  const { env, notes } = runEnvironment(values.quick, userEnv);
  for (const note of notes) console.error(note);
  // The private runtime folder Mesa's Vulkan driver wants while WebGPU is
  // probed.
  env.XDG_RUNTIME_DIR = userEnv.XDG_RUNTIME_DIR ??
    await Deno.makeTempDir({ prefix: "xdg-" });
  const read = new Set(notebooks.flatMap((n) => parameterNames(n.source)));
  const unread = set.filter((k) => !read.has(k));
  if (unread.length) {
    console.error(
      `note: ${unread.join(", ")} ${unread.length > 1 ? "are" : "is"} set ` +
        `but no notebook run here reads ${unread.length > 1 ? "them" : "it"} ` +
        `(${names.join(", ")} read ${[...read].sort().join(", ")})`,
    );
  }
  const problems = await checkParameterCells(notebooks, {
    ...userEnv,
    ...env,
  });
  if (problems.some((p) => p.parameter)) {
    // One line per problem, with the notebooks that share it.
    const byMessage = new Map<string, string[]>();
    for (const p of problems.filter((p) => p.parameter)) {
      byMessage.set(p.message, [...byMessage.get(p.message) ?? [], p.name]);
    }
    throw new UsageError(
      [...byMessage].map(([m, ns]) => `${ns.join(", ")}: ${m}`).join(
        "\nerror: ",
      ),
    );
  }
  if (problems.length) {
    throw new Error(
      problems.map((p) => `${p.name}: its parameter cell fails: ${p.message}`)
        .join("\n"),
    );
  }

  const python = await findPython();
  await ensureKernel(python);
  const outDir = `${PROJECT_ROOT}runs/notebooks`;
  await Deno.mkdir(outDir, { recursive: true });

  const failed: string[] = [];
  for (const { name, path, source } of notebooks) {
    const out = `${outDir}/${name}.ipynb`;
    const before = await Deno.readFile(path);
    const merged: Record<string, string> = { ...userEnv, ...env };
    const reads = parameterNames(source);
    const given = parametersSet(merged)
      .filter((k) => !reads.length || reads.includes(k))
      .map((k) => `${k}=${merged[k]}`);
    console.error(
      `running ${name} (${
        given.length ? `${given.join(", ")}; else ` : ""
      }its own parameters) -> ${shown(out)}${
        values.overwrite ? `, then ${shown(path)}` : ""
      }`,
    );
    const r = await new Deno.Command(python, {
      args: [
        `${PROJECT_ROOT}cli/run_notebook.py`,
        path,
        out,
        "--timeout",
        String(timeout),
        ...Object.entries(env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!r.success) {
      failed.push(name);
    } else if (values.overwrite) {
      // Only a complete, checked run replaces the committed notebook, and
      // not one edited (in Jupyter, say) while it ran.
      const now = await Deno.readFile(path);
      if (now.length !== before.length || now.some((b, i) => b !== before[i])) {
        console.error(
          `${shown(path)} changed while it ran: left as it is; this run's ` +
            `outputs are in ${shown(out)}`,
        );
        failed.push(name);
        continue;
      }
      await writeFileAtomic(path, await Deno.readFile(out));
      console.error(`outputs written into ${shown(path)} (--overwrite)`);
    }
  }
  const where = shown(dir);
  if (failed.length) {
    console.error(
      `FAILED: ${failed.join(", ")} (outputs in runs/notebooks/; ` +
        `${failed.map((n) => `${where}/${n}.ipynb`).join(", ")} left as ${
          failed.length > 1 ? "they were" : "it was"
        })`,
    );
    return 1;
  }
  if (!values.overwrite) {
    const own = values.quick || parametersSet({ ...userEnv, ...env }).length
      ? " (with the notebooks' own parameters: no --quick, no GAN_* variable set)"
      : "";
    console.error(
      `outputs in runs/notebooks/; ${where}/ left as it was. To replace the ` +
        `committed outputs: deno task notebooks --overwrite ${
          positionals.length ? names.join(" ") : ""
        }`.trimEnd() + own,
    );
  }
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
