/**
 * Saving and loading TF.js layers models as files (`model.json` + one
 * weights file), the format `tf.loadLayersModel` reads in a browser. TF.js
 * has no file handler outside Node, so these write and read the files
 * themselves, weights first and `model.json` last, each atomically.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { exists, writeFileAtomic } from "./files.ts";

/** Options of {@linkcode saveLayersModel}. */
export interface SaveLayersOptions {
  /** Name of the weights file (default `weights.bin`). */
  weightsFile?: string;
  /** Stored as `userDefinedMetadata` in model.json. */
  metadata: Record<string, unknown>;
}

/** Writes `model` to `dir/model.json` and `dir/<weightsFile>`. */
export async function saveLayersModel(
  dir: string,
  model: tf.LayersModel,
  options: SaveLayersOptions,
): Promise<void> {
  const weightsFile = options.weightsFile ?? "weights.bin";
  await Deno.mkdir(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData;
    const buffers = Array.isArray(data) ? data : [data!];
    const joined = new Uint8Array(
      buffers.reduce((n, b) => n + b.byteLength, 0),
    );
    let at = 0;
    for (const b of buffers) {
      joined.set(new Uint8Array(b), at);
      at += b.byteLength;
    }
    await writeFileAtomic(`${dir}/${weightsFile}`, joined);
    const json = {
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{
        paths: [weightsFile],
        weights: artifacts.weightSpecs,
      }],
      userDefinedMetadata: options.metadata,
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
}

/**
 * Loads a layers model from its model.json (weights paths are relative to
 * it). Returns the model and its `userDefinedMetadata`.
 *
 * @throws {Error} naming the file when model.json or a weights file is
 *   missing or malformed.
 */
export async function loadLayersModelFile(
  jsonPath: string,
): Promise<{ model: tf.LayersModel; metadata: Record<string, unknown> }> {
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
  const model = await tf.loadLayersModel({
    load: () =>
      tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((g) => g.weights);
        const parts: Uint8Array[] = [];
        for (const group of manifest) {
          for (const p of group.paths) {
            try {
              parts.push(await Deno.readFile(dir + p));
            } catch {
              throw new Error(`${dir + p}, named by ${jsonPath}, is missing`);
            }
          }
        }
        const data = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
        let at = 0;
        for (const b of parts) {
          data.set(b, at);
          at += b.length;
        }
        return [specs, data.buffer];
      }),
  });
  return { model, metadata: json.userDefinedMetadata ?? {} };
}
