/**
 * The WGSL convolution products (`lib/wgsl/conv_programs.ts`) against
 * tfjs-webgpu's kernels (Conv2D, Conv2DBackpropFilter,
 * Conv2DBackpropInput) at the shapes of `sngan`'s and `dcgan`'s layers:
 * for each, the largest difference from tfjs (relative to tfjs's largest
 * value), milliseconds a product and TFLOP/s (the convolution's 2 B OH OW
 * Cout size^2 Cin over the time).
 * A transposed convolution of G is the same three products as the D
 * convolution of the mirrored shape, so each geometry stands for both.
 * Each side is timed over as many runs as take about `--ms`
 * milliseconds (at least 3), waited for on the GPU's queue, with no
 * readback inside the timing; the WGSL products are timed as the step
 * would record them (only the weight gradient may split K).
 * One JSON line a product; `bench/gpu_check.ts` runs it as a part.
 *
 *     deno run -A bench/conv_kernels.ts [--batch 128] [--ms 30]
 *
 * @module
 */

import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import { Rng } from "../lib/random/rng.ts";
import {
  type ConvForm,
  type ConvGeometry,
  convGeometry,
  convProduct,
} from "../lib/wgsl/conv_programs.ts";
import { ConvProducts } from "../lib/wgsl/conv_products.ts";

/** A convolution of a preset: input side and channels, output channels, filter, stride. */
const LAYERS: [string, number, number, number, number, number][] = [
  ["sngan D1 / G2", 28, 1, 64, 4, 2],
  ["sngan D2 / G1", 14, 64, 128, 4, 2],
  ["dcgan D1 / G3", 28, 1, 64, 5, 2],
  ["dcgan D2 / G2", 14, 64, 128, 5, 2],
  ["dcgan G1", 7, 128, 256, 5, 1],
];

/** One product's figures. */
export interface ConvKernelRow {
  layer: string;
  form: ConvForm;
  batch: number;
  gflop: number;
  wgsl_ms: number;
  tfjs_ms: number;
  wgsl_tflops: number;
  tfjs_tflops: number;
  /** max |WGSL - tfjs| / max |tfjs|. */
  difference: number;
}

/** tfjs's kernel for a form, on the current backend. */
function tfjsKernel(
  form: ConvForm,
  g: ConvGeometry,
  a: tf.Tensor,
  b: tf.Tensor,
): tf.Tensor {
  const strides = [g.stride, g.stride], pad = "same" as const;
  const common = { strides, pad, dataFormat: "NHWC" };
  switch (form) {
    case "forward":
      return tf.engine().runKernel("Conv2D", { x: a, filter: b }, {
        ...common,
        dilations: [1, 1],
      }) as tf.Tensor;
    case "filterGrad":
      return tf.engine().runKernel("Conv2DBackpropFilter", { x: a, dy: b }, {
        ...common,
        filterShape: [g.size, g.size, g.inC, g.outC],
      }) as tf.Tensor;
    case "inputGrad":
      return tf.engine().runKernel(
        "Conv2DBackpropInput",
        { dy: a, filter: b },
        { ...common, inputShape: [g.batch, g.inH, g.inW, g.inC] },
      ) as tf.Tensor;
  }
}

/** tfjs-webgpu's backend, as far as waiting for its queue needs. */
interface QueuedBackend {
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  device: GPUDevice;
}

/**
 * Waits until the GPU has done everything tfjs has recorded: ends its open
 * pass and submits its encoder (as tfjs does before a readback), then
 * waits on the queue.
 */
async function tfjsDone(): Promise<void> {
  const backend = tf.backend() as unknown as QueuedBackend;
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  backend.submitQueue();
  await backend.device.queue.onSubmittedWorkDone();
}

/** Milliseconds a run of tfjs's kernel takes, over `reps` runs. */
async function timeTfjs(run: () => tf.Tensor, reps: number): Promise<number> {
  const outs: tf.Tensor[] = [];
  await tfjsDone();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) outs.push(run());
  await tfjsDone();
  const ms = (performance.now() - t0) / reps;
  tf.dispose(outs);
  return ms;
}

/** Runs enough for about `ms` of work, from a timing of 3. */
async function timed(
  time: (reps: number) => Promise<number>,
  ms: number,
): Promise<number> {
  const first = await time(3);
  const reps = Math.min(2000, Math.max(3, Math.ceil(ms / first)));
  return reps <= 3 ? first : await time(reps);
}

/**
 * Measures every product at `batch` on tfjs's current backend (WebGPU)
 * and on a WebGPU device of its own, each timed over about `ms`
 * milliseconds of runs; `log` gets each row as it is made; `signal`
 * stops it between products.
 */
export async function convKernels(
  o: {
    batch: number;
    ms: number;
    log?: (r: ConvKernelRow) => void;
    signal?: AbortSignal;
  },
): Promise<ConvKernelRow[]> {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    },
  });
  const rows: ConvKernelRow[] = [];
  try {
    using k = new ConvProducts(device, null, "auto");
    for (const [layer, side, inC, outC, size, stride] of LAYERS) {
      const g = convGeometry({
        batch: o.batch,
        inH: side,
        inW: side,
        inC,
        outC,
        size,
        stride,
        padding: "same",
      });
      const rng = new Rng(1, rows.length);
      const shapes = {
        x: [g.batch, g.inH, g.inW, g.inC],
        w: [g.size, g.size, g.inC, g.outC],
        y: [g.batch, g.outH, g.outW, g.outC],
      };
      const operands: Record<ConvForm, [number[], number[]]> = {
        forward: [shapes.x, shapes.w],
        filterGrad: [shapes.x, shapes.y],
        inputGrad: [shapes.y, shapes.w],
      };
      for (const form of ["forward", "filterGrad", "inputGrad"] as const) {
        o.signal?.throwIfAborted();
        const [sa, sb] = operands[form];
        const draw = (s: number[]) =>
          rng.fillNormal(new Float32Array(s.reduce((x, y) => x * y)));
        const a = draw(sa), b = draw(sb);
        const p = k.prepare(form, g, a, b);
        const got = await k.run(p);
        const ms = await timed((reps) => k.time(p, reps), o.ms);
        const ta = tf.tensor(a, sa), tb = tf.tensor(b, sb);
        const want = tfjsKernel(form, g, ta, tb);
        const w = await want.data();
        want.dispose();
        const tfjsMs = await timed(
          (reps) => timeTfjs(() => tfjsKernel(form, g, ta, tb), reps),
          o.ms,
        );
        tf.dispose([ta, tb]);
        let scale = 1e-30, diff = 0;
        for (let i = 0; i < w.length; i++) {
          scale = Math.max(scale, Math.abs(w[i]));
          diff = Math.max(diff, Math.abs(got[i] - w[i]));
        }
        // The convolution's multiply-adds, the same for its three products
        // (the input gradient's product also multiplies the zeros between
        // strided outputs: stride^2 times as many).
        const { M, N, K } = convProduct(g, "forward");
        const gflop = 2 * M * N * K / 1e9;
        const row: ConvKernelRow = {
          layer,
          form,
          batch: o.batch,
          gflop: Number(gflop.toFixed(4)),
          wgsl_ms: Number(ms.toFixed(4)),
          tfjs_ms: Number(tfjsMs.toFixed(4)),
          wgsl_tflops: Number((gflop / ms).toFixed(3)),
          tfjs_tflops: Number((gflop / tfjsMs).toFixed(3)),
          difference: Number((diff / scale).toExponential(2)),
        };
        rows.push(row);
        o.log?.(row);
      }
    }
  } finally {
    device.destroy();
  }
  return rows;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      batch: { type: "string", default: "128" },
      ms: { type: "string", default: "30" },
    },
  });
  await initBackend("webgpu");
  await convKernels({
    batch: Number(values.batch),
    ms: Number(values.ms),
    log: (r) => console.log(JSON.stringify(r)),
  });
}
