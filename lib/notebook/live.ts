/**
 * Training in a notebook: {@linkcode train} with one picture, redrawn in
 * place after every epoch, of the loss curves and D's outputs beside the
 * samples of the run's fixed noise.
 *
 * @module
 */

import { pixelRange } from "../presets.ts";
import { trainingFigure } from "../pictures/figures.ts";
import { train, type TrainOptions, type TrainResult } from "../train.ts";
import { LiveDisplay, pngBundle, type Send } from "./display.ts";

/**
 * Trains as {@linkcode train} does, writing nothing unless `outDir` is
 * given, and redraws one output after every epoch (titled with the epoch,
 * D(x), D(G(z)) and the speed); `options.onEpoch` runs after it.
 *
 * @param send where the picture goes (default: the Deno kernel, if any).
 */
export async function trainLive(
  options: TrainOptions,
  send?: Send,
): Promise<TrainResult> {
  const live = new LiveDisplay(send);
  return await train({
    outDir: null,
    ...options,
    onEpoch: async (s, run) => {
      const title = `epoch ${s.epoch}/${options.epochs}: ` +
        `D(x) ${s.dReal.toFixed(2)}, D(G(z)) ${s.dFake.toFixed(2)}, ` +
        `${s.imagesPerSecond.toFixed(0)} images/s`;
      const figure = await trainingFigure(run.history, run.grid, {
        encoding: pixelRange(run.gan.config),
        title,
      });
      await live.update(pngBundle(figure, title));
      await options.onEpoch?.(s, run);
    },
  });
}

/**
 * How a run ended, in one line: "completed: 30 epochs in 12.5 min on
 * webgpu" (a conditional GAN's: "... 30 epochs of cgan, conditional, in
 * ...").
 */
export function describeRun(result: TrainResult, backend: string): string {
  const epochs = result.history.length;
  const minutes = result.history.reduce((t, s) => t + s.seconds, 0) / 60;
  const config = result.gan.config;
  const what = config.classes ? ` of ${config.preset}, conditional,` : "";
  return `${result.status}: ${epochs} epochs${what} in ` +
    `${minutes.toFixed(1)} min on ${backend}`;
}
