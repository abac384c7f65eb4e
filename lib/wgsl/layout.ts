/**
 * Where a network's parameters and activations live on the GPU: each
 * network's parameters (and gradients, and optimiser slots) in one buffer,
 * laid out in `Mlp.trainable`'s order, and the buffers of its passes.
 *
 * @module
 */

import type { LayerSpec, Mlp } from "../nets/mlp.ts";

/**
 * A network's parameters laid out in one buffer, in `Mlp.trainable`'s
 * order: per layer kernel, bias, and with batch norm gamma and beta.
 */
export interface NetLayout {
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

export function layout(net: Mlp): NetLayout {
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

export interface NetBuffers {
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
  /**
   * A first layer's constant 0/1 label-block mask (`cgan`'s label units),
   * [inputs, units * pieces], as `lib/nets/layer_net.ts` makes it.
   */
  blockMasks: (GPUBuffer | null)[];
  /** The optimiser's per-step settings. */
  opt: GPUBuffer;
}
