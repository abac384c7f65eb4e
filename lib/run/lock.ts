/**
 * One training process per run folder. Two trainings writing into the same
 * folder would mix their samples and delete each other's checkpoints, so
 * `train()` holds `DIR/train.lock` while it runs.
 *
 * The lock is the operating system's exclusive lock (`flock`) on that file,
 * taken without waiting: the kernel releases it when its process ends in
 * any way, `kill -9` included, so a lock left by a dead process is
 * recognised as stale at once. The file holds who took it (process id,
 * host, start time, command) for the message that refuses a second run,
 * and is removed on release.
 *
 * @module
 */

import { processStartTicks, WriteError, writeFailure } from "../io/files.ts";

/** The name of the lock file in a run folder. */
export const LOCK_FILE = "train.lock";

/** What a lock file says about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  /** Linux: the process's start time in clock ticks since boot. */
  startTicks: number | null;
  /** When the lock was taken (ISO 8601). */
  since: string;
  /** The command line of the holder. */
  command: string;
}

/** A run folder another process is training in; the message names it. */
export class RunFolderLockedError extends Error {
  /** The holder as its lock file describes it (null when unreadable). */
  readonly holder: LockHolder | null;
  constructor(message: string, holder: LockHolder | null) {
    super(message);
    this.name = "RunFolderLockedError";
    this.holder = holder;
  }
}

/** A held lock on a run folder; `using` releases it at the end of a scope. */
export class RunLock implements Disposable {
  readonly path: string;
  /** The holder a stale lock file named when this lock took it over, else null. */
  readonly replaced: LockHolder | null;
  #file: Deno.FsFile | null;

  constructor(path: string, file: Deno.FsFile, replaced: LockHolder | null) {
    this.path = path;
    this.#file = file;
    this.replaced = replaced;
  }

  /** Removes the lock file and releases the lock (once; later calls do nothing). */
  release(): void {
    if (!this.#file) return;
    try {
      Deno.removeSync(this.path);
    } catch {
      // removed by hand: nothing to do
    }
    this.#file.close(); // closing releases the flock
    this.#file = null;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const h = JSON.parse(Deno.readTextFileSync(path));
    return typeof h?.pid === "number" ? h as LockHolder : null;
  } catch {
    return null;
  }
}

/** "process 1234 on host h (since ...: deno run ...)". */
function describeHolder(h: LockHolder | null): string {
  if (!h) return "another process";
  return `process ${h.pid} on host ${h.host} (since ${h.since}: ${h.command})`;
}

/**
 * Takes the lock of run folder `dir` (created if missing), or refuses at
 * once when another process holds it.
 *
 * @throws {RunFolderLockedError} naming the other process.
 * @throws {WriteError} when the folder cannot be created or written.
 */
export function lockRunFolder(dir: string): RunLock {
  const path = `${dir}/${LOCK_FILE}`;
  const open = () => {
    try {
      Deno.mkdirSync(dir, { recursive: true });
      return Deno.openSync(path, { read: true, write: true, create: true });
    } catch (e) {
      throw new WriteError(
        `cannot write to the run folder ${dir}: ${writeFailure(e)}`,
      );
    }
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    const file = open();
    let locked = false;
    try {
      locked = file.tryLockSync(true);
    } catch {
      locked = false;
    }
    if (!locked) {
      file.close();
      const holder = readHolder(path);
      throw new RunFolderLockedError(
        `${dir} is in use: ${describeHolder(holder)} is training there. ` +
          "Wait for it to finish or stop it (Ctrl-C), or choose another --out.",
        holder,
      );
    }
    // The holder before us may have removed the file between our open and
    // our lock: then we locked a file no longer at `path`; try again.
    let same = false;
    try {
      same = Deno.statSync(path).ino === file.statSync().ino;
    } catch {
      same = false;
    }
    if (!same) {
      file.close();
      continue;
    }
    const replaced = readHolder(path);
    const holder: LockHolder = {
      pid: Deno.pid,
      host: Deno.hostname(),
      startTicks: processStartTicks(Deno.pid),
      since: new Date().toISOString(),
      command: [Deno.mainModule.replace(/^file:\/\//, ""), ...Deno.args].join(
        " ",
      ),
    };
    file.truncateSync(0);
    file.writeSync(new TextEncoder().encode(JSON.stringify(holder) + "\n"));
    return new RunLock(path, file, replaced);
  }
  throw new RunFolderLockedError(
    `could not take ${path}: other processes keep replacing it`,
    null,
  );
}
