/**
 * Dropout masks on the GPU, bit for bit those of the CPU.
 *
 * `lib/gan.ts` draws each dropout mask from seedrandom's alea generator
 * (the generator of `tf.randomUniform`, so the committed models stay
 * reproducible). Alea is sequential: on the CPU a mask of the `paper`
 * preset's discriminator costs 5-8 ms per training step at batch 100-128,
 * and 64 times that at batch 8192, more than the rest of a step on a GPU.
 * This module lets the GPU draw the same numbers, many at a time.
 *
 * Why that is possible: alea's state is three 32-bit fractions s0, s1, s2
 * (multiples of 2^-32) and a carry c, and its step
 * `t = 2091639 s0 + c 2^-32; s0 = s1; s1 = s2; c = floor(t); s2 = t - c`
 * is exact in doubles. In integers (K = s 2^32, b = 2^32, a = 2091639) it
 * is a lag-3 multiply-with-carry generator, and the number
 * `Y = c + a (K0 + b K1 + b^2 K2)` obeys `Y' = Y / b mod m` with
 * `m = a b^3 - 1` (Marsaglia; Couture and L'Ecuyer). So the i-th output
 * (from 0) is `(Y0 b^-i mod m) mod b` for any i: a GPU thread jumps to
 * the start of its chunk with one 128-bit modular product (Montgomery's,
 * where reducing by b is this very step) and runs the cheap step from
 * there.
 *
 * @module
 */

import seedrandom from "seedrandom";

/** Alea's multiplier. */
const A = 2091639;

/** Outputs per GPU thread: one jump, then this many steps. */
export const ALEA_CHUNK = 64;

/**
 * seedrandom's alea seeded with `seed` as `lib/gan.ts` seeds it (the
 * decimal string of the number): uniform floats in [0, 1).
 */
export function alea(seed: number): () => number {
  return seedrandom.alea(String(seed));
}

/** `value` as four 32-bit limbs, least significant first. */
function limbs(value: bigint): number[] {
  const out = [];
  for (let i = 0; i < 4; i++) {
    out.push(Number((value >> BigInt(32 * i)) & 0xffffffffn));
  }
  return out;
}

/**
 * The integer state `Y0 = c + a (K0 + 2^32 K1 + 2^64 K2)` of a freshly
 * seeded alea, as four 32-bit limbs (least significant first): the first
 * output is `Y0 mod 2^32`.
 */
export function aleaStart(seed: number): number[] {
  const state = (seedrandom.alea(String(seed), { state: true }) as unknown as {
    state(): { c: number; s0: number; s1: number; s2: number };
  }).state();
  const b = 2 ** 32;
  // Each a K + carry < 2^53: exact in doubles.
  const out = [];
  let carry = state.c;
  for (const s of [state.s0, state.s1, state.s2]) {
    const p = A * (s * b) + carry;
    out.push(p % b);
    carry = Math.floor(p / b);
  }
  out.push(carry);
  return out;
}

/**
 * Montgomery factors of the jumps to each chunk's start: entry s is
 * `b^4 b^-(s ALEA_CHUNK) mod m`, four 32-bit limbs, for s < `chunks`.
 * They do not depend on the seed, so a step makes them once.
 */
export function aleaJumpTable(chunks: number): Uint32Array<ArrayBuffer> {
  const a = BigInt(A), b = 1n << 32n;
  const m = a * b ** 3n - 1n;
  // b (a b^2) = m + 1, so b^-1 = a b^2 (mod m).
  let bInvChunk = 1n;
  for (let i = 0; i < ALEA_CHUNK; i++) bInvChunk = (bInvChunk * a * b * b) % m;
  const table = new Uint32Array(4 * Math.max(1, chunks));
  let t = b ** 4n % m;
  for (let s = 0; s < chunks; s++) {
    table.set(limbs(t), 4 * s);
    t = (t * bInvChunk) % m;
  }
  return table;
}

/**
 * The integer threshold of a dropout mask: an output x (alea's float times
 * 2^32) keeps its unit exactly when `x < threshold`, which is when
 * `lib/gan.ts`'s test `Math.fround(x / 2^32) < Math.fround(keep)` holds.
 */
export function keepThreshold(keep: number): number {
  const keep32 = Math.fround(keep);
  // The test is monotone in x: find the first x that fails it.
  let lo = 0, hi = 2 ** 32;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (Math.fround(mid / 2 ** 32) < keep32) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * WGSL: dropout masks of one layer over one or two parts of a pass (each
 * its own alea stream, laid one after the other in `Mk`). Settings:
 * elements of each part, the keep threshold and the scale (1 / keep), the
 * index of part 0's start state in `Y0` (part 1's follows), the threads
 * (chunks) of part 0 and of both, and (when `keepLast` > 0) the values of
 * a row, whose last `keepLast` are kept (1). With `raw`, `Mk` holds alea's
 * 32-bit outputs themselves, for tests.
 */
export function aleaMaskCode(raw = false): string {
  const [type, put] = raw
    ? ["u32", "x"]
    : ["f32", "select(0.0, u.scale, x < u.thr)"];
  return `
struct U { len0: u32, len1: u32, thr: u32, scale: f32, seed: u32, chunks0: u32, chunks: u32, row: u32, keepLast: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<storage, read> T: array<vec4u>;
@group(0) @binding(1) var<storage, read> Y0: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> Mk: array<${type}>;
@group(0) @binding(3) var<uniform> u: U;

const A: u32 = ${A}u;
const CHUNK: u32 = ${ALEA_CHUNK}u;

// The full 64-bit product: (low, high) words.
fn mul(x: u32, y: u32) -> vec2u {
  let xl = x & 0xffffu; let xh = x >> 16u;
  let yl = y & 0xffffu; let yh = y >> 16u;
  let ll = xl * yl; let lh = xl * yh; let hl = xh * yl;
  let mid = lh + (ll >> 16u) + (hl & 0xffffu);
  return vec2u((mid << 16u) | (ll & 0xffffu), xh * yh + (mid >> 16u) + (hl >> 16u));
}

// x y b^-4 mod m for x, y < m (m = A b^3 - 1, b = 2^32): Montgomery's
// product, word by word. Since m = -1 (mod b), reducing t by one word is
// (t - t0) / b + t0 A b^2: alea's own step.
fn monPro(x: vec4u, y: vec4u) -> vec4u {
  var t = array<u32, 5>(0u, 0u, 0u, 0u, 0u);
  for (var i = 0u; i < 4u; i++) {
    var carry = 0u;
    for (var j = 0u; j < 4u; j++) {
      let p = mul(x[j], y[i]);
      let s = t[j] + p.x;
      let s2 = s + carry;
      t[j] = s2;
      carry = p.y + select(0u, 1u, s < p.x) + select(0u, 1u, s2 < s);
    }
    t[4] += carry;
    let q = mul(t[0], A);
    let t2 = t[3] + q.x;
    t[0] = t[1];
    t[1] = t[2];
    t[2] = t2;
    t[3] = t[4] + q.y + select(0u, 1u, t2 < q.x);
    t[4] = 0u;
  }
  // t < 2m: subtract m once if t >= m.
  if (t[3] > A - 1u || (t[3] == A - 1u && t[0] == 0xffffffffu && t[1] == 0xffffffffu && t[2] == 0xffffffffu)) {
    // t - m = t + 1 - A b^3: the + 1 carries through the low words that
    // are all ones.
    let c0 = select(0u, 1u, t[0] == 0xffffffffu);
    let c1 = select(0u, 1u, c0 == 1u && t[1] == 0xffffffffu);
    let c2 = select(0u, 1u, c1 == 1u && t[2] == 0xffffffffu);
    return vec4u(t[0] + 1u, t[1] + c0, t[2] + c1, t[3] + c2 - A);
  }
  return vec4u(t[0], t[1], t[2], t[3]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let g = id.y * nw.x * 64u + id.x;
  if (g >= u.chunks) { return; }
  var s = g; var base = 0u; var len = u.len0; var seed = u.seed;
  if (g >= u.chunks0) { s = g - u.chunks0; base = u.len0; len = u.len1; seed = u.seed + 1u; }
  var y = monPro(Y0[seed], T[s]);
  let end = min(len, (s + 1u) * CHUNK);
  for (var i = s * CHUNK; i < end; i++) {
    let x = y.x;
    Mk[base + i] = ${put};
    // A conditional D's one-hot class (the last keepLast of each row of
    // \`row\` inputs) is never dropped: 1, as lib/nets/layer_net.ts sets it.
    if (u.keepLast > 0u && i % u.row >= u.row - u.keepLast) { Mk[base + i] = ${
    raw ? "x" : "1.0"
  }; }
    let p = mul(x, A);
    let w = y.w + p.x;
    y = vec4u(y.y, y.z, w, p.y + select(0u, 1u, w < p.x));
  }
}`;
}

/** {@linkcode aleaMaskCode}'s masks. */
export const ALEA_MASK_CODE: string = aleaMaskCode();
