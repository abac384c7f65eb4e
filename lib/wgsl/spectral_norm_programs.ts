/**
 * Spectral normalisation in WGSL, as `lib/nets/spectral_norm.ts` does it
 * with tfjs: a weight viewed as Wt [rest, out] (a dense kernel [in, out], a
 * convolution's [size, size, in, out]), one power iteration per training
 * forward pass with u [out] and v [rest] kept between steps,
 *
 *     v = normalise(Wt u),  u = normalise(Wt^T v),  sigma = u . (Wt^T v),
 *
 * the layer then using Wn = W / sigma. Its gradient goes through sigma
 * (but not through u and v, which are constants to it): from G, the
 * gradient with respect to Wn, since d sigma / d Wt = v u^T,
 *
 *     dL/dW = (G - <G, Wn> v u^T) / sigma.
 *
 * Each is one program run by a single workgroup of 256 threads a weight:
 * the vectors' norms and the inner product are sums over every thread,
 * which a workgroup adds with barriers and no second dispatch, and one
 * dispatch takes a network's weights together, a workgroup each. The
 * presets' spectrally normalised weights are small (at most 1,024 x 128 in a
 * convolution, 6,272 x 1 for D's output), so one workgroup is enough for
 * them; `sngan-fc`'s dense 6,272 x 1,024 layer is 50 times more work,
 * which a single workgroup does slowly on a GPU.
 *
 * The state buffer holds, from `sOff`: u (out floats), v (rest), sigma.
 *
 * @module
 */

/** PyTorch's epsilon in the normalisation of u and v (as spectral_norm.ts). */
const SN_EPS = "1e-12";

const SN_UNIFORM = `
struct U { rest: u32, out: u32, wOff: u32, sOff: u32, nOff: u32, parts: u32, src: u32 }`;

/** part's sum, the same for every thread (part as each thread left it). */
const TOTAL = `
var<workgroup> part: array<f32, 256>;

fn total(t: u32) -> f32 {
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) { part[t] += part[t + s]; }
    workgroupBarrier();
  }
  let r = part[0];
  workgroupBarrier();
  return r;
}`;

/**
 * One power iteration, sigma, and Wn = W / sigma, a weight a workgroup:
 * workgroup g takes the settings `weights[g]`. Bindings: the weights P
 * (W from `wOff`), the state S, the normalised weights N (from `nOff`).
 * The iteration starts from the u at `src` in S and writes u, v and sigma
 * from `sOff` (the same place, or another pass's copy of the state).
 * `parts` (a power of two, at most 256 / out or 1) is how many threads add
 * each output of Wt^T v, so that a narrow weight keeps every thread busy.
 */
export const SN_FORWARD_CODE = `${SN_UNIFORM}
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> N: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<U>;
${TOTAL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let u = weights[wg.x];
  let t = lid.x;
  let uAt = u.sOff;
  let vAt = u.sOff + u.out;
  // v = Wt u: a row of W a thread, each row contiguous.
  var q = 0.0;
  for (var r = t; r < u.rest; r += 256u) {
    var s = 0.0;
    for (var o = 0u; o < u.out; o++) { s += P[u.wOff + r * u.out + o] * S[u.src + o]; }
    S[vAt + r] = s;
    q += s * s;
  }
  part[t] = q;
  let vNorm = max(sqrt(total(t)), ${SN_EPS});
  for (var r = t; r < u.rest; r += 256u) { S[vAt + r] = S[vAt + r] / vNorm; }
  storageBarrier();
  // Wt^T v: output o by the threads o * parts .. o * parts + parts - 1,
  // each over the rows r = p mod parts; 256 / parts outputs a sweep.
  let lanes = 256u / u.parts;
  let p = t % u.parts;
  for (var o0 = 0u; o0 < u.out; o0 += lanes) {
    let o = o0 + t / u.parts;
    var s = 0.0;
    if (o < u.out) {
      for (var r = p; r < u.rest; r += u.parts) { s += P[u.wOff + r * u.out + o] * S[vAt + r]; }
    }
    part[t] = s;
    workgroupBarrier();
    for (var h = u.parts / 2u; h > 0u; h >>= 1u) {
      if (p < h) { part[t] += part[t + h]; }
      workgroupBarrier();
    }
    // The old u is no longer read: Wt^T v takes its place.
    if (p == 0u && o < u.out) { S[uAt + o] = part[t]; }
    workgroupBarrier();
  }
  storageBarrier();
  q = 0.0;
  for (var o = t; o < u.out; o += 256u) { q += S[uAt + o] * S[uAt + o]; }
  part[t] = q;
  let uNorm = max(sqrt(total(t)), ${SN_EPS});
  // sigma = u . (Wt^T v) with the new u.
  q = 0.0;
  for (var o = t; o < u.out; o += 256u) {
    let wv = S[uAt + o];
    let un = wv / uNorm;
    q += un * wv;
  }
  part[t] = q;
  let sigma = total(t);
  for (var o = t; o < u.out; o += 256u) { S[uAt + o] = S[uAt + o] / uNorm; }
  if (t == 0u) { S[vAt + u.rest] = sigma; }
  let n = u.rest * u.out;
  for (var i = t; i < n; i += 256u) { N[u.nOff + i] = P[u.wOff + i] / sigma; }
}`;

/**
 * The gradient through sigma, in place, a weight a workgroup (settings
 * `weights[g]`, as SN_FORWARD_CODE's): G (from `wOff` in the gradients)
 * holds dL/dWn and becomes dL/dW. Bindings: the gradients, the state S,
 * the normalised weights N.
 */
export const SN_BACKWARD_CODE = `${SN_UNIFORM}
@group(0) @binding(0) var<storage, read_write> G: array<f32>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> N: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<U>;
${TOTAL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let u = weights[wg.x];
  let t = lid.x;
  let n = u.rest * u.out;
  var q = 0.0;
  for (var i = t; i < n; i += 256u) { q += G[u.wOff + i] * N[u.nOff + i]; }
  part[t] = q;
  let d = total(t);
  let sigma = S[u.sOff + u.out + u.rest];
  for (var i = t; i < n; i += 256u) {
    let r = i / u.out;
    let o = i % u.out;
    let vu = S[u.sOff + u.out + r] * S[u.sOff + o];
    G[u.wOff + i] = (G[u.wOff + i] - d * vu) / sigma;
  }
}`;

/**
 * A weight of more than {@linkcode SN_SINGLE_WORKGROUP} values takes these
 * instead, spread over many workgroups: the two products X = Wt u and
 * Y = Wt^T X are matMul programs (`SpectralNormKernels.spectralNorm`), after which
 * SN_FINISH_CODE takes v, u, sigma and W / sigma in one dispatch and,
 * backwards, SN_DOT_CODE and SN_GRAD_CODE take <G, Wn> and the gradient.
 * The second product reads X unnormalised: Wt^T v = Y / |X|, so v needs
 * no dispatch of its own. One workgroup gives each thread at most 4,096
 * values of the weight; past that, these.
 */
export const SN_SINGLE_WORKGROUP = 256 * 4096;

/** Values of W / sigma one workgroup of SN_FINISH_CODE writes. */
export const SN_SCALE_CHUNK = 256 * 64;

/**
 * From X = Wt u (rest values) and Y = Wt^T X (out values): v = X / |X|,
 * Wt^T v = Y / |X|, u = its normalisation, sigma = u . Wt^T v, as
 * SN_FORWARD_CODE takes them, and N = W / sigma, SN_SCALE_CHUNK values a
 * workgroup. Every workgroup takes the norms and sigma (the same sums in
 * the same order, so the same values) from the two vectors, which are
 * short beside the weight; workgroup 0 writes u, v and sigma into the
 * state, which no workgroup reads here.
 */
export const SN_FINISH_CODE = `${SN_UNIFORM}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> N: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${TOTAL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  var q = 0.0;
  for (var r = t; r < u.rest; r += 256u) { q += X[r] * X[r]; }
  part[t] = q;
  let vNorm = max(sqrt(total(t)), ${SN_EPS});
  q = 0.0;
  for (var o = t; o < u.out; o += 256u) {
    let y = Y[o] / vNorm;
    q += y * y;
  }
  part[t] = q;
  let uNorm = max(sqrt(total(t)), ${SN_EPS});
  q = 0.0;
  for (var o = t; o < u.out; o += 256u) {
    let y = Y[o] / vNorm;
    q += (y / uNorm) * y;
  }
  part[t] = q;
  let sigma = total(t);
  if (wg.x == 0u) {
    for (var r = t; r < u.rest; r += 256u) { S[u.sOff + u.out + r] = X[r] / vNorm; }
    for (var o = t; o < u.out; o += 256u) { S[u.sOff + o] = (Y[o] / vNorm) / uNorm; }
    if (t == 0u) { S[u.sOff + u.out + u.rest] = sigma; }
  }
  let n = u.rest * u.out;
  let start = wg.x * ${SN_SCALE_CHUNK}u;
  for (var i = start + t; i < min(start + ${SN_SCALE_CHUNK}u, n); i += 256u) {
    N[u.nOff + i] = P[u.wOff + i] / sigma;
  }
}`;

/** Values of G . Wn one workgroup of SN_DOT_CODE adds. */
export const SN_DOT_CHUNK = 256 * 16;

/** Partial sums of <G, Wn>: D[w] over values w * SN_DOT_CHUNK .. (one workgroup each). */
export const SN_DOT_CODE = `${SN_UNIFORM}
@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> N: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${TOTAL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  let n = u.rest * u.out;
  let start = wg.x * ${SN_DOT_CHUNK}u;
  var q = 0.0;
  for (var i = start + t; i < min(start + ${SN_DOT_CHUNK}u, n); i += 256u) {
    q += G[u.wOff + i] * N[u.nOff + i];
  }
  part[t] = q;
  let s = total(t);
  if (t == 0u) { D[wg.x] = s; }
}`;

/**
 * The gradient through sigma, in place, a thread a value: each workgroup
 * first adds SN_DOT_CODE's partial sums (u.parts of them) into <G, Wn>.
 */
export const SN_GRAD_CODE = `${SN_UNIFORM}
@group(0) @binding(0) var<storage, read_write> G: array<f32>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> D: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${TOTAL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let t = lid.x;
  var q = 0.0;
  for (var k = t; k < u.parts; k += 256u) { q += D[k]; }
  part[t] = q;
  let d = total(t);
  let i = (wg.y * nw.x + wg.x) * 256u + t;
  if (i >= u.rest * u.out) { return; }
  let r = i / u.out;
  let o = i % u.out;
  let vu = S[u.sOff + u.out + r] * S[u.sOff + o];
  G[u.wOff + i] = (G[u.wOff + i] - d * vu) / S[u.sOff + u.out + u.rest];
}`;

/** How many threads add each output of Wt^T v: a power of two <= 256 / out. */
export function snParts(out: number): number {
  let p = 1;
  while (p * 2 * out <= 256) p *= 2;
  return p;
}
