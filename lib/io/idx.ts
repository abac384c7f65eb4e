/**
 * IDX files (`lib/io/idx_format.ts`, the format) on disk: read, gzipped or
 * not, and written atomically.
 *
 * @module
 */

import { gunzipSync } from "node:zlib";
import { writeFileAtomic } from "./files.ts";
import {
  encodeIdx,
  type IdxArray,
  IdxError,
  isGzip,
  parseIdxBytes,
} from "./idx_format.ts";

export {
  encodeIdx,
  expectDims,
  type IdxArray,
  IdxError,
  idxHeader,
  isGzip,
  parseIdxBytes,
} from "./idx_format.ts";

/**
 * Parses an unsigned-byte IDX array from `bytes` (gzipped or not).
 *
 * @param bytes the file's contents.
 * @param file the name quoted in error messages.
 * @throws {IdxError} on a bad magic number, an unsupported type, a truncated
 *   or over-long file, or corrupt gzip data.
 */
export function parseIdx(bytes: Uint8Array, file = "<bytes>"): IdxArray {
  if (isGzip(bytes)) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes));
    } catch (e) {
      throw new IdxError(
        file,
        `corrupt or truncated gzip data (${(e as Error).message}); ` +
          "download the file again",
      );
    }
  }
  return parseIdxBytes(bytes, file);
}

/** Reads and parses an IDX file (gzipped or not). */
export async function readIdxFile(path: string): Promise<IdxArray> {
  return parseIdx(await Deno.readFile(path), path);
}

/** Writes an IDX file atomically: to a temporary file, then renamed into place. */
export async function writeIdxFile(
  path: string,
  array: IdxArray,
): Promise<void> {
  await writeFileAtomic(path, encodeIdx(array));
}
