/**
 * `deno task notebooks`: executes the notebooks headlessly in the real Deno
 * Jupyter kernel and fails on an error, a missing picture or a lost output
 * (see cli/run_notebook.py for how outputs are collected).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../lib/files.ts";
import { intFlag, runCli, UsageError } from "./args.ts";

const USAGE = `Usage: deno task notebooks [--quick] [--timeout S] [NAME ...]

Runs notebooks/*.ipynb (or only the NAMEs given, e.g. gan_mnist) top to
bottom in the Deno Jupyter kernel.

  --quick        small parameters (1 epoch on 2,048 images, 1,000 samples):
                 checks that every cell runs and shows what it should, in
                 a few minutes. Writes runs/notebooks/NAME.ipynb and leaves
                 the committed notebooks alone.
  (default)      full parameters, as set in each notebook's first code cell;
                 on success the outputs are written into notebooks/NAME.ipynb.
  --timeout S    seconds allowed per cell (default: 1800 quick, none full)
  --help         this text

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

const NOTEBOOK_DIR = `${PROJECT_ROOT}notebooks`;

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

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      timeout: { type: "string" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const all = [...Deno.readDirSync(NOTEBOOK_DIR)]
    .map((e) => e.name)
    .filter((n) => n.endsWith(".ipynb"))
    .map((n) => n.slice(0, -".ipynb".length))
    .sort();
  const names = positionals.length
    ? positionals.map((p) => p.replace(/^.*\//, "").replace(/\.ipynb$/, ""))
    : all;
  for (const n of names) {
    if (!all.includes(n)) {
      throw new UsageError(
        `no notebook "${n}" in notebooks/; expected one of ${all.join(", ")}`,
      );
    }
  }
  const timeout = intFlag("timeout", values.timeout) ??
    (values.quick ? 1800 : 0);
  const python = await findPython();
  await ensureKernel(python);
  const outDir = `${PROJECT_ROOT}runs/notebooks`;
  await Deno.mkdir(outDir, { recursive: true });

  const env: Record<string, string> = {
    // Plain text outputs (the kernel colours them otherwise), and the private
    // runtime folder Mesa's Vulkan driver wants while WebGPU is probed.
    NO_COLOR: "1",
    XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ??
      await Deno.makeTempDir({ prefix: "xdg-" }),
    ...(values.quick ? QUICK_ENV : {}),
  };
  const failed: string[] = [];
  for (const name of names) {
    const source = `${NOTEBOOK_DIR}/${name}.ipynb`;
    const out = `${outDir}/${name}.ipynb`;
    console.error(
      `running ${name} (${values.quick ? "quick" : "full"} parameters)`,
    );
    const r = await new Deno.Command(python, {
      args: [
        `${PROJECT_ROOT}cli/run_notebook.py`,
        source,
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
    } else if (!values.quick) {
      // Only a complete, checked run replaces the committed outputs.
      await Deno.copyFile(out, source);
      console.error(`outputs written into notebooks/${name}.ipynb`);
    }
  }
  if (failed.length) {
    console.error(
      `FAILED: ${failed.join(", ")} (partial outputs in runs/notebooks/)`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
