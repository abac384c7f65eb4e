/// <reference lib="dom" />
/**
 * The page's pictures on a canvas: a grid of 28 x 28 images, and the
 * training curves (losses above, D's outputs below).
 *
 * @module
 */

const SIDE = 28;

/**
 * Draws images (bytes 0..255, white on black) in a grid of `cols` columns
 * on `canvas`, each pixel `scale` pixels wide, resizing the canvas to fit.
 */
export function drawGrid(
  canvas: HTMLCanvasElement,
  images: Uint8Array,
  cols: number,
  scale = 2,
): void {
  const gap = 2;
  const n = images.length / (SIDE * SIDE);
  const rows = Math.ceil(n / cols);
  const cell = SIDE * scale + gap;
  canvas.width = cols * cell + gap;
  canvas.height = rows * cell + gap;
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#808080";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const tile = ctx.createImageData(SIDE * scale, SIDE * scale);
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < SIDE * scale; y++) {
      for (let x = 0; x < SIDE * scale; x++) {
        const v = images[
          k * SIDE * SIDE + ((y / scale) | 0) * SIDE + ((x / scale) | 0)
        ];
        const o = (y * SIDE * scale + x) * 4;
        tile.data[o] = tile.data[o + 1] = tile.data[o + 2] = v;
        tile.data[o + 3] = 255;
      }
    }
    const r = Math.floor(k / cols), c = k % cols;
    ctx.putImageData(tile, gap + c * cell, gap + r * cell);
  }
}

/** One point of the curves: means over the rounds since the last point. */
export interface CurvePoint {
  /** Rounds played since the start. */
  step: number;
  dLoss: number;
  gLoss: number;
  dReal: number;
  dFake: number;
}

const SERIES = [
  { key: "dLoss", label: "D loss", color: "#1f77b4", panel: 0 },
  { key: "gLoss", label: "G loss", color: "#d62728", panel: 0 },
  { key: "dReal", label: "D(x)", color: "#2ca02c", panel: 1 },
  { key: "dFake", label: "D(G(z))", color: "#9467bd", panel: 1 },
] as const;

/**
 * Draws the losses (top panel, scaled to their range) and D's mean outputs
 * on real and generated images (bottom panel, 0 to 1) against rounds.
 */
export function drawCurves(canvas: HTMLCanvasElement, points: CurvePoint[]) {
  const ctx = canvas.getContext("2d")!;
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  const left = 40, right = 8, half = h / 2;
  const last = points.at(-1)?.step ?? 1;
  const losses = points.flatMap((p) => [p.dLoss, p.gLoss]);
  const top = Math.max(1, ...losses) * 1.05;
  const panels = [
    { y0: 8, y1: half - 14, lo: 0, hi: top },
    { y0: half + 8, y1: h - 18, lo: 0, hi: 1 },
  ];
  const x = (step: number) => left + (w - left - right) * (step / last);
  for (const [i, p] of panels.entries()) {
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(left, p.y0, w - left - right, p.y1 - p.y0);
    ctx.fillStyle = "#444";
    ctx.fillText(p.hi.toFixed(i ? 0 : 1), 4, p.y0 + 9);
    ctx.fillText("0", 4, p.y1);
  }
  ctx.fillText(`${last} rounds`, w - right - 70, h - 4);
  SERIES.forEach((s, i) => {
    const p = panels[s.panel];
    const y = (v: number) =>
      p.y1 -
      (p.y1 - p.y0) * Math.min(1, Math.max(0, (v - p.lo) / (p.hi - p.lo)));
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((q, k) => {
      const px = x(q.step), py = y(q[s.key]);
      if (k === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, left + 6 + (i % 2) * 70, p.y0 + 12);
  });
}
