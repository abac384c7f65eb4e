import assert from "node:assert/strict";
import {
  BACKEND_CHOICES,
  envChoice,
  envInt,
  MIN_EVAL_SAMPLES,
  NotebookParameterError,
  PRESETS,
  TRAINING_IMAGES,
} from "../lib/notebook/params.ts";
import { DEFAULT_HOLDOUT } from "../lib/run/split.ts";
import { evaluateImages, MIN_SAMPLES } from "../lib/eval/evaluate.ts";
import type { Dataset } from "../lib/data.ts";
import {
  checkParameterCells,
  firstCodeCell,
  NOT_PARAMETERS,
  parameterNames,
  parametersSet,
  QUICK_ENV,
  runEnvironment,
} from "../cli/notebooks.ts";
import { root } from "./run.ts";

const NAME = "GAN_TEST_PARAMETER";

/** Runs `fn` with NAME set to `value` (unset for `undefined`). */
function withValue<T>(value: string | undefined, fn: () => T): T {
  if (value === undefined) Deno.env.delete(NAME);
  else Deno.env.set(NAME, value);
  try {
    return fn();
  } finally {
    Deno.env.delete(NAME);
  }
}

/** The message of the NotebookParameterError `fn` throws. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof NotebookParameterError, String(e));
    return e.message;
  }
  assert.fail("expected a NotebookParameterError");
}

Deno.test("envInt: the variable's integer, or the notebook's value when unset", () => {
  assert.equal(withValue(undefined, () => envInt(NAME, 10, { min: 1 })), 10);
  assert.equal(withValue("3", () => envInt(NAME, 10, { min: 1 })), 3);
  assert.equal(withValue(" 7 ", () => envInt(NAME, 10)), 7);
  assert.equal(
    withValue("0", () => envInt(NAME, 5, { zero: "all", min: 100 })),
    0,
  );
  assert.equal(
    withValue("100", () => envInt(NAME, 0, { zero: "all", min: 100 })),
    100,
  );
});

Deno.test("envInt: bad numbers, negatives, empty strings and non-integers are refused, naming the variable, the value and the range", () => {
  for (
    const bad of [
      "abc",
      "",
      "  ",
      "-5",
      "0",
      "2.5",
      "1e400",
      "9007199254740993",
      "NaN",
      "Infinity",
    ]
  ) {
    const message = refusal(() =>
      withValue(bad, () => envInt(NAME, 10, { min: 1 }))
    );
    assert.equal(
      message,
      `${NAME} must be a positive integer, got ${JSON.stringify(bad)} ` +
        "(unset it to use the notebook's value, 10)",
    );
  }
  assert.match(
    refusal(() => withValue("1", () => envInt(NAME, 10000, { min: 2 }))),
    /must be an integer >= 2, got "1"/,
  );
  // GAN_LIMIT's form: 0 for every image, else one batch at least, and no
  // more than the training split.
  const limit = { zero: "every training image", min: 100, max: 50000 };
  for (const bad of ["50", "50001", "-1"]) {
    assert.match(
      refusal(() => withValue(bad, () => envInt(NAME, 0, limit))),
      new RegExp(
        `^${NAME} must be 0 \\(every training image\\) or an integer from 100 to 50000, got "${bad}"`,
      ),
    );
  }
  // Without `zero`, 0 is like any other value: in the range or not.
  assert.equal(withValue("0", () => envInt(NAME, 1, { min: 0, max: 2 })), 0);
  assert.match(
    refusal(() => withValue("3", () => envInt(NAME, 1, { min: 0, max: 2 }))),
    /must be an integer from 0 to 2, got "3"/,
  );
  assert.match(
    refusal(() => withValue("0", () => envInt(NAME, 1, { min: 1 }))),
    /must be a positive integer, got "0"/,
  );
});

Deno.test("envChoice: one of the choices, or the notebook's value when unset; anything else is refused with the choices", () => {
  assert.equal(
    withValue(undefined, () => envChoice(NAME, "auto", BACKEND_CHOICES)),
    "auto",
  );
  assert.equal(
    withValue("wasm", () => envChoice(NAME, "auto", BACKEND_CHOICES)),
    "wasm",
  );
  for (const bad of ["gpu", "", "WASM", " wasm"]) {
    assert.equal(
      refusal(() =>
        withValue(bad, () => envChoice(NAME, "auto", BACKEND_CHOICES))
      ),
      `${NAME} must be one of auto, webgpu, wasm, cpu, got ${
        JSON.stringify(bad)
      } ` +
        "(unset it to use the notebook's value, auto)",
    );
  }
});

Deno.test("notebook parameters: the bounds are the ones the notebooks need", async () => {
  // GAN_LIMIT's largest value: the training split (60,000 images of either
  // dataset less the holdout), which `limit` cannot exceed.
  assert.equal(TRAINING_IMAGES, 60000 - DEFAULT_HOLDOUT);
  // GAN_EVAL_SAMPLES' smallest value: the evaluation's (one KID subset).
  assert.equal(MIN_EVAL_SAMPLES, MIN_SAMPLES);
  await assert.rejects(
    () =>
      evaluateImages(new Float32Array((MIN_SAMPLES - 1) * 784), {
        dataset: {} as Dataset,
      }),
    /an evaluation needs at least 1000 images \(one KID subset\), got 999/,
  );
  // --quick's GAN_LIMIT holds one batch of every preset the notebooks offer.
  for (const p of ["paper", "bn", "mlp", "cgan", "sngan", "dcgan"]) {
    assert.ok(Number(QUICK_ENV.GAN_LIMIT) >= PRESETS[p].batchSize, p);
  }
});

Deno.test("deno task notebooks: which GAN_* variables are parameters, and --quick's values give way to the user's", () => {
  assert.deepEqual(
    parametersSet({
      GAN_LIMIT: "1",
      GAN_EPOCHS: "",
      GAN_DATA_DIR: "/d",
      GAN_CACHE_DIR: "/c",
      HOME: "/h",
    }),
    ["GAN_EPOCHS", "GAN_LIMIT"],
  );
  // cli/run_notebook.py leaves the same ones out of a run's recorded
  // parameters.
  const py = Deno.readTextFileSync(`${root}cli/run_notebook.py`);
  for (const k of NOT_PARAMETERS) assert.ok(py.includes(`"${k}"`), k);
  const quick = runEnvironment(true, { GAN_EPOCHS: "3" });
  assert.equal(quick.env.GAN_EPOCHS, undefined);
  assert.equal(quick.env.GAN_LIMIT, QUICK_ENV.GAN_LIMIT);
  assert.deepEqual(quick.notes, [
    "GAN_EPOCHS=3 from the environment overrides --quick's 1",
  ]);
  const full = runEnvironment(false, { GAN_EPOCHS: "3" });
  assert.deepEqual(parametersSet(full.env), []);
  assert.deepEqual(full.notes, []);
});

Deno.test({
  name:
    "notebooks' parameter cells: their defaults and --quick's values pass, a bad value is refused by every notebook, naming it",
  sanitizeResources: false,
  fn: async () => {
    const dir = `${root}notebooks`;
    const notebooks = [...Deno.readDirSync(dir)]
      .filter((e) => e.name.endsWith(".ipynb"))
      .map((e) => {
        const path = `${dir}/${e.name}`;
        return { name: e.name, path, source: firstCodeCell(path) };
      });
    assert.ok(notebooks.length >= 4);
    const base = Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([k]) =>
        !k.startsWith("GAN_")
      ),
    );
    for (const n of notebooks) {
      assert.match(n.source, /lib\/notebook\/params\.ts/, n.name);
      assert.ok(parameterNames(n.source).includes("GAN_EPOCHS"), n.name);
    }
    assert.deepEqual(await checkParameterCells(notebooks, base), []);
    assert.deepEqual(
      await checkParameterCells(notebooks, { ...base, ...QUICK_ENV }),
      [],
    );
    const bad = await checkParameterCells(notebooks, {
      ...base,
      GAN_EPOCHS: "abc",
    });
    assert.deepEqual(
      bad.map((p) => p.name).sort(),
      notebooks.map((n) => n.name).sort(),
    );
    for (const p of bad) {
      assert.ok(p.parameter);
      assert.match(
        p.message,
        /^GAN_EPOCHS must be a positive integer, got "abc"/,
      );
    }
  },
});
