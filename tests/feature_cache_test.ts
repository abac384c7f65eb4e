import assert from "node:assert/strict";
import { initBackend } from "../lib/backends/choice.ts";
import { head, loadDataset } from "../lib/data.ts";
import { classify, loadClassifier } from "../lib/eval/classifier.ts";
import { cachedFeatures } from "../lib/eval/feature_cache.ts";
import { defaultClassifierDir } from "../lib/eval/evaluate.ts";
import { toFloat } from "../lib/data.ts";

await initBackend("wasm");

Deno.test("cachedFeatures: computed once, then read; a damaged file is computed again; an unwritable cache is only a note", async () => {
  const mnist = await loadDataset("mnist", { log: () => {} });
  const images = head(mnist.train, 40).images;
  const dir = await Deno.makeTempDir();
  const classifierDir = defaultClassifierDir("mnist");
  const { model } = await loadClassifier(classifierDir);
  try {
    const notes: string[] = [];
    const options = {
      cacheDir: `${dir}/features`,
      log: (m: string) => notes.push(m),
    };
    const want = (await classify(model, toFloat(images, "[0,1]"))).features;
    const first = await cachedFeatures(model, classifierDir, images, options);
    assert.deepEqual(first, want);
    const files = [...Deno.readDirSync(`${dir}/features`)].map((e) => e.name);
    assert.equal(files.length, 1);
    // Read back without the classifier: a disposed model would throw.
    const disposed = (await loadClassifier(classifierDir)).model;
    disposed.dispose();
    assert.deepEqual(
      await cachedFeatures(disposed, classifierDir, images, options),
      want,
    );
    // Other images: another file.
    await cachedFeatures(
      model,
      classifierDir,
      head(mnist.train, 41).images,
      options,
    );
    assert.equal([...Deno.readDirSync(`${dir}/features`)].length, 2);
    // A flipped byte: noted, computed again, repaired.
    const path = `${dir}/features/${files[0]}`;
    const bytes = await Deno.readFile(path);
    bytes[100] ^= 1;
    await Deno.writeFile(path, bytes);
    assert.deepEqual(
      await cachedFeatures(model, classifierDir, images, options),
      want,
    );
    assert.match(
      notes.join("\n"),
      /feature cache .* is damaged; computing it again/,
    );
    assert.deepEqual(
      await cachedFeatures(disposed, classifierDir, images, options),
      want,
    );
    // A file where the cache folder should be: the features all the same.
    await Deno.writeTextFile(`${dir}/blocked`, "");
    const blocked = await cachedFeatures(model, classifierDir, images, {
      cacheDir: `${dir}/blocked/features`,
      log: (m) => notes.push(m),
    });
    assert.deepEqual(blocked, want);
    assert.match(notes.at(-1)!, /feature cache not written/);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
