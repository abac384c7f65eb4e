/**
 * Less work per training step on tfjs's WebGPU backend, where each dispatch
 * and each upload costs far more on the CPU than its arithmetic on the GPU
 * (see docs/speed.md):
 *
 * - Fused optimiser updates. Written with tfjs ops, Adam's update of one
 *   variable is 13 elementwise ops and 7 scalars that the backend uploads
 *   from the CPU one by one; for the `mlp` model that was 234 of a step's
 *   526 dispatches and 126 of its 171 uploads. Here Adam is three programs
 *   per variable (new m, new v, new parameter) and SGD two (new increment,
 *   new parameter), with the settings as uniforms: no upload at all. The
 *   arithmetic is `lib/nets/optim.ts`'s, in the same order, in float32.
 * - Direct uploads. tfjs uploads a CPU tensor by creating a mapped staging
 *   buffer, copying it with a command and ending the current compute pass;
 *   here the data goes with `queue.writeBuffer` into a buffer from tfjs's
 *   pool, as tfjs already does for its uniforms.
 *
 * `lib/backends/choice.ts` installs both when it starts WebGPU; other backends are
 * untouched. Each can be switched off to compare (`deno task bench
 * --fused off --uploads staged`).
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
 * Runs an elementwise program over `inputs` (all of one shape, named as the
 * keys): `code` is WGSL that sets `result_value` from the inputs' values at
 * the current index (as `let`s named in lower case) and from `uniforms`,
 * float32 values named as the keys.
 */
function runElementwise(
  backend: WebGpuBackend,
  key: string,
  inputs: Record<string, tf.TensorInfo>,
  uniforms: Record<string, number>,
  code: string,
): tf.TensorInfo {
  const names = Object.keys(inputs);
  const shape = inputs[names[0]].shape;
  const size = shape.reduce((a, b) => a * b, 1);
  const program: WebGpuProgram = {
    variableNames: names,
    outputShape: shape,
    shaderKey: key,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms: Object.keys(uniforms).map((u) => `${u} : f32,`).join(" "),
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${names.map((x) => `let ${x.toLowerCase()} = ${x}[index];`).join(" ")}
          ${code}
          setOutputAtIndex(index, result_value);
        }
      }`,
  };
  return backend.runWebGPUProgram(
    program,
    Object.values(inputs),
    "float32",
    Object.values(uniforms).map((d) => ({ type: "float32", data: [d] })),
  );
}

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
      const moments = {
        beta1: a.beta1,
        rest1: 1 - a.beta1,
        beta2: a.beta2,
        rest2: 1 - a.beta2,
      };
      const step = {
        ...moments,
        stepSize: a.stepSize,
        correction2: a.correction2,
        eps: a.eps,
      };
      return [
        runElementwise(
          gpu,
          "gan_adam_p",
          { P: p, G: g, M: m, V: v },
          step,
          ADAM_P,
        ),
        runElementwise(gpu, "gan_adam_m", { G: g, M: m }, moments, ADAM_M),
        runElementwise(gpu, "gan_adam_v", { G: g, V: v }, moments, ADAM_V),
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
      const u = { momentum: a.momentum, lr: a.lr };
      return [
        runElementwise(gpu, "gan_sgd_p", { P: p, G: g, Inc: inc }, u, SGD_P),
        runElementwise(gpu, "gan_sgd_inc", { G: g, Inc: inc }, u, SGD_INC),
      ];
    },
  });
}

// The parts of tfjs-backend-webgpu's backend used for uploads.
interface TensorData {
  values: ArrayLike<number> | null;
  dtype: string;
  shape: number[];
  resource: unknown;
  complexTensorInfos?: unknown;
}
interface UploadingBackend {
  uploadToGPU(dataId: tf.DataId): void;
  tensorMap: { get(dataId: tf.DataId): TensorData };
  bufferManager: {
    acquireBuffer(size: number, usage: number): GPUBuffer;
  };
  queue: GPUQueue;
  directUploads?: boolean;
}

let direct = true;

/** Turns direct uploads on or off (on by default), for comparisons. */
export function setDirectUploads(on: boolean): void {
  direct = on;
}

/**
 * Makes the current (WebGPU) backend upload CPU tensors with
 * `queue.writeBuffer` (once per backend). The buffer comes from tfjs's free
 * pool, where a buffer returns only once the commands that used it are
 * submitted, and a queue write runs before any command submitted after it,
 * so no recorded command can see the new data too early or too late.
 */
export function installDirectUploads(): void {
  const backend = tf.backend() as unknown as UploadingBackend;
  if (backend.directUploads !== undefined) return;
  backend.directUploads = true;
  const staged = backend.uploadToGPU.bind(backend);
  backend.uploadToGPU = (dataId: tf.DataId) => {
    const data = backend.tensorMap.get(dataId);
    if (
      !direct || data.resource != null || data.values == null ||
      data.values.length === 0 || data.complexTensorInfos != null ||
      !["float32", "int32", "bool"].includes(data.dtype)
    ) {
      return staged(dataId);
    }
    // float32 as is; int32 and bool as 32-bit integers, as tfjs stores them.
    const values = data.dtype === "float32"
      ? (data.values instanceof Float32Array
        ? data.values
        : Float32Array.from(data.values))
      : Int32Array.from(data.values);
    const buffer = backend.bufferManager.acquireBuffer(
      values.byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
        GPUBufferUsage.COPY_DST,
    );
    // (tfjs never backs tensor values with a SharedArrayBuffer)
    backend.queue.writeBuffer(buffer, 0, values as Float32Array<ArrayBuffer>);
    // Once uploaded, the values no longer live on the CPU (as in tfjs).
    data.values = null;
    data.resource = buffer;
  };
}

/** What a piece of work issued on WebGPU; see {@linkcode countGpuWork}. */
export interface GpuWorkCounts {
  /** Compute passes begun. */
  passes: number;
  /** Compute dispatches. */
  dispatches: number;
  /** Uploads through a new staging buffer each (tfjs's own way). */
  staged: number;
  /** Uploads by a queue write into a storage buffer (direct). */
  direct: number;
}

/**
 * Counts the compute passes, dispatches and CPU-to-GPU uploads that `work`
 * issues, by wrapping those WebGPU methods while it runs (for benchmarks and
 * tests; a no-op count where there is no WebGPU).
 */
export async function countGpuWork(
  work: () => Promise<void>,
): Promise<GpuWorkCounts> {
  const counts = { passes: 0, dispatches: 0, staged: 0, direct: 0 };
  if (typeof GPUDevice === "undefined") {
    await work();
    return counts;
  }
  const encoder = GPUCommandEncoder.prototype;
  const pass = GPUComputePassEncoder.prototype;
  const device = GPUDevice.prototype;
  const queue = GPUQueue.prototype;
  const saved = {
    beginComputePass: encoder.beginComputePass,
    dispatchWorkgroups: pass.dispatchWorkgroups,
    createBuffer: device.createBuffer,
    writeBuffer: queue.writeBuffer,
  };
  encoder.beginComputePass = function (...args) {
    counts.passes++;
    return saved.beginComputePass.apply(this, args);
  };
  pass.dispatchWorkgroups = function (...args) {
    counts.dispatches++;
    return saved.dispatchWorkgroups.apply(this, args);
  };
  device.createBuffer = function (descriptor) {
    if (descriptor.usage & GPUBufferUsage.MAP_WRITE) counts.staged++;
    return saved.createBuffer.call(this, descriptor);
  };
  queue.writeBuffer = function (buffer, ...rest) {
    if (buffer.usage & GPUBufferUsage.STORAGE) counts.direct++;
    // deno-lint-ignore no-explicit-any
    return (saved.writeBuffer as any).call(this, buffer, ...rest);
  };
  try {
    await work();
  } finally {
    encoder.beginComputePass = saved.beginComputePass;
    pass.dispatchWorkgroups = saved.dispatchWorkgroups;
    device.createBuffer = saved.createBuffer;
    queue.writeBuffer = saved.writeBuffer;
  }
  return counts;
}
