/**
 * The whole training step of an MLP GAN (one D step, one G step) as a fixed
 * list of hand-written WGSL dispatches on the GPU device of tfjs's WebGPU
 * backend.
 *
 * Why: through tfjs, each op of a step costs a bind group, a uniform buffer
 * and a dispatch built anew on the CPU (Deno's `createBindGroup` alone is
 * ~25-45 us), and a step is 245 (`paper`), 300 (`mlp`) or 572 (`bn`) ops.
 * Here every buffer is made once, so every bind group is made once too; a
 * step writes its inputs (the real batch or its rows in the images kept on
 * the GPU, the noise, the start states of D's dropout masks, the
 * optimiser's settings) with `queue.writeBuffer`, records its dispatches
 * (46, 52 and 80; `pylearn2`'s simultaneous round 35) into one command
 * buffer per player and submits them. Fewer dispatches, because each does
 * more:
 *
 * - a dense layer's forward pass is one matMul program that multiplies its
 *   input by the dropout mask as it reads it, and whose epilogue adds the
 *   bias and applies the nonlinearity (maxout: one more program, the max
 *   over each unit's pieces; batch norm: two more, the batch's statistics,
 *   then the normalisation and the nonlinearity);
 * - the gradient with respect to a layer's input is one matMul program whose
 *   epilogue multiplies by the dropout mask and the derivative of the
 *   nonlinearity below, taken from that layer's output (relu: y > 0; leaky
 *   relu: 1 or 0.2; tanh: 1 - y^2; sigmoid: y (1 - y); maxout: the gradient
 *   goes to the pieces that attain the max), as tfjs's gradients do;
 * - D sees the real and the generated batch in one pass of 2B rows, with
 *   the masks `lib/gan.ts` would draw for each half (drawn on the GPU by
 *   `lib/alea.ts`, one program per layer);
 * - with the images on the GPU, one program gathers the real batch;
 * - the losses and their gradients with respect to D's logits are one
 *   program, which also adds the step's figures to sums kept on the GPU;
 * - the optimiser (Adam, or SGD with momentum) updates all of a network's
 *   parameters in one program: each network's parameters (and gradients,
 *   and slots) are one buffer.
 *
 * At large batches the matMul programs change shape ({@linkcode matMulPlan}):
 * 128 x 128 tiles for products with many outputs, and the weight gradients'
 * K (the batch) split into runs whose partial products a second program
 * adds, for products with few outputs.
 *
 * The arithmetic is `lib/gan.ts`'s and `lib/optim.ts`'s, with the same
 * dropout masks (tests compare steps with the tfjs step), in float32,
 * summed in another order. Several D or G steps per round (k > 1) are left
 * to the tfjs step: {@linkcode wgslStepSupport} says why a configuration
 * is.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  ALEA_CHUNK,
  ALEA_MASK_CODE,
  aleaJumpTable,
  aleaStart,
  keepThreshold,
} from "./alea.ts";
import {
  BN_EPS,
  BN_MOMENTUM,
  FAKE_MASK_OFFSET,
  type Gan,
  type GanConfig,
  type LayerSpec,
  type Mlp,
} from "./gan.ts";
import { IMAGE_PIXELS, type PixelRange, toFloat } from "./data.ts";
import { adamSettings, learningRate, momentum } from "./optim.ts";

/**
 * Why the WGSL step cannot train `config` (a sentence), or null when it can.
 */
export function wgslStepSupport(config: GanConfig): string | null {
  for (
    const [name, net] of [["G", config.generator], [
      "D",
      config.discriminator,
    ]] as const
  ) {
    if (
      !["relu", "leaky_relu", "tanh"].includes(net.activation) &&
      !(name === "D" && net.activation === "maxout")
    ) {
      return `${name}'s ${net.activation} layers are not written in WGSL`;
    }
    if (name === "G" && (net.dropout || net.inputDropout)) {
      return "G's dropout is not written in WGSL";
    }
  }
  if (config.k !== 1 || config.gSteps !== 1) {
    return "only one D step and one G step per round are written in WGSL";
  }
  return null;
}

/** One step's inputs, as the training loop draws them on the CPU. */
export interface WgslStepInputs {
  /** The real batch, [B, 784] row-major (or give `rows`). */
  real?: Float32Array;
  /**
   * The real batch as B positions in the images given to
   * {@linkcode WgslStep.create} (`data`), which the GPU gathers itself.
   */
  rows?: Uint32Array;
  /** Noise of D's step (of the round, when simultaneous), [B, latentDim]. */
  zD: Float32Array;
  /** Noise of G's step, [B, latentDim] (alternating updates only). */
  zG?: Float32Array;
  /** Seed of D's dropout masks in D's step (needed when D has dropout). */
  dSeed?: number;
  /** Seed of D's dropout masks in G's step (needed when D has dropout). */
  gSeed?: number;
  /** The epoch (0-based), for SGD's momentum ramp (default 0). */
  epoch?: number;
}

/** Options of {@linkcode WgslStep.create}. */
export interface WgslStepOptions {
  /**
   * The training images, kept on the GPU (one byte a pixel) so that a step
   * names its real batch by positions (`rows`) instead of uploading it:
   * at batch 8192 building and uploading the batch costs ~20 ms of CPU and
   * 25 MB a step. `range` is the pixels' range, as `lib/data.ts`'s
   * `toFloat` gives it. Images that would not fit one GPU buffer binding
   * are left on the CPU (see {@linkcode WgslStep.gathers}).
   */
  data?: { images: Uint8Array; range: PixelRange };
  /**
   * The matMul programs: by shape (`"auto"`, the default), the 64 x 64
   * tiles without split-K (`"plain"`), or forced (see
   * {@linkcode MatMulChoice}).
   */
  matMul?: MatMulChoice;
  /**
   * Rewrites each program's WGSL before it is compiled. For tests only: a
   * deliberately broken program shows that a comparison with the tfjs step
   * (`lib/wgsl_check.ts`) catches a wrong step.
   */
  transformProgram?: (code: string) => string;
}

/**
 * Sums over the steps since the last {@linkcode WgslStep.resetFigures}, in
 * the training loop's order: D loss, V(D, G), D(x), D(G(z)), accuracy on
 * real, accuracy on generated, G loss.
 */
export type FigureSums = Float32Array;

const S = GPUBufferUsage.STORAGE;
const COPY_DST = GPUBufferUsage.COPY_DST;
const COPY_SRC = GPUBufferUsage.COPY_SRC;

type Act = LayerSpec["activation"];

/** WGSL of a nonlinearity applied to `x`. */
function actCode(act: Act): string {
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
function actGradCode(act: Act): string {
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

type Binding = "read-only-storage" | "storage" | "uniform";

/** The kinds of {@linkcode MATMUL_BINDINGS}. */
const MATMUL_KINDS: Binding[] = [
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
const FLAT_MAIN = `@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.y * nw.x * 256u + id.x;`;

const MATMUL_BINDINGS = `
struct U { M: u32, N: u32, K: u32, aOff: u32, bOff: u32, cOff: u32, eOff: u32, mOff: u32, kc: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
@group(0) @binding(5) var<storage, read> Mk: array<f32>;
`;

/** How a matMul program finishes each output. */
type Epilogue =
  | { kind: "store" }
  | { kind: "bias"; act: Act }
  | { kind: "actGrad"; act: Act }
  | { kind: "maxoutGrad"; pieces: number };

/** A matMul program's variant. */
interface MatMulVariant {
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
}

/** The side of the square tile of C that one matMul workgroup computes. */
export type MatMulTile = 64 | 128;

/**
 * How one matMul is spread over the GPU: the tile of C per workgroup, and
 * with `splits` > 1, K cut into `splits` runs of `chunk` (the last may be
 * shorter), each workgroup row computing a partial product, which a second
 * program adds up in order (split-K).
 */
export interface MatMulPlan {
  tile: MatMulTile;
  splits: number;
  chunk: number;
}

/**
 * Which matMul programs a {@linkcode WgslStep} uses:
 * - `"auto"` (the default): by shape, {@linkcode matMulPlan}'s choice;
 * - `"plain"`: 64 x 64 tiles, K never split (the step before split-K and
 *   the wider tile, for comparison);
 * - `{ tile, chunk }`: every product on `tile`, and every weight gradient's
 *   K split into runs of `chunk` (best a multiple of 16) where it is longer.
 */
export type MatMulChoice = "auto" | "plain" | {
  tile: MatMulTile;
  chunk?: number;
};

/**
 * The auto plan of C[M, N] = A[M, K] B[K, N]. The tile is 128 x 128 when
 * there are at least 256 of them (enough workgroups for a large GPU; each
 * thread then computes 8 x 8 outputs, twice the arithmetic per value read
 * of a 64 x 64 tile's 4 x 4); otherwise 64 x 64. A product whose epilogue
 * allows it (`splittable`: weight gradients, K = the batch) and whose 64 x 64
 * tiles number fewer than 1,024 has its K split so that the runs give about
 * 1,024 workgroups, each run at least 256 long and the partial products at
 * most `maxFloats` floats (one buffer binding): at batch 8192, D's first
 * weight gradient (784 x 1024, K = 16,384) has 208 tiles, so 5 runs of
 * 3,280. The tile changes the order of no addition (each output adds its K
 * products in order), so not a bit of the result; a split adds the runs'
 * sums, which changes the result by float rounding only.
 */
export function matMulPlan(
  shape: { M: number; N: number; K: number },
  options: { splittable?: boolean; maxFloats?: number } = {},
): MatMulPlan {
  const { M, N, K } = shape;
  const wide = Math.ceil(M / 128) * Math.ceil(N / 128);
  if (wide >= 256) return { tile: 128, splits: 1, chunk: K };
  const tiles = Math.ceil(M / 64) * Math.ceil(N / 64);
  if (!options.splittable || tiles >= 1024) {
    return { tile: 64, splits: 1, chunk: K };
  }
  let splits = Math.min(Math.floor(K / 256), Math.ceil(1024 / tiles));
  const maxFloats = options.maxFloats ?? Infinity;
  splits = Math.min(splits, Math.floor(maxFloats / (M * N)));
  if (splits < 2) return { tile: 64, splits: 1, chunk: K };
  return splitPlan(64, K, Math.ceil(K / splits / 16) * 16);
}

/** The plan of K cut into runs of `chunk` (at least one run). */
function splitPlan(tile: MatMulTile, K: number, chunk: number): MatMulPlan {
  const splits = Math.max(1, Math.ceil(K / chunk));
  return splits === 1 ? { tile, splits: 1, chunk: K } : { tile, splits, chunk };
}

/**
 * C[M, N] = op(A) op(B) with a T x T tile of C per workgroup of 16 x 16
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
function matMulCode(variant: MatMulVariant): string {
  const { transA = false, transB = false, maskA = false, maskOut = false } =
    variant;
  const T = variant.tile ?? 64;
  // A slice of K holds T * BK = 1,024 values of each operand: 4 a thread.
  const BK = T === 64 ? 16 : 8;
  const Q = T / 4; // vec4s in a row of a slice
  const slice = BK * Q;
  const G = T / 64; // groups of 4 x 4 outputs a thread has per side
  // Each thread loads 4 elements of each tile; the fast index follows the
  // stored layout, so neighbouring threads read neighbouring addresses.
  const readA = maskA ? "A[u.aOff + i] * Mk[u.mOff + i]" : "A[u.aOff + i]";
  const loadA = transA
    ? `let kk = e / ${T}u; let mm = e % ${T}u;
       var a = 0.0;
       if (row0 + mm < u.M && k0 + kk < kEnd) { let i = (k0 + kk) * u.M + row0 + mm; a = ${readA}; }`
    : `let mm = e / ${BK}u; let kk = e % ${BK}u;
       var a = 0.0;
       if (row0 + mm < u.M && k0 + kk < kEnd) { let i = (row0 + mm) * u.K + k0 + kk; a = ${readA}; }`;
  const loadB = transB
    ? `let nn = e / ${BK}u; let kb = e % ${BK}u;
       var b = 0.0;
       if (col0 + nn < u.N && k0 + kb < kEnd) { b = B[u.bOff + (col0 + nn) * u.K + k0 + kb]; }`
    : `let kb = e / ${T}u; let nn = e % ${T}u;
       var b = 0.0;
       if (col0 + nn < u.N && k0 + kb < kEnd) { b = B[u.bOff + (k0 + kb) * u.N + col0 + nn]; }`;
  const mask = maskOut ? " * Mk[u.mOff + m * u.N + n]" : "";
  const put = "C[u.cOff + wg.z * u.M * u.N + m * u.N + n] = v;";
  let finish: string;
  switch (variant.epilogue.kind) {
    case "store":
      finish = `let v = a${mask}; ${put}`;
      break;
    case "bias":
      finish = `let x = a + E[u.eOff + n];
        let v = ${actCode(variant.epilogue.act)}; ${put}`;
      break;
    case "actGrad":
      finish = `let y = E[u.eOff + m * u.N + n];
        let v = a${mask} * ${actGradCode(variant.epilogue.act)}; ${put}`;
      break;
    case "maxoutGrad": {
      const pieces = variant.epilogue.pieces;
      finish = `let d = a${mask};
        let at = (m * u.N + n) * ${pieces}u;
        var y = E[u.eOff + at];
        for (var p = 1u; p < ${pieces}u; p++) { y = max(y, E[u.eOff + at + p]); }
        for (var p = 0u; p < ${pieces}u; p++) {
          C[u.cOff + at + p] = select(0.0, d, E[u.eOff + at + p] == y);
        }`;
      break;
    }
  }
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
  return `${MATMUL_BINDINGS}
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
const SPLIT_SUM_CODE = `${MATMUL_BINDINGS}
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
const COLSUM_CODE = `${MATMUL_BINDINGS}
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wg.x * 64u + lid.x;
  let r0 = wg.y * 256u;
  var s = 0.0;
  if (n < u.N) {
    for (var r = r0 + lid.y; r < min(r0 + 256u, u.M); r += 4u) {
      s += A[u.aOff + r * u.N + n];
    }
  }
  part[lid.y * 64u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && n < u.N) {
    C[u.cOff + wg.y * u.N + n] = ((part[lid.x] + part[64u + lid.x]) + part[128u + lid.x]) + part[192u + lid.x];
  }
}`;

/**
 * The losses from D's logits, l = log(D / (1 - D)), and their gradients
 * with respect to l (one workgroup).
 *
 * D's step (mode 0): rows 0..B-1 are real, B..2B-1 generated; the loss is
 * BCE(D(x), t) + BCE(D(G(z)), 0) (`discriminatorLoss`), whose gradient is
 * (sigmoid(l) - t) / B on a real row and sigmoid(l) / B on a generated one,
 * times D's loss scale. It adds the loss, V(D, G) (eq. 1), mean D(x),
 * mean D(G(z)) and both accuracies to the sums in F[0..5].
 *
 * G's step on B generated rows (from row lOff): non-saturating (mode 1),
 * -mean log D(G(z)),
 * gradient (sigmoid(l) - 1) / B; saturating (mode 2), mean log(1 - D(G(z))),
 * gradient -sigmoid(l) / B. It adds the loss to F[6].
 */
const LOSS_CODE = `
struct U { B: u32, mode: u32, label: f32, scale: f32, lOff: u32 }
@group(0) @binding(0) var<storage, read> L: array<f32>;
@group(0) @binding(1) var<storage, read_write> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> F: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> part: array<array<f32, 6>, 256>;

// log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|))
fn logSigmoid(x: f32) -> f32 { return min(x, 0.0) - log(1.0 + exp(-abs(x))); }

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  let b = f32(u.B);
  var s: array<f32, 6>;
  let rows = select(u.B, 2u * u.B, u.mode == 0u);
  for (var i = t; i < rows; i += 256u) {
    let l = L[u.lOff + i];
    let p = 1.0 / (1.0 + exp(-l));
    if (u.mode == 0u) {
      if (i < u.B) {
        G[i] = (p - u.label) / b * u.scale;
        s[0] -= (u.label * logSigmoid(l) + (1.0 - u.label) * logSigmoid(-l)) / b;
        s[1] += logSigmoid(l) / b;
        s[2] += p / b;
        s[4] += select(0.0, 1.0, l > 0.0) / b;
      } else {
        G[i] = p / b * u.scale;
        s[0] -= logSigmoid(-l) / b;
        s[1] += logSigmoid(-l) / b;
        s[3] += p / b;
        s[5] += select(0.0, 1.0, l < 0.0) / b;
      }
    } else if (u.mode == 1u) {
      G[i] = (p - 1.0) / b;
      s[0] -= logSigmoid(l) / b;
    } else {
      G[i] = -p / b;
      s[0] += logSigmoid(-l) / b;
    }
  }
  part[t] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) {
      for (var k = 0u; k < 6u; k++) { part[t][k] += part[t + w][k]; }
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    if (u.mode == 0u) {
      for (var k = 0u; k < 6u; k++) { F[k] += part[0][k]; }
    } else {
      F[6] += part[0][0];
    }
  }
}`;

/**
 * Adam over a whole network's parameters at once, as `lib/optim.ts` (and
 * `lib/webgpu.ts`'s fused kernel) computes it:
 * m' = beta1 m + (1 - beta1) g; v' = beta2 v + (1 - beta2) g^2;
 * p' = p - (m' lr / (1 - beta1^t)) / (sqrt(v' / (1 - beta2^t)) + eps).
 */
const ADAM_CODE = `
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
 * SGD with momentum over a whole network's parameters, as `lib/optim.ts`
 * computes it: inc' = momentum inc - lr g; p' = p + inc'.
 */
const SGD_CODE = `
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

/** Maxout: C[m, n] = max over p < K of A[m, n * K + p] (M x N outputs). */
const MAXOUT_CODE = `${MATMUL_BINDINGS}
${FLAT_MAIN}
  if (i >= u.M * u.N) { return; }
  var y = A[u.aOff + i * u.K];
  for (var p = 1u; p < u.K; p++) { y = max(y, A[u.aOff + i * u.K + p]); }
  C[u.cOff + i] = y;
}`;

/**
 * The real batch from the images on the GPU: row r of X is image Rows[r],
 * each byte through the 256-entry table of its float (toFloat's values, so
 * the batch is the CPU's to the bit). One thread per 4 pixels (a word).
 */
const GATHER_CODE = `
struct U { words: u32, perImage: u32 }
@group(0) @binding(0) var<storage, read> Img: array<u32>;
@group(0) @binding(1) var<storage, read> Rows: array<u32>;
@group(0) @binding(2) var<storage, read> Lut: array<f32>;
@group(0) @binding(3) var<storage, read_write> X: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
${FLAT_MAIN}
  if (i >= u.words) { return; }
  let r = i / u.perImage;
  let word = Img[Rows[r] * u.perImage + i % u.perImage];
  for (var k = 0u; k < 4u; k++) {
    X[4u * i + k] = Lut[(word >> (8u * k)) & 255u];
  }
}`;

/**
 * Batch normalisation (`lib/gan.ts`: tfjs's moments, then
 * (h - mean) / sqrt(var + eps) * gamma + beta, then the nonlinearity).
 * Settings of each program: M rows, N columns, offsets of gamma and beta in
 * the parameters, eps, and the running statistics' momentum.
 */
const BN_UNIFORM = `
struct U { M: u32, N: u32, gamma: u32, beta: u32, eps: f32, momentum: f32, keep: f32, pad: u32 }`;

/** Column means and (biased) variances of X, two passes: S = [mean, var]. */
const BN_STATS_CODE = `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
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
    S[u.N + n] = total(lid.x) / f32(u.M);
  }
}`;

/** Y = act((X - mean) / sqrt(var + eps) * gamma + beta). */
function bnApplyCode(act: Act): string {
  return `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> u: U;

${FLAT_MAIN}
  if (i >= u.M * u.N) { return; }
  let n = i % u.N;
  let x = ((X[i] - S[n]) / sqrt(S[u.N + n] + u.eps)) * P[u.gamma + n] + P[u.beta + n];
  Y[i] = ${actCode(act)};
}`;
}

/**
 * Gradients of gamma and beta from DZ, the gradient with respect to the
 * normalised output: G[gamma + n] = sum DZ xhat, G[beta + n] = sum DZ, with
 * xhat = (X - mean) / sqrt(var + eps).
 */
const BN_SUMS_CODE = `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> DZ: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
var<workgroup> part: array<vec2f, 256>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wg.x * 64u + lid.x;
  var s = vec2f();
  if (n < u.N) {
    let mean = S[n];
    let sd = sqrt(S[u.N + n] + u.eps);
    for (var r = lid.y; r < u.M; r += 4u) {
      let dz = DZ[r * u.N + n];
      s += vec2f(dz * ((X[r * u.N + n] - mean) / sd), dz);
    }
  }
  part[lid.y * 64u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && n < u.N) {
    let c = lid.x;
    let t = ((part[c] + part[64u + c]) + part[128u + c]) + part[192u + c];
    G[u.gamma + n] = t.x;
    G[u.beta + n] = t.y;
  }
}`;

/**
 * The gradient with respect to the layer's affine output X:
 * D = gamma / sd * (DZ - sum DZ / M - xhat * sum(DZ xhat) / M).
 */
const BN_BACK_CODE = `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> DZ: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> P: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;
@group(0) @binding(5) var<storage, read_write> D: array<f32>;
@group(0) @binding(6) var<uniform> u: U;

${FLAT_MAIN}
  if (i >= u.M * u.N) { return; }
  let n = i % u.N;
  let m = f32(u.M);
  let sd = sqrt(S[u.N + n] + u.eps);
  let xhat = (X[i] - S[n]) / sd;
  D[i] = P[u.gamma + n] / sd * ((DZ[i] - G[u.beta + n] / m) - xhat * (G[u.gamma + n] / m));
}`;

/** Running statistics: R = R keep + S momentum (keep = 1 - momentum), means then variances. */
const BN_MOVING_CODE = `${BN_UNIFORM}
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> R: array<f32>;
@group(0) @binding(2) var<uniform> u: U;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i >= 2u * u.N) { return; }
  R[i] = R[i] * u.keep + S[i] * u.momentum;
}`;

/**
 * A network's parameters laid out in one buffer, in `Mlp.trainable`'s
 * order: per layer kernel, bias, and with batch norm gamma and beta.
 */
interface NetLayout {
  specs: LayerSpec[];
  kernel: number[];
  bias: number[];
  /** Batch norm's scale and shift (-1 without batch norm). */
  gamma: number[];
  beta: number[];
  /** Where each of `Mlp.trainable` starts, in its order. */
  offsets: number[];
  size: number;
}

function layout(net: Mlp): NetLayout {
  const lay: NetLayout = {
    specs: net.specs,
    kernel: [],
    bias: [],
    gamma: [],
    beta: [],
    offsets: [],
    size: 0,
  };
  const take = (n: number) => {
    lay.offsets.push(lay.size);
    lay.size += n;
    return lay.size - n;
  };
  // The order of Mlp.trainable: per layer kernel, bias, gamma, beta.
  for (const s of net.specs) {
    const cols = s.units * s.pieces;
    lay.kernel.push(take(s.inputs * cols));
    lay.bias.push(take(cols));
    lay.gamma.push(s.batchNorm ? take(cols) : -1);
    lay.beta.push(s.batchNorm ? take(cols) : -1);
  }
  return lay;
}

interface NetBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  /** Adam's first moments, or SGD's increments. */
  m: GPUBuffer;
  /** Adam's second moments (unused by SGD). */
  v: GPUBuffer;
  /** Each layer's output, [2B, units] (D) or [B, units] (G). */
  acts: GPUBuffer[];
  /**
   * Affine outputs of maxout and batch-norm layers, [rows, units * pieces],
   * before the max or the normalisation.
   */
  pre: (GPUBuffer | null)[];
  /** Batch-norm layers' batch means and variances, [2 units]. */
  stats: (GPUBuffer | null)[];
  /** Batch-norm layers' running means and variances, [2 units]. */
  moving: (GPUBuffer | null)[];
  /** Dropout masks of each layer's input, [rows, inputs]. */
  masks: (GPUBuffer | null)[];
  /** The optimiser's per-step settings. */
  opt: GPUBuffer;
}

interface Dispatch {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  workgroups: [number, number] | [number, number, number];
}

/** Compiled programs per device, by WGSL source. */
const PIPELINES = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/**
 * A GAN's training step in WGSL. Made from a {@linkcode Gan} (its weights,
 * the optimisers' state and batch norm's running statistics are copied to
 * the GPU); while it trains, the GAN's variables are stale until
 * {@linkcode WgslStep.exportTo} writes the state back.
 */
export class WgslStep {
  #device: GPUDevice;
  #batch: number;
  #latent: number;
  #G: NetLayout;
  #D: NetLayout;
  #gBuf: NetBuffers;
  #dBuf: NetBuffers;
  #z: GPUBuffer;
  /** D's input: rows 0..B-1 real, B..2B-1 generated (G writes them). */
  #dIn: GPUBuffer;
  #figures: GPUBuffer;
  #buffers: GPUBuffer[] = [];
  /** The step's command buffers: D's and G's, or one (simultaneous). */
  #steps: Dispatch[][] = [];
  #stepD: number;
  #stepG: number;
  #config: GanConfig;
  /** The training images, their rows of a step and the gather program. */
  #gather: { rows: GPUBuffer; dispatch: Dispatch } | null = null;
  /** The alea jump table and start states (when D has dropout). */
  #aleaTable: GPUBuffer | null = null;
  #aleaSeeds: GPUBuffer | null = null;
  #matMulChoice: MatMulChoice;
  /**
   * Split-K's partial products: one buffer serves every split product
   * (they run one after another), replaced by a larger one when a product
   * needs more (the products recorded before keep the one they were given).
   */
  #scratch: { buffer: GPUBuffer; floats: number } | null = null;
  #matMulFlops = 0;
  #transform: ((code: string) => string) | null;

  private constructor(
    device: GPUDevice,
    gan: Gan,
    options: WgslStepOptions,
  ) {
    this.#device = device;
    this.#config = gan.config;
    this.#batch = gan.config.batchSize;
    this.#latent = gan.config.latentDim;
    this.#G = layout(gan.generator);
    this.#D = layout(gan.discriminator);
    this.#stepD = gan.optimizerD.step;
    this.#stepG = gan.optimizerG.step;
    this.#matMulChoice = options.matMul ?? "auto";
    this.#transform = options.transformProgram ?? null;
    const B = this.#batch;
    const image = this.#D.specs[0].inputs;
    const widest = Math.max(
      ...[...this.#G.specs, ...this.#D.specs].map((s) =>
        Math.max(s.inputs, s.units * s.pieces)
      ),
    );
    const limit = device.limits.maxStorageBufferBindingSize;
    if (2 * B * widest * 4 > limit) {
      throw new Error(
        `batch ${B} needs GPU buffers of ${2 * B * widest * 4} bytes, more ` +
          `than this adapter's ${limit}; use a smaller batch or --step tfjs`,
      );
    }
    this.#gBuf = this.#netBuffers(this.#G, B);
    this.#dBuf = this.#netBuffers(this.#D, 2 * B);
    this.#z = this.#buffer(B * this.#latent);
    this.#dIn = this.#buffer(2 * B * image);
    this.#figures = this.#buffer(8);
    const deltas = [0, 1, 2].map(() => this.#buffer(2 * B * widest));
    const partial = this.#buffer(Math.ceil((2 * B) / 256) * widest);
    if (this.#dBuf.masks.some((m) => m)) {
      // D's dropout masks are drawn on the GPU (lib/alea.ts): the jumps to
      // each chunk of a part's stream, and each step's start states.
      const longest = Math.max(...this.#D.specs.map((s) => B * s.inputs));
      const table = aleaJumpTable(Math.ceil(longest / ALEA_CHUNK));
      this.#aleaTable = this.#buffer(table.length);
      device.queue.writeBuffer(this.#aleaTable, 0, table);
      this.#aleaSeeds = this.#buffer(4 * 3 * this.#D.specs.length);
    }
    this.#record(deltas, partial);
    const data = options.data;
    if (
      data && image === IMAGE_PIXELS && data.images.length > 0 &&
      data.images.length % IMAGE_PIXELS === 0 &&
      data.images.byteLength <= limit
    ) {
      const images = this.#device.createBuffer({
        size: data.images.byteLength,
        usage: S | COPY_DST,
      });
      this.#buffers.push(images);
      device.queue.writeBuffer(
        images,
        0,
        data.images.buffer as ArrayBuffer,
        data.images.byteOffset,
        data.images.byteLength,
      );
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      const lut = this.#buffer(256);
      this.#upload(lut, toFloat(bytes, data.range));
      const rows = this.#buffer(B);
      const words = (B * image) / 4;
      this.#gather = {
        rows,
        dispatch: this.#dispatch(GATHER_CODE, [
          "read-only-storage",
          "read-only-storage",
          "read-only-storage",
          "storage",
          "uniform",
        ], [
          images,
          rows,
          lut,
          this.#dIn,
          this.#uniform([words, image / 4]),
        ], this.#grid(words)),
      };
      this.#steps[0].unshift(this.#gather.dispatch);
    }
  }

  /**
   * Copies `gan`'s state to the GPU of tfjs's running WebGPU backend and
   * records its programs.
   */
  static async create(
    gan: Gan,
    options: WgslStepOptions = {},
  ): Promise<WgslStep> {
    const why = wgslStepSupport(gan.config);
    if (why) throw new Error(`the WGSL step cannot train this GAN: ${why}`);
    const step = new WgslStep(tfjsDevice(), gan, options);
    await step.#load(gan);
    return step;
  }

  #buffer(floats: number, usage = S | COPY_DST | COPY_SRC): GPUBuffer {
    const b = this.#device.createBuffer({
      size: Math.max(16, floats * 4),
      usage,
    });
    this.#buffers.push(b);
    return b;
  }

  #netBuffers(net: NetLayout, rows: number): NetBuffers {
    return {
      params: this.#buffer(net.size),
      grads: this.#buffer(net.size),
      m: this.#buffer(net.size),
      v: this.#buffer(net.size),
      acts: net.specs.map((s) => this.#buffer(rows * s.units)),
      pre: net.specs.map((s) =>
        s.pieces > 1 || s.batchNorm
          ? this.#buffer(rows * s.units * s.pieces)
          : null
      ),
      stats: net.specs.map((s) =>
        s.batchNorm ? this.#buffer(2 * s.units) : null
      ),
      moving: net.specs.map((s) =>
        s.batchNorm ? this.#buffer(2 * s.units) : null
      ),
      masks: net.specs.map((s) =>
        s.dropout > 0 ? this.#buffer(rows * s.inputs) : null
      ),
      opt: this.#buffer(8, GPUBufferUsage.UNIFORM | COPY_DST),
    };
  }

  /** A uniform buffer of up to 16 words (u32, or f32 where `floats`). */
  #uniform(values: number[], floats: boolean[] = []): GPUBuffer {
    const b = this.#buffer(16, GPUBufferUsage.UNIFORM | COPY_DST);
    const data = new ArrayBuffer(64);
    const u32 = new Uint32Array(data), f32 = new Float32Array(data);
    values.forEach((v, i) => floats[i] ? (f32[i] = v) : (u32[i] = v));
    this.#device.queue.writeBuffer(b, 0, data);
    return b;
  }

  /**
   * The pipeline of `code`, whose bindings 0.. are of the given kinds (an
   * explicit layout: a program need not use every binding). Compiled once
   * per device, for every step made on it.
   */
  #pipeline(code: string, kinds: Binding[]): GPUComputePipeline {
    if (this.#transform) code = this.#transform(code);
    let pipelines = PIPELINES.get(this.#device);
    if (!pipelines) PIPELINES.set(this.#device, pipelines = new Map());
    let p = pipelines.get(code);
    if (!p) {
      const layout = this.#device.createBindGroupLayout({
        entries: kinds.map((kind, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: kind },
        })),
      });
      p = this.#device.createComputePipeline({
        layout: this.#device.createPipelineLayout({
          bindGroupLayouts: [layout],
        }),
        compute: {
          module: this.#device.createShaderModule({ code }),
          entryPoint: "main",
        },
      });
      pipelines.set(code, p);
    }
    return p;
  }

  #dispatch(
    code: string,
    kinds: Binding[],
    buffers: GPUBuffer[],
    workgroups: Dispatch["workgroups"],
  ): Dispatch {
    const pipeline = this.#pipeline(code, kinds);
    const group = this.#device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });
    return { pipeline, group, workgroups };
  }

  /**
   * How C[M, N] = A[M, K] B[K, N] is spread over the GPU (`options.matMul`);
   * only a `store` product without an output mask (a weight gradient) may
   * split K.
   */
  #plan(o: MatMulVariant & { M: number; N: number; K: number }): MatMulPlan {
    const splittable = o.epilogue.kind === "store" && !o.maskOut;
    const choice = this.#matMulChoice;
    const whole = (tile: MatMulTile) => ({ tile, splits: 1, chunk: o.K });
    if (choice === "plain") return whole(64);
    if (choice === "auto") {
      return matMulPlan(o, {
        splittable,
        maxFloats: this.#device.limits.maxStorageBufferBindingSize / 4,
      });
    }
    return splittable && choice.chunk
      ? splitPlan(choice.tile, o.K, choice.chunk)
      : whole(choice.tile);
  }

  /**
   * C = op(A) op(B), then the epilogue; offsets in floats. One program, or
   * with K split, the partial products into `#scratch`, then their sum.
   */
  #matMul(
    o: MatMulVariant & {
      M: number;
      N: number;
      K: number;
      a: GPUBuffer;
      aOff?: number;
      b: GPUBuffer;
      bOff?: number;
      c: GPUBuffer;
      cOff?: number;
      e?: GPUBuffer;
      eOff?: number;
      /** The dropout mask of `maskA` or `maskOut`, from float `mOff`. */
      mask?: GPUBuffer | null;
      mOff?: number;
    },
  ): Dispatch[] {
    const plan = this.#plan(o);
    const split = plan.splits > 1;
    this.#matMulFlops += 2 * o.M * o.N * o.K;
    const floats = plan.splits * o.M * o.N;
    if (split && (this.#scratch?.floats ?? 0) < floats) {
      this.#scratch = { buffer: this.#buffer(floats), floats };
    }
    const u = this.#uniform([
      o.M,
      o.N,
      o.K,
      o.aOff ?? 0,
      o.bOff ?? 0,
      split ? 0 : o.cOff ?? 0,
      o.eOff ?? 0,
      o.mOff ?? 0,
      plan.chunk,
    ]);
    const masked = o.mask ? { maskA: o.maskA, maskOut: o.maskOut } : {};
    const T = plan.tile;
    const product = this.#dispatch(
      matMulCode({
        transA: o.transA,
        transB: o.transB,
        epilogue: o.epilogue,
        tile: T,
        ...masked,
      }),
      MATMUL_KINDS,
      [
        o.a,
        o.b,
        split ? this.#scratch!.buffer : o.c,
        o.e ?? this.#dummy(),
        u,
        o.mask ?? this.#dummy(),
      ],
      [Math.ceil(o.N / T), Math.ceil(o.M / T), plan.splits],
    );
    if (!split) return [product];
    const MN = o.M * o.N;
    return [
      product,
      this.#readAWriteC(
        SPLIT_SUM_CODE,
        this.#scratch!.buffer,
        o.c,
        [MN, 0, plan.splits, 0, 0, o.cOff ?? 0],
        this.#grid(MN),
      ),
    ];
  }

  /**
   * A program of {@linkcode MATMUL_BINDINGS} that reads A only and writes C,
   * with the uniform's first values `u` (the other bindings unused).
   */
  #readAWriteC(
    code: string,
    a: GPUBuffer,
    c: GPUBuffer,
    u: number[],
    workgroups: Dispatch["workgroups"],
  ): Dispatch {
    const dummy = this.#dummy();
    return this.#dispatch(
      code,
      MATMUL_KINDS,
      [a, dummy, c, dummy, this.#uniform(u), dummy],
      workgroups,
    );
  }

  /** C[m, n] = max of the `pieces` values A[m, n * pieces + p]. */
  #maxout(
    rows: number,
    units: number,
    pieces: number,
    a: GPUBuffer,
    c: GPUBuffer,
  ): Dispatch {
    return this.#readAWriteC(
      MAXOUT_CODE,
      a,
      c,
      [rows, units, pieces],
      this.#grid(rows * units),
    );
  }

  /**
   * Workgroups of `size` (default 256) for `n` threads, in two dimensions
   * past 65,535.
   */
  #grid(n: number, size = 256): [number, number] {
    const groups = Math.ceil(n / size);
    const x = Math.min(groups, 65535);
    return [x, Math.ceil(groups / x)];
  }

  #dummyBuffer: GPUBuffer | null = null;
  #dummy(): GPUBuffer {
    return this.#dummyBuffer ??= this.#buffer(4);
  }

  /** out[cOff + n] = sum over M rows of a (rows from aOff), via `partial`. */
  #colSum(
    o: {
      M: number;
      N: number;
      a: GPUBuffer;
      aOff?: number;
      c: GPUBuffer;
      cOff: number;
      partial: GPUBuffer;
    },
  ): Dispatch[] {
    const chunks = Math.ceil(o.M / 256);
    const pass = (
      M: number,
      a: GPUBuffer,
      aOff: number,
      c: GPUBuffer,
      cOff: number,
    ) =>
      this.#readAWriteC(COLSUM_CODE, a, c, [M, o.N, 0, aOff, 0, cOff], [
        Math.ceil(o.N / 64),
        Math.ceil(M / 256),
      ]);
    if (chunks === 1) return [pass(o.M, o.a, o.aOff ?? 0, o.c, o.cOff)];
    return [
      pass(o.M, o.a, o.aOff ?? 0, o.partial, 0),
      pass(chunks, o.partial, 0, o.c, o.cOff),
    ];
  }

  /** The update of all of a network's parameters (Adam or SGD). */
  #optimizerDispatch(
    net: NetLayout,
    buf: NetBuffers,
    kind: "adam" | "sgd",
  ): Dispatch {
    return this.#dispatch(
      kind === "adam" ? ADAM_CODE : SGD_CODE,
      ["storage", "read-only-storage", "storage", "storage", "uniform"],
      [buf.params, buf.grads, buf.m, buf.v, buf.opt],
      this.#grid(net.size),
    );
  }

  /** The losses' program: mode 0 for D, 1 or 2 for G (logits from row `row`). */
  #lossDispatch(
    logits: GPUBuffer,
    delta: GPUBuffer,
    mode: number,
    row = 0,
  ): Dispatch {
    const u = this.#uniform(
      [
        this.#batch,
        mode,
        this.#config.realLabel,
        this.#config.dLossScale ?? 1,
        row,
      ],
      [false, false, true, true, false],
    );
    return this.#dispatch(
      LOSS_CODE,
      ["read-only-storage", "storage", "storage", "uniform"],
      [logits, delta, this.#figures, u],
      [1, 1],
    );
  }

  /** A batch-norm program's settings for layer `l` of `net` over `rows`. */
  #bnUniform(net: NetLayout, l: number, rows: number): GPUBuffer {
    const units = net.specs[l].units;
    return this.#uniform(
      [
        rows,
        units,
        net.gamma[l],
        net.beta[l],
        BN_EPS,
        BN_MOMENTUM,
        Math.fround(1 - BN_MOMENTUM),
        0,
      ],
      [false, false, false, false, true, true, true, false],
    );
  }

  /**
   * Forward passes of a network over `rows` rows of `input` (from row
   * `inRow`), each layer's output into its `acts` buffer (or, for the
   * last, into `out` from row `outRow`). A layer with dropout multiplies
   * its input by its mask (rows from 0) as it reads it; a maxout layer
   * writes its pieces to `pre`, then takes their max; a batch-norm layer
   * writes its affine output to `pre`, takes the batch's statistics, then
   * normalises and applies the nonlinearity.
   */
  #forward(
    net: NetLayout,
    buf: NetBuffers,
    o: {
      rows: number;
      input: GPUBuffer;
      inRow: number;
      out?: GPUBuffer;
      outRow?: number;
    },
  ): Dispatch[] {
    return net.specs.flatMap((s, l) => {
      const last = l === net.specs.length - 1;
      const input = l === 0 ? o.input : buf.acts[l - 1];
      const output = last && o.out ? o.out : buf.acts[l];
      const pre = buf.pre[l];
      const affine = this.#matMul({
        M: o.rows,
        N: s.units * s.pieces,
        K: s.inputs,
        a: input,
        aOff: l === 0 ? o.inRow * s.inputs : 0,
        maskA: true,
        mask: buf.masks[l],
        b: buf.params,
        bOff: net.kernel[l],
        c: pre ?? output,
        cOff: !pre && last && o.out ? (o.outRow ?? 0) * s.units : 0,
        e: buf.params,
        eOff: net.bias[l],
        epilogue: { kind: "bias", act: pre ? "linear" : s.activation },
      });
      if (!pre) return affine;
      if (s.pieces > 1) {
        return [
          ...affine,
          this.#maxout(o.rows, s.units, s.pieces, pre, output),
        ];
      }
      if (last && o.out) {
        throw new Error("unreachable: batch norm at G's output");
      }
      const u = this.#bnUniform(net, l, o.rows);
      const stats = buf.stats[l]!;
      return [
        ...affine,
        this.#dispatch(BN_STATS_CODE, [
          "read-only-storage",
          "storage",
          "uniform",
        ], [
          pre,
          stats,
          u,
        ], [Math.ceil(s.units / 64), 1]),
        this.#dispatch(
          bnApplyCode(s.activation),
          [
            "read-only-storage",
            "read-only-storage",
            "read-only-storage",
            "storage",
            "uniform",
          ],
          [pre, buf.params, stats, output, u],
          this.#grid(o.rows * s.units),
        ),
      ];
    });
  }

  /**
   * Backward pass of a network from the gradient with respect to its last
   * layer's pre-activation (in `deltas[0]`): weight and bias gradients when
   * `weights`, and the gradient with respect to the input's pre-activation
   * (through `below`'s nonlinearity, whose output is `below.out` from row
   * `below.row`) when `below` is given. `deltas` are three buffers that
   * take turns; returns the dispatches and the buffer that holds the last
   * gradient.
   */
  #backward(
    net: NetLayout,
    buf: NetBuffers,
    o: {
      rows: number;
      input: GPUBuffer;
      inRow: number;
      weights: boolean;
      deltas: GPUBuffer[];
      partial: GPUBuffer;
      below?: { act: Act; out: GPUBuffer; row: number };
      /**
       * Where the pass's rows start in the network's own buffers (outputs,
       * pre-activations, masks); default 0. Input gradients only.
       */
      row?: number;
    },
  ): { dispatches: Dispatch[]; last: GPUBuffer } {
    const row = o.row ?? 0;
    if (row && o.weights) throw new Error("unreachable: weights from row 0");
    const out: Dispatch[] = [];
    let cur = o.deltas[0];
    /** A delta buffer other than the ones given. */
    const spare = (...busy: GPUBuffer[]) =>
      o.deltas.find((d) => !busy.includes(d))!;
    for (let l = net.specs.length - 1; l >= 0; l--) {
      const s = net.specs[l];
      const cols = s.units * s.pieces;
      if (s.batchNorm) {
        if (row) throw new Error("unreachable: batch norm in D");
        // cur holds the gradient with respect to the normalised output:
        // gamma's and beta's gradients, then the affine output's.
        const u = this.#bnUniform(net, l, o.rows);
        const stats = buf.stats[l]!, pre = buf.pre[l]!;
        out.push(this.#dispatch(
          BN_SUMS_CODE,
          [
            "read-only-storage",
            "read-only-storage",
            "read-only-storage",
            "storage",
            "uniform",
          ],
          [cur, pre, stats, buf.grads, u],
          [Math.ceil(s.units / 64), 1],
        ));
        const next = spare(cur);
        out.push(this.#dispatch(
          BN_BACK_CODE,
          [
            "read-only-storage",
            "read-only-storage",
            "read-only-storage",
            "read-only-storage",
            "read-only-storage",
            "storage",
            "uniform",
          ],
          [cur, pre, stats, buf.params, buf.grads, next, u],
          this.#grid(o.rows * s.units),
        ));
        cur = next;
      }
      if (o.weights) {
        const x = l === 0 ? o.input : buf.acts[l - 1];
        // dW[inputs, cols] = (X * mask)^T delta
        out.push(...this.#matMul({
          M: s.inputs,
          N: cols,
          K: o.rows,
          a: x,
          aOff: l === 0 ? o.inRow * s.inputs : 0,
          transA: true,
          maskA: true,
          mask: buf.masks[l],
          b: cur,
          c: buf.grads,
          cOff: net.kernel[l],
          epilogue: { kind: "store" },
        }));
        out.push(...this.#colSum({
          M: o.rows,
          N: cols,
          a: cur,
          c: buf.grads,
          cOff: net.bias[l],
          partial: o.partial,
        }));
      }
      const inner = l > 0 ? net.specs[l - 1] : null;
      const below = inner
        ? { act: inner.activation, out: buf.acts[l - 1], row }
        : o.below;
      if (!below) continue;
      // The gradient with respect to this layer's input, delta W^T, times
      // its dropout mask, then through the nonlinearity below.
      const maxout = inner && inner.pieces > 1;
      const next = spare(cur);
      out.push(...this.#matMul({
        M: o.rows,
        N: s.inputs,
        K: cols,
        a: cur,
        b: buf.params,
        bOff: net.kernel[l],
        transB: true,
        maskOut: true,
        mask: buf.masks[l],
        mOff: row * s.inputs,
        c: next,
        e: maxout ? buf.pre[l - 1]! : below.out,
        eOff: below.row * s.inputs * (maxout ? inner.pieces : 1),
        epilogue: maxout
          ? { kind: "maxoutGrad", pieces: inner.pieces }
          : { kind: "actGrad", act: below.act },
      }));
      cur = next;
    }
    return { dispatches: out, last: cur };
  }

  /** The running statistics' updates of a network's batch-norm layers. */
  #movingStats(net: NetLayout, buf: NetBuffers): Dispatch[] {
    return net.specs.flatMap((s, l) => {
      if (!s.batchNorm) return [];
      return [this.#dispatch(
        BN_MOVING_CODE,
        ["read-only-storage", "storage", "uniform"],
        [buf.stats[l]!, buf.moving[l]!, this.#bnUniform(net, l, this.#batch)],
        [Math.ceil((2 * s.units) / 256), 1],
      )];
    });
  }

  #record(deltas: GPUBuffer[], partial: GPUBuffer): void {
    const B = this.#batch;
    const G = this.#G, D = this.#D;
    const gOut = G.specs[G.specs.length - 1].activation;
    const dLast = this.#dBuf.acts[D.specs.length - 1];
    const c = this.#config;
    const gMode = c.loss === "saturating" ? 2 : 1;
    // G(z) into rows B..2B-1 of D's input.
    const forwardG = () =>
      this.#forward(G, this.#gBuf, {
        rows: B,
        input: this.#z,
        inRow: 0,
        out: this.#dIn,
        outRow: B,
      });
    // D on all 2B rows, real and generated.
    const forwardD = () =>
      this.#forward(D, this.#dBuf, { rows: 2 * B, input: this.#dIn, inRow: 0 });
    // From D's loss (in deltas[0]) to D's update.
    const backwardD = () => [
      ...this.#backward(D, this.#dBuf, {
        rows: 2 * B,
        input: this.#dIn,
        inRow: 0,
        weights: true,
        deltas,
        partial,
      }).dispatches,
      this.#optimizerDispatch(D, this.#dBuf, c.optimizerD.kind),
    ];
    // From G's loss (in deltas[0]) back through D, whose pass over the
    // generated rows starts at `row` of its buffers, into G's update.
    const backwardG = (row: number) => {
      const throughD = this.#backward(D, this.#dBuf, {
        rows: B,
        input: this.#dIn,
        inRow: B,
        weights: false,
        deltas,
        partial,
        below: { act: gOut, out: this.#dIn, row: B },
        row,
      });
      return [
        ...throughD.dispatches,
        ...this.#backward(G, this.#gBuf, {
          rows: B,
          input: this.#z,
          inRow: 0,
          weights: true,
          deltas: [
            throughD.last,
            ...deltas.filter((d) => d !== throughD.last),
          ],
          partial,
        }).dispatches,
        this.#optimizerDispatch(G, this.#gBuf, c.optimizerG.kind),
        // From this pass's batch statistics, as generatorStep does.
        ...this.#movingStats(G, this.#gBuf),
      ];
    };
    if ((c.update ?? "alternating") === "simultaneous") {
      // simultaneousStep: one pass of G and D; G's gradients through D's
      // pass on the generated rows (rows B..2B-1 of D's buffers, their
      // masks), D's from the whole pass; both taken before either update.
      this.#steps = [[
        ...this.#maskDispatches(2),
        ...forwardG(),
        ...forwardD(),
        this.#lossDispatch(dLast, deltas[0], gMode, B),
        ...backwardG(B),
        this.#lossDispatch(dLast, deltas[0], 0),
        ...backwardD(),
      ]];
      return;
    }
    // D's step, then G's: G(z) again, D on the B generated rows only (its
    // buffers from row 0), back through D into G.
    this.#steps = [
      [
        ...this.#maskDispatches(2),
        ...forwardG(),
        ...forwardD(),
        this.#lossDispatch(dLast, deltas[0], 0),
        ...backwardD(),
      ],
      [
        ...this.#maskDispatches(1),
        ...forwardG(),
        ...this.#forward(D, this.#dBuf, {
          rows: B,
          input: this.#dIn,
          inRow: B,
        }),
        this.#lossDispatch(dLast, deltas[0], gMode),
        ...backwardG(0),
      ],
    ];
  }

  /** Bytes of the GPU buffers it holds. */
  get gpuBytes(): number {
    return this.#buffers.reduce((n, b) => n + b.size, 0);
  }

  /**
   * Whether the training images are on the GPU: steps then take `rows`,
   * not `real`.
   */
  get gathers(): boolean {
    return this.#gather !== null;
  }

  /** Dispatches per training step (D's and G's). */
  get dispatchesPerStep(): number {
    return this.#steps.reduce((n, s) => n + s.length, 0);
  }

  /**
   * The arithmetic of a step's matrix products, 2 M N K for each: with a
   * step's time, the rate its matMul programs reach at most.
   */
  get matMulFlopsPerStep(): number {
    return this.#matMulFlops;
  }

  /** Writes the settings of a network's next update (Adam or SGD). */
  #writeOptimizer(net: "G" | "D", epoch: number): void {
    const c = net === "G" ? this.#config.optimizerG : this.#config.optimizerD;
    const size = (net === "G" ? this.#G : this.#D).size;
    // The number of updates so far, before this one (as Optimizer.step).
    const t = net === "G" ? this.#stepG++ : this.#stepD++;
    const u = new ArrayBuffer(32);
    const f = new Float32Array(u), n = new Uint32Array(u);
    if (c.kind === "adam") {
      const a = adamSettings(c, t);
      f.set([
        a.beta1,
        1 - a.beta1,
        a.beta2,
        1 - a.beta2,
        a.stepSize,
        a.correction2,
        a.eps,
      ]);
      n[7] = size;
    } else {
      f.set([momentum(c, epoch), learningRate(c, t)]);
      n[2] = size;
    }
    const buf = net === "G" ? this.#gBuf : this.#dBuf;
    this.#device.queue.writeBuffer(buf.opt, 0, u);
  }

  /**
   * The programs that draw D's dropout masks for a pass of one part (G's
   * step: B generated rows) or two (D's step: B real rows, then B
   * generated), each part from its own seed as `lib/gan.ts` draws them:
   * layer l's mask from the part's seed + l. The start states are in
   * `#aleaSeeds`: D's pass's (layer l, part p) at 2l + p, G's pass's at
   * 2L + l (L layers), written by {@linkcode #writeSeeds}.
   */
  #maskDispatches(parts: 1 | 2): Dispatch[] {
    const B = this.#batch, layers = this.#D.specs.length;
    return this.#D.specs.flatMap((s, l) => {
      const mask = this.#dBuf.masks[l];
      if (!mask) return [];
      const len = B * s.inputs, chunks = Math.ceil(len / ALEA_CHUNK);
      const keep = 1 - s.dropout;
      const u = this.#uniform([
        len,
        parts === 2 ? len : 0,
        keepThreshold(keep),
        Math.fround(1 / keep),
        parts === 2 ? 2 * l : 2 * layers + l,
        chunks,
        parts * chunks,
        0,
      ], [false, false, false, true]);
      return [this.#dispatch(
        ALEA_MASK_CODE,
        [
          "read-only-storage",
          "read-only-storage",
          "storage",
          "uniform",
        ],
        [this.#aleaTable!, this.#aleaSeeds!, mask, u],
        this.#grid(parts * chunks, 64),
      )];
    });
  }

  /** Writes the start states of a pass's masks, its parts from `seeds`. */
  #writeSeeds(seeds: number[]): void {
    const layers = this.#D.specs.length;
    const states = new Uint32Array(4 * seeds.length * layers);
    this.#D.specs.forEach((_, l) =>
      seeds.forEach((seed, p) =>
        states.set(aleaStart(seed + l), 4 * (seeds.length * l + p))
      )
    );
    const at = seeds.length === 2 ? 0 : 2 * layers;
    this.#device.queue.writeBuffer(this.#aleaSeeds!, 16 * at, states);
  }

  /**
   * One round of the game, queued on the GPU; nothing is read back.
   * Alternating updates: one D step on `real` and `zD` (D's masks from
   * `dSeed`), then one G step on `zG` (masks from `gSeed`), as
   * discriminatorStep and generatorStep. Simultaneous: both players from
   * one pass on `real` and `zD` (masks from `dSeed`), as simultaneousStep.
   */
  step(inputs: WgslStepInputs): void {
    const B = this.#batch;
    const image = this.#D.specs[0].inputs;
    const simultaneous = this.#steps.length === 1;
    const gather = this.#gather;
    if (
      gather ? inputs.rows?.length !== B : inputs.real?.length !== B * image
    ) {
      throw new Error(
        gather
          ? `a step takes the rows of ${B} images (rows), the images being on the GPU`
          : `a step takes ${B} images of ${image} pixels (real)`,
      );
    }
    if (
      inputs.zD.length !== B * this.#latent ||
      (!simultaneous && inputs.zG?.length !== B * this.#latent)
    ) {
      throw new Error(
        `a step takes ${B} x ${this.#latent} noise values` +
          (simultaneous ? "" : " for each player (zD, zG)"),
      );
    }
    const dropout = this.#dBuf.masks.some((m) => m);
    if (
      dropout &&
      (inputs.dSeed === undefined ||
        (!simultaneous && inputs.gSeed === undefined))
    ) {
      throw new Error("D has dropout: a step needs dSeed (and gSeed)");
    }
    const epoch = inputs.epoch ?? 0;
    // D's pass: the real rows' masks from dSeed, the generated rows' from
    // dSeed + 1000, as discriminatorStep draws them.
    if (gather) this.#upload(gather.rows, inputs.rows!);
    else this.#upload(this.#dIn, inputs.real!);
    this.#upload(this.#z, inputs.zD);
    if (dropout) {
      this.#writeSeeds([inputs.dSeed!, inputs.dSeed! + FAKE_MASK_OFFSET]);
    }
    this.#writeOptimizer("D", epoch);
    if (simultaneous) {
      this.#writeOptimizer("G", epoch);
      this.#submit(this.#steps[0]);
      return;
    }
    this.#submit(this.#steps[0]);
    // G's step. (Queue writes and submits run in order: D's step has read
    // its noise and masks before these land.)
    this.#upload(this.#z, inputs.zG!);
    if (dropout) this.#writeSeeds([inputs.gSeed!]);
    this.#writeOptimizer("G", epoch);
    this.#submit(this.#steps[1]);
  }

  /** Writes `data` (4-byte values) into `buffer` from value `at` on. */
  #upload(
    buffer: GPUBuffer,
    data: Float32Array | Uint32Array,
    at = 0,
  ): void {
    this.#device.queue.writeBuffer(
      buffer,
      at * 4,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  #submit(dispatches: Dispatch[]): void {
    const encoder = this.#device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const d of dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.group);
      const [x, y, z = 1] = d.workgroups;
      pass.dispatchWorkgroups(x, y, z);
    }
    pass.end();
    this.#device.queue.submit([encoder.finish()]);
  }

  /** Zeroes the figures' sums (at the start of an epoch). */
  resetFigures(): void {
    this.#device.queue.writeBuffer(this.#figures, 0, new Float32Array(8));
  }

  /** Reads the figures' sums (waits for the queued steps). */
  async figures(): Promise<FigureSums> {
    return (await this.#read(this.#figures, 0, 7));
  }

  async #read(
    buffer: GPUBuffer,
    offset: number,
    floats: number,
  ): Promise<Float32Array> {
    const staging = this.#device.createBuffer({
      size: Math.max(16, floats * 4),
      usage: GPUBufferUsage.MAP_READ | COPY_DST,
    });
    const encoder = this.#device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, offset * 4, staging, 0, floats * 4);
    this.#device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out.subarray(0, floats);
  }

  async #load(gan: Gan): Promise<void> {
    const nets = [
      [gan.generator, this.#G, this.#gBuf, gan.optimizerG],
      [gan.discriminator, this.#D, this.#dBuf, gan.optimizerD],
    ] as const;
    for (const [net, lay, buf, opt] of nets) {
      const n = net.trainable.length;
      this.#upload(
        buf.params,
        await flatten(net, lay, (i) => net.trainable[i]),
      );
      // Adam's slots are m then v; SGD's, the increments only.
      this.#upload(buf.m, await flatten(net, lay, (i) => opt.slots[i]));
      if (opt.slots.length > n) {
        this.#upload(buf.v, await flatten(net, lay, (i) => opt.slots[n + i]));
      }
      for (const [l, p] of net.layers.entries()) {
        if (!buf.moving[l]) continue;
        const units = net.specs[l].units;
        this.#upload(
          buf.moving[l]!,
          await p.movingMean!.data() as Float32Array,
        );
        this.#upload(
          buf.moving[l]!,
          await p.movingVar!.data() as Float32Array,
          units,
        );
      }
    }
    this.resetFigures();
  }

  /**
   * Writes the weights, the optimisers' slots and step counts back into `gan`'s
   * variables and optimisers (waits for the queued steps).
   */
  async exportTo(gan: Gan): Promise<void> {
    const nets = [
      [gan.generator, this.#G, this.#gBuf, gan.optimizerG, this.#stepG],
      [gan.discriminator, this.#D, this.#dBuf, gan.optimizerD, this.#stepD],
    ] as const;
    for (const [net, lay, buf, opt, step] of nets) {
      const [p, m, v] = [
        await this.#read(buf.params, 0, lay.size),
        await this.#read(buf.m, 0, lay.size),
        await this.#read(buf.v, 0, lay.size),
      ];
      const n = net.trainable.length;
      const moving = await Promise.all(
        buf.moving.map((b) => b && this.#read(b, 0, b.size / 4)),
      );
      tf.tidy(() => {
        net.trainable.forEach((variable, i) => {
          const at = lay.offsets[i];
          const slice = (a: Float32Array) =>
            tf.tensor(a.slice(at, at + variable.size), variable.shape);
          variable.assign(slice(p));
          opt.slots[i].assign(slice(m));
          opt.slots[n + i]?.assign(slice(v));
        });
        net.layers.forEach((layer, l) => {
          const r = moving[l];
          if (!r) return;
          const units = net.specs[l].units;
          layer.movingMean!.assign(tf.tensor(r.slice(0, units)));
          layer.movingVar!.assign(tf.tensor(r.slice(units, 2 * units)));
        });
      });
      opt.step = step;
    }
  }

  /** Frees the GPU buffers. */
  dispose(): void {
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
  }

  /** {@linkcode dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** One network's variables (or their slots) as one flat array. */
async function flatten(
  net: Mlp,
  lay: NetLayout,
  variable: (i: number) => tf.Variable,
): Promise<Float32Array> {
  const flat = new Float32Array(lay.size);
  for (let i = 0; i < net.trainable.length; i++) {
    flat.set(await variable(i).data() as Float32Array, lay.offsets[i]);
  }
  return flat;
}

/** The GPU device of tfjs's WebGPU backend (which must be running). */
function tfjsDevice(): GPUDevice {
  if (tf.getBackend() !== "webgpu") {
    throw new Error(
      `the WGSL step runs on WebGPU; the backend is ${tf.getBackend()}`,
    );
  }
  return (tf.backend() as unknown as { device: GPUDevice }).device;
}
