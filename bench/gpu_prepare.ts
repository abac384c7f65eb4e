/**
 * `deno task gpu:prepare`: writes `.gpu/`, everything a bare GPU machine
 * without registry access needs to run `bench/gpu_check.sh`:
 *
 * - `deno.xz`: this Deno binary (from the npm package `deno`);
 * - `vulkan/`: Debian's Vulkan loader (`libvulkan1`) and glvnd's EGL library
 *   (`libegl1`, `libglvnd0`), which NVIDIA's Vulkan driver loads, each
 *   needing only libc, downloaded with `apt-get download` and unpacked, with
 *   the `.deb`s beside;
 * - `node_modules.tar.xz`: the native parts of `@napi-rs/canvas` and
 *   `@resvg/resvg-js` (pictures), which a bundle cannot hold;
 * - `bundles.tar.xz`: `deno bundle`s of the check (`bench/gpu_check.ts`),
 *   the bench (`cli/bench.ts`) and the training CLI (`cli/train.ts`);
 * - `data/mnist/`: the four MNIST IDX files, gzipped;
 * - `reference.json`: the figures of the check's training epoch on this
 *   machine's CPU (wasm), same seed, for the GPU's to be compared with;
 * - `manifest.json`: what each file is, its size, and the commit built from.
 *
 * The whole stays under 64 MiB (what one device call carries). `--quick`
 * records the reference for the check's `--quick` run (500 images), as
 * the test suite does on the software adapter.
 *
 * @module
 */

import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { loadDataset } from "../lib/data.ts";
import { PROJECT_ROOT, sha256Hex } from "../lib/io/files.ts";
import { IDX_FILES } from "../lib/data.ts";
import { encodeIdx } from "../lib/io/idx.ts";
import { trainArgs } from "./gpu_check_args.ts";

/** The most one device call carries, and so the most `.gpu/` may hold. */
export const MAX_BYTES = 64 * 1024 * 1024;

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    quick: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "Usage: deno task gpu:prepare [--out .gpu] [--quick]\n\n" +
      "Writes the folder bench/gpu_check.sh needs on a GPU machine without " +
      "registry access (see docs/speed.md).",
  );
  Deno.exit(0);
}
const quick = values.quick ?? false;
const out = values.out ?? `${PROJECT_ROOT}.gpu`;
const started = performance.now();
const say = (m: string) =>
  console.error(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${m}`);

/** Runs a command; throws with its output when it fails. */
async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  let r;
  try {
    r = await new Deno.Command(cmd, {
      args,
      cwd,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    throw new Error(`cannot run ${cmd}: ${(e as Error).message}`);
  }
  const dec = new TextDecoder();
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${r.code}): ${
        dec.decode(r.stderr).slice(-1500)
      }`,
    );
  }
  return dec.decode(r.stdout);
}

await Deno.remove(out, { recursive: true }).catch(() => {});
await Deno.mkdir(out, { recursive: true });
const tmp = await Deno.makeTempDir();
const manifest: Record<string, unknown> = {
  built: new Date().toISOString(),
  quick,
};

try {
  // Deno itself.
  const deno = Deno.realPathSync(Deno.execPath());
  say(`compressing ${deno} (Deno ${Deno.version.deno})`);
  await run("sh", ["-c", `xz -T0 -6 -c "$0" > "$1"`, deno, `${out}/deno.xz`]);
  manifest.deno = { version: Deno.version.deno, from: deno };

  // The Vulkan loader, and glvnd's EGL library: NVIDIA's Vulkan driver
  // (libGLX_nvidia.so.0, 580 series) loads libEGL.so.1 when it starts and,
  // on a machine without it, fails to start (VK_ERROR_INITIALIZATION_FAILED:
  // the loader then finds "no drivers" and Deno no WebGPU adapter). Each
  // package needs only libc (libegl1 also names Mesa's EGL, which a GPU
  // machine does not need: NVIDIA's EGL vendor file is there).
  const debs = ["libvulkan1", "libegl1", "libglvnd0"];
  say(`downloading ${debs.join(", ")} with apt-get download`);
  try {
    await run("apt-get", ["download", ...debs], tmp);
  } catch {
    await run("apt-get", ["update", "-q"]);
    await run("apt-get", ["download", ...debs], tmp);
  }
  await Deno.mkdir(`${out}/vulkan`);
  const vulkan: Record<string, string> = {};
  for (const e of Deno.readDirSync(tmp)) {
    if (!e.name.endsWith(".deb")) continue;
    await Deno.copyFile(`${tmp}/${e.name}`, `${out}/vulkan/${e.name}`);
    await run("dpkg-deb", ["-x", `${tmp}/${e.name}`, `${out}/vulkan`]);
    vulkan[e.name] =
      (await run("dpkg-deb", ["-f", `${tmp}/${e.name}`, "Depends"])).trim();
  }
  manifest.vulkan = vulkan;

  // The native parts of the picture packages.
  say("packing the native picture libraries");
  const require = createRequire(`${PROJECT_ROOT}lib/pictures/figures.ts`);
  const stage = `${tmp}/stage`;
  const packages = [
    "@napi-rs/canvas",
    "@napi-rs/canvas-linux-x64-gnu",
    "@resvg/resvg-js",
    "@resvg/resvg-js-linux-x64-gnu",
  ];
  for (const name of packages) {
    // Platform packages resolve from their parent package's folder.
    const parent = name.replace(/-linux-x64-gnu$/, "");
    const from = createRequire(require.resolve(`${parent}/package.json`))
      .resolve(`${name}/package.json`).replace(/\/package\.json$/, "");
    await run("mkdir", ["-p", `${stage}/node_modules/${name}`]);
    await run("cp", ["-rL", `${from}/.`, `${stage}/node_modules/${name}/`]);
  }
  await run("tar", [
    "-cJf",
    `${out}/node_modules.tar.xz`,
    "-C",
    stage,
    "node_modules",
  ]);
  manifest.node_modules = packages;

  // The bundles.
  say("bundling the check, the bench and the training CLI");
  await Deno.mkdir(`${tmp}/bundles`);
  const entries = {
    gpu_check: "bench/gpu_check.ts",
    bench: "cli/bench.ts",
    train: "cli/train.ts",
  };
  for (const [name, entry] of Object.entries(entries)) {
    await run(Deno.execPath(), [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      "--external",
      "@napi-rs/canvas",
      "--external",
      "@resvg/resvg-js",
      "-o",
      `${tmp}/bundles/${name}.js`,
      `${PROJECT_ROOT}${entry}`,
    ], PROJECT_ROOT);
  }
  await run("tar", ["-cJf", `${out}/bundles.tar.xz`, "-C", tmp, "bundles"]);
  manifest.bundles = entries;

  // MNIST.
  say("writing MNIST's IDX files, gzipped");
  const mnist = await loadDataset("mnist", { log: () => {} });
  await Deno.mkdir(`${out}/data/mnist`, { recursive: true });
  const files: [string, number[], Uint8Array][] = [
    [IDX_FILES.trainImages, [mnist.train.size, 28, 28], mnist.train.images],
    [IDX_FILES.trainLabels, [mnist.train.size], mnist.train.labels],
    [IDX_FILES.testImages, [mnist.test.size, 28, 28], mnist.test.images],
    [IDX_FILES.testLabels, [mnist.test.size], mnist.test.labels],
  ];
  for (const [name, dims, data] of files) {
    await Deno.writeFile(
      `${out}/data/mnist/${name}.gz`,
      gzipSync(encodeIdx({ dims, data }), { level: 9 }),
    );
  }
  manifest.data = `MNIST from ${mnist.source}`;

  // The CPU's figures for the check's training epoch.
  const args = trainArgs(quick);
  say(`training the reference epoch on wasm: ${args.join(" ")}`);
  await run(Deno.execPath(), [
    "run",
    "-A",
    `${PROJECT_ROOT}cli/train.ts`,
    ...args,
    "--backend",
    "wasm",
    "--out",
    `${tmp}/reference`,
  ], PROJECT_ROOT);
  const [first] = JSON.parse(
    await Deno.readTextFile(`${tmp}/reference/history.json`),
  );
  await Deno.writeTextFile(
    `${out}/reference.json`,
    JSON.stringify({ args, backend: "wasm", figures: first }, null, 1),
  );

  // What is here, and from which commit.
  const commit = await run("git", ["rev-parse", "HEAD"], PROJECT_ROOT).catch(
    () => "",
  );
  const dirty = await run("git", [
    "status",
    "--porcelain",
    "--untracked-files=no",
  ], PROJECT_ROOT)
    .catch(() => "");
  manifest.commit = commit.trim() +
    (dirty.trim() ? " (with uncommitted changes)" : "");
  const sizes: Record<string, number> = {};
  const walk = (dir: string, prefix = "") => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path, `${prefix}${e.name}/`);
      else if (e.isFile) sizes[`${prefix}${e.name}`] = Deno.statSync(path).size;
    }
  };
  walk(out);
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  manifest.files = sizes;
  manifest.total_bytes = total;
  manifest.sha256_deno = await sha256Hex(await Deno.readFile(`${out}/deno.xz`));
  await Deno.writeTextFile(
    `${out}/manifest.json`,
    JSON.stringify(manifest, null, 1),
  );
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  if (total > MAX_BYTES) {
    throw new Error(
      `${out} holds ${mib(total)} MiB, more than the ${
        mib(MAX_BYTES)
      } MiB a device call carries`,
    );
  }
  say(`wrote ${out}: ${mib(total)} MiB (limit ${mib(MAX_BYTES)} MiB)`);
  console.log(
    `run on a GPU machine, from the repository root with ${out} beside it:\n` +
      "  bash bench/gpu_check.sh        # writes $OUT (or runs/gpu-check/)",
  );
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  Deno.exit(1);
} finally {
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
