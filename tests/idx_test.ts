import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  encodeIdx,
  expectDims,
  IdxError,
  parseIdx,
  readIdxFile,
  writeIdxFile,
} from "../lib/io/idx.ts";

const sample = {
  dims: [3, 2, 4],
  data: Uint8Array.from({ length: 24 }, (_, i) => i * 10),
};

Deno.test("IDX round trip, plain and gzipped", async () => {
  const bytes = encodeIdx(sample);
  assert.deepEqual([...bytes.subarray(0, 4)], [0, 0, 8, 3]);
  assert.equal(bytes.length, 4 + 12 + 24);
  const plain = parseIdx(bytes);
  assert.deepEqual(plain.dims, sample.dims);
  assert.deepEqual(plain.data, sample.data);
  const zipped = parseIdx(new Uint8Array(gzipSync(bytes)));
  assert.deepEqual(zipped.dims, sample.dims);
  assert.deepEqual(zipped.data, sample.data);

  const dir = await Deno.makeTempDir();
  await writeIdxFile(`${dir}/a-idx3-ubyte`, sample);
  const back = await readIdxFile(`${dir}/a-idx3-ubyte`);
  assert.deepEqual(back.data, sample.data);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
    "a-idx3-ubyte",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("corrupt magic number names the file and the bytes", () => {
  const bytes = encodeIdx(sample);
  bytes[0] = 0x50; // "P", as in a PNG or an HTML error page
  assert.throws(
    () => parseIdx(bytes, "x/train-images"),
    (e: Error) =>
      e instanceof IdxError && e.message.startsWith("x/train-images:") &&
      /not an IDX file: magic number 0x50 0x00 0x08 0x03/.test(e.message),
  );
});

Deno.test("unsupported data type is named", () => {
  const bytes = encodeIdx(sample);
  bytes[2] = 0x0d;
  assert.throws(
    () => parseIdx(bytes, "f"),
    /0x0d \(float32\) is not supported/,
  );
});

Deno.test("truncated file and truncated header are errors", () => {
  const bytes = encodeIdx(sample);
  assert.throws(
    () => parseIdx(bytes.subarray(0, bytes.length - 5), "t"),
    /t: truncated: header says 3 x 2 x 4 = 24 bytes of data, file holds 19/,
  );
  assert.throws(() => parseIdx(bytes.subarray(0, 9), "t"), /truncated header/);
  assert.throws(() => parseIdx(bytes.subarray(0, 2), "t"), /too short/);
  const long = new Uint8Array(bytes.length + 3);
  long.set(bytes);
  assert.throws(() => parseIdx(long, "t"), /3 unexpected bytes/);
});

Deno.test("truncated gzip is an error, not a partial array", () => {
  const zipped = new Uint8Array(gzipSync(encodeIdx(sample)));
  assert.throws(
    () => parseIdx(zipped.subarray(0, zipped.length - 10), "z.gz"),
    /z.gz: corrupt or truncated gzip data/,
  );
});

Deno.test("wrong dimensions are reported with both shapes", () => {
  assert.throws(
    () => expectDims(sample, [null, 28, 28], "imgs"),
    /imgs: wrong dimensions 3 x 2 x 4, expected N x 28 x 28/,
  );
  expectDims(sample, [3, null, 4], "imgs");
});

Deno.test("encode rejects data that does not match dims", () => {
  assert.throws(
    () => encodeIdx({ dims: [2, 2], data: new Uint8Array(3) }),
    /need 4 values, got 3/,
  );
});
