/**
 * `deno task serve` and `deno task build:web` as a careless or hostile user
 * meets them: serve answers only for the files the page loads (no symbolic
 * link out of the models folder, no dotfile), only GET and HEAD, only to
 * Host headers naming this machine, 400 for a bad path encoding, and a
 * busy port in words, and removes its temporary folder on every exit;
 * build:web refuses to write over the project, its inputs or a folder it
 * did not build, keeps a user's file in an earlier build, and leaves the
 * earlier build whole when interrupted. No browser needed.
 */

import assert from "node:assert/strict";
import { acceptedHosts, hostAccepted } from "../cli/serve.ts";
import { parseIdx } from "../lib/io/idx.ts";
import { root, runCli } from "./run.ts";

/** Copies the files of a committed generator folder (the smallest). */
async function copyGenerator(to: string, from = "mnist-sngan") {
  await Deno.mkdir(to, { recursive: true });
  for (const e of Deno.readDirSync(`${root}models/${from}`)) {
    await Deno.copyFile(`${root}models/${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** The names under `dir`, recursively, links not followed, sorted. */
function tree(dir: string, prefix = ""): string[] {
  const names: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    names.push(prefix + e.name);
    if (e.isDirectory) {
      names.push(...tree(`${dir}/${e.name}`, `${prefix}${e.name}/`));
    }
  }
  return names.sort();
}

/** The gan-web-* folders in `dir` (serve's temporary folders). */
const temporaries = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    n.startsWith("gan-web-")
  );

/** A child process's stream, collected as text in the background. */
function collect(stream: ReadableStream<Uint8Array>) {
  const text = { value: "" };
  const done = stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(chunk) {
        text.value += chunk;
      },
    }),
  ).catch(() => {});
  return { text, done };
}

/**
 * Starts `deno task serve` on a free port with TMPDIR=`tmp`, and waits for
 * its "serving http://HOST:PORT/" line.
 */
async function startServe(models: string, tmp: string) {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/serve.ts", "--port", "0", "--models", models],
    cwd: root,
    env: { NO_COLOR: "1", TMPDIR: tmp },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = collect(process.stdout);
  const stderr = collect(process.stderr);
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const m = stdout.text.value.match(/serving http:\/\/(\S+):(\d+)\//);
    if (m) {
      return {
        process,
        stderr,
        stdout,
        port: Number(m[2]),
        url: `http://127.0.0.1:${m[2]}`,
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill("SIGKILL");
  await process.status;
  throw new Error(
    `serve did not start: ${stdout.text.value}${stderr.text.value}`,
  );
}

/**
 * Sends `request` (a whole HTTP/1.1 request, written by hand so that its
 * Host header is ours, not fetch's) and returns the status and body.
 */
async function raw(port: number, request: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(request));
  let text = "";
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  conn.close();
  return {
    status: Number(text.split(" ")[1]),
    body: text.slice(text.indexOf("\r\n\r\n") + 4),
  };
}

const get = (port: number, host: string, path = "/") =>
  raw(
    port,
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
  );

Deno.test("serve: the Host headers it takes (DNS rebinding)", () => {
  const local = acceptedHosts("127.0.0.1");
  for (
    const h of [
      "localhost",
      "localhost:8000",
      "LOCALHOST:1",
      "localhost.",
      "127.0.0.1",
      "127.0.0.1:8000",
      "127.1.2.3:80",
      "[::1]",
      "[::1]:8000",
    ]
  ) {
    assert.ok(hostAccepted(h, local), h);
  }
  // No Host header at all: HTTP/1.0, never a browser.
  assert.ok(hostAccepted(null, local));
  for (
    const h of [
      "evil.com",
      "evil.com:8000",
      "localhost.evil.com",
      "127.0.0.1.evil.com",
      "127.0.0.1:80:80",
      "[::2]:8000",
      "192.168.1.1",
      "",
      "local host",
    ]
  ) {
    assert.ok(!hostAccepted(h, local), h);
  }
  // Bound to an address, that address; to every address, the machine's
  // name and its interfaces' addresses too.
  assert.ok(hostAccepted("10.1.2.3:8000", acceptedHosts("10.1.2.3")));
  assert.ok(!hostAccepted("10.1.2.4", acceptedHosts("10.1.2.3")));
  const all = acceptedHosts("0.0.0.0");
  assert.ok(hostAccepted(`${Deno.hostname()}:8000`, all));
  for (const i of Deno.networkInterfaces()) {
    const h = i.family === "IPv6" ? `[${i.address}]` : i.address;
    assert.ok(hostAccepted(`${h}:8000`, all), h);
  }
  assert.ok(!hostAccepted("evil.com", all));
});

Deno.test({
  name:
    "serve: only the page's files; no link out of models/, no dotfile; 400 for a bad encoding; 405 but for GET and HEAD; 403 for another Host; a bad eval.json or a linked folder is skipped with why; SIGTERM removes its temporary folder",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await Deno.makeTempDir();
    const models = `${work}/models`, tmp = `${work}/tmp`;
    await Deno.mkdir(tmp);
    await copyGenerator(`${models}/good`);
    await Deno.writeTextFile(`${models}/good/notes.txt`, "not for the page");
    await Deno.writeTextFile(`${models}/good/.secret`, "SECRET");
    await Deno.writeTextFile(`${models}/.env`, "TOKEN=SECRET");
    await copyGenerator(`${models}/.hidden`);
    // A generator whose animation is a link to a file outside.
    await copyGenerator(`${models}/leaky`);
    await Deno.remove(`${models}/leaky/progress.gif`);
    await Deno.symlink("/etc/passwd", `${models}/leaky/progress.gif`);
    // A link to a folder outside; one invalid eval.json; a linked generator.
    await Deno.symlink("/etc", `${models}/evil`);
    await copyGenerator(`${models}/badeval`);
    await Deno.writeTextFile(`${models}/badeval/eval.json`, "{not json");
    await Deno.symlink(`${root}models/mnist-sngan`, `${models}/linked`);
    // A link that stays inside the models folder, to a dotfile there.
    await copyGenerator(`${models}/pointer`);
    await Deno.remove(`${models}/pointer/eval.json`);
    await Deno.symlink("../.env", `${models}/pointer/eval.json`);
    const server = await startServe(models, tmp);
    try {
      assert.equal(temporaries(tmp).length, 1, "its bundle's folder");
      const fetched = async (path: string, init?: RequestInit) => {
        const r = await fetch(`${server.url}${path}`, init);
        return { status: r.status, headers: r.headers, body: await r.text() };
      };
      for (
        const path of [
          "/",
          "/index.html",
          "/style.css",
          "/app.js",
          "/wasm/tfjs-backend-wasm.wasm",
          "/models/good/model.json",
          "/models/good/weights-020.bin",
          "/models/good/eval.json",
          "/models/good/progress.gif",
        ]
      ) {
        assert.equal((await fetched(path)).status, 200, path);
      }
      // The Train view's data: the training split as gzipped IDX files.
      const labels = await fetch(
        `${server.url}/data/mnist/train-labels-idx1-ubyte.gz`,
      );
      assert.equal(labels.headers.get("content-type"), "application/gzip");
      const idx = parseIdx(new Uint8Array(await labels.arrayBuffer()));
      assert.deepEqual(idx.dims, [60000]);
      assert.deepEqual([...idx.data.subarray(0, 5)], [5, 0, 4, 1, 9]);
      for (
        const path of [
          "/data/mnist/t10k-labels-idx1-ubyte.gz",
          "/data/cifar/train-labels-idx1-ubyte.gz",
          "/data/mnist/../../etc/passwd",
        ]
      ) {
        assert.equal((await fetched(path)).status, 404, path);
      }
      const icon = await fetch(`${server.url}/favicon.ico`);
      assert.equal(icon.headers.get("content-type"), "image/x-icon");
      assert.deepEqual(
        [...new Uint8Array(await icon.arrayBuffer()).subarray(0, 4)],
        [0, 0, 1, 0],
      );
      for (
        const path of [
          "/models/evil/passwd",
          "/models/evil/shadow",
          "/models/leaky/progress.gif",
          "/models/pointer/eval.json",
          "/models/linked/model.json",
          "/models/.env",
          "/models/good/.secret",
          "/models/.hidden/model.json",
          "/models/%2Eenv",
          "/models/good/notes.txt",
          "/models/good/../../../../etc/passwd",
          "/models/good/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
          "/models/good%2F..%2F.env",
          "/cli/serve.ts",
          "/web/main.ts",
          "/wasm/../models/.env",
        ]
      ) {
        const r = await fetched(path);
        assert.equal(r.status, 404, path);
        assert.doesNotMatch(r.body, /SECRET|root:/, path);
      }
      for (const path of ["/%ZZ", "/models/%E0%A4%A"]) {
        const r = await fetched(path);
        assert.equal(r.status, 400, path);
        assert.equal(r.body.trim(), "bad path encoding");
      }
      for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
        const r = await fetched("/index.html", { method, body: null });
        assert.equal(r.status, 405, method);
        assert.equal(r.headers.get("allow"), "GET, HEAD");
      }
      const head = await fetched("/style.css", { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.body, "");
      assert.ok(Number(head.headers.get("content-length")) > 0);

      // Host headers, written by hand.
      for (
        const host of [
          `localhost:${server.port}`,
          `127.0.0.1:${server.port}`,
          "127.0.0.1",
          `127.3.4.5:${server.port}`,
          `[::1]:${server.port}`,
        ]
      ) {
        assert.equal((await get(server.port, host)).status, 200, host);
      }
      for (
        const host of [
          "evil.com",
          `evil.com:${server.port}`,
          `localhost.evil.com:${server.port}`,
        ]
      ) {
        const r = await get(server.port, host, "/models/good/model.json");
        assert.equal(r.status, 403, host);
        assert.match(r.body, /localhost, \[::1\], 127\.0\.0\.1/);
      }

      // One bad eval.json, a linked folder and a leaky file leave out only
      // their own generators, each with why.
      const manifest = await fetched("/manifest.json");
      assert.equal(manifest.status, 200);
      const m = JSON.parse(manifest.body);
      assert.deepEqual(
        m.generators.map((g: { name: string }) => g.name),
        ["good"],
      );
      const why = Object.fromEntries(
        m.skipped.map((s: { name: string; why: string }) => [s.name, s.why]),
      );
      assert.deepEqual(Object.keys(why).sort(), [
        ".hidden",
        "badeval",
        "leaky",
        "linked",
        "pointer",
      ]);
      assert.match(
        why.pointer,
        /eval\.json is a symbolic link to a hidden file/,
      );
      assert.match(why.badeval, /^eval\.json is not valid JSON/);
      assert.match(why.linked, /symbolic link to a folder.*copy the folder/);
      assert.match(why.leaky, /progress\.gif is a symbolic link out of/);
      assert.match(why[".hidden"], /hidden/);
      assert.doesNotMatch(manifest.body, /root:/);
    } finally {
      server.process.kill("SIGTERM");
      const status = await server.process.status;
      await server.stdout.done;
      await server.stderr.done;
      // Said in one line each, never as a stack trace.
      assert.doesNotMatch(server.stderr.text.value, /URIError|\n\s+at /);
      assert.equal(status.code, 0, server.stderr.text.value);
      assert.deepEqual(temporaries(tmp), [], "its temporary folder is removed");
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "serve: Ctrl-C (SIGINT) stops it and removes its temporary folder",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${work}/models`);
      await Deno.mkdir(`${work}/tmp`);
      const server = await startServe(`${work}/models`, `${work}/tmp`);
      assert.equal(
        (await fetch(`${server.url}/`).then((r) => r.text()))
          .includes("<html"),
        true,
      );
      server.process.kill("SIGINT");
      assert.equal((await server.process.status).code, 0);
      await server.stdout.done;
      await server.stderr.done;
      assert.deepEqual(temporaries(`${work}/tmp`), []);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test("serve: a busy port is named with what to do, before any bundling; no temporary folder", async () => {
  const work = await Deno.makeTempDir();
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "cli/serve.ts",
        "--port",
        String(port),
        "--models",
        `${root}models`,
      ],
      cwd: root,
      env: { NO_COLOR: "1", TMPDIR: work },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 1, stderr);
    assert.match(
      stderr,
      new RegExp(
        `port ${port} is in use \\(another server\\?\\); stop it, or pick another with --port N \\(--port 0 picks a free one\\)`,
      ),
    );
    assert.doesNotMatch(stderr, /bundling|\n\s+at /);
    assert.deepEqual(temporaries(work), []);
  } finally {
    busy.close();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("build:web refuses the project's folder, a folder holding it, the models folder, web/ and the root, before touching anything", async () => {
  const top = () =>
    [...Deno.readDirSync(root)].map((e) => e.name).filter((n) =>
      !n.includes(".tmp-")
    ).sort();
  const rootBefore = top();
  const modelsBefore = tree(`${root}models`);
  const webBefore = tree(`${root}web`);
  const parent = root.replace(/\/$/, "").replace(/\/[^/]+$/, "") || "/";
  const cases: [string[], RegExp][] = [
    [["--out", "."], /--out \. is the project's folder/],
    [["--out", root], /is the project's folder/],
    [["--out", parent], /is a folder holding the project/],
    [["--out", "models"], /--out models is the models folder/],
    [["--out", `${root}models/`], /is the models folder/],
    [["--out", "models/mnist"], /is inside the models folder/],
    [["--out", "models/..new"], /is inside the models folder/],
    [["--out", "web"], /is the page's sources \(web\/\)/],
    [["--out", "/"], /--out must name a folder/],
    [["--out", ""], /--out must name a folder/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli("build_web.ts", args);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(" "));
    assert.match(r.stderr, /choose a folder of its own|must name a folder/);
    assert.doesNotMatch(r.stderr, /bundling/);
  }
  assert.deepEqual(tree(`${root}models`), modelsBefore);
  assert.deepEqual(tree(`${root}web`), webBefore);
  assert.deepEqual(top(), rootBefore);
  assert.ok(
    ![...Deno.readDirSync(parent)].some((e) => /\.(tmp|old)-/.test(e.name)),
    "no temporary folder beside the project",
  );
});

Deno.test("build:web refuses a folder that is not empty and that it did not build, or --models inside --out; nothing in it is gone", async () => {
  const work = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${work}/mine/sub`, { recursive: true });
    await Deno.writeTextFile(`${work}/mine/a.txt`, "mine");
    await Deno.writeTextFile(`${work}/mine/sub/b.txt`, "mine too");
    const before = tree(`${work}/mine`);
    const r = await runCli("build_web.ts", ["--out", `${work}/mine`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /--out \S+\/mine is a folder that is not empty and that build:web did not write \(it has no \.gan-web-build\.json\).*choose a new or empty folder/,
    );
    assert.deepEqual(tree(`${work}/mine`), before);
    assert.equal(await Deno.readTextFile(`${work}/mine/a.txt`), "mine");
    // A file, and a models folder inside --out.
    const file = await runCli("build_web.ts", ["--out", `${work}/mine/a.txt`]);
    assert.equal(file.code, 1);
    assert.match(file.stderr, /is a file, not a folder/);
    await copyGenerator(`${work}/site/models/good`);
    const inside = await runCli("build_web.ts", [
      "--out",
      `${work}/site`,
      "--models",
      `${work}/site/models`,
    ]);
    assert.equal(inside.code, 2);
    assert.match(inside.stderr, /is a folder holding the models folder/);
    assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), [
      "mine",
      "site",
    ]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test({
  name:
    "build:web: into an empty folder, then again into its own build; an interrupted build leaves the earlier one whole; a user's file in a build is kept and named; only the page's files are copied",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await Deno.makeTempDir();
    try {
      const models = `${work}/models`, site = `${work}/site`;
      await copyGenerator(`${models}/good`);
      await Deno.writeTextFile(`${models}/good/notes.txt`, "not copied");
      await Deno.writeTextFile(`${models}/good/.env`, "SECRET");
      await copyGenerator(`${models}/badeval`);
      await Deno.writeTextFile(`${models}/badeval/eval.json`, "[1, 2");
      await Deno.symlink(`${root}models/mnist-sngan`, `${models}/linked`);
      await Deno.mkdir(site);
      const first = await runCli("build_web.ts", [
        "--out",
        site,
        "--models",
        models,
      ]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(
        first.stderr,
        /left out \S+\/models\/badeval: eval\.json is not valid JSON/,
      );
      assert.match(
        first.stderr,
        /left out \S+\/models\/linked: a symbolic link/,
      );
      const manifest = JSON.parse(
        await Deno.readTextFile(`${site}/manifest.json`),
      );
      assert.deepEqual(
        manifest.generators.map((g: { name: string }) => g.name),
        ["good"],
      );
      assert.deepEqual(tree(`${site}/models`), [
        "good",
        "good/eval.json",
        "good/model.json",
        "good/progress.gif",
        "good/weights-020.bin",
      ]);
      const record = JSON.parse(
        await Deno.readTextFile(`${site}/.gan-web-build.json`),
      );
      assert.ok(record.files.includes("favicon.ico"));
      assert.deepEqual(
        [...record.files, ...record.folders, ".gan-web-build.json"].sort(),
        tree(site),
      );
      const built = tree(site);

      const second = await runCli("build_web.ts", [
        "--out",
        site,
        "--models",
        models,
      ]);
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(tree(site), built);
      const beside = () =>
        [...Deno.readDirSync(work)].map((e) => e.name).sort();
      assert.deepEqual(beside(), ["models", "site"], "nothing left beside it");

      // Interrupted while bundling: the earlier build stays, whole.
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "cli/build_web.ts",
          "--out",
          site,
          "--models",
          models,
        ],
        cwd: root,
        env: { NO_COLOR: "1" },
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const stderr = collect(child.stderr);
      while (!stderr.text.value.includes("bundling")) {
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 130);
      await stderr.done;
      assert.match(stderr.text.value, /interrupted; \S+ is left as it was/);
      assert.deepEqual(tree(site), built);
      assert.deepEqual(beside(), ["models", "site"]);

      // A user's file inside the build: named, and nothing is replaced.
      await Deno.writeTextFile(`${site}/models/mine.txt`, "mine");
      const third = await runCli("build_web.ts", [
        "--out",
        site,
        "--models",
        models,
      ]);
      assert.equal(third.code, 1, third.stderr);
      assert.match(
        third.stderr,
        /holds a file that the earlier build did not write: \S+\/site\/models\/mine\.txt; move it out/,
      );
      assert.equal(await Deno.readTextFile(`${site}/models/mine.txt`), "mine");
      assert.deepEqual(tree(site), [...built, "models/mine.txt"].sort());
      assert.deepEqual(beside(), ["models", "site"]);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
