/**
 * One epoch of the game: a round on each mini-batch of the shuffled split,
 * with running figures, a stop on divergence or abort, and a pause between
 * rounds. `deno task train` (`lib/train.ts`) and the web page's Train view
 * play their epochs with it, so both draw the same batches in the same
 * order and report the same figures.
 *
 * Nothing here touches a file or the process: it runs in a browser too.
 *
 * @module
 */

import { batches, batchesPerEpoch, type Split } from "./splits.ts";
import { type GanConfig, pixelRange, realBatchSize } from "./presets.ts";
import { finiteMeans, type RoundMeans, type Rounds } from "./rounds.ts";
import type { EpochStats } from "./run/record.ts";

/** A progress update within an epoch (running means over the epoch so far). */
export interface Progress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  dLoss: number;
  gLoss: number;
  dReal: number;
  dFake: number;
  imagesPerSecond: number;
  /** Seconds of training in the epoch so far (paused time left out). */
  seconds: number;
}

/** Options of {@linkcode playEpoch}. */
export interface EpochOptions {
  config: GanConfig;
  /** The run's seed: with `epoch` it fixes the batches' order. */
  seed: number;
  /** This epoch, from 0. */
  epoch: number;
  /** The run's epochs, for the progress updates. */
  epochs: number;
  /** Progress updates per epoch (default 20). */
  progressUpdates?: number;
  /** Called with running figures during the epoch. */
  onProgress?: (p: Progress) => void | Promise<void>;
  /** Called after each round with the rounds played in the epoch. */
  onRound?: (step: number) => void;
  /** Aborting stops at the next round; the epoch in progress is discarded. */
  signal?: AbortSignal;
  /**
   * Awaited before each round: resolves at once while training runs, and
   * when it is resumed while it is paused (the web page's Pause).
   */
  pause?: () => Promise<void>;
  /**
   * When the event loop last had a turn; shared across epochs. A round
   * never gives it one (on wasm even read-backs resolve at once), so
   * {@linkcode EpochOptions.yieldEveryMs} apart a round waits for one.
   */
  last: { at: number };
  /** Default 200 ms (Ctrl-C's handler); a page wants less. */
  yieldEveryMs?: number;
  /** How to give the event loop a turn (default: a zero timeout). */
  yieldTurn?: () => Promise<void>;
}

/** How an epoch went: its figures, or why it stopped. */
export interface PlayedEpoch {
  means: RoundMeans;
  /** Rounds played. */
  rounds: number;
  /** Seconds of training (paused time left out). */
  seconds: number;
  stop?: "interrupted" | "diverged";
  /** What diverged. */
  what?: string;
}

const zeroTimeout = () =>
  new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Gives the event loop a turn when `o.last` is long enough ago. */
async function yieldNow(o: EpochOptions): Promise<void> {
  if (performance.now() - o.last.at > (o.yieldEveryMs ?? 200)) {
    await (o.yieldTurn ?? zeroTimeout)();
    o.last.at = performance.now();
  }
}

/** The rounds of one epoch of `split`: every batch, or the preset's steps an epoch. */
export function stepsPerEpoch(config: GanConfig, split: Split): number {
  return Math.min(
    batchesPerEpoch(split.size, realBatchSize(config)),
    config.stepsPerEpoch ?? Infinity,
  );
}

/**
 * One epoch: a round of the game on each minibatch of the shuffled split,
 * with progress updates and a stop on divergence or abort.
 */
export async function playEpoch(
  rounds: Rounds,
  split: Split,
  o: EpochOptions,
): Promise<PlayedEpoch> {
  const started = performance.now();
  let paused = 0; // ms
  // D's real images a round: a batch, or half of one (keras-mlp); an epoch
  // plays every batch, or the first stepsPerEpoch of them.
  const bs = realBatchSize(o.config);
  const steps = stepsPerEpoch(o.config, split);
  const every = Math.max(
    1,
    Math.floor(steps / Math.max(1, o.progressUpdates ?? 20)),
  );
  const order = {
    batchSize: bs,
    seed: o.seed,
    epoch: o.epoch,
    range: pixelRange(o.config),
    images: rounds.needsImages,
  };
  const elapsed = () => (performance.now() - started - paused) / 1000;
  let stop: PlayedEpoch["stop"], what: string | undefined, step = 0;
  rounds.startEpoch(o.epoch, steps);
  for (const batch of batches(split, order)) {
    await yieldNow(o);
    if (o.pause) {
      const t = performance.now();
      await o.pause();
      paused += performance.now() - t;
    }
    if (o.signal?.aborted) {
      stop = "interrupted";
      break;
    }
    await rounds.round(batch);
    step++;
    o.onRound?.(step);
    if (step === steps) break;
    if (step % every !== 0) continue;
    const m = await rounds.means();
    if (!finiteMeans(m)) {
      stop = "diverged";
      what = `diverged at epoch ${o.epoch + 1}, step ${step}: ` +
        `D loss ${m.dLoss}, G loss ${m.gLoss}`;
      break;
    }
    const seconds = elapsed();
    const { dLoss, gLoss, dReal, dFake } = m;
    await o.onProgress?.({
      epoch: o.epoch + 1,
      epochs: o.epochs,
      step,
      steps,
      ...{ dLoss, gLoss, dReal, dFake },
      imagesPerSecond: (step * bs) / seconds,
      seconds,
    });
  }
  const means = await rounds.means();
  await rounds.endEpoch();
  if (!stop && !finiteMeans(means)) {
    stop = "diverged";
    what = `diverged in epoch ${o.epoch + 1}: ` +
      `D loss ${means.dLoss}, G loss ${means.gLoss}`;
  }
  return { means, rounds: step, seconds: elapsed(), stop, what };
}

/** An epoch's record from its figures, time and images (no memory figures). */
export function epochStats(
  epoch: number,
  p: PlayedEpoch,
  images: number,
): EpochStats {
  const m = p.means;
  return {
    epoch,
    dLoss: m.dLoss,
    gLoss: m.gLoss,
    value: m.value,
    dReal: m.dReal,
    dFake: m.dFake,
    accReal: m.accReal,
    accFake: m.accFake,
    dAccuracy: (m.accReal + m.accFake) / 2,
    seconds: p.seconds,
    imagesPerSecond: images / p.seconds,
  };
}
