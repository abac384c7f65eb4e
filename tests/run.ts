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
