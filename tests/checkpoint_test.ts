import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import {
  CheckpointError,
  loadGenerator,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
} from "../lib/run/checkpoint.ts";
import { createGan, disposeGan, generate, generatorStep } from "../lib/gan.ts";
import { preset } from "../lib/presets.ts";
import { sampleLatent } from "../lib/nets/latent.ts";
import { Rng } from "../lib/random/rng.ts";

await initBackend("wasm");

const meta = {
  latentDim: 100,
  latent: "normal" as const,
  output: "tanh" as const,
  preset: "bn",
  dataset: "mnist",
  epochs: 1,
};

Deno.test("save/load round trip gives identical outputs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["bn", "paper"]) {
      const config = preset(name);
      const a = createGan(config, { seed: 1 });
      const z = tf.tensor2d(sampleLatent(config, 16, new Rng(5)), [16, 100]);
      // A few updates so that optimiser slots and BN statistics are non-trivial.
      for (let i = 0; i < 3; i++) {
        generatorStep(a, { noise: z, masks: i, epoch: 0 }).dispose();
      }
      await saveCheckpoint(dir, a, { epoch: 7 }, {
        tag: "007",
        generator: { ...meta, preset: name, output: config.output },
      });
      const b = createGan(config, { seed: 2 });
      const ck = await readCheckpoint<{ epoch: number }>(dir);
      assert.equal(ck.file.state.epoch, 7);
      restoreCheckpoint(b, ck);
      assert.equal(b.optimizerG.step, 3);
      for (
        const [va, vb] of [
          [a.generator.variables, b.generator.variables],
          [a.discriminator.variables, b.discriminator.variables],
          [a.optimizerG.slots, b.optimizerG.slots],
        ]
      ) {
        for (let i = 0; i < va.length; i++) {
          assert.deepEqual(await va[i].data(), await vb[i].data());
        }
      }
      const ya = await generate(a, z).data();
      assert.deepEqual(await generate(b, z).data(), ya);
      // The layers-format generator gives the same images.
      const loaded = await loadGenerator(dir);
      assert.equal(loaded.metadata.preset, name);
      const yl = await (loaded.model.predict(z) as tf.Tensor).data();
      yl.forEach((v, i) => assert.ok(Math.abs(v - ya[i]) < 1e-5));
      loaded.model.dispose();
      disposeGan(a);
      disposeGan(b);
    }
    // Only the latest binary files remain.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [
      "checkpoint-007.bin",
      "checkpoint.json",
      "generator",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("broken checkpoints give errors naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => readCheckpoint(dir),
      /checkpoint.json does not exist/,
    );
    const gan = createGan(preset("mlp"), { seed: 0 });
    await saveCheckpoint(dir, gan, {}, { tag: "001", generator: meta });
    const bin = `${dir}/checkpoint-001.bin`;
    const bytes = await Deno.readFile(bin);
    await Deno.writeFile(bin, bytes.subarray(0, 100));
    await assert.rejects(
      () => readCheckpoint(dir),
      (e: Error) =>
        e instanceof CheckpointError && /holds 100 bytes/.test(e.message),
    );
    await Deno.remove(bin);
    await assert.rejects(
      () => readCheckpoint(dir),
      /checkpoint-001.bin, named by .* is missing/,
    );
    await Deno.writeTextFile(`${dir}/checkpoint.json`, "{not json");
    await assert.rejects(() => readCheckpoint(dir), /is not valid JSON/);
    // A checkpoint of another architecture does not load silently.
    await saveCheckpoint(dir, gan, {}, { tag: "002", generator: meta });
    const other = createGan(preset("bn"), { seed: 0 });
    const ck = await readCheckpoint(dir);
    assert.throws(
      () => restoreCheckpoint(other, ck),
      /checkpoint does not fit this model: G\/0\/gamma is missing/,
    );
    await assert.rejects(
      () => loadGenerator(`${dir}/nowhere`),
      /no generator at/,
    );
    disposeGan(gan);
    disposeGan(other);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
