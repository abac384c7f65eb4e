/**
 * A training run's record: each epoch's figures and memory (`history.json`,
 * and the epoch line), and what a checkpoint stores besides the tensors.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { RngState } from "../random/rng.ts";

/**
 * Figures of one epoch, means over its steps, and the memory at its end
 * ({@linkcode MemorySnapshot}; absent in histories written before these
 * were recorded).
 */
export interface EpochStats extends Partial<MemorySnapshot> {
  /** Epoch number, from 1. */
  epoch: number;
  /** D's loss, BCE(D(x), 1) + BCE(D(G(z)), 0) (= -V when labels are not smoothed). */
  dLoss: number;
  /** G's loss (non-saturating: -log D(G(z)); saturating: log(1 - D(G(z)))). */
  gLoss: number;
  /** V(D, G) (eq. 1); -log 4 = -1.386 at the game's equilibrium. */
  value: number;
  /** Mean D(x) on real images. */
  dReal: number;
  /** Mean D(G(z)) on generated images (during D's steps). */
  dFake: number;
  /** D's accuracy on real and generated images together (1/2 at equilibrium). */
  dAccuracy: number;
  accReal: number;
  accFake: number;
  seconds: number;
  imagesPerSecond: number;
}

/** Memory figures of the process now (see {@linkcode EpochStats}). */
export interface MemorySnapshot {
  tensors: number;
  tensorBytes: number;
  gpuBytes: number | null;
  rssBytes: number;
  peakRssBytes: number | null;
}

/**
 * Live tensors and their bytes, bytes in GPU buffers (WebGPU; null
 * elsewhere), and the process's resident set size and its peak so far
 * (Linux: VmHWM; null where the OS does not say).
 */
export function memorySnapshot(
  /** GPU bytes held outside tfjs (the WGSL step's buffers). */
  otherGpuBytes = 0,
): MemorySnapshot {
  const memory = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
  // The current RSS first, the peak after it, so that peak >= current.
  const rssBytes = Deno.memoryUsage().rss;
  let peakRssBytes: number | null = null;
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = status.match(/^VmHWM:\s+(\d+) kB/m);
    if (kb) peakRssBytes = Number(kb[1]) * 1024;
  } catch {
    // not Linux
  }
  return {
    tensors: memory.numTensors,
    tensorBytes: memory.numBytes,
    gpuBytes: memory.numBytesInGPU === undefined
      ? null
      : memory.numBytesInGPU + otherGpuBytes,
    rssBytes,
    peakRssBytes,
  };
}

/** What a checkpoint stores besides the tensors. */
export interface TrainState {
  /** Completed epochs. */
  epoch: number;
  seed: number;
  rng: RngState;
  history: EpochStats[];
  dataset: string;
  trainSize: number;
  holdout: number;
  limit: number | null;
  backend: string;
  /**
   * The total epochs the run was asked for, which `--resume` continues to
   * when not told otherwise (absent in checkpoints written before it was
   * recorded).
   */
  epochs?: number;
  /**
   * The run's id, drawn when it started and kept on resume; every generator
   * the run writes carries it (absent in checkpoints of older versions).
   */
  run?: string;
  /** Whether the run keeps each epoch's generator (`--keep-generators`). */
  keepGenerators?: boolean;
}
