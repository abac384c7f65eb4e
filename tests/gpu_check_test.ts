/**
 * The prepared GPU check, end to end on the software adapter: the folder
 * `deno task gpu:prepare` writes, and `bench/gpu_check.sh --quick` run from
 * it with its own Deno, bundles, Vulkan loader and data, so that the check
 * is known to work before it meets a GPU.
 */

import assert from "node:assert/strict";
import { probeWebGpu } from "../lib/backends/choice.ts";
import { root, runCommand } from "./run.ts";
import { benchRuns, CHECK_PARTS, torchRuns } from "../bench/gpu_check_args.ts";

const probe = await probeWebGpu();

Deno.test({
  name:
    "gpu:prepare writes everything a bare GPU machine needs (under 64 MiB); gpu_check.sh runs from it",
  ignore: !probe.ok,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const gpu = `${dir}/gpu`;
      const prep = await runCommand(Deno.execPath(), [
        "run",
        "-A",
        `${root}bench/gpu_prepare.ts`,
        "--quick",
        "--out",
        gpu,
      ]);
      assert.equal(prep.code, 0, prep.stderr);
      const manifest = JSON.parse(
        await Deno.readTextFile(`${gpu}/manifest.json`),
      );
      for (
        const f of [
          "deno.xz",
          "node_modules.tar.xz",
          "bundles.tar.xz",
          "reference.json",
          "data/mnist/train-images-idx3-ubyte.gz",
        ]
      ) {
        assert.ok(manifest.files[f] > 0, f);
      }
      assert.ok(
        Object.keys(manifest.files).some((f) => f.endsWith("libvulkan.so.1")) ||
          Object.keys(manifest.files).some((f) =>
            /libvulkan\.so\.1\.\d/.test(f)
          ),
        "the Vulkan loader is there",
      );
      assert.ok(
        Object.keys(manifest.files).some((f) => /libEGL\.so\.1\.\d/.test(f)),
        "glvnd's EGL library (NVIDIA's Vulkan driver loads it) is there",
      );
      assert.ok(
        manifest.total_bytes < 64 * 1024 * 1024,
        `${manifest.total_bytes} bytes`,
      );
      assert.equal(manifest.deno.version, Deno.version.deno);

      const out = `${dir}/out`;
      const r = await new Deno.Command("bash", {
        args: [`${root}bench/gpu_check.sh`, "--quick"],
        cwd: root,
        // What a bare machine has: no Deno on the PATH.
        env: { GPU_DIR: gpu, OUT: out, PATH: "/usr/bin:/bin" },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(r.stdout) +
        new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 0, text);
      assert.match(text, /adapter: llvmpipe/);
      assert.match(text, /the WGSL step is correct here; every part ran/);
      const report = JSON.parse(
        await Deno.readTextFile(`${out}/gpu-check.json`),
      );
      assert.equal(report.correct, true);
      for (const part of CHECK_PARTS) {
        assert.equal(report[part].ok, true, part);
      }
      // The convolution programs: three products of five layers' shapes.
      assert.equal(report.conv.result.length, 15);
      // The spectral-norm programs at four weights' shapes, each right
      // alone and in one list.
      const sn = report["spectral-norm"].result;
      assert.equal(sn.length, 8);
      for (const r of sn) assert.ok(r.worst < 1e-4, JSON.stringify(r));
      // Every preset's kind of step and the plans, compared.
      assert.deepEqual(
        Object.keys(report.correctness.result).sort(),
        [
          "bn",
          "cgan",
          "dcgan-sgd",
          "keras-mlp",
          "mlp",
          "mlp-cond",
          "paper",
          "paper-cond",
          "paper-hinge",
          "plans-b512",
          "pylearn2",
          "sngan",
          "sngan-cond-sgd",
        ],
      );
      // The bench of an MLP and of a convolutional preset, on both steps.
      const bench = report.bench.result;
      assert.deepEqual(
        bench.map((l: { model: string; step: string }) =>
          `${l.model} ${l.step}`
        ).sort(),
        ["mlp tfjs", "mlp wgsl", "sngan tfjs", "sngan wgsl"],
      );
      // The epoch on WebGPU against the CPU's, from the same seed.
      const train = report.train.result;
      assert.ok(train.differences.dLoss < 1e-3, JSON.stringify(train));
      // sngan-fc's epoch, on the WGSL step that --step auto chose.
      const fc = report["train-sngan-fc"].result;
      assert.match(fc.step, /training step: WGSL programs/);
      assert.match(fc.epochLine, /^epoch 1\/1 +D /);
      for (const grid of ["paper-epoch1-webgpu", "sngan-fc-epoch1-webgpu"]) {
        const png = await Deno.readFile(`${out}/${grid}.png`);
        assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], grid);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("gpu_check.sh without a prepared folder says what to run", async () => {
  const r = await new Deno.Command("bash", {
    args: [`${root}bench/gpu_check.sh`],
    env: { GPU_DIR: "/nonexistent-gpu-folder" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 2);
  assert.match(
    new TextDecoder().decode(r.stderr),
    /no prepared folder at \/nonexistent-gpu-folder: run 'deno task gpu:prepare' first/,
  );
});

Deno.test("the GPU check times the MLPs, keras-mlp and the convolutional presets on both steps, and PyTorch at the same models and batches", () => {
  const runs = benchRuns(false);
  const wgsl = new Set(
    runs.filter((r) => r.steps.includes("wgsl")).flatMap((r) =>
      r.models.flatMap((m) => r.batches.map((b) => `${m} ${b}`))
    ),
  );
  for (const m of ["dcgan", "sngan", "sngan-fc"]) {
    for (const b of [128, 256, 1024]) assert.ok(wgsl.has(`${m} ${b}`), m);
  }
  for (const m of ["mlp", "paper"]) {
    for (const b of [128, 8192]) assert.ok(wgsl.has(`${m} ${b}`), m);
  }
  assert.ok(wgsl.has("keras-mlp 128"), "keras-mlp");
  assert.deepEqual(torchRuns(runs), [
    { models: ["mlp", "paper"], batches: [128, 8192] },
    { models: ["keras-mlp"], batches: [128] },
    { models: ["dcgan", "sngan", "sngan-fc"], batches: [128, 256, 1024] },
  ]);
  // PyTorch's reference has every model the check times.
  const torch = Deno.readTextFileSync(`${root}bench/reference_torch.py`);
  for (const r of runs) {
    for (const m of r.models) {
      assert.match(torch, new RegExp(`"${m}"`));
    }
  }
});

Deno.test("gpu_check --only with a part that does not exist names the parts", async () => {
  const r = await runCommand(Deno.execPath(), [
    "run",
    "-A",
    `${root}bench/gpu_check.ts`,
    "--only",
    "bench,speed",
  ]);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /--only: no part named speed; the parts: correctness, conv, spectral-norm, bench, torch, train, train-sngan-fc/,
  );
});
