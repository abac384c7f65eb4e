/**
 * Spectral normalisation's dispatches (`lib/wgsl/spectral_norm_programs.ts`):
 * a pass's small weights in one dispatch each way, a workgroup a weight,
 * and a large weight's programs spread over many workgroups.
 *
 * @module
 */

import { COPY_DST, type Dispatch, S } from "./gpu.ts";
import { Kernels } from "./kernels.ts";
import type { Binding } from "./programs.ts";
import {
  SN_BACKWARD_CODE,
  SN_DOT_CHUNK,
  SN_DOT_CODE,
  SN_FINISH_CODE,
  SN_FORWARD_CODE,
  SN_GRAD_CODE,
  SN_SCALE_CHUNK,
  SN_SINGLE_WORKGROUP,
  snParts,
} from "./spectral_norm_programs.ts";

/**
 * A spectrally normalised weight Wt [rest, out] on the GPU: W in `params`
 * (its gradient in `grads`) from `wOff`, u, v and sigma in `state` from
 * `sOff`, W / sigma in `normed` from `nOff`.
 */
export interface SpectralNormOperands {
  params: GPUBuffer;
  grads: GPUBuffer;
  wOff: number;
  state: GPUBuffer;
  sOff: number;
  normed: GPUBuffer;
  nOff: number;
  rest: number;
  out: number;
  /**
   * Where in `state` the power iteration finds u (default `sOff`): the
   * state of the pass before, when each pass keeps its own.
   */
  srcOff?: number;
}

/** Whether a weight's spectral normalisation is one workgroup's work. */
function oneWorkgroup(o: SpectralNormOperands): boolean {
  return o.rest * o.out <= SN_SINGLE_WORKGROUP;
}

/**
 * The buffers `keys` of weights that share a dispatch: the same for each,
 * as a network's weights are.
 */
function sharedBuffers(
  list: SpectralNormOperands[],
  keys: ("params" | "grads" | "state" | "normed")[],
): GPUBuffer[] {
  return keys.map((k) => {
    if (list.some((o) => o[k] !== list[0][k])) {
      throw new Error(`unreachable: weights in different ${k} buffers`);
    }
    return list[0][k];
  });
}

/** A GPU context that records spectral normalisation's dispatches. */
export class SpectralNormKernels extends Kernels {
  /**
   * Spectral normalisation's forward pass of weights Wt [rest, out]
   * (`lib/wgsl/spectral_norm_programs.ts`): one power iteration on each
   * one's state (u, v, sigma from `sOff`), then Wn = W / sigma into
   * `normed`. The weights that are one workgroup's work share a dispatch,
   * a workgroup each; each larger one takes three dispatches of its own.
   */
  protected spectralNorm(list: SpectralNormOperands[]): Dispatch[] {
    return this.byWeight(
      list,
      SN_FORWARD_CODE,
      ["read-only-storage", "storage", "storage"],
      ["params", "state", "normed"],
      (o) => this.largeSpectralNorm(o),
    );
  }

  /**
   * The weights of `list` that are one workgroup's work in one dispatch of
   * `code` (bindings of `kinds` from `keys`, then the settings' table),
   * the others each by `large`.
   */
  private byWeight(
    list: SpectralNormOperands[],
    code: string,
    kinds: Binding[],
    keys: ("params" | "grads" | "state" | "normed")[],
    large: (o: SpectralNormOperands) => Dispatch[],
  ): Dispatch[] {
    const small = list.filter(oneWorkgroup);
    return [
      ...small.length
        ? [this.dispatch(
          code,
          [...kinds, "read-only-storage"],
          [...sharedBuffers(small, keys), this.snSettings(small)],
          [small.length, 1],
        )]
        : [],
      ...list.filter((o) => !oneWorkgroup(o)).flatMap(large),
    ];
  }

  /** {@linkcode spectralNorm}'s three dispatches for a large weight. */
  private largeSpectralNorm(o: SpectralNormOperands): Dispatch[] {
    const u = this.snUniform(o);
    const n = o.rest * o.out;
    // A large weight: X = Wt u and Y = Wt^T X as matMul products into
    // scratch vectors (a buffer is not read and written by one dispatch),
    // then v, u, sigma and W / sigma from them in one program.
    const x = this.snVector(0, o.rest);
    const y = this.snVector(1, o.out);
    const whole = { epilogue: { kind: "store" } as const, splittable: false };
    return [
      ...this.matMul({
        M: o.rest,
        N: 1,
        K: o.out,
        a: o.params,
        aOff: o.wOff,
        b: o.state,
        bOff: o.srcOff ?? o.sOff,
        c: x,
        ...whole,
      }),
      ...this.matMul({
        M: o.out,
        N: 1,
        K: o.rest,
        a: o.params,
        aOff: o.wOff,
        transA: true,
        b: x,
        c: y,
        ...whole,
      }),
      this.dispatch(
        SN_FINISH_CODE,
        [
          "read-only-storage",
          "read-only-storage",
          "read-only-storage",
          "storage",
          "storage",
          "uniform",
        ],
        [x, y, o.params, o.state, o.normed, u],
        [Math.ceil(n / SN_SCALE_CHUNK), 1],
      ),
    ];
  }

  /**
   * Scratch vector `which` (0 or 1) of at least `floats`: one pair serves
   * every large weight, as they run one after another; a larger one
   * replaces a smaller for the products recorded after.
   */
  private snVector(which: 0 | 1, floats: number): GPUBuffer {
    const have = this.snScratch[which];
    if ((have?.floats ?? 0) < floats) {
      this.snScratch[which] = { buffer: this.buffer(floats), floats };
    }
    return this.snScratch[which]!.buffer;
  }

  private snScratch: ({ buffer: GPUBuffer; floats: number } | null)[] = [
    null,
    null,
  ];

  /**
   * The gradient through sigma, in place, of each weight in `list`:
   * `grads` from `wOff` holds the gradient with respect to Wn and becomes
   * the one with respect to W. As {@linkcode spectralNorm}, the small
   * weights share one dispatch.
   */
  protected spectralNormGrad(list: SpectralNormOperands[]): Dispatch[] {
    return this.byWeight(
      list,
      SN_BACKWARD_CODE,
      ["storage", "read-only-storage", "read-only-storage"],
      ["grads", "state", "normed"],
      (o) => this.largeSpectralNormGrad(o),
    );
  }

  /** {@linkcode spectralNormGrad}'s two dispatches for a large weight. */
  private largeSpectralNormGrad(o: SpectralNormOperands): Dispatch[] {
    const n = o.rest * o.out;
    // <G, Wn> in partial sums, which each workgroup of the update adds.
    const chunks = Math.ceil(n / SN_DOT_CHUNK);
    const partial = this.snVector(0, chunks);
    const u = this.snUniform(o, chunks);
    return [
      this.dispatch(
        SN_DOT_CODE,
        ["read-only-storage", "read-only-storage", "storage", "uniform"],
        [o.grads, o.normed, partial, u],
        [chunks, 1],
      ),
      this.dispatch(
        SN_GRAD_CODE,
        ["storage", "read-only-storage", "read-only-storage", "uniform"],
        [o.grads, o.state, partial, u],
        this.grid(n),
      ),
    ];
  }

  /** The single-workgroup programs' settings, a weight's after another. */
  private snSettings(list: SpectralNormOperands[]): GPUBuffer {
    const values = list.flatMap((o) => this.snValues(o));
    const b = this.buffer(values.length, S | COPY_DST);
    this.upload(b, new Uint32Array(values));
    return b;
  }

  /** A weight's settings as SN_UNIFORM lays them out. */
  private snValues(o: SpectralNormOperands, parts?: number): number[] {
    return [
      o.rest,
      o.out,
      o.wOff,
      o.sOff,
      o.nOff,
      parts ?? snParts(o.out),
      o.srcOff ?? o.sOff,
    ];
  }

  /** The programs' settings; `parts` the dot's partial sums where given. */
  private snUniform(o: SpectralNormOperands, parts?: number): GPUBuffer {
    return this.uniform(this.snValues(o, parts));
  }
}
