/**
 * One spectrally normalised weight on the GPU, on its own buffers, and its
 * comparison with `lib/nets/spectral_norm.ts` on tfjs: for the test of
 * `lib/wgsl/spectral_norm_programs.ts` and the GPU check, before the step
 * uses the programs.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../random/rng.ts";
import {
  createSpectralNorm,
  largestSingularValue,
  powerIteration,
  sigmaOf,
  spectralNormalized,
} from "../nets/spectral_norm.ts";
import {
  SpectralNormKernels,
  type SpectralNormOperands,
} from "./sn_kernels.ts";

/** A weight Wt [rest, out] with its u and v, at offsets that are not 0. */
export class SpectralNormWeight extends SpectralNormKernels {
  readonly ops: SpectralNormOperands;

  constructor(
    device: GPUDevice,
    o: {
      w: Float32Array;
      rest: number;
      out: number;
      u: Float32Array;
      v: Float32Array;
    },
  ) {
    super(device, null, "plain");
    const [wOff, sOff, nOff] = [3, 5, 7];
    const params = this.buffer(wOff + o.w.length);
    this.upload(params, o.w, wOff);
    const state = this.buffer(sOff + o.out + o.rest + 1);
    this.upload(state, o.u, sOff);
    this.upload(state, o.v, sOff + o.out);
    this.ops = {
      params,
      grads: this.buffer(wOff + o.w.length),
      wOff,
      state,
      sOff,
      normed: this.buffer(nOff + o.w.length),
      nOff,
      rest: o.rest,
      out: o.out,
    };
  }

  /** `n` training forward passes, then u, v, sigma and W / sigma. */
  async forward(n: number): Promise<{
    u: Float32Array;
    v: Float32Array;
    sigma: number;
    wn: Float32Array;
  }> {
    this.submit(Array(n).fill(this.spectralNorm([this.ops])).flat());
    const { out, rest, sOff, nOff } = this.ops;
    const s = await this.read(this.ops.state, sOff, out + rest + 1);
    return {
      u: s.slice(0, out),
      v: s.slice(out, out + rest),
      sigma: s[out + rest],
      wn: await this.read(this.ops.normed, nOff, rest * out),
    };
  }

  /** dL/dW from dL/dWn = `g`, with the state the forward passes left. */
  async backward(g: Float32Array): Promise<Float32Array> {
    this.upload(this.ops.grads, g, this.ops.wOff);
    this.submit(this.spectralNormGrad([this.ops]));
    return await this.read(this.ops.grads, this.ops.wOff, g.length);
  }

  /** Milliseconds of one forward and one backward pass, over `reps` of each. */
  async time(reps: number): Promise<number> {
    const both = [
      ...this.spectralNorm([this.ops]),
      ...this.spectralNormGrad([this.ops]),
    ];
    const all = Array.from({ length: reps }, () => both).flat();
    await this.device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    this.submit(all);
    await this.device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
}

/** The largest difference of each result, relative to tfjs's largest value. */
export interface SpectralNormComparison {
  u: number;
  v: number;
  sigma: number;
  wn: number;
  grad: number;
  /**
   * sigma over the largest singular value (below 1, near it after a few
   * iterations); NaN for a weight too large to decompose quickly.
   */
  sigmaShare: number;
  /** ms of a forward and a backward pass on the GPU, with `reps`. */
  ms?: number;
}

/**
 * The largest |got - want| over the largest |want| (Infinity for a NaN or
 * a length that differs): how this folder's comparisons with tfjs measure.
 */
export function relativeDifference(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
): number {
  if (got.length !== want.length) return Infinity;
  let scale = 1e-30, diff = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  return diff / scale;
}

/**
 * A weight of `shape` (its last dimension out) drawn from `seed`, three
 * training forwards and the gradient of sum(Wn * g) on the GPU and with
 * `lib/nets/spectral_norm.ts` on tfjs's current backend; `reps` times it.
 */
export async function compareSpectralNorm(
  device: GPUDevice,
  shape: number[],
  o: { seed: number; reps?: number },
): Promise<SpectralNormComparison> {
  const rng = new Rng(5, o.seed);
  const out = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b);
  const rest = size / out;
  const w = rng.fillNormal(new Float32Array(size)).map((x) => x * 0.1);
  const kernel = tf.tensor(w, shape);
  const state = createSpectralNorm(kernel, "w", rng);
  // Read without dataSync, which tfjs-webgpu does through a canvas.
  const [u0, v0] = [await state.u.data(), await state.v.data()];
  using k = new SpectralNormWeight(device, {
    w,
    rest,
    out,
    u: u0 as Float32Array,
    v: v0 as Float32Array,
  });
  // The gradient with respect to W / sigma that the backward pass gets.
  const gt = tf.tensor(rng.fillNormal(new Float32Array(size)), shape);
  try {
    const got = await k.forward(3);
    for (let n = 0; n < 3; n++) powerIteration(kernel, state);
    const want = tf.tidy(() => [
      sigmaOf(kernel, state),
      spectralNormalized(kernel, state, false),
      tf.grad((x: tf.Tensor) =>
        tf.sum(tf.mul(spectralNormalized(x, state, false), gt))
      )(kernel),
    ]);
    const [sigma, wn, grad] = await Promise.all(want.map((t) => t.data()));
    tf.dispose(want);
    const back = await k.backward(await gt.data() as Float32Array);
    return {
      u: relativeDifference(got.u, await state.u.data()),
      v: relativeDifference(got.v, await state.v.data()),
      sigma: relativeDifference([got.sigma], sigma),
      wn: relativeDifference(got.wn, wn),
      grad: relativeDifference(back, grad),
      // (W^T W on the CPU: skipped past 50 million multiply-adds.)
      sigmaShare: rest * out * out <= 5e7
        ? got.sigma / largestSingularValue(w, out)
        : NaN,
      ms: o.reps ? await k.time(o.reps) : undefined,
    };
  } finally {
    tf.dispose([kernel, gt, state.u, state.v]);
  }
}
