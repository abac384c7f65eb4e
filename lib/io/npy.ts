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
  const head = npyHeader(
    array.shape,
    array.data instanceof Uint8Array ? "|u1" : "<f4",
  );
  const out = new Uint8Array(head.length + array.data.byteLength);
  out.set(head);
  out.set(
    new Uint8Array(
      array.data.buffer,
      array.data.byteOffset,
      array.data.byteLength,
    ),
    head.length,
  );
  return out;
}

/**
 * The bytes of a `.npy` file before its data, for an array of `shape` and
 * dtype `descr` (`|u1` or `<f4`): the data may then be written in pieces.
 */
export function npyHeader(shape: number[], descr: "|u1" | "<f4"): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header =
    `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  const unpadded = 10 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]); // \x93NUMPY v1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  return out;
}

/** A `.npy` file that cannot be read; the message names the file and the problem. */
export class NpyError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "NpyError";
  }
}

/**
 * Decodes a `.npy` file of unsigned bytes (`|u1`), float32 (`<f4`) or
 * float64 (`<f8`, returned as float32), C order.
 */
export function decodeNpy(bytes: Uint8Array, file = "<bytes>"): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) {
    throw new NpyError(file, "not a .npy file (no \\x93NUMPY magic string)");
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1
    ? view.getUint16(8, true)
    : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(
    bytes.subarray(start, start + headerLength),
  );
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) {
    throw new NpyError(file, `unreadable header ${JSON.stringify(header)}`);
  }
  if (fortran) throw new NpyError(file, "Fortran order is not supported");
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(
    Number,
  );
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLength;
  const size = { "|u1": 1, "<f4": 4, "<f8": 8 }[descr];
  if (!size) {
    throw new NpyError(
      file,
      `dtype ${descr} is not supported; use uint8 or float32`,
    );
  }
  const available = bytes.length - dataStart;
  if (available !== count * size) {
    throw new NpyError(
      file,
      `${available < count * size ? "truncated" : "too long"}: shape (${
        shape.join(", ")
      }) of ${descr} needs ${
        count * size
      } bytes of data, file holds ${available}`,
    );
  }
  const raw = bytes.slice(dataStart);
  if (descr === "|u1") return { shape, data: raw };
  if (descr === "<f4") return { shape, data: new Float32Array(raw.buffer) };
  return { shape, data: Float32Array.from(new Float64Array(raw.buffer)) };
}
