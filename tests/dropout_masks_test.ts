import assert from "node:assert/strict";
import {
  alea,
  ALEA_CHUNK,
  aleaJumpTable,
  aleaMaskCode,
  aleaStart,
  keepThreshold,
} from "../lib/random/dropout_masks.ts";
import { probeWebGpu } from "../lib/backends/choice.ts";
import { dropoutMask } from "../lib/nets/ops.ts";

const a = 2091639n, b = 1n << 32n, m = a * b ** 3n - 1n;
const big = (limbs: ArrayLike<number>) =>
  Array.from(limbs).reduceRight((v, l) => (v << 32n) + BigInt(l), 0n);

Deno.test("alea's outputs are (Y0 b^-i mod m) mod b from aleaStart's Y0", () => {
  const bInv = a * b * b; // b (a b^2) = m + 1
  for (const seed of [0, 7, 1000, 2 ** 32 - 1 + 1002]) {
    const u = alea(seed);
    let y = big(aleaStart(seed));
    for (let i = 0; i < 500; i++) {
      assert.equal(Number(y % b), u() * 2 ** 32, `seed ${seed}, output ${i}`);
      y = (y * bInv) % m;
    }
  }
});

Deno.test("the jump table's entry s is b^4 b^-(s chunk) mod m", () => {
  const table = aleaJumpTable(5);
  assert.equal(table.length, 20);
  for (let s = 0; s < 5; s++) {
    const t = big(table.subarray(4 * s, 4 * s + 4));
    // t b^(s chunk) = b^4 (mod m)
    assert.equal((t * b ** BigInt(s * ALEA_CHUNK)) % m, b ** 4n % m);
  }
});

Deno.test("keepThreshold reproduces Math.fround(u) < Math.fround(keep)", () => {
  for (const keep of [0.5, 0.8, 0.3, 0.9, 1 / 3]) {
    const thr = keepThreshold(keep), k = Math.fround(keep);
    const test = (x: number) => Math.fround(x / 2 ** 32) < k;
    assert.ok(test(thr - 1), `${keep}: ${thr - 1} is kept`);
    assert.ok(!test(thr), `${keep}: ${thr} is dropped`);
    // Near the threshold, float32 rounding moves it off keep * 2^32.
    assert.ok(Math.abs(thr - keep * 2 ** 32) <= 256);
  }
  assert.equal(keepThreshold(0.5), 2 ** 31 - 64);
});

const probe = await probeWebGpu();

/**
 * A seed for which the jump to one of the first 40 chunks gives a
 * Montgomery product t >= m before its final subtraction.
 */
function needsSubtraction(): number {
  const R = b ** 4n, table = aleaJumpTable(40);
  // Word-by-word reduction adds Q m with Q = -x y m^-1 (mod R).
  const mod = (v: bigint) => ((v % R) + R) % R;
  let mInv = 1n; // Newton's iteration for m^-1 mod 2^128
  for (let i = 0; i < 8; i++) mInv = mod(mInv * (2n - m * mInv));
  for (let seed = 0; seed < 10000; seed++) {
    const x = big(aleaStart(seed));
    for (let s = 0; s < 40; s++) {
      const y = big(table.subarray(4 * s, 4 * s + 4));
      const q = mod(-x * y * mInv);
      if ((x * y + q * m) / R >= m) return seed;
    }
  }
  throw new Error("no seed found");
}

/** Runs the program of `code` over `parts` streams of `len` outputs. */
async function draw(
  device: GPUDevice,
  code: string,
  o: {
    len: number;
    keep: number;
    seeds: readonly number[];
    /** Rows of `row` values whose last `keepLast` are kept (default none). */
    row?: number;
    keepLast?: number;
  },
): Promise<ArrayBuffer> {
  const S = GPUBufferUsage.STORAGE, DST = GPUBufferUsage.COPY_DST;
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: {
      module: device.createShaderModule({ code }),
      entryPoint: "main",
    },
  });
  const { len, keep, seeds } = o, parts = seeds.length;
  const chunks = Math.ceil(len / ALEA_CHUNK);
  const table = aleaJumpTable(chunks);
  const starts = new Uint32Array(seeds.flatMap((s) => aleaStart(s)));
  const settings = new ArrayBuffer(48);
  new Uint32Array(settings).set([
    len,
    parts === 2 ? len : 0,
    keepThreshold(keep),
    0,
    0,
    chunks,
    parts * chunks,
    o.row ?? 0,
    o.keepLast ?? 0,
  ]);
  new Float32Array(settings)[3] = Math.fround(1 / keep);
  const buffer = (size: number, usage: number, data?: BufferSource) => {
    const buf = device.createBuffer({ size, usage });
    if (data) device.queue.writeBuffer(buf, 0, data);
    return buf;
  };
  const out = buffer(parts * len * 4, S | GPUBufferUsage.COPY_SRC);
  const read = buffer(parts * len * 4, GPUBufferUsage.MAP_READ | DST);
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      buffer(table.byteLength, S | DST, table),
      buffer(starts.byteLength, S | DST, starts),
      out,
      buffer(48, GPUBufferUsage.UNIFORM | DST, settings),
    ].map((buf, binding) => ({ binding, resource: { buffer: buf } })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(Math.ceil((parts * chunks) / 64));
  pass.end();
  encoder.copyBufferToBuffer(out, 0, read, 0, parts * len * 4);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = read.getMappedRange().slice(0);
  read.unmap();
  return got;
}

Deno.test({
  name:
    "the WGSL program draws alea's numbers and dropoutMask's masks bit for bit",
  ignore: !probe.ok,
  async fn() {
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    try {
      // The raw outputs: every chunk's jump and every step exact, also for
      // a seed where a chunk's Montgomery product needs its final
      // subtraction (about one jump in 2,000).
      for (const seeds of [[3, 4], [2 ** 32 + 1001], [needsSubtraction()]]) {
        const len = ALEA_CHUNK * 40 + 13;
        const got = new Uint32Array(
          await draw(device, aleaMaskCode(true), { len, keep: 0.5, seeds }),
        );
        seeds.forEach((seed, p) => {
          const u = alea(seed);
          const want = Array.from({ length: len }, () => u() * 2 ** 32);
          assert.deepEqual([...got.subarray(p * len, (p + 1) * len)], want);
        });
      }
      // The masks.
      const cases = [
        { len: 784 * 3, keep: 0.8, seeds: [12, 1012] },
        { len: 240 * 5 + 17, keep: 0.5, seeds: [4294967295] },
        { len: ALEA_CHUNK * 4, keep: 0.5, seeds: [0, 99] },
        { len: 100, keep: 0.3, seeds: [5, 6] },
      ];
      for (const c of cases) {
        const got = new Float32Array(await draw(device, aleaMaskCode(), c));
        c.seeds.forEach((seed, p) => {
          assert.deepEqual(
            got.subarray(p * c.len, (p + 1) * c.len),
            dropoutMask(c.len, c.keep, seed),
            `len ${c.len}, keep ${c.keep}, seed ${seed}`,
          );
        });
      }
      // A conditional D's input: each row's one-hot class (its last 10 of
      // 794 values) kept at 1, the rest as dropoutMask draws it.
      const c = { len: 794 * 3, keep: 0.8, seeds: [7, 1007], row: 794 };
      const got = new Float32Array(
        await draw(device, aleaMaskCode(), { ...c, keepLast: 10 }),
      );
      c.seeds.forEach((seed, p) => {
        const want = dropoutMask(c.len, c.keep, seed);
        for (let r = 0; r < c.len; r += c.row) {
          want.fill(1, r + c.row - 10, r + c.row);
        }
        assert.deepEqual(got.subarray(p * c.len, (p + 1) * c.len), want);
      });
    } finally {
      device.destroy();
    }
  },
});
