/**
 * Writing files so that an interruption never leaves a half-written one.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The project's root folder (holding `lib/`), ending with `/`. */
export const PROJECT_ROOT: string = fileURLToPath(
  new URL("../", import.meta.url),
);

/**
 * Writes a file atomically: to a temporary file beside it, then renamed into
 * place, so a reader sees either the old file or the whole new one.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** True when `path` exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
