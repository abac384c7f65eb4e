/**
 * Nothing silently wrong, nothing lost: each test here reproduces a way a
 * user could lose a run or get a wrong result without being told (a second
 * training in the same folder, a damaged checkpoint, a holdout that did not
 * fit, a run written into `/`, unbounded sampling, unclear messages), and
 * checks that it is refused or said, naming what to do.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/choice.ts";
import {
  loadGenerator,
  readCheckpoint,
  readCheckpointFile,
} from "../lib/run/checkpoint.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import {
  checkRunFolderPath,
  checkWritableFile,
  processAlive,
  sha256File,
  writeFileAtomic,
} from "../lib/io/files.ts";
import { disposeGan } from "../lib/gan.ts";
import { encodeIdx, parseIdx } from "../lib/io/idx.ts";
import { decodeNpy } from "../lib/io/npy.ts";
import {
  LOCK_FILE,
  lockRunFolder,
  RunFolderLockedError,
} from "../lib/run/lock.ts";
import { writeSampleFile } from "../lib/run/samples.ts";
import { train } from "../lib/train.ts";
import { trainingSplit } from "../lib/run/split.ts";
import { root, runCli, until, withTempDir } from "./run.ts";
import { tiny, tinyOptions } from "./tiny.ts";

await initBackend("wasm");
const mnist = await loadDataset("mnist", { log: () => {} });

const base = tinyOptions(mnist as Dataset, { epochs: 1, seed: 5, limit: 96 });

/** Trains `epochs` tiny epochs into a new folder; returns the folder. */
async function tinyRun(dir: string, epochs = 1): Promise<string> {
  const r = await train(base({ outDir: dir, epochs }));
  assert.equal(r.status, "completed");
  disposeGan(r.gan);
  return dir;
}

// --- 1. one training per run folder ----------------------------------------

Deno.test("a run folder is locked: a second training is refused, naming the first", async () => {
  await withTempDir(async (dir) => {
    const lock = lockRunFolder(dir);
    const holder = JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`));
    assert.equal(holder.pid, Deno.pid);
    assert.equal(holder.host, Deno.hostname());
    await assert.rejects(
      () => train(base({ outDir: dir })),
      (e: Error) =>
        e instanceof RunFolderLockedError &&
        new RegExp(`is in use: process ${Deno.pid} on host`).test(e.message),
    );
    await assert.rejects(
      () => train(base({ outDir: dir, resume: true })),
      RunFolderLockedError,
    );
    lock.release();
    assert.equal(
      await Deno.stat(`${dir}/${LOCK_FILE}`).catch(() => null),
      null,
      "the lock file is removed on release",
    );
    // Released: training goes ahead, and releases it when it ends.
    await tinyRun(`${dir}`);
    lockRunFolder(dir).release();
  });
});

Deno.test("a lock whose process was killed is stale and taken over", async () => {
  await withTempDir(async (dir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { lockRunFolder } from "${root}lib/run/lock.ts";
         lockRunFolder(${JSON.stringify(dir)});
         console.log("locked");
         setTimeout(() => {}, 60000);`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /locked/);
    assert.throws(() => lockRunFolder(dir), RunFolderLockedError);
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    assert.equal(processAlive(child.pid), false);
    const lock = lockRunFolder(dir);
    assert.equal(lock.replaced?.pid, child.pid, "names the stale holder");
    lock.release();
  });
});

Deno.test("killing `deno task train` stops its trainer; a second training meanwhile is refused", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/run`;
    const task = new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "train",
        "--preset",
        "mlp",
        "--epochs",
        "100",
        "--backend",
        "wasm",
        "--out",
        out,
      ],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = task.stderr.pipeThrough(new TextDecoderStream());
    const lockPath = `${out}/${LOCK_FILE}`;
    const readPid = () => {
      try {
        return JSON.parse(Deno.readTextFileSync(lockPath)).pid as number;
      } catch {
        return 0;
      }
    };
    assert.ok(
      await until(() => readPid() > 0, 120),
      "the trainer took the lock",
    );
    const trainer = readPid();
    assert.notEqual(trainer, task.pid, "the trainer is the task's child");

    const second = await runCli("train.ts", [
      "--preset",
      "mlp",
      "--seed",
      "1",
      "--backend",
      "wasm",
      "--out",
      out,
    ]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(
      second.stderr,
      new RegExp(
        `${out} is in use: process ${trainer} on host .*choose another --out`,
      ),
    );

    task.kill("SIGKILL");
    await task.status;
    assert.ok(
      await until(() => !processAlive(trainer), 60),
      "the trainer ended after its task was killed",
    );
    assert.ok(!(await until(() => readPid() > 0, 0)), "the lock is released");
    let text = "";
    for await (const chunk of stderr) text += chunk;
    assert.match(text, /process that started this training has ended/);
  });
});

// --- 2. damaged files are named, never used ---------------------------------

Deno.test("a corrupted checkpoint is refused by name; an old one without a checksum loads with a note", async () => {
  await withTempDir(async (dir) => {
    await tinyRun(dir);
    const bin = `${dir}/checkpoint-001.bin`;
    const good = await Deno.readFile(bin);
    const { file } = await readCheckpoint(dir);
    assert.match(file.sha256!, /^[0-9a-f]{64}$/);

    // 1,000 weights overwritten with NaN: same size, wrong contents.
    const nan = good.slice();
    new Float32Array(nan.buffer, 4000, 1000).fill(NaN);
    await Deno.writeFile(bin, nan);
    await assert.rejects(
      () => train(base({ outDir: dir, epochs: 2, resume: true })),
      /checkpoint-001\.bin is corrupt \(checksum mismatch/,
    );
    // 200 flipped bytes.
    const flipped = good.slice();
    for (let i = 0; i < 200; i++) flipped[1000 + 37 * i] ^= 0xff;
    await Deno.writeFile(bin, flipped);
    await assert.rejects(
      () => readCheckpoint(dir),
      /checkpoint-001\.bin is corrupt \(checksum mismatch/,
    );

    // A checkpoint from before checksums: loads, with a note ...
    await Deno.writeFile(bin, good);
    const json = await readCheckpointFile<unknown>(dir);
    delete json.sha256;
    await Deno.writeTextFile(`${dir}/checkpoint.json`, JSON.stringify(json));
    const notes: string[] = [];
    const r = await train(
      base({ outDir: dir, epochs: 2, resume: true, log: (m) => notes.push(m) }),
    );
    assert.equal(r.status, "completed");
    disposeGan(r.gan);
    assert.ok(
      notes.some((n) => /checkpoint\.json carries no checksum/.test(n)),
      notes.join("\n"),
    );
    // ... and its values are still checked: NaN is refused.
    const latest = await readCheckpointFile<unknown>(dir);
    delete latest.sha256;
    await Deno.writeTextFile(`${dir}/checkpoint.json`, JSON.stringify(latest));
    const bin2 = `${dir}/${latest.weights}`;
    const values = await Deno.readFile(bin2);
    new Float32Array(values.buffer, 0, 10).fill(NaN);
    await Deno.writeFile(bin2, values);
    await assert.rejects(
      () => readCheckpoint(dir),
      /checkpoint-002\.bin is corrupt: 10 of its \d+ values are NaN or infinite/,
    );
  });
});

Deno.test("a damaged or truncated generator is named; sample and eval say so", async () => {
  await withTempDir(async (dir) => {
    await tinyRun(dir);
    const weights = `${dir}/generator/weights-001.bin`;
    const good = await Deno.readFile(weights);
    const loaded = await loadGenerator(dir);
    assert.equal(loaded.verified, true);
    loaded.model.dispose();

    const bad = good.slice();
    bad[100] ^= 1;
    await Deno.writeFile(weights, bad);
    await assert.rejects(
      () => loadGenerator(dir),
      /weights-001\.bin is corrupt \(checksum mismatch with .*model\.json\)/,
    );
    for (const script of ["sample.ts", "eval.ts"]) {
      const args = script === "sample.ts"
        ? ["--out", `${dir}/s.png`, "--n", "4"]
        : ["--n", "1000", "--no-parzen"];
      const r = await runCli(script, [
        "--checkpoint",
        dir,
        "--backend",
        "wasm",
        ...args,
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /weights-001\.bin is corrupt \(checksum mismatch/);
    }

    // Truncated, in a model.json without checksums (an older one): the
    // file and both sizes are named, not tfjs' tensor message.
    await Deno.writeFile(weights, good.subarray(0, 5000));
    const json = JSON.parse(
      await Deno.readTextFile(`${dir}/generator/model.json`),
    );
    delete json.userDefinedMetadata.sha256;
    await Deno.writeTextFile(
      `${dir}/generator/model.json`,
      JSON.stringify(json),
    );
    await assert.rejects(
      () => loadGenerator(dir),
      new RegExp(
        `weights-001\\.bin holds 5000 bytes, .*model\\.json expects ${good.length}: truncated`,
      ),
    );
  });
});

Deno.test("the committed generators carry checksums of their weights", async () => {
  for (const name of ["mnist", "fashion", "mnist-sngan-fc"]) {
    const g = await loadGenerator(`${root}models/${name}`);
    assert.equal(g.verified, true, name);
    g.model.dispose();
  }
});

// --- 3. holdout ---------------------------------------------------------------

Deno.test("a holdout that leaves less than a batch is refused, saying how many images there are", () => {
  for (const [holdout, left] of [[70000, 0], [59950, 50]]) {
    assert.throws(
      () => trainingSplit(mnist, { holdout, batchSize: 100 }),
      new RegExp(
        `--holdout ${holdout} leaves ${left} of the 60000 training images of mnist, fewer than one batch of 100: keep at most 59900 out`,
      ),
    );
  }
  // --holdout 0 trains on all, as asked; the default keeps 10,000 out.
  assert.equal(
    trainingSplit(mnist, { holdout: 0, batchSize: 100 }).split.size,
    60000,
  );
  const d = trainingSplit(mnist, { batchSize: 100 });
  assert.deepEqual([d.split.size, d.holdout, d.note], [
    50000,
    10000,
    undefined,
  ]);
  // A dataset too small for the default: none kept out, and said so.
  const small: Dataset = { ...mnist, train: { ...mnist.train, size: 5000 } };
  const s = trainingSplit(small, { batchSize: 100 });
  assert.equal(s.holdout, 0);
  assert.match(s.note!, /only 5000 training images.*training on all of them/);
});

// --- 4. where a run is written ---------------------------------------------------

Deno.test("an empty, root or file --out is refused before anything is written", async () => {
  assert.throws(() => checkRunFolderPath(""), /--out\) is empty/);
  assert.throws(() => checkRunFolderPath("/"), /file system's root/);
  assert.throws(() => checkRunFolderPath("//"), /file system's root/);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/f`, "x");
    assert.throws(() => checkRunFolderPath(`${dir}/f`), /is an existing file/);
    await assert.rejects(
      () => train(base({ outDir: `${dir}/f` })),
      /is an existing file/,
    );
    for (const out of ["", "/"]) {
      const r = await runCli("train.ts", ["--out", out, "--backend", "wasm"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /run folder \(--out\)/);
      assert.doesNotMatch(r.stderr, /backend:/, "refused before any work");
    }
  });
});

Deno.test("write errors name the destination, not a temporary file, and come before the work", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      () => writeFileAtomic(`${dir}/missing/x.json`, "{}"),
      (e: Error) =>
        e.message ===
          `cannot write ${dir}/missing/x.json: its folder does not exist`,
    );
    assert.throws(
      () => checkWritableFile(`${dir}/missing/x.npy`),
      new RegExp(`the folder ${dir}/missing does not exist; create it first`),
    );
    assert.throws(() => checkWritableFile(dir), /it is a folder/);
    const r = await runCli("sample.ts", [
      "--checkpoint",
      "models/mnist",
      "--out",
      `${dir}/missing/x.npy`,
      "--backend",
      "wasm",
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /cannot write .*missing\/x\.npy: the folder .* does not exist/,
    );
    assert.doesNotMatch(r.stderr, /tmp-|backend:/);
  });
});

Deno.test("temporary files left by a killed save are removed when the folder is next used", async () => {
  await withTempDir(async (dir) => {
    await tinyRun(dir);
    // A process id that no process has.
    let pid = 4_000_000;
    while (processAlive(pid)) pid++;
    const stale = [
      `${dir}/checkpoint-002.bin.tmp-${pid}`,
      `${dir}/generator/weights-002.bin.tmp-${pid}`,
    ];
    for (const f of stale) await Deno.writeTextFile(f, "half");
    const notes: string[] = [];
    const r = await train(
      base({ outDir: dir, epochs: 2, resume: true, log: (m) => notes.push(m) }),
    );
    disposeGan(r.gan);
    for (const f of stale) {
      assert.equal(await Deno.stat(f).catch(() => null), null);
    }
    assert.ok(notes.some((n) => /removed 2 unfinished file/.test(n)));
  });
});

// --- 5. sampling any number of images -----------------------------------------

Deno.test("samples are generated and written in chunks, the same images whatever the chunk", async () => {
  await withTempDir(async (dir) => {
    const g = await loadGenerator(`${root}models/mnist`);
    const progress: number[] = [];
    await writeSampleFile(`${dir}/a.npy`, g, {
      n: 30,
      seed: 2,
      chunk: 8,
      onProgress: (done) => progress.push(done),
    });
    assert.deepEqual(progress, [8, 16, 24, 30]);
    await writeSampleFile(`${dir}/b.npy`, g, { n: 30, seed: 2 });
    const a = decodeNpy(await Deno.readFile(`${dir}/a.npy`));
    const b = decodeNpy(await Deno.readFile(`${dir}/b.npy`));
    assert.deepEqual(a.shape, [30, 28, 28]);
    assert.deepEqual(a.data, b.data);
    await writeSampleFile(`${dir}/c-idx3-ubyte`, g, {
      n: 30,
      seed: 2,
      chunk: 4,
    });
    const c = parseIdx(await Deno.readFile(`${dir}/c-idx3-ubyte`));
    assert.deepEqual(c.dims, [30, 28, 28]);
    assert.deepEqual(c.data, a.data);
    // No temporary file is left behind; each file has its record beside it.
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      [
        "a.npy",
        "a.npy.json",
        "b.npy",
        "b.npy.json",
        "c-idx3-ubyte",
        "c-idx3-ubyte.json",
      ],
    );
    const record = JSON.parse(await Deno.readTextFile(`${dir}/a.npy.json`));
    assert.equal(record.sha256, await sha256File(`${dir}/a.npy`));
    assert.equal(record.count, 30);
    assert.equal(record.labels, null);
    g.model.dispose();
  });
  const png = await runCli("sample.ts", [
    "--checkpoint",
    "models/mnist",
    "--n",
    "1e7",
    "--out",
    "/tmp/never.png",
  ]);
  assert.equal(png.code, 2);
  assert.match(
    png.stderr,
    /--n 10000000 is too many for a PNG grid \(at most 10000\); write them to a .npy or IDX file/,
  );
});

// --- unclear messages -------------------------------------------------------------

Deno.test("negative numbers and resume conflicts get messages that say what to do", async () => {
  const cases: [string, string[], RegExp][] = [
    [
      "train.ts",
      ["--epochs", "-1"],
      /--epochs must be a positive integer, got "-1"/,
    ],
    [
      "train.ts",
      ["--holdout", "-5"],
      /--holdout must be an integer >= 0, got "-5"/,
    ],
    ["sample.ts", [
      "--checkpoint",
      "models/mnist",
      "--out",
      "x.png",
      "--n",
      "-3",
    ], /--n must be a positive integer, got "-3"/],
    [
      "train.ts",
      [
        "--resume",
        "--out",
        "runs/x",
        "--preset",
        "paper",
        "--lr",
        "0.1",
        "--seed",
        "2",
      ],
      /--resume continues the run with its own configuration, so --preset, --lr, --seed cannot be given with it/,
    ],
    [
      "train.ts",
      ["--resume", "--batch-size", "64"],
      /--batch-size cannot be given/,
    ],
    ["train.ts", ["--resume", "--limit", "640"], /--limit cannot be given/],
    [
      "train.ts",
      ["--resume", "--latent-dim", "64"],
      /--latent-dim cannot be given/,
    ],
    [
      "train.ts",
      ["--latent-dim", "0"],
      /--latent-dim must be a positive integer, got "0"/,
    ],
    [
      "train.ts",
      ["--latent-dim", "5000"],
      /--latent-dim must be at most 4096, got 5000/,
    ],
  ];
  for (const [script, args, pattern] of cases) {
    const r = await runCli(script, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /ambiguous/);
  }
});

Deno.test("resuming a run already past the epochs asked for says so", async () => {
  await withTempDir(async (dir) => {
    await tinyRun(dir, 2);
    await assert.rejects(
      () => train(base({ outDir: dir, epochs: 1, resume: true })),
      /has already trained 2 epochs, more than the 1 asked for; pass --epochs N with N > 2/,
    );
    // Without --epochs, --resume continues to the run's own total: here, done.
    const r = await runCli("train.ts", [
      "--resume",
      "--out",
      dir,
      "--backend",
      "wasm",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /has already trained all 2 epochs asked for; nothing to do/,
    );
    assert.equal(
      (await readCheckpointFile<{ epoch: number }>(dir)).state.epoch,
      2,
    );
  });
});

Deno.test("divergence in the first epoch does not promise a checkpoint", async () => {
  await withTempDir(async (dir) => {
    const config = tiny();
    config.optimizerD.lr = config.optimizerG.lr = 1e30;
    const r = await train(base({ config, outDir: dir, limit: 320 }));
    disposeGan(r.gan);
    assert.equal(r.status, "diverged");
    assert.match(
      r.message!,
      /no checkpoint was written \(it diverged in the first epoch\)/,
    );
    assert.doesNotMatch(r.message!, /last good checkpoint/);
  });
});

Deno.test("a data directory the user named must exist; IDX headers with a wrong dimension count say so", async () => {
  Deno.env.set("GAN_DATA_DIR", "/nonexistent-gan-data");
  try {
    await assert.rejects(
      () => loadDataset("mnist", { log: () => {} }),
      /GAN_DATA_DIR is \/nonexistent-gan-data, which is not an existing folder/,
    );
  } finally {
    Deno.env.delete("GAN_DATA_DIR");
  }
  // 60000 x 28 x 28 with the dimension byte set to 9 (the case,
  // small): 3 x 4 x 4 images.
  const bytes = encodeIdx({ dims: [3, 4, 4], data: new Uint8Array(48) });
  bytes[3] = 9;
  assert.throws(
    () => parseIdx(bytes, "t-idx3-ubyte"),
    /t-idx3-ubyte: the header says 9 dimensions, but the file fits 3 \(3 x 4 x 4\): its 4th byte, the dimension count, is wrong/,
  );
  // Ordinary trailing bytes are still reported as such.
  const long = new Uint8Array([
    ...encodeIdx({ dims: [2], data: new Uint8Array(2) }),
    7,
  ]);
  assert.throws(
    () => parseIdx(long, "x"),
    /1 unexpected bytes after the 2 data/,
  );
  assert.equal(tf.getBackend(), "wasm");
});
