/**
 * Spectrally normalised weights on the GPU, on buffers of their own, and
 * their comparison with `lib/nets/spectral_norm.ts` on tfjs: for the test of
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

/**
 * Weights Wt [rest, out] with their u and v, one after another in shared
 * buffers at offsets that are not 0, as a network's are: their forward
 * and backward passes are one dispatch each way for the small ones (a
 * workgroup a weight), as in the step.
 */
export class SpectralNormWeights extends SpectralNormKernels {
  readonly ops: SpectralNormOperands[];

  constructor(
    device: GPUDevice,
    weights: {
      w: Float32Array;
      rest: number;
      out: number;
      u: Float32Array;
      v: Float32Array;
    }[],
  ) {
    super(device, null, "plain");
    // Each weight 3 floats past the last; its state 5, its copy 7.
    let [w, st, n] = [0, 0, 0];
    const at = weights.map((o) => {
      const offsets = { wOff: w + 3, sOff: st + 5, nOff: n + 7 };
      w = offsets.wOff + o.w.length;
      st = offsets.sOff + o.out + o.rest + 1;
      n = offsets.nOff + o.w.length;
      return offsets;
    });
    const [params, grads, state, normed] = [w, w, st, n].map((f) =>
      this.buffer(f)
    );
    this.ops = weights.map((o, i) => {
      this.upload(params, o.w, at[i].wOff);
      this.upload(state, o.u, at[i].sOff);
      this.upload(state, o.v, at[i].sOff + o.out);
      return {
        params,
        grads,
        state,
        normed,
        ...at[i],
        rest: o.rest,
        out: o.out,
      };
    });
  }

  /** `n` training forward passes, then each weight's u, v, sigma and W / sigma. */
  async forward(n: number): Promise<
    { u: Float32Array; v: Float32Array; sigma: number; wn: Float32Array }[]
  > {
    this.submit(Array(n).fill(this.spectralNorm(this.ops)).flat());
    const results = [];
    for (const o of this.ops) {
      const s = await this.read(o.state, o.sOff, o.out + o.rest + 1);
      results.push({
        u: s.slice(0, o.out),
        v: s.slice(o.out, o.out + o.rest),
        sigma: s[o.out + o.rest],
        wn: await this.read(o.normed, o.nOff, o.rest * o.out),
      });
    }
    return results;
  }

  /**
   * Each weight's dL/dW from its dL/dWn in `gs`, with the state the forward
   * passes left.
   */
  async backward(gs: Float32Array[]): Promise<Float32Array[]> {
    this.ops.forEach((o, i) => this.upload(o.grads, gs[i], o.wOff));
    this.submit(this.spectralNormGrad(this.ops));
    const out = [];
    for (const [i, o] of this.ops.entries()) {
      out.push(await this.read(o.grads, o.wOff, gs[i].length));
    }
    return out;
  }

  /** Milliseconds of one forward and one backward pass, over `reps` of each. */
  async time(reps: number): Promise<number> {
    const both = [
      ...this.spectralNorm(this.ops),
      ...this.spectralNormGrad(this.ops),
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
  return (await compareSpectralNorms(device, [shape], o))[0];
}

/**
 * {@linkcode compareSpectralNorm} of several weights at once, in shared
 * buffers, the step's way (a dispatch each way for all the small ones);
 * `reps` times them all together, in each comparison's `ms`.
 */
export async function compareSpectralNorms(
  device: GPUDevice,
  shapes: number[][],
  o: { seed: number; reps?: number },
): Promise<SpectralNormComparison[]> {
  const rng = new Rng(5, o.seed);
  const drawn = [];
  for (const shape of shapes) {
    const out = shape[shape.length - 1];
    const size = shape.reduce((a, b) => a * b);
    const w = rng.fillNormal(new Float32Array(size)).map((x) => x * 0.1);
    const kernel = tf.tensor(w, shape);
    const state = createSpectralNorm(kernel, "w", rng);
    // Read without dataSync, which tfjs-webgpu does through a canvas.
    const [u, v] = [await state.u.data(), await state.v.data()];
    // The gradient with respect to W / sigma that the backward pass gets.
    const g = rng.fillNormal(new Float32Array(size));
    drawn.push({
      shape,
      w,
      rest: size / out,
      out,
      u: u as Float32Array,
      v: v as Float32Array,
      kernel,
      state,
      g,
    });
  }
  using k = new SpectralNormWeights(device, drawn);
  try {
    const got = await k.forward(3);
    const back = await k.backward(drawn.map((d) => d.g));
    const ms = o.reps ? await k.time(o.reps) : undefined;
    const results: SpectralNormComparison[] = [];
    for (const [i, d] of drawn.entries()) {
      const { kernel, state, rest, out } = d;
      for (let n = 0; n < 3; n++) powerIteration(kernel, state);
      const want = tf.tidy(() => {
        const gt = tf.tensor(d.g, d.shape);
        return [
          sigmaOf(kernel, state),
          spectralNormalized(kernel, state, false),
          tf.grad((x: tf.Tensor) =>
            tf.sum(tf.mul(spectralNormalized(x, state, false), gt))
          )(kernel),
        ];
      });
      const [sigma, wn, grad] = await Promise.all(want.map((t) => t.data()));
      tf.dispose(want);
      results.push({
        u: relativeDifference(got[i].u, await state.u.data()),
        v: relativeDifference(got[i].v, await state.v.data()),
        sigma: relativeDifference([got[i].sigma], sigma),
        wn: relativeDifference(got[i].wn, wn),
        grad: relativeDifference(back[i], grad),
        // (W^T W on the CPU: skipped past 50 million multiply-adds.)
        sigmaShare: rest * out * out <= 5e7
          ? got[i].sigma / largestSingularValue(d.w, out)
          : NaN,
        ms,
      });
    }
    return results;
  } finally {
    for (const d of drawn) tf.dispose([d.kernel, d.state.u, d.state.v]);
  }
}
