import assert from "node:assert/strict";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { snParts } from "../lib/wgsl/spectral_norm_programs.ts";
import {
  compareSpectralNorm,
  compareSpectralNorms,
} from "../lib/wgsl/sn_weight.ts";

await initBackend("cpu");
const probe = await probeWebGpu();

Deno.test("snParts: a power of two, at most 256 / out, at least 1", () => {
  assert.deepEqual([1, 3, 5, 64, 128, 129, 1024].map(snParts), [
    256,
    64,
    32,
    4,
    2,
    1,
    1,
  ]);
});

/**
 * The weight shapes [rest, out]: odd dense and convolutional ones, D's
 * output (6,272 x 1), sngan's second convolution (4 x 4 x 64 x 128), and
 * more outputs than threads (several sweeps of Wt^T v).
 */
const SHAPES: [number[], string][] = [
  [[16, 5], "dense 16 -> 5"],
  [[4, 4, 3, 7], "conv 4x4, 3 -> 7"],
  [[5, 5, 1, 2], "conv 5x5, 1 -> 2"],
  [[6272, 1], "D's output 6272 -> 1"],
  [[4, 4, 64, 128], "sngan D2 4x4, 64 -> 128"],
  [[70, 300], "dense 70 -> 300"],
  // Past one workgroup's 1,048,576 values: the programs over many
  // workgroups (sngan-fc's dense layer).
  [[6272, 1024], "sngan-fc D 6272 -> 1024"],
  [[1100, 1000], "dense 1100 -> 1000"],
];

Deno.test({
  name:
    "webgpu: spectral normalisation in WGSL equals lib/nets/spectral_norm.ts (u, v, sigma, W / sigma, the gradient through sigma)",
  ignore: !probe.ok,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    try {
      // Each weight alone, then all of them in one list, as a network's
      // pass takes them: the small ones share a dispatch each way, a
      // workgroup a weight, with settings of their own.
      const together = await compareSpectralNorms(
        device,
        SHAPES.map(([shape]) => shape),
        { seed: 99 },
      );
      const runs = [];
      for (const [i, [shape]] of SHAPES.entries()) {
        runs.push(await compareSpectralNorm(device, shape, { seed: i }));
      }
      runs.push(...together);
      for (const [j, c] of runs.entries()) {
        const [shape, alone] = SHAPES[j % SHAPES.length];
        const what = j < SHAPES.length ? alone : `${alone}, in the list`;
        // u, v and sigma after three power iterations, W / sigma and the
        // gradient through sigma, each against tfjs's.
        for (const key of ["u", "v", "sigma", "wn", "grad"] as const) {
          assert.ok(c[key] < 2e-5, `${key}, ${what}: ${c[key]}`);
        }
        // sigma is near the largest singular value, from below: the
        // test's weights are not trivial.
        assert.ok(
          Number.isNaN(c.sigmaShare) && shape[0] * shape[1] > 1e6 ||
            c.sigmaShare > 0.5 && c.sigmaShare <= 1 + 1e-4,
          `sigma / largest singular value ${c.sigmaShare}, ${what}`,
        );
      }
    } finally {
      device.destroy();
    }
  },
});
