/**
 * NumPy's `.npy` format (version 1.0), for arrays that numpy loads with
 * `np.load`: a magic string, a header dict (dtype, order, shape) padded to a
 * multiple of 64 bytes, then the data.
 *
 * @module
 */

/** A typed array numpy understands, with its shape. */
export interface NpyArray {
  shape: number[];
  data: Uint8Array | Float32Array;
}

/** Encodes an array as a `.npy` file (little-endian, C order). */
export function encodeNpy(array: NpyArray): Uint8Array {
  const expected = array.shape.reduce((a, b) => a * b, 1);
  if (expected !== array.data.length) {
    throw new RangeError(
      `npy shape ${
        array.shape.join(" x ")
      } needs ${expected} values, got ${array.data.length}`,
    );
  }
  const descr = array.data instanceof Uint8Array ? "|u1" : "<f4";
  const shape = array.shape.length === 1
    ? `(${array.shape[0]},)`
    : `(${array.shape.join(", ")})`;
  let header =
    `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const unpadded = 10 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + array.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]); // \x93NUMPY v1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(
    new Uint8Array(
      array.data.buffer,
      array.data.byteOffset,
      array.data.byteLength,
    ),
    10 + header.length,
  );
  return out;
}
