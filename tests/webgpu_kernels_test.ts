import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backend.ts";
import {
  Optimizer,
  type OptimizerConfig,
  uniqueVariableName,
} from "../lib/optim.ts";
import { Rng } from "../lib/rng.ts";
import {
  FUSED_ADAM,
  FUSED_SGD,
  fusedUpdatesOn,
  setFusedUpdates,
} from "../lib/webgpu_kernels.ts";

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
