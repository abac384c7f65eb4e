/**
 * What the command-line entry points share: flag validation that names the
 * flag and the value, and one way to exit (2 with the usage for bad flags, 1
 * with the message for other errors).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Interrupted } from "../lib/io/files.ts";
import { MIN_TRUNCATION } from "../lib/nets/latent.ts";

/** A bad flag; the CLI prints the message and its usage, and exits with 2. */
export class UsageError extends Error {}

/** An integer flag, at least `min` (default 1); `undefined` when absent. */
export function intFlag(
  name: string,
  value: string | undefined,
  min = 1,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min) {
    const want = min === 1
      ? "a positive integer"
      : min === 0
      ? "an integer >= 0"
      : `an integer >= ${min}`;
    throw new UsageError(`--${name} must be ${want}, got "${value}"`);
  }
  if (!Number.isSafeInteger(n)) {
    // Above 2^53 a number no longer holds every integer: 2^53 + 1 reads as 2^53.
    throw new UsageError(
      `--${name} must be at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1), got "${value}"`,
    );
  }
  return n;
}

/** The option table `node:util` parseArgs takes. */
export type FlagOptions = Record<
  string,
  { type: "string" | "boolean"; short?: string }
>;

/**
 * `node:util` parseArgs (strict, no positionals) over `args`, except that a
 * value starting with "-" that looks like a number (`--epochs -1`) is taken
 * as the flag's value, so that the flag's own check can say what it must
 * be, instead of parseArgs' "argument is ambiguous".
 */
export function parseFlags<T extends FlagOptions>(
  args: string[],
  options: T,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true }>> {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : null;
    const next = args[i + 1];
    if (
      name !== null && options[name]?.type === "string" &&
      next !== undefined && /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      joined.push(`--${name}=${next}`);
      i++;
    } else {
      joined.push(args[i]);
    }
  }
  return parseArgs({
    args: joined,
    options,
    strict: true,
    allowPositionals: false,
  }) as ReturnType<
    typeof parseArgs<{ args: string[]; options: T; strict: true }>
  >;
}

/** A number flag accepted by `ok` (described by `want`); `undefined` when absent. */
export function numberFlag(
  name: string,
  value: string | undefined,
  ok: (x: number) => boolean,
  want: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !ok(n)) {
    throw new UsageError(`--${name} must be ${want}, got "${value}"`);
  }
  return n;
}

/**
 * `--truncation T` of `sample` and `eval`: the truncation trick's T, at
 * least {@linkcode MIN_TRUNCATION}; `undefined` when absent.
 */
export function truncationFlag(value: string | undefined): number | undefined {
  return numberFlag(
    "truncation",
    value,
    (t) => t >= MIN_TRUNCATION,
    `a number of at least ${MIN_TRUNCATION} (values outside [-T, T] are ` +
      "drawn again; 0.5 to 2 is usual)",
  );
}

/** A flag with a fixed set of values; `undefined` when absent. */
export function choiceFlag<T extends string>(
  name: string,
  value: string | undefined,
  choices: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!choices.includes(value as T)) {
    throw new UsageError(
      `--${name} must be one of ${choices.join(", ")}, got "${value}"`,
    );
  }
  return value as T;
}

/** What {@linkcode stopSignals} returns: its signal, and a way to stop by hand. */
export interface Stopper extends Disposable {
  /** Aborted by Ctrl-C (SIGINT), kill (SIGTERM), a closed terminal (SIGHUP) or `abort()`. */
  signal: AbortSignal;
  abort(): void;
}

/**
 * An abort signal that Ctrl-C, kill and a closed terminal all abort, so
 * that a command stops the same way on each and cleans up after itself
 * (only `kill -9` skips it). `using` removes the listeners.
 */
export function stopSignals(): Stopper {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const signals = (["SIGINT", "SIGTERM", "SIGHUP"] as const).filter((s) => {
    try {
      Deno.addSignalListener(s, stop);
      return true;
    } catch {
      return false; // not on this system (Windows has SIGINT only)
    }
  });
  return {
    signal: controller.signal,
    abort: stop,
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, stop);
    },
  };
}

/**
 * Runs a CLI's `main` and exits with its status. Bad flags (a
 * {@linkcode UsageError}, or an unknown or malformed option reported by
 * `node:util` parseArgs) exit with 2 after the message and `usage`; work
 * stopped by Ctrl-C ({@linkcode Interrupted}) with 130; any other error
 * exits with 1 after its message.
 */
export async function runCli(
  usage: string,
  main: () => Promise<number>,
): Promise<never> {
  try {
    Deno.exit(await main());
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (e instanceof UsageError || code.startsWith("ERR_PARSE_ARGS")) {
      console.error(`error: ${(e as Error).message}\n\n${usage}`);
      Deno.exit(2);
    }
    if (e instanceof Interrupted) {
      console.error(`\n${e.message}`);
      Deno.exit(130);
    }
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
