/**
 * `deno task serve`: the web page with the trained generators, served by
 * Deno's own HTTP server from this checkout (no CDN, no network needed).
 *
 * @module
 */

import { PROJECT_ROOT } from "../lib/files.ts";
import { intFlag, parseFlags, runCli, UsageError } from "./args.ts";
import {
  buildManifest,
  bundlePage,
  contentType,
  PAGE_FILES,
  WASM_FILES,
  wasmDir,
} from "./site.ts";

const USAGE = `Usage: deno task serve [--port N] [--host H] [--models DIR]

Serves the page that runs the trained generators in a browser (WebGPU,
then WebGL, then wasm), and prints the address to open.

  --port N       port (default 8000; 0 picks a free one)
  --host H       address to listen on (default 127.0.0.1)
  --models DIR   the generators' folder (default models/)
  --help         this text
`;

async function main(): Promise<number> {
  const { values } = parseFlags(Deno.args, {
    port: { type: "string" },
    host: { type: "string" },
    models: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const port = intFlag("port", values.port, 0) ?? 8000;
  if (port > 65535) throw new UsageError(`--port must be at most 65535`);
  const models = values.models ?? `${PROJECT_ROOT}models`;
  try {
    if (!Deno.statSync(models).isDirectory) throw new Error();
  } catch {
    throw new UsageError(`--models ${models} is not a folder`);
  }
  const cache = await Deno.makeTempDir({ prefix: "gan-web-" });
  const bundle = `${cache}/app.js`;
  console.error("bundling web/main.ts for the browser ...");
  await bundlePage(bundle);
  const wasm = wasmDir();

  /** A file's response, or 404 naming it. */
  const file = async (path: string) => {
    try {
      const body = await Deno.readFile(path);
      return new Response(body, {
        headers: { "content-type": contentType(path) },
      });
    } catch {
      return new Response(`not found: ${path.replace(PROJECT_ROOT, "")}`, {
        status: 404,
      });
    }
  };
  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const path = decodeURIComponent(url.pathname);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    if (path === "/" || path === "/index.html") {
      return file(`${PROJECT_ROOT}web/index.html`);
    }
    const name = path.slice(1);
    if (PAGE_FILES.includes(name)) return file(`${PROJECT_ROOT}web/${name}`);
    if (name === "app.js") return file(bundle);
    if (name === "manifest.json") {
      // Built on every request: a new generator shows on reload.
      return Response.json(await buildManifest(models));
    }
    if (name.startsWith("wasm/") && WASM_FILES.includes(name.slice(5))) {
      return file(`${wasm}${name.slice(5)}`);
    }
    if (name.startsWith("models/")) return file(`${models}/${name.slice(7)}`);
    return new Response("not found", { status: 404 });
  };
  const controller = new AbortController();
  Deno.addSignalListener("SIGINT", () => controller.abort());
  const server = Deno.serve({
    port,
    hostname: values.host ?? "127.0.0.1",
    signal: controller.signal,
    onListen: ({ hostname, port }) => {
      console.log(`serving http://${hostname}:${port}/ (Ctrl-C to stop)`);
    },
  }, handler);
  await server.finished;
  await Deno.remove(cache, { recursive: true }).catch(() => {});
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
