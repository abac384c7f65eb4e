/**
 * Helpers the WGSL steps' tests share: a GAN's whole state by name, and a
 * run played once whole and once resumed.
 *
 * @module
 */

import { type PixelRange, toFloat } from "../lib/data.ts";
import { type Gan, ganVariables } from "../lib/gan.ts";
import { logicalName } from "../lib/nets/optim.ts";

/** Every variable of a GAN (u and v, running statistics too), slot and average, by name. */
export async function state(gan: Gan): Promise<Map<string, number[]>> {
  return new Map(
    await Promise.all(
      ganVariables(gan).map(async (v): Promise<[string, number[]]> => [
        logicalName(v),
        [...await v.data()],
      ]),
    ),
  );
}

/** What {@linkcode playWholeAndResumed} needs of a training step. */
export interface ResumableStep<S> extends Disposable {
  step(inputs: S): void;
  exportTo(gan: Gan): Promise<void>;
}

/**
 * Plays `steps` (three or more) on `a` with one step object, and on `b` with
 * two: the first two steps, the state written back, then a new step object
 * for the rest, as a resumed run does. Both GANs are left trained.
 */
export async function playWholeAndResumed<S>(
  create: (gan: Gan) => Promise<ResumableStep<S>>,
  a: Gan,
  b: Gan,
  steps: readonly S[],
): Promise<void> {
  {
    using whole = await create(a);
    for (const s of steps) whole.step(s);
    await whole.exportTo(a);
  }
  {
    using first = await create(b);
    first.step(steps[0]);
    first.step(steps[1]);
    await first.exportTo(b);
  }
  {
    using second = await create(b);
    for (const s of steps.slice(2)) second.step(s);
    await second.exportTo(b);
  }
}

/**
 * A step's real batch, gathered on the CPU as a WGSL step gathers it on
 * the GPU: `rows` positions for step `i` in `images` (7 r + i, wrapping),
 * and those images as floats in `range`.
 */
export function batchOfRows(
  images: Uint8Array,
  count: number,
  i: number,
  range: PixelRange,
): { rows: Uint32Array; real: Float32Array } {
  const n = images.length / 784;
  const rows = Uint32Array.from({ length: count }, (_, r) => (7 * r + i) % n);
  const real = new Float32Array(count * 784);
  rows.forEach((row, r) =>
    toFloat(
      images.subarray(row * 784, (row + 1) * 784),
      range,
      real.subarray(r * 784),
    )
  );
  return { rows, real };
}
