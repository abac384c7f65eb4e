import assert from "node:assert/strict";
import { symmetricEigen } from "../lib/math/linalg.ts";
import { Rng } from "../lib/random/rng.ts";

const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

Deno.test("symmetric eigendecomposition reconstructs the matrix", () => {
  const rng = new Rng(1);
  const dim = 12;
  const b = rng.fillNormal(new Float32Array(dim * dim));
  const a = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let j = 0; j < dim; j++) {
      for (let k = 0; k < dim; k++) {
        a[i * dim + j] += b[i * dim + k] * b[j * dim + k];
      }
    }
  }
  const { values, vectors } = symmetricEigen(a, dim);
  for (let i = 0; i < dim; i++) {
    for (let j = 0; j < dim; j++) {
      let r = 0;
      for (let k = 0; k < dim; k++) {
        r += vectors[i * dim + k] * values[k] * vectors[j * dim + k];
      }
      close(r, a[i * dim + j], 1e-8);
    }
  }
});

Deno.test("symmetric eigendecomposition: a known 2 x 2 case", () => {
  // [[2, 1], [1, 2]] has eigenvalues 1 and 3, eigenvectors (1, -1) and (1, 1).
  const { values } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
  assert.deepEqual(
    Array.from(values).sort().map((v) => +v.toFixed(12)),
    [1, 3],
  );
});
