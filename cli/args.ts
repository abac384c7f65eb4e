/**
 * What the command-line entry points share: flag validation that names the
 * flag and the value, and one way to exit (2 with the usage for bad flags, 1
 * with the message for other errors).
 *
 * @module
 */

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
    throw new UsageError(
      `--${name} must be an integer >= ${min}, got "${value}"`,
    );
  }
  return n;
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

/**
 * Runs a CLI's `main` and exits with its status. Bad flags (a
 * {@linkcode UsageError}, or an unknown or malformed option reported by
 * `node:util` parseArgs) exit with 2 after the message and `usage`; any
 * other error exits with 1 after its message.
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
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
