/**
 * Driving a headless Chromium from a test through the DevTools protocol
 * over Deno's own WebSocket (no browser download, no npm driver): start it,
 * open a page, evaluate expressions in it, take screenshots.
 *
 * @module
 */

import { root } from "./run.ts";

/** The Chromium to drive, or null where none is installed. */
export function findChromium(): string | null {
  for (
    const p of [
      Deno.env.get("CHROMIUM"),
      "/usr/bin/chromium",
      "/usr/bin/chromium-browser",
      "/usr/bin/google-chrome",
    ]
  ) {
    if (!p) continue;
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not there
    }
  }
  return null;
}

/**
 * Starts a server command in the project's folder and returns its address,
 * matched by `pattern` in its output.
 */
export async function startServer(
  cmd: string,
  args: string[],
  pattern: RegExp,
  stream: "stdout" | "stderr" = "stdout",
): Promise<{ url: string; process: Deno.ChildProcess }> {
  const process = new Deno.Command(cmd, {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = process[stream].pipeThrough(new TextDecoderStream())
    .getReader();
  const other = stream === "stdout" ? process.stderr : process.stdout;
  other.pipeTo(new WritableStream()).catch(() => {});
  let text = "";
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    const m = text.match(pattern);
    if (m) {
      (async () => {
        try {
          while (!(await reader.read()).done) { /* drain */ }
        } catch {
          // closed
        }
      })();
      return { url: m[1], process };
    }
  }
  process.kill("SIGKILL");
  throw new Error(`${cmd} ${args.join(" ")} did not start: ${text}`);
}

/**
 * Python's static file server on a free port, serving `dir`; returns its
 * address (`http://127.0.0.1:PORT/`) and process.
 */
export async function staticServer(
  dir: string,
): Promise<{ url: string; process: Deno.ChildProcess }> {
  const server = await startServer("python3", [
    "-u",
    "-m",
    "http.server",
    "--bind",
    "127.0.0.1",
    "0",
    "-d",
    dir,
  ], /Serving HTTP on \S+ port (\d+)/);
  return { ...server, url: `http://127.0.0.1:${server.url}/` };
}

type Pending = {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
};

/** A headless Chromium with one page, driven over the DevTools protocol. */
export class Browser implements AsyncDisposable {
  #process: Deno.ChildProcess;
  #socket: WebSocket;
  #next = 1;
  #pending = new Map<number, Pending>();
  #session = "";
  #profile: string;
  /** Messages the page printed to its console. */
  readonly console: string[] = [];

  private constructor(
    process: Deno.ChildProcess,
    socket: WebSocket,
    profile: string,
  ) {
    this.#process = process;
    this.#socket = socket;
    this.#profile = profile;
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.id && this.#pending.has(msg.id)) {
        const p = this.#pending.get(msg.id)!;
        this.#pending.delete(msg.id);
        if (msg.error) p.reject(new Error(JSON.stringify(msg.error)));
        else p.resolve(msg.result);
      } else if (msg.method === "Runtime.consoleAPICalled") {
        this.console.push(
          msg.params.args.map((a: { value?: unknown }) => String(a.value))
            .join(" "),
        );
      }
    };
  }

  /** Starts Chromium (headless, its own empty profile) with `flags`. */
  static async launch(path: string, flags: string[] = []): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "gan-chromium-" });
    const process = new Deno.Command(path, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        ...flags,
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium says where its DevTools endpoint listens on stderr.
    const reader = process.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    const deadline = Date.now() + 30000;
    let url: string | null = null;
    while (!url && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      url = text.match(/DevTools listening on (ws:\/\/\S+)/)?.[1] ?? null;
    }
    // Keep draining stderr so that Chromium never blocks on it.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* drain */ }
      } catch {
        // closed
      }
    })();
    if (!url) {
      process.kill("SIGKILL");
      throw new Error(`Chromium did not start: ${text.slice(-1000)}`);
    }
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    const browser = new Browser(process, socket, profile);
    const { targetId } = await browser.send("Target.createTarget", {
      url: "about:blank",
    }) as { targetId: string };
    const { sessionId } = await browser.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    }) as { sessionId: string };
    browser.#session = sessionId;
    await browser.send("Runtime.enable");
    await browser.send("Page.enable");
    await browser.send("Emulation.setDeviceMetricsOverride", {
      width: 1000,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return browser;
  }

  /** Sends one protocol command (to the page once one is attached). */
  send(
    method: string,
    params: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const message: Record<string, unknown> = { id, method, params };
    if (this.#session) message.sessionId = this.#session;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#socket.send(JSON.stringify(message));
    });
  }

  /** Opens `url` in the page. */
  async goto(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
  }

  /**
   * The value of `expression` in the page (awaited when it is a promise),
   * as JSON.
   *
   * @throws {Error} with the page's exception when it throws.
   */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as {
      result: { value?: T };
      exceptionDetails?: { exception?: { description?: string }; text: string };
    };
    if (r.exceptionDetails) {
      throw new Error(
        r.exceptionDetails.exception?.description ?? r.exceptionDetails.text,
      );
    }
    return r.result.value as T;
  }

  /** Waits until `expression` is truthy in the page, at most `seconds`. */
  async waitFor(expression: string, seconds = 30): Promise<void> {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      if (await this.evaluate<boolean>(`Boolean(${expression})`)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${expression}`);
  }

  /** A PNG of the page's viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
    }) as { data: string };
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    try {
      this.#socket.close();
    } catch {
      // closed already
    }
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // ended already
    }
    await this.#process.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
