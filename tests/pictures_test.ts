import assert from "node:assert/strict";
import { loadImage } from "@napi-rs/canvas";
import { encodeNpy } from "../lib/io/npy.ts";
import {
  barsSvg,
  composeSvg,
  figure1Svg,
  imageGrid,
  linesSvg,
  lossCurvesSvg,
  pngRow,
  progressStrip,
  svgToPng,
  trainingFigure,
} from "../lib/pictures/figures.ts";

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

Deno.test("composeSvg lays parts side by side or stacked", () => {
  const part = (w: number, h: number) =>
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"></svg>`;
  const row = composeSvg([part(100, 50), part(30, 80)], "row");
  assert.match(row, /^<svg[^>]* width="130" height="80"/);
  const col = composeSvg([part(100, 50), part(30, 80)], "column", "title");
  assert.match(col, /^<svg[^>]* width="100" height="154"/);
  assert.match(col, /translate\(0,74\)/);
});

Deno.test("figure 1, bars and lines render to PNG with their labels", async () => {
  const x = Array.from({ length: 50 }, (_, i) => -1 + i / 20);
  const panel = (label: string) => ({
    label,
    caption: "caption",
    x,
    pData: x.map((v) => Math.exp(-v * v)),
    pG: x.map((v) => Math.exp(-((v - 0.5) ** 2))),
    d: x.map(() => 0.5),
    dStar: x.map((v) => (v > 0 ? 0.5 : NaN)),
    z: [-0.5, 0, 0.5],
    gz: [0, 0.2, 0.4],
  });
  const fig = figure1Svg([panel("(a)"), panel("(b)")]);
  for (const text of ["(a) caption", "(b) caption", "p_data", "D*(x)"]) {
    assert.ok(fig.includes(text), text);
  }
  const img = await loadImage(svgToPng(fig, 1));
  assert.equal(img.width, 500);
  const bars = barsSvg([{ label: "Bag", value: 0.2 }, {
    label: "Coat",
    value: 0.8,
  }], {
    reference: 0.1,
  });
  assert.ok(bars.includes("Bag") && bars.includes("Coat"));
  const lines = linesSvg([{ x: 1, y: 0.5, series: "overall" }, {
    x: 2,
    y: 0.6,
    series: "overall",
  }]);
  assert.ok(lines.includes("overall"));
  assert.ok((await loadImage(svgToPng(lines, 1))).width === 640);
});

Deno.test("pngRow and trainingFigure place images side by side", async () => {
  const a = imageGrid(new Uint8Array(4 * 784), { encoding: "bytes" });
  const b = imageGrid(new Uint8Array(784), { encoding: "bytes" });
  const row = await loadImage(await pngRow([a, b], 10));
  const [ia, ib] = [await loadImage(a), await loadImage(b)];
  assert.equal(row.width, ia.width + ib.width + 10);
  assert.equal(row.height, Math.max(ia.height, ib.height));
  const history = [1, 2].map((epoch) => ({
    epoch,
    dLoss: 1,
    gLoss: 1,
    dReal: 0.6,
    dFake: 0.4,
  }));
  const fig = await loadImage(
    await trainingFigure(history, new Float32Array(100 * 784), {
      encoding: "[-1,1]",
      title: "epoch 2",
    }),
  );
  assert.ok(fig.width > 1280 && fig.height >= 10 * (28 * 3 + 2));
});
