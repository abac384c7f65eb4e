/**
 * The GPU context of the WGSL step: the buffers it owns, uniform buffers,
 * compute pipelines compiled once per device (by WGSL source), bind groups
 * made once per dispatch, and the submission and read-back of work.
 *
 * @module
 */

import type { Binding } from "./programs.ts";

export const S = GPUBufferUsage.STORAGE;
export const COPY_DST = GPUBufferUsage.COPY_DST;
export const COPY_SRC = GPUBufferUsage.COPY_SRC;

/** One prepared program run: its pipeline, bind group and grid. */
export interface Dispatch {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  workgroups: [number, number] | [number, number, number];
}

/** Compiled programs per device, by WGSL source. */
const PIPELINES = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** Buffers, pipelines and dispatches on one GPU device. */
export class GpuContext implements Disposable {
  protected device: GPUDevice;
  protected buffers: GPUBuffer[] = [];
  protected transform: ((code: string) => string) | null;

  constructor(
    device: GPUDevice,
    transform: ((code: string) => string) | null,
  ) {
    this.device = device;
    this.transform = transform;
  }

  protected buffer(floats: number, usage = S | COPY_DST | COPY_SRC): GPUBuffer {
    const b = this.device.createBuffer({
      size: Math.max(16, floats * 4),
      usage,
    });
    this.buffers.push(b);
    return b;
  }

  /** A uniform buffer of up to 16 words (u32, or f32 where `floats`). */
  protected uniform(values: number[], floats: boolean[] = []): GPUBuffer {
    const b = this.buffer(16, GPUBufferUsage.UNIFORM | COPY_DST);
    const data = new ArrayBuffer(64);
    const u32 = new Uint32Array(data), f32 = new Float32Array(data);
    values.forEach((v, i) => floats[i] ? (f32[i] = v) : (u32[i] = v));
    this.device.queue.writeBuffer(b, 0, data);
    return b;
  }

  /**
   * The pipeline of `code`, whose bindings 0.. are of the given kinds (an
   * explicit layout: a program need not use every binding). Compiled once
   * per device, for every step made on it.
   */
  protected pipeline(code: string, kinds: Binding[]): GPUComputePipeline {
    if (this.transform) code = this.transform(code);
    let pipelines = PIPELINES.get(this.device);
    if (!pipelines) PIPELINES.set(this.device, pipelines = new Map());
    let p = pipelines.get(code);
    if (!p) {
      const layout = this.device.createBindGroupLayout({
        entries: kinds.map((kind, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: kind },
        })),
      });
      p = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({
          bindGroupLayouts: [layout],
        }),
        compute: {
          module: this.device.createShaderModule({ code }),
          entryPoint: "main",
        },
      });
      pipelines.set(code, p);
    }
    return p;
  }

  protected dispatch(
    code: string,
    kinds: Binding[],
    buffers: GPUBuffer[],
    workgroups: Dispatch["workgroups"],
  ): Dispatch {
    const pipeline = this.pipeline(code, kinds);
    const group = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });
    return { pipeline, group, workgroups };
  }

  /**
   * Workgroups of `size` (default 256) for `n` threads, in two dimensions
   * past 65,535.
   */
  protected grid(n: number, size = 256): [number, number] {
    const groups = Math.ceil(n / size);
    const x = Math.min(groups, 65535);
    return [x, Math.ceil(groups / x)];
  }

  protected dummyBuffer: GPUBuffer | null = null;

  protected dummy(): GPUBuffer {
    return this.dummyBuffer ??= this.buffer(4);
  }

  /** Writes `data` (4-byte values) into `buffer` from value `at` on. */
  protected upload(
    buffer: GPUBuffer,
    data: Float32Array | Uint32Array,
    at = 0,
  ): void {
    this.device.queue.writeBuffer(
      buffer,
      at * 4,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  protected submit(dispatches: Dispatch[]): void {
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const d of dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.group);
      const [x, y, z = 1] = d.workgroups;
      pass.dispatchWorkgroups(x, y, z);
    }
    pass.end();
    this.device.queue.submit([encoder.finish()]);
  }

  protected async read(
    buffer: GPUBuffer,
    offset: number,
    floats: number,
  ): Promise<Float32Array> {
    const staging = this.device.createBuffer({
      size: Math.max(16, floats * 4),
      usage: GPUBufferUsage.MAP_READ | COPY_DST,
    });
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, offset * 4, staging, 0, floats * 4);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out.subarray(0, floats);
  }

  /** Bytes of the GPU buffers it holds. */
  get gpuBytes(): number {
    return this.buffers.reduce((n, b) => n + b.size, 0);
  }

  /** Frees the GPU buffers. */
  dispose(): void {
    for (const b of this.buffers) b.destroy();
    this.buffers = [];
  }

  /** {@linkcode dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
