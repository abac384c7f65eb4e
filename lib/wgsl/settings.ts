/**
 * The per-update settings the WGSL steps write before each update: the
 * optimiser's (ADAM_CODE's and SGD_CODE's uniforms) and the moving
 * average's (EMA_CODE's).
 *
 * @module
 */

import {
  adamSettings,
  learningRate,
  momentum,
  type OptimizerConfig,
} from "../nets/optim.ts";
import { type EmaConfig, emaDecay } from "../nets/ema.ts";

/**
 * The uniform of an update of `size` parameters by `c`, after `t` updates
 * (as Optimizer.step counts them), in `epoch` (SGD's momentum schedule).
 */
export function optimizerUniform(
  c: OptimizerConfig,
  t: number,
  epoch: number,
  size: number,
): ArrayBuffer {
  const u = new ArrayBuffer(32);
  const f = new Float32Array(u), n = new Uint32Array(u);
  if (c.kind === "adam") {
    const a = adamSettings(c, t);
    f.set([
      a.beta1,
      1 - a.beta1,
      a.beta2,
      1 - a.beta2,
      a.stepSize,
      a.correction2,
      a.eps,
    ]);
    n[7] = size;
  } else {
    f.set([momentum(c, epoch), learningRate(c, t)]);
    n[2] = size;
  }
  return u;
}

/** The moving average's uniform after G's (t + 1)-th update. */
export function emaUniform(
  ema: EmaConfig,
  t: number,
  size: number,
): ArrayBuffer {
  const decay = emaDecay(ema, t + 1);
  const e = new ArrayBuffer(16);
  new Float32Array(e).set([decay, 1 - decay]);
  new Uint32Array(e)[2] = size;
  return e;
}
