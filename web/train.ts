/// <reference lib="dom" />
/**
 * The page's Train view: the project's training loop in the browser. It
 * fetches a dataset's training split from the page's own server (the
 * gzipped IDX files that `deno task serve` and `deno task build:web`
 * provide), builds the GAN of a preset, and plays the epochs with
 * `lib/epoch.ts`, the code `deno task train` runs: the same seed gives
 * the same batches, noise and dropout masks, so the same figures within
 * float rounding. On WebGPU the rounds run on the WGSL step where it passes
 * its self-check, as `deno task train --step auto` does (`lib/rounds.ts`).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  createGan,
  disposeGan,
  type Gan,
  generatorModel,
  outputGenerator,
} from "../lib/gan.ts";
import { type IdxArray, isGzip, parseIdxBytes } from "../lib/io/idx_format.ts";
import {
  CLASS_NAMES,
  type Dataset,
  type DatasetName,
  IDX_FILES,
  type Split,
  splitFrom,
} from "../lib/splits.ts";
import { validateConfig } from "../lib/config_check.ts";
import {
  conditional,
  type GanConfig,
  preset,
  realBatchSize,
} from "../lib/presets.ts";
import { Rng } from "../lib/random/rng.ts";
import { type Rounds, roundsFor, WgslRounds } from "../lib/rounds.ts";
import {
  epochStats,
  playEpoch,
  type Progress,
  stepsPerEpoch,
} from "../lib/epoch.ts";
import { SampleGrid } from "../lib/run/grid.ts";
import type { EpochStats } from "../lib/run/record.ts";
import { checkLabels, pixelMeans, trainingSplit } from "../lib/run/split.ts";
import {
  type GeneratorMetadata,
  generatorMetadata,
} from "../lib/run/generator_metadata.ts";

/** The presets the Train view offers: value, preset, conditional. */
export const TRAIN_PRESETS: readonly {
  value: string;
  preset: string;
  conditional: boolean;
  label: string;
}[] = [
  {
    value: "paper",
    preset: "paper",
    conditional: false,
    label: "paper: the 2014 MLPs (maxout D)",
  },
  {
    value: "bn",
    preset: "bn",
    conditional: false,
    label: "bn: MLPs with batch norm",
  },
  {
    value: "bn-conditional",
    preset: "bn",
    conditional: true,
    label: "bn, conditional: G draws the class asked for",
  },
  {
    value: "sngan",
    preset: "sngan",
    conditional: false,
    label: "sngan: convolutional, spectral norm in D",
  },
  {
    value: "sngan-conditional",
    preset: "sngan",
    conditional: true,
    label:
      "sngan, conditional: a projection D, class-conditional batch norm in G",
  },
];

/** What one training in the page asks for. */
export interface TrainRequest {
  dataset: DatasetName;
  /** A value of {@linkcode TRAIN_PRESETS}. */
  preset: string;
  seed: number;
  epochs: number;
  /** Train on the first N images of the split only (quick runs, tests). */
  limit?: number;
}

/** A fetched file's failure, with what to do; shown as it is. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

/** What to do about a damaged data file. */
const REBUILD = "rebuild the site with deno task build:web (or restart " +
  "deno task serve) and reload";

/** The IDX array at `url` (gzipped or not). */
async function fetchIdx(url: string, signal?: AbortSignal): Promise<IdxArray> {
  let response: Response;
  let bytes = new Uint8Array(0);
  try {
    response = await fetch(url, { signal });
    if (response.ok) bytes = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new DataError(
      `${url}: cannot be fetched (${(e as Error).message}); is the page's ` +
        "server still running?",
    );
  }
  if (response.status === 404) {
    await response.body?.cancel();
    throw new DataError(
      `${url}: HTTP 404. The page's server has no training data for this ` +
        "dataset: serve the page with deno task serve, or build it with " +
        'deno task build:web, which writes data/ (it says "left out ' +
        'data/NAME" and why when it cannot load a dataset), and reload',
    );
  }
  if (!response.ok) {
    const said = (await response.text().catch(() => "")).slice(0, 300);
    throw new DataError(
      `${url}: HTTP ${response.status}${said ? ` (${said})` : ""}`,
    );
  }
  if (isGzip(bytes)) {
    try {
      const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
        .pipeThrough(
          new DecompressionStream("gzip"),
        );
      bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (e) {
      throw new DataError(
        `${url}: corrupt or truncated gzip data (${
          (e as Error).message
        }); ${REBUILD}`,
      );
    }
  }
  try {
    return parseIdxBytes(bytes, url);
  } catch (e) {
    throw new DataError(`${(e as Error).message}; ${REBUILD}`);
  }
}

/**
 * The training split of `name` from the page's server (`data/NAME/`), as a
 * {@linkcode Dataset} without a test split.
 *
 * @throws {DataError} for a file that is missing, damaged or of the wrong kind.
 */
export async function fetchTrainingData(
  name: DatasetName,
  signal?: AbortSignal,
): Promise<Dataset> {
  const images = `data/${name}/${IDX_FILES.trainImages}.gz`;
  const labels = `data/${name}/${IDX_FILES.trainLabels}.gz`;
  const [ia, la] = await Promise.all([
    fetchIdx(images, signal),
    fetchIdx(labels, signal),
  ]);
  let train: Split;
  try {
    train = splitFrom(ia, la, images, labels);
  } catch (e) {
    throw new DataError(`${(e as Error).message}; ${REBUILD}`);
  }
  const empty = { images: new Uint8Array(0), labels: new Uint8Array(0) };
  return {
    name,
    train,
    test: { ...empty, size: 0 },
    classNames: CLASS_NAMES[name],
    sourceKind: "dir",
    source: `the page's data/${name}/`,
  };
}

/** The configuration of a request, as `deno task train --preset P [--conditional]` builds it. */
export function requestConfig(r: TrainRequest): GanConfig {
  const choice = TRAIN_PRESETS.find((p) => p.value === r.preset);
  if (!choice) {
    throw new Error(
      `unknown preset "${r.preset}"; the Train view offers ${
        TRAIN_PRESETS.map((p) => p.value).join(", ")
      }`,
    );
  }
  let config = preset(choice.preset);
  if (choice.conditional) {
    config = conditional(config, CLASS_NAMES[r.dataset].length);
  }
  validateConfig(config);
  return config;
}

/** What a training reports as it goes. */
export interface TrainEvents {
  /** A line about the run (the step chosen, the self-check, notes). */
  log(message: string): void;
  /** The data is in, the players are built: the first round comes next. */
  started(): void;
  progress(p: Progress): void;
  /** After each round: the rounds played since the start. */
  round(rounds: number): void;
  /** After each epoch: its figures and the fixed noise's images (data range). */
  epoch(stats: EpochStats, grid: Float32Array, tensors: number): void;
  /** Within an epoch, every few hundred rounds: the fixed noise's images. */
  grid(images: Float32Array): void;
}

/** The generator of a training as in-memory TF.js files, with its metadata. */
export interface TrainedGenerator {
  artifacts: tf.io.ModelArtifacts;
  metadata: GeneratorMetadata;
}

/** Rounds between the mid-epoch grids. */
const GRID_EVERY = 200;

/**
 * One training in the page: started once, paused and resumed, stopped.
 * Its GAN and step are disposed when it ends (however it ends); its
 * generator is kept as files in memory ({@linkcode Training.generator}).
 */
export class Training {
  readonly request: TrainRequest;
  readonly config: GanConfig;
  /** Epochs completed. */
  epochsDone = 0;
  /** Rounds an epoch, once the data is in. */
  steps = 0;
  #controller = new AbortController();
  #resume: PromiseWithResolvers<void> | null = null;
  #gan: Gan | null = null;
  #rounds: Rounds | null = null;
  #generator: TrainedGenerator | null = null;
  #run = crypto.randomUUID().slice(0, 8);

  constructor(request: TrainRequest) {
    this.request = request;
    this.config = requestConfig(request);
  }

  /** Whether it is paused. */
  get paused(): boolean {
    return this.#resume !== null;
  }

  /** Pauses before the next round. */
  pause(): void {
    this.#resume ??= Promise.withResolvers<void>();
  }

  /** Resumes a paused training. */
  resume(): void {
    this.#resume?.resolve();
    this.#resume = null;
  }

  /** Stops at the next round (a paused training too); the epoch in progress is dropped. */
  stop(): void {
    this.#controller.abort();
    this.resume();
  }

  /**
   * G after the last epoch completed, as TF.js files with the project's
   * metadata; null before the first epoch ends.
   */
  get generator(): TrainedGenerator | null {
    return this.#generator;
  }

  /** Trains until the last epoch, a stop, or divergence; returns how it ended. */
  async run(
    events: TrainEvents,
  ): Promise<"completed" | "stopped" | "diverged"> {
    const { request: r, config } = this;
    try {
      const signal = this.#controller.signal;
      events.log(`fetching ${r.dataset}'s training images ...`);
      const dataset = await fetchTrainingData(r.dataset, signal).catch(
        (e) => {
          if (signal.aborted) return null;
          throw e;
        },
      );
      if (!dataset) return "stopped";
      const { split, note } = trainingSplit(dataset, {
        limit: r.limit,
        batchSize: config.batchSize,
      });
      if (note) events.log(`note: ${note}`);
      checkLabels(config, split, r.dataset);
      const gan = this.#gan = createGan(config, {
        seed: r.seed,
        pixelMeans: config.outputBiasFromData ? pixelMeans(split) : undefined,
      });
      const rng = new Rng(r.seed, 1);
      // The WGSL step's self-check, on a GPU, takes a few seconds.
      const rounds = this.#rounds = await roundsFor(gan, rng, {
        images: split.images,
        epoch: 0,
        log: events.log,
      });
      if (signal.aborted) return "stopped";
      if (tf.getBackend() !== "webgpu") {
        events.log(
          `training step: tfjs ops on ${tf.getBackend()} (the WGSL step ` +
            "runs on WebGPU only)",
        );
      }
      const grid = new SampleGrid(config, {
        seed: r.seed,
        size: 100,
        dataset: r.dataset,
      });
      events.grid(await grid.images(gan));
      events.started();
      const last = { at: performance.now() };
      const steps = this.steps = stepsPerEpoch(config, split);
      let gridAt = 0; // rounds played when the grid was last drawn
      for (let epoch = 0; epoch < r.epochs; epoch++) {
        const played = await playEpoch(rounds, split, {
          config,
          seed: r.seed,
          epoch,
          epochs: r.epochs,
          // A point of the curves every 10 rounds (a short epoch: 5 points).
          progressUpdates: Math.max(5, Math.floor(steps / 10)),
          onProgress: async (p) => {
            events.progress(p);
            const played = epoch * steps + p.step;
            if (played - gridAt >= GRID_EVERY) {
              gridAt = played;
              await this.#export();
              events.grid(await grid.images(gan));
            }
          },
          onRound: (step) => events.round(epoch * steps + step),
          signal,
          pause: () => this.#resume?.promise ?? Promise.resolve(),
          last,
          yieldEveryMs: 30,
          yieldTurn: nextTask,
        });
        // Stopped: the epoch in progress is dropped, as deno task train
        // drops it; the generator kept is the last epoch's.
        if (played.stop === "interrupted") return "stopped";
        if (played.stop === "diverged") {
          events.log(played.what!);
          return "diverged";
        }
        this.epochsDone = epoch + 1;
        const stats = epochStats(
          epoch + 1,
          played,
          played.rounds * realBatchSize(config),
        );
        gridAt = (epoch + 1) * steps;
        await this.#keep();
        events.epoch(stats, await grid.images(gan), tf.memory().numTensors);
      }
      return "completed";
    } finally {
      this.#dispose();
    }
  }

  /** The WGSL step's weights into the GAN's tensors (the tfjs step's are there). */
  async #export(): Promise<void> {
    if (this.#rounds instanceof WgslRounds) {
      await this.#rounds.step.exportTo(this.#gan!);
    }
  }

  /**
   * Keeps G as files in memory; called after an epoch, whose end has put
   * the WGSL step's weights into the GAN's tensors already.
   */
  async #keep(): Promise<void> {
    if (!this.#gan) return;
    const model = generatorModel(outputGenerator(this.#gan));
    let artifacts: tf.io.ModelArtifacts | undefined;
    try {
      await model.save(tf.io.withSaveHandler((a) => {
        artifacts = a;
        return Promise.resolve({
          modelArtifactsInfo: {
            dateSaved: new Date(),
            modelTopologyType: "JSON",
          },
        });
      }));
    } finally {
      model.dispose();
    }
    const metadata = generatorMetadata(this.config, {
      dataset: this.request.dataset,
      epochs: this.epochsDone,
      run: this.#run,
      seed: this.request.seed,
    });
    artifacts!.userDefinedMetadata = { gan: metadata };
    this.#generator = { artifacts: artifacts!, metadata };
  }

  #dispose(): void {
    this.#rounds?.[Symbol.dispose]();
    this.#rounds = null;
    if (this.#gan) disposeGan(this.#gan);
    this.#gan = null;
  }
}

/**
 * A turn of the event loop that a background tab does not throttle (a
 * message, not a timer), so that clicks are seen between rounds.
 */
function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/**
 * Saves a trained generator as the browser's downloads `model.json` and
 * `model.weights.bin`: put both in one folder and `deno task sample
 * --checkpoint FOLDER` loads it.
 */
export async function downloadGenerator(g: TrainedGenerator): Promise<void> {
  const [handler] = tf.io.getSaveHandlers("downloads://model");
  await handler.save!(g.artifacts);
}
