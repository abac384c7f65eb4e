/**
 * A network's variables as one flat array, as the WGSL steps keep them in
 * one GPU buffer (each variable from its offset), and back.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** The variables (or their slots) laid out from `offsets` in `size` floats. */
export async function flatten(
  size: number,
  offsets: readonly number[],
  variable: (i: number) => tf.Variable,
): Promise<Float32Array> {
  const flat = new Float32Array(size);
  for (let i = 0; i < offsets.length; i++) {
    flat.set(await variable(i).data() as Float32Array, offsets[i]);
  }
  return flat;
}

/** Assigns each of `variables` its values from `flat` at its offset. */
export function assignFlat(
  flat: Float32Array,
  offsets: readonly number[],
  variables: readonly tf.Variable[],
): void {
  tf.tidy(() => {
    variables.forEach((variable, i) => {
      const at = offsets[i];
      variable.assign(
        tf.tensor(flat.slice(at, at + variable.size), variable.shape),
      );
    });
  });
}
