/**
 * The wasm step against PyTorch on this machine's CPU, fairly: PyTorch at
 * its best (bench/reference_torch.py's default on a CPU: its own pool at one
 * thread, OpenBLAS's at every core), the two runs interleaved round by round,
 * and each model's median and range in images/s. Prints a markdown table
 * (the one in docs/speed.md) and the JSON lines behind it.
 *
 *   deno run -A bench/cpu_parity.ts [--rounds 3] [--models mlp,paper,sngan,dcgan]
 *     [--batch 128] [--python /usr/bin/python3]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../lib/io/files.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    models: { type: "string", default: "mlp,paper,sngan,dcgan" },
    batch: { type: "string", default: "128" },
    python: { type: "string", default: "/usr/bin/python3" },
  },
});
const rounds = Number(values.rounds), batch = values.batch;
const models = values.models.split(",");
/** The convolutional presets' steps are 10x slower: fewer of them. */
const conv = (m: string) => m === "dcgan" || m === "sngan";

async function lines(
  cmd: string,
  args: string[],
): Promise<Record<string, unknown>[]> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(r.stderr)}`,
    );
  }
  return out.split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
}

const got: Record<string, { deno: number[]; torch: number[] }> = {};
for (const m of models) got[m] = { deno: [], torch: [] };
for (let round = 1; round <= rounds; round++) {
  for (const m of models) {
    // The same configuration for both: model, batch, steps, warm-up.
    const flags = [
      "--model",
      m,
      "--batch",
      batch,
      "--steps",
      conv(m) ? "6" : "30",
      "--warmup",
      conv(m) ? "1" : "3",
    ];
    const [d] = await lines(Deno.execPath(), [
      "run",
      "-A",
      "cli/bench.ts",
      "--backend",
      "wasm",
      ...flags,
    ]);
    const [t] = await lines(values.python, [
      "bench/reference_torch.py",
      "--device",
      "cpu",
      ...flags,
    ]);
    console.log(JSON.stringify(d));
    console.log(JSON.stringify(t));
    got[m].deno.push(d.images_per_s as number);
    got[m].torch.push(t.images_per_s as number);
    console.error(
      `round ${round}/${rounds} ${m}: wasm ${d.images_per_s}, PyTorch ${t.images_per_s} images/s`,
    );
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (xs: number[]) =>
  `${Math.round(median(xs)).toLocaleString("en")} (${
    Math.min(...xs).toLocaleString("en")
  }-${Math.max(...xs).toLocaleString("en")})`;
console.log(
  `\n| model, batch ${batch} | wasm + OpenBLAS | PyTorch | ratio of medians |`,
);
console.log("| --- | --- | --- | --- |");
for (const m of models) {
  const { deno, torch } = got[m];
  console.log(
    `| \`${m}\` | ${fmt(deno)} | ${fmt(torch)} | ${
      (median(deno) / median(torch)).toFixed(2)
    } |`,
  );
}
