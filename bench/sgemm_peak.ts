/**
 * The machine's practical peak for the products the training steps run:
 * the system BLAS's sgemm of two 2048 x 2048 matrices, as the wasm backend
 * calls it (`lib/backends/blas.ts`), median of five. Set OPENBLAS_NUM_THREADS=1 for
 * one thread. Usage: `deno run -A bench/sgemm_peak.ts`.
 *
 * @module
 */

import { initBackend } from "../lib/backends/choice.ts";
import { sgemmOrNull } from "../lib/backends/blas.ts";

const info = await initBackend("wasm", { blas: true });
const sgemm = sgemmOrNull();
if (!sgemm) {
  console.error(`no system BLAS loaded (${info.reason})`);
  Deno.exit(1);
}
const n = 2048;
const a = Float32Array.from({ length: n * n }, (_, i) => (i % 97) / 97);
const b = a.slice();
const c = new Float32Array(n * n);
sgemm.times(n, n, n, a, b, c); // warm-up
const ms: number[] = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  sgemm.times(n, n, n, a, b, c);
  ms.push(performance.now() - t);
}
ms.sort((x, y) => x - y);
console.log(
  JSON.stringify({
    n,
    blas: info.reason,
    gflop_per_s: Number((2 * n ** 3 / ms[2] / 1e6).toFixed(1)),
  }),
);
