/**
 * Saving and loading TF.js layers models as files (`model.json` + one
 * weights file), the format `tf.loadLayersModel` reads in a browser. TF.js
 * has no file handler outside Node, so these write and read the files
 * themselves, weights first and `model.json` last, each atomically.
 *
 * `model.json` records the SHA-256 of each weights file in its
 * `userDefinedMetadata.sha256` (a field TF.js ignores), and loading checks
 * it, so a damaged file is named as such instead of loading wrong weights.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { exists, sha256Hex, writeFileAtomic } from "./files.ts";

/** Options of {@linkcode saveLayersModel}. */
export interface SaveLayersOptions {
  /**
   * Name of the weights file (default `weights.bin`). `"by-content"` names
   * it after its bytes, `weights-<16 hex digits of their SHA-256>.bin`: a
   * new file name for new weights, so a model.json written over another
   * never names a weights file it did not write (an interruption between
   * the two files leaves the old model whole).
   */
  weightsFile?: string;
  /** Stored as `userDefinedMetadata` in model.json. */
  metadata: Record<string, unknown>;
  /**
   * `"uint8"` stores each float32 weight of more than
   * {@linkcode QUANTIZE_MIN_SIZE} values as 8-bit levels between its minimum
   * and maximum (TF.js's own weight quantization, which `tf.loadLayersModel`
   * reads back as float32), a quarter of the bytes; smaller weights (biases,
   * batch norm's scales) stay float32. Default: none, the weights exactly.
   */
  quantize?: "uint8";
}

/** The smallest weight {@linkcode SaveLayersOptions.quantize} quantizes, in values. */
export const QUANTIZE_MIN_SIZE = 4096;

/**
 * Writes `model` to `dir/<weightsFile>`, then `dir/model.json`; returns the
 * weights file's name.
 */
export async function saveLayersModel(
  dir: string,
  model: tf.LayersModel,
  options: SaveLayersOptions,
): Promise<string> {
  let weightsFile = options.weightsFile ?? "weights.bin";
  await Deno.mkdir(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData;
    const buffers = Array.isArray(data) ? data : [data!];
    let joined = concat(buffers.map((b) => new Uint8Array(b)));
    let specs = artifacts.weightSpecs!;
    if (options.quantize) ({ joined, specs } = quantizeUint8(joined, specs));
    const digest = await sha256Hex(joined);
    if (weightsFile === "by-content") {
      weightsFile = `weights-${digest.slice(0, 16)}.bin`;
    }
    await writeFileAtomic(`${dir}/${weightsFile}`, joined);
    const sha256 = { [weightsFile]: digest };
    const json = {
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{
        paths: [weightsFile],
        weights: specs,
      }],
      userDefinedMetadata: { ...options.metadata, sha256 },
    };
    await writeFileAtomic(`${dir}/model.json`, JSON.stringify(json));
    return {
      modelArtifactsInfo: {
        dateSaved: new Date(),
        modelTopologyType: "JSON",
        weightDataBytes: joined.length,
      },
    };
  }));
  return weightsFile;
}

/**
 * Each float32 weight of more than QUANTIZE_MIN_SIZE values as uint8 levels:
 * value = level * scale + min, the affine form TF.js's decodeWeights reads.
 */
function quantizeUint8(
  joined: Uint8Array,
  specs: tf.io.WeightsManifestEntry[],
): { joined: Uint8Array<ArrayBuffer>; specs: tf.io.WeightsManifestEntry[] } {
  const out: Uint8Array[] = [];
  const outSpecs: tf.io.WeightsManifestEntry[] = [];
  let at = 0;
  for (const spec of specs) {
    if (spec.quantization) throw new Error(`${spec.name} is quantized already`);
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = n * bytesOf(spec.dtype);
    const raw = joined.slice(at, at + bytes);
    at += bytes;
    if (spec.dtype !== "float32" || n <= QUANTIZE_MIN_SIZE) {
      out.push(raw);
      outSpecs.push(spec);
      continue;
    }
    const values = new Float32Array(raw.buffer);
    let min = Infinity, max = -Infinity;
    for (const v of values) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    // A constant weight keeps scale 1 (every level 0 decodes to min).
    const scale = max > min ? (max - min) / 255 : 1;
    const levels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      levels[i] = Math.round((values[i] - min) / scale);
    }
    out.push(levels);
    outSpecs.push({ ...spec, quantization: { dtype: "uint8", min, scale } });
  }
  return { joined: concat(out), specs: outSpecs };
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const joined = new Uint8Array(parts.reduce((n, b) => n + b.byteLength, 0));
  let at = 0;
  for (const b of parts) {
    joined.set(b, at);
    at += b.byteLength;
  }
  return joined;
}

/**
 * Loads a layers model from its model.json (weights paths are relative to
 * it). Returns the model, its `userDefinedMetadata`, and whether the weights
 * were verified against checksums in model.json (files written before
 * checksums were recorded have none).
 *
 * @throws {Error} naming the file when model.json or a weights file is
 *   missing, malformed, of the wrong size or corrupt (checksum mismatch).
 */
export async function loadLayersModelFile(
  jsonPath: string,
): Promise<{
  model: tf.LayersModel;
  metadata: Record<string, unknown>;
  verified: boolean;
}> {
  if (!exists(jsonPath)) throw new Error(`${jsonPath} does not exist`);
  const dir = jsonPath.slice(0, jsonPath.lastIndexOf("/") + 1) || "./";
  let json;
  try {
    json = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch (e) {
    throw new Error(`${jsonPath} is not valid JSON (${(e as Error).message})`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(
      `${jsonPath} is not a TF.js layers model (no modelTopology or weightsManifest)`,
    );
  }
  const sums: Record<string, string> | undefined = json.userDefinedMetadata
    ?.sha256;
  const model = await tf.loadLayersModel({
    load: () =>
      tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((g) => g.weights);
        const parts: Uint8Array[] = [];
        for (const group of manifest) {
          for (const p of group.paths) {
            let bytes: Uint8Array;
            try {
              bytes = await Deno.readFile(dir + p);
            } catch {
              throw new Error(`${dir + p}, named by ${jsonPath}, is missing`);
            }
            if (sums?.[p] && await sha256Hex(bytes) !== sums[p]) {
              throw new Error(
                `${dir + p} is corrupt (checksum mismatch with ${jsonPath}); ` +
                  "copy or train it again",
              );
            }
            parts.push(bytes);
          }
        }
        const expected = specs.reduce(
          (n, w) =>
            n +
            w.shape.reduce((a, b) => a * b, 1) *
              bytesOf(w.quantization?.dtype ?? w.dtype),
          0,
        );
        const got = parts.reduce((n, b) => n + b.length, 0);
        if (got !== expected) {
          const files = manifest.flatMap((g) => g.paths).map((p) => dir + p);
          throw new Error(
            `${files.join(", ")} ${files.length > 1 ? "hold" : "holds"} ` +
              `${got} bytes, ${jsonPath} expects ${expected}: ` +
              `${got < expected ? "truncated" : "not the weights it names"}; ` +
              "copy or train it again",
          );
        }
        const joined = concat(parts);
        const bad = nonFiniteWeight(joined, specs);
        if (bad) {
          const files = manifest.flatMap((g) => g.paths).map((p) => dir + p);
          throw new Error(
            `${files.join(", ")} ${files.length > 1 ? "hold" : "holds"} ` +
              `${bad.count} NaN or infinite value(s) in weight ${bad.name} ` +
              `(named by ${jsonPath}): a generator that trained into NaN, ` +
              "or a damaged file; copy or train it again",
          );
        }
        return [specs, joined.buffer];
      }),
  });
  const paths: string[] = json.weightsManifest.flatMap((
    g: { paths: string[] },
  ) => g.paths);
  return {
    model,
    metadata: json.userDefinedMetadata ?? {},
    verified: paths.length > 0 && paths.every((p) => Boolean(sums?.[p])),
  };
}

/**
 * The first float32 weight of `specs` holding NaN or infinite values in
 * `joined`, with their count; null when every value is finite. Quantized
 * weights decode from a finite min and scale, so only those are checked.
 */
function nonFiniteWeight(
  joined: Uint8Array<ArrayBuffer>,
  specs: tf.io.WeightsManifestEntry[],
): { name: string; count: number } | null {
  let at = 0;
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = n * bytesOf(spec.quantization?.dtype ?? spec.dtype);
    let count = 0;
    if (spec.quantization) {
      const { min, scale } = spec.quantization;
      if (!Number.isFinite(min ?? 0) || !Number.isFinite(scale ?? 1)) count = n;
    } else if (spec.dtype === "float32") {
      // After an 8-bit weight an offset may not be a multiple of 4: a copy.
      const values = at % 4 === 0
        ? new Float32Array(joined.buffer, at, n)
        : new Float32Array(joined.slice(at, at + bytes).buffer);
      for (const v of values) if (!Number.isFinite(v)) count++;
    }
    if (count > 0) return { name: spec.name, count };
    at += bytes;
  }
  return null;
}

/** Bytes per value of a weights manifest's dtype. */
function bytesOf(dtype: string): number {
  return dtype === "float16"
    ? 2
    : dtype === "bool" || dtype === "uint8"
    ? 1
    : 4;
}
