/**
 * Pictures a person can look at: image grids (Skia canvas), loss curves
 * (Observable Plot, rendered to SVG with a linkedom document and to PNG by
 * resvg), and a strip of samples across epochs.
 *
 * @module
 */

import { createCanvas, GlobalFonts, loadImage } from "@napi-rs/canvas";
import * as Plot from "@observablehq/plot";
import { Resvg } from "@resvg/resvg-js";
import * as gifenc from "gifenc";
import { parseHTML } from "linkedom";
import { createRequire } from "node:module";

/**
 * The font of every label: DejaVu Sans from the `dejavu-fonts-ttf` npm
 * package, so that pictures look the same everywhere and have text even on
 * a machine without system fonts (a container, a GPU server). Falls back to
 * the system's sans-serif when the package is missing.
 */
const FONT_FAMILY = "DejaVu Sans";
const FONT_FILE: string | null = (() => {
  try {
    const pkg = createRequire(import.meta.url).resolve(
      "dejavu-fonts-ttf/package.json",
    );
    const file = pkg.replace(/package\.json$/, "ttf/DejaVuSans.ttf");
    GlobalFonts.registerFromPath(file, FONT_FAMILY);
    return file;
  } catch {
    return null;
  }
})();
const CANVAS_FONT = FONT_FILE ? `"${FONT_FAMILY}"` : "sans-serif";

/** How pixel values are encoded: bytes 0..255, or floats in a range. */
export type PixelEncoding = "bytes" | "[0,1]" | "[-1,1]";

/** Options of {@linkcode imageGrid}. */
export interface GridOptions {
  /** Pixel encoding of `images`. */
  encoding: PixelEncoding;
  /** Images per row (default: the square root of the count, rounded up). */
  cols?: number;
  /** How many images to draw (default all). */
  count?: number;
  /** Screen pixels per image pixel (default 2). */
  scale?: number;
  /** Gap between images in screen pixels (default 2). */
  gap?: number;
  /** Side of each square image (default 28). */
  size?: number;
  /** One caption per row, drawn at the left. */
  rowLabels?: string[];
  /** Columns whose images get a yellow frame (the paper's Figure 2 marks its neighbours so). */
  framedColumns?: number[];
}

function toByte(v: number, encoding: PixelEncoding): number {
  const x = encoding === "bytes"
    ? v
    : encoding === "[0,1]"
    ? v * 255
    : (v + 1) * 127.5;
  return Math.max(0, Math.min(255, Math.round(x)));
}

/**
 * Draws images (white on black, as MNIST stores them) in a grid and returns
 * the PNG file's bytes.
 */
export function imageGrid(
  images: ArrayLike<number>,
  options: GridOptions,
): Uint8Array {
  const size = options.size ?? 28;
  const pixels = size * size;
  const available = Math.floor(images.length / pixels);
  const count = Math.min(options.count ?? available, available);
  if (count === 0) throw new Error("imageGrid: no images to draw");
  const cols = options.cols ?? Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const scale = options.scale ?? 2;
  const gap = options.gap ?? 2;
  const labelWidth = options.rowLabels ? 90 : 0;
  const cell = size * scale + gap;
  const width = labelWidth + cols * cell + gap;
  const height = rows * cell + gap;
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#808080";
  ctx.fillRect(0, 0, width, height);
  const tile = ctx.createImageData(size * scale, size * scale);
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < size * scale; y++) {
      for (let x = 0; x < size * scale; x++) {
        const src = n * pixels + Math.floor(y / scale) * size +
          Math.floor(x / scale);
        const v = toByte(images[src], options.encoding);
        const o = (y * size * scale + x) * 4;
        tile.data[o] = tile.data[o + 1] = tile.data[o + 2] = v;
        tile.data[o + 3] = 255;
      }
    }
    const r = Math.floor(n / cols), c = n % cols;
    const x = labelWidth + gap + c * cell, y = gap + r * cell;
    ctx.putImageData(tile, x, y);
    if (options.framedColumns?.includes(c)) {
      // Inside the image's edge (its border pixels are background), so the
      // frame does not spill onto the neighbouring image's gap.
      ctx.strokeStyle = "#ffd400";
      ctx.lineWidth = scale;
      const w = size * scale - scale;
      ctx.strokeRect(x + scale / 2, y + scale / 2, w, w);
    }
  }
  if (options.rowLabels) {
    ctx.fillStyle = "#ffffff";
    ctx.font = `${Math.max(11, Math.round(5.5 * scale))}px ${CANVAS_FONT}`;
    ctx.textBaseline = "middle";
    options.rowLabels.slice(0, rows).forEach((label, r) => {
      ctx.fillText(
        label,
        6,
        gap + r * cell + (size * scale) / 2,
        labelWidth - 8,
      );
    });
  }
  return new Uint8Array(canvas.toBuffer("image/png"));
}

/**
 * gifenc's encoder: a named export of its ES module (which bundlers pick),
 * the default export's member in its CommonJS build (which Deno loads).
 */
function gifEncoder(): typeof gifenc.GIFEncoder {
  const m = gifenc as unknown as {
    GIFEncoder?: typeof gifenc.GIFEncoder;
    default?: { GIFEncoder: typeof gifenc.GIFEncoder };
  };
  return m.GIFEncoder ?? m.default!.GIFEncoder;
}

/**
 * An animated GIF of sample grids (PNG files), one frame each, labelled
 * ("epoch 12"), the last frame held longer: training as an animation.
 * Frames are grey, so the palette is `levels` evenly spaced greys (default
 * 32: the eye sees no difference from 256 here, and the file is a third
 * the size). Encoded by the npm package `gifenc`.
 */
export async function progressGif(
  frames: { label: string; path: string }[],
  options: { delayMs?: number; lastMs?: number; levels?: number } = {},
): Promise<Uint8Array> {
  if (frames.length === 0) throw new Error("progressGif: no frames");
  const images = await Promise.all(
    frames.map(async (f) => loadImage(await Deno.readFile(f.path))),
  );
  const label = 18;
  const width = Math.max(...images.map((i) => i.width));
  const height = Math.max(...images.map((i) => i.height)) + label;
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext("2d");
  const levels = options.levels ?? 32;
  const palette = Array.from({ length: levels }, (_, i) => {
    const v = Math.round((i * 255) / (levels - 1));
    return [v, v, v];
  });
  const gif = gifEncoder()();
  images.forEach((img, k) => {
    ctx.fillStyle = "#808080";
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(img, 0, label);
    ctx.fillStyle = "#ffffff";
    ctx.font = `13px ${CANVAS_FONT}`;
    ctx.textBaseline = "middle";
    ctx.fillText(frames[k].label, 4, label / 2);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    // Each pixel's grey level, to the nearest grey of the palette.
    const index = new Uint8Array(width * height);
    for (let i = 0; i < index.length; i++) {
      const grey = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] +
        0.114 * rgba[4 * i + 2];
      index[i] = Math.round((grey * (levels - 1)) / 255);
    }
    const last = k === images.length - 1;
    gif.writeFrame(index, width, height, {
      palette: k === 0 ? palette : undefined,
      delay: last ? options.lastMs ?? 1500 : options.delayMs ?? 250,
      repeat: 0,
    });
  });
  gif.finish();
  return gif.bytes();
}

/** The minimal DOM element shape this module reads from Plot's output. */
export interface SvgElementLike {
  tagName: string;
  outerHTML: string;
  querySelector(selector: string): SvgElementLike | null;
}

/**
 * A linkedom document for Observable Plot to draw into outside a browser:
 * pass it as `Plot.plot({ document: plotDocument(), ... })`.
 */
// deno-lint-ignore no-explicit-any
function plotDocument(): any {
  // deno-lint-ignore no-explicit-any
  return (parseHTML("<!doctype html><html><body></body></html>") as any)
    .document;
}

/** The SVG markup of a Plot figure, with the namespace a standalone file needs. */
function svgMarkup(figure: SvgElementLike): string {
  const svg = figure.tagName.toLowerCase() === "svg"
    ? figure
    : figure.querySelector("svg")!;
  let s = svg.outerHTML;
  if (!/^<svg[^>]*xmlns=/.test(s)) {
    s = s.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"');
  }
  return s;
}

/** Renders SVG markup to PNG bytes on a white background. */
export function svgToPng(svg: string, zoom = 2): Uint8Array {
  return new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: zoom },
    font: FONT_FILE
      ? {
        fontFiles: [FONT_FILE],
        loadSystemFonts: false,
        defaultFontFamily: FONT_FAMILY,
        sansSerifFamily: FONT_FAMILY,
      }
      : { loadSystemFonts: true },
  }).render().asPng();
}

/** The per-epoch figures {@linkcode lossCurves} draws. */
export interface CurvePoint {
  epoch: number;
  dLoss: number;
  gLoss: number;
  dReal: number;
  dFake: number;
}

/**
 * Two panels as one SVG: the players' losses, and D's mean output on real
 * and generated images (1/2 is the game's equilibrium).
 */
export function lossCurvesSvg(points: CurvePoint[], title = ""): string {
  const document = plotDocument();
  const long = (keys: [keyof CurvePoint, string][]) =>
    points.flatMap((p) =>
      keys.map(([k, series]) => ({ epoch: p.epoch, value: p[k], series }))
    );
  const width = 640;
  const common = {
    document,
    width,
    height: 240,
    marginLeft: 50,
    marginRight: 70,
    x: { label: "epoch", grid: true },
    color: { domain: ["D loss", "G loss", "D(x)", "D(G(z))"], legend: false },
  };
  // Lines labelled at their last point: Plot's colour legend is HTML, which
  // a standalone SVG cannot hold.
  const marks = (data: { epoch: number; value: number; series: string }[]) => [
    Plot.lineY(data, { x: "epoch", y: "value", stroke: "series", z: "series" }),
    ...(points.length <= 30
      ? [Plot.dot(data, { x: "epoch", y: "value", fill: "series", r: 2 })]
      : []),
    Plot.text(
      data,
      Plot.selectLast({
        x: "epoch",
        y: "value",
        z: "series",
        text: "series",
        fill: "series",
        dx: 6,
        textAnchor: "start",
      }),
    ),
  ];
  const losses = Plot.plot({
    ...common,
    y: { label: "loss", grid: true },
    marks: marks(long([["dLoss", "D loss"], ["gLoss", "G loss"]])),
  }) as unknown as SvgElementLike;
  const outputs = Plot.plot({
    ...common,
    y: { label: "mean D output", grid: true, domain: [0, 1] },
    marks: [
      Plot.ruleY([0.5], { stroke: "#999", strokeDasharray: "4,3" }),
      ...marks(long([["dReal", "D(x)"], ["dFake", "D(G(z))"]])),
    ],
  }) as unknown as SvgElementLike;
  return composeSvg([svgMarkup(losses), svgMarkup(outputs)], "column", title);
}

/** {@linkcode lossCurvesSvg} as PNG bytes. */
export function lossCurvesPng(points: CurvePoint[], title = ""): Uint8Array {
  return svgToPng(lossCurvesSvg(points, title));
}

/**
 * One row per epoch: the first row of each epoch's sample grid (as written
 * by {@linkcode imageGrid} with its defaults), labelled, stacked top to
 * bottom. Reads the grids from disk, so it also covers epochs trained before
 * a resume.
 */
export async function progressStrip(
  rows: { label: string; path: string }[],
  options: { scale?: number; gap?: number; size?: number } = {},
): Promise<Uint8Array> {
  if (rows.length === 0) throw new Error("progressStrip: no rows");
  const scale = options.scale ?? 2, gap = options.gap ?? 2;
  const rowHeight = (options.size ?? 28) * scale + 2 * gap;
  const images = await Promise.all(
    rows.map(async (r) => loadImage(await Deno.readFile(r.path))),
  );
  const labelWidth = 80;
  const width = labelWidth + Math.max(...images.map((i) => i.width));
  const canvas = createCanvas(width, rows.length * rowHeight);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#808080";
  ctx.fillRect(0, 0, width, rows.length * rowHeight);
  ctx.fillStyle = "#ffffff";
  ctx.font = `12px ${CANVAS_FONT}`;
  ctx.textBaseline = "middle";
  images.forEach((img, r) => {
    const h = Math.min(rowHeight, img.height);
    ctx.drawImage(
      img,
      0,
      0,
      img.width,
      h,
      labelWidth,
      r * rowHeight,
      img.width,
      h,
    );
    ctx.fillText(
      rows[r].label,
      6,
      r * rowHeight + rowHeight / 2,
      labelWidth - 8,
    );
  });
  return new Uint8Array(canvas.toBuffer("image/png"));
}

/**
 * Places SVG documents (as markup) side by side (`"row"`) or one under the
 * other (`"column"`) in one SVG, with an optional bold title on top.
 */
export function composeSvg(
  parts: string[],
  direction: "row" | "column",
  title = "",
): string {
  const size = (s: string, attr: "width" | "height") =>
    Number(new RegExp(`^<svg[^>]*?\\s${attr}="([\\d.]+)"`).exec(s)?.[1] ?? 0);
  const top = title ? 24 : 0;
  let offset = 0, across = 0;
  const groups = parts.map((p) => {
    const [x, y] = direction === "row" ? [offset, top] : [0, top + offset];
    offset += size(p, direction === "row" ? "width" : "height");
    across = Math.max(
      across,
      size(p, direction === "row" ? "height" : "width"),
    );
    return `<g transform="translate(${x},${y})">${p}</g>`;
  });
  const [w, h] = direction === "row"
    ? [offset, top + across]
    : [across, top + offset];
  const escaped = title.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">` +
    (title
      ? `<text x="10" y="17" font-size="14" font-weight="bold">${escaped}</text>`
      : "") +
    groups.join("") + "</svg>";
}

/** One panel of {@linkcode figure1Svg}: densities and curves on a grid of x. */
export interface DensityPanel {
  label: string;
  caption: string;
  /** Grid of x. */
  x: number[];
  /** The data density on the grid. */
  pData: number[];
  /** G's density on the grid. */
  pG: number[];
  /** D(x) on the grid. */
  d: number[];
  /** D*(x) = p_data / (p_data + p_g), NaN where both densities are ~0. */
  dStar: number[];
  /** A few noise values z in (-1, 1) and their images G(z). */
  z: number[];
  gz: number[];
}

/**
 * The paper's Figure 1: per panel, the data density (black, dotted), the
 * generator's density (green), D (blue, dashed) and the optimal D* (grey);
 * below, the noise line z and the lines showing how x = G(z) maps it.
 */
export function figure1Svg(panels: DensityPanel[]): string {
  const document = plotDocument();
  const zLine = -0.5, xLine = -0.12;
  // One y scale for every panel; a narrow p_g spike is clipped at 2.
  const yMax = Math.max(
    1.05,
    ...panels.flatMap((p) => [...p.pData, ...p.pG.map((v) => Math.min(v, 2))]),
  );
  const parts = panels.map((p) => {
    const lo = p.x[0], hi = p.x[p.x.length - 1];
    const curve = (ys: number[]) =>
      p.x.map((x, i) => ({ x, y: ys[i] })).filter((d) => Number.isFinite(d.y));
    const links = p.z.map((z, i) => ({
      x1: lo + (z + 1) / 2 * (hi - lo),
      x2: p.gz[i],
    })).filter((l) => l.x2 >= lo && l.x2 <= hi);
    return svgMarkup(Plot.plot({
      document,
      width: 250,
      height: 250,
      marginLeft: 30,
      marginRight: 10,
      marginTop: 26,
      x: { domain: [lo, hi], label: "x" },
      y: { domain: [zLine - 0.1, yMax], ticks: [0, 0.5, 1], label: null },
      marks: [
        Plot.ruleY([zLine, xLine], { stroke: "#444" }),
        Plot.link(links, {
          x1: "x1",
          x2: "x2",
          y1: zLine,
          y2: xLine,
          stroke: "#888",
          markerEnd: "arrow",
          strokeWidth: 0.8,
        }),
        Plot.text(["z"], { x: lo, y: zLine, dx: -10, fontSize: 11 }),
        Plot.text(["x"], { x: lo, y: xLine, dx: -10, fontSize: 11 }),
        Plot.lineY(curve(p.dStar), {
          x: "x",
          y: "y",
          stroke: "#aaa",
          strokeWidth: 4,
        }),
        Plot.lineY(curve(p.pData), {
          x: "x",
          y: "y",
          stroke: "black",
          strokeDasharray: "1,3",
          strokeWidth: 2,
        }),
        Plot.lineY(curve(p.pG.map((v) => Math.min(v, yMax))), {
          x: "x",
          y: "y",
          stroke: "green",
          strokeWidth: 1.5,
        }),
        Plot.lineY(curve(p.d), {
          x: "x",
          y: "y",
          stroke: "blue",
          strokeDasharray: "5,3",
          strokeWidth: 1.5,
        }),
        Plot.text([`${p.label} ${p.caption}`], {
          frameAnchor: "top-left",
          dy: -18,
          fontSize: 12,
        }),
      ],
    }) as unknown as SvgElementLike);
  });
  const legend =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      250 * panels.length
    }" height="22" font-size="12">` +
    [
      ["p_data", "black", "1,3"],
      ["p_g", "green", ""],
      ["D(x)", "blue", "5,3"],
      ["D*(x) = p_data / (p_data + p_g)", "#aaa", ""],
    ].map(([label, color, dash], i) => {
      const x = 30 + i * 150;
      return `<line x1="${x}" y1="11" x2="${
        x + 24
      }" y2="11" stroke="${color}" stroke-width="${
        color === "#aaa" ? 4 : 2
      }" stroke-dasharray="${dash}"/><text x="${
        x + 30
      }" y="15">${label}</text>`;
    }).join("") + "</svg>";
  return composeSvg([composeSvg(parts, "row"), legend], "column");
}

/** A labelled value of {@linkcode barsSvg}. */
export interface Bar {
  label: string;
  value: number;
}

/**
 * A bar chart of fractions (e.g. the classes of generated samples), with a
 * dashed reference line (e.g. 1/10, the uniform histogram).
 */
export function barsSvg(
  bars: Bar[],
  options: { title?: string; reference?: number; yLabel?: string } = {},
): string {
  return svgMarkup(Plot.plot({
    document: plotDocument(),
    width: 640,
    height: 280,
    marginLeft: 50,
    marginBottom: 40,
    title: options.title,
    x: { domain: bars.map((b) => b.label), label: null },
    y: { label: options.yLabel ?? "fraction", grid: true },
    marks: [
      Plot.barY(bars, { x: "label", y: "value", fill: "steelblue" }),
      ...(options.reference !== undefined
        ? [
          Plot.ruleY([options.reference], {
            stroke: "#c33",
            strokeDasharray: "5,3",
          }),
        ]
        : []),
      Plot.ruleY([0]),
    ],
  }) as unknown as SvgElementLike);
}

/** A point of {@linkcode linesSvg}: one value of one named series. */
export interface SeriesPoint {
  x: number;
  y: number;
  series: string;
}

/** Lines labelled at their ends, with an optional dashed reference level. */
export function linesSvg(
  points: SeriesPoint[],
  options: {
    xLabel?: string;
    yLabel?: string;
    reference?: number;
    domain?: [number, number];
  } = {},
): string {
  return svgMarkup(Plot.plot({
    document: plotDocument(),
    width: 640,
    height: 240,
    marginLeft: 50,
    marginRight: 90,
    x: { label: options.xLabel ?? "epoch", grid: true },
    y: { label: options.yLabel ?? null, grid: true, domain: options.domain },
    color: { domain: [...new Set(points.map((p) => p.series))] },
    marks: [
      ...(options.reference !== undefined
        ? [
          Plot.ruleY([options.reference], {
            stroke: "#999",
            strokeDasharray: "4,3",
          }),
        ]
        : []),
      Plot.lineY(points, { x: "x", y: "y", stroke: "series", z: "series" }),
      Plot.text(
        points,
        Plot.selectLast({
          x: "x",
          y: "y",
          z: "series",
          text: "series",
          fill: "series",
          dx: 6,
          textAnchor: "start",
        }),
      ),
    ],
  }) as unknown as SvgElementLike);
}

/** Draws PNG images side by side on a white background; returns PNG bytes. */
export async function pngRow(
  pngs: Uint8Array[],
  gap = 12,
): Promise<Uint8Array> {
  const images = await Promise.all(pngs.map((p) => loadImage(p)));
  const width = images.reduce((w, i) => w + i.width, 0) +
    gap * (images.length - 1);
  const height = Math.max(...images.map((i) => i.height));
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  let x = 0;
  for (const img of images) {
    ctx.drawImage(img, x, Math.round((height - img.height) / 2));
    x += img.width + gap;
  }
  return new Uint8Array(canvas.toBuffer("image/png"));
}

/**
 * The live view of a training run: loss curves beside the sample grid of
 * the fixed noise, as one PNG.
 */
export function trainingFigure(
  history: CurvePoint[],
  grid: ArrayLike<number>,
  options: { encoding: PixelEncoding; title?: string },
): Promise<Uint8Array> {
  return pngRow([
    lossCurvesPng(history, options.title ?? ""),
    imageGrid(grid, { encoding: options.encoding, cols: 10, scale: 3 }),
  ]);
}
