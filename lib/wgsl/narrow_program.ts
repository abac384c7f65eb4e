/**
 * A matMul program for a product of at most 4 columns, C[M, N <= 4]: a
 * convolution with one output channel (the gradient with respect to D's
 * image, G's last transposed convolution), where `Kernels.matMul` uses it.
 * On the square tiles such a product fills N of each tile's 64 or 128
 * columns and leaves the rest of the work idle; here each thread takes one
 * row of C and all of its columns, with B's rows shared through workgroup
 * memory 64 at a time. Each output adds its K products in order, as the
 * tiles do.
 *
 * @module
 */

import { convFunctions } from "./conv_programs.ts";
import {
  epilogueCode,
  MATMUL_BINDINGS,
  type MatMulVariant,
} from "./programs.ts";

/** The most columns of C the narrow program computes. */
export const NARROW_COLUMNS = 4;

/** Rows of B a workgroup holds at a time. */
const SLICE = 64;

/**
 * Whether the narrow program takes `variant`: A not transposed (so no row
 * of ones), an epilogue other than maxout's, and a convolution's gather
 * only in the `forward` and `inputGrad` forms, without a mask on A or a
 * transposed B.
 */
export function narrowTakes(variant: MatMulVariant): boolean {
  const conv = variant.conv;
  return !variant.transA && !variant.onesRow &&
    variant.epilogue.kind !== "maxoutGrad" &&
    !(conv && (conv.form === "filterGrad" || variant.maskA ||
      variant.transB));
}

/**
 * C[M, N] = op(A) op(B) for N <= {@linkcode NARROW_COLUMNS}, one row of C a
 * thread (256 a workgroup, workgroups in a grid of `nw.x` columns), then
 * the epilogue on each output (not maxout's); K whole. A is not
 * transposed; B may be, and either may be a convolution's gather (the
 * `forward` and `inputGrad` forms).
 */
export function narrowMatMulCode(variant: MatMulVariant): string {
  const { transB = false, maskA = false } = variant;
  const conv = variant.conv;
  if (!narrowTakes(variant)) {
    throw new Error("unreachable: a narrow product of this variant");
  }
  const i = "m * u.lda + k";
  const elementA = conv
    ? "convA(m, k)"
    : maskA
    ? `A[u.aOff + ${i}] * Mk[u.mOff + ${i}]`
    : `A[u.aOff + ${i}]`;
  const elementB = conv?.form === "inputGrad"
    ? "convB(k, n)"
    : transB
    ? "B[u.bOff + n * u.K + k]"
    : "B[u.bOff + k * u.N + n]";
  return `${MATMUL_BINDINGS}${conv ? convFunctions(conv) : ""}
var<workgroup> Bs: array<vec4f, ${SLICE}>; // B's rows k0 .., N values each

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let m = (wg.y * nw.x + wg.x) * 256u + lid.x;
  var acc = vec4f();
  for (var k0 = 0u; k0 < u.K; k0 += ${SLICE}u) {
    if (lid.x < ${SLICE}u) {
      let k = k0 + lid.x;
      var b = vec4f();
      if (k < u.K) {
        for (var n = 0u; n < u.N; n++) { b[n] = ${elementB}; }
      }
      Bs[lid.x] = b;
    }
    workgroupBarrier();
    let run = min(${SLICE}u, u.K - k0);
    if (m < u.M) {
      for (var kk = 0u; kk < run; kk++) {
        let k = k0 + kk;
        acc += ${elementA} * Bs[kk];
      }
    }
    workgroupBarrier();
  }
  if (m < u.M) {
    for (var n = 0u; n < u.N; n++) {
      let a = acc[n];
      ${epilogueCode(variant)}
    }
  }
}`;
}
