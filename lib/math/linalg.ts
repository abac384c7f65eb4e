/**
 * Linear algebra on small dense matrices in float64, for the figures that
 * need an exact answer: the Fréchet distance's matrix square roots
 * (`lib/eval/metrics.ts`) and a kernel's exact largest singular value, the
 * reference spectral normalisation's estimate is checked against
 * (`lib/nets/spectral_norm.ts`).
 *
 * @module
 */

/**
 * Eigenvalues and eigenvectors of a symmetric matrix (cyclic Jacobi
 * rotations). Returns the values and the vectors as columns of a row-major
 * matrix.
 */
export function symmetricEigen(
  matrix: Float64Array,
  dim: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) v[i * dim + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, total = 0;
    for (let p = 0; p < dim; p++) {
      for (let q = 0; q < dim; q++) {
        const x = a[p * dim + q] ** 2;
        total += x;
        if (p !== q) off += x;
      }
    }
    if (off <= 1e-22 * total || off === 0) break;
    for (let p = 0; p < dim - 1; p++) {
      for (let q = p + 1; q < dim; q++) {
        const apq = a[p * dim + q];
        if (apq === 0) continue;
        const app = a[p * dim + p], aqq = a[q * dim + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) /
          (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < dim; k++) {
          const akp = a[k * dim + p], akq = a[k * dim + q];
          a[k * dim + p] = c * akp - s * akq;
          a[k * dim + q] = s * akp + c * akq;
        }
        for (let k = 0; k < dim; k++) {
          const apk = a[p * dim + k], aqk = a[q * dim + k];
          a[p * dim + k] = c * apk - s * aqk;
          a[q * dim + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < dim; k++) {
          const vkp = v[k * dim + p], vkq = v[k * dim + q];
          v[k * dim + p] = c * vkp - s * vkq;
          v[k * dim + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(dim);
  for (let i = 0; i < dim; i++) values[i] = a[i * dim + i];
  return { values, vectors: v };
}
