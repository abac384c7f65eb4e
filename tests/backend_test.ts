import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  BackendError,
  initBackend,
  probeWebGpu,
} from "../lib/backends/choice.ts";
import { asMlp } from "../lib/nets/mlp.ts";
import {
  createGan,
  discriminatorStep,
  disposeGan,
  generatorStep,
} from "../lib/gan.ts";
import { preset } from "../lib/presets.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";
import { root } from "./run.ts";

Deno.test("unknown and unavailable backends are clear errors", async () => {
  await assert.rejects(
    () => initBackend("tpu" as never),
    /unknown backend "tpu"/,
  );
  const probe = await probeWebGpu();
  if (!probe.ok) {
    await assert.rejects(
      () => initBackend("webgpu"),
      (e: Error) =>
        e instanceof BackendError && /not available/.test(e.message),
    );
  }
});

Deno.test("auto says which backend and why; it skips a software adapter", async () => {
  const info = await initBackend("auto");
  assert.equal(tf.getBackend(), info.name);
  assert.ok(info.reason.length > 10);
  const probe = await probeWebGpu();
  if (!probe.ok || probe.fallback) {
    assert.equal(info.name, "wasm");
    assert.match(info.reason, /WebAssembly/);
  } else {
    assert.equal(info.name, "webgpu");
  }
});

/** One D step and one G step from a fixed seed; returns both losses. */
async function oneRound(
  backend: "cpu" | "wasm" | "wasm-noblas" | "webgpu",
  name: string,
) {
  if (backend === "wasm-noblas") await initBackend("wasm", { blas: false });
  else await initBackend(backend);
  const config = preset(name);
  config.batchSize = 16;
  const gan = createGan(config, { seed: 3 });
  const rng = new Rng(4);
  const real = tf.tensor2d(rng.fillUniform(new Float32Array(16 * 784), -1, 1), [
    16,
    784,
  ]);
  const z = tf.tensor2d(sampleLatent(config, 16, rng), [16, 100]);
  const d = discriminatorStep(gan, { real, noise: z, masks: 5, epoch: 0 });
  const g = generatorStep(gan, { noise: z, masks: 6, epoch: 0 });
  const out = [
    (await d.loss.data())[0],
    (await d.dReal.data())[0],
    (await g.data())[0],
  ];
  const w = await asMlp(gan.generator).layers[0].kernel.data();
  tf.dispose([real, z, g, ...Object.values(d)]);
  disposeGan(gan);
  return { out, w };
}

Deno.test("one training round agrees across backends (cpu, wasm with and without a BLAS, and webgpu when present)", async () => {
  const probe = await probeWebGpu();
  const backends = [
    "cpu",
    "wasm",
    "wasm-noblas",
    ...(probe.ok ? ["webgpu" as const] : []),
  ] as const;
  for (const name of ["mlp", "paper", "bn"]) {
    const ref = await oneRound("cpu", name);
    for (const b of backends.slice(1)) {
      const r = await oneRound(b, name);
      r.out.forEach((v, i) =>
        assert.ok(
          Math.abs(v - ref.out[i]) < 1e-4,
          `${name} ${b}: ${r.out} vs cpu ${ref.out}`,
        )
      );
      let maxDiff = 0;
      r.w.forEach((v, i) =>
        maxDiff = Math.max(maxDiff, Math.abs(v - ref.w[i]))
      );
      assert.ok(maxDiff < 1e-5, `${name} ${b}: G weights differ by ${maxDiff}`);
    }
  }
});

Deno.test("wasm: a clone shares its data, counts the reference and outlives the original", async () => {
  await initBackend("wasm");
  const backend = tf.backend() as unknown as {
    dataIdMap: { has(id: tf.DataId): boolean };
  };
  const before = tf.memory().numTensors;
  const x = tf.tensor1d([1, 2, 3]);
  const y = tf.clone(x);
  assert.equal(y.dataId, x.dataId); // shared, not copied
  x.dispose();
  assert.deepEqual(Array.from(await y.data()), [1, 2, 3]);
  y.dispose();
  // The last reference frees the data.
  assert.ok(!backend.dataIdMap.has(x.dataId));
  assert.equal(tf.memory().numTensors, before);
  // Gradients through saved (cloned) tensors are unchanged.
  const g = tf.grad((a: tf.Tensor) => tf.mul(a, a).sum())(tf.tensor1d([2, -3]));
  assert.deepEqual(Array.from(await g.data()), [4, -6]);
  g.dispose();
});

Deno.test("without XDG_RUNTIME_DIR, probing WebGPU prints no Mesa error and leaves no folder", async () => {
  const script = `
    import { probeWebGpu } from "${root}lib/backends/choice.ts";
    const probe = await probeWebGpu();
    console.log(JSON.stringify({ ok: probe.ok, dir: Deno.env.get("XDG_RUNTIME_DIR") }));
  `;
  const env = Object.fromEntries(
    ["PATH", "HOME", "DENO_DIR"].flatMap((k) => {
      const v = Deno.env.get(k);
      return v === undefined ? [] : [[k, v]];
    }),
  );
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    cwd: root,
    clearEnv: true,
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, stderr);
  const out = JSON.parse(new TextDecoder().decode(r.stdout).trim());
  assert.match(out.dir, /xdg-runtime-/);
  assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR/);
  assert.throws(() => Deno.statSync(out.dir), Deno.errors.NotFound);
});
