/// <reference lib="dom" />
/**
 * The page that runs the project's trained generators in a browser
 * (`deno task serve`, `deno task build:web`). It lists the generators of
 * `manifest.json`, draws a grid of samples, walks through the latent space,
 * and says which backend runs them (WebGPU, then WebGL, then wasm).
 *
 * Noise comes from the project's own generator (`lib/random/rng.ts`, stream 3, as
 * `deno task sample --seed N` draws it), so the page and the command draw
 * the same images for the same seed.
 *
 * Query parameters (for links and tests): `model` (a generator's name),
 * `seed`, `n` (images in the grid), `truncation` (0.1 to 2, as `deno task
 * sample --truncation`), `backend` (webgpu, webgl or wasm).
 * `window.gan` exposes what the page did: `ready` (a promise of the first
 * grid), `backend`, `images` (the last grid's bytes), `errors`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import {
  interpolateLatents,
  sampleLatent,
  withClasses,
} from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { classLabels } from "../lib/splits.ts";
import type { Manifest, ManifestEntry } from "../lib/io/manifest.ts";
import { drawGrid } from "./draw.ts";
import type { TrainedGenerator } from "./train.ts";
import { setupTrainView, type TrainViewState } from "./train_view.ts";

/** A generator to show: from the manifest, or trained in this page (its files in memory). */
type Entry = ManifestEntry & { artifacts?: tf.io.ModelArtifacts };

/** What the page exposes (tests read it). */
interface PageState {
  ready: Promise<{ backend: string; firstGridMs: number; model: string }>;
  /** The Train view's state (`web/train_view.ts`). */
  train: TrainViewState | null;
  backend: string;
  backendReason: string;
  images: Uint8Array | null;
  errors: string[];
}

const $ = <T extends HTMLElement>(id: string) =>
  document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const started = performance.now();
const state: PageState = {
  ready: null as unknown as PageState["ready"],
  train: null,
  backend: "",
  backendReason: "",
  images: null,
  errors: [],
};
(globalThis as unknown as { gan: PageState }).gan = state;

function showError(message: string) {
  state.errors.push(message);
  const box = $("error");
  box.hidden = false;
  box.textContent = state.errors.join("\n");
}

/**
 * Picks the first backend that starts: WebGPU, WebGL, then wasm, saying
 * why each one before it was passed over.
 */
async function startBackend(): Promise<string> {
  setWasmPaths("wasm/");
  const asked = params.get("backend");
  const order = asked ? [asked] : ["webgpu", "webgl", "wasm"];
  const skipped: string[] = [];
  for (const name of order) {
    if (name === "webgpu") {
      const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
      if (!gpu) {
        skipped.push("WebGPU: this browser has no navigator.gpu");
        continue;
      }
      const adapter = await gpu.requestAdapter().catch(() => null);
      if (!adapter) {
        skipped.push("WebGPU: no adapter (no GPU, or WebGPU is turned off)");
        continue;
      }
    }
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        state.backend = name;
        state.backendReason = skipped.join("; ");
        return name;
      }
      skipped.push(`${name}: did not start`);
    } catch (e) {
      skipped.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(
    `no backend could start (${skipped.join("; ")}). Try a current Chrome, ` +
      "Edge or Firefox, with hardware acceleration turned on.",
  );
}

/** A loaded generator. */
interface Loaded {
  entry: Entry;
  model: tf.LayersModel;
  latent: "normal" | "uniform";
  latentDim: number;
  output: "tanh" | "sigmoid";
  /** Classes of a conditional generator (its input: z, then the one-hot class); 0 if none. */
  classes: number;
}

const cache = new Map<string, Promise<Loaded>>();

/** Loads a generator once; the error names the file and what to do. */
function load(entry: Entry): Promise<Loaded> {
  let p = cache.get(entry.name);
  if (!p) {
    p = (async () => {
      const latent = entry.latent;
      if (
        (latent !== "normal" && latent !== "uniform") || !entry.latentDim ||
        (entry.output !== "tanh" && entry.output !== "sigmoid")
      ) {
        throw new Error(
          `${entry.path} is not a generator this page knows (latent ` +
            `${latent}, output ${entry.output}); rebuild the manifest with ` +
            "deno task build:web, or use deno task sample for it",
        );
      }
      let model: tf.LayersModel;
      try {
        model = await tf.loadLayersModel(
          entry.artifacts ? tf.io.fromMemory(entry.artifacts) : entry.path,
        );
      } catch (e) {
        throw new Error(
          `${entry.path} could not be loaded (${(e as Error).message}). ` +
            "Its files may be missing or damaged: copy the generator's " +
            "folder again and rebuild the manifest (deno task build:web).",
        );
      }
      const inputs = model.inputs[0].shape[1];
      const classes = entry.classes ?? 0;
      if (inputs !== entry.latentDim + classes) {
        model.dispose();
        throw new Error(
          `${entry.path} takes ${inputs} inputs, its manifest says ` +
            `${entry.latentDim + classes}; rebuild the manifest`,
        );
      }
      return {
        entry,
        model,
        latent,
        latentDim: entry.latentDim,
        output: entry.output,
        classes,
      };
    })();
    cache.set(entry.name, p);
    p.catch(() => cache.delete(entry.name));
  }
  return p;
}

/**
 * The classes of a grid of `n` images of a conditional generator: all the
 * chosen class, or (none chosen) a class grid: row r is class r.
 */
function gridLabels(g: Loaded, n: number): Uint8Array {
  const chosen = $<HTMLSelectElement>("class").value;
  const cols = gridCols(g, n);
  return Uint8Array.from(
    { length: n },
    (_, i) => chosen === "" ? Math.floor(i / cols) : Number(chosen),
  );
}

/** Columns of the grid: a class grid has one row per class. */
function gridCols(g: Loaded, n: number): number {
  return g.classes && $<HTMLSelectElement>("class").value === ""
    ? Math.ceil(n / g.classes)
    : Math.ceil(Math.sqrt(n));
}

/** Images in the grid: a class grid's rows are full. */
function gridCount(g: Loaded): number {
  return g.classes && $<HTMLSelectElement>("class").value === ""
    ? g.classes * Math.ceil(count / g.classes)
    : count;
}

/**
 * Images for latent vectors `z`, as bytes (0..255), as `deno task sample`
 * makes them; a conditional generator's classes are the grid's.
 */
async function generate(g: Loaded, z: Float32Array): Promise<Uint8Array> {
  const n = z.length / g.latentDim;
  const input = g.classes
    ? withClasses(z, gridLabels(g, n), g.latentDim, g.classes)
    : z;
  const out = tf.tidy(() => {
    const y = g.model.predict(
      tf.tensor2d(input, [n, g.latentDim + g.classes]),
    ) as tf.Tensor;
    return g.output === "tanh" ? tf.div(tf.add(y, 1), 2) : y;
  });
  const values = await out.data();
  out.dispose();
  return Uint8Array.from(
    values,
    (v) => Math.max(0, Math.min(255, Math.round(v * 255))),
  );
}

/** Draws images (white on black) in a grid of `cols` columns on the canvas. */
function draw(images: Uint8Array, cols: number) {
  drawGrid($<HTMLCanvasElement>("grid"), images, cols);
}

let manifest: { generators: Entry[]; skipped: Manifest["skipped"] } = {
  generators: [],
  skipped: [],
};
let walking = 0;
const count = Math.max(1, Math.min(400, Number(params.get("n")) || 64));

/** The slider's truncation; its last stop (past 2) is none. */
function truncation(): number | undefined {
  const t = Number($<HTMLInputElement>("truncation").value);
  return t > 2 ? undefined : t;
}

function selected(): Entry | undefined {
  const name = $<HTMLSelectElement>("model").value;
  return manifest.generators.find((g) => g.name === name);
}

function describe(e: Entry): string {
  const ev = e.evaluation;
  const figures = ev
    ? [
      ev.parzen !== undefined ? `Parzen ${ev.parzen.toFixed(1)} nats` : "",
      ev.fid !== undefined ? `FID ${ev.fid.toFixed(1)}` : "",
      ev.kid !== undefined ? `KID x 1000 ${(1000 * ev.kid).toFixed(0)}` : "",
      ev.precision !== undefined && ev.recall !== undefined
        ? `precision ${ev.precision.toFixed(2)}, recall ${ev.recall.toFixed(2)}`
        : "",
      ev.copying !== undefined
        ? `data-copying C_T ${ev.copying.toFixed(1)}`
        : "",
      ev.classes !== undefined ? `${ev.classes} classes` : "",
      ev.conditionalAccuracy !== undefined
        ? `${(100 * ev.conditionalAccuracy).toFixed(1)}% of samples of ` +
          "the class asked for"
        : "",
    ].filter(Boolean).join(", ")
    : "";
  return `${e.preset ?? "?"}${e.classes ? " (conditional)" : ""} on ${
    e.dataset ?? "?"
  }, ${
    typeof e.training === "string" ? e.training : `${e.epochs ?? "?"} epochs`
  }` +
    (figures ? ` (${figures})` : "");
}

/** Draws a fresh grid from seed `seed`; returns the time it took in ms. */
async function grid(seed: number): Promise<number> {
  const entry = selected();
  if (!entry) throw new Error("no generator to show: the manifest lists none");
  const g = await load(entry);
  const t0 = performance.now();
  const n = gridCount(g);
  const z = sampleLatent(
    { ...g, truncation: truncation() },
    n,
    new Rng(seed, 3),
  );
  const images = await generate(g, z);
  const ms = performance.now() - t0;
  state.images = images;
  draw(images, gridCols(g, n));
  $("timing").textContent = `${n} images in ${
    ms.toFixed(0)
  } ms on ${state.backend}`;
  return ms;
}

/**
 * Animates a walk through the latent space: every image of the grid moves
 * along a great circle (slerp, for normal noise) from one noise vector to
 * the next, 24 frames a leg.
 */
async function walk(seed: number) {
  const id = ++walking;
  const entry = selected();
  if (!entry) return;
  const g = await load(entry);
  const rng = new Rng(seed, 4);
  const frames = 24, dim = g.latentDim, n = gridCount(g);
  const noise = { ...g, truncation: truncation() };
  let from = sampleLatent(noise, n, rng);
  $("walk").textContent = "Stop";
  while (walking === id) {
    const to = sampleLatent(noise, n, rng);
    const paths = Array.from(
      { length: n },
      (_, i) =>
        interpolateLatents(
          from.subarray(i * dim, (i + 1) * dim),
          to.subarray(i * dim, (i + 1) * dim),
          frames,
          g.latent,
        ),
    );
    for (let f = 1; f < frames && walking === id; f++) {
      const z = new Float32Array(n * dim);
      paths.forEach((p, i) =>
        z.set(p.subarray(f * dim, (f + 1) * dim), i * dim)
      );
      draw(await generate(g, z), gridCols(g, n));
      await new Promise((r) => requestAnimationFrame(r));
    }
    from = to;
  }
}

function stopWalk() {
  walking++;
  $("walk").textContent = "Latent walk";
}

function showModel() {
  const entry = selected();
  if (!entry) return;
  $("about").textContent = describe(entry);
  // A conditional generator: choose a class, or see every class (a class
  // grid, one row per class, the same noise down each column).
  const classSelect = $<HTMLSelectElement>("class");
  const names = entry.classes
    ? entry.classNames ??
      Array.from({ length: entry.classes }, (_, i) => String(i))
    : [];
  const key = names.join("|");
  if (classSelect.dataset.key !== key) {
    classSelect.dataset.key = key;
    classSelect.replaceChildren(
      new Option("every class (a row each)", ""),
      ...names.map((name, i) => new Option(`${i}: ${name}`, String(i))),
    );
  }
  $("class-choice").hidden = !entry.classes;
  const section = $("training");
  section.hidden = !entry.progress;
  if (entry.progress) $<HTMLImageElement>("progress").src = entry.progress;
}

/** The backend, once started (both views wait for it). */
const backendStarted = startBackend();
backendStarted.catch(() => {}); // said by main()

/** Shows `view` ("samples" or "train"); leaving the Train view stops its training. */
function showView(view: string) {
  const train = view === "train";
  if (!train) trainView.leave();
  $("samples-view").hidden = train;
  $("train-view").hidden = !train;
  $("view-samples").setAttribute("aria-pressed", String(!train));
  $("view-train").setAttribute("aria-pressed", String(train));
}

/** The seed box's value: a whole number, at least 0. */
function seedValue(): number {
  return Math.max(
    0,
    Math.floor(Number($<HTMLInputElement>("seed").value) || 0),
  );
}

/**
 * Adds a generator trained in this page to the list (once for each
 * generator kept), and shows its samples.
 */
async function sampleTrained(g: TrainedGenerator) {
  stopWalk();
  const m = g.metadata;
  let entry = manifest.generators.find((e) => e.artifacts === g.artifacts);
  if (!entry) {
    entry = {
      name: `trained-here-${++trainedHere}`,
      path: "(trained in this page)",
      preset: m.preset,
      dataset: m.dataset,
      epochs: m.epochs,
      training: `${m.epochs} epochs in this page, seed ${m.seed}`,
      latent: m.latent,
      latentDim: m.latentDim,
      output: m.output,
      ...(m.classes
        ? { classes: m.classes, classNames: classLabels(m.dataset, m.classes) }
        : {}),
      artifacts: g.artifacts,
    };
    manifest.generators.unshift(entry);
    $<HTMLSelectElement>("model").prepend(
      new Option(
        `${entry.name}: ${m.preset} on ${m.dataset} (this page)`,
        entry.name,
      ),
    );
  }
  $<HTMLSelectElement>("model").value = entry.name;
  showView("samples");
  showModel();
  try {
    await grid(seedValue());
  } catch (e) {
    showError((e as Error).message);
  }
}
let trainedHere = 0;

const trainView = setupTrainView({
  backend: backendStarted,
  sample: sampleTrained,
  params,
});
state.train = trainView.state;
$("view-samples").addEventListener("click", () => showView("samples"));
$("view-train").addEventListener("click", () => showView("train"));
showView(params.get("view") === "train" ? "train" : "samples");

async function main() {
  const backend = await backendStarted;
  $("backend").textContent = `Backend: ${backend}` +
    (state.backendReason ? ` (passed over: ${state.backendReason})` : "");
  const response = await fetch("manifest.json");
  if (!response.ok) {
    throw new Error(
      `manifest.json: HTTP ${response.status}; build the site with ` +
        "deno task build:web or serve it with deno task serve",
    );
  }
  manifest = await response.json();
  const select = $<HTMLSelectElement>("model");
  for (const g of manifest.generators) {
    const option = document.createElement("option");
    option.value = g.name;
    option.textContent = `${g.name}: ${g.preset ?? "?"} on ${g.dataset ?? "?"}`;
    select.append(option);
  }
  const wanted = params.get("model");
  if (wanted && manifest.generators.some((g) => g.name === wanted)) {
    select.value = wanted;
  }
  const seedInput = $<HTMLInputElement>("seed");
  seedInput.value = String(Number(params.get("seed")) || 0);
  const seed = seedValue;
  const slider = $<HTMLInputElement>("truncation");
  const wantedT = Number(params.get("truncation"));
  if (wantedT >= 0.1 && wantedT <= 2) slider.value = String(wantedT);
  const showT = () => {
    $("truncation-value").textContent = truncation()?.toFixed(1) ?? "off";
  };
  showT();
  const redraw = async () => {
    stopWalk();
    showModel();
    try {
      await grid(seed());
    } catch (e) {
      showError((e as Error).message);
    }
  };
  select.addEventListener("change", redraw);
  seedInput.addEventListener("change", redraw);
  $("class").addEventListener("change", redraw);
  slider.addEventListener("input", showT);
  slider.addEventListener("change", redraw);
  $("resample").addEventListener("click", () => {
    seedInput.value = String(seed() + 1);
    redraw();
  });
  $("walk").addEventListener("click", () => {
    if ($("walk").textContent === "Stop") return stopWalk();
    walk(seed()).catch((e) => showError((e as Error).message));
  });
  showModel();
  const wantedClass = params.get("class");
  if (wantedClass !== null) $<HTMLSelectElement>("class").value = wantedClass;
  // The first generator that loads draws the first grid; one that fails
  // says so and the next is tried.
  for (const entry of [selected(), ...manifest.generators]) {
    if (!entry) continue;
    select.value = entry.name;
    showModel();
    try {
      await grid(seed());
      return { backend, model: entry.name };
    } catch (e) {
      showError((e as Error).message);
    }
  }
  throw new Error("none of the generators in manifest.json could be shown");
}

state.ready = main().then((r) => ({
  ...r,
  firstGridMs: performance.now() - started,
}));
state.ready.catch((e) => {
  // Without a backend nothing runs; without a generator to show, the
  // Train view still does.
  if (!state.backend) $("backend").textContent = "Not running";
  showError((e as Error).message);
});
