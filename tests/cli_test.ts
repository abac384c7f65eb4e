import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { productFlops } from "../cli/bench.ts";
import { parseIdx } from "../lib/io/idx.ts";
import { runCli } from "./run.ts";

const run = runCli;

Deno.test("a tiny training run finishes and writes every output; sample reads it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/run`;
    const r = await run("train.ts", [
      "--dataset",
      "fashion",
      "--limit",
      "128",
      "--epochs",
      "2",
      "--batch-size",
      "32",
      "--preset",
      "mlp",
      "--latent-dim",
      "16",
      "--backend",
      "wasm",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /epoch 2\/2 .*img\/s/);
    assert.match(r.stderr, /latent 16, batch 32/);
    // The generator takes 16 noise values, and says so to sample and the page.
    const model = JSON.parse(
      await Deno.readTextFile(`${out}/generator/model.json`),
    );
    assert.equal(model.userDefinedMetadata.gan.latentDim, 16);
    assert.match(
      JSON.stringify(model.modelTopology),
      /"batch_input_shape":\[null,16\]/,
    );
    for (
      const f of [
        "samples/epoch_000.png",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
        "loss.png",
        "progress.png",
        "progress.gif",
        "history.json",
        "checkpoint.json",
        "checkpoint-002.bin",
        "generator/model.json",
        "generator/weights-002.bin",
      ]
    ) {
      const info = await Deno.stat(`${out}/${f}`);
      assert.ok(info.size > 0, f);
    }
    // The animation: a GIF, one frame per epoch (0, 1, 2).
    const gif = await Deno.readFile(`${out}/progress.gif`);
    assert.equal(new TextDecoder().decode(gif.subarray(0, 6)), "GIF89a");
    let frames = 0;
    for (let i = 0; i + 2 < gif.length; i++) {
      if (gif[i] === 0x21 && gif[i + 1] === 0xf9 && gif[i + 2] === 0x04) {
        frames++;
      }
    }
    assert.equal(frames, 3);
    const png = await Deno.readFile(`${out}/loss.png`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${out}/history.json`)).length,
      2,
    );

    // Resuming to more epochs continues from the checkpoint, on its dataset.
    const more = await run("train.ts", [
      "--epochs",
      "3",
      "--out",
      out,
      "--resume",
      "--backend",
      "wasm",
    ]);
    assert.equal(more.code, 0, more.stderr);
    assert.match(more.stderr, /resuming .* after epoch 2/);
    assert.match(more.stderr, /data: fashion/);
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${out}/history.json`)).length,
      3,
    );

    const npy = await run("sample.ts", [
      "--checkpoint",
      out,
      "--n",
      "12",
      "--out",
      `${dir}/s.npy`,
      "--backend",
      "wasm",
    ]);
    assert.equal(npy.code, 0, npy.stderr);
    const bytes = await Deno.readFile(`${dir}/s.npy`);
    const header = new TextDecoder().decode(
      bytes.subarray(10, 10 + new DataView(bytes.buffer).getUint16(8, true)),
    );
    assert.match(header, /'descr': '\|u1'.*'shape': \(12, 28, 28\)/);
    assert.equal(bytes.length - 10 - header.length, 12 * 784);

    const idx = await run("sample.ts", [
      "--checkpoint",
      out,
      "--n",
      "5",
      "--out",
      `${dir}/s-idx3-ubyte`,
      "--backend",
      "wasm",
    ]);
    assert.equal(idx.code, 0, idx.stderr);
    assert.deepEqual(
      parseIdx(await Deno.readFile(`${dir}/s-idx3-ubyte`)).dims,
      [5, 28, 28],
    );

    const interp = await run("sample.ts", [
      "--checkpoint",
      out,
      "--interpolate",
      "--rows",
      "2",
      "--steps",
      "4",
      "--out",
      `${dir}/i.png`,
      "--backend",
      "wasm",
    ]);
    assert.equal(interp.code, 0, interp.stderr);
    assert.match(interp.stderr, /wrote 8 images/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad flags give an error and the usage", async () => {
  const cases: [string, string[], RegExp][] = [
    ["train.ts", ["--epoch", "3"], /Unknown option '--epoch'/],
    [
      "train.ts",
      ["--dataset", "cifar"],
      /--dataset must be one of mnist, fashion, got "cifar"/,
    ],
    [
      "train.ts",
      ["--epochs", "two"],
      /--epochs must be a positive integer, got "two"/,
    ],
    ["train.ts", ["--lr=-1"], /--lr must be a number > 0/],
    [
      "train.ts",
      ["--preset", "paper", "--beta1", "0.5"],
      /--beta1 applies to Adam/,
    ],
    ["train.ts", ["--beta2", "1"], /--beta2 must be in \[0, 1\), got "1"/],
    [
      "train.ts",
      ["--backend", "tpu"],
      /--backend must be one of auto, webgpu, wasm, cpu/,
    ],
    ["train.ts", ["--blas", "mkl"], /--blas must be one of auto, off/],
    [
      "train.ts",
      ["--update", "sideways"],
      /--update must be one of alternating, simultaneous, reuse, got "sideways"/,
    ],
    ["train.ts", ["--ema", "1"], /--ema must be in \(0, 1\)/],
    ["train.ts", ["--ema-start", "10"], /give --ema DECAY too/],
    [
      "train.ts",
      ["--resume", "--ema", "0.999"],
      /--resume continues the run with its own configuration, so --ema/,
    ],
    ["bench.ts", ["--blas", "mkl"], /--blas: bad value "mkl"/],
    ["bench.ts", ["--fused", "maybe"], /--fused: bad value "maybe"/],
    ["bench.ts", ["--step", "cuda"], /--step: bad value "cuda"/],
    ["bench.ts", ["--matmul", "fast"], /--matmul: bad value "fast"/],
    ["train.ts", ["--step", "cuda"], /--step must be one of auto, tfjs, wgsl/],
    ["bench.ts", ["--uploads", "mailed"], /--uploads: bad value "mailed"/],
    ["sample.ts", ["--out", "x.png"], /--checkpoint is required/],
    [
      "sample.ts",
      ["--checkpoint", "models/mnist", "--out", "x.gif"],
      /--out must end in .png, .npy, .idx or -ubyte/,
    ],
  ];
  for (const [script, args, pattern] of cases) {
    const r = await run(script, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /Usage: deno task/);
  }
  const help = await run("train.ts", ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--resume/);
});

Deno.test("the committed generators sample on a fresh clone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [name, preset, dataset, low, high] of [
        ["mnist", "paper", "mnist", 0.6, 0.98],
        ["fashion", "bn", "fashion", 0.3, 0.9],
        ["mnist-sngan", "sngan", "mnist", 0.6, 0.98],
        ["mnist-sngan-fc", "sngan-fc", "mnist", 0.6, 0.98],
        ["fashion-sngan", "sngan", "fashion", 0.3, 0.9],
        // A functional TF.js model (class-conditional batch norm).
        [
          "mnist-sngan-conditional",
          "sngan conditional \\(projection\\)",
          "mnist",
          0.6,
          0.98,
        ],
        [
          "fashion-sngan-conditional",
          "sngan conditional \\(projection\\)",
          "fashion",
          0.3,
          0.9,
        ],
      ] as const
    ) {
      const r = await run("sample.ts", [
        "--checkpoint",
        `models/${name}`,
        "--n",
        "20",
        "--out",
        `${dir}/${name}.npy`,
        "--backend",
        "wasm",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`wrote 20 images.*: ${preset} on ${dataset}`),
      );
      // Generated items are dark background around a bright shape (digits
      // cover less of the image than clothes).
      const bytes = await Deno.readFile(`${dir}/${name}.npy`);
      const pixels = bytes.subarray(bytes.length - 20 * 784);
      const dark = pixels.filter((v) => v < 64).length / pixels.length;
      assert.ok(dark > low && dark < high, `${name}: dark fraction ${dark}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sample --neighbours draws the paper's Figure 2; --truncation narrows the noise", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run("sample.ts", [
      "--checkpoint",
      "models/mnist",
      "--neighbours",
      "--n",
      "10",
      "--out",
      `${dir}/nn.png`,
      "--backend",
      "wasm",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = r.stderr.match(
      /nearest training images \(of 60000, in pixels\): pixel L2 distance median ([\d.]+), smallest ([\d.]+), largest [\d.]+/,
    );
    assert.ok(m, r.stderr);
    // A new digit, not a copy: MNIST's nearest pairs are a few units apart.
    assert.ok(Number(m[2]) > 0.5 && Number(m[1]) < 12, r.stderr);
    const png = await Deno.readFile(`${dir}/nn.png`);
    const view = new DataView(png.buffer);
    // Two rows of five pairs: 10 images across (58 px each, a 2 px gap).
    assert.deepEqual([view.getUint32(16), view.getUint32(20)], [
      10 * 58 + 2,
      2 * 58 + 2,
    ]);
    // A truncated grid differs from the untruncated one of the same seed.
    const grids: Uint8Array[] = [];
    for (const extra of [[], ["--truncation", "0.5"]]) {
      const g = await run("sample.ts", [
        "--checkpoint",
        "models/mnist",
        "--n",
        "16",
        "--out",
        `${dir}/g${grids.length}.png`,
        "--backend",
        "wasm",
        ...extra,
      ]);
      assert.equal(g.code, 0, g.stderr);
      grids.push(await Deno.readFile(`${dir}/g${grids.length}.png`));
    }
    assert.notDeepEqual(grids[0], grids[1]);
    for (
      const [args, pattern] of [
        [["--neighbours", "--out", "x.npy"], /--neighbours writes a .png/],
        [
          ["--space", "features", "--out", "x.png"],
          /--space goes with --neighbours/,
        ],
        [
          ["--neighbours", "--space", "ink", "--out", "x.png"],
          /--space must be one of pixels, features/,
        ],
        [
          ["--truncation", "0", "--out", "x.png"],
          /--truncation must be a number of at least 0.01/,
        ],
        [
          ["--truncation", "-2", "--out", "x.png"],
          /--truncation must be a number of at least 0.01/,
        ],
        [
          ["--neighbours", "--n", "5000", "--out", "x.png"],
          /at most 1000 with --neighbours/,
        ],
      ] as [string[], RegExp][]
    ) {
      const bad = await run("sample.ts", [
        "--checkpoint",
        "models/mnist",
        ...args,
      ]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, pattern);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval: a checkpoint and a samples file give the table and one JSON line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run("eval.ts", [
      "--checkpoint",
      "models/mnist",
      "--n",
      "1000",
      "--backend",
      "wasm",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Parzen log-likelihood \(nats\)/);
    const lines = r.stdout.trim().split("\n");
    const json = JSON.parse(lines[lines.length - 1]);
    for (
      const key of [
        "parzen_ll",
        "parzen_se",
        "parzen_sigma",
        "fid",
        "kid",
        "precision",
        "recall",
        "copying_ct",
        "copying_distance_ratio",
        "is",
        "classes_ge_1pct",
        "kl_uniform",
        "classifier_test_acc",
      ]
    ) {
      assert.equal(typeof json[key], "number", key);
      assert.ok(Number.isFinite(json[key]), key);
    }
    assert.equal(json.n_samples, 1000);

    const sample = await run("sample.ts", [
      "--checkpoint",
      "models/mnist",
      "--n",
      "1000",
      "--out",
      `${dir}/s.npy`,
      "--backend",
      "wasm",
    ]);
    assert.equal(sample.code, 0, sample.stderr);
    const e = await run("eval.ts", [
      "--samples",
      `${dir}/s.npy`,
      "--dataset",
      "mnist",
      "--no-parzen",
      "--backend",
      "wasm",
    ]);
    assert.equal(e.code, 0, e.stderr);
    const last = JSON.parse(e.stdout.trim().split("\n").pop()!);
    assert.equal(last.n_samples, 1000);
    assert.equal(last.parzen_ll, null); // NaN in JSON: skipped

    await Deno.writeTextFile(`${dir}/bad.npy`, "not numpy");
    const bad = await run("eval.ts", [
      "--samples",
      `${dir}/bad.npy`,
      "--dataset",
      "mnist",
      "--backend",
      "wasm",
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad.npy: neither a .npy nor an IDX file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval: bad flags give an error and the usage", async () => {
  for (
    const [args, pattern] of [
      [["--samples", "x.npy"], /--samples needs --dataset/],
      [
        ["--checkpoint", "a", "--samples", "b"],
        /exactly one of --checkpoint and --samples/,
      ],
      [[], /exactly one of --checkpoint and --samples/],
      [
        ["--checkpoint", "models/mnist", "--n", "999"],
        /--n must be at least 1000 \(one KID subset/,
      ],
      [
        ["--checkpoint", "models/mnist", "--truncation", "0"],
        /--truncation must be a number of at least 0.01/,
      ],
      [
        ["--samples", "x.npy", "--dataset", "mnist", "--truncation", "1"],
        /--truncation draws samples from a --checkpoint/,
      ],
    ] as [string[], RegExp][]
  ) {
    const r = await run("eval.ts", args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /Usage: deno task eval/);
  }
});

Deno.test("bench prints one JSON line per configuration, with no tensor growth", async () => {
  const r = await run("bench.ts", [
    "--backend",
    "wasm",
    "--batch",
    "8,16",
    "--model",
    "mlp",
    "--steps",
    "3",
    "--warmup",
    "1",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.backend, l.batch, l.model, l.steps]), [
    ["wasm", 8, "mlp", 3],
    ["wasm", 16, "mlp", 3],
  ]);
  for (const l of lines) {
    assert.ok(l.images_per_s > 0 && l.ms_per_step > 0);
    assert.equal(l.tensor_growth, 0);
    // Multiply-adds per image, counted by hand: G's layers FG = 100*128 +
    // 128*256 + 256*512 + 512*1024 + 1024*784 = 1,503,744, D's FD = 784*1024
    // + 1024*512 + 512*256 + 256 = 1,458,432. D's step: G forward, D forward
    // on real and fake, and for each D's weight gradients and its input
    // gradients below the first layer (FG + 4 FD + 2 (FD - 784*1024)). G's
    // step: G and D forward, D's input gradients, G's weight gradients and
    // its input gradients above the first layer (3 FG + 2 FD - 100*128).
    const macs = 4 * 1_503_744 + 8 * 1_458_432 - 2 * 784 * 1024 - 100 * 128;
    assert.equal(
      l.gflop_per_step,
      Number((2 * macs * l.batch / 1e9).toFixed(3)),
    );
  }
  const bad = await run("bench.ts", ["--batch", "0"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--batch: bad value "0"/);
});

Deno.test({
  name:
    "bench on webgpu: fused updates remove 10 dispatches and 7 uploads per Adam variable; no staging buffers; the WGSL step is 52 dispatches",
  ignore: !(await probeWebGpu()).ok,
  fn: async () => {
    const r = await run("bench.ts", [
      "--backend",
      "webgpu",
      "--batch",
      "8",
      "--model",
      "mlp",
      "--steps",
      "1",
      "--warmup",
      "1",
      "--fused",
      "on,off",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [on, off, wgsl] = r.stdout.trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual([on.step, off.step, wgsl.step], ["tfjs", "tfjs", "wgsl"]);
    assert.deepEqual([on.fused, off.fused], [true, false]);
    // mlp: 18 variables (kernels and biases of G's 5 layers and D's 4),
    // each updated once per step; Adam as an op chain is 13 ops and 7
    // scalar uploads per variable, fused 3 programs and no upload.
    assert.equal(off.dispatches_per_step - on.dispatches_per_step, 18 * 10);
    assert.equal(off.uploads_per_step - on.uploads_per_step, 18 * 7);
    // Uploads are direct by default: no staging buffer at all.
    assert.deepEqual([on.uploads, on.staging_buffers_per_step], ["direct", 0]);
    assert.ok(on.passes_per_step < on.dispatches_per_step / 10);
    assert.equal(on.tensor_growth, 0);
    // The WGSL step (lib/wgsl/step.ts), per layer: forward 1, weight
    // gradient 1, bias gradient 1, input gradient 1 (none into the data or
    // the noise; D's backward pass twice); losses 1 and Adam 1 per player.
    // D's step: 5 + 4 + 1 + (4 + 4 + 3) + 1; G's: 5 + 4 + 1 + 4 +
    // (5 + 5 + 4) + 1; and the gather of the real batch from the images on
    // the GPU. One compute pass each; the uploads are the batch's rows and
    // the two noise batches.
    assert.equal(wgsl.dispatches_per_step, 22 + 29 + 1);
    // At batch 8 the shape-chosen matMuls are all one 64 x 64 program each.
    assert.equal(wgsl.matmul, "auto");
    // Products per step, in multiply-adds per image, with g and d the sums
    // of in x out over G's and D's layers and g0, d0 their first layers:
    // D's step G (g), D on 2B rows (2d), its weight gradients (2d) and input
    // gradients but the first (2(d - d0)); G's step G (g), D on B rows (d),
    // back through D (d), G's weight gradients (g) and input gradients but
    // the first (g - g0). 2 flops each, batch 8: 0.257 GFLOP.
    const g = 100 * 128 + 128 * 256 + 256 * 512 + 512 * 1024 + 1024 * 784;
    const d = 784 * 1024 + 1024 * 512 + 512 * 256 + 256;
    const perImage = 4 * g - 100 * 128 + 8 * d - 2 * 784 * 1024;
    assert.equal(
      wgsl.matmul_gflop_per_step,
      Number((2 * 8 * perImage / 1e9).toFixed(3)),
    );
    assert.equal(wgsl.passes_per_step, 2);
    assert.equal(wgsl.uploads_per_step, 3);
    assert.equal(wgsl.staging_buffers_per_step, 0);
    assert.equal(wgsl.tensor_growth, 0);
  },
});

Deno.test("a missing checkpoint is a clear error", async () => {
  const r = await run("sample.ts", [
    "--checkpoint",
    "/nonexistent",
    "--out",
    "/tmp/x.png",
    "--backend",
    "wasm",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no generator at \/nonexistent/);
});

Deno.test("bench's FLOP count of convolutions: 2 per multiply-add, forward and both gradients", async () => {
  await initBackend("wasm");
  // x [2, 9, 9, 3], a 5 x 5 kernel to 4 channels, stride 2, "same": the
  // output is [2, 5, 5, 4], each value 5 * 5 * 3 multiply-adds; each
  // gradient costs what the forward does.
  const x = tf.randomNormal([2, 9, 9, 3]) as tf.Tensor4D;
  const w = tf.randomNormal([5, 5, 3, 4]) as tf.Tensor4D;
  const forward = 2 * (2 * 5 * 5 * 4) * (5 * 5 * 3);
  const profile = await tf.profile(() => {
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same"))
    )([x, w]);
    // A transposed convolution back to x's shape (G's layers): its forward
    // is Conv2DBackpropInput, the same multiply-adds.
    const t = tf.conv2dTranspose(
      tf.ones([2, 5, 5, 4]) as tf.Tensor4D,
      w,
      [2, 9, 9, 3],
      2,
      "same",
    );
    return [...g, t];
  });
  assert.deepEqual(
    profile.kernels.map((k) => k.name).filter((n) => n.startsWith("Conv"))
      .sort(),
    [
      "Conv2D",
      "Conv2DBackpropFilter",
      "Conv2DBackpropInput",
      "Conv2DBackpropInput",
    ],
  );
  assert.equal(productFlops(profile.kernels), 4 * forward);
  tf.dispose([x, w, profile.result as tf.Tensor[]]);
});
