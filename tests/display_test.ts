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
