import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { createGan, disposeGan } from "../lib/gan.ts";
import { type LayerDesc, LayerNet } from "../lib/nets/layer_net.ts";
import { preset } from "../lib/presets.ts";
import { Rng } from "../lib/random/rng.ts";
import { LayerPasses } from "../lib/wgsl/layer_passes.ts";
import { layerBlocks } from "../lib/wgsl/layer_blocks.ts";
import { Kernels } from "../lib/wgsl/kernels.ts";
import { relativeDifference } from "../lib/wgsl/sn_weight.ts";

await initBackend("cpu");
const probe = await probeWebGpu();

/** The largest difference relative to the largest value of `want`. */
function difference(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  return relativeDifference(got, want);
}

Deno.test("layerBlocks: sngan's networks as blocks, and what they refuse", () => {
  const gan = createGan(preset("sngan"), { seed: 0 });
  try {
    const g = layerBlocks(gan.generator);
    assert.deepEqual(
      g.blocks.map((b) => [b.kind, !!b.bn, b.act, b.bias >= 0, !!b.sn]),
      [
        ["dense", true, "relu", false, false],
        ["conv2dTranspose", true, "relu", false, false],
        ["conv2dTranspose", false, "tanh", true, false],
      ],
    );
    // The layout is LayerNet.trainable's, variable by variable.
    assert.equal(g.offsets.length, gan.generator.trainable.length);
    assert.equal(
      g.size,
      gan.generator.trainable.reduce((n, v) => n + v.size, 0),
    );
    const d = layerBlocks(gan.discriminator);
    assert.deepEqual(
      d.blocks.map((b) => [b.kind, b.act, !!b.sn]),
      [
        ["conv2d", "leaky:0.1", true],
        ["conv2d", "leaky:0.1", true],
        ["dense", "linear", true],
      ],
    );
    // The transposed layer's mirrored convolution: from its 28 x 28 x 1
    // output back to its 14 x 14 x 64 input.
    const t = g.blocks[2].geometry!(3);
    assert.deepEqual([t.inH, t.inC, t.outH, t.outC], [28, 1, 14, 64]);
  } finally {
    disposeGan(gan);
  }
  // dcgan's D: dropout after each leaky ReLU.
  const dcgan = createGan(preset("dcgan"), { seed: 0 });
  try {
    assert.deepEqual(
      layerBlocks(dcgan.discriminator).blocks.map((b) => b.dropout),
      [{ rate: 0.3, seed: 1 }, { rate: 0.3, seed: 2 }, undefined],
    );
  } finally {
    disposeGan(dcgan);
  }
  // Dropout after tanh (its derivative is not the masked output's sign),
  // or after batch norm, is refused.
  for (
    const layers of [
      [{ kind: "dense", units: 4 }, { kind: "tanh" }, {
        kind: "dropout",
        rate: 0.5,
      }, { kind: "dense", units: 1 }],
      [{ kind: "dense", units: 4 }, { kind: "batchNorm" }, { kind: "relu" }, {
        kind: "dropout",
        rate: 0.5,
      }, { kind: "dense", units: 1 }],
    ] as LayerDesc[][]
  ) {
    const net = new LayerNet("T", 3, layers, new Rng(1, 1));
    try {
      assert.throws(
        () => layerBlocks(net),
        /dropout\) does not follow a weight layer and a ReLU/,
      );
    } finally {
      net.dispose();
    }
  }
});

/**
 * A network of every kind of block the passes run: dense with bias and a
 * nonlinearity, batch norm of both formulas over features and channels, a
 * convolution without bias, stride 1, odd channels, leaky ReLU of slope 0.2,
 * sigmoid.
 */
const MIXED: LayerDesc[] = [
  // No bias before batch norm: its gradient is 0 but for rounding.
  { kind: "dense", units: 5 * 5 * 3, bias: false },
  { kind: "batchNorm", divide: true },
  { kind: "leakyRelu", slope: 0.2 },
  { kind: "reshape", shape: [5, 5, 3] },
  { kind: "conv2d", filters: 6, size: 3, stride: 1, bias: false },
  { kind: "batchNorm", eps: 1e-5, momentum: 0.9 },
  { kind: "relu" },
  { kind: "conv2dTranspose", filters: 2, size: 3, stride: 2 },
  { kind: "sigmoid" },
  { kind: "flatten" },
  // No bias and no batch norm, but a nonlinearity: the epilogue's zeros.
  { kind: "dense", units: 9, bias: false },
  { kind: "relu" },
  { kind: "dense", units: 7, spectralNorm: true },
  { kind: "tanh" },
];

/**
 * One training forward and backward pass of `net` over `rows` examples on
 * the GPU and with tfjs (`LayerNet.apply`, its gradients), from the same
 * state: the output, each parameter's gradient, the input's gradient, the
 * batch statistics and running statistics, u, v and sigma.
 */
async function compare(
  device: GPUDevice,
  net: LayerNet,
  rows: number,
  seed: number,
): Promise<Record<string, number>> {
  // Dropout's masks from this seed on both sides.
  const masks = 77 + seed;
  const rng = new Rng(9, seed);
  const inputs = net.inputShape[0];
  const outputs = net.shapes[net.shapes.length - 1].reduce((a, b) => a * b);
  const x = rng.fillNormal(new Float32Array(rows * inputs));
  const r = rng.fillNormal(new Float32Array(rows * outputs));
  using k = new LayerPasses(device, net, { rows });
  await k.load(net);
  const input = k.allocate(rows * inputs);
  k.write(input, x);
  k.writeMaskSeeds(0, masks);
  k.run(k.forward({ input, moving: true }));
  const last = k.blocks[k.blocks.length - 1];
  const y = await k.readBuffer(k.acts()[k.blocks.length - 1], rows * outputs);
  // The gradient of sum(y * r) before the last nonlinearity, from y.
  const act = last.act;
  const delta = r.map((v, i) =>
    act === "tanh" ? v * (1 - y[i] * y[i]) : act === "linear" ? v : (() => {
      throw new Error(`the test has no derivative of ${act}`);
    })()
  );
  const deltaBuf = k.allocate(rows * outputs);
  k.write(deltaBuf, delta);
  // A pass without weight gradients (the other player's step) leaves the
  // gradients as they were, batch norm's included.
  k.run(
    k.backward({
      input,
      delta: deltaBuf,
      weights: false,
      below: { act: "linear", out: input },
    }).dispatches,
  );
  assert.ok((await k.readGrads()).every((g) => g.every((v) => v === 0)));
  const back = k.backward({
    input,
    delta: deltaBuf,
    weights: true,
    below: { act: "linear", out: input },
  });
  k.run(back.dispatches);
  const grads = await k.readGrads();
  const dx = await k.readBuffer(back.last, rows * inputs);
  const stats = await Promise.all(
    k.passes[0].stats.filter((s) => s).map((s) =>
      k.readBuffer(s!, s!.size / 4)
    ),
  );
  const moving = await Promise.all(
    k.moving.filter((s) => s).map((s) => k.readBuffer(s!, s!.size / 4)),
  );
  const sn = await k.readSpectralNorm();

  // tfjs: one training pass (one power iteration), its gradients.
  const xv = tf.variable(tf.tensor2d(x, [rows, inputs]));
  const rt = tf.tensor2d(r, [rows, outputs]);
  const batchStats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
  let yt: tf.Tensor | null = null;
  const { grads: tg } = tf.variableGrads(() => {
    const out = net.apply(xv, { training: true, batchStats, seed: masks });
    yt = tf.keep(out);
    for (const b of batchStats) [b.mean, b.variance].forEach((t) => tf.keep(t));
    return tf.sum(tf.mul(out, rt)) as tf.Scalar;
  }, [...net.trainable, xv]);
  net.updateMovingStats(batchStats);
  const d: Record<string, number> = {
    output: difference(y, yt!.dataSync()),
    input: difference(dx, tg[xv.name].dataSync()),
  };
  net.trainable.forEach((v, i) => {
    d[v.name] = difference(grads[i], tg[v.name].dataSync());
  });
  let s = 0;
  for (const [i, b] of k.blocks.entries()) {
    if (b.bn) {
      const bn = net.vars[b.bn.layer];
      const { mean, variance } = batchStats[s];
      d[`stats ${i}`] = difference(stats[s], [
        ...mean.dataSync(),
        ...variance.dataSync(),
      ]);
      d[`moving ${i}`] = difference(moving[s], [
        ...bn.movingMean!.dataSync(),
        ...bn.movingVar!.dataSync(),
      ]);
      s++;
    }
  }
  let j = 0;
  for (const [i, b] of k.blocks.entries()) {
    if (!b.sn) continue;
    const state = net.vars[b.layer].sn!;
    d[`u ${i}`] = difference(sn[j].u, state.u.dataSync());
    d[`v ${i}`] = difference(sn[j].v, state.v.dataSync());
    j++;
  }
  tf.dispose([xv, rt, yt!, ...Object.values(tg)]);
  for (const { mean, variance } of batchStats) tf.dispose([mean, variance]);
  return d;
}

Deno.test({
  name:
    "webgpu: the WGSL passes of sngan's, sngan-fc's and dcgan's networks and a mixed network equal tfjs's forward pass and gradients",
  ignore: !probe.ok,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize:
          adapter!.limits.maxStorageBufferBindingSize,
      },
    });
    try {
      const cases: [string, () => { net: LayerNet; done: () => void }][] = [
        ...["sngan"].flatMap((
          name,
        ): [string, () => { net: LayerNet; done: () => void }][] => [
          [`${name} G`, () => {
            const gan = createGan(preset(name), { seed: 1 });
            return { net: gan.generator, done: () => disposeGan(gan) };
          }],
          [`${name} D`, () => {
            const gan = createGan(preset(name), { seed: 1 });
            return { net: gan.discriminator, done: () => disposeGan(gan) };
          }],
        ]),
        // sngan-fc: a dense 1024 layer with batch norm over features in G,
        // and in D a spectrally normalised weight of 6.4 million values.
        ["sngan-fc G", () => {
          const gan = createGan(preset("sngan-fc"), { seed: 1 });
          return { net: gan.generator, done: () => disposeGan(gan) };
        }],
        ["sngan-fc D", () => {
          const gan = createGan(preset("sngan-fc"), { seed: 1 });
          return { net: gan.discriminator, done: () => disposeGan(gan) };
        }],
        // dcgan's D: 5 x 5 convolutions, dropout after each leaky ReLU.
        ["dcgan D", () => {
          const gan = createGan(preset("dcgan"), { seed: 1 });
          return { net: gan.discriminator, done: () => disposeGan(gan) };
        }],
        ["dcgan G", () => {
          const gan = createGan(preset("dcgan"), { seed: 1 });
          return { net: gan.generator, done: () => disposeGan(gan) };
        }],
        ["mixed", () => {
          const net = new LayerNet("T", 11, MIXED, new Rng(4, 0));
          return { net, done: () => net.dispose() };
        }],
      ];
      for (const [i, [what, make]] of cases.entries()) {
        const { net, done } = make();
        try {
          const d = await compare(device, net, 3, i);
          for (const [key, value] of Object.entries(d)) {
            assert.ok(value < 1e-4, `${what}, ${key}: ${value}`);
          }
        } finally {
          done();
        }
      }
    } finally {
      device.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: D's two passes of a step (real, then generated), each with its own power iteration, equal tfjs's two D calls",
  ignore: !probe.ok,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    const gan = createGan(preset("sngan"), { seed: 2 });
    try {
      const net = gan.discriminator, B = 3;
      const rng = new Rng(9, 7);
      const x = rng.fillNormal(new Float32Array(2 * B * 784));
      const r = rng.fillNormal(new Float32Array(2 * B));
      // Slots as a step would use them: the state between rounds in slot
      // 2, the real pass in 0 (from 2), the generated one in 1 (from 0).
      using k = new LayerPasses(device, net, { rows: B, slots: 3 });
      await k.load(net, 2);
      const input = k.allocate(2 * B * 784);
      k.write(input, x);
      const delta = k.allocate(2 * B);
      k.write(delta, r);
      const other = k.allocate(k.size);
      // delta's rows of the generated pass follow the real ones: the
      // generated pass reads them from a copy of its own.
      const deltaFake = k.allocate(B);
      k.write(deltaFake, r.slice(B));
      const real = k.backward({
        input,
        delta,
        slot: 0,
        weights: true,
        below: { act: "linear", out: input },
      });
      const fake = k.backward({
        input,
        inOff: B * 784,
        delta: deltaFake,
        slot: 1,
        grads: other,
        weights: true,
        below: { act: "linear", out: input, outOff: B * 784 },
      });
      k.run([
        ...k.forward({ input, slot: 0, from: 2 }),
        ...k.forward({ input, inOff: B * 784, slot: 1, from: 0 }),
        ...real.dispatches,
      ]);
      const dxReal = await k.readBuffer(real.last, B * 784);
      k.run(fake.dispatches);
      const dxFake = await k.readBuffer(fake.last, B * 784);
      const [g1, g2] = [await k.readGrads(), await k.readGrads(other)];
      const sn = await k.readSpectralNorm(1);
      // tfjs: D on the real rows, then on the generated ones.
      const xr = tf.variable(tf.tensor2d(x.slice(0, B * 784), [B, 784]));
      const xf = tf.variable(tf.tensor2d(x.slice(B * 784), [B, 784]));
      const rt = [r.slice(0, B), r.slice(B)].map((v) => tf.tensor2d(v, [B, 1]));
      const { grads } = tf.variableGrads(() =>
        tf.add(
          tf.sum(tf.mul(net.apply(xr, { training: true }), rt[0])),
          tf.sum(tf.mul(net.apply(xf, { training: true }), rt[1])),
        ) as tf.Scalar, [...net.trainable, xr, xf]);
      net.trainable.forEach((v, i) => {
        const sum = g1[i].map((g, j) => g + g2[i][j]);
        const d = difference(sum, grads[v.name].dataSync());
        assert.ok(d < 1e-4, `${v.name}: ${d}`);
      });
      assert.ok(difference(dxReal, grads[xr.name].dataSync()) < 1e-4);
      assert.ok(difference(dxFake, grads[xf.name].dataSync()) < 1e-4);
      let j = 0;
      for (const b of k.blocks) {
        if (!b.sn) continue;
        const state = net.vars[b.layer].sn!;
        assert.ok(difference(sn[j].u, state.u.dataSync()) < 1e-4, "u");
        assert.ok(difference(sn[j].v, state.v.dataSync()) < 1e-4, "v");
        j++;
      }
      // Two iterations differ from one: the slots are not a no-op.
      const first = await k.readSpectralNorm(0);
      assert.ok(difference(first[0].u, sn[0].u) > 1e-3);
      tf.dispose([xr, xf, ...rt, ...Object.values(grads)]);
    } finally {
      disposeGan(gan);
      device.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: sngan's passes take 19 dispatches for D's step and 27 for G's, before the losses and optimisers",
  ignore: !probe.ok,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    const gan = createGan(preset("sngan"), { seed: 0 });
    try {
      const B = 16;
      using g = new LayerPasses(device, gan.generator, { rows: B });
      using d = new LayerPasses(device, gan.discriminator, { rows: 2 * B });
      const x = g.allocate(1);
      const count = (list: unknown[]) => list.length;
      // G: dense, batch norm (statistics, normalisation), two transposed
      // convolutions, the first with batch norm; the running statistics
      // updated by the statistics' programs of G's own step.
      const gForward = count(g.forward({ input: x }));
      assert.equal(count(g.forward({ input: x, moving: true })), gForward);
      const gBackward = count(
        g.backward({ input: x, delta: g.deltas[0], weights: true })
          .dispatches,
      );
      // D: one power iteration for its three layers, then their products.
      const dForward = count(d.forward({ input: x }));
      // Each layer's weight gradient with its bias's, and one dispatch for
      // the three gradients through sigma.
      const dBackward = count(
        d.backward({ input: x, delta: d.deltas[0], weights: true })
          .dispatches,
      );
      const throughD = count(
        d.backward({
          input: x,
          delta: d.deltas[0],
          weights: false,
          rows: B,
          below: { act: "tanh", out: x },
        }).dispatches,
      );
      assert.deepEqual(
        [gForward, gBackward, dForward, dBackward, throughD],
        [7, 13, 4, 8, 3],
      );
      assert.equal(gForward + dForward + dBackward, 19);
      assert.equal(gForward + dForward + throughD + gBackward, 27);
    } finally {
      disposeGan(gan);
      device.destroy();
    }
  },
});

/** Column sums on their own buffers. */
class ColumnSums extends Kernels {
  async sum(a: Float32Array, M: number, N: number): Promise<Float32Array> {
    const [x, c] = [this.buffer(a.length), this.buffer(N)];
    this.upload(x, a);
    const partial = this.buffer(Math.ceil(M / 256) * N);
    this.submit(this.colSum({ M, N, a: x, c, cOff: 0, partial }));
    return await this.read(c, 0, N);
  }
}

Deno.test({
  name:
    "webgpu: column sums past 65,536 rows (G's last bias at batch 128 sums 100,352 rows)",
  ignore: !probe.ok,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    try {
      using k = new ColumnSums(device, null, "plain");
      for (const [M, N] of [[300, 5], [100352, 1], [300000, 3]]) {
        const a = new Rng(2, M).fillNormal(new Float32Array(M * N));
        const want = new Float64Array(N);
        for (let i = 0; i < a.length; i++) want[i % N] += a[i];
        const got = await k.sum(a, M, N);
        for (let n = 0; n < N; n++) {
          assert.ok(
            Math.abs(got[n] - want[n]) < 1e-5 * Math.sqrt(M) + 1e-4,
            `${M} x ${N}, column ${n}: ${got[n]} vs ${want[n]}`,
          );
        }
      }
    } finally {
      device.destroy();
    }
  },
});
