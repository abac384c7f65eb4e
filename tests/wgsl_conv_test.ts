import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { Rng } from "../lib/random/rng.ts";
import {
  type ConvForm,
  type ConvGeometry,
  convGeometry,
} from "../lib/wgsl/conv_programs.ts";
import { ConvProducts } from "../lib/wgsl/conv_products.ts";
import type { MatMulChoice } from "../lib/wgsl/plans.ts";

await initBackend("cpu");
const probe = await probeWebGpu();

/** One product of `form` on fresh buffers, run once. */
function product(
  k: ConvProducts,
  form: ConvForm,
  geometry: ConvGeometry,
  a: Float32Array,
  b: Float32Array,
  options: Parameters<ConvProducts["prepare"]>[4] = {},
): Promise<Float32Array> {
  return k.run(k.prepare(form, geometry, a, b, options));
}

/** Odd sizes: strides 1 and 2, both paddings, channels not a multiple of 4, batch 1. */
const CASES = [
  {
    batch: 2,
    inH: 7,
    inW: 9,
    inC: 3,
    outC: 5,
    size: 3,
    stride: 1,
    padding: "same",
  },
  {
    batch: 1,
    inH: 14,
    inW: 14,
    inC: 5,
    outC: 6,
    size: 4,
    stride: 2,
    padding: "same",
  },
  {
    batch: 3,
    inH: 9,
    inW: 8,
    inC: 2,
    outC: 7,
    size: 5,
    stride: 2,
    padding: "valid",
  },
  {
    batch: 2,
    inH: 6,
    inW: 5,
    inC: 1,
    outC: 3,
    size: 2,
    stride: 1,
    padding: "valid",
  },
  {
    batch: 1,
    inH: 7,
    inW: 7,
    inC: 6,
    outC: 1,
    size: 4,
    stride: 2,
    padding: "same",
  },
  // sngan's two D convolutions (and G's transposed ones) at batch 16.
  {
    batch: 16,
    inH: 28,
    inW: 28,
    inC: 1,
    outC: 64,
    size: 4,
    stride: 2,
    padding: "same",
  },
  {
    batch: 16,
    inH: 14,
    inW: 14,
    inC: 64,
    outC: 128,
    size: 4,
    stride: 2,
    padding: "same",
  },
] as const;

/**
 * The plans: 64 x 64 tiles, the step's own choice by shape (which puts a
 * product of at most 4 channels on the narrow program), 128 x 128 tiles,
 * and each tile with K split into runs of 16 (where a product may split).
 */
const PLANS: MatMulChoice[] = [
  "plain",
  "auto",
  { tile: 64, chunk: 16 },
  { tile: 128 },
  { tile: 128, chunk: 16 },
];

function close(got: Float32Array, want: Float32Array, what: string) {
  assert.equal(got.length, want.length, what);
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-6);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(got[i] - want[i]) <= 1e-5 * scale + 1e-6,
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

Deno.test("convolution geometry: tfjs's output sizes and padding", () => {
  for (const c of CASES) {
    const g = convGeometry(c);
    const y = tf.conv2d(
      tf.zeros([c.batch, c.inH, c.inW, c.inC]) as tf.Tensor4D,
      tf.zeros([c.size, c.size, c.inC, c.outC]) as tf.Tensor4D,
      c.stride,
      c.padding,
    );
    assert.deepEqual(y.shape, [c.batch, g.outH, g.outW, c.outC]);
    y.dispose();
  }
  // "same": the smaller half of the padding first (tfjs, TensorFlow).
  const g = convGeometry({ ...CASES[1] });
  assert.deepEqual([g.outH, g.padTop, g.padLeft], [7, 1, 1]);
  assert.throws(
    () => convGeometry({ ...CASES[2], inH: 4, padding: "valid" }),
    /does not fit 4 x 8 images/,
  );
});

Deno.test({
  name:
    "webgpu: a convolution's three products in WGSL equal tfjs's conv2d, its gradients and conv2dTranspose",
  ignore: !probe.ok,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize:
          adapter!.limits.maxStorageBufferBindingSize,
      },
    });
    const kernels = PLANS.map((p) => new ConvProducts(device, null, p));
    try {
      for (const [i, c] of CASES.entries()) {
        const g = convGeometry(c);
        const rng = new Rng(3, i);
        const draw = (n: number) => rng.fillNormal(new Float32Array(n));
        const xShape = [c.batch, c.inH, c.inW, c.inC] as const;
        const wShape = [c.size, c.size, c.inC, c.outC] as const;
        const yShape = [c.batch, g.outH, g.outW, c.outC] as const;
        const size = (s: readonly number[]) => s.reduce((a, b) => a * b);
        const x = draw(size(xShape)), w = draw(size(wShape));
        const dy = draw(size(yShape)), bias = draw(c.outC);
        const [xt, wt, dyt] = [
          tf.tensor4d(x, [...xShape]),
          tf.tensor4d(w, [...wShape]),
          tf.tensor4d(dy, [...yShape]),
        ];
        const conv = (a: tf.Tensor4D, b: tf.Tensor4D) =>
          tf.conv2d(a, b, c.stride, c.padding);
        const forward = tf.tidy(() =>
          tf.relu(tf.add(conv(xt, wt), tf.tensor1d(bias))).dataSync()
        ) as Float32Array;
        // Gradients of sum(conv(x, W) * dy).
        const [dx, dw] = tf.tidy(() =>
          tf.grads((a: tf.Tensor, b: tf.Tensor) =>
            tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), dyt))
          )([xt, wt]).map((t) => t.dataSync() as Float32Array)
        );
        // A transposed convolution of dy-shaped input to x-shaped output
        // is the input gradient's product.
        const up = c.padding === "same"
          ? tf.tidy(() =>
            tf.conv2dTranspose(
              dyt,
              wt,
              [c.batch, c.inH, c.inW, c.inC],
              c.stride,
              "same",
            ).dataSync()
          ) as Float32Array
          : null;
        const dBias = new Float64Array(c.outC);
        dy.forEach((v, i) => dBias[i % c.outC] += v);
        tf.dispose([xt, wt, dyt]);
        for (const [j, k] of kernels.entries()) {
          const what = `${JSON.stringify(c)}, ${JSON.stringify(PLANS[j])}`;
          // Forward, with the bias and a nonlinearity in the epilogue.
          const y = await product(k, "forward", g, x, w, {
            epilogue: { kind: "bias", act: "relu" },
            bias,
          });
          close(y, forward, `forward ${what}`);
          close(
            await product(k, "filterGrad", g, x, dy),
            dw,
            `filterGrad ${what}`,
          );
          // With a row of ones below the patches: dW, then the bias's
          // gradient, dy's sums over the batch and its pixels.
          close(
            await product(k, "filterGrad", g, x, dy, { onesRow: true }),
            Float32Array.from([...dw, ...dBias]),
            `filterGrad with the bias's gradient ${what}`,
          );
          // Split as well where the plan has a chunk: the gather of a
          // K-run that starts inside a filter window.
          const back = await product(k, "inputGrad", g, dy, w, {
            splittable: true,
          });
          close(back, dx, `inputGrad ${what}`);
          if (up) close(back, up, `conv2dTranspose ${what}`);
        }
      }
    } finally {
      for (const k of kernels) k[Symbol.dispose]();
      device.destroy();
    }
  },
});
