/**
 * `deno task serve`: the web page with the trained generators, served by
 * Deno's own HTTP server from this checkout (no CDN, no network needed).
 *
 * It serves only what the page loads: `web/`'s page files, the bundled
 * script, TF.js's wasm files, the manifest, an icon, and of each generator
 * folder the files {@linkcode generatorFiles} lists (never a dotfile, never
 * a file whose real path leaves the models folder). It answers GET and HEAD
 * only, and only to requests whose Host header names this machine as the
 * server was bound (so that a web page elsewhere cannot read it through DNS
 * rebinding).
 *
 * @module
 */

import { DATASET_NAMES, type DatasetName } from "../lib/data.ts";
import { PROJECT_ROOT } from "../lib/io/files.ts";
import {
  intFlag,
  parseFlags,
  runCli,
  stopSignals,
  UsageError,
} from "./args.ts";
import {
  buildManifest,
  bundlePage,
  contentType,
  DATA_FILES,
  favicon,
  generatorFiles,
  PAGE_FILES,
  plainName,
  trainingFiles,
  WASM_FILES,
  wasmDir,
} from "./site.ts";

const USAGE = `Usage: deno task serve [--port N] [--host H] [--models DIR]

Serves the page that runs the trained generators in a browser (WebGPU,
then WebGL, then wasm), and prints the address to open.

  --port N       port (default 8000; 0 picks a free one)
  --host H       address to listen on (default 127.0.0.1, this machine only;
                 0.0.0.0 for every address, which lets other machines in)
  --models DIR   the generators' folder (default models/)
  --help         this text
`;

/** True for the addresses that mean "every address of this machine". */
function isWildcard(host: string): boolean {
  return ["0.0.0.0", "::", "[::]"].includes(host);
}

/** This machine's host name, lower-case; "" where it has none. */
function hostName(): string {
  try {
    return Deno.hostname().toLowerCase();
  } catch {
    return "";
  }
}

/** `host` as it appears in a URL or a Host header: IPv6 in brackets. */
function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * The host names that a request's Host header may name, for a server bound
 * to `bound`: the loopback names (localhost, [::1]; any 127.x.y.z is taken
 * too, see {@linkcode hostAccepted}) and `bound` itself. Bound to every
 * address (0.0.0.0 or ::), also this machine's host name and the addresses
 * of its network interfaces, since other machines reach it by those.
 */
export function acceptedHosts(bound: string): Set<string> {
  const hosts = new Set(["localhost", "[::1]", "127.0.0.1"]);
  if (isWildcard(bound)) {
    if (hostName()) hosts.add(hostName());
    try {
      for (const i of Deno.networkInterfaces()) {
        hosts.add(urlHost(i.address.toLowerCase()));
      }
    } catch {
      // no interfaces to list: loopback only
    }
  } else {
    hosts.add(urlHost(bound.toLowerCase()).replace(/\.$/, ""));
  }
  return hosts;
}

/**
 * True when a request's Host header (`header`; null when the request has
 * none) names one of `accepted`, or any 127.x.y.z, with or without a port.
 * Any port is taken, since a forwarded port (`ssh -L 9000:localhost:8000`)
 * arrives with the client's port in it. A request without a Host header
 * (HTTP/1.0) is taken: DNS rebinding works through a browser, and browsers
 * always send one.
 */
export function hostAccepted(
  header: string | null,
  accepted: Set<string>,
): boolean {
  if (header === null) return true;
  const h = header.trim().toLowerCase();
  const m = h.match(/^(\[[0-9a-f:.]+\]|[^:[\]]+)(:\d{1,5})?$/);
  if (!m) return false;
  const name = m[1].replace(/\.$/, "");
  return accepted.has(name) || /^127(\.\d{1,3}){3}$/.test(name);
}

/** A plain-text answer. */
function text(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`${body}\n`, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });
}

/** A listening error in words: what is wrong, and what to do. */
function listenError(e: unknown, host: string, port: number): Error {
  const again = "pick another with --port N (--port 0 picks a free one)";
  if (e instanceof Deno.errors.AddrInUse) {
    return new Error(
      `port ${port} is in use (another server?); stop it, or ${again}`,
    );
  }
  if (e instanceof Deno.errors.AddrNotAvailable) {
    return new Error(
      `cannot listen on ${host}: it is not an address of this machine; use --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every address)`,
    );
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new Error(
      `cannot listen on port ${port}: permission denied (ports below 1024 need privileges); ${again}`,
    );
  }
  return new Error(
    `cannot listen on ${urlHost(host)}:${port}: ${(e as Error).message}`,
  );
}

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
  const host = values.host ?? "127.0.0.1";
  if (host.trim() === "") {
    throw new UsageError(`--host must name an address, e.g. 127.0.0.1`);
  }
  const models = values.models ?? `${PROJECT_ROOT}models`;
  try {
    if (!Deno.statSync(models).isDirectory) throw new Error();
  } catch {
    throw new UsageError(`--models ${models} is not a folder`);
  }
  const wasm = wasmDir();
  const accepted = acceptedHosts(host);
  const icon = favicon();

  // Ctrl-C, kill and a closed terminal all stop it the same way, so that
  // its temporary folder is removed on every exit but SIGKILL's.
  using controller = stopSignals();

  let address = ""; // the address printed, once bound
  let bundle = "";
  // Settled once the bundle is written (or failed): a request for it that
  // comes while bundling waits for it.
  const bundled = Promise.withResolvers<void>();
  bundled.promise.catch(() => {}); // said by main, not as an unhandled error
  /** A file's response, or 404 naming what was asked for. */
  const file = async (path: string, asked: string) => {
    let body: Uint8Array;
    try {
      body = await Deno.readFile(path);
    } catch {
      return text(404, `not found: ${asked}`);
    }
    return new Response(body as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": contentType(path),
        "x-content-type-options": "nosniff",
      },
    });
  };
  /** Each dataset's files for the Train view (`data/NAME/F`), once made. */
  const datasets = new Map<
    DatasetName,
    ReturnType<typeof trainingFiles>
  >();
  const handler = async (request: Request): Promise<Response> => {
    if (!hostAccepted(request.headers.get("host"), accepted)) {
      return text(
        403,
        `this server answers requests for ${
          [...accepted].join(", ")
        } (or any 127.x.y.z) only, so that other web pages cannot read it (DNS rebinding); open ${address}`,
      );
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(
        405,
        `${request.method} is not allowed: this server only serves files (GET, HEAD)`,
        { allow: "GET, HEAD" },
      );
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(request.url).pathname);
    } catch {
      return text(400, "bad path encoding");
    }
    // No part of a path served is hidden or climbs out (".", "..", ".env").
    const parts = path.split("/").slice(1);
    if (!parts.every((p, i) => plainName(p) || (p === "" && i === 0))) {
      return text(404, `not found: ${path}`);
    }
    const name = parts.join("/");
    if (name === "" || name === "index.html") {
      return file(`${PROJECT_ROOT}web/index.html`, path);
    }
    if (PAGE_FILES.includes(name)) {
      return file(`${PROJECT_ROOT}web/${name}`, path);
    }
    if (name === "app.js") {
      await bundled.promise;
      return file(bundle, path);
    }
    if (name === "favicon.ico") {
      return new Response(icon as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": contentType(name) },
      });
    }
    if (name === "manifest.json") {
      // Built on every request: a new generator shows on reload.
      return Response.json(await buildManifest(models));
    }
    if (parts[0] === "wasm" && parts.length === 2) {
      if (WASM_FILES.includes(parts[1])) {
        return file(`${wasm}${parts[1]}`, path);
      }
    }
    if (
      parts[0] === "data" && parts.length === 3 &&
      (DATASET_NAMES as readonly string[]).includes(parts[1]) &&
      (DATA_FILES as readonly string[]).includes(parts[2])
    ) {
      // Made once per dataset, when the Train view first asks for it.
      const name = parts[1] as DatasetName;
      let files = datasets.get(name);
      if (!files) {
        files = trainingFiles(name);
        datasets.set(name, files);
        files.catch(() => datasets.delete(name));
      }
      try {
        const body = (await files)[parts[2] as (typeof DATA_FILES)[number]];
        return new Response(body as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": contentType(parts[2]) },
        });
      } catch (e) {
        return text(500, `${name}: ${(e as Error).message}`);
      }
    }
    if (parts[0] === "models" && parts.length === 3) {
      const real = generatorFiles(models, parts[1])?.files.get(parts[2]);
      if (real) return file(real, path);
    }
    return text(404, `not found: ${path}`);
  };

  // Bound before bundling: a busy port fails at once, before any work and
  // before the temporary folder exists.
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      port,
      hostname: host,
      signal: controller.signal,
      onListen: () => {}, // said below, once the bundle is ready
      onError: (e) => {
        console.error(`error: ${(e as Error).message ?? e}`);
        return text(500, "internal error; see the server's output");
      },
    }, handler);
  } catch (e) {
    throw listenError(e, host, port);
  }
  const shown = isWildcard(host)
    ? urlHost(host.includes(":") ? "::1" : "127.0.0.1")
    : urlHost(host);
  address = `http://${shown}:${server.addr.port}/`;
  const cache = await Deno.makeTempDir({ prefix: "gan-web-" });
  try {
    bundle = `${cache}/app.js`;
    console.error("bundling web/main.ts for the browser ...");
    try {
      await bundlePage(bundle, controller.signal);
      bundled.resolve();
    } catch (e) {
      bundled.reject(e);
      if (controller.signal.aborted) return 0; // stopped while bundling
      throw e;
    }
    const also = isWildcard(host)
      ? `; on every address of this machine too${
        hostName() ? `, as ${hostName()}` : ""
      }`
      : "";
    console.log(`serving ${address} (Ctrl-C to stop${also})`);
    await server.finished;
    return 0;
  } finally {
    controller.abort();
    await server.finished.catch(() => {});
    // Our own folder, named at random by makeTempDir: removed whole.
    await Deno.remove(cache, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await runCli(USAGE, main);
