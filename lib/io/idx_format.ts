/**
 * The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
 * two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions,
 * each dimension as a big-endian 32-bit integer, then the data in row-major
 * order. Every check names the file and what is wrong, so a truncated
 * download or a wrong file never becomes a silently partial dataset.
 *
 * Bytes in, arrays out, with no file system and no gzip: the web page parses
 * the files it fetches with it (after the browser's `DecompressionStream`),
 * and `lib/io/idx.ts` reads files (gzipped or not) with it.
 *
 * @module
 */

/** An unsigned-byte IDX array: its dimensions and its data. */
export interface IdxArray {
  /** Dimensions, outermost first: `[60000, 28, 28]` for MNIST's training images. */
  dims: number[];
  /** The values, row-major; length is the product of `dims`. */
  data: Uint8Array;
}

/** A file that is not what it should be: corrupt, truncated, or of the wrong shape. */
export class IdxError extends Error {
  /** @param file the file's path or name, quoted in the message. */
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "IdxError";
  }
}

const TYPE_NAMES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "int16",
  0x0c: "int32",
  0x0d: "float32",
  0x0e: "float64",
};

/** True when `bytes` starts with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Parses an unsigned-byte IDX array from `bytes`, not gzipped.
 *
 * @param bytes the file's contents, decompressed.
 * @param file the name quoted in error messages.
 * @throws {IdxError} on a bad magic number, an unsupported type, a truncated
 *   or over-long file, or gzipped bytes.
 */
export function parseIdxBytes(bytes: Uint8Array, file = "<bytes>"): IdxArray {
  if (isGzip(bytes)) {
    throw new IdxError(
      file,
      "is gzipped: decompress it first (parseIdx in lib/io/idx.ts does)",
    );
  }
  if (bytes.length < 4) {
    throw new IdxError(
      file,
      `is ${bytes.length} bytes long, too short for an IDX header`,
    );
  }
  const [z0, z1, type, ndim] = bytes;
  if (z0 !== 0 || z1 !== 0 || ndim === 0) {
    const hex = Array.from(
      bytes.subarray(0, 4),
      (b) => "0x" + b.toString(16).padStart(2, "0"),
    ).join(" ");
    throw new IdxError(
      file,
      `not an IDX file: magic number ${hex}, expected 0x00 0x00 0x08 <ndim>`,
    );
  }
  if (type !== 0x08) {
    const name = TYPE_NAMES[type] ?? "unknown";
    throw new IdxError(
      file,
      `IDX data type 0x${
        type.toString(16).padStart(2, "0")
      } (${name}) is not supported; only 0x08 (unsigned byte) is`,
    );
  }
  const headerLength = 4 + 4 * ndim;
  if (bytes.length < headerLength) {
    throw new IdxError(
      file,
      `truncated header: ${ndim} dimensions need ${headerLength} bytes, file has ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = bytes.length - headerLength;
  if (actual !== expected) {
    // A wrong dimension count (the header's 4th byte) shifts everything
    // after it: say so when fewer dimensions would fit the file exactly.
    for (let n = 1; n <= 4 && 4 + 4 * n <= bytes.length; n++) {
      if (n === ndim) continue;
      const fit = dims.slice(0, n);
      while (fit.length < n) {
        fit.push(view.getUint32(4 + 4 * fit.length, false));
      }
      if (fit.reduce((a, b) => a * b, 1) === bytes.length - 4 - 4 * n) {
        throw new IdxError(
          file,
          `the header says ${ndim} dimensions, but the file fits ${n} ` +
            `(${fit.join(" x ")}): its 4th byte, the dimension count, is ` +
            "wrong; the file is damaged, download or write it again",
        );
      }
    }
  }
  if (actual < expected) {
    throw new IdxError(
      file,
      `truncated: header says ${
        dims.join(" x ")
      } = ${expected} bytes of data, file holds ${actual}`,
    );
  }
  if (actual > expected) {
    throw new IdxError(
      file,
      `${actual - expected} unexpected bytes after the ${
        dims.join(" x ")
      } data`,
    );
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/** Encodes an unsigned-byte array as an (uncompressed) IDX file. */
export function encodeIdx(array: IdxArray): Uint8Array {
  const expected = array.dims.reduce((a, b) => a * b, 1);
  if (expected !== array.data.length) {
    throw new RangeError(
      `IDX dims ${
        array.dims.join(" x ")
      } need ${expected} values, got ${array.data.length}`,
    );
  }
  const head = idxHeader(array.dims);
  const out = new Uint8Array(head.length + expected);
  out.set(head);
  out.set(array.data, head.length);
  return out;
}

/**
 * The bytes of an unsigned-byte IDX file before its data, for an array of
 * `dims`: the data may then be written in pieces.
 */
export function idxHeader(dims: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  return out;
}

/**
 * Checks that `array` has the expected dimensions; `null` in `dims` accepts
 * any size there.
 *
 * @throws {IdxError} naming the file and both shapes.
 */
export function expectDims(
  array: IdxArray,
  dims: (number | null)[],
  file: string,
): void {
  const ok = array.dims.length === dims.length &&
    dims.every((d, i) => d === null || d === array.dims[i]);
  if (!ok) {
    const want = dims.map((d) => d ?? "N").join(" x ");
    throw new IdxError(
      file,
      `wrong dimensions ${array.dims.join(" x ")}, expected ${want}`,
    );
  }
}
