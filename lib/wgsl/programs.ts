/**
 * The WGSL programs of the training step, as text: tiled matMuls with
 * their epilogues, column sums, maxout, the optimisers, the
 * gather of a batch, and batch norm's passes. Each program's bindings are
 * listed in its text; `lib/wgsl/recording.ts` binds buffers to them.
 *
 * @module
 */

import type { LayerSpec } from "../nets/mlp.ts";
import type { MatMulTile } from "./plans.ts";
import { convFunctions, type ConvGather } from "./conv_programs.ts";

/**
 * A nonlinearity: the MLP specs' (whose `leaky_relu` has slope 0.2), or a
 * leaky ReLU of another slope (`leaky:0.1`), as the layer lists have.
 */
export type Act = LayerSpec["activation"] | `leaky:${number}`;

/** A WGSL f32 literal of `x`. */
function f32Literal(x: number): string {
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** The slope of a `leaky:` nonlinearity, or null. */
function leakySlope(act: Act): string | null {
  return act.startsWith("leaky:") ? f32Literal(Number(act.slice(6))) : null;
}

/** WGSL of a nonlinearity applied to `x`. */
export function actCode(act: Act): string {
  const slope = leakySlope(act);
  if (slope) return `select(${slope} * x, x, x >= 0.0)`;
  switch (act) {
    case "relu":
      return "max(x, 0.0)";
    case "leaky_relu":
      return "select(0.2 * x, x, x >= 0.0)";
    case "tanh":
      // tfjs's own formula: stable for large |x|.
      return "sign(x) * (1.0 - exp(-2.0 * abs(x))) / (1.0 + exp(-2.0 * abs(x)))";
    case "sigmoid":
      return "1.0 / (1.0 + exp(-x))";
    case "linear":
      return "x";
    default:
      throw new Error(`no WGSL for activation ${act}`);
  }
}

/** WGSL of a nonlinearity's derivative from its output `y`. */
export function actGradCode(act: Act): string {
  const slope = leakySlope(act);
  if (slope) return `select(${slope}, 1.0, y > 0.0)`;
  switch (act) {
    case "relu":
      return "select(0.0, 1.0, y > 0.0)";
    case "leaky_relu":
      return "select(0.2, 1.0, y > 0.0)";
    case "tanh":
      return "(1.0 - y * y)";
    case "sigmoid":
      return "(y * (1.0 - y))";
    case "linear":
      return "1.0";
    default:
      throw new Error(`no WGSL for activation ${act}`);
  }
}

export type Binding = "read-only-storage" | "storage" | "uniform";

/** The kinds of {@linkcode MATMUL_BINDINGS}. */
export const MATMUL_KINDS: Binding[] = [
  "read-only-storage",
  "read-only-storage",
  "storage",
  "read-only-storage",
  "uniform",
  "read-only-storage",
];

/**
 * The head of an elementwise program: one thread per element, index `i`
 * (past 65,535 workgroups the grid has rows; see `#grid`).
 */
export const FLAT_MAIN = `@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.y * nw.x * 256u + id.x;`;

export const MATMUL_BINDINGS = `
struct U { M: u32, N: u32, K: u32, aOff: u32, bOff: u32, cOff: u32, eOff: u32, mOff: u32, kc: u32, lda: u32, ldc: u32, lde: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
@group(0) @binding(5) var<storage, read> Mk: array<f32>;
`;

/** How a matMul program finishes each output. */
export type Epilogue =
  | { kind: "store" }
  | { kind: "bias"; act: Act }
  | { kind: "actGrad"; act: Act }
  | { kind: "maxoutGrad"; pieces: number };

/** A matMul program's variant. */
export interface MatMulVariant {
  /** A is stored [K, M]. */
  transA?: boolean;
  /** B is stored [N, K]. */
  transB?: boolean;
  epilogue: Epilogue;
  /** A's elements are multiplied by a dropout mask laid out as A (Mk). */
  maskA?: boolean;
  /** Each output is multiplied by a dropout mask laid out as C (Mk). */
  maskOut?: boolean;
  /** The side of C's tile per workgroup (default 64). */
  tile?: MatMulTile;
  /**
   * op(A)'s last row (m = M - 1) is ones instead of A's, so that C's last
   * row is B's column sums: a layer's bias gradient in the same product
   * as its kernel's, as the bias follows the kernel in the parameters.
   * With `transA` only (a weight gradient).
   */
  onesRow?: boolean;
  /**
   * The operands are a convolution's, gathered as the tiles load
   * (`lib/wgsl/conv_programs.ts`): `forward` and `inputGrad` products
   * without `transA`, `filterGrad` with it; no mask on A.
   */
  conv?: ConvGather;
}

/**
 * WGSL that finishes output (m, n) of a matMul program from its sum `a`
 * (the variant's epilogue and output mask) and stores it in C, at
 * `wg.z`'s partial product when K is split.
 */
export function epilogueCode(variant: MatMulVariant): string {
  const mask = variant.maskOut ? " * Mk[u.mOff + m * u.lde + n]" : "";
  const put = "C[u.cOff + wg.z * u.M * u.N + m * u.ldc + n] = v;";
  switch (variant.epilogue.kind) {
    case "store":
      return `let v = a${mask}; ${put}`;
    case "bias":
      // With an output mask: dropout after the nonlinearity.
      return `let x = a + E[u.eOff + n];
        let v = ${actCode(variant.epilogue.act)}${mask}; ${put}`;
    case "actGrad":
      return `let y = E[u.eOff + m * u.lde + n];
        let v = a${mask} * ${actGradCode(variant.epilogue.act)}; ${put}`;
    case "maxoutGrad": {
      const pieces = variant.epilogue.pieces;
      return `let d = a${mask};
        let at = (m * u.N + n) * ${pieces}u;
        var y = E[u.eOff + at];
        for (var p = 1u; p < ${pieces}u; p++) { y = max(y, E[u.eOff + at + p]); }
        for (var p = 0u; p < ${pieces}u; p++) {
          C[u.cOff + at + p] = select(0.0, d, E[u.eOff + at + p] == y);
        }`;
    }
  }
}

/**
 * C[M, N] = op(A) op(B) (rows of A `lda` apart, of C `ldc`, of E and an
 * output mask `lde`) with a T x T tile of C per workgroup of 16 x 16
 * threads (T = 64: 4 x 4 outputs each, 16-deep slices of K through
 * workgroup memory; T = 128: 8 x 8 outputs each, 8-deep slices), then the
 * epilogue on each output. A workgroup adds the products of K's run
 * `wg.z * kc ..`, all of K unless the product is split (then the epilogue is
 * `store` and run z's partial product goes to C from cOff + z M N).
 *
 * - `bias`: adds E (the bias, from eOff) and applies the nonlinearity.
 * - `actGrad`: multiplies by the derivative of the nonlinearity whose
 *   output is E (laid out as C, from eOff).
 * - `maxoutGrad`: the gradient with respect to a maxout layer's pieces,
 *   from the gradient with respect to its units (this product): each of
 *   the unit's pieces in E (pre-activations, [M, N * pieces] from eOff)
 *   that attains the max gets it, the others 0 (tfjs's gradient of max);
 *   C is [M, N * pieces].
 */
export function matMulCode(variant: MatMulVariant): string {
  const { transA = false, transB = false, maskA = false } = variant;
  const T = variant.tile ?? 64;
  // A slice of K holds T * BK = 1,024 values of each operand: 4 a thread.
  const BK = T === 64 ? 16 : 8;
  const Q = T / 4; // vec4s in a row of a slice
  const slice = BK * Q;
  const G = T / 64; // groups of 4 x 4 outputs a thread has per side
  // Each thread loads 4 elements of each tile; the fast index follows the
  // stored layout, so neighbouring threads read neighbouring addresses.
  const readA = maskA ? "A[u.aOff + i] * Mk[u.mOff + i]" : "A[u.aOff + i]";
  const conv = variant.conv;
  if (conv && (maskA || transB || transA !== (conv.form === "filterGrad"))) {
    throw new Error(
      `unreachable: a ${conv.form} convolution's product with transA ${transA}, transB ${transB}, maskA ${maskA}`,
    );
  }
  // A convolution's A[m, k] of op(A) is gathered (filterGrad: patches^T).
  const gatherA = conv?.form === "filterGrad"
    ? "convA(k0 + kk, row0 + mm)"
    : "convA(row0 + mm, k0 + kk)";
  if (variant.onesRow && !transA) {
    throw new Error("unreachable: a row of ones in A without transA");
  }
  const elementAT = conv
    ? `a = ${gatherA};`
    : `let i = (k0 + kk) * u.lda + row0 + mm; a = ${readA};`;
  const loadA = transA
    ? `let kk = e / ${T}u; let mm = e % ${T}u;
       var a = 0.0;
       if (row0 + mm < u.M && k0 + kk < kEnd) { ${
      variant.onesRow
        ? `if (row0 + mm == u.M - 1u) { a = 1.0; } else { ${elementAT} }`
        : elementAT
    } }`
    : `let mm = e / ${BK}u; let kk = e % ${BK}u;
       var a = 0.0;
       if (row0 + mm < u.M && k0 + kk < kEnd) { ${
      conv
        ? `a = ${gatherA};`
        : `let i = (row0 + mm) * u.lda + k0 + kk; a = ${readA};`
    } }`;
  const elementB = conv?.form === "inputGrad"
    ? "convB(k0 + kb, col0 + nn)"
    : "B[u.bOff + (k0 + kb) * u.N + col0 + nn]";
  const loadB = transB
    ? `let nn = e / ${BK}u; let kb = e % ${BK}u;
       var b = 0.0;
       if (col0 + nn < u.N && k0 + kb < kEnd) { b = B[u.bOff + (col0 + nn) * u.K + k0 + kb]; }`
    : `let kb = e / ${T}u; let nn = e % ${T}u;
       var b = 0.0;
       if (col0 + nn < u.N && k0 + kb < kEnd) { b = ${elementB}; }`;
  const finish = epilogueCode(variant);
  // A thread's outputs are G x G blocks of 4 x 4, rows r * 64 + lid.y * 4 +
  // i and columns c * 64 + lid.x * 4 + j: one vec4 accumulator per block row
  // (acc_r_i_c), spelt out so that no compiler has to unroll or keep an
  // array in registers.
  const blocks: [number, number, number][] = [];
  for (let r = 0; r < G; r++) {
    for (let i = 0; i < 4; i++) {
      for (let c = 0; c < G; c++) blocks.push([r, i, c]);
    }
  }
  const acc = ([r, i, c]: number[]) => `acc_${r}_${i}_${c}`;
  const groups = [...Array(G).keys()];
  const reads = groups.map((g) =>
    `let a${g} = As[kk * ${Q}u + ${g * 16}u + lid.y];
      let b${g} = Bs[kk * ${Q}u + ${g * 16}u + lid.x];`
  ).join("\n      ");
  const update = blocks.map(([r, i, c]) =>
    `${acc([r, i, c])} += a${r}[${i}] * b${c};`
  ).join(" ");
  const store = blocks.map(([r, i, c]) => `
    {
      let m = row0 + ${r * 64}u + lid.y * 4u + ${i}u;
      if (m < u.M) {
        for (var j = 0u; j < 4u; j++) {
          let n = col0 + ${c * 64}u + lid.x * 4u + j;
          if (n < u.N) {
            let a = ${acc([r, i, c])}[j];
            ${finish}
          }
        }
      }
    }`).join("");
  return `${MATMUL_BINDINGS}${conv ? convFunctions(conv) : ""}
var<workgroup> As: array<vec4f, ${slice}>; // [${BK}][${Q}]: k, then 4 rows of m each
var<workgroup> Bs: array<vec4f, ${slice}>; // [${BK}][${Q}]: k, then 4 columns of n each

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * ${T}u;
  let col0 = wg.x * ${T}u;
  let tid = lid.y * 16u + lid.x;
  let kBegin = wg.z * u.kc;
  let kEnd = min(u.K, kBegin + u.kc);
  ${blocks.map((b) => `var ${acc(b)} = vec4f();`).join(" ")}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {
    for (var l = 0u; l < 4u; l++) {
      let e = tid + l * 256u;
      {
        ${loadA}
        As[kk * ${Q}u + mm / 4u][mm % 4u] = a;
      }
      {
        ${loadB}
        Bs[kb * ${Q}u + nn / 4u][nn % 4u] = b;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      ${reads}
      ${update}
    }
    workgroupBarrier();
  }
  ${store}
}`;
}

/**
 * The sum of split-K's partial products: C[cOff + i] = P[i] + P[MN + i] +
 * ... (u.K of them, in order; MN = u.M, i < MN).
 */
export const SPLIT_SUM_CODE = `${MATMUL_BINDINGS}
${FLAT_MAIN}
  if (i >= u.M) { return; }
  var s = A[i];
  for (var z = 1u; z < u.K; z++) { s += A[z * u.M + i]; }
  C[u.cOff + i] = s;
}`;

/**
 * Column sums of A[M, N] (rows aOff..): each workgroup sums up to 256 rows
 * of 64 columns; with more than 256 rows, partial sums go to C by row chunk
 * and a second pass adds them.
 */
export const COLSUM_CODE = colSumCode("min(r0 + 256u, u.M)");

/**
 * Column sums of all M rows of A in one workgroup per 64 columns: the
 * second pass of a column sum over more than 65,536 rows (more than 256
 * partial sums).
 */
export const COLSUM_WHOLE_CODE = colSumCode("u.M");

function colSumCode(end: string): string {
  return `${MATMUL_BINDINGS}
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wg.x * 64u + lid.x;
  let r0 = wg.y * 256u;
  var s = 0.0;
  if (n < u.N) {
    for (var r = r0 + lid.y; r < ${end}; r += 4u) {
      s += A[u.aOff + r * u.N + n];
    }
  }
  part[lid.y * 64u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && n < u.N) {
    C[u.cOff + wg.y * u.N + n] = ((part[lid.x] + part[64u + lid.x]) + part[128u + lid.x]) + part[192u + lid.x];
  }
}`;
}

/**
 * Adam over a whole network's parameters at once, as `lib/nets/optim.ts` (and
 * `lib/backends/webgpu_fusions.ts`'s fused kernel) computes it:
 * m' = beta1 m + (1 - beta1) g; v' = beta2 v + (1 - beta2) g^2;
 * p' = p - (m' lr / (1 - beta1^t)) / (sqrt(v' / (1 - beta2^t)) + eps).
 */
export const ADAM_CODE = `
struct U { beta1: f32, rest1: f32, beta2: f32, rest2: f32, stepSize: f32, correction2: f32, eps: f32, n: u32 }
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
@group(0) @binding(4) var<uniform> u: U;

${FLAT_MAIN}
  if (i >= u.n) { return; }
  let g = G[i];
  let m = M[i] * u.beta1 + g * u.rest1;
  let v = V[i] * u.beta2 + (g * g) * u.rest2;
  M[i] = m;
  V[i] = v;
  P[i] = P[i] - (m * u.stepSize) / (sqrt(v / u.correction2) + u.eps);
}`;

/**
 * SGD with momentum over a whole network's parameters, as `lib/nets/optim.ts`
 * computes it: inc' = momentum inc - lr g; p' = p + inc'.
 */
export const SGD_CODE = `
struct U { momentum: f32, lr: f32, n: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> I: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
@group(0) @binding(4) var<uniform> u: U;

${FLAT_MAIN}
  if (i >= u.n) { return; }
  let inc = I[i] * u.momentum - G[i] * u.lr;
  I[i] = inc;
  P[i] = P[i] + inc;
}`;

/**
 * The moving average of G's parameters, as `lib/nets/ema.ts` moves it:
 * A' = A decay + P (1 - decay), and a copy of P while the decay is 0.
 */
export const EMA_CODE = `
struct U { decay: f32, rest: f32, n: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<uniform> u: U;

${FLAT_MAIN}
  if (i >= u.n) { return; }
  A[i] = select(A[i] * u.decay + P[i] * u.rest, P[i], u.decay == 0.0);
}`;

/** Maxout: C[m, n] = max over p < K of A[m, n * K + p] (M x N outputs). */
export const MAXOUT_CODE = `${MATMUL_BINDINGS}
${FLAT_MAIN}
  if (i >= u.M * u.N) { return; }
  var y = A[u.aOff + i * u.K];
  for (var p = 1u; p < u.K; p++) { y = max(y, A[u.aOff + i * u.K + p]); }
  C[u.cOff + i] = y;
}`;

/**
 * The real batch from the images on the GPU: row r of X (rows of `stride`
 * values, the image first) is image Rows[r], each byte through the
 * 256-entry table of its float (toFloat's values, so the batch is the
 * CPU's to the bit). One thread per 4 pixels (a word).
 */
export const GATHER_CODE = `
struct U { words: u32, perImage: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> Img: array<u32>;
@group(0) @binding(1) var<storage, read> Rows: array<u32>;
@group(0) @binding(2) var<storage, read> Lut: array<f32>;
@group(0) @binding(3) var<storage, read_write> X: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
${FLAT_MAIN}
  if (i >= u.words) { return; }
  let r = i / u.perImage;
  let w = i % u.perImage;
  let word = Img[Rows[r] * u.perImage + w];
  for (var k = 0u; k < 4u; k++) {
    X[r * u.stride + 4u * w + k] = Lut[(word >> (8u * k)) & 255u];
  }
}`;

/**
 * C[cOff + i] *= A[i] for i < n (u.M): a weight gradient times its layer's
 * constant 0/1 label-block mask, as the gradient of tfjs's kernel * mask.
 */
export const MASK_MUL_CODE = `${MATMUL_BINDINGS}
${FLAT_MAIN}
  if (i >= u.M) { return; }
  C[u.cOff + i] = C[u.cOff + i] * A[i];
}`;

/**
 * A conditional GAN's classes in D's input: in each of `rows` rows of
 * `width` values, the `classes` values from column `offset` are the
 * one-hot class `Labels[row % batch]` (D's real rows and its generated
 * ones carry the batch's classes, as `lib/rounds.ts` asks G for them).
 */
export const ONE_HOT_CODE = `
struct U { n: u32, batch: u32, classes: u32, width: u32, offset: u32 }
@group(0) @binding(0) var<storage, read> Labels: array<u32>;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${FLAT_MAIN}
  if (i >= u.n) { return; }
  let r = i / u.classes;
  let k = i % u.classes;
  X[r * u.width + u.offset + k] = select(0.0, 1.0, Labels[r % u.batch] == k);
}`;

/**
 * Batch normalisation (`lib/gan.ts`: tfjs's moments, then
 * (h - mean) / sqrt(var + eps) * gamma + beta, then the nonlinearity).
 * Settings of each program: M rows, N columns, offsets of gamma and beta in
 * the parameters, eps, the running statistics' momentum, and the rows an
 * example has (an image's pixels; 1 for features), by which class-
 * conditional batch norm finds a row's class.
 *
 * Class-conditional batch norm (de Vries et al. 2017) has a row of gamma
 * and of beta per class, [classes, N], and `Labels` holds each example's
 * class: the statistics are the batch's, as without classes.
 */
const BN_UNIFORM = `
struct U { M: u32, N: u32, gamma: u32, beta: u32, eps: f32, momentum: f32, keep: f32, pixels: u32 }`;

/**
 * Column means and (biased) variances of X, two passes: S = [mean, var].
 * With `moving`, each channel's thread also updates the running statistics
 * R = [mean, var] from them (BN_MOVING_CODE's arithmetic), so that G's
 * training pass needs no program of its own for them.
 */
export function bnStatsCode(moving: boolean): string {
  const update = moving
    ? `
    R[n] = R[n] * u.keep + S[n] * u.momentum;
    R[u.N + n] = R[u.N + n] * u.keep + S[u.N + n] * u.momentum;`
    : "";
  return `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${moving ? "@group(0) @binding(3) var<storage, read_write> R: array<f32>;" : ""}
var<workgroup> part: array<f32, 256>;

fn total(c: u32) -> f32 {
  return ((part[c] + part[64u + c]) + part[128u + c]) + part[192u + c];
}

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wg.x * 64u + lid.x;
  var s = 0.0;
  if (n < u.N) {
    for (var r = lid.y; r < u.M; r += 4u) { s += X[r * u.N + n]; }
  }
  part[lid.y * 64u + lid.x] = s;
  workgroupBarrier();
  let mean = total(lid.x) / f32(u.M);
  workgroupBarrier();
  var q = 0.0;
  if (n < u.N) {
    for (var r = lid.y; r < u.M; r += 4u) {
      let d = X[r * u.N + n] - mean;
      q += d * d;
    }
  }
  part[lid.y * 64u + lid.x] = q;
  workgroupBarrier();
  if (lid.y == 0u && n < u.N) {
    S[n] = mean;
    S[u.N + n] = total(lid.x) / f32(u.M);${update}
  }
}`;
}

/**
 * Y = act((X - mean) / sqrt(var + eps) * gamma + beta), or with `divide`
 * false act((X - mean) * (rsqrt(var + eps) * gamma) + beta), as
 * `lib/nets/layer_net.ts` has the two.
 */
export function bnApplyCode(
  act: Act,
  divide = true,
  conditional = false,
): string {
  // Conditional: the row's class picks gamma's and beta's row.
  const g = conditional ? "u.gamma + k * u.N + n" : "u.gamma + n";
  const b = conditional ? "u.beta + k * u.N + n" : "u.beta + n";
  const x = divide
    ? `((X[i] - S[n]) / sqrt(S[u.N + n] + u.eps)) * P[${g}] + P[${b}]`
    : `(X[i] - S[n]) * (inverseSqrt(S[u.N + n] + u.eps) * P[${g}]) + P[${b}]`;
  return `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
${LABELS(conditional, 5)}
${FLAT_MAIN}
  if (i >= u.M * u.N) { return; }
  let n = i % u.N;${
    conditional ? "\n  let k = Labels[(i / u.N) / u.pixels];" : ""
  }
  let x = ${x};
  Y[i] = ${actCode(act)};
}`;
}

/**
 * Gradients of gamma and beta from DZ, the gradient with respect to the
 * normalised output: G[gamma + n] = sum DZ xhat, G[beta + n] = sum DZ, with
 * xhat = (X - mean) / sqrt(var + eps). Class-conditional (`conditional`,
 * workgroups: channels / 64 by classes), a row of each per class: the sums
 * over the rows of class k into G[gamma + k N + n] and G[beta + k N + n].
 */
export function bnSumsCode(conditional = false): string {
  const at = conditional ? "k * u.N + n" : "n";
  return `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> DZ: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
${LABELS(conditional, 5)}var<workgroup> part: array<vec2f, 256>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wg.x * 64u + lid.x;
  let k = wg.y;
  var s = vec2f();
  if (n < u.N) {
    let mean = S[n];
    let sd = sqrt(S[u.N + n] + u.eps);
    for (var r = lid.y; r < u.M; r += 4u) {
      ${conditional ? "if (Labels[r / u.pixels] != k) { continue; }" : ""}
      let dz = DZ[r * u.N + n];
      s += vec2f(dz * ((X[r * u.N + n] - mean) / sd), dz);
    }
  }
  part[lid.y * 64u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && n < u.N) {
    let c = lid.x;
    let t = ((part[c] + part[64u + c]) + part[128u + c]) + part[192u + c];
    G[u.gamma + ${at}] = t.x;
    G[u.beta + ${at}] = t.y;
  }
}`;
}

/** The binding of a conditional program's `Labels` (each example's class), or none. */
function LABELS(conditional: boolean, binding: number): string {
  return conditional
    ? `@group(0) @binding(${binding}) var<storage, read> Labels: array<u32>;\n`
    : "";
}

/**
 * The gradient with respect to the layer's affine output X:
 * D = gamma / sd * (DZ - sum DZ / M - xhat * sum(DZ xhat) / M).
 * Class-conditional (`classes` > 0): with the row's gamma g_k, xhat's
 * gradient is DZ g_k, whose sum over the batch is sum_k g_k (beta's
 * gradient of class k), and times xhat sum_k g_k (gamma's gradient of
 * class k): D = (g_k DZ - the first / M - xhat * the second / M) / sd.
 */
export function bnBackCode(classes = 0): string {
  const body = classes
    ? `var dbeta = 0.0;
  var dgamma = 0.0;
  for (var c = 0u; c < ${classes}u; c++) {
    let g = P[u.gamma + c * u.N + n];
    dbeta += g * G[u.beta + c * u.N + n];
    dgamma += g * G[u.gamma + c * u.N + n];
  }
  let k = Labels[(i / u.N) / u.pixels];
  D[i] = ((P[u.gamma + k * u.N + n] * DZ[i] - dbeta / m) - xhat * (dgamma / m)) / sd;`
    : "D[i] = P[u.gamma + n] / sd * ((DZ[i] - G[u.beta + n] / m) - xhat * (G[u.gamma + n] / m));";
  return `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> DZ: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> P: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;
@group(0) @binding(5) var<storage, read_write> D: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
${LABELS(classes > 0, 7)}
${FLAT_MAIN}
  if (i >= u.M * u.N) { return; }
  let n = i % u.N;
  let m = f32(u.M);
  let sd = sqrt(S[u.N + n] + u.eps);
  let xhat = (X[i] - S[n]) / sd;
  ${body}
}`;
}

/** Running statistics: R = R keep + S momentum (keep = 1 - momentum), means then variances. */
export const BN_MOVING_CODE = `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> R: array<f32>;
@group(0) @binding(2) var<uniform> u: U;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i >= 2u * u.N) { return; }
  R[i] = R[i] * u.keep + S[i] * u.momentum;
}`;
