/**
 * Files a run depends on: written so that an interruption never leaves a
 * half-written one, checked before long work starts, and verified by
 * checksum when read back.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project's root folder (holding `lib/`), ending with `/`. */
export const PROJECT_ROOT: string = fileURLToPath(
  new URL("../../", import.meta.url),
);

/** A file or folder that cannot be written; the message names it and says why. */
export class WriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WriteError";
  }
}

/**
 * Work stopped by Ctrl-C (or kill) that cleaned up after itself; the
 * message says what was kept. The commands exit with 130 for it.
 */
export class Interrupted extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Interrupted";
  }
}

/** "permission denied", "no space left on the disk", ... for a failed write. */
export function writeFailure(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (read-only folder?)";
  }
  if (e instanceof Deno.errors.NotFound) return "its folder does not exist";
  const message = (e as Error).message ?? String(e);
  if (/no space left/i.test(message)) return "no space left on the disk";
  return message.replace(/[:,] (open|rename|write|mkdir|remove) '.*'$/, "");
}

/** The folder part of `path` ("." for a bare file name). */
export function dirname(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/**
 * Writes a file atomically: to a temporary file beside it, then renamed into
 * place, so a reader sees either the old file or the whole new one.
 *
 * @throws {WriteError} naming `path` (not the temporary file) and the reason.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
): Promise<void> {
  const tmp = temporaryName(path);
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new WriteError(`cannot write ${path}: ${writeFailure(e)}`);
  }
}

/** The temporary file `writeFileAtomic` writes before renaming it to `path`. */
export function temporaryName(path: string): string {
  return `${path}.tmp-${Deno.pid}`;
}

/**
 * Checks, before any long work, that `path` can be written as a file: its
 * folder exists and takes a new file, and `path` is not a folder.
 *
 * @throws {WriteError} naming `path` and what to do.
 */
export function checkWritableFile(path: string): void {
  if (path.trim() === "") throw new WriteError("the output file name is empty");
  const dir = dirname(path);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(dir);
  } catch {
    throw new WriteError(
      `cannot write ${path}: the folder ${dir} does not exist; create it first`,
    );
  }
  if (!info.isDirectory) {
    throw new WriteError(`cannot write ${path}: ${dir} is not a folder`);
  }
  try {
    if (Deno.statSync(path).isDirectory) {
      throw new WriteError(`cannot write ${path}: it is a folder`);
    }
  } catch (e) {
    if (e instanceof WriteError) throw e;
  }
  const probe = temporaryName(path);
  try {
    Deno.writeFileSync(probe, new Uint8Array(0));
    Deno.removeSync(probe);
  } catch (e) {
    throw new WriteError(`cannot write ${path}: ${writeFailure(e)}`);
  }
}

/**
 * Checks a run folder's path: not empty, not the file system's root, not an
 * existing file. The folder itself may be missing (training creates it).
 *
 * @throws {WriteError} saying what is wrong with it.
 */
export function checkRunFolderPath(dir: string): void {
  if (dir.trim() === "") {
    throw new WriteError(
      "the run folder (--out) is empty; name a folder such as runs/my-run",
    );
  }
  if (/^\/+$/.test(dir) || isRoot(dir)) {
    throw new WriteError(
      `the run folder (--out) is the file system's root (${dir}); name a folder such as runs/my-run`,
    );
  }
  try {
    if (!Deno.statSync(dir).isDirectory) {
      throw new WriteError(
        `the run folder (--out) ${dir} is an existing file, not a folder; choose another --out`,
      );
    }
  } catch (e) {
    if (e instanceof WriteError) throw e;
  }
}

function isRoot(dir: string): boolean {
  try {
    return Deno.realPathSync(dir) === "/";
  } catch {
    return false;
  }
}

/**
 * `path` made absolute with every symbolic link resolved, as far as it
 * exists (the rest, not yet created, appended): where a write to `path`
 * would land. Each existing part is resolved as the system would, in
 * order, so `link/..` is the folder above the link's target, not `.`.
 */
export function realPathOf(path: string): string {
  const parts = path.split("/");
  let at = path.startsWith("/") ? "/" : Deno.cwd();
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === "" || parts[i] === ".") continue;
    try {
      at = Deno.realPathSync(at === "/" ? `/${parts[i]}` : `${at}/${parts[i]}`);
    } catch {
      // Not there yet: nothing below it is a link.
      return resolve(at, ...parts.slice(i));
    }
  }
  return at;
}

/** True when `path` is `folder` or lies inside it (both absolute and real). */
export function isWithin(path: string, folder: string): boolean {
  const r = relative(folder, path);
  return r === "" || (r !== ".." && !r.startsWith("../") && !isAbsolute(r));
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

/**
 * True when process `pid` runs on this machine. On Linux a process's start
 * time (`startTicks`, from {@linkcode processStartTicks}) tells a reused
 * process id from the process that took the lock.
 */
export function processAlive(pid: number, startTicks?: number | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (Deno.build.os === "linux") {
    const now = processStartTicks(pid);
    if (now === null) return false;
    return startTicks == null || now === startTicks;
  }
  try {
    // Any signal the process may get tells whether it exists; SIGCONT
    // changes nothing for a running process.
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (e) {
    return e instanceof Deno.errors.PermissionDenied;
  }
}

/** The start time of process `pid` in clock ticks since boot (Linux), or null. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces; the rest follows ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]); // field 22 of the whole line
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/**
 * Removes the temporary files (`NAME.tmp-PID`) that a process killed while
 * writing left in `dir` and its sub-folders `subdirs`, where PID no longer
 * runs. Returns the removed paths.
 */
export function removeStaleTemporaries(
  dir: string,
  subdirs: readonly string[] = [],
): string[] {
  return ["", ...subdirs].flatMap((sub) =>
    removeDeadTemporaries(sub ? `${dir}/${sub}` : dir, () => true)
  );
}

/**
 * Removes the temporary files (`PATH.tmp-PID`) of exactly `paths` that a
 * process killed while writing them left, where PID no longer runs; other
 * files of their folders are left alone. Returns the removed paths.
 */
export function removeStaleTemporariesOf(paths: readonly string[]): string[] {
  return paths.flatMap((path) => {
    const name = path.slice(path.lastIndexOf("/") + 1);
    return removeDeadTemporaries(dirname(path), (of) => of === name);
  });
}

/**
 * Removes the files `NAME.tmp-PID` in `folder` whose PID no longer runs and
 * whose NAME `keep` accepts; returns their paths.
 */
function removeDeadTemporaries(
  folder: string,
  keep: (name: string) => boolean,
): string[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(folder)];
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const m = entry.isFile && entry.name.match(/^(.*)\.tmp-(\d+)$/);
    if (!m || !keep(m[1]) || processAlive(Number(m[2]))) continue;
    try {
      Deno.removeSync(`${folder}/${entry.name}`);
      removed.push(`${folder}/${entry.name}`);
    } catch {
      // gone already, or not ours to remove: left alone
    }
  }
  return removed;
}

/** The SHA-256 of a file, read in pieces (any size), as 64 hexadecimal digits. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buffer)) !== null;) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** The SHA-256 of `bytes`, as 64 hexadecimal digits. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
