import assert from "node:assert/strict";
import { initBackend, probeWebGpu } from "../lib/backends/choice.ts";
import { type Dataset, loadDataset } from "../lib/data.ts";
import { createGan, disposeGan } from "../lib/gan.ts";
import { type GanConfig, preset } from "../lib/presets.ts";
import { train } from "../lib/train.ts";
import {
  compareWithPlainPlan,
  compareWithTfjs,
  SLOT_TOLERANCE,
} from "../lib/wgsl/check.ts";

const probe = await probeWebGpu();

/** Small nets of each preset's kinds of layer and update. */
function small(name: string): GanConfig {
  const c = preset(name);
  c.generator.hidden = [24, 40];
  c.discriminator.hidden = name === "paper" || name === "pylearn2"
    ? [12, 10]
    : [48, 20];
  c.batchSize = 20;
  // The paper's small initial D passes G almost no gradient: larger.
  c.discriminator.initRange = c.discriminator.initRange && 0.2;
  return c;
}

/**
 * A bias gradient that loses a quarter of its rows' sum: what a race
 * between a workgroup's threads (a missing barrier) could do on a GPU.
 */
const LOSE_PART: (code: string) => string = (code) =>
  code.replace(" + part[192u + lid.x]", "");

Deno.test({
  name:
    "webgpu: the WGSL step is compared with the tfjs step; a broken program is caught",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    for (const name of ["mlp", "paper", "bn", "pylearn2"]) {
      const gan = createGan(small(name), { seed: 2 });
      const c = await compareWithTfjs(gan, { steps: 3 });
      assert.ok(c.ok, `${name}: ${c.maxDifference} at ${c.where}`);
      assert.ok(
        c.maxDifference < c.tolerance / 10,
        `${name}: ${c.maxDifference}`,
      );
      assert.equal(c.steps, 3);
      const broken = await compareWithTfjs(gan, {
        wgsl: { transformProgram: LOSE_PART },
      });
      assert.equal(broken.ok, false, `${name}: the broken program passed`);
      assert.ok(broken.optimizer > SLOT_TOLERANCE * 10, name);
      // The GAN itself is left as it was.
      assert.equal(gan.optimizerD.step, 0);
      disposeGan(gan);
      console.log(
        `  ${name}: ${c.maxDifference.toExponential(1)}; broken: ` +
          `${broken.maxDifference.toExponential(1)} at ${broken.where}`,
      );
    }
    // A reuse round (G's step on D's batch: zG = zD, the same masks).
    const reuse = createGan({ ...small("bn"), update: "reuse" }, { seed: 2 });
    const r = await compareWithTfjs(reuse, { steps: 3 });
    assert.ok(r.ok, `bn, reuse: ${r.maxDifference} at ${r.where}`);
    disposeGan(reuse);
  },
});

Deno.test({
  name:
    "webgpu: training's self-check falls back to the tfjs step when the WGSL step is wrong; --step wgsl skips it",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    const mnist = await loadDataset("mnist", { log: () => {} });
    const run = async (over: object) => {
      const lines: string[] = [];
      const r = await train({
        config: small("mlp"),
        dataset: mnist as Dataset,
        epochs: 1,
        limit: 40,
        holdout: 0,
        log: (m) => lines.push(m),
        ...over,
      });
      disposeGan(r.gan);
      return lines.join("\n");
    };
    // A software adapter is not checked unless asked (the tests cover it).
    const plain = await run({});
    assert.doesNotMatch(plain, /self-check/);
    assert.match(plain, /training step: WGSL programs/);

    const good = await run({ selfCheck: "always" });
    assert.match(
      good,
      /self-check: on .* the WGSL step agrees with the tfjs step within/,
    );
    assert.match(good, /training step: WGSL programs/);

    const bad = await run({
      selfCheck: "always",
      wgsl: { transformProgram: LOSE_PART },
    });
    assert.match(
      bad,
      /self-check: on .* the WGSL step differs from the tfjs step by .* training with the tfjs step instead/,
    );
    assert.match(
      bad,
      /training step: tfjs ops \(the WGSL step failed its self-check on /,
    );

    // --step wgsl: no check, the (broken) WGSL step trains as asked.
    const asked = await run({
      step: "wgsl",
      selfCheck: "always",
      wgsl: { transformProgram: LOSE_PART },
    });
    assert.doesNotMatch(asked, /self-check/);
    assert.match(asked, /training step: WGSL programs/);
  },
});

Deno.test({
  name:
    "webgpu: the matMul plans by shape (wide tiles, split K) agree with the plain tiles",
  ignore: !probe.ok,
  fn: async () => {
    await initBackend("webgpu");
    // At batch 512 the weight gradients' products are split along K.
    const config = small("mlp");
    config.batchSize = 512;
    const gan = createGan(config, { seed: 3 });
    const c = await compareWithPlainPlan(gan, { steps: 2 });
    assert.ok(c.ok, `${c.maxDifference} at ${c.where}`);
    assert.equal(c.figures, 0, "the figures do not depend on the plan");
    disposeGan(gan);
  },
});
