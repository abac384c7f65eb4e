/**
 * What sample, eval and train write, and what they refuse (docs/training.md,
 * "What each command writes"): each test reproduces a way a user got a
 * wrong result without being told, or was left with a file that no command
 * removes, and checks that it is refused or mended, naming what to do.
 */

import assert from "node:assert/strict";
import { exists } from "../lib/io/files.ts";
import { encodeNpy } from "../lib/io/npy.ts";
import { root, runCli, until, withTempDir } from "./run.ts";

const sample = (...args: string[]) =>
  runCli("sample.ts", ["--backend", "wasm", ...args]);
const evaluate = (...args: string[]) =>
  runCli("eval.ts", ["--backend", "wasm", "--no-parzen", ...args]);

Deno.test("seeds are used whole: 2^32 + 1 is not seed 1 or seed 0; past 2^53 refused", async () => {
  await withTempDir(async (dir) => {
    const images: Uint8Array[] = [];
    for (const seed of ["0", "1", "4294967297", "4294967296"]) {
      const r = await sample(
        "--checkpoint",
        "models/mnist",
        "--n",
        "4",
        "--seed",
        seed,
        "--out",
        `${dir}/s${seed}.npy`,
      );
      assert.equal(r.code, 0, r.stderr);
      images.push(await Deno.readFile(`${dir}/s${seed}.npy`));
    }
    for (let i = 0; i < images.length; i++) {
      for (let j = i + 1; j < images.length; j++) {
        assert.notDeepEqual(images[i], images[j], `seeds ${i} and ${j}`);
      }
    }
    const big = await sample(
      "--checkpoint",
      "models/mnist",
      "--seed",
      "9007199254740993",
      "--out",
      `${dir}/x.png`,
    );
    assert.equal(big.code, 2);
    assert.match(big.stderr, /--seed must be at most 9007199254740991/);
  });
});

Deno.test("a labels file goes with its samples: replaced, removed, or refused by eval when it is not theirs", async () => {
  await withTempDir(async (dir) => {
    const x = `${dir}/x.npy`, labels = `${dir}/x.labels.npy`;
    let r = await sample(
      "--checkpoint",
      "models/mnist-conditional",
      "--n",
      "1000",
      "--out",
      x,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /its record in .*x\.npy\.json/);
    const record = JSON.parse(await Deno.readTextFile(`${x}.json`));
    assert.equal(record.count, 1000);
    assert.equal(record.generator.dataset, "mnist");
    assert.equal(record.labels.file, "x.labels.npy");
    r = await evaluate("--samples", x, "--dataset", "mnist");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /conditional accuracy/);
    // Samples imitate MNIST: scoring them as Fashion-MNIST is asked for.
    r = await evaluate("--samples", x, "--dataset", "fashion");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /trained on mnist .*not fashion; pass --dataset mnist, or --any-dataset/,
    );
    r = await evaluate("--samples", x, "--dataset", "fashion", "--any-dataset");
    assert.equal(r.code, 0, r.stderr);

    // An unconditional generator's samples over them: the labels go.
    const old = await Deno.readFile(labels);
    r = await sample("--checkpoint", "models/mnist", "--n", "1000", "--out", x);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /removed .*x\.labels\.npy: the labels of the samples .* held before/,
    );
    assert.equal(exists(labels), false);
    r = await evaluate("--samples", x, "--dataset", "mnist");
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /conditional accuracy/);
    // Put back by hand, they are refused: the record says there are none.
    await Deno.writeFile(labels, old);
    r = await evaluate("--samples", x, "--dataset", "mnist");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /x\.labels\.npy is not the labels of .*x\.npy: .*remove/,
    );
    // Samples replaced behind the record's back: refused, saying what to do.
    await Deno.remove(labels);
    await Deno.writeFile(
      x,
      encodeNpy({ shape: [1000, 28, 28], data: new Uint8Array(1000 * 784) }),
    );
    r = await evaluate("--samples", x, "--dataset", "mnist");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /x\.npy is not the file .*x\.npy\.json describes .*remove/,
    );
    // Without a record: a labels file is read by its name, with a note,
    // and labels that are no class of the dataset are refused.
    await Deno.remove(`${x}.json`);
    await Deno.writeFile(
      labels,
      encodeNpy({
        shape: [1000],
        data: Uint8Array.from({ length: 1000 }, (_, i) => 200 + (i % 10)),
      }),
    );
    r = await evaluate("--samples", x, "--dataset", "mnist");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /label 200 \(image 0\) is not a class of mnist \(0\.\.9\)/,
    );
    await Deno.writeFile(
      labels,
      encodeNpy({ shape: [1000], data: new Uint8Array(1000).fill(3) }),
    );
    r = await evaluate("--samples", x, "--dataset", "mnist");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /note: .*x\.labels\.npy taken as the classes .* by its name alone/,
    );
  });
});

Deno.test("eval of a generator against a dataset it did not learn is refused unless asked for", async () => {
  const r = await evaluate(
    "--checkpoint",
    "models/fashion-conditional",
    "--dataset",
    "mnist",
    "--n",
    "1000",
  );
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /was trained on fashion, not mnist: .*leave --dataset out .*--any-dataset/,
  );
  const big = await evaluate("--checkpoint", "models/mnist", "--n", "200000");
  assert.equal(big.code, 2);
  assert.match(big.stderr, /--n must be at most 100000/);
});

Deno.test("a generator with NaN weights is refused at load, naming its file", async () => {
  await withTempDir(async (dir) => {
    const g = `${dir}/nan`;
    await Deno.mkdir(g);
    for (const f of ["model.json", "weights-400.bin"]) {
      await Deno.copyFile(`${root}models/mnist/${f}`, `${g}/${f}`);
    }
    // A model without checksums (as older versions wrote) and a NaN in it.
    const json = JSON.parse(await Deno.readTextFile(`${g}/model.json`));
    delete json.userDefinedMetadata.sha256;
    await Deno.writeTextFile(`${g}/model.json`, JSON.stringify(json));
    const bytes = await Deno.readFile(`${g}/weights-400.bin`);
    new Float32Array(bytes.buffer, 400, 1)[0] = NaN;
    await Deno.writeFile(`${g}/weights-400.bin`, bytes);
    const r = await sample(
      "--checkpoint",
      g,
      "--n",
      "4",
      "--out",
      `${dir}/x.png`,
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /weights-400\.bin holds 1 NaN or infinite value\(s\) in weight /,
    );
    assert.equal(exists(`${dir}/x.png`), false);
  });
});

Deno.test("interpolation grids and sample files are bounded before anything is drawn", async () => {
  await withTempDir(async (dir) => {
    for (
      const [rows, steps] of [["3000", "3000"], ["200", "200"], ["1", "101"]]
    ) {
      const r = await sample(
        "--checkpoint",
        "models/mnist",
        "--interpolate",
        "--rows",
        rows,
        "--steps",
        steps,
        "--out",
        `${dir}/walk.png`,
      );
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--rows and --steps must be at most 100 each/);
    }
    assert.equal(exists(`${dir}/walk.png`), false);
    const many = await sample(
      "--checkpoint",
      "models/mnist-conditional",
      "--n",
      "100000001",
      "--out",
      `${dir}/x.npy`,
    );
    assert.equal(many.code, 2, many.stderr);
    assert.match(many.stderr, /--n must be at most 100000000/);
  });
});

Deno.test("an interrupted sample leaves nothing behind; a killed one's temporary file goes with the next", async () => {
  await withTempDir(async (dir) => {
    const x = `${dir}/x.npy`;
    const start = () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${root}cli/sample.ts`,
          "--checkpoint",
          `${root}models/mnist`,
          "--backend",
          "wasm",
          "--n",
          "400000",
          "--out",
          x,
        ],
        env: { NO_COLOR: "1" },
        stdout: "null",
        stderr: "piped",
      }).spawn();
    const temporaries = () =>
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.includes(".tmp-")
      );
    // Ctrl-C: it stops after the chunk in progress and removes its file.
    let child = start();
    assert.ok(await until(() => temporaries().length > 0, 120), "it started");
    child.kill("SIGINT");
    const { code } = await child.status;
    const text = await new Response(child.stderr).text();
    assert.equal(code, 130, text);
    assert.match(
      text,
      /interrupted: .*x\.npy was not written, and nothing was left behind/,
    );
    assert.deepEqual(temporaries(), []);
    assert.equal(exists(x), false);
    // kill -9: the temporary file stays, and the next sample of x removes it.
    child = start();
    assert.ok(await until(() => temporaries().length > 0, 120), "it started");
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
    const left = temporaries();
    assert.equal(left.length, 1);
    const r = await sample(
      "--checkpoint",
      "models/mnist",
      "--n",
      "4",
      "--out",
      x,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`removed .*${left[0]}, left by an interrupted`),
    );
    assert.deepEqual(temporaries(), []);
  });
});

Deno.test("Ctrl-C's resume hint repeats --keep-generators; resuming without it says so", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/run`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${root}cli/train.ts`,
        "--preset",
        "mlp",
        "--limit",
        "4096",
        "--batch-size",
        "32",
        "--epochs",
        "50",
        "--backend",
        "wasm",
        "--keep-generators",
        "--out",
        out,
      ],
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    assert.ok(
      await until(() => exists(`${out}/checkpoint.json`), 300),
      "an epoch completed",
    );
    child.kill("SIGINT");
    const { code } = await child.status;
    const text = await new Response(child.stderr).text();
    assert.equal(code, 130, text);
    assert.match(
      text,
      new RegExp(
        `continue with: deno task train --out ${out} --resume --keep-generators\\n`,
      ),
    );
    const r = await runCli("train.ts", [
      "--out",
      out,
      "--resume",
      "--epochs",
      String(
        JSON.parse(Deno.readTextFileSync(`${out}/checkpoint.json`)).state
          .epoch + 1,
      ),
      "--backend",
      "wasm",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /kept each epoch's generator so far; resumed without --keep-generators/,
    );
  });
});
