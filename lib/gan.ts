/**
 * The game of Goodfellow et al. (2014), "Generative Adversarial Nets": a
 * generator G maps noise z ~ p_z to images, a discriminator D maps an image to
 * the probability that it came from the data, and the two play
 *
 *     min_G max_D V(D, G) = E_x~p_data[log D(x)] + E_z~p_z[log(1 - D(G(z)))]   (eq. 1)
 *
 * This module holds the game: a GAN built from its configuration, one
 * training step of each player (Algorithm 1), and generation. Equation 1 and
 * the losses are in `lib/losses.ts`, the configurations and presets in
 * `lib/presets.ts`, the networks in `lib/nets/layer_net.ts` (lists of
 * layers) and `lib/nets/mlp.ts` (the MLP presets' notation for them); their
 * names are exported from here too.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { copyNet, emaDecay, updateAverage } from "./nets/ema.ts";
import {
  gradientPenalty,
  secondDerivativeError,
} from "./nets/gradient_penalty.ts";
import { LayerNet } from "./nets/layer_net.ts";
import { layerNetAsLayersModel } from "./nets/export.ts";
import {
  asMlp,
  layerSpecs,
  mlpNet,
  type OutputActivation,
} from "./nets/mlp.ts";
import { Optimizer } from "./nets/optim.ts";
import { type GanConfig, generatorInputs } from "./presets.ts";
import { validateConfig } from "./config_check.ts";
import { discriminatorLoss, generatorLoss, valueFunction } from "./losses.ts";
import { Rng } from "./random/rng.ts";

export {
  bceWithLogits,
  discriminatorLoss,
  generatorLoss,
  logSigmoid,
  valueFunction,
} from "./losses.ts";

/** Pixels of an image (28 x 28). */
export const IMAGE_DIM = 784;

/**
 * A network of a GAN: a list of layers (`lib/nets/layer_net.ts`), written out
 * by a convolutional preset or from an MLP preset's notation
 * (`lib/nets/mlp.ts`).
 */
export type Network = LayerNet;

/**
 * G as a standard TF.js layers model with copies of its weights, in
 * inference mode (see {@linkcode layerNetAsLayersModel}).
 */
export function generatorModel(net: Network): tf.LayersModel {
  return layerNetAsLayersModel(net);
}

/** A GAN: both networks, both optimisers, and its configuration. */
export interface Gan {
  config: GanConfig;
  generator: Network;
  discriminator: Network;
  optimizerG: Optimizer;
  optimizerD: Optimizer;
  /**
   * The moving average of G's weights (`config.ema`; `lib/nets/ema.ts`),
   * moved after each of G's updates; absent without one.
   */
  generatorEma?: Network;
}

/**
 * The generator a run samples from and saves: the moving average of G's
 * weights when the run keeps one ({@linkcode GanConfig.ema}), else G.
 */
export function outputGenerator(gan: Gan): Network {
  return gan.generatorEma ?? gan.generator;
}

/** Options of {@linkcode createGan}. */
export interface CreateGanOptions {
  /** Seed of the initial weights. */
  seed: number;
  /**
   * Mean pixel values of the training data in [0, 1] (784 values), for
   * `outputBiasFromData`.
   */
  pixelMeans?: Float32Array;
}

/** Builds G and D with their optimisers. */
export function createGan(config: GanConfig, options: CreateGanOptions): Gan {
  validateConfig(config);
  const rng = new Rng(options.seed, 0x6a4);
  const [generator, discriminator] = config.generator.layers ||
      config.discriminator.layers
    ? layerNets(config, rng)
    : mlps(config, rng, options.pixelMeans);
  return {
    config,
    generator,
    discriminator,
    optimizerG: new Optimizer(config.optimizerG, generator.trainable, "optG"),
    optimizerD: new Optimizer(
      config.optimizerD,
      discriminator.trainable,
      "optD",
    ),
    generatorEma: config.ema ? copyNet(generator, "Gema") : undefined,
  };
}

/** G and D as lists of layers (the convolutional presets). */
function layerNets(config: GanConfig, rng: Rng): [LayerNet, LayerNet] {
  const g = config.generator.layers, d = config.discriminator.layers;
  if (!g || !d) {
    throw new Error(
      "both networks must be lists of layers, or neither (an MLP G with a " +
        "convolutional D is not supported)",
    );
  }
  if (config.outputBiasFromData) {
    throw new Error("outputBiasFromData is for MLP generators only");
  }
  // A conditional GAN's inputs end with the one-hot class.
  const classes = config.classes ?? 0;
  return [
    new LayerNet("G", config.latentDim + classes, g, rng),
    new LayerNet("D", IMAGE_DIM + classes, d, rng),
  ];
}

/** G and D from the MLP presets' notation (the paper's and the common MLP GANs). */
function mlps(
  config: GanConfig,
  rng: Rng,
  pixelMeans: Float32Array | undefined,
): [LayerNet, LayerNet] {
  if (config.generator.activation === "maxout") {
    throw new Error(
      "maxout is supported in D only (G is exported as a standard TF.js layers model)",
    );
  }
  if (config.discriminator.batchNorm) {
    throw new Error("batch norm is supported in G only");
  }
  const generator = mlpNet(
    "G",
    layerSpecs(
      config.latentDim,
      config.generator,
      IMAGE_DIM,
      config.output,
      config.classes,
    ),
    config.generator.initRange,
    rng,
  );
  const discriminator = mlpNet(
    "D",
    layerSpecs(IMAGE_DIM, config.discriminator, 1, "linear", config.classes),
    config.discriminator.initRange,
    rng,
  );
  if (config.outputBiasFromData && pixelMeans) {
    const bias = outputBiasFromMeans(pixelMeans, config.output);
    const last = asMlp(generator).layers.at(-1)!;
    tf.tidy(() => last.bias.assign(tf.tensor1d(bias)));
  }
  return [generator, discriminator];
}

/**
 * The output bias that makes G's initial output equal the data's mean
 * image: log-odds of the pixel means, clipped to [1e-7, 1 - 1e-7] as in
 * pylearn2 (for tanh, half of that: atanh(2m - 1)).
 */
function outputBiasFromMeans(
  means: Float32Array,
  output: OutputActivation,
): Float32Array {
  return means.map((m) => {
    const c = Math.min(Math.max(m, 1e-7), 1 - 1e-7);
    const logit = Math.log(c / (1 - c));
    return output === "sigmoid" ? logit : logit / 2;
  });
}

/**
 * Every variable of a GAN's state: both networks' (weights, batch norm's
 * running statistics) and both optimisers' slots. A checkpoint holds these.
 */
export function ganVariables(gan: Gan): tf.Variable[] {
  return [
    ...gan.generator.variables,
    ...gan.discriminator.variables,
    ...gan.optimizerG.slots,
    ...gan.optimizerD.slots,
    ...gan.generatorEma?.variables ?? [],
  ];
}

/** Frees every tensor of a GAN. */
export function disposeGan(gan: Gan): void {
  gan.generator.dispose();
  gan.discriminator.dispose();
  gan.optimizerG.dispose();
  gan.optimizerD.dispose();
  gan.generatorEma?.dispose();
}

// ---------------------------------------------------------------------------
// Training steps (Algorithm 1)

/** Figures of one D step, as scalar tensors on the device (not read back). */
export type DiscriminatorStepResult = {
  /** D's loss. */
  loss: tf.Scalar;
  /** V(D, G) on the batch. */
  value: tf.Scalar;
  /** Mean D(x) on real images. */
  dReal: tf.Scalar;
  /** Mean D(G(z)) on generated images. */
  dFake: tf.Scalar;
  /** Fraction of real images with D(x) > 1/2. */
  accReal: tf.Scalar;
  /** Fraction of generated images with D(G(z)) < 1/2. */
  accFake: tf.Scalar;
};

/**
 * D's dropout masks on generated images come from `seed + FAKE_MASK_OFFSET`
 * (on real images from `seed`), so that G's pass through D in a simultaneous
 * step can use the very masks D's step used.
 */
export const FAKE_MASK_OFFSET = 1000;

/**
 * G's own dropout masks (a preset with dropout in G, such as `cgan`) come
 * from `seed + G_MASK_OFFSET`.
 */
export const G_MASK_OFFSET = 2000;

/**
 * D's dropout masks in the gradient penalty's pass (on images between real
 * and generated ones) come from `seed + GP_MASK_OFFSET`.
 */
export const GP_MASK_OFFSET = 3000;

/**
 * What D sees of G's output: in a conditional GAN, each image followed by
 * the one-hot class G was asked for (the last `classes` values of G's
 * input `z`); otherwise the images themselves.
 */
export function fakeInput(
  gan: Gan,
  fake: tf.Tensor2D,
  z: tf.Tensor2D,
): tf.Tensor2D {
  const classes = gan.config.classes ?? 0;
  if (!classes) return fake;
  const y = tf.slice(z, [0, gan.config.latentDim], [-1, classes]);
  return tf.concat([fake, y], 1);
}

/** G in training mode (its dropout masks from `seed + G_MASK_OFFSET`). */
function generateTraining(
  gan: Gan,
  z: tf.Tensor2D,
  seed: number,
  batchStats?: { mean: tf.Tensor; variance: tf.Tensor }[],
): tf.Tensor2D {
  return gan.generator.apply(z, {
    training: true,
    seed: seed + G_MASK_OFFSET,
    batchStats,
  });
}

/** D's gradients on one batch, with its figures (nothing applied yet). */
function discriminatorGrads(
  gan: Gan,
  real: tf.Tensor2D,
  fake: tf.Tensor2D,
  seed: number,
  mix?: tf.Tensor1D,
): { grads: tf.NamedTensorMap; figures: DiscriminatorStepResult } {
  const D = gan.discriminator;
  const { config } = gan;
  const scale = config.dLossScale ?? 1;
  if (config.loss === "wgan-gp" && !mix) {
    throw new Error("a wgan-gp D step needs its mixing weights (mix)");
  }
  // variableGrads runs its function in a tidy of its own: keep the logits and
  // the loss for the figures below, and free them by hand.
  let realLogits!: tf.Tensor, fakeLogits!: tf.Tensor, loss!: tf.Scalar;
  const objective = (): tf.Scalar => {
    realLogits = tf.keep(D.apply(real, { training: true, seed }));
    fakeLogits = tf.keep(
      D.apply(fake, { training: true, seed: seed + FAKE_MASK_OFFSET }),
    );
    let l = discriminatorLoss(
      realLogits,
      fakeLogits,
      config.realLabel,
      config.loss,
    );
    if (config.loss === "wgan-gp") {
      const critic = (x: tf.Tensor2D) =>
        D.apply(x, { training: true, seed: seed + GP_MASK_OFFSET });
      const columns = config.classes ? IMAGE_DIM : undefined;
      l = tf.add(l, gradientPenalty(critic, real, fake, mix!, { columns }));
    }
    loss = tf.keep(l);
    return scale === 1 ? loss : tf.mul(loss, scale) as tf.Scalar;
  };
  let grads: tf.NamedTensorMap;
  try {
    ({ grads } = tf.variableGrads(objective, D.trainable));
  } catch (e) {
    throw config.loss === "wgan-gp" ? secondDerivativeError(e) : e;
  }
  const figures: DiscriminatorStepResult = {
    loss,
    value: valueFunction(realLogits, fakeLogits),
    dReal: tf.mean(tf.sigmoid(realLogits)),
    dFake: tf.mean(tf.sigmoid(fakeLogits)),
    accReal: tf.mean(tf.cast(tf.greater(realLogits, 0), "float32")),
    accFake: tf.mean(tf.cast(tf.less(fakeLogits, 0), "float32")),
  };
  tf.dispose([realLogits, fakeLogits]);
  return { grads, figures };
}

/**
 * G's gradients through D (its dropout on, mask from `seed`), with G's loss,
 * the batch-norm statistics of the pass and D's input made from G(z) (kept:
 * the caller disposes it), nothing applied yet.
 */
function generatorGrads(
  gan: Gan,
  z: tf.Tensor2D,
  seed: number,
): {
  grads: tf.NamedTensorMap;
  loss: tf.Scalar;
  stats: { mean: tf.Tensor; variance: tf.Tensor }[];
  fake: tf.Tensor2D;
} {
  const stats: { mean: tf.Tensor; variance: tf.Tensor }[] = [];
  let fake!: tf.Tensor2D;
  const { value, grads } = tf.variableGrads(() => {
    const batchStats: typeof stats = [];
    fake = tf.keep(
      fakeInput(gan, generateTraining(gan, z, seed, batchStats), z),
    );
    // Kept past variableGrads' own tidy for the running statistics.
    for (const s of batchStats) {
      stats.push({ mean: tf.keep(s.mean), variance: tf.keep(s.variance) });
    }
    const logits = gan.discriminator.apply(fake, { training: true, seed });
    return generatorLoss(logits, gan.config.loss);
  }, gan.generator.trainable);
  return { grads, loss: value, stats, fake };
}

/**
 * Applies G's gradients and its batch-norm running statistics, and moves
 * the average of G's weights when the run keeps one.
 */
function applyGenerator(
  gan: Gan,
  g: ReturnType<typeof generatorGrads>,
  epoch: number,
): void {
  gan.optimizerG.apply(g.grads, epoch);
  if (g.stats.length) gan.generator.updateMovingStats(g.stats);
  if (gan.generatorEma && gan.config.ema) {
    const decay = emaDecay(gan.config.ema, gan.optimizerG.step);
    updateAverage(gan.generatorEma, gan.generator, decay);
  }
  tf.dispose([g.fake, ...g.stats.flatMap((s) => [s.mean, s.variance])]);
}

/**
 * What one update of D is made from. In a conditional GAN, `real` holds
 * each image followed by its one-hot class and `noise` each latent vector
 * followed by the class asked of G (see {@linkcode withClasses}).
 */
export interface DiscriminatorUpdate {
  /** A minibatch of m examples x from the data. */
  real: tf.Tensor2D;
  /** A minibatch of m noise samples z from the noise prior p_z. */
  noise: tf.Tensor2D;
  /**
   * Seed of the dropout masks: D's on x from `masks`, D's on G(z) from
   * `masks + FAKE_MASK_OFFSET`, G's own from `masks + G_MASK_OFFSET`.
   */
  masks: number;
  /** The epoch: the optimisers' schedules (momentum, learning rate) follow it. */
  epoch: number;
  /**
   * With the `wgan-gp` loss, one weight in [0, 1] per real image: the
   * gradient penalty's points are `mix * x + (1 - mix) * G(z)`.
   */
  mix?: tf.Tensor1D;
}

/** What one update of G is made from (see {@linkcode DiscriminatorUpdate}). */
export type GeneratorUpdate = Omit<DiscriminatorUpdate, "real" | "mix">;

/**
 * One discriminator update: ascend V(D, G) on a batch of real images and
 * G(z), G fixed.
 */
export function discriminatorStep(
  gan: Gan,
  { real, noise, masks, epoch, mix }: DiscriminatorUpdate,
): DiscriminatorStepResult {
  return tf.tidy((): DiscriminatorStepResult => {
    const fake = fakeInput(gan, generateTraining(gan, noise, masks), noise);
    const { grads, figures } = discriminatorGrads(gan, real, fake, masks, mix);
    gan.optimizerD.apply(grads, epoch);
    return figures;
  });
}

/**
 * One generator update: descend G's loss through D (D fixed, its dropout
 * on, as in the authors' code). Returns G's loss as a scalar tensor.
 */
export function generatorStep(
  gan: Gan,
  { noise, masks, epoch }: GeneratorUpdate,
): tf.Scalar {
  return tf.tidy(() => {
    const g = generatorGrads(gan, noise, masks);
    applyGenerator(gan, g, epoch);
    return g.loss;
  });
}

/**
 * One simultaneous update of both players, as the authors' pylearn2 code
 * made it (`AdversaryCost2.get_gradients`): from one batch of real images
 * and one of noise, D's gradient of its loss and G's gradient of its loss
 * through D's pass on G(z) (the same dropout masks, `masks + 1000`) are
 * both taken at the current weights, then both players move. Equal to a
 * {@linkcode discriminatorStep} and a {@linkcode generatorStep} (with
 * masks `masks + 1000`) each made from the same starting weights.
 */
export function simultaneousStep(
  gan: Gan,
  { real, noise, masks, epoch }: DiscriminatorUpdate,
): DiscriminatorStepResult & { gLoss: tf.Scalar } {
  return tf.tidy(() => {
    // One pass of G serves both players, as one graph did in the authors' code.
    const g = generatorGrads(gan, noise, masks + FAKE_MASK_OFFSET);
    const d = discriminatorGrads(gan, real, g.fake, masks);
    gan.optimizerD.apply(d.grads, epoch);
    applyGenerator(gan, g, epoch);
    return { ...d.figures, gLoss: g.loss };
  });
}

/**
 * One round of the game on one minibatch of the data: an update of D and,
 * when D has taken its k steps, G's. The caller draws the noise and the
 * masks' seeds (in this order: D's noise, D's seed, with wgan-gp the
 * penalty's mixing weights, then each G update's noise and seed), so that
 * a round is repeatable from the run's generator.
 */
export interface Round extends DiscriminatorUpdate {
  /**
   * G's updates after D's, each on fresh noise: `gSteps` of them after
   * every k-th D update, none after the others (a `reuse` round: one, on
   * D's own `noise` and `masks`). With simultaneous updates
   * (pylearn2's) G moves with D, on `noise`, and this is empty.
   */
  generator: { noise: tf.Tensor2D; masks: number }[];
}

/** A round's figures, as scalar tensors on the device (the caller frees them). */
export interface RoundStats extends DiscriminatorStepResult {
  /** G's loss at each of its updates this round (none when G waited). */
  gLosses: tf.Scalar[];
}

/**
 * Plays one round of Algorithm 1 of the paper:
 *
 *     for number of training iterations do
 *       for k steps do
 *         sample m noise samples z from p_z, m examples x from p_data
 *         update D by ascending its stochastic gradient
 *           grad_theta_d 1/m sum_i [log D(x_i) + log(1 - D(G(z_i)))]
 *       end for
 *       sample m noise samples z from p_z
 *       update G by descending its stochastic gradient
 *           grad_theta_g 1/m sum_i log(1 - D(G(z_i)))
 *     end for
 *
 * This is one pass of the inner loop, on `round.real`, and G's update when
 * it is due (`round.generator`). G descends the loss of its configured kind
 * ({@linkcode generatorLoss}: by default the paper's non-saturating
 * -log D(G(z)), section 3), D the matching {@linkcode discriminatorLoss}.
 */
export function playRound(gan: Gan, round: Round): RoundStats {
  if (gan.config.update === "simultaneous") {
    // pylearn2's round: both players' gradients from one pass, then both move.
    const { gLoss, ...d } = simultaneousStep(gan, round);
    return { ...d, gLosses: [gLoss] };
  }
  // Update D by ascending log D(x) + log(1 - D(G(z))) (G fixed).
  const d = discriminatorStep(gan, round);
  // Update G by descending its loss on fresh noise (D fixed), when due.
  const gLosses = round.generator.map(({ noise, masks }) =>
    generatorStep(gan, { noise, masks, epoch: round.epoch })
  );
  return { ...d, gLosses };
}

/**
 * Generates images from latent vectors in inference mode, with
 * {@linkcode outputGenerator} (the moving average of G's weights when the
 * run keeps one) or the network given.
 */
export function generate(
  gan: Gan,
  z: tf.Tensor2D,
  net: Network = outputGenerator(gan),
): tf.Tensor2D {
  return tf.tidy(() => net.apply(z, { training: false }));
}

/** V(D, G) and the players' outputs on one batch, read back as numbers. */
export interface BatchFigures {
  /** V(D, G) (eq. 1) on the batch; D ascends it. */
  value: number;
  /** Mean D(x). */
  dReal: number;
  /** Mean D(G(z)). */
  dFake: number;
  /** G's loss (the configured kind); G descends it. */
  gLoss: number;
}

/**
 * The figures of the game on a fixed batch with both networks in inference
 * mode (no dropout), so that a single step's effect can be seen: one D step
 * should raise `value`, one G step should lower `gLoss`.
 */
export async function batchFigures(
  gan: Gan,
  real: tf.Tensor2D,
  z: tf.Tensor2D,
): Promise<BatchFigures> {
  const t = tf.tidy(() => {
    const D = gan.discriminator;
    const realLogits = D.apply(real, { training: false });
    const fake = generate(gan, z, gan.generator);
    const fakeLogits = D.apply(fakeInput(gan, fake, z), {
      training: false,
    });
    return tf.stack([
      valueFunction(realLogits, fakeLogits),
      tf.mean(tf.sigmoid(realLogits)),
      tf.mean(tf.sigmoid(fakeLogits)),
      generatorLoss(fakeLogits, gan.config.loss),
    ]);
  });
  const [value, dReal, dFake, gLoss] = await t.data();
  t.dispose();
  return { value, dReal, dFake, gLoss };
}

/**
 * Runs a generator on its inputs `z` in chunks of 1,000 and returns the
 * images with values in [0, 1], whatever the output activation. `z` holds
 * n rows of `latentDim` values, or in a conditional generator n rows of
 * `latentDim + classes` (each latent vector followed by its one-hot class:
 * {@linkcode withClasses}). `predict` is G in inference mode (a
 * {@linkcode Gan}'s generator or a loaded layers model).
 */
export async function imagesFrom(
  predict: (z: tf.Tensor2D) => tf.Tensor,
  z: Float32Array,
  options: { latentDim: number; output: OutputActivation; classes?: number },
): Promise<Float32Array> {
  const dim = generatorInputs(options);
  const n = z.length / dim;
  const images = new Float32Array(n * IMAGE_DIM);
  for (let start = 0; start < n; start += 1000) {
    const m = Math.min(1000, n - start);
    const out = tf.tidy(() => {
      const y = predict(
        tf.tensor2d(z.subarray(start * dim, (start + m) * dim), [m, dim]),
      );
      return options.output === "tanh" ? tf.div(tf.add(y, 1), 2) : y;
    });
    images.set(await out.data<"float32">(), start * IMAGE_DIM);
    out.dispose();
  }
  return images;
}

/** Images in [0, 1] from a {@linkcode Gan}'s generator (see {@linkcode imagesFrom}). */
export function sampleImages(gan: Gan, z: Float32Array): Promise<Float32Array> {
  return imagesFrom((x) => generate(gan, x), z, gan.config);
}
