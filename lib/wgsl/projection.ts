/**
 * The projection discriminator's programs (Miyato and Koyama 2018): D's
 * output layer is a dense layer of one unit whose logit gains the inner
 * product of its input features h with the row of a class embedding E
 * [classes, K] of the example's class y, as `lib/nets/layer_net.ts` has it:
 *
 *     logit = h . w + b + h . E[y]
 *
 * with w and E each divided by its own sigma when spectrally normalised.
 * Its gradients: with respect to h, delta (w + E[y]); to E's row k, the
 * sum of delta h over the examples of class k (the other rows get none).
 * `Labels` holds each example's class. `lib/wgsl/block_kernels.ts`
 * records the programs' dispatches.
 *
 * @module
 */

import { type Act, actGradCode, FLAT_MAIN } from "./programs.ts";

/**
 * Out[outOff + r] += H[r] . E[Labels[r]] over K features: one workgroup a
 * row, after the dense product has written h . w + b there.
 */
export const PROJECTION_CODE = `
struct U { rows: u32, K: u32, hOff: u32, eOff: u32, outOff: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read> H: array<f32>;
@group(0) @binding(1) var<storage, read> E: array<f32>;
@group(0) @binding(2) var<storage, read> Labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = wg.x;
  let h = u.hOff + r * u.K;
  let e = u.eOff + Labels[r] * u.K;
  var s = 0.0;
  for (var k = lid.x; k < u.K; k += 256u) { s += H[h + k] * E[e + k]; }
  part[lid.x] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w = w >> 1u) {
    if (lid.x < w) { part[lid.x] = part[lid.x] + part[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Out[u.outOff + r] = Out[u.outOff + r] + part[0]; }
}`;

/**
 * The gradient with respect to the layer's input before the nonlinearity
 * `act` below it (whose output Y holds): Next[r, j] = Delta[r] (W[j] +
 * E[Labels[r], j]) times act's derivative, and with `masked`, times the
 * dropout mask Mk of the layer below; in place of the dense layer's
 * input-gradient product.
 */
export function projectionBackCode(act: Act, masked: boolean): string {
  return `
struct U { n: u32, K: u32, dOff: u32, wOff: u32, eOff: u32, yOff: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> Delta: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> E: array<f32>;
@group(0) @binding(3) var<storage, read> Labels: array<u32>;
@group(0) @binding(4) var<storage, read> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> Next: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
@group(0) @binding(7) var<storage, read> Mk: array<f32>;

${FLAT_MAIN}
  if (i >= u.n) { return; }
  let r = i / u.K;
  let j = i % u.K;
  let y = Y[u.yOff + i];
  let a = Delta[u.dOff + r] * (W[u.wOff + j] + E[u.eOff + Labels[r] * u.K + j]);
  Next[i] = a${masked ? " * Mk[i]" : ""} * ${actGradCode(act)};
}`;
}

/**
 * The embedding's gradient: G[gOff + k K + j] = sum over the rows r of
 * class k of Delta[r] H[r, j] (0 for a class the batch lacks).
 */
export const PROJECTION_GRAD_CODE = `
struct U { n: u32, K: u32, rows: u32, hOff: u32, dOff: u32, gOff: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> H: array<f32>;
@group(0) @binding(1) var<storage, read> Delta: array<f32>;
@group(0) @binding(2) var<storage, read> Labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;
@group(0) @binding(4) var<uniform> u: U;

${FLAT_MAIN}
  if (i >= u.n) { return; }
  let k = i / u.K;
  let j = i % u.K;
  var s = 0.0;
  for (var r = 0u; r < u.rows; r++) {
    if (Labels[r] == k) { s += Delta[u.dOff + r] * H[u.hOff + r * u.K + j]; }
  }
  G[u.gOff + i] = s;
}`;
