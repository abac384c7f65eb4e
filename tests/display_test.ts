import assert from "node:assert/strict";
import {
  base64,
  inKernel,
  LiveDisplay,
  type MimeBundle,
  png,
  pngBundle,
  svg,
} from "../lib/notebook/display.ts";
import { describeRun, trainLive } from "../lib/notebook/live.ts";
import { initBackend } from "../lib/backends/choice.ts";
import { loadDataset } from "../lib/data.ts";
import { disposeGan } from "../lib/gan.ts";
import { tiny } from "./tiny.ts";

Deno.test("base64 matches btoa, also past the chunk size", () => {
  const bytes = Uint8Array.from({ length: 70000 }, (_, i) => (i * 7) % 256);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  assert.equal(base64(bytes), btoa(s));
});

Deno.test("png and svg values carry the bundle the kernel displays", () => {
  const show = (v: object) =>
    (v as Record<symbol, () => MimeBundle>)[Symbol.for("Jupyter.display")]();
  assert.deepEqual(show(png(new Uint8Array([1, 2, 3]), "x")), {
    "image/png": "AQID",
    "text/plain": "x",
  });
  const figure = show(
    svg(
      '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10" fill="black"/></svg>',
    ),
  );
  // A PNG rendering and no SVG: nbconvert would prefer the SVG and strip it.
  assert.deepEqual(Object.keys(figure).sort(), ["image/png", "text/plain"]);
  const pngBytes = Uint8Array.from(
    atob(figure["image/png"]),
    (c) => c.charCodeAt(0),
  );
  assert.deepEqual([...pngBytes.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  assert.equal(inKernel, false);
});

Deno.test("live display: the first update creates, later ones replace the same id", async () => {
  const sent: { id: string; update: boolean; text: string }[] = [];
  const live = new LiveDisplay((bundle, o) => {
    sent.push({ ...o, text: bundle["text/plain"] });
    return Promise.resolve();
  });
  for (const e of [1, 2, 3]) {
    await live.update(pngBundle(new Uint8Array([e]), `epoch ${e}`));
  }
  assert.deepEqual(sent.map((s) => s.update), [false, true, true]);
  assert.ok(sent.every((s) => s.id === live.id));
  assert.equal(sent[2].text, "epoch 3");
  assert.notEqual(new LiveDisplay(() => Promise.resolve()).id, live.id);
});

Deno.test("trainLive redraws one display per epoch and describeRun says how it ended", async () => {
  await initBackend("wasm");
  const mnist = await loadDataset("mnist", { log: () => {} });
  const sent: { bundle: MimeBundle; id: string; update: boolean }[] = [];
  const epochs: number[] = [];
  const result = await trainLive(
    {
      config: tiny(),
      dataset: mnist,
      epochs: 2,
      limit: 64,
      holdout: 0,
      log: () => {},
      onEpoch: (s) => {
        epochs.push(s.epoch);
      },
    },
    (bundle, o) => {
      sent.push({ bundle, ...o });
      return Promise.resolve();
    },
  );
  assert.equal(result.status, "completed");
  assert.equal(result.outDir, null);
  assert.deepEqual(epochs, [1, 2]);
  // One output, created by the first epoch and replaced by the second.
  assert.equal(sent.length, 2);
  assert.equal(sent[0].id, sent[1].id);
  assert.deepEqual(sent.map((s) => s.update), [false, true]);
  assert.match(sent[1].bundle["text/plain"], /^epoch 2\/2: D\(x\) \d\.\d\d/);
  const png = Uint8Array.from(
    atob(sent[1].bundle["image/png"]),
    (c) => c.charCodeAt(0),
  );
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  assert.match(
    describeRun(result, "wasm"),
    /^completed: 2 epochs in \d+\.\d min on wasm$/,
  );
  const conditional = { ...result, gan: { ...result.gan } };
  conditional.gan.config = { ...result.gan.config, classes: 10 };
  assert.match(
    describeRun(conditional, "wasm"),
    /^completed: 2 epochs of mlp, conditional, in \d+\.\d min on wasm$/,
  );
  disposeGan(result.gan);
});
