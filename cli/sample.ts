/**
 * `deno task sample`: draws images from a trained generator.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BACKEND_CHOICES, initBackend } from "../lib/backend.ts";
import { generateImages, loadGenerator } from "../lib/checkpoint.ts";
import { writeFileAtomic } from "../lib/files.ts";
import { interpolationRows, sampleLatent } from "../lib/gan.ts";
import { encodeIdx } from "../lib/idx.ts";
import { encodeNpy } from "../lib/npy.ts";
import { Rng } from "../lib/rng.ts";
import { imageGrid } from "../lib/viz.ts";
import { choiceFlag, intFlag, runCli, UsageError } from "./args.ts";

const USAGE = `Usage: deno task sample --checkpoint DIR --out FILE [options]

Draws images from a trained generator.

  --checkpoint DIR   a run folder (runs/...) or a models/ folder (models/mnist)
  --out FILE         .png (a grid), .npy (uint8 N x 28 x 28, np.load reads it),
                     or .idx / *-idx3-ubyte (IDX unsigned bytes, like MNIST's)
  --n N              number of images (default 100)
  --seed N           seed of the noise (default 0)
  --interpolate      a latent interpolation grid instead: each row walks from
                     one random latent vector to another (PNG output)
  --rows N           rows of the interpolation (default 10)
  --steps N          images per row of the interpolation (default 10)
  --backend B        auto | webgpu | wasm | cpu (default auto)
  --help             this text
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    allowPositionals: false,
    options: {
      checkpoint: { type: "string" },
      out: { type: "string" },
      n: { type: "string" },
      seed: { type: "string" },
      interpolate: { type: "boolean" },
      rows: { type: "string" },
      steps: { type: "string" },
      backend: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.checkpoint) throw new UsageError("--checkpoint is required");
  if (!values.out) throw new UsageError("--out is required");
  if (!/\.(png|npy|idx)$|-ubyte$/.test(values.out)) {
    throw new UsageError(
      `--out must end in .png, .npy, .idx or -ubyte, got "${values.out}"`,
    );
  }
  if (values.interpolate && !values.out.endsWith(".png")) {
    throw new UsageError("--interpolate writes a .png grid");
  }
  const backendChoice =
    choiceFlag("backend", values.backend, BACKEND_CHOICES) ??
      "auto";
  const n = intFlag("n", values.n) ?? 100;
  const seed = intFlag("seed", values.seed, 0) ?? 0;
  const rows = intFlag("rows", values.rows) ?? 10;
  const steps = intFlag("steps", values.steps) ?? 10;
  const backend = await initBackend(backendChoice);
  console.error(`backend: ${backend.name} (${backend.reason})`);
  const loaded = await loadGenerator(values.checkpoint);
  const { metadata, path } = loaded;
  const rng = new Rng(seed, 3);
  let z: Float32Array;
  if (values.interpolate) {
    z = interpolationRows(metadata, rows, steps, rng);
  } else {
    z = sampleLatent(metadata, n, rng);
  }
  const count = z.length / metadata.latentDim;
  const images = await generateImages(loaded, z);
  const bytes = Uint8Array.from(
    images,
    (v) => Math.max(0, Math.min(255, Math.round(v * 255))),
  );
  const file = values.out;
  let data: Uint8Array;
  if (file.endsWith(".png")) {
    data = imageGrid(bytes, {
      encoding: "bytes",
      cols: values.interpolate ? steps : undefined,
    });
  } else if (file.endsWith(".npy")) {
    data = encodeNpy({ shape: [count, 28, 28], data: bytes });
  } else {
    data = encodeIdx({ dims: [count, 28, 28], data: bytes });
  }
  await writeFileAtomic(file, data);
  console.error(
    `wrote ${count} images to ${file} (generator ${path}: ${metadata.preset} ` +
      `on ${metadata.dataset}, ${metadata.epochs} epochs)`,
  );
  return 0;
}

if (import.meta.main) await runCli(USAGE, main);
