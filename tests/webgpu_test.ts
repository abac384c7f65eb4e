import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import {
  Optimizer,
  type OptimizerConfig,
  uniqueVariableName,
} from "../lib/nets/optim.ts";
import { Rng } from "../lib/random/rng.ts";
import {
  countGpuWork,
  FUSED_ADAM,
  FUSED_SGD,
  fusedUpdatesOn,
  setDirectUploads,
  setFusedUpdates,
} from "../lib/backends/webgpu_fusions.ts";

const probe = await probeWebGpu();

/**
 * Runs `steps` updates with fixed random gradients on two variables (one
 * matrix, one vector) and returns their final values and the kernels that
 * the last update ran.
 */
async function train(config: OptimizerConfig, fused: boolean, steps: number) {
  setFusedUpdates(fused);
  const rng = new Rng(9);
  const shapes = [[37, 19], [19]];
  const vars = shapes.map((s, i) =>
    tf.variable(
      tf.tensor(
        rng.fillUniform(new Float32Array(s[0] * (s[1] ?? 1)), -1, 1),
        s,
      ),
      true,
      uniqueVariableName(`w${i}`),
    )
  );
  const opt = new Optimizer(config, vars, "opt");
  let kernels: string[] = [];
  for (let i = 0; i < steps; i++) {
    const grads: tf.NamedTensorMap = {};
    for (const v of vars) {
      const g = rng.fillUniform(new Float32Array(v.size), -1, 1);
      grads[v.name] = tf.tensor(g, v.shape);
    }
    const profile = await tf.profile(() => opt.apply(grads, i));
    kernels = profile.kernels.map((k) => k.name);
    tf.dispose(Object.values(grads));
  }
  const values = await Promise.all(vars.map(async (v) => [...await v.data()]));
  opt.dispose();
  vars.forEach((v) => v.dispose());
  setFusedUpdates(true);
  return { values, kernels };
}

const CONFIGS: [string, OptimizerConfig][] = [
  ["Adam", { kind: "adam", lr: 0.01, beta1: 0.5, beta2: 0.999 }],
  ["SGD", {
    kind: "sgd",
    lr: 0.1,
    momentum: 0.5,
    finalMomentum: 0.7,
    momentumStart: 1,
    momentumSaturate: 4,
    lrDecay: 1.1,
  }],
];

Deno.test({
  name:
    "webgpu: fused optimiser updates equal the op chain, in one kernel call",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    assert.ok(fusedUpdatesOn());
    for (const [name, config] of CONFIGS) {
      const fused = await train(config, true, 6);
      const chain = await train(config, false, 6);
      // One fused kernel per variable, nothing else.
      const kernel = name === "Adam" ? FUSED_ADAM : FUSED_SGD;
      assert.deepEqual(fused.kernels, [kernel, kernel], name);
      assert.ok(chain.kernels.length >= 8, `${name}: ${chain.kernels}`);
      assert.ok(!chain.kernels.includes(kernel));
      fused.values.flat().forEach((v, i) => {
        const ref = chain.values.flat()[i];
        assert.ok(
          Math.abs(v - ref) <= 1e-6 * Math.max(1, Math.abs(ref)),
          `${name} [${i}]: fused ${v} vs op chain ${ref}`,
        );
      });
    }
  },
});

Deno.test("other backends have no fused updates and keep the op chain", async () => {
  await initBackend("wasm");
  assert.equal(fusedUpdatesOn(), false);
  const { kernels } = await train(CONFIGS[0][1], true, 1);
  assert.ok(!kernels.includes(FUSED_ADAM));
});

Deno.test({
  name:
    "webgpu: direct uploads carry every dtype's values, with no staging buffer",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    // tfjs runs small ops on CPU-resident data on the CPU: 2,000 values
    // make it upload.
    const n = 2000;
    const ramp = (f: (j: number) => number) =>
      Array.from({ length: n }, (_, j) => f(j));
    const check = async () => {
      const floats = ramp((j) => [1.5, -2, 3e-8, 1e30][j % 4]);
      const f = tf.neg(tf.tensor(floats, [n / 2, 2]));
      assert.deepEqual(
        Array.from(await f.data()),
        floats.map((v) => Math.fround(-v)),
      );
      const ints = ramp((j) => [1, -7, 2 ** 30][j % 3]);
      const i = tf.neg(tf.tensor(ints, [n], "int32"));
      assert.deepEqual(Array.from(await i.data()), ints.map((v) => -v));
      const bools = ramp((j) => j % 3).map((r) => r === 0);
      const b = tf.cast(tf.tensor(bools, [n], "bool"), "int32");
      assert.deepEqual(Array.from(await b.data()), bools.map(Number));
      // Many uploads queued before one read: pooled buffers are reused
      // between submissions, and each sum must see its own data.
      const sums = [];
      for (let k = 0; k < 40; k++) {
        const x = tf.tensor1d(ramp((j) => k + (j % 100)));
        sums.push(tf.sum(tf.mul(x, 2)));
        x.dispose();
      }
      const got = await Promise.all(sums.map(async (t) => (await t.data())[0]));
      got.forEach((v, k) => assert.equal(v, 2 * (n * k + 20 * 4950)));
      tf.dispose([f, i, b, ...sums]);
    };
    const direct = await countGpuWork(check);
    assert.equal(direct.staged, 0);
    assert.ok(direct.direct >= 43, `${direct.direct} direct uploads`);
    setDirectUploads(false);
    try {
      // tfjs's own path: a staging buffer per upload into a pooled buffer.
      const staged = await countGpuWork(check);
      assert.equal(staged.direct, 0);
      assert.ok(staged.staged >= 40, `${staged.staged} staging buffers`);
    } finally {
      setDirectUploads(true);
    }
  },
});
