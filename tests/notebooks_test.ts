import assert from "node:assert/strict";
import { root, runCli, runCommand } from "./run.ts";

const run = runCommand;

/** Debian's Python with jupyter_client and the Deno kernel, if present. */
const python = await (async () => {
  for (const py of ["/usr/bin/python3", "python3"]) {
    try {
      const r = await run(py, [
        "-c",
        "import jupyter_client.kernelspec as k; assert 'deno' in k.KernelSpecManager().find_kernel_specs()",
      ]);
      if (r.code === 0) return py;
    } catch { /* not installed */ }
  }
  return null;
})();

function notebook(cells: { source: string; tags?: string[] }[]) {
  return JSON.stringify({
    cells: cells.map((c, i) => ({
      cell_type: "code",
      id: `t${i}`,
      execution_count: null,
      metadata: c.tags ? { tags: c.tags } : {},
      outputs: [],
      source: c.source,
    })),
    metadata: { kernelspec: { name: "deno", display_name: "Deno" } },
    nbformat: 4,
    nbformat_minor: 5,
  });
}

Deno.test({
  name:
    "notebook runner: keeps every output, replaces live displays, fails on errors and missing images",
  ignore: python === null,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const good = `${dir}/good.ipynb`;
      await Deno.writeTextFile(
        good,
        notebook([
          { source: 'const png = "iVBORw0KGgo=";', tags: ["no-output"] },
          { source: 'console.log("hello"); 6 * 7' },
          {
            source:
              'for (const i of [1, 2, 3]) await Deno.jupyter.display({ "image/png": png, "text/plain": `step ${i}` }, { raw: true, display_id: "live", update: i > 1 });',
            tags: ["image"],
          },
        ]),
      );
      const ok = await run(python!, [
        "cli/run_notebook.py",
        good,
        `${dir}/good_out.ipynb`,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      const out = JSON.parse(await Deno.readTextFile(`${dir}/good_out.ipynb`));
      const [, second, third] = out.cells;
      assert.equal(second.outputs[0].text, "hello\n");
      assert.equal(second.outputs[1].data["text/plain"], "42");
      assert.equal(third.outputs.length, 1);
      assert.equal(third.outputs[0].data["text/plain"], "step 3");

      const bad = `${dir}/bad.ipynb`;
      await Deno.writeTextFile(
        bad,
        notebook([
          { source: '"text, not a picture"', tags: ["image"] },
          { source: "const quiet = 1;" },
          {
            source:
              'await Deno.jupyter.display({ "image/svg+xml": "<svg xmlns=\\"http://www.w3.org/2000/svg\\"/>", "text/plain": "svg" }, { raw: true })',
          },
          { source: 'throw new Error("boom")' },
          { source: "1" },
        ]),
      );
      const r = await run(python!, [
        "cli/run_notebook.py",
        bad,
        `${dir}/bad_out.ipynb`,
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cell 1 .*tagged image, but holds text\/plain/);
      assert.match(r.stderr, /cell 2 .*no output/);
      assert.match(
        r.stderr,
        /cell 3 .*an SVG picture, which nbconvert's HTML .* empty box; show it as a PNG/,
      );
      assert.match(r.stderr, /cell 4: Error: boom/);
      // Execution stops at the error; the failed run's outputs are kept.
      const failed = JSON.parse(
        await Deno.readTextFile(`${dir}/bad_out.ipynb`),
      );
      assert.equal(failed.cells[4].outputs.length, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("deno task notebooks: bad flags and unknown names give the usage", async () => {
  for (
    const args of [
      ["--bogus"],
      ["no_such_notebook"],
      ["--timeout", "x"],
      ["--dir", "/no/such/folder"],
    ]
  ) {
    const r = await runCli("notebooks.ts", args);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, /Usage: deno task notebooks/);
  }
});

/**
 * `deno task notebooks` with `args`, in the user's environment without its
 * GAN_* variables, plus `env`.
 */
async function notebooksCli(args: string[], env: Record<string, string> = {}) {
  const base = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("GAN_")),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}cli/notebooks.ts`, ...args],
    cwd: root,
    clearEnv: true,
    env: { ...base, NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("deno task notebooks --overwrite: refused with exit 2 while a GAN_* parameter is set, or with --quick, naming them", async () => {
  const before = await Deno.readFile(`${root}notebooks/gan_mnist.ipynb`);
  let r = await notebooksCli(["--overwrite", "gan_mnist"], {
    GAN_EPOCHS: "1",
    GAN_LIMIT: "1000",
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /--overwrite while GAN_EPOCHS=1, GAN_LIMIT=1000 are set: the committed outputs come from the notebooks' own parameters/,
  );
  assert.match(r.stderr, /env -u GAN_EPOCHS -u GAN_LIMIT/);
  assert.match(r.stderr, /Usage: deno task notebooks/);
  // An empty value is set all the same.
  r = await notebooksCli(["--overwrite"], { GAN_PRESET: "" });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--overwrite while GAN_PRESET= is set/);
  r = await notebooksCli(["--overwrite", "--quick", "gan_mnist"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--overwrite with --quick/);
  assert.doesNotMatch(r.stderr, /running/);
  assert.deepEqual(
    await Deno.readFile(`${root}notebooks/gan_mnist.ipynb`),
    before,
  );
});

Deno.test("deno task notebooks: a bad GAN_* value is refused before any kernel starts, naming the variable, its value and what it must be", async () => {
  for (
    const [name, value, want] of [
      ["GAN_EPOCHS", "abc", "a positive integer"],
      ["GAN_TOY_ROUNDS", "-5", "a positive integer"],
      ["GAN_EVAL_SAMPLES", "0", "an integer >= 1000"],
      [
        "GAN_LIMIT",
        "60000",
        "0 \\(every training image\\) or an integer from 100 to 50000",
      ],
      ["GAN_BACKEND", "gpu", "one of auto, webgpu, wasm, cpu"],
    ]
  ) {
    const t0 = performance.now();
    const r = await notebooksCli(["gan_mnist"], { [name]: value });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`gan_mnist: ${name} must be ${want}, got "${value}"`),
    );
    assert.doesNotMatch(
      r.stderr,
      /^running |registering the Deno kernel|no Python 3/m,
    );
    assert.ok(performance.now() - t0 < 30000);
  }
});

Deno.test("deno task notebooks --quick: a GAN_* variable the user set wins over the quick value, in one line, and is checked", async () => {
  const r = await notebooksCli(["--quick", "gan_mnist"], {
    GAN_EPOCHS: "3",
    GAN_LIMIT: "abc",
    GAN_EPCHS: "2",
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /^GAN_EPOCHS=3 from the environment overrides --quick's 1$/m,
  );
  assert.match(
    r.stderr,
    /^GAN_LIMIT=abc from the environment overrides --quick's 2048$/m,
  );
  assert.match(
    r.stderr,
    /gan_mnist: GAN_LIMIT must be 0 \(every training image\)/,
  );
  // A misspelt variable is pointed out.
  assert.match(
    r.stderr,
    /note: GAN_EPCHS is set but no notebook run here reads it/,
  );
});

Deno.test({
  name:
    "deno task notebooks: writes runs/notebooks/ and leaves the notebook byte for byte; --overwrite replaces it only after a checked run",
  ignore: python === null,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const name = `runner_test_${Deno.pid}`;
    const path = `${dir}/${name}.ipynb`;
    const out = `${root}runs/notebooks/${name}.ipynb`;
    try {
      const source = notebook([{ source: 'console.log("hi"); 1 + 1' }]);
      await Deno.writeTextFile(path, source);
      let r = await notebooksCli(["--dir", dir, name]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(path), source);
      const written = JSON.parse(await Deno.readTextFile(out));
      assert.equal(written.cells[0].outputs[0].text, "hi\n");
      assert.match(
        r.stderr,
        new RegExp(
          `left as it was\\. To replace the committed outputs: deno task notebooks --overwrite ${name}`,
        ),
      );

      // A failed run leaves the notebook alone, --overwrite or not.
      const failing = notebook([{ source: 'throw new Error("boom")' }]);
      await Deno.writeTextFile(path, failing);
      r = await notebooksCli(["--overwrite", "--dir", dir, name]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(await Deno.readTextFile(path), failing);
      assert.match(r.stderr, /left as it was/);

      await Deno.writeTextFile(path, source);
      r = await notebooksCli(["--overwrite", "--dir", dir, name]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /\(--overwrite\)/);
      assert.equal(await Deno.readTextFile(path), await Deno.readTextFile(out));
      // Renamed into place: no temporary file left beside it.
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
        `${name}.ipynb`,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(out).catch(() => {});
    }
  },
});

/** A Python with nbconvert (Debian: python3-nbconvert), if present. */
const nbconvert = await (async () => {
  for (const py of ["/usr/bin/python3", "python3"]) {
    try {
      if ((await run(py, ["-c", "import nbconvert"])).code === 0) return py;
    } catch { /* not installed */ }
  }
  return null;
})();

Deno.test({
  name:
    "every picture of the committed notebooks is an <img> in nbconvert's HTML (PNG only, no SVG to strip)",
  ignore: nbconvert === null,
  async fn() {
    const names = [...Deno.readDirSync(`${root}notebooks`)]
      .map((e) => e.name).filter((n) => n.endsWith(".ipynb")).sort();
    assert.ok(names.length >= 4, names.join());
    for (const name of names) {
      const path = `${root}notebooks/${name}`;
      const nb = JSON.parse(await Deno.readTextFile(path));
      const outputs = nb.cells.flatMap((c: { outputs?: unknown[] }) =>
        c.outputs ?? []
      ) as { data?: Record<string, unknown> }[];
      const pictures = outputs.filter((o) =>
        Object.keys(o.data ?? {}).some((k) => k.startsWith("image/"))
      );
      assert.ok(pictures.length > 0, `${name} shows pictures`);
      for (const p of pictures) {
        assert.deepEqual(
          Object.keys(p.data!).filter((k) => k.startsWith("image/")),
          ["image/png"],
          name,
        );
      }
      const html = await run(nbconvert!, [
        "-m",
        "nbconvert",
        "--to",
        "html",
        "--stdout",
        path,
      ]);
      assert.equal(html.code, 0, html.stderr);
      const images = html.stdout.match(
        /<img src="data:image\/png;base64,[A-Za-z0-9+/]{100,}/g,
      ) ?? [];
      assert.equal(
        images.length,
        pictures.length,
        `${name}: <img> per picture`,
      );
    }
  },
});
