/**
 * `deno task build:web`: writes the web page with the trained generators as
 * a folder of static files that any static host serves (GitHub Pages, a
 * plain `python3 -m http.server`, ...).
 *
 * @module
 */

import { PROJECT_ROOT } from "../lib/files.ts";
import { parseFlags, runCli, UsageError } from "./args.ts";
import {
  buildManifest,
  bundlePage,
  PAGE_FILES,
  WASM_FILES,
  wasmDir,
} from "./site.ts";

const USAGE = `Usage: deno task build:web [--out DIR] [--models DIR]

Writes the page, its bundled script, TF.js's wasm files, the generators and
their manifest into one folder that any static file server can serve.

  --out DIR      where to write (default dist/web; replaced)
  --models DIR   the generators' folder (default models/)
  --help         this text
`;

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
  const manifest = await buildManifest(models);
  await Deno.remove(out, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${out}/wasm`, { recursive: true });
  for (const f of PAGE_FILES) {
    await Deno.copyFile(`${PROJECT_ROOT}web/${f}`, `${out}/${f}`);
  }
  await bundlePage(`${out}/app.js`);
  const wasm = wasmDir();
  for (const f of WASM_FILES) await Deno.copyFile(wasm + f, `${out}/wasm/${f}`);
  for (const g of manifest.generators) {
    const dir = `${out}/models/${g.name}`;
    await Deno.mkdir(dir, { recursive: true });
    for (const e of Deno.readDirSync(`${models}/${g.name}`)) {
      if (e.isFile) {
        await Deno.copyFile(
          `${models}/${g.name}/${e.name}`,
          `${dir}/${e.name}`,
        );
      }
    }
  }
  await Deno.writeTextFile(
    `${out}/manifest.json`,
    JSON.stringify(manifest, null, 1),
  );
  let bytes = 0, pageBytes = 0;
  const walk = (dir: string, page: boolean) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path, page && e.name !== "models");
      else {
        const size = Deno.statSync(path).size;
        bytes += size;
        if (page) pageBytes += size;
      }
    }
  };
  walk(out, true);
  const mb = (n: number) => (n / 1e6).toFixed(1);
  for (const s of manifest.skipped) {
    console.error(`left out models/${s.name}: ${s.why}`);
  }
  console.error(
    `wrote ${out}: ${manifest.generators.length} generators; ` +
      `${mb(bytes)} MB in all, the page and its assets ${mb(pageBytes)} MB. ` +
      `Serve it with any static server, e.g. python3 -m http.server -d ${out}`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
