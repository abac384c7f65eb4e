/**
 * Convolutions as matrix products whose operands are gathered inside the
 * matMul program's tile loads (an implicit GEMM: no im2col buffer). With
 * images NHWC and filters [size, size, in, out] as tfjs stores them, a
 * convolution of x [B, H, W, Cin] to y [B, OH, OW, Cout] is
 *
 *     y[m, n] = sum_k patches(x)[m, k] W[k, n]
 *
 * with m = (b, oy, ox), k = (ky, kx, c) and patches(x)[m, k] = x[b, oy s +
 * ky - top, ox s + kx - left, c] (0 outside the image). From it:
 *
 * - its weight gradient dW[k, n] = sum_m patches(x)[m, k] dy[m, n], the
 *   product of patches^T and dy, whose K (B OH OW) is long: split K;
 * - its input gradient dx[m', c] = sum_k' spread(dy)[m', k'] W'[k', c] with
 *   m' = (b, y, x) of the input, k' = (ky, kx, n), spread(dy)[m', k'] =
 *   dy[b, (y + top - ky) / s, (x + left - kx) / s, n] where both divide
 *   exactly and fall inside, else 0, and W'[k', c] = W[ky, kx, c, n];
 * - a transposed convolution (G's upsampling) is that input gradient with
 *   its input in dy's place, and its gradients are a convolution (for its
 *   input) and the weight gradient with the roles of x and dy swapped.
 *
 * The geometry is fixed when the step is made, so it is written into each
 * program as constants.
 *
 * @module
 */

/** A convolution's sizes, as tfjs computes them (`same` or `valid` padding). */
export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  /** The filter's side. */
  size: number;
  stride: number;
  /** Rows and columns of zeros before the image (tfjs: half the padding, rounded down). */
  padTop: number;
  padLeft: number;
}

/**
 * The geometry of a convolution of `[batch, inH, inW, inC]` images with a
 * `size` x `size` x inC x outC filter, as tfjs's `conv2d` (and, for the
 * transposed convolution whose output is that input, `conv2dTranspose`)
 * computes it: `same` gives ceil(in / stride) outputs a side with the
 * padding split, the smaller half first; `valid` none.
 */
export function convGeometry(o: {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outC: number;
  size: number;
  stride: number;
  padding: "same" | "valid";
}): ConvGeometry {
  const side = (n: number) =>
    o.padding === "same"
      ? Math.ceil(n / o.stride)
      : Math.floor((n - o.size) / o.stride) + 1;
  const outH = side(o.inH), outW = side(o.inW);
  if (!(outH >= 1 && outW >= 1)) {
    throw new Error(
      `a ${o.size} x ${o.size} filter does not fit ${o.inH} x ${o.inW} images without padding`,
    );
  }
  const pad = (n: number, out: number) =>
    o.padding === "same"
      ? Math.floor(Math.max((out - 1) * o.stride + o.size - n, 0) / 2)
      : 0;
  return {
    batch: o.batch,
    inH: o.inH,
    inW: o.inW,
    inC: o.inC,
    outH,
    outW,
    outC: o.outC,
    size: o.size,
    stride: o.stride,
    padTop: pad(o.inH, outH),
    padLeft: pad(o.inW, outW),
  };
}

/** The matrix product's sizes of each form, for a geometry. */
export function convProduct(
  g: ConvGeometry,
  form: ConvForm,
): { M: number; N: number; K: number } {
  const patch = g.size * g.size * g.inC;
  const outputs = g.batch * g.outH * g.outW;
  switch (form) {
    case "forward":
      return { M: outputs, N: g.outC, K: patch };
    case "filterGrad":
      return { M: patch, N: g.outC, K: outputs };
    case "inputGrad":
      return {
        M: g.batch * g.inH * g.inW,
        N: g.inC,
        K: g.size * g.size * g.outC,
      };
  }
}

/**
 * Which product of a convolution a program computes: y from x and W
 * (`forward`), dW from x and dy (`filterGrad`), or dx from dy and W
 * (`inputGrad`, also a transposed convolution's forward pass).
 */
export type ConvForm = "forward" | "filterGrad" | "inputGrad";

/** A matMul program's operands as a convolution's (`MatMulVariant.conv`). */
export interface ConvGather {
  form: ConvForm;
  geometry: ConvGeometry;
}

/** WGSL constants of a geometry, `CV_*`. */
function constants(g: ConvGeometry): string {
  return [
    ["H", g.inH],
    ["W", g.inW],
    ["CIN", g.inC],
    ["OH", g.outH],
    ["OW", g.outW],
    ["COUT", g.outC],
    ["KS", g.size],
    ["S", g.stride],
    ["PT", g.padTop],
    ["PL", g.padLeft],
  ].map(([name, v]) => `const CV_${name} = ${v}u;`).join("\n");
}

/**
 * WGSL functions that read the product's operands for the form:
 * `convA(m, k)` (A[m, k] of the product, or A^T's for `filterGrad`) and,
 * for `inputGrad`, `convB(k, n)`; they read bindings A and B from
 * `u.aOff` and `u.bOff`.
 */
export function convFunctions(gather: ConvGather): string {
  const head = constants(gather.geometry);
  // patches(x)[m, k]: m = (b, oy, ox), k = (ky, kx, c).
  const patch = `
fn convA(m: u32, k: u32) -> f32 {
  let b = m / (CV_OH * CV_OW);
  let r = m % (CV_OH * CV_OW);
  let c = k % CV_CIN;
  let t = k / CV_CIN;
  let iy = i32((r / CV_OW) * CV_S + t / CV_KS) - i32(CV_PT);
  let ix = i32((r % CV_OW) * CV_S + t % CV_KS) - i32(CV_PL);
  if (iy < 0 || ix < 0 || iy >= i32(CV_H) || ix >= i32(CV_W)) { return 0.0; }
  return A[u.aOff + ((b * CV_H + u32(iy)) * CV_W + u32(ix)) * CV_CIN + c];
}`;
  if (gather.form !== "inputGrad") return `${head}${patch}`;
  // spread(dy)[m, k]: m = (b, y, x) of the input, k = (ky, kx, n); and
  // W'[k, c] = W[ky, kx, c, n].
  return `${head}
fn convA(m: u32, k: u32) -> f32 {
  let b = m / (CV_H * CV_W);
  let r = m % (CV_H * CV_W);
  let n = k % CV_COUT;
  let t = k / CV_COUT;
  let sy = i32(r / CV_W + CV_PT) - i32(t / CV_KS);
  let sx = i32(r % CV_W + CV_PL) - i32(t % CV_KS);
  if (sy < 0 || sx < 0) { return 0.0; }
  let oy = u32(sy) / CV_S;
  let ox = u32(sx) / CV_S;
  if (u32(sy) % CV_S != 0u || u32(sx) % CV_S != 0u || oy >= CV_OH || ox >= CV_OW) { return 0.0; }
  return A[u.aOff + ((b * CV_OH + oy) * CV_OW + ox) * CV_COUT + n];
}
fn convB(k: u32, c: u32) -> f32 {
  return B[u.bOff + ((k / CV_COUT) * CV_CIN + c) * CV_COUT + k % CV_COUT];
}`;
}
