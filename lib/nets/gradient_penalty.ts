/**
 * The gradient penalty of WGAN-GP (Gulrajani et al. 2017, "Improved
 * Training of Wasserstein GANs", Algorithm 1, line 8):
 *
 *     lambda * E[(||grad_x^ D(x^)||_2 - 1)^2],   x^ = eps x + (1 - eps) x~
 *
 * on points x^ between a real image x and a generated one x~, with one
 * mixing weight eps ~ U[0, 1] per pair. One weight per pair, not one per
 * pixel and not a normal draw: the penalty holds the critic's gradient to 1
 * along the straight lines between the two distributions, which is what
 * the paper's argument needs (a per-pixel weight, a known bug in popular
 * implementations, samples points off those lines).
 *
 * D's gradient with respect to its input is taken inside the gradient of
 * D's loss with respect to its weights: a second derivative. tfjs computes
 * it from the gradients of the ops of the first one, so every op in D's
 * gradient must have a gradient of its own; {@linkcode secondDerivativeError}
 * turns tfjs's error where one has none into what to do.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** The penalty's weight lambda (the paper's 10). */
export const GP_WEIGHT = 10;

/** Options of {@linkcode gradientPenalty}. */
export interface PenaltyOptions {
  /** lambda (default {@linkcode GP_WEIGHT}). */
  weight?: number;
  /**
   * The norm over the first `columns` values of each row only (a
   * conditional D's image, not the one-hot class after it). Default: all.
   */
  columns?: number;
}

/**
 * The penalty on the critic `critic` (one score per row, training mode)
 * at `mix * real + (1 - mix) * fake`, row by row; `mix` holds one weight in
 * [0, 1] per row. Differentiable with respect to the critic's weights.
 */
export function gradientPenalty(
  critic: (x: tf.Tensor2D) => tf.Tensor,
  real: tf.Tensor2D,
  fake: tf.Tensor2D,
  mix: tf.Tensor1D,
  options: PenaltyOptions = {},
): tf.Scalar {
  registerComparisonGradients();
  const { weight = GP_WEIGHT, columns } = options;
  const e = tf.reshape(mix, [-1, 1]);
  const between = tf.add(tf.mul(real, e), tf.mul(fake, tf.sub(1, e)));
  // Each row's score depends on that row alone (D has no batch norm), so
  // the gradient of their sum holds each row's own gradient.
  const grad = tf.grad((x: tf.Tensor) => tf.sum(critic(x as tf.Tensor2D)))(
    between,
  );
  const g = columns === undefined || columns === grad.shape[1]
    ? grad
    : tf.slice(grad, [0, 0], [-1, columns]);
  // 1e-12 inside the root: its gradient at a zero input gradient stays finite.
  const norm = tf.sqrt(tf.add(tf.sum(tf.square(g), 1), 1e-12));
  return tf.mul(tf.mean(tf.square(tf.sub(norm, 1))), weight);
}

/** The comparisons, whose derivative is 0 wherever it exists. */
const COMPARISONS = [
  "Equal",
  "NotEqual",
  "Greater",
  "GreaterEqual",
  "Less",
  "LessEqual",
];

/**
 * Gives tfjs's comparisons a gradient of zero, as TensorFlow treats them
 * (`NotDifferentiable`). The gradients of relu, leaky relu and maxout hold
 * a mask made by a comparison of the layer's input (x > 0, or x equal to
 * the max), and tfjs has no gradient for comparisons, so a second
 * derivative through those masks would stop with an error although their
 * contribution is exactly zero. Comparisons that already have a gradient
 * keep it.
 */
function registerComparisonGradients(): void {
  for (const kernelName of COMPARISONS) {
    if (tf.getGradient(kernelName)) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ["a", "b"],
      gradFunc: (_dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => ({
        a: () => tf.zerosLike(saved[0]),
        b: () => tf.zerosLike(saved[1]),
      }),
    });
  }
}

/**
 * For an error thrown while taking the penalty's gradient: when tfjs has
 * no gradient for an op of D's gradient (a second derivative it cannot
 * take on this backend), an error that says so and what to do; else the
 * error itself.
 */
export function secondDerivativeError(e: unknown): unknown {
  const message = e instanceof Error ? e.message : String(e);
  const op = message.match(/gradient function not found for (\w+)/)?.[1];
  if (!op) return e;
  return new Error(
    `the gradient penalty (--loss wgan-gp) needs second derivatives ` +
      `through D, and tfjs has no gradient for the ${op} op that D's ` +
      `gradient uses on the ${tf.getBackend()} backend. Train with another ` +
      `loss (--loss hinge or least-squares), or a D without that layer`,
  );
}
