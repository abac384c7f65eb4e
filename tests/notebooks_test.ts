import assert from "node:assert/strict";
import { runCli, runCommand } from "./run.ts";

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
      assert.match(r.stderr, /cell 3 .*an SVG picture without a PNG beside it/);
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
    const args of [["--bogus"], ["no_such_notebook"], ["--timeout", "x"]]
  ) {
    const r = await runCli("notebooks.ts", args);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, /Usage: deno task notebooks/);
  }
});
