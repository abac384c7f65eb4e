/**
 * What a generator's `model.json` says of it (`userDefinedMetadata.gan`):
 * its input, output, preset, dataset and training. Written by `deno task
 * train` (`lib/run/outputs.ts`) and by the web page's Train view, read by
 * `deno task sample` and the page. Nothing here touches a file.
 *
 * @module
 */

import type { EmaConfig } from "../nets/ema.ts";
import type { OutputActivation } from "../nets/mlp.ts";
import type { Conditioning, GanConfig } from "../presets.ts";

/** Metadata stored in the generator's model.json (`userDefinedMetadata`). */
export interface GeneratorMetadata {
  latentDim: number;
  latent: "normal" | "uniform";
  output: OutputActivation;
  /**
   * Classes of a conditional generator: its input is the latent vector
   * followed by the one-hot class (latentDim + classes values). Absent for
   * an unconditional one.
   */
  classes?: number;
  /**
   * How a conditional convolutional D was told the class
   * (`--conditioning`; {@linkcode Conditioning}); absent for an MLP, whose
   * networks take the class appended to their input, and in generators of
   * older versions.
   */
  conditioning?: Conditioning;
  preset: string;
  dataset: string;
  epochs: number;
  /**
   * The training run this generator comes from: an id drawn when the run
   * started and kept when it is resumed (`deno task average` takes
   * generators of one run only). Absent in generators of older versions.
   */
  run?: string;
  /** The run's seed (absent in generators of older versions). */
  seed?: number;
  /**
   * The epochs of the generators whose weights this one's are the mean of
   * (`deno task average`); absent for a generator as trained.
   */
  averagedEpochs?: number[];
  /**
   * Present when the weights are the moving average of G's that the run
   * kept (`lib/nets/ema.ts`), with its settings; absent for G as trained
   * (a run with an average keeps that one in `generator-raw/`).
   */
  ema?: EmaConfig;
}

/**
 * The metadata of a generator of `config` after `epochs` epochs of run
 * `run` (seed `seed`) on `dataset`; with `config.ema`, of the moving
 * average of G's weights.
 */
export function generatorMetadata(
  config: GanConfig,
  o: { dataset: string; epochs: number; run?: string; seed: number },
): GeneratorMetadata {
  return {
    latentDim: config.latentDim,
    latent: config.latent,
    output: config.output,
    ...(config.classes ? { classes: config.classes } : {}),
    ...conditioningField(config),
    preset: config.preset,
    dataset: o.dataset,
    epochs: o.epochs,
    ...(o.run === undefined ? {} : { run: o.run }),
    seed: o.seed,
    ...(config.ema ? { ema: config.ema } : {}),
  };
}

/**
 * How `config`'s D is told the class (`--conditioning`): its first layer
 * says; undefined for an MLP or an unconditional GAN.
 */
export function conditioningForm(config: GanConfig): Conditioning | undefined {
  const first = config.discriminator.layers?.[0]?.kind;
  if (first === "classInput") return "projection";
  if (first === "classChannels") return "channels";
  return undefined;
}

/** `{ conditioning }` where `config` has a form, else nothing. */
function conditioningField(
  config: GanConfig,
): { conditioning?: Conditioning } {
  const conditioning = conditioningForm(config);
  return conditioning ? { conditioning } : {};
}

/**
 * " (projection)" or " (channels)" for a conditional convolutional
 * generator, to follow "conditional" in a line about it; "" otherwise.
 */
export function conditioningText(
  m: { conditioning?: Conditioning },
): string {
  return m.conditioning ? ` (${m.conditioning})` : "";
}
