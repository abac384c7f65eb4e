/**
 * The web page's Train view in a real (headless) Chromium: it trains the
 * `paper` preset on a slice of MNIST on WebGL and on the software WebGPU
 * adapter (the WGSL step), its epochs' figures equal `deno task train`'s
 * for the same seed, Pause stops the rounds, the tensor count stays put
 * from one epoch to the next, the downloaded generator loads with `deno
 * task sample` (and draws what the command line's trained generator
 * draws), "Sample it" shows it in the Samples view, and a damaged or
 * missing data file is reported with what to do.
 */

import assert from "node:assert/strict";
import { buildManifest, generatorFiles } from "../cli/site.ts";
import { decodeNpy } from "../lib/io/npy.ts";
import { Browser, findChromium, startServer, staticServer } from "./browser.ts";
import { root, runCli } from "./run.ts";

const chromium = findChromium();

/** The slice the page and the command line train on. */
const RUN = { preset: "paper", dataset: "mnist", seed: 0, limit: 1000 };

interface Figures {
  dLoss: number;
  gLoss: number;
  dReal: number;
  dFake: number;
}

/** What the page's `window.gan.train` holds (the parts the test reads). */
interface TrainState {
  status: string;
  rounds: number;
  updates: unknown[];
  epochs: (Figures & { imagesPerSecond: number })[];
  tensors: number[];
  tensorsBefore: number;
  tensorsAfter: number;
  grids: number;
  log: string[];
  errors: string[];
  generator: { preset: string; dataset: string; epochs: number } | null;
}

const read = (browser: Browser) =>
  browser.evaluate<TrainState>(`(() => {
    const t = window.gan.train;
    return { ...t, firstGrid: null, grid: null, progress: null };
  })()`);

/** The images of `deno task sample --checkpoint dir` for seed 3, as bytes. */
async function sampled(dir: string): Promise<Uint8Array> {
  const out = await Deno.makeTempDir();
  try {
    const r = await runCli("sample.ts", [
      "--checkpoint",
      dir,
      "--seed",
      "3",
      "--n",
      "9",
      "--out",
      `${out}/s.npy`,
      "--backend",
      "wasm",
    ]);
    assert.equal(r.code, 0, r.stderr);
    return decodeNpy(await Deno.readFile(`${out}/s.npy`)).data as Uint8Array;
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/** Opens the Train view with `RUN`'s settings and presses Train. */
async function startTraining(
  browser: Browser,
  base: string,
  backend: string,
  epochs: number,
) {
  const q = new URLSearchParams({
    view: "train",
    backend,
    dataset: RUN.dataset,
    preset: RUN.preset,
    seed: String(RUN.seed),
    limit: String(RUN.limit),
    epochs: String(epochs),
  });
  await browser.goto(`${base}?${q}`);
  // The Samples view's first grid too, so that its generator is loaded.
  await browser.waitFor("window.gan && window.gan.train", 30);
  await browser.evaluate("window.gan.ready.then(() => true, () => true)");
  await browser.evaluate("document.getElementById('train-start').click()");
}

const ended =
  `['completed', 'stopped', 'diverged', 'failed'].includes(window.gan.train.status)`;

Deno.test({
  name:
    "Train view in Chromium: deno task train's figures on WebGL and WebGPU; Pause; tensors constant; the download loads with deno task sample",
  ignore: chromium === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    // The command line's run: two epochs of the same slice and seed.
    const cli = await runCli("train.ts", [
      "--preset",
      RUN.preset,
      "--dataset",
      RUN.dataset,
      "--seed",
      String(RUN.seed),
      "--limit",
      String(RUN.limit),
      "--epochs",
      "2",
      "--backend",
      "wasm",
      "--out",
      `${tmp}/cli`,
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    const history: Figures[] = JSON.parse(
      await Deno.readTextFile(`${tmp}/cli/history.json`),
    );
    const server = await startServer(Deno.execPath(), [
      "run",
      "-A",
      "cli/serve.ts",
      "--port",
      "0",
    ], /serving (http:\/\/\S+)/);
    const browser = await Browser.launch(chromium!, ["--enable-unsafe-webgpu"]);
    const close = (a: number, b: number) => Math.abs(a - b) <= 1e-4;
    const sameFigures = (page: Figures, want: Figures, what: string) => {
      for (const k of ["dLoss", "gLoss", "dReal", "dFake"] as const) {
        assert.ok(
          close(page[k], want[k]),
          `${what}: ${k} ${page[k]} in the page, ${
            want[k]
          } from deno task train`,
        );
      }
    };
    try {
      // WebGL: two epochs, paused and resumed in the first.
      await startTraining(browser, server.url, "webgl", 2);
      await browser.waitFor(
        "window.gan.train.status === 'training' && window.gan.train.rounds >= 2",
        120,
      );
      await browser.evaluate("document.getElementById('train-pause').click()");
      await new Promise((r) => setTimeout(r, 1000));
      const paused = await read(browser);
      assert.equal(paused.status, "paused");
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(
        (await read(browser)).rounds,
        paused.rounds,
        "no rounds while paused",
      );
      await browser.evaluate("document.getElementById('train-pause').click()");
      await browser.waitFor(ended, 240);
      const webgl = await read(browser);
      assert.equal(webgl.status, "completed", webgl.errors.join("\n"));
      assert.equal(webgl.epochs.length, 2);
      webgl.epochs.forEach((e, i) =>
        sameFigures(e, history[i], `WebGL epoch ${i + 1}`)
      );
      assert.equal(
        webgl.tensors[0],
        webgl.tensors[1],
        "tensors after each epoch",
      );
      assert.ok(webgl.updates.length >= 4, "progress within each epoch");
      assert.ok(
        webgl.grids >= 3,
        "a grid before training and after each epoch",
      );
      assert.equal(
        await browser.evaluate<boolean>(
          "window.gan.train.firstGrid.some((v, i) => v !== window.gan.train.grid[i])",
        ),
        true,
        "the grid changed",
      );
      assert.deepEqual(webgl.generator, {
        ...webgl.generator,
        preset: "paper",
        dataset: "mnist",
        epochs: 2,
      });
      console.log(
        `  WebGL (headless Chromium): ${
          webgl.epochs.map((e) => e.imagesPerSecond.toFixed(0)).join(", ")
        } images/s in epochs 1, 2`,
      );

      // Download generator: model.json and model.weights.bin, which deno
      // task sample loads and which draw what the command line's run draws.
      const downloads = `${tmp}/downloads`;
      await Deno.mkdir(downloads);
      await browser.send("Page.setDownloadBehavior", {
        behavior: "allow",
        downloadPath: downloads,
      });
      await browser.evaluate(
        "document.getElementById('train-download').click()",
      );
      const files = () =>
        [...Deno.readDirSync(downloads)].map((e) => e.name).sort();
      const deadline = Date.now() + 30000;
      while (
        files().join() !== "model.json,model.weights.bin" &&
        Date.now() < deadline
      ) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(files(), ["model.json", "model.weights.bin"]);
      const fromPage = await sampled(downloads);
      const fromCli = await sampled(`${tmp}/cli`);
      let d = 0;
      fromPage.forEach((v, i) => d = Math.max(d, Math.abs(v - fromCli[i])));
      assert.ok(
        d <= 2,
        `the page's generator draws within ${d}/255 of the CLI's`,
      );
      // In a models folder, the Samples view lists it with its metadata.
      await Deno.mkdir(`${tmp}/models/trained`, { recursive: true });
      for (const f of files()) {
        await Deno.copyFile(`${downloads}/${f}`, `${tmp}/models/trained/${f}`);
      }
      const manifest = await buildManifest(`${tmp}/models`);
      assert.deepEqual(manifest.skipped, []);
      const entry = manifest.generators[0];
      assert.equal(entry.name, "trained");
      assert.equal(entry.preset, "paper");
      assert.equal(entry.dataset, "mnist");
      assert.equal(entry.epochs, 2);
      assert.ok(
        generatorFiles(`${tmp}/models`, "trained")?.files.has(
          "model.weights.bin",
        ),
        "its weights are served",
      );

      // Sample it: the Samples view shows the trained generator.
      await browser.evaluate("document.getElementById('train-sample').click()");
      await browser.waitFor(
        "document.getElementById('model').value.startsWith('trained-here') && !document.getElementById('samples-view').hidden && window.gan.images",
        30,
      );

      // Leaving the Train view stops the training and frees its tensors.
      await startTraining(browser, server.url, "webgl", 2);
      await browser.waitFor("window.gan.train.rounds >= 1", 120);
      await browser.evaluate("document.getElementById('view-samples').click()");
      await browser.waitFor(ended, 60);
      const left = await read(browser);
      assert.equal(left.status, "stopped");
      assert.match(left.log.join("\n"), /you left the Train view/);
      assert.equal(
        left.tensorsAfter,
        left.tensorsBefore,
        "all freed on leaving",
      );

      // WebGPU (the software adapter): one epoch on the WGSL step.
      await startTraining(browser, server.url, "webgpu", 1);
      await browser.waitFor(ended, 300);
      const webgpu = await read(browser);
      assert.equal(webgpu.status, "completed", webgpu.errors.join("\n"));
      assert.match(
        webgpu.log.join("\n"),
        /training step: WGSL programs/,
      );
      sameFigures(webgpu.epochs[0], history[0], "WebGPU epoch 1");
      assert.equal(webgpu.tensorsAfter, webgpu.tensorsBefore, "all freed");
      console.log(
        `  WebGPU (software adapter): ${
          webgpu.epochs[0].imagesPerSecond.toFixed(0)
        } images/s; ${webgpu.log.find((l) => l.startsWith("training step"))}`,
      );
      await Deno.mkdir(`${root}runs/web`, { recursive: true });
      await Deno.writeFile(
        `${root}runs/web/train-view.png`,
        await browser.screenshot(),
      );
    } finally {
      await browser.close();
      server.process.kill("SIGTERM");
      await server.process.status;
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Train view: a damaged or missing data file is reported with what to do",
  ignore: chromium === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const out = await Deno.makeTempDir();
    try {
      const r = await runCli("build_web.ts", ["--out", `${out}/site`]);
      assert.equal(r.code, 0, r.stderr);
      const data = `${out}/site/data`;
      // MNIST's labels cut short; Fashion-MNIST's images gone.
      const labels = `${data}/mnist/train-labels-idx1-ubyte.gz`;
      const bytes = await Deno.readFile(labels);
      await Deno.writeFile(labels, bytes.subarray(0, bytes.length >> 1));
      await Deno.remove(`${data}/fashion/train-images-idx3-ubyte.gz`);
      const server = await staticServer(`${out}/site`);
      const browser = await Browser.launch(chromium!);
      try {
        const base = server.url;
        const expectError = async (dataset: string, pattern: RegExp) => {
          await browser.goto(
            `${base}?view=train&backend=wasm&dataset=${dataset}&epochs=1`,
          );
          await browser.waitFor("window.gan && window.gan.train", 30);
          await browser.evaluate(
            "document.getElementById('train-start').click()",
          );
          await browser.waitFor(ended, 60);
          const s = await read(browser);
          assert.equal(s.status, "failed");
          assert.match(s.errors.join("\n"), pattern);
          const shown = await browser.evaluate<string>(
            "document.getElementById('train-error').textContent",
          );
          assert.match(shown, pattern);
        };
        await expectError(
          "mnist",
          /data\/mnist\/train-labels-idx1-ubyte\.gz: corrupt or truncated gzip data .*deno task build:web/,
        );
        await expectError(
          "fashion",
          /data\/fashion\/train-images-idx3-ubyte\.gz: HTTP 404\. .*deno task build:web/,
        );
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
