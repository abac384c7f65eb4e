/**
 * How a matrix product is spread over the GPU: the tile of C per
 * workgroup, and whether K is split into runs whose partial products a
 * second program adds. Chosen by shape alone, so deterministic.
 *
 * @module
 */

/** The side of the square tile of C that one matMul workgroup computes. */
export type MatMulTile = 64 | 128;

/**
 * How one matMul is spread over the GPU: the tile of C per workgroup, and
 * with `splits` > 1, K cut into `splits` runs of `chunk` (the last may be
 * shorter), each workgroup row computing a partial product, which a second
 * program adds up in order (split-K).
 */
export interface MatMulPlan {
  tile: MatMulTile;
  splits: number;
  chunk: number;
}

/**
 * Which matMul programs a {@linkcode WgslStep} uses:
 * - `"auto"` (the default): by shape, {@linkcode matMulPlan}'s choice;
 * - `"plain"`: 64 x 64 tiles, K never split (the step before split-K and
 *   the wider tile, for comparison);
 * - `{ tile, chunk }`: every product on `tile`, and every weight gradient's
 *   K split into runs of `chunk` (best a multiple of 16) where it is longer.
 */
export type MatMulChoice = "auto" | "plain" | {
  tile: MatMulTile;
  chunk?: number;
};

/**
 * The auto plan of C[M, N] = A[M, K] B[K, N]. The tile is 128 x 128 when
 * there are at least 256 of them (enough workgroups for a large GPU; each
 * thread then computes 8 x 8 outputs, twice the arithmetic per value read
 * of a 64 x 64 tile's 4 x 4) and M and N are both at least 128 (a narrower
 * product would leave most of each wide tile idle); otherwise 64 x 64. A product whose epilogue
 * allows it (`splittable`: weight gradients, K = the batch) and whose 64 x 64
 * tiles number fewer than 1,024 has its K split so that the runs give about
 * 1,024 workgroups, each run at least 256 long and the partial products at
 * most `maxFloats` floats (one buffer binding): at batch 8192, D's first
 * weight gradient (784 x 1024, K = 16,384) has 208 tiles, so 5 runs of
 * 3,280. The tile changes the order of no addition (each output adds its K
 * products in order), so not a bit of the result; a split adds the runs'
 * sums, which changes the result by float rounding only.
 */
export function matMulPlan(
  shape: { M: number; N: number; K: number },
  options: { splittable?: boolean; maxFloats?: number } = {},
): MatMulPlan {
  const { M, N, K } = shape;
  const wide = Math.ceil(M / 128) * Math.ceil(N / 128);
  if (wide >= 256 && Math.min(M, N) >= 128) {
    return { tile: 128, splits: 1, chunk: K };
  }
  const tiles = Math.ceil(M / 64) * Math.ceil(N / 64);
  if (!options.splittable || tiles >= 1024) {
    return { tile: 64, splits: 1, chunk: K };
  }
  let splits = Math.min(Math.floor(K / 256), Math.ceil(1024 / tiles));
  const maxFloats = options.maxFloats ?? Infinity;
  splits = Math.min(splits, Math.floor(maxFloats / (M * N)));
  if (splits < 2) return { tile: 64, splits: 1, chunk: K };
  return splitPlan(64, K, Math.ceil(K / splits / 16) * 16);
}

/** The plan of K cut into runs of `chunk` (at least one run). */
export function splitPlan(
  tile: MatMulTile,
  K: number,
  chunk: number,
): MatMulPlan {
  const splits = Math.max(1, Math.ceil(K / chunk));
  return splits === 1 ? { tile, splits: 1, chunk: K } : { tile, splits, chunk };
}
