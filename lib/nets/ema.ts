/**
 * An exponential moving average of a network's weights, kept beside it
 * during training (Polyak averaging with exponential weights: Yazıcı et al.
 * 2019; PyTorch-StudioGAN's `g_ema`, BigGAN, StyleGAN). After each update t
 * of the network's weights w,
 *
 *     w_ema <- decay * w_ema + (1 - decay) * w        (t > start)
 *     w_ema <- w                                       (t <= start)
 *
 * so the average follows the last 1 / (1 - decay) updates or so (1,000 at
 * 0.999), and the first `start` updates, when the weights move fastest and
 * are worst, are left out of it (StudioGAN's `g_ema_start`). Late in a GAN's
 * training G's weights circle around a good point as each player answers
 * the other's last move; the average lies nearer the middle.
 *
 * What is not a weight is copied at each update, not averaged: batch
 * norm's running mean and variance, and spectral normalisation's u and v
 * (StudioGAN copies a module's buffers too). G's running statistics
 * describe G's activations, not the average's, and sampling with them did
 * worse than G itself (docs/results.md, "Generator EMA"): before the
 * average is used, {@linkcode recomputeBatchNormStats} gives it statistics
 * of its own, on fresh noise (the training loop does, after each epoch).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { LayerNet } from "./layer_net.ts";
import { Rng } from "../random/rng.ts";

/** The moving average's settings (`GanConfig.ema`, `--ema`, `--ema-start`). */
export interface EmaConfig {
  /** Weight of the average so far at each update, in (0, 1): 0.999 typically. */
  decay: number;
  /**
   * Updates of the network during which the average is a copy of its
   * weights, before averaging starts (0: from the first update).
   */
  start: number;
}

/**
 * A network of the same layers as `net`, its variables named `name/...`,
 * holding a copy of `net`'s values (weights and running statistics).
 */
export function copyNet(net: LayerNet, name: string): LayerNet {
  // The copy's own initial draw is overwritten at once: any seed does.
  const copy = new LayerNet(name, net.inputShape[0], net.descs, new Rng(0, 0));
  tf.tidy(() => {
    const from = net.variables;
    copy.variables.forEach((v, i) => v.assign(from[i]));
  });
  return copy;
}

/**
 * The decay of the average at the network's `step`-th update (counted from
 * 1): 0 (a copy) up to `config.start`, then `config.decay`.
 */
export function emaDecay(config: EmaConfig, step: number): number {
  return step <= config.start ? 0 : config.decay;
}

/**
 * Moves `average` (a {@linkcode copyNet} of `net`) toward `net` after its
 * weights' update: weights as `decay * average + (1 - decay) * w`, the
 * rest copied. `decay` 0 copies everything.
 */
export function updateAverage(
  average: LayerNet,
  net: LayerNet,
  decay: number,
): void {
  tf.tidy(() => {
    const trainable = new Set(net.trainable);
    const from = net.variables;
    average.variables.forEach((v, i) => {
      const w = from[i];
      v.assign(
        decay === 0 || !trainable.has(w)
          ? w
          : tf.add(tf.mul(v, decay), tf.mul(w, 1 - decay)),
      );
    });
  });
}

/** Copies `from`'s batch-norm running statistics into `to`, of the same layers. */
export function copyStatistics(to: LayerNet, from: LayerNet): void {
  tf.tidy(() =>
    to.vars.forEach((v, i) => {
      if (v.movingMean) v.movingMean.assign(from.vars[i].movingMean!);
      if (v.movingVar) v.movingVar.assign(from.vars[i].movingVar!);
    })
  );
}

/**
 * Sets `net`'s batch-norm running statistics to those of its own
 * activations: each batch-norm layer's batch mean and variance, with the
 * network in training mode, averaged over the batches `inputs(i)` for i <
 * `batches` (BigGAN's "standing statistics"). For an average of G's
 * weights, whose copied statistics describe G's activations rather than
 * its own. Dropout, where the network has any, is on as in training, its
 * masks from seed `i` for batch i.
 */
export function recomputeBatchNormStats(
  net: LayerNet,
  inputs: (i: number) => tf.Tensor2D,
  batches: number,
): void {
  const layers = net.vars.filter((v) => v.movingMean && v.movingVar);
  if (layers.length === 0) return;
  let sums: tf.Tensor[] | null = null;
  for (let i = 0; i < batches; i++) {
    const soFar: tf.Tensor[] | null = sums;
    const next: tf.Tensor[] = tf.tidy((): tf.Tensor[] => {
      const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
      net.apply(inputs(i), { training: true, seed: i, batchStats: stats });
      const flat = stats.flatMap((s) => [s.mean, s.variance]);
      return soFar === null ? flat : soFar.map((a, j) => tf.add(a, flat[j]));
    });
    if (soFar) tf.dispose(soFar);
    sums = next;
  }
  if (sums === null) return;
  const total: tf.Tensor[] = sums;
  tf.tidy(() => {
    layers.forEach((v, l) => {
      v.movingMean!.assign(tf.div(total[2 * l], batches));
      v.movingVar!.assign(tf.div(total[2 * l + 1], batches));
    });
  });
  tf.dispose(total);
}
