/// <reference lib="dom" />
/**
 * The Train view's controls and display (`web/train.ts` trains): Train,
 * Pause and Resume, Stop, the curves, the grid of samples from fixed noise,
 * images/s, the epoch's progress, and the trained generator to download or
 * to sample in the page.
 *
 * `window.gan.train` ({@linkcode TrainViewState}) exposes what it did, for
 * tests. Query parameters preset the controls: `dataset`, `preset`, `seed`,
 * `epochs`, and `limit` (train on the first N images only).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { type DatasetName, toBytes } from "../lib/splits.ts";
import { pixelRange } from "../lib/presets.ts";
import type { Progress } from "../lib/epoch.ts";
import type { EpochStats } from "../lib/run/record.ts";
import { type CurvePoint, drawCurves, drawGrid } from "./draw.ts";
import {
  downloadGenerator,
  TRAIN_PRESETS,
  type TrainedGenerator,
  Training,
} from "./train.ts";

/** The four figures the curves show. */
type Figures = Pick<Progress, "dLoss" | "gLoss" | "dReal" | "dFake">;

/** What the Train view exposes (tests read it). */
export interface TrainViewState {
  /** idle, loading, training, paused, completed, stopped, diverged, failed. */
  status: string;
  /** The latest progress update. */
  progress: Progress | null;
  /** Rounds played in this training. */
  rounds: number;
  /** The running figures at each progress update. */
  updates: Progress[];
  /** Each completed epoch's figures. */
  epochs: EpochStats[];
  /** Live tensors after each epoch (constant from one epoch to the next). */
  tensors: number[];
  /**
   * Live tensors when Train was pressed and when the training ended: the
   * same, since an ended training frees its networks and step.
   */
  tensorsBefore: number;
  tensorsAfter: number;
  /** Grids drawn, the untrained G's, and the last one's bytes. */
  grids: number;
  firstGrid: Uint8Array | null;
  grid: Uint8Array | null;
  log: string[];
  errors: string[];
  /** The trained generator's metadata, once an epoch has ended. */
  generator: TrainedGenerator["metadata"] | null;
}

/** The state of a view that has not trained yet (`status` aside). */
function fresh(status: string): TrainViewState {
  return {
    status,
    progress: null,
    rounds: 0,
    updates: [],
    epochs: [],
    tensors: [],
    tensorsBefore: 0,
    tensorsAfter: 0,
    grids: 0,
    firstGrid: null,
    grid: null,
    log: [],
    errors: [],
    generator: null,
  };
}

/** Options of {@linkcode setupTrainView}. */
export interface TrainViewOptions {
  /** The page's backend, once it has started. */
  backend: Promise<string>;
  /** Shows a trained generator in the Samples view. */
  sample: (g: TrainedGenerator) => Promise<void>;
  params: URLSearchParams;
}

const $ = <T extends HTMLElement>(id: string) =>
  document.getElementById(id) as T;

/** Wires the Train view's controls; returns its state and a function that stops it. */
export function setupTrainView(o: TrainViewOptions): {
  state: TrainViewState;
  leave: () => void;
} {
  const state = fresh("idle");
  let current: Training | null = null;
  let curves: CurvePoint[] = [];
  const preset = $<HTMLSelectElement>("train-preset");
  preset.replaceChildren(
    ...TRAIN_PRESETS.map((p) => new Option(p.label, p.value)),
  );
  const set = (id: string, name: string) => {
    const v = o.params.get(name);
    if (v !== null) $<HTMLInputElement>(id).value = v;
  };
  set("train-dataset", "dataset");
  set("train-preset", "preset");
  set("train-seed", "seed");
  set("train-epochs", "epochs");
  const limit = Number(o.params.get("limit")) || undefined;

  const status = (text: string) => $("train-status").textContent = text;
  const error = (message: string) => {
    state.errors.push(message);
    const box = $("train-error");
    box.hidden = false;
    box.textContent = state.errors.join("\n");
  };
  const log = (message: string) => {
    state.log.push(message);
    $("train-log").textContent = state.log.slice(-4).join("\n");
  };
  const buttons = (running: boolean) => {
    $<HTMLButtonElement>("train-start").disabled = running;
    $<HTMLButtonElement>("train-pause").disabled = !running;
    $<HTMLButtonElement>("train-stop").disabled = !running;
    const has = current?.generator != null;
    $<HTMLButtonElement>("train-download").disabled = !has;
    // Sampling switches to the Samples view, which stops a training.
    $<HTMLButtonElement>("train-sample").disabled = !has || running;
  };
  const ENDED = ["idle", "completed", "stopped", "diverged", "failed"];

  /**
   * The curves' point for rounds k0+1..k of an epoch: their means, from the
   * running means over the epoch at k0 (`before`, none at 0) and at k.
   */
  const point = (
    base: number,
    now: Figures,
    k: number,
    before: Figures | null,
    k0: number,
  ): CurvePoint => {
    const mean = (key: keyof Figures) =>
      (now[key] * k - (before ? before[key] * k0 : 0)) / (k - k0);
    return {
      step: base + k,
      dLoss: mean("dLoss"),
      gLoss: mean("gLoss"),
      dReal: mean("dReal"),
      dFake: mean("dFake"),
    };
  };

  const start = async () => {
    if (!ENDED.includes(state.status)) {
      error("already training: press Stop first to start again");
      return;
    }
    state.status = "loading";
    $<HTMLButtonElement>("train-start").disabled = true;
    const seed = Math.max(
      0,
      Math.floor(Number($<HTMLInputElement>("train-seed").value) || 0),
    );
    const epochs = Math.max(
      1,
      Math.floor(Number($<HTMLInputElement>("train-epochs").value) || 1),
    );
    const dataset = $<HTMLSelectElement>("train-dataset").value as DatasetName;
    Object.assign(state, fresh("loading"));
    $("train-error").hidden = true;
    curves = [];
    let training: Training;
    try {
      await o.backend;
      state.tensorsBefore = tf.memory().numTensors;
      training = current = new Training({
        dataset,
        preset: preset.value,
        seed,
        epochs,
        limit,
      });
    } catch (e) {
      state.status = "failed";
      error((e as Error).message);
      buttons(false);
      return;
    }
    buttons(true);
    $("train-pause").textContent = "Pause";
    status(
      `${training.config.preset} on ${dataset}, seed ${seed}, on ${tf.getBackend()}: starting`,
    );
    const range = pixelRange(training.config);
    let previous: Progress | null = null;
    const ended = await training.run({
      log,
      round: (rounds) => {
        state.rounds = rounds;
      },
      started: () => {
        state.status = training.paused ? "paused" : "training";
      },
      progress: (p) => {
        state.status = training.paused ? "paused" : "training";
        state.progress = p;
        state.updates.push(p);
        const before = previous?.epoch === p.epoch ? previous : null;
        const k = p.step, base = (p.epoch - 1) * p.steps;
        curves.push(point(base, p, k, before, before?.step ?? 0));
        previous = p;
        drawCurves($<HTMLCanvasElement>("train-curves"), curves);
        const bar = $<HTMLProgressElement>("train-progress");
        bar.max = p.epochs * p.steps;
        bar.value = base + k;
        status(
          `epoch ${p.epoch}/${p.epochs}, round ${k}/${p.steps}, ` +
            `${p.imagesPerSecond.toFixed(0)} images/s on ${tf.getBackend()}` +
            (training.paused ? " (paused)" : ""),
        );
        $("train-figures").textContent = `D loss ${p.dLoss.toFixed(3)}, ` +
          `G loss ${p.gLoss.toFixed(3)}, D(x) ${p.dReal.toFixed(2)}, ` +
          `D(G(z)) ${p.dFake.toFixed(2)} (means over the epoch so far)`;
      },
      grid: (images) => {
        state.grid = toBytes(images, range);
        state.firstGrid ??= state.grid;
        state.grids++;
        drawGrid($<HTMLCanvasElement>("train-grid"), state.grid, 10, 1);
      },
      epoch: (stats, images, tensors) => {
        state.epochs.push(stats);
        // The curves' point for the epoch's last rounds, from its means.
        const steps = training.steps, base = (stats.epoch - 1) * steps;
        const before = previous?.epoch === stats.epoch ? previous : null;
        curves.push(point(base, stats, steps, before, before?.step ?? 0));
        drawCurves($<HTMLCanvasElement>("train-curves"), curves);
        const bar = $<HTMLProgressElement>("train-progress");
        bar.max = training.request.epochs * steps;
        bar.value = state.rounds;
        state.tensors.push(tensors);
        state.generator = training.generator?.metadata ?? null;
        state.grid = toBytes(images, range);
        state.grids++;
        drawGrid($<HTMLCanvasElement>("train-grid"), state.grid, 10, 1);
        buttons(true);
        $("train-debug").textContent = `after epoch ${stats.epoch}: ` +
          `${tensors} tensors, ${stats.imagesPerSecond.toFixed(0)} images/s`;
      },
    }).catch((e: Error) => {
      error(e.message);
      return "failed" as const;
    });
    state.status = ended;
    state.tensorsAfter = tf.memory().numTensors;
    buttons(false);
    const kept = training.generator
      ? `; the generator after epoch ${training.epochsDone} can be downloaded or sampled`
      : "";
    status(
      {
        completed: `trained ${training.epochsDone} epoch${
          training.epochsDone === 1 ? "" : "s"
        }`,
        stopped:
          `stopped in epoch ${training.epochsDone + 1}, which is dropped` +
          kept,
        diverged: "diverged: the losses are no longer finite" + kept,
        failed: "failed (see below)" + kept,
      }[ended] + (ended === "completed" ? kept : ""),
    );
  };

  $("train-start").addEventListener("click", () => void start());
  $("train-pause").addEventListener("click", () => {
    if (!current) return;
    if (current.paused) {
      current.resume();
      state.status = "training";
      $("train-pause").textContent = "Pause";
      status(`resumed after round ${state.rounds}`);
    } else {
      current.pause();
      state.status = "paused";
      $("train-pause").textContent = "Resume";
      status(
        `paused after round ${state.rounds} (or the one under way): ` +
          "press Resume to go on",
      );
    }
  });
  $("train-stop").addEventListener("click", () => current?.stop());
  $("train-download").addEventListener("click", () => {
    const g = current?.generator;
    if (g) downloadGenerator(g).catch((e) => error((e as Error).message));
  });
  $("train-sample").addEventListener("click", () => {
    const g = current?.generator;
    if (g) o.sample(g).catch((e) => error((e as Error).message));
  });
  document.addEventListener("visibilitychange", () => {
    if (state.status !== "training") return;
    log(
      document.hidden
        ? "the tab is in the background: the browser may slow training down; it goes on, and nothing is lost"
        : "the tab is in front again",
    );
  });
  globalThis.addEventListener("pagehide", () => current?.stop());
  return {
    state,
    leave: () => {
      if (current && !ENDED.includes(state.status)) {
        current.stop();
        log("training stopped: you left the Train view");
      }
    },
  };
}
