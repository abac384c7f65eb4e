/**
 * Where a training run starts: a new run, or the checkpoint it resumes,
 * and what an earlier run in its folder left behind.
 *
 * @module
 */

import type { GanConfig } from "../presets.ts";
import { removeStaleTemporaries } from "../io/files.ts";
import type { RngState } from "../random/rng.ts";
import {
  keptEpochs,
  keptGeneratorFolder,
  removeKeptGenerators,
} from "./average.ts";
import { hasCheckpoint, noChecksumNote, readCheckpoint } from "./checkpoint.ts";
import type { EpochStats, TrainState } from "./record.ts";

/** Where a run starts: a new one, or the checkpoint it resumes. */
export interface RunStart {
  config: GanConfig;
  seed: number;
  history: EpochStats[];
  /** Completed epochs. */
  epoch: number;
  rngState: RngState | null;
  checkpoint: Awaited<ReturnType<typeof readCheckpoint<TrainState>>> | null;
  /** `limit` and `holdout`: the checkpoint's on resume. */
  limit?: number;
  holdout?: number;
  /** The run's id ({@linkcode TrainState.run}). */
  id: string;
}

/** What {@linkcode openRun} reads of train()'s options. */
export interface OpenRunOptions {
  config: GanConfig;
  dataset: { name: string };
  epochs: number;
  seed?: number;
  resume?: boolean;
  limit?: number;
  holdout?: number;
  keepGenerators?: boolean;
}

/**
 * Opens the run folder `outDir` (null: a run that writes nothing): removes
 * the temporary files and kept generators a killed or earlier run left,
 * and reads the checkpoint to resume, or checks that there is none to
 * overwrite. The caller holds the folder's lock.
 */
export async function openRun(
  options: OpenRunOptions,
  outDir: string | null,
  log: (m: string) => void,
): Promise<RunStart> {
  const fresh: RunStart = {
    config: options.config,
    seed: options.seed ?? 0,
    history: [],
    epoch: 0,
    rngState: null,
    checkpoint: null,
    limit: options.limit,
    holdout: options.holdout,
    id: crypto.randomUUID(),
  };
  if (outDir === null) return fresh;
  // Files a killed run was writing (`NAME.tmp-PID`) are never completed.
  const stale = removeStaleTemporaries(outDir, [
    "samples",
    "generator",
    ...keptEpochs(outDir).map(keptGeneratorFolder),
  ]);
  if (stale.length > 0) {
    log(
      `removed ${stale.length} unfinished file(s) left by an interrupted ` +
        `run: ${stale.join(", ")}`,
    );
  }
  if (!hasCheckpoint(outDir)) {
    if (options.resume) {
      throw new Error(
        `nothing to resume: ${outDir} holds no checkpoint.json`,
      );
    }
    // Generators an earlier run in this folder kept are not of this run.
    logRemovedGenerators(outDir, removeKeptGenerators(outDir, 0), 0, log);
    return fresh;
  }
  if (!options.resume) {
    throw new Error(
      `${outDir} already holds a checkpoint; pass --resume to continue it, ` +
        "or choose another --out",
    );
  }
  const checkpoint = await readCheckpoint<TrainState>(outDir);
  if (!checkpoint.verified) log(noChecksumNote(`${outDir}/checkpoint.json`));
  const s = checkpoint.file.state;
  const config = checkpoint.file.config;
  if (s.dataset !== options.dataset.name) {
    throw new Error(
      `${outDir} was trained on ${s.dataset}, not ${options.dataset.name}`,
    );
  }
  if (options.epochs < s.epoch) {
    throw new Error(
      `${outDir} has already trained ${s.epoch} epochs, more than the ` +
        `${options.epochs} asked for; pass --epochs N with N > ${s.epoch} ` +
        "to train it further",
    );
  }
  // Kept generators past the checkpoint were written by an attempt killed
  // before its checkpoint: that epoch trains again, to other weights.
  logRemovedGenerators(
    outDir,
    removeKeptGenerators(outDir, s.epoch),
    s.epoch,
    log,
  );
  if (s.keepGenerators && !options.keepGenerators) {
    log(
      `note: ${outDir} kept each epoch's generator so far; resumed without ` +
        "--keep-generators, the next epochs' are not kept",
    );
  }
  log(
    options.epochs === s.epoch
      ? `${outDir} has already trained all ${s.epoch} epochs asked for; ` +
        `nothing to do (pass --epochs N with N > ${s.epoch} to train further)`
      : `resuming ${outDir} after epoch ${s.epoch} of ${options.epochs}: ` +
        `preset ${config.preset}, batch ${config.batchSize}, seed ${s.seed} ` +
        "(the checkpoint's configuration)",
  );
  return {
    config,
    seed: s.seed,
    history: s.history,
    epoch: s.epoch,
    rngState: s.rng,
    checkpoint,
    limit: s.limit ?? undefined,
    holdout: s.holdout,
    // A run of an older version had no id: its generators from now on get one.
    id: s.run ?? crypto.randomUUID(),
  };
}

/** Says which kept generators {@linkcode removeKeptGenerators} removed, and why. */
function logRemovedGenerators(
  outDir: string,
  removed: number[],
  after: number,
  log: (m: string) => void,
): void {
  if (removed.length === 0) return;
  log(
    `removed the generators of epoch(s) ${removed.join(", ")} from ` +
      `${outDir}/generators/: ` +
      (after === 0
        ? "kept by an earlier run in this folder"
        : "kept by an attempt stopped before its checkpoint; epoch " +
          `${after + 1} trains again`),
  );
}
