import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import {
  logicalName,
  Optimizer,
  uniqueVariableName,
} from "../lib/nets/optim.ts";

await initBackend("wasm");

const close = (a: number, b: number) =>
  assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `${a} != ${b}`);

/** Runs `steps` updates of f(p) = sum((p - target)^2) and returns p's history. */
async function run(opt: Optimizer, p: tf.Variable, steps: number, epoch = 0) {
  const out: number[][] = [];
  for (let i = 0; i < steps; i++) {
    const { grads } = tf.variableGrads(
      () => tf.sum(tf.square(tf.sub(p, tf.tensor1d([1, -2])))),
      [p],
    );
    opt.apply(grads, epoch);
    tf.dispose(Object.values(grads));
    out.push([...await p.data()]);
  }
  return out;
}

Deno.test("Adam follows the reference update (PyTorch's formula)", async () => {
  const p = tf.variable(tf.tensor1d([0.5, 0.3]), true, uniqueVariableName("p"));
  const cfg = { kind: "adam" as const, lr: 0.1, beta1: 0.5, beta2: 0.999 };
  const ours = await run(new Optimizer(cfg, [p], "opt"), p, 4);
  // Reference, written independently in plain numbers.
  let x = [0.5, 0.3], m = [0, 0], v = [0, 0];
  for (let t = 1; t <= 4; t++) {
    const g = [2 * (x[0] - 1), 2 * (x[1] + 2)];
    m = m.map((mi, i) => 0.5 * mi + 0.5 * g[i]);
    v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i] * g[i]);
    x = x.map((xi, i) =>
      xi -
      0.1 * (m[i] / (1 - 0.5 ** t)) /
        (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    );
    ours[t - 1].forEach((o, i) => close(o, x[i]));
  }
});

Deno.test("SGD with momentum, pylearn2's rule, decay and ramp", async () => {
  const p = tf.variable(tf.tensor1d([0.5, 0.3]), true, uniqueVariableName("q"));
  const cfg = {
    kind: "sgd" as const,
    lr: 0.1,
    momentum: 0.5,
    finalMomentum: 0.7,
    momentumStart: 1,
    momentumSaturate: 5,
    lrDecay: 1.5,
    minLr: 0.04,
  };
  const opt = new Optimizer(cfg, [p], "opt");
  assert.equal(opt.momentum(0), 0.5);
  close(opt.momentum(3), 0.6);
  assert.equal(opt.momentum(99), 0.7);
  const ours = await run(opt, p, 4, 3);
  let x = [0.5, 0.3], inc = [0, 0];
  for (let t = 0; t < 4; t++) {
    const lr = Math.max(0.1 / 1.5 ** t, 0.04);
    const g = [2 * (x[0] - 1), 2 * (x[1] + 2)];
    inc = inc.map((d, i) => 0.6 * d - lr * g[i]);
    x = x.map((xi, i) => xi + inc[i]);
    ours[t].forEach((o, i) => close(o, x[i]));
  }
  assert.equal(opt.step, 4);
  close(opt.learningRate(), 0.04);
});

Deno.test("variable names are unique per instance, logical names stable", () => {
  const a = tf.variable(tf.zeros([1]), true, uniqueVariableName("G/0/kernel"));
  const b = tf.variable(tf.zeros([1]), true, uniqueVariableName("G/0/kernel"));
  assert.notEqual(a.name, b.name);
  assert.equal(logicalName(a), "G/0/kernel");
  assert.equal(logicalName(b), "G/0/kernel");
});
