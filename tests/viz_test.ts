import assert from "node:assert/strict";
import { loadImage } from "@napi-rs/canvas";
import { encodeNpy } from "../lib/npy.ts";
import { imageGrid, lossCurvesSvg, progressStrip } from "../lib/viz.ts";

Deno.test("image grid: size follows count, columns, scale and gap", async () => {
  const images = new Uint8Array(10 * 784).fill(255);
  const png = imageGrid(images, {
    encoding: "bytes",
    cols: 5,
    scale: 2,
    gap: 2,
  });
  const img = await loadImage(png);
  assert.equal(img.width, 5 * (56 + 2) + 2);
  assert.equal(img.height, 2 * (56 + 2) + 2);
  assert.throws(
    () => imageGrid(new Uint8Array(10), { encoding: "bytes" }),
    /no images/,
  );
});

Deno.test("progress strip stacks the first row of each grid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const grid = imageGrid(new Float32Array(100 * 784), { encoding: "[-1,1]" });
    await Deno.writeFile(`${dir}/a.png`, grid);
    const strip = await loadImage(
      await progressStrip([{ label: "epoch 0", path: `${dir}/a.png` }, {
        label: "epoch 1",
        path: `${dir}/a.png`,
      }]),
    );
    assert.equal(strip.height, 2 * 60);
    assert.equal(strip.width, 80 + 10 * 58 + 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loss curves are one standalone SVG with both panels labelled", () => {
  const svg = lossCurvesSvg(
    [1, 2, 3].map((epoch) => ({
      epoch,
      dLoss: 1.2,
      gLoss: 0.8,
      dReal: 0.6,
      dFake: 0.4,
    })),
    "title & more",
  );
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  for (
    const label of ["D loss", "G loss", "D(x)", "D(G(z))", "title &amp; more"]
  ) {
    assert.ok(svg.includes(label), label);
  }
  assert.ok(!svg.includes("<div"), "HTML inside the SVG");
});

Deno.test("npy header is what numpy expects", () => {
  const bytes = encodeNpy({ shape: [2, 3], data: new Uint8Array(6) });
  assert.deepEqual([...bytes.subarray(0, 8)], [0x93, 78, 85, 77, 80, 89, 1, 0]);
  const len = new DataView(bytes.buffer).getUint16(8, true);
  assert.equal((10 + len) % 64, 0);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + len));
  assert.equal(
    header.trimEnd(),
    "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }",
  );
  assert.equal(bytes.length, 10 + len + 6);
  const f = encodeNpy({ shape: [4], data: new Float32Array(4) });
  assert.match(new TextDecoder().decode(f.subarray(10, 80)), /'<f4'.*\(4,\)/);
  assert.throws(
    () => encodeNpy({ shape: [5], data: new Uint8Array(4) }),
    /needs 5 values/,
  );
});
