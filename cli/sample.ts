/**
 * `deno task sample`: draws images from a trained generator.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import {
  BACKEND_CHOICES,
  type BackendChoice,
  initBackend,
} from "../lib/backend.ts";
import { loadGenerator } from "../lib/checkpoint.ts";
import { writeFileAtomic } from "../lib/files.ts";
import { interpolateLatents, sampleLatent } from "../lib/gan.ts";
import { encodeIdx } from "../lib/idx.ts";
import { encodeNpy } from "../lib/npy.ts";
import { Rng } from "../lib/rng.ts";
import { imageGrid } from "../lib/viz.ts";

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

class UsageError extends Error {}

function int(name: string, v: string | undefined, fallback: number, min = 1) {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
  }
  return n;
}

function toBytes(images: Float32Array, output: string): Uint8Array {
  const scale = output === "tanh"
    ? (v: number) => (v + 1) * 127.5
    : (v: number) => v * 255;
  return Uint8Array.from(
    images,
    (v) => Math.max(0, Math.min(255, Math.round(scale(v)))),
  );
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
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
    }));
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
    if (
      values.backend &&
      !BACKEND_CHOICES.includes(values.backend as BackendChoice)
    ) {
      throw new UsageError(
        `--backend must be one of ${BACKEND_CHOICES.join(", ")}`,
      );
    }
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const n = int("n", values.n, 100);
  const seed = int("seed", values.seed, 0, 0);
  const rows = int("rows", values.rows, 10);
  const steps = int("steps", values.steps, 10);
  const backend = await initBackend(
    (values.backend ?? "auto") as BackendChoice,
  );
  console.error(`backend: ${backend.name} (${backend.reason})`);
  const { model, metadata, path } = await loadGenerator(values.checkpoint);
  const rng = new Rng(seed, 3);
  let z: Float32Array;
  if (values.interpolate) {
    z = new Float32Array(rows * steps * metadata.latentDim);
    for (let r = 0; r < rows; r++) {
      const [a, b] = [
        sampleLatent(metadata, 1, rng),
        sampleLatent(metadata, 1, rng),
      ];
      z.set(
        interpolateLatents(a, b, steps, metadata.latent),
        r * steps * metadata.latentDim,
      );
    }
  } else {
    z = sampleLatent(metadata, n, rng);
  }
  const count = z.length / metadata.latentDim;
  // In chunks, to bound memory for large N.
  const images = new Float32Array(count * 784);
  for (let start = 0; start < count; start += 1000) {
    const m = Math.min(1000, count - start);
    const batch = tf.tensor2d(
      z.subarray(start * metadata.latentDim, (start + m) * metadata.latentDim),
      [m, metadata.latentDim],
    );
    const out = model.predict(batch) as tf.Tensor;
    images.set(await out.data<"float32">(), start * 784);
    tf.dispose([batch, out]);
  }
  const bytes = toBytes(images, metadata.output);
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

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
