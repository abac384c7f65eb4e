/**
 * One convolution product at a time on the GPU, with its operands
 * uploaded: for the tests of `lib/wgsl/conv_programs.ts` and the
 * benchmark of its programs (`bench/conv_kernels.ts`), before the step
 * uses them.
 *
 * @module
 */

import type { Dispatch } from "./gpu.ts";
import { Kernels } from "./kernels.ts";
import {
  type ConvForm,
  type ConvGeometry,
  convProduct,
} from "./conv_programs.ts";
import type { Epilogue } from "./programs.ts";

/** A product made ready: its dispatches and the buffer of its output. */
export interface PreparedProduct {
  dispatches: Dispatch[];
  out: GPUBuffer;
  floats: number;
  /** 2 M N K. */
  flops: number;
}

/** Convolution products on their own buffers. */
export class ConvProducts extends Kernels {
  /**
   * Uploads the operands (`a`, `b` as {@linkcode Kernels.conv} takes them,
   * `bias` for a `bias` epilogue) and records the product; `splittable` as
   * `Kernels.conv` takes it (by default only `filterGrad` may split K).
   */
  prepare(
    form: ConvForm,
    geometry: ConvGeometry,
    a: Float32Array,
    b: Float32Array,
    options: {
      epilogue?: Epilogue;
      bias?: Float32Array;
      splittable?: boolean;
      /** `filterGrad`: b's column sums (a bias's gradient) after dW. */
      onesRow?: boolean;
    } = {},
  ): PreparedProduct {
    const upload = (x: Float32Array) => {
      const g = this.buffer(x.length);
      this.upload(g, x);
      return g;
    };
    const product = convProduct(geometry, form);
    const { N, K } = product;
    const M = product.M + (options.onesRow ? 1 : 0);
    const out = this.buffer(M * N);
    const dispatches = this.conv({
      form,
      geometry,
      epilogue: options.epilogue ?? { kind: "store" },
      a: upload(a),
      b: upload(b),
      c: out,
      e: options.bias ? upload(options.bias) : undefined,
      splittable: options.splittable,
      onesRow: options.onesRow,
    });
    return { dispatches, out, floats: M * N, flops: 2 * M * N * K };
  }

  /** Runs the product once and reads its output back. */
  async run(p: PreparedProduct): Promise<Float32Array> {
    this.submit(p.dispatches);
    return await this.read(p.out, 0, p.floats);
  }

  /** Milliseconds a run of the product takes, over `reps` runs in one submission. */
  async time(p: PreparedProduct, reps: number): Promise<number> {
    const all = Array.from({ length: reps }, () => p.dispatches).flat();
    this.submit(p.dispatches);
    await this.device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    this.submit(all);
    await this.device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
}
