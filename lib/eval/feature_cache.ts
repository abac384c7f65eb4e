/**
 * The classifier's features of a dataset's own images, kept on disk: the
 * data-copying test compares samples with the 50,000 training images, whose
 * features take about 20 s to compute on a 2-core CPU and are the same in
 * every evaluation. A cache file is named by the SHA-256 of the classifier's
 * files and of the images, so a retrained classifier or other images never
 * read another's features; it ends with the SHA-256 of its features (64
 * hexadecimal digits), and a file that is short or does not match is
 * computed again.
 *
 * @module
 */

import { join } from "node:path";
import type * as tf from "@tensorflow/tfjs";
import { classify, FEATURE_DIM } from "./classifier.ts";
import { defaultCacheDir, IMAGE_PIXELS, toFloat } from "../data.ts";
import { sha256Hex, writeFileAtomic } from "../io/files.ts";

/** Options of {@linkcode cachedFeatures}. */
export interface FeatureCacheOptions {
  /** Default: `features/` in the datasets' cache (`$GAN_CACHE_DIR`, else `.cache`). */
  cacheDir?: string;
  /** One-line notes (a cache rebuilt or not written). Default: none. */
  log?: (message: string) => void;
}

/**
 * The features of `images` (bytes, 784 an image) under `model`, the
 * classifier loaded from `classifierDir`: read from the cache when it holds
 * them, else computed and stored. A cache that cannot be written is noted
 * and the features are returned all the same.
 */
export async function cachedFeatures(
  model: tf.LayersModel,
  classifierDir: string,
  images: Uint8Array,
  options: FeatureCacheOptions = {},
): Promise<Float32Array> {
  const log = options.log ?? (() => {});
  const n = images.length / IMAGE_PIXELS;
  const dir = options.cacheDir ?? join(defaultCacheDir(), "features");
  const key = await sha256Hex(
    new TextEncoder().encode(
      `${await classifierHash(classifierDir)} ${await sha256Hex(images)}`,
    ),
  );
  const path = join(dir, `${key.slice(0, 32)}.f32`);
  const size = n * FEATURE_DIM * 4;
  const stored = await Deno.readFile(path).catch(() => null);
  if (stored) {
    const body = stored.subarray(0, size);
    if (
      stored.length === size + 64 &&
      await sha256Hex(body) ===
        new TextDecoder().decode(stored.subarray(size))
    ) {
      return new Float32Array(body.slice().buffer);
    }
    log(`feature cache ${path} is damaged; computing it again`);
  }
  const { features } = await classify(model, toFloat(images, "[0,1]"));
  const bytes = new Uint8Array(features.buffer, 0, size);
  try {
    await Deno.mkdir(dir, { recursive: true });
    const file = new Uint8Array(size + 64);
    file.set(bytes);
    file.set(new TextEncoder().encode(await sha256Hex(bytes)), size);
    await writeFileAtomic(path, file);
  } catch (e) {
    log(`feature cache not written (${(e as Error).message})`);
  }
  return features;
}

/** SHA-256 over a classifier folder's files (names and contents, sorted). */
async function classifierHash(dir: string): Promise<string> {
  const names = [...Deno.readDirSync(dir)].filter((e) => e.isFile)
    .map((e) => e.name).sort();
  const parts: string[] = [];
  for (const name of names) {
    parts.push(
      `${name}:${await sha256Hex(await Deno.readFile(join(dir, name)))}`,
    );
  }
  return await sha256Hex(new TextEncoder().encode(parts.join("\n")));
}
