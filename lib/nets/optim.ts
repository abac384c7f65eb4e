/**
 * The two optimisers the presets use, written out so that their whole state
 * is a list of named variables plus a step count: a checkpoint stores it and
 * a resumed run continues exactly.
 *
 * - Adam (Kingma & Ba 2015), with PyTorch's update
 *   `p -= lr * m_hat / (sqrt(v_hat) + eps)`.
 * - SGD with momentum as in pylearn2, which trained the paper's networks:
 *   `inc = momentum * inc - lr * g; p += inc`, with the learning rate divided
 *   by `lrDecay` after every update (down to `minLr`) and the momentum ramped
 *   linearly from `momentum` to `finalMomentum` between epochs
 *   `momentumStart` and `momentumSaturate`.
 *
 * On WebGPU each variable's update runs as a few fused programs
 * (`lib/backends/webgpu_fusions.ts`) with the same arithmetic.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  type AdamAttrs,
  FUSED_ADAM,
  FUSED_SGD,
  fusedUpdatesOn,
  type SgdAttrs,
} from "../backends/webgpu_fusions.ts";

let nextUid = 0;

/**
 * A name for a new variable that is unique in this process (tfjs names are
 * global, and a notebook may build several models): `"<uid>:<logical>"`.
 */
export function uniqueVariableName(logical: string): string {
  return `${nextUid++}:${logical}`;
}

/** The stable part of a variable's name, as used in checkpoints: `"G/0/kernel"`. */
export function logicalName(v: tf.Variable): string {
  return v.name.slice(v.name.indexOf(":") + 1);
}

/** Adam's settings. */
export interface AdamConfig {
  kind: "adam";
  lr: number;
  beta1: number;
  beta2: number;
  eps?: number;
}

/** SGD with momentum, pylearn2-style, with its schedules. */
export interface SgdConfig {
  kind: "sgd";
  lr: number;
  momentum: number;
  /** Momentum reached at `momentumSaturate` (default: no ramp). */
  finalMomentum?: number;
  /** Epoch where the ramp starts (default 1). */
  momentumStart?: number;
  /** Epoch where the ramp ends (default 250). */
  momentumSaturate?: number;
  /** The learning rate is divided by this after each update (default 1: none). */
  lrDecay?: number;
  /** Floor of the decayed learning rate (default 0). */
  minLr?: number;
}

/** Either optimiser's settings. */
export type OptimizerConfig = AdamConfig | SgdConfig;

/** The learning rate of update number `step` + 1 (SGD's decays). */
export function learningRate(c: OptimizerConfig, step: number): number {
  if (c.kind === "adam") return c.lr;
  const decayed = c.lr / (c.lrDecay ?? 1) ** step;
  return Math.max(decayed, c.minLr ?? 0);
}

/** SGD's momentum during `epoch` (0-based), following the ramp (Adam: 0). */
export function momentum(c: OptimizerConfig, epoch: number): number {
  if (c.kind !== "sgd" || c.finalMomentum === undefined) {
    return c.kind === "sgd" ? c.momentum : 0;
  }
  const start = c.momentumStart ?? 1, end = c.momentumSaturate ?? 250;
  const alpha = Math.min(Math.max((epoch - start) / (end - start), 0), 1);
  return c.momentum * (1 - alpha) + c.finalMomentum * alpha;
}

/**
 * Adam's settings for update number `step` + 1, its bias corrections folded
 * in: stepSize = lr / (1 - beta1^t), correction2 = 1 - beta2^t, t = step + 1.
 */
export function adamSettings(c: AdamConfig, step: number): AdamAttrs {
  const t = step + 1;
  return {
    beta1: c.beta1,
    beta2: c.beta2,
    eps: c.eps ?? 1e-8,
    stepSize: learningRate(c, step) / (1 - c.beta1 ** t),
    correction2: 1 - c.beta2 ** t,
  };
}

/** An optimiser over a fixed list of variables. */
export class Optimizer {
  /** Number of updates applied so far. */
  step = 0;
  /** Slot variables (Adam's moments, or momentum increments), named. */
  readonly slots: tf.Variable[] = [];

  /**
   * @param config the settings.
   * @param variables the variables to update, in the order grads are given.
   * @param name prefix of the slot variables' names.
   */
  constructor(
    readonly config: OptimizerConfig,
    readonly variables: tf.Variable[],
    name: string,
  ) {
    const slotNames = config.kind === "adam" ? ["m", "v"] : ["inc"];
    tf.tidy(() => {
      for (const slot of slotNames) {
        for (const v of variables) {
          this.slots.push(
            tf.variable(
              tf.zeros(v.shape),
              false,
              uniqueVariableName(`${name}/${logicalName(v)}/${slot}`),
            ),
          );
        }
      }
    });
  }

  /** The learning rate of the next update. */
  learningRate(): number {
    return learningRate(this.config, this.step);
  }

  /** The momentum used during `epoch` (0-based), following the ramp. */
  momentum(epoch: number): number {
    return momentum(this.config, epoch);
  }

  /**
   * Applies one update. `grads` are keyed by variable name (as
   * `tf.variableGrads` returns them); they are not disposed here.
   */
  apply(grads: tf.NamedTensorMap, epoch: number): void {
    const c = this.config;
    const step = this.step++;
    const lr = learningRate(c, step);
    const n = this.variables.length;
    tf.tidy(() => {
      if (c.kind === "adam") {
        const a = adamSettings(c, step);
        const fused = fusedUpdatesOn();
        this.variables.forEach((p, i) => {
          const g = grads[p.name];
          const m = this.slots[i], v = this.slots[n + i];
          if (fused) {
            const [p1, m1, v1] = tf.engine().runKernel(
              FUSED_ADAM,
              { p, g, m, v },
              a as unknown as tf.NamedAttrMap,
            ) as tf.Tensor[];
            m.assign(m1);
            v.assign(v1);
            p.assign(p1);
            return;
          }
          const m1 = tf.add(tf.mul(m, c.beta1), tf.mul(g, 1 - c.beta1));
          const v1 = tf.add(
            tf.mul(v, c.beta2),
            tf.mul(tf.square(g), 1 - c.beta2),
          );
          m.assign(m1);
          v.assign(v1);
          const denom = tf.add(tf.sqrt(tf.div(v1, a.correction2)), a.eps);
          p.assign(tf.sub(p, tf.div(tf.mul(m1, a.stepSize), denom)));
        });
      } else {
        const mom = this.momentum(epoch);
        const fused: SgdAttrs | null = fusedUpdatesOn()
          ? { momentum: mom, lr }
          : null;
        this.variables.forEach((p, i) => {
          const inc = this.slots[i];
          if (fused) {
            const [p1, inc1] = tf.engine().runKernel(
              FUSED_SGD,
              { p, g: grads[p.name], inc },
              fused as unknown as tf.NamedAttrMap,
            ) as tf.Tensor[];
            inc.assign(inc1);
            p.assign(p1);
            return;
          }
          const inc1 = tf.sub(tf.mul(inc, mom), tf.mul(grads[p.name], lr));
          inc.assign(inc1);
          p.assign(tf.add(p, inc1));
        });
      }
    });
  }

  /** Frees the slot variables. */
  dispose(): void {
    for (const s of this.slots) s.dispose();
  }
}
