import assert from "node:assert/strict";
import { NoiseWorkers } from "../lib/random/noise_workers.ts";
import { Rng } from "../lib/random/rng.ts";

Deno.test("worker threads give fillNormal's noise, and the generator goes on the same", async () => {
  for (const workers of [1, 3]) {
    using pool = NoiseWorkers.create({ workers });
    assert.equal(pool.size, workers);
    const a = new Rng(9, workers), b = new Rng(9, workers);
    // Odd sizes, sizes below the worker count, several jobs in flight.
    const sizes = [1, 2, 5, 1001, 12800, 3];
    const jobs = sizes.map((n) => pool.normals(a, n));
    const after = a.nextUint32();
    const want = sizes.map((n) => b.fillNormal(new Float32Array(n)));
    assert.equal(after, b.nextUint32());
    const got = await Promise.all(jobs);
    got.forEach((z, i) => {
      assert.equal(z.length, sizes[i]);
      assert.ok(z.buffer instanceof ArrayBuffer, "ordinary memory");
      assert.deepEqual(new Float32Array(z), want[i], `size ${sizes[i]}`);
    });
  }
});

Deno.test("stopped workers refuse work; bad worker counts are refused", async () => {
  const pool = NoiseWorkers.create({ workers: 1 });
  const pending = pool.normals(new Rng(1), 1_000_000);
  pool.dispose();
  await assert.rejects(pending, /stopped/);
  assert.throws(() => pool.normals(new Rng(1), 4), /stopped/);
  assert.throws(() => NoiseWorkers.create({ workers: 0 }), /positive integer/);
  assert.throws(
    () => NoiseWorkers.create({ workers: 1.5 }),
    /positive integer/,
  );
});
