/**
 * The figures a reader sees stand in one place: each committed generator's
 * `eval.json` (the JSON line of `deno task eval --checkpoint models/NAME`).
 * The README's results table must state them as they are there, and
 * docs/results.md, which explains them, must state the same. The presets'
 * table in docs/training.md is checked against `PRESETS` itself.
 */

import assert from "node:assert/strict";
import { PRESET_NAMES, PRESETS } from "../lib/presets.ts";
import { root } from "./run.ts";

/** The README's results table: one row per committed generator. */
function readmeRows(): { name: string; cells: string[] }[] {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const section = readme.slice(readme.indexOf("## Results"));
  return section.split("\n")
    .filter((l) => l.startsWith("| `models/"))
    .map((l) => {
      const cells = l.split("|").slice(1, -1).map((c) => c.trim());
      return { name: cells[0].replace(/`models\/(.*)`/, "$1"), cells };
    });
}

/** `x` written with as many decimals as `shown` has. */
const like = (x: number, shown: string) =>
  x.toFixed((shown.split(".")[1] ?? "").length);

Deno.test("the README's results are each committed generator's eval.json, and docs/results.md says the same", () => {
  const rows = readmeRows();
  const generators = [...Deno.readDirSync(`${root}models`)]
    .filter((e) => e.isDirectory && e.name !== "classifier")
    .map((e) => e.name).sort();
  assert.deepEqual(rows.map((r) => r.name).sort(), generators);
  const results = Deno.readTextFileSync(`${root}docs/results.md`);
  for (const { name, cells } of rows) {
    const e = JSON.parse(
      Deno.readTextFileSync(`${root}models/${name}/eval.json`),
    );
    const [, , , parzen, fid, classes, asked] = cells;
    const [ll, se] = parzen.split(" +- ");
    assert.equal(ll, like(e.parzen_ll, ll), `${name}: Parzen`);
    assert.equal(se, like(e.parzen_se, se), `${name}: Parzen's error`);
    assert.equal(fid, like(e.fid, fid), `${name}: FID`);
    assert.equal(Number(classes), e.classes_ge_1pct, `${name}: classes`);
    if (e.conditional_acc !== undefined) {
      assert.equal(
        asked,
        `${like(100 * e.conditional_acc, asked.replace("%", ""))}%`,
        `${name}: of the class asked for`,
      );
    } else {
      assert.equal(asked, "", name);
    }
    assert.ok(
      results.includes(parzen),
      `docs/results.md states ${name}'s Parzen estimate, ${parzen}`,
    );
  }
});

Deno.test("docs/results.md's table past FID is each committed generator's eval.json", () => {
  const results = Deno.readTextFileSync(`${root}docs/results.md`);
  const section = results.slice(
    results.indexOf("### Past FID"),
    results.indexOf("### The paper's Figure 2"),
  );
  const rows = section.split("\n").filter((l) => l.startsWith("| `models/"))
    .map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
  const generators = [...Deno.readDirSync(`${root}models`)]
    .filter((e) => e.isDirectory && e.name !== "classifier")
    .map((e) => e.name).sort();
  assert.deepEqual(
    rows.map((r) => r[0].replace(/`models\/(.*)`/, "$1")).sort(),
    generators,
  );
  for (const [cell, fid, kid, ...rest] of rows) {
    const name = cell.replace(/`models\/(.*)`/, "$1");
    const e = JSON.parse(
      Deno.readTextFileSync(`${root}models/${name}/eval.json`),
    );
    assert.equal(fid, like(e.fid, fid), `${name}: FID`);
    const [mean, sd] = kid.split(" +- ");
    assert.equal(mean, like(1000 * e.kid, mean), `${name}: KID`);
    assert.equal(sd, like(1000 * e.kid_std, sd), `${name}: KID's spread`);
    const keys = [
      "precision",
      "recall",
      "density",
      "coverage",
      "copying_ct",
      "copying_distance_ratio",
    ];
    keys.forEach((key, i) =>
      assert.equal(rest[i], like(e[key], rest[i]), `${name}: ${key}`)
    );
  }
});

Deno.test("docs/training.md's preset table lists every preset, with its batch size and learning rate", () => {
  const doc = Deno.readTextFileSync(`${root}docs/training.md`);
  const section = doc.slice(
    doc.indexOf("## Presets"),
    doc.indexOf("## Conditional GANs"),
  );
  const rows = section.split("\n").filter((l) => /^\| `[a-z0-9-]+` /.test(l))
    .map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
  assert.deepEqual(rows.map((r) => r[0].replaceAll("`", "")), [
    ...PRESET_NAMES,
  ]);
  for (const [name, , , optimiser] of rows) {
    const c = PRESETS[name.replaceAll("`", "")];
    const batch = optimiser.match(/batch (\d+)/);
    if (batch) assert.equal(Number(batch[1]), c.batchSize, `${name}: batch`);
    const lr = optimiser.match(/(?:Adam|lr) ([\d.e-]+)/);
    if (lr) {
      assert.equal(Number(lr[1]), c.optimizerG.lr, `${name}: learning rate`);
    }
    assert.ok(
      batch || /^as `/.test(optimiser),
      `${name} states its batch or refers to a preset`,
    );
  }
});

Deno.test("the README stays within 250 lines and its layout names every part of lib/", () => {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const lines = readme.split("\n").length - (readme.endsWith("\n") ? 1 : 0);
  assert.ok(lines <= 250, `README.md has ${lines} lines; keep it within 250`);
  const layout = readme.slice(readme.indexOf("## Layout"));
  const entry = layout.slice(
    layout.indexOf("\nlib/"),
    layout.indexOf("\nbench/"),
  );
  for (const e of Deno.readDirSync(`${root}lib`)) {
    const name = e.isDirectory ? `${e.name}/` : e.name;
    assert.ok(
      entry.includes(name),
      `the README's layout does not name lib/${name}`,
    );
  }
});
