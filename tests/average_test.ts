import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import {
  averageGenerators,
  checkAverageOut,
  saveAveragedGenerator,
} from "../lib/run/average.ts";
import {
  CheckpointError,
  epochsText,
  loadGenerator,
  saveGenerator,
} from "../lib/run/checkpoint.ts";
import { createGan, disposeGan, generatorModel } from "../lib/gan.ts";
import { preset } from "../lib/presets.ts";
import {
  loadLayersModelFile,
  QUANTIZE_MIN_SIZE,
  saveLayersModel,
} from "../lib/io/layers_model.ts";
import { parseEpochList } from "../cli/average.ts";
import { loadDataset } from "../lib/data.ts";
import { exists } from "../lib/io/files.ts";
import { train } from "../lib/train.ts";
import { runCli } from "./run.ts";
import { tinyOptions } from "./tiny.ts";

await initBackend("wasm");

const meta = (name: string, epochs: number) => ({
  latentDim: 100,
  latent: "normal" as const,
  output: preset(name).output,
  preset: name,
  dataset: "mnist",
  epochs,
});

Deno.test("uint8 weights: each large weight within half a level, small ones exact, a quarter of the bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gan = createGan(preset("bn"), { seed: 3 });
    const model = generatorModel(gan.generator);
    await saveLayersModel(`${dir}/f32`, model, { metadata: {} });
    await saveLayersModel(`${dir}/u8`, model, {
      metadata: {},
      quantize: "uint8",
    });
    const json = JSON.parse(await Deno.readTextFile(`${dir}/u8/model.json`));
    const specs = json.weightsManifest[0].weights;
    const original = model.getWeights();
    const loaded = await loadLayersModelFile(`${dir}/u8/model.json`);
    assert.ok(loaded.verified);
    const back = loaded.model.getWeights();
    let quantized = 0;
    let bytes = 0;
    for (let i = 0; i < original.length; i++) {
      const a = original[i].dataSync();
      const b = back[i].dataSync();
      const q = specs[i].quantization;
      bytes += a.length * (q ? 1 : 4);
      if (a.length > QUANTIZE_MIN_SIZE) {
        quantized++;
        assert.equal(q.dtype, "uint8");
        let min = Infinity, max = -Infinity;
        for (const v of a) [min, max] = [Math.min(min, v), Math.max(max, v)];
        assert.ok(
          Math.abs(q.min - min) < 1e-7 &&
            Math.abs(q.scale - (max - min) / 255) < 1e-9,
        );
        for (let j = 0; j < a.length; j++) {
          assert.ok(
            Math.abs(a[j] - b[j]) <= q.scale / 2 + 1e-6,
            `${specs[i].name}[${j}]`,
          );
        }
      } else {
        assert.equal(q, undefined);
        assert.deepEqual(b, a);
      }
    }
    assert.ok(
      quantized >= 3,
      "bn's G has at least three weights over the size",
    );
    const size = (d: string) =>
      [...Deno.readDirSync(d)].filter((e) => e.name.endsWith(".bin"))
        .reduce((n, e) => n + Deno.statSync(`${d}/${e.name}`).size, 0);
    assert.equal(size(`${dir}/u8`), bytes);
    assert.ok(size(`${dir}/u8`) < size(`${dir}/f32`) / 3.5);
    // A truncated 8-bit file is named as such, like a float32 one.
    const w = await Deno.readFile(`${dir}/u8/weights.bin`);
    await Deno.writeFile(`${dir}/u8/weights.bin`, w.subarray(0, w.length - 10));
    json.userDefinedMetadata.sha256 = {};
    await Deno.writeTextFile(`${dir}/u8/model.json`, JSON.stringify(json));
    await assert.rejects(
      loadLayersModelFile(`${dir}/u8/model.json`),
      /holds \d+ bytes, .* expects \d+: truncated/,
    );
    model.dispose();
    loaded.model.dispose();
    disposeGan(gan);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("averaging generators: every weight the mean, batch norm's statistics included; others refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gans = [1, 2, 3].map((seed) => createGan(preset("bn"), { seed }));
    // A fresh G's running statistics are 0 and 1 in every G: make them differ.
    for (const [i, gan] of gans.entries()) {
      for (const v of gan.generator.variables) {
        if (/moving_(mean|variance)$/.test(v.name)) {
          v.assign(tf.randomUniform(v.shape, 0.5, 2, "float32", i + 7));
        }
      }
    }
    for (const [i, gan] of gans.entries()) {
      await saveGenerator(
        `${dir}/e${i + 1}`,
        gan,
        meta("bn", i + 1),
        `00${i + 1}`,
      );
    }
    const loaded = await Promise.all(
      [1, 2, 3].map((e) => loadGenerator(`${dir}/e${e}`)),
    );
    const expected = loaded[0].model.getWeights().map((_, i) => {
      const values = loaded.map((g) => g.model.getWeights()[i].dataSync());
      return values[0].map((_, j) =>
        (values[0][j] + values[1][j] + values[2][j]) / 3
      );
    });
    const avg = await averageGenerators([1, 2, 3].map((e) => `${dir}/e${e}`));
    assert.deepEqual(avg.metadata.averagedEpochs, [1, 2, 3]);
    assert.equal(epochsText(avg.metadata), "the mean of epochs 1-3");
    assert.equal(
      epochsText({ ...avg.metadata, averagedEpochs: [2, 4] }),
      "the mean of epochs 2, 4",
    );
    assert.equal(epochsText(meta("bn", 7)), "7 epochs");
    assert.equal(avg.metadata.epochs, 3);
    assert.equal(avg.metadata.preset, "bn");
    const names = avg.model.weights.map((w) => w.originalName);
    assert.ok(names.some((n) => n.endsWith("moving_variance")), names.join());
    const got = avg.model.getWeights().map((w) => w.dataSync());
    assert.equal(got.length, expected.length);
    for (let i = 0; i < got.length; i++) {
      for (let j = 0; j < got[i].length; j++) {
        assert.ok(Math.abs(got[i][j] - expected[i][j]) < 1e-6);
      }
    }
    // It samples: images in tanh's range.
    const y = avg.model.predict(
      tf.randomNormal([4, 100], 0, 1, "float32", 1),
    ) as tf.Tensor;
    assert.equal(y.shape[0], 4);
    assert.ok((await y.data()).every((v) => v >= -1 && v <= 1));
    y.dispose();
    avg.model.dispose();
    for (const g of loaded) g.model.dispose();

    await assert.rejects(
      averageGenerators([`${dir}/e1`]),
      /at least two generators, got 1/,
    );
    await assert.rejects(
      averageGenerators([`${dir}/e1`, `${dir}/nothing`]),
      (e) =>
        e instanceof CheckpointError &&
        /no generator at .*nothing/.test(e.message),
    );
    const other = createGan(preset("mlp"), { seed: 1 });
    await saveGenerator(`${dir}/mlp`, other, meta("mlp", 1));
    await assert.rejects(
      averageGenerators([`${dir}/e1`, `${dir}/mlp`]),
      /not generators of one run: preset mlp against bn/,
    );
    // Metadata that agrees over networks that do not (a file edited by hand).
    await saveGenerator(`${dir}/posing`, other, meta("bn", 1));
    await assert.rejects(
      averageGenerators([`${dir}/e1`, `${dir}/posing`]),
      /are not the same network: weights 100x128, /,
    );
    disposeGan(other);
    for (const g of gans) disposeGan(g);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseEpochList: ranges and lists, at least two epochs", () => {
  assert.deepEqual(parseEpochList("10-12,14"), [10, 11, 12, 14]);
  assert.deepEqual(parseEpochList("3,1,3"), [1, 3]);
  for (const bad of ["", "5", "0-3", "4-2", "a-b", "1-", "1,,2"]) {
    assert.throws(() => parseEpochList(bad), /--epochs must/, bad);
  }
});

Deno.test("train --keep-generators, then average: a sampled, quantized generator; missing epochs named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/run`;
    const t = await runCli("train.ts", [
      "--limit",
      "128",
      "--epochs",
      "2",
      "--batch-size",
      "32",
      "--preset",
      "mlp",
      "--backend",
      "wasm",
      "--out",
      out,
      "--keep-generators",
    ]);
    assert.equal(t.code, 0, t.stderr);
    for (const e of ["001", "002"]) {
      const g = await loadGenerator(`${out}/generators/epoch_${e}`);
      assert.equal(g.metadata.epochs, Number(e));
      g.model.dispose();
    }
    const a = await runCli("average.ts", [
      "--run",
      out,
      "--epochs",
      "1-2",
      "--out",
      `${dir}/avg`,
      "--quantize",
      "uint8",
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(
      a.stderr,
      /the mean of mlp's generators of epochs 1, 2 .*8-bit weights/,
    );
    const s = await runCli("sample.ts", [
      "--checkpoint",
      `${dir}/avg`,
      "--n",
      "16",
      "--out",
      `${dir}/avg.png`,
      "--backend",
      "wasm",
    ]);
    assert.equal(s.code, 0, s.stderr);
    // Written over a generator folder, the old weights file goes, other files stay.
    await Deno.mkdir(`${dir}/over`);
    for (const f of ["model.json", "weights-002.bin"]) {
      await Deno.copyFile(
        `${out}/generators/epoch_002/${f}`,
        `${dir}/over/${f}`,
      );
    }
    await Deno.writeTextFile(`${dir}/over/notes.txt`, "mine");
    await Deno.writeTextFile(`${dir}/over/eval.json`, '{"fid": 1}');
    const overArgs = ["--run", out, "--epochs", "1,2", "--out", `${dir}/over`];
    const refused = await runCli("average.ts", overArgs);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /over holds a generator already \(mlp on mnist, 2 epochs\); pass --overwrite/,
    );
    const o = await runCli("average.ts", [...overArgs, "--overwrite"]);
    assert.equal(o.code, 0, o.stderr);
    assert.match(
      o.stderr,
      /removed weights-002.bin, eval.json, of the old one/,
    );
    const names = [...Deno.readDirSync(`${dir}/over`)].map((e) => e.name);
    assert.deepEqual(names.filter((n) => !n.startsWith("weights-")).sort(), [
      "model.json",
      "notes.txt",
    ]);
    assert.equal(
      names.filter((n) => /^weights-[0-9a-f]{16}\.bin$/.test(n)).length,
      1,
    );
    assert.equal(names.length, 3);
    assert.match(s.stderr, /mlp on mnist, the mean of epochs 1, 2\)/);
    const missing = await runCli("average.ts", [
      "--run",
      out,
      "--epochs",
      "1-3",
      "--out",
      `${dir}/avg2`,
    ]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /has no generator of epoch 3 .*it keeps epochs 1, 2/,
    );
    const none = await runCli("average.ts", [
      "--run",
      dir,
      "--epochs",
      "1-2",
      "--out",
      `${dir}/avg2`,
    ]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /train with --keep-generators/);
    const bad = await runCli("average.ts", [
      "--run",
      out,
      "--epochs",
      "2",
      "--out",
      `${dir}/x`,
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /at least two epochs/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("average writes only where it may: never into the run, over other files, or a generator without --overwrite; one run only", async () => {
  const dir = await Deno.makeTempDir();
  const mnist = await loadDataset("mnist", { log: () => {} });
  const options = tinyOptions(mnist, { limit: 96, keepGenerators: true });
  const trained = async (out: string, seed: number, epochs = 3) => {
    const r = await train(options({ outDir: out, seed, epochs }));
    assert.equal(r.status, "completed");
    disposeGan(r.gan);
  };
  const average = (...args: string[]) => runCli("average.ts", args);
  const listing = (d: string) =>
    [...Deno.readDirSync(d)].map((e) => e.name).sort();
  try {
    const run = `${dir}/run`;
    await trained(run, 1);
    const ok = ["--run", run, "--epochs", "1-3"];
    // Inside or above the run folder: its inputs and its own outputs.
    for (
      const out of [
        `${run}/generators/epoch_002`,
        `${run}/generator`,
        run,
        `${run}/avg`,
        dir,
      ]
    ) {
      const before = exists(out) ? listing(out) : null;
      const r = await average(...ok, "--out", out, "--overwrite");
      assert.equal(r.code, 1, out);
      assert.match(r.stderr, /(inside|above) the run folder .*--out .*run-avg/);
      assert.deepEqual(exists(out) ? listing(out) : null, before);
    }
    const empty = await average(...ok, "--out", "");
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /--out is empty/);
    // A folder of other files, another TF.js model: refused, untouched.
    await Deno.mkdir(`${dir}/mine`);
    await Deno.writeTextFile(`${dir}/mine/notes.txt`, "mine");
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(
      `${dir}/other/model.json`,
      JSON.stringify({
        modelTopology: {},
        weightsManifest: [{ paths: ["group1-shard1of1.bin"], weights: [] }],
      }),
    );
    await Deno.writeFile(
      `${dir}/other/group1-shard1of1.bin`,
      new Uint8Array(8),
    );
    for (
      const [out, why] of [
        ["mine", /holds other files \(notes.txt\)/],
        ["other", /not a generator saved by this project/],
      ] as const
    ) {
      const before = listing(`${dir}/${out}`);
      const r = await average(...ok, "--out", `${dir}/${out}`, "--overwrite");
      assert.equal(r.code, 1);
      assert.match(r.stderr, why);
      assert.deepEqual(listing(`${dir}/${out}`), before);
    }
    // Epoch lists are bounded before any list is made.
    const started = performance.now();
    const huge = await average(
      "--run",
      run,
      "--epochs",
      "1-20000000",
      "--out",
      `${dir}/a`,
    );
    assert.equal(huge.code, 2);
    assert.match(huge.stderr, /up to 10000 at most/);
    assert.ok(huge.stderr.length < 4000, `${huge.stderr.length} characters`);
    assert.ok(performance.now() - started < 30000);
    const missing = await average(
      "--run",
      run,
      "--epochs",
      "2-9000",
      "--out",
      `${dir}/a`,
    );
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /no generator of epoch 4-9000 .*keeps epochs 1, 2, 3/,
    );

    // One run only: a generator copied in from another run, or an epoch's
    // folder holding another epoch's generator, is refused by name.
    const other = `${dir}/other-run`;
    await trained(other, 2, 2);
    await Deno.remove(`${run}/generators/epoch_002`, { recursive: true });
    await copyFolder(
      `${other}/generators/epoch_002`,
      `${run}/generators/epoch_002`,
    );
    let r = await average(...ok, "--out", `${dir}/a`);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /epoch_002\/model.json and .*epoch_001\/model.json are not generators of one run: run /,
    );
    await Deno.remove(`${run}/generators/epoch_002`, { recursive: true });
    await copyFolder(
      `${run}/generators/epoch_003`,
      `${run}/generators/epoch_002`,
    );
    r = await average(...ok, "--out", `${dir}/a`);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /is the generator of epoch 3 by its metadata, not of epoch 2/,
    );
    assert.equal(exists(`${dir}/a`), false);

    // A new run in the folder removes the old run's kept generators.
    await Deno.remove(`${other}/checkpoint.json`);
    const logs: string[] = [];
    const again = await train(options({
      outDir: other,
      seed: 3,
      epochs: 1,
      log: (m) => logs.push(m),
    }));
    disposeGan(again.gan);
    assert.match(
      logs.join("\n"),
      /removed the generators of epoch\(s\) 1, 2 .*kept by an earlier run/,
    );
    assert.deepEqual(listing(`${other}/generators`), ["epoch_001"]);
    const g = await loadGenerator(`${other}/generators/epoch_001`);
    assert.equal(g.metadata.seed, 3);
    assert.match(g.metadata.run ?? "", /^[0-9a-f-]{36}$/);
    g.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an average stopped between its weights and its model.json leaves the old generator whole", async () => {
  const dir = await Deno.makeTempDir();
  const mnist = await loadDataset("mnist", { log: () => {} });
  try {
    const run = `${dir}/run`;
    const r = await train(
      tinyOptions(mnist, { limit: 96, keepGenerators: true })({
        outDir: run,
        epochs: 3,
      }),
    );
    disposeGan(r.gan);
    const out = `${dir}/avg`;
    const kept = (epochs: number[]) =>
      epochs.map((e) => `${run}/generators/epoch_00${e}`);
    // Stopped in a new folder, it leaves weights alone; the next one
    // writes there without --overwrite and clears them.
    await Deno.mkdir(out);
    const blocker = `${out}/model.json.tmp-${Deno.pid}`;
    await Deno.mkdir(blocker);
    await Deno.writeTextFile(`${blocker}/x`, "");
    await assert.rejects(
      saveAveragedGenerator(checkAverageOut(out, run), kept([1, 3]), {
        epochs: [1, 3],
      }),
      /cannot write .*model.json/,
    );
    await Deno.remove(blocker, { recursive: true });
    assert.equal(
      [...Deno.readDirSync(out)].filter((e) => e.name.startsWith("weights-"))
        .length,
      1,
    );
    await saveAveragedGenerator(checkAverageOut(out, run), kept([1, 2]), {
      epochs: [1, 2],
    });
    assert.equal(
      [...Deno.readDirSync(out)].filter((e) => e.name.startsWith("weights-"))
        .length,
      1,
    );
    // model.json's temporary file cannot be made: the write stops right
    // after the new weights file, as a kill at that moment would.
    await Deno.mkdir(blocker);
    await Deno.writeTextFile(`${blocker}/x`, "");
    await assert.rejects(
      saveAveragedGenerator(checkAverageOut(out, run, true), kept([1, 2, 3]), {
        epochs: [1, 2, 3],
      }),
      /cannot write .*model.json/,
    );
    let g = await loadGenerator(out);
    assert.deepEqual(g.metadata.averagedEpochs, [1, 2]);
    assert.equal(g.verified, true);
    g.model.dispose();
    await Deno.remove(blocker, { recursive: true });
    // The next average replaces it and clears the weights the stopped one left.
    const { files } = await saveAveragedGenerator(
      checkAverageOut(out, run, true),
      kept([1, 2, 3]),
      { epochs: [1, 2, 3] },
    );
    g = await loadGenerator(out);
    assert.deepEqual(g.metadata.averagedEpochs, [1, 2, 3]);
    g.model.dispose();
    assert.deepEqual(
      [...Deno.readDirSync(out)].map((e) => e.name).sort(),
      [...files].sort(),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function copyFolder(from: string, to: string) {
  await Deno.mkdir(to, { recursive: true });
  for (const e of Deno.readDirSync(from)) {
    await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}
