/**
 * Spectral normalisation (Miyato et al. 2018), as PyTorch's
 * `torch.nn.utils.spectral_norm` does it: a layer's weight is used divided
 * by its largest singular value sigma, estimated by power iteration with
 * vectors u and v kept from step to step, one iteration per training
 * forward pass, with no gradient through u and v.
 *
 * The weight is viewed as a matrix W [out, rest] (PyTorch's view). TF.js
 * keeps a dense kernel as [in, out] and a convolution's as
 * [kh, kw, in, out], so its reshape to Wt = [rest, out] is W transposed:
 * the same singular values. In those terms, one iteration is
 *
 *     v = normalise(Wt u)        (PyTorch: W^T u)
 *     u = normalise(Wt^T v)      (PyTorch: W v)
 *     sigma = u . (Wt^T v)       (PyTorch: u^T W v)
 *
 * u and v are variables, saved in checkpoints like the weights, so that a
 * resumed run continues the same estimate.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { symmetricEigen } from "../math/linalg.ts";
import { uniqueVariableName } from "./optim.ts";
import type { Rng } from "../random/rng.ts";

/** PyTorch's epsilon in the normalisation of u and v. */
const SN_EPS = 1e-12;

/** The power iteration's vectors of one weight. */
export interface SpectralNormState {
  /** [out]: the left singular vector's estimate. */
  u: tf.Variable;
  /** [rest]: the right singular vector's estimate. */
  v: tf.Variable;
}

/** x / max(|x|, eps). */
function normalise(x: tf.Tensor): tf.Tensor {
  return tf.div(x, tf.maximum(tf.norm(x), SN_EPS));
}

/** The weight as [rest, out]. */
function asMatrix(kernel: tf.Tensor): tf.Tensor2D {
  const out = kernel.shape[kernel.shape.length - 1];
  return tf.reshape(kernel, [-1, out]);
}

/**
 * u and v for `kernel`, drawn as PyTorch draws them (normal, then
 * normalised), from `rng`; named `<name>/sn_u` and `<name>/sn_v`.
 */
export function createSpectralNorm(
  kernel: tf.Tensor,
  name: string,
  rng: Rng,
): SpectralNormState {
  const out = kernel.shape[kernel.shape.length - 1];
  const rest = kernel.size / out;
  const draw = (n: number) => {
    const x = rng.fillNormal(new Float32Array(n));
    let s = 0;
    for (const v of x) s += v * v;
    const d = Math.max(Math.sqrt(s), SN_EPS);
    return x.map((v) => v / d);
  };
  return {
    u: tf.variable(
      tf.tensor1d(draw(out)),
      false,
      uniqueVariableName(`${name}/sn_u`),
    ),
    v: tf.variable(
      tf.tensor1d(draw(rest)),
      false,
      uniqueVariableName(`${name}/sn_v`),
    ),
  };
}

/** One power iteration: updates u and v in place (no gradient). */
export function powerIteration(
  kernel: tf.Tensor,
  state: SpectralNormState,
): void {
  tf.tidy(() => {
    // Assigned to u and v, which sigma then reads as constants: nothing
    // here reaches the gradient.
    const w = asMatrix(kernel);
    const v = normalise(
      tf.squeeze(tf.matMul(w, tf.expandDims(state.u, 1)), [1]),
    );
    const u = normalise(
      tf.squeeze(tf.matMul(w, tf.expandDims(v, 1), true, false), [1]),
    );
    state.v.assign(v as tf.Tensor1D);
    state.u.assign(u as tf.Tensor1D);
  });
}

/** sigma = u . (Wt^T v), differentiable with respect to the kernel only. */
export function sigmaOf(
  kernel: tf.Tensor,
  state: SpectralNormState,
): tf.Scalar {
  return tf.tidy(() => {
    const w = asMatrix(kernel);
    const wv = tf.squeeze(
      tf.matMul(w, tf.expandDims(state.v, 1), true, false),
      [1],
    );
    return tf.sum(tf.mul(state.u, wv)) as tf.Scalar;
  });
}

/**
 * The kernel divided by its estimated largest singular value. In training
 * mode one power iteration runs first (as PyTorch's forward does); in
 * inference mode the stored u and v are used as they are.
 */
export function spectralNormalized(
  kernel: tf.Tensor,
  state: SpectralNormState,
  training: boolean,
): tf.Tensor {
  if (training) powerIteration(kernel, state);
  return tf.div(kernel, sigmaOf(kernel, state));
}

/**
 * The largest singular value of a kernel's values viewed as [rest, out]
 * (`out` its last dimension), computed directly: the square root of the
 * largest eigenvalue of W^T W, from the symmetric eigensolver of
 * `lib/eval/metrics.ts`, in double precision. What power iteration estimates.
 */
export function largestSingularValue(w: Float32Array, out: number): number {
  const rest = w.length / out;
  const m = new Float64Array(out * out);
  for (let i = 0; i < out; i++) {
    for (let j = i; j < out; j++) {
      let s = 0;
      for (let r = 0; r < rest; r++) s += w[r * out + i] * w[r * out + j];
      m[i * out + j] = m[j * out + i] = s;
    }
  }
  return Math.sqrt(Math.max(...symmetricEigen(m, out).values));
}
