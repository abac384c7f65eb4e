/**
 * The web page in a real (headless) Chromium: `deno task serve` serves it,
 * the page draws a grid from a fixed seed, and its images equal `deno task
 * sample`'s for that seed; a broken generator is reported while the others
 * keep working; `deno task build:web` output works from a plain static
 * server.
 */

import assert from "node:assert/strict";
import { decodeNpy } from "../lib/io/npy.ts";
import { Browser, findChromium, startServer, staticServer } from "./browser.ts";
import { root, runCli } from "./run.ts";

const chromium = findChromium();

/**
 * The images `deno task sample` draws for `seed` (of class `label`, for a
 * conditional generator), as bytes.
 */
async function sampled(
  name: string,
  seed: number,
  n: number,
  label?: number,
  extra: string[] = [],
) {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runCli("sample.ts", [
      "--checkpoint",
      `models/${name}`,
      "--seed",
      String(seed),
      "--n",
      String(n),
      "--out",
      `${dir}/s.npy`,
      "--backend",
      "wasm",
      ...(label === undefined ? [] : ["--class", String(label)]),
      ...extra,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return decodeNpy(await Deno.readFile(`${dir}/s.npy`)).data as Uint8Array;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens `url` and waits for the page's first grid. */
async function firstGrid(browser: Browser, url: string) {
  await browser.goto(url);
  await browser.waitFor("window.gan && window.gan.ready", 60);
  return await browser.evaluate<
    { backend: string; firstGridMs: number; model: string }
  >("window.gan.ready");
}

const largestDifference = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

Deno.test({
  name:
    "web page in Chromium: the grid of a seed equals deno task sample's; backend named; a broken generator is reported",
  ignore: chromium === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const models = await Deno.makeTempDir();
    // The committed generators, and a broken one: weights cut short.
    for (
      const name of [
        "mnist",
        "fashion",
        "mnist-conditional",
        "fashion-sngan",
        "mnist-sngan-fc",
        "mnist-sngan-conditional",
      ]
    ) {
      await Deno.mkdir(`${models}/${name}`);
      for (const e of Deno.readDirSync(`${root}models/${name}`)) {
        await Deno.copyFile(
          `${root}models/${name}/${e.name}`,
          `${models}/${name}/${e.name}`,
        );
      }
    }
    await Deno.mkdir(`${models}/broken`);
    await Deno.copyFile(
      `${root}models/mnist/model.json`,
      `${models}/broken/model.json`,
    );
    await Deno.writeFile(
      `${models}/broken/weights-400.bin`,
      new Uint8Array(1000),
    );
    const server = await startServer(Deno.execPath(), [
      "run",
      "-A",
      "cli/serve.ts",
      "--port",
      "0",
      "--models",
      models,
    ], /serving (http:\/\/\S+)/);
    const browser = await Browser.launch(chromium!, ["--enable-unsafe-webgpu"]);
    try {
      const want = await sampled("mnist", 5, 16);
      const ready = await firstGrid(
        browser,
        `${server.url}?model=mnist&seed=5&n=16`,
      );
      console.log(
        `  first grid after ${
          ready.firstGridMs.toFixed(0)
        } ms on ${ready.backend}`,
      );
      assert.equal(ready.model, "mnist");
      const line = await browser.evaluate<string>(
        "document.getElementById('backend').textContent",
      );
      assert.match(line, /^Backend: (webgpu|webgl|wasm)/);
      const images = await browser.evaluate<number[]>(
        "Array.from(window.gan.images)",
      );
      assert.ok(largestDifference(images, want) <= 2, "within 2/255");
      // The canvas shows them: many grey levels, not one colour.
      const levels = await browser.evaluate<number>(`(() => {
        const c = document.getElementById('grid');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return new Set(d.filter((_, i) => i % 4 === 0)).size;
      })()`);
      assert.ok(levels > 50, `${levels} grey levels on the canvas`);
      await Deno.mkdir(`${root}runs/web`, { recursive: true });
      await Deno.writeFile(
        `${root}runs/web/screenshot.png`,
        await browser.screenshot(),
      );

      // The generator's training animation (models/mnist/progress.gif) is
      // shown and loads.
      await browser.waitFor(
        `!document.getElementById('training').hidden && document.getElementById('progress').naturalWidth > 0`,
      );
      // The latent walk animates the grid; its button stops it.
      const pixels = `(() => {
        const c = document.getElementById('grid');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0)).join();
      })()`;
      const before = await browser.evaluate<string>(pixels);
      await browser.evaluate("document.getElementById('walk').click()");
      await browser.waitFor(
        `document.getElementById('walk').textContent === 'Stop'`,
      );
      await new Promise((r) => setTimeout(r, 1500));
      assert.notEqual(await browser.evaluate<string>(pixels), before);
      await browser.evaluate("document.getElementById('walk').click()");
      await browser.waitFor(
        `document.getElementById('walk').textContent === 'Latent walk'`,
      );

      // The truncation slider draws what deno task sample --truncation draws;
      // the generator's line carries its evaluation's newer figures.
      const truncated = await sampled("mnist", 5, 16, undefined, [
        "--truncation",
        "0.5",
      ]);
      await firstGrid(
        browser,
        `${server.url}?model=mnist&seed=5&n=16&truncation=0.5`,
      );
      assert.equal(
        await browser.evaluate<string>(
          "document.getElementById('truncation-value').textContent",
        ),
        "0.5",
      );
      const atHalf = await browser.evaluate<number[]>(
        "Array.from(window.gan.images)",
      );
      assert.ok(largestDifference(atHalf, truncated) <= 2, "within 2/255");
      assert.ok(
        largestDifference(atHalf, want) > 50,
        "truncation changed them",
      );
      assert.match(
        await browser.evaluate<string>(
          "document.getElementById('about').textContent",
        ),
        /KID x 1000 \d+, precision 0\.\d\d, recall 0\.\d\d, data-copying C_T -?\d/,
      );

      // WebGL (SwiftShader here), as a browser without WebGPU runs it.
      const webgl = await firstGrid(
        browser,
        `${server.url}?model=mnist&seed=5&n=16&backend=webgl`,
      );
      assert.equal(webgl.backend, "webgl");
      console.log(
        `  on webgl: first grid after ${webgl.firstGridMs.toFixed(0)} ms`,
      );
      assert.ok(
        largestDifference(
          await browser.evaluate<number[]>("Array.from(window.gan.images)"),
          want,
        ) <= 2,
      );
      // The wasm backend (its .wasm files served from the npm package).
      const wasm = await firstGrid(
        browser,
        `${server.url}?model=fashion&seed=2&n=9&backend=wasm`,
      );
      assert.equal(wasm.backend, "wasm");
      console.log(
        `  on wasm: first grid after ${wasm.firstGridMs.toFixed(0)} ms`,
      );
      const fashion = await browser.evaluate<number[]>(
        "Array.from(window.gan.images)",
      );
      assert.ok(
        largestDifference(fashion, await sampled("fashion", 2, 9)) <= 2,
      );

      // A convolutional generator (transposed convolutions, batch norm), on
      // WebGL as a browser without WebGPU runs it.
      const conv = await firstGrid(
        browser,
        `${server.url}?model=fashion-sngan&seed=4&n=9&backend=webgl`,
      );
      assert.equal(conv.model, "fashion-sngan");
      assert.ok(
        largestDifference(
          await browser.evaluate<number[]>("Array.from(window.gan.images)"),
          await sampled("fashion-sngan", 4, 9),
        ) <= 2,
      );

      // A generator stored with 8-bit weights (deno task average --quantize
      // uint8): tf.loadLayersModel in the page reads them back as Deno does.
      await firstGrid(
        browser,
        `${server.url}?model=mnist-sngan-fc&seed=4&n=9&backend=webgl`,
      );
      assert.match(
        await browser.evaluate<string>(
          "document.getElementById('about').textContent",
        ),
        /sngan-fc on mnist, the mean of epochs 10-15/,
      );
      assert.ok(
        largestDifference(
          await browser.evaluate<number[]>("Array.from(window.gan.images)"),
          await sampled("mnist-sngan-fc", 4, 9),
        ) <= 2,
      );

      // A conditional generator: the class picker shows (every class, or
      // one of ten), and a chosen class gives deno task sample --class's images.
      await firstGrid(
        browser,
        `${server.url}?model=mnist-conditional&seed=4&n=12&class=3`,
      );
      assert.equal(
        await browser.evaluate<number>(
          "document.getElementById('class-choice').hidden ? -1 : document.getElementById('class').options.length",
        ),
        11,
      );
      assert.ok(
        largestDifference(
          await browser.evaluate<number[]>("Array.from(window.gan.images)"),
          await sampled("mnist-conditional", 4, 12, 3),
        ) <= 2,
      );
      // The convolutional conditional generator, a functional TF.js model
      // (class-conditional batch norm as standard layers), loads and draws
      // the class asked for as deno task sample does.
      await firstGrid(
        browser,
        `${server.url}?model=mnist-sngan-conditional&seed=2&n=8&class=7`,
      );
      assert.ok(
        largestDifference(
          await browser.evaluate<number[]>("Array.from(window.gan.images)"),
          await sampled("mnist-sngan-conditional", 2, 8, 7),
        ) <= 2,
      );
      // Every class: a class grid of ten rows.
      await firstGrid(browser, `${server.url}?model=mnist-conditional&n=20`);
      assert.equal(
        await browser.evaluate<number>("window.gan.images.length / 784"),
        20,
      );
      await Deno.writeFile(
        `${root}runs/web/screenshot-conditional.png`,
        await browser.screenshot(),
      );

      // A broken generator: said, and the page goes on with another.
      const broken = await firstGrid(browser, `${server.url}?model=broken`);
      assert.notEqual(broken.model, "broken");
      const errors = await browser.evaluate<string[]>("window.gan.errors");
      assert.match(
        errors.join("\n"),
        /models\/broken\/model\.json could not be loaded .*copy the generator's folder again/,
      );
      const shown = await browser.evaluate<string>(
        "document.getElementById('error').textContent",
      );
      assert.match(shown, /broken/);
    } finally {
      await browser.close();
      server.process.kill("SIGTERM");
      await server.process.status;
      await Deno.remove(models, { recursive: true });
    }
  },
});

Deno.test({
  name: "build:web writes a folder a plain static server serves",
  ignore: chromium === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const out = await Deno.makeTempDir();
    try {
      const r = await runCli("build_web.ts", ["--out", `${out}/site`]);
      assert.equal(r.code, 0, r.stderr);
      const m = r.stderr.match(/the page and its assets ([\d.]+) MB/);
      assert.ok(m && Number(m[1]) < 5, r.stderr);
      const manifest = JSON.parse(
        await Deno.readTextFile(`${out}/site/manifest.json`),
      );
      assert.deepEqual(
        manifest.generators.map((g: { name: string }) => g.name),
        // The page's order: MNIST first, the lowest FID first; the page
        // opens on the first.
        [
          "mnist-sngan-fc",
          "mnist-sngan-conditional",
          "mnist-conditional",
          "mnist",
          "mnist-sngan",
          "fashion-sngan-conditional",
          "fashion-sngan",
          "fashion-conditional",
          "fashion",
        ],
      );
      // An averaged generator's entry says which epochs it is the mean of.
      const training = (name: string) =>
        manifest.generators.find((g: { name: string }) => g.name === name)
          .training;
      assert.equal(training("mnist"), "400 epochs");
      assert.equal(training("mnist-sngan-fc"), "the mean of epochs 10-15");
      // A conditional generator's entry carries its classes and their names.
      const cond = manifest.generators.find((g: { name: string }) =>
        g.name === "fashion-conditional"
      );
      assert.equal(cond.classes, 10);
      assert.equal(cond.classNames[8], "Bag");
      const server = await staticServer(`${out}/site`);
      const browser = await Browser.launch(chromium!);
      try {
        const ready = await firstGrid(
          browser,
          `${server.url}?model=mnist&seed=1&n=4`,
        );
        assert.equal(ready.model, "mnist");
        const images = await browser.evaluate<number[]>(
          "Array.from(window.gan.images)",
        );
        assert.ok(largestDifference(images, await sampled("mnist", 1, 4)) <= 2);
      } finally {
        await browser.close();
        server.process.kill("SIGTERM");
        await server.process.status;
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
