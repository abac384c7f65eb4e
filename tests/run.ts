/**
 * Running a command from a test: its exit code and decoded output.
 *
 * @module
 */

/** The project's root folder. */
export const root: string = new URL("../", import.meta.url).pathname;

/** Runs `cmd` with `args` in the project's root, without colours. */
export async function runCommand(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Runs `deno run -A cli/<script>` with `args`. */
export function runCli(script: string, args: string[]) {
  return runCommand(Deno.execPath(), [
    "run",
    "-A",
    `${root}cli/${script}`,
    ...args,
  ]);
}

/** Runs `fn` with a new temporary folder, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits until `check` holds, polling every 50 ms, at most `seconds`. */
export async function until(
  check: () => boolean,
  seconds: number,
): Promise<boolean> {
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}
