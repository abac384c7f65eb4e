/**
 * lib/'s imports flow one way: entry points (the notebooks' helpers) -> the
 * training loop -> runs, rounds, evaluation, the WGSL step -> the game ->
 * presets -> networks -> data, pictures -> backends, I/O, randomness and
 * linear algebra at the bottom. A module may import only from parts below
 * its own (or from its own folder).
 */

import assert from "node:assert/strict";
import { root } from "./run.ts";

/** Each part of lib/ (a top-level file or a folder) and its level. */
const LEVELS: Record<string, number> = {
  "backends": 0,
  "io": 0,
  "math": 0,
  "random": 0,
  // Datasets in memory and their batches; data.ts loads them from files.
  "splits.ts": 1,
  "data.ts": 1.5,
  "pictures": 1,
  "nets": 2,
  "presets.ts": 3,
  // Checks presets' configurations; the game (level 4) calls it.
  "config_check.ts": 3.5,
  // The losses of the game; the game (level 4) takes their gradients.
  "losses.ts": 3.5,
  "gan.ts": 4,
  "eval": 5,
  "toy.ts": 5,
  "wgsl": 5,
  "rounds.ts": 6,
  "run": 6,
  // One epoch of rounds: the inner loop of Algorithm 1, for train.ts and
  // the web page.
  "epoch.ts": 6.5,
  "train.ts": 7,
  "notebook": 8,
};

/** Every .ts file under `dir`, relative to lib/. */
function modules(dir = ""): string[] {
  return [...Deno.readDirSync(`${root}lib/${dir}`)].flatMap((e) =>
    e.isDirectory
      ? modules(`${dir}${e.name}/`)
      : e.name.endsWith(".ts")
      ? [`${dir}${e.name}`]
      : []
  );
}

/** The part of lib/ a path relative to lib/ is in. */
const partOf = (path: string) => path.split("/")[0];

/** `relative` resolved from the folder of `from` (both relative to lib/). */
function resolve(from: string, relative: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const p of relative.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

Deno.test("every part of lib/ has a level, and imports only from below it", () => {
  const wrong: string[] = [];
  for (const file of modules()) {
    const part = partOf(file);
    assert.ok(part in LEVELS, `lib/${part} has no level in this test`);
    const source = Deno.readTextFileSync(`${root}lib/${file}`);
    for (const [, spec] of source.matchAll(/from "(\.{1,2}\/[^"]+)"/g)) {
      const target = partOf(resolve(file, spec));
      if (target === part) continue;
      assert.ok(target in LEVELS, `lib/${file} imports ${spec}, outside lib/`);
      if (LEVELS[target] >= LEVELS[part]) {
        wrong.push(
          `lib/${file} imports ${spec} (${target} is not below ${part})`,
        );
      }
    }
  }
  assert.deepEqual(wrong, []);
});
