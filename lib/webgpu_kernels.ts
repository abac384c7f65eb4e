/**
 * Fused optimiser updates for the WebGPU backend: each of Adam's and SGD's
 * per-variable updates as a few WGSL programs instead of a chain of tfjs ops.
 *
 * Written with tfjs ops, Adam's update of one variable is 13 elementwise ops
 * and 7 scalars that the WebGPU backend uploads from the CPU one by one (each
 * upload creates a staging buffer and ends the compute pass); for the `mlp`
 * model that was 234 of a step's 526 dispatches and 126 of its 171 uploads.
 * Here Adam is three programs per variable (new m, new v, new parameter) and
 * SGD two (new increment, new parameter), all settings passed as uniforms:
 * no upload at all. The arithmetic is the same as `lib/optim.ts`'s, in the
 * same order, in float32.
 *
 * The kernels are registered for the `webgpu` backend only (by
 * `lib/backend.ts` when it starts WebGPU); other backends keep the op chain.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Kernel name: inputs `{p, g, m, v}`, attrs {@linkcode AdamAttrs}; outputs `[p, m, v]`. */
export const FUSED_ADAM = "GanFusedAdam";
/** Kernel name: inputs `{p, g, inc}`, attrs {@linkcode SgdAttrs}; outputs `[p, inc]`. */
export const FUSED_SGD = "GanFusedSgd";

/** One Adam update's settings, as numbers. */
export interface AdamAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  /** lr / (1 - beta1^t) */
  stepSize: number;
  /** 1 - beta2^t */
  correction2: number;
}

/** One SGD-with-momentum update's settings. */
export interface SgdAttrs {
  momentum: number;
  lr: number;
}

let enabled = true;

/**
 * Turns the fused updates on or off (on by default), for comparisons; the
 * op-chain path is the reference.
 */
export function setFusedUpdates(on: boolean): void {
  enabled = on;
}

/** Whether the current backend has the fused updates, and they are on. */
export function fusedUpdatesOn(): boolean {
  return enabled && tf.getKernel(FUSED_ADAM, tf.getBackend()) !== undefined;
}

// The parts of tfjs-backend-webgpu's program interface used here.
interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms: string;
  getUserCode(): string;
}
interface WebGpuBackend {
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: tf.TensorInfo[],
    dtype: "float32",
    uniforms: { type: "float32"; data: number[] }[],
  ): tf.TensorInfo;
}

const WORKGROUP = 64;

/**
 * An elementwise program over inputs of one shape: `expr` computes the new
 * value from the inputs at `index` (named as in `inputs`) and the uniforms.
 */
function elementwise(
  key: string,
  inputs: string[],
  uniforms: string[],
  lets: string,
  shape: number[],
): WebGpuProgram {
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    variableNames: inputs,
    outputShape: shape,
    shaderKey: key,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms: uniforms.map((u) => `${u} : f32,`).join(" "),
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${
      inputs.map((x) => `let ${x.toLowerCase()} = ${x}[index];`).join(" ")
    }
          ${lets}
          setOutputAtIndex(index, result_value);
        }
      }`,
  };
}

const f32 = (...data: number[]) =>
  data.map((d) => ({ type: "float32" as const, data: [d] }));

// m' = m * beta1 + g * (1 - beta1); v' = v * beta2 + g^2 * (1 - beta2);
// p' = p - (m' * stepSize) / (sqrt(v' / correction2) + eps)
const ADAM_M = "let result_value = m * uniforms.beta1 + g * uniforms.rest1;";
const ADAM_V =
  "let result_value = v * uniforms.beta2 + (g * g) * uniforms.rest2;";
const ADAM_P = `
  let m1 = m * uniforms.beta1 + g * uniforms.rest1;
  let v1 = v * uniforms.beta2 + (g * g) * uniforms.rest2;
  let result_value = p - (m1 * uniforms.stepSize) /
    (sqrt(v1 / uniforms.correction2) + uniforms.eps);`;
// inc' = inc * momentum - g * lr; p' = p + inc'
const SGD_INC = "let result_value = inc * uniforms.momentum - g * uniforms.lr;";
const SGD_P =
  "let result_value = p + (inc * uniforms.momentum - g * uniforms.lr);";

/** Registers the fused updates for the `webgpu` backend (once). */
export function installFusedUpdates(): void {
  if (tf.getKernel(FUSED_ADAM, "webgpu")) return;
  tf.registerKernel({
    kernelName: FUSED_ADAM,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { p, g, m, v } = inputs as Record<string, tf.TensorInfo>;
      const a = attrs as unknown as AdamAttrs;
      const gpu = backend as unknown as WebGpuBackend;
      const uniforms = ["beta1", "rest1", "beta2", "rest2"];
      const values = f32(a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2);
      const run = (key: string, names: string[], code: string, all: boolean) =>
        gpu.runWebGPUProgram(
          elementwise(
            key,
            names,
            all ? [...uniforms, "stepSize", "correction2", "eps"] : uniforms,
            code,
            p.shape,
          ),
          names.map((n) => ({ p, g, m, v })[n.toLowerCase() as "p"]),
          "float32",
          all ? [...values, ...f32(a.stepSize, a.correction2, a.eps)] : values,
        );
      return [
        run("gan_adam_p", ["P", "G", "M", "V"], ADAM_P, true),
        run("gan_adam_m", ["G", "M"], ADAM_M, false),
        run("gan_adam_v", ["G", "V"], ADAM_V, false),
      ];
    },
  });
  tf.registerKernel({
    kernelName: FUSED_SGD,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { p, g, inc } = inputs as Record<string, tf.TensorInfo>;
      const a = attrs as unknown as SgdAttrs;
      const gpu = backend as unknown as WebGpuBackend;
      const values = f32(a.momentum, a.lr);
      const run = (key: string, names: string[], code: string) =>
        gpu.runWebGPUProgram(
          elementwise(key, names, ["momentum", "lr"], code, p.shape),
          names.map((n) => ({ p, g, inc })[n.toLowerCase() as "p"]),
          "float32",
          values,
        );
      return [
        run("gan_sgd_p", ["P", "G", "Inc"], SGD_P),
        run("gan_sgd_inc", ["G", "Inc"], SGD_INC),
      ];
    },
  });
}
