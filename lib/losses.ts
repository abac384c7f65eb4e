/**
 * The losses of the game, all from D's outputs: equation 1 of the paper
 * (Goodfellow et al. 2014) and the cross-entropies it is written as, G's
 * saturating and non-saturating forms, and the losses of later games (hinge,
 * least squares, the Wasserstein critic). D returns logits (or, in the later
 * games, scores); every cross-entropy is computed from logits with
 * log-sigmoid identities, so no log(0) appears however sure D becomes.
 * `lib/gan.ts` takes their gradients; its steps are Algorithm 1.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { GeneratorLossKind } from "./presets.ts";

/** log sigmoid(l) = -softplus(-l), computed without overflow. */
export function logSigmoid(logits: tf.Tensor): tf.Tensor {
  // -softplus(-l) = min(l, 0) - log(1 + exp(-|l|))
  return tf.sub(
    tf.minimum(logits, 0),
    tf.log1p(tf.exp(tf.neg(tf.abs(logits)))),
  );
}

/**
 * Mean binary cross-entropy between sigmoid(logits) and `target`:
 * -[t log D + (1 - t) log(1 - D)], using log(1 - sigmoid(l)) = log sigmoid(-l).
 */
export function bceWithLogits(logits: tf.Tensor, target: number): tf.Scalar {
  // A term of weight 0 adds exactly nothing and a weight of 1 changes
  // nothing, so they are left out: with the usual targets 1 and 0 that is
  // half the ops and their gradients (each a dispatch on WebGPU), with the
  // same result to the bit.
  const weighted = (x: tf.Tensor, w: number) => w === 1 ? x : tf.mul(x, w);
  let sum: tf.Tensor | null = null;
  if (target !== 0) sum = weighted(logSigmoid(logits), target);
  if (target !== 1) {
    const other = weighted(logSigmoid(tf.neg(logits)), 1 - target);
    sum = sum === null ? other : tf.add(sum, other);
  }
  return tf.neg(tf.mean(sum!));
}

/**
 * The value function (eq. 1), estimated on a batch:
 * V(D, G) = mean log D(x) + mean log(1 - D(G(z))).
 * D ascends it; at the game's optimum it equals -log 4.
 */
export function valueFunction(
  realLogits: tf.Tensor,
  fakeLogits: tf.Tensor,
): tf.Scalar {
  return tf.add(
    tf.mean(logSigmoid(realLogits)),
    tf.mean(logSigmoid(tf.neg(fakeLogits))),
  );
}

/**
 * D's loss: -V(D, G) when `realLabel` is 1, written as two cross-entropies,
 * BCE(D(x), realLabel) + BCE(D(G(z)), 0). A `realLabel` below 1 is one-sided
 * label smoothing (Salimans et al. 2016): only the real target moves, so D is
 * not encouraged to put mass where the data has none.
 *
 * With `kind` `hinge`, D's output is a score, not a logit, and D minimises
 * mean max(0, 1 - D(x)) + mean max(0, 1 + D(G(z))) (Lim and Ye 2017; Miyato
 * et al. 2018, eq. 16): a real image scored above 1, or a generated one below
 * -1, adds nothing, so D stops pushing on what it already separates.
 *
 * With `kind` `least-squares` (LSGAN, Mao et al. 2017, eq. 2 with a = 0,
 * b = c = 1), D's output is a score and D minimises
 * 1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2: a generated image that D
 * already scores as fake still pulls in proportion to its distance, so
 * neither player's gradient vanishes as the sigmoid's does.
 *
 * With `kind` `wgan-gp` (Gulrajani et al. 2017, eq. 3), D is a critic whose
 * score estimates the Wasserstein distance, mean D(x) - mean D(G(z)), and
 * it minimises mean D(G(z)) - mean D(x); the gradient penalty that keeps
 * it 1-Lipschitz is added where its gradient is taken
 * (`lib/nets/gradient_penalty.ts`).
 */
export function discriminatorLoss(
  realLogits: tf.Tensor,
  fakeLogits: tf.Tensor,
  realLabel = 1,
  kind: GeneratorLossKind = "non-saturating",
): tf.Scalar {
  if (kind === "hinge") {
    return tf.add(
      tf.mean(tf.relu(tf.sub(1, realLogits))),
      tf.mean(tf.relu(tf.add(1, fakeLogits))),
    );
  }
  if (kind === "wgan-gp") {
    return tf.sub(tf.mean(fakeLogits), tf.mean(realLogits));
  }
  if (kind === "least-squares") {
    return tf.mul(
      tf.add(
        tf.mean(tf.square(tf.sub(realLogits, 1))),
        tf.mean(tf.square(fakeLogits)),
      ),
      0.5,
    );
  }
  return tf.add(
    bceWithLogits(realLogits, realLabel),
    bceWithLogits(fakeLogits, 0),
  );
}

/**
 * G's loss on D's logits for generated images.
 *
 * - `saturating`: minimise mean log(1 - D(G(z))), the game of eq. 1 as written.
 *   Early on D rejects G's samples confidently, log(1 - D) is flat there, and
 *   G gets almost no gradient.
 * - `non-saturating` (default): minimise -mean log D(G(z)). The paper
 *   (section 3) proposes it: the same fixed point, but strong gradients
 *   early in learning.
 * - `hinge` and `wgan-gp`: minimise -mean D(G(z)), D's raw score (the hinge
 *   game's G, and the Wasserstein critic's).
 * - `least-squares`: minimise 1/2 mean (D(G(z)) - 1)^2 (LSGAN's G).
 */
export function generatorLoss(
  fakeLogits: tf.Tensor,
  kind: GeneratorLossKind = "non-saturating",
): tf.Scalar {
  if (kind === "hinge" || kind === "wgan-gp") {
    return tf.neg(tf.mean(fakeLogits));
  }
  if (kind === "least-squares") {
    return tf.mul(tf.mean(tf.square(tf.sub(fakeLogits, 1))), 0.5);
  }
  return kind === "saturating"
    ? tf.mean(logSigmoid(tf.neg(fakeLogits)))
    : tf.neg(tf.mean(logSigmoid(fakeLogits)));
}
