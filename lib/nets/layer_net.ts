/**
 * Networks described as a list of layers: dense, conv2d, conv2dTranspose,
 * batch norm (over features or channels, with running statistics), dropout,
 * reshape and flatten, and the activations (relu, leaky relu, maxout, tanh,
 * sigmoid); spectral normalisation of a dense or conv2d layer's weight
 * (`lib/nets/spectral_norm.ts`). Layers are plain variables and visible tfjs ops.
 * Every network of the project is one: the convolutional presets are
 * written as lists, and the MLP presets' shorter notation (`hidden`,
 * `activation`, ...) becomes one in `lib/nets/mlp.ts`.
 *
 * Images go in and out as rows of 784 values, as everywhere else in the
 * project: a description starts with `reshape` to [28, 28, 1] (D) or ends
 * with `flatten` (G).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { dropoutMask, leakyRelu, maxOverPieces } from "./ops.ts";
import { uniqueVariableName } from "./optim.ts";
import type { Rng } from "../random/rng.ts";
import {
  createSpectralNorm,
  spectralNormalized,
  type SpectralNormState,
} from "./spectral_norm.ts";

/** How a dense layer's initial weights are drawn. */
export type DenseInit =
  /** Glorot uniform weights and zero biases (Keras' default). */
  | "glorot"
  /** Weights, then biases, uniform in +-1/sqrt(inputs) (PyTorch's nn.Linear). */
  | "pytorch"
  /** Weights uniform in +-`uniform`, zero biases (pylearn2's, the paper's). */
  | { uniform: number };

/** One layer of a {@linkcode LayerNet}. */
export type LayerDesc =
  | {
    kind: "dense";
    units: number;
    /** Default true. */
    bias?: boolean;
    spectralNorm?: boolean;
    /** Default "glorot". */
    init?: DenseInit;
    /**
     * A conditional network's first layer as Mirza and Osindero (2014)
     * built it: the last `inputs` inputs (the one-hot class) reach only the
     * last `units` outputs, the other inputs only the other outputs. The
     * kernel is block-diagonal: the entries between the blocks start at 0,
     * and the forward pass multiplies the kernel by a constant 0/1 mask, so
     * their gradient is 0, they stay 0, and the kernel exports as it is.
     */
    labelBlock?: { inputs: number; units: number };
    /**
     * The projection discriminator's output layer (Miyato and Koyama 2018,
     * "cGANs with Projection Discriminator"): to each row's output (units
     * 1) it adds the inner product of the layer's input with its class's
     * row of an embedding [classes, inputs], spectrally normalised when the
     * layer is. The class is the network's input row's last `classes`
     * values (a `classInput` layer takes them off the image).
     */
    projection?: { classes: number };
    /** Prefix of the layer's variables' names (default: its index). */
    name?: string;
  }
  | {
    kind: "conv2d";
    filters: number;
    /** The kernel's side. */
    size: number;
    stride: number;
    /** Default "same". */
    padding?: "same" | "valid";
    bias?: boolean;
    spectralNorm?: boolean;
  }
  | {
    /** Output = input x stride ("same" padding), as Keras' Conv2DTranspose. */
    kind: "conv2dTranspose";
    filters: number;
    size: number;
    stride: number;
    bias?: boolean;
  }
  | {
    /** Over the last axis (features or channels). Keras' defaults. */
    kind: "batchNorm";
    /** Default 1e-3. */
    eps?: number;
    /** Running statistics' decay (default 0.99: Keras' momentum). */
    momentum?: number;
    /**
     * Normalise as (x - mean) / sqrt(var + eps) * gamma + beta, as the MLP
     * presets always have, instead of (x - mean) * (gamma / sqrt(var + eps))
     * + beta: the same function with other roundings (the second is one
     * product less on the largest tensor).
     */
    divide?: boolean;
    /**
     * Class-conditional batch norm (de Vries et al. 2017; the conditional
     * SNGAN's and BigGAN's G): a gamma and a beta per class
     * ([classes, channels]), each row scaled and shifted by its class's.
     * The class is the network's input row's last `classes` values.
     */
    classes?: number;
    /** Prefix of the layer's variables' names (default: its index). */
    name?: string;
  }
  | { kind: "relu" }
  | { kind: "leakyRelu"; slope: number }
  | { kind: "tanh" }
  | { kind: "sigmoid" }
  /**
   * Maxout (Goodfellow et al. 2013): the max over each run of `pieces`
   * adjacent features, [n, units * pieces] -> [n, units].
   */
  | { kind: "maxout"; pieces: number }
  /**
   * Inverted dropout of the layer's input in training. The mask's seed is
   * the step's seed plus the number of weight layers before this one.
   */
  | {
    kind: "dropout";
    rate: number;
    /** Features at the end of each row never dropped (a one-hot class). */
    keepLast?: number;
  }
  | { kind: "reshape"; shape: number[] }
  | { kind: "flatten" }
  /**
   * A conditional D's first layer, as in the Keras conditional GAN example:
   * a row of 784 pixels followed by the one-hot class becomes a 28 x 28
   * image of 1 + `classes` channels, the pixels and then one plane per
   * class, all ones for the row's class and zeros for the others.
   */
  | { kind: "classChannels"; classes: number }
  /**
   * A projection discriminator's first layer: a row of 784 pixels followed
   * by the one-hot class becomes the 28 x 28 x 1 image; the class goes on
   * to the output layer's projection (a dense layer's `projection`).
   */
  | { kind: "classInput"; classes: number };

/**
 * The classes a layer reads from the network's input row (its last values,
 * the one-hot class), or 0.
 */
export function classesRead(l: LayerDesc): number {
  switch (l.kind) {
    case "classChannels":
    case "classInput":
      return l.classes;
    case "dense":
      return l.projection?.classes ?? 0;
    case "batchNorm":
      return l.classes ?? 0;
    default:
      return 0;
  }
}

/** A layer's variables (those it has). */
export interface LayerVars {
  kernel?: tf.Variable;
  bias?: tf.Variable;
  gamma?: tf.Variable;
  beta?: tf.Variable;
  movingMean?: tf.Variable;
  movingVar?: tf.Variable;
  sn?: SpectralNormState;
  /** A dense layer's constant label-block mask. */
  mask?: tf.Tensor2D;
  /** A projection layer's class embedding, [classes, inputs]. */
  embedding?: tf.Variable;
  /** The embedding's spectral-norm state (when the layer has one). */
  embeddingSn?: SpectralNormState;
}

/** Options of {@linkcode LayerNet.apply}. */
export interface LayerApplyOptions {
  training: boolean;
  /** Seed of the dropout masks. */
  seed?: number;
  /** Receives each batch-norm layer's batch mean and variance (training). */
  batchStats?: { mean: tf.Tensor; variance: tf.Tensor }[];
}

/** The shape after each layer, from an example's input shape. */
function shapes(input: number[], layers: LayerDesc[]): number[][] {
  const out: number[][] = [];
  let s = input;
  for (const l of layers) {
    switch (l.kind) {
      case "dense":
        s = [l.units];
        break;
      case "maxout":
        s = [s[0] / l.pieces];
        break;
      case "conv2d": {
        const [h, w] = s;
        const pad = l.padding ?? "same";
        const o = (n: number) =>
          pad === "same"
            ? Math.ceil(n / l.stride)
            : Math.floor((n - l.size) / l.stride) + 1;
        s = [o(h), o(w), l.filters];
        break;
      }
      case "conv2dTranspose":
        s = [s[0] * l.stride, s[1] * l.stride, l.filters];
        break;
      case "reshape":
        s = l.shape;
        break;
      case "flatten":
        s = [s.reduce((a, b) => a * b, 1)];
        break;
      case "classChannels":
        s = [28, 28, 1 + l.classes];
        break;
      case "classInput":
        s = [28, 28, 1];
        break;
    }
    out.push(s);
  }
  return out;
}

/**
 * The 0/1 mask of a dense layer's {@linkcode LayerDesc} `labelBlock`
 * ([inputs, units] row-major): the label rows reach only the label
 * columns, the other rows only the others.
 */
export function blockMask(
  inputs: number,
  units: number,
  block: { inputs: number; units: number },
): Float32Array {
  const firstLabelRow = inputs - block.inputs;
  const firstLabelCol = units - block.units;
  const mask = new Float32Array(inputs * units);
  for (let r = 0; r < inputs; r++) {
    const label = r >= firstLabelRow;
    for (let c = 0; c < units; c++) {
      if (label === c >= firstLabelCol) mask[r * units + c] = 1;
    }
  }
  return mask;
}

/** One row of {@linkcode LayerNet.summary}. */
export interface LayerSummary {
  /** The layer: "conv 64 × 4×4, stride 2, spectral norm", "dropout 0.5". */
  layer: string;
  /** Its output shape per example: "14 × 14 × 64". */
  output: string;
  /** Its trainable weights (kernel, bias, batch norm's scale and shift). */
  weights: number;
}

/** A layer in a few words, for {@linkcode LayerNet.summary}. */
function describeLayer(l: LayerDesc): string {
  const sn = "spectralNorm" in l && l.spectralNorm ? ", spectral norm" : "";
  switch (l.kind) {
    case "dense":
      return `dense ${l.units}${sn}${
        l.projection ? `, projection of ${l.projection.classes} classes` : ""
      }`;
    case "batchNorm":
      return l.classes
        ? `batch norm, conditional on ${l.classes} classes`
        : "batchNorm";
    case "conv2d":
      return `conv ${l.filters} × ${l.size}×${l.size}, stride ${l.stride}${sn}`;
    case "conv2dTranspose":
      return `transposed conv ${l.filters} × ${l.size}×${l.size}, stride ${l.stride}`;
    case "leakyRelu":
      return `leaky ReLU ${l.slope}`;
    case "dropout":
      return `dropout ${l.rate}`;
    case "maxout":
      return `maxout ${l.pieces}`;
    case "classChannels":
      return `the image and ${l.classes} class planes`;
    case "classInput":
      return `the image (the class kept for the projection)`;
    default:
      return l.kind;
  }
}

/** A network as a list of layers, its variables plain tfjs variables. */
export class LayerNet {
  /** Prefix of the variables' names ("G" or "D"). */
  readonly name: string;
  readonly descs: LayerDesc[];
  readonly inputShape: number[];
  /** Each layer's output shape (per example). */
  readonly shapes: number[][];
  /**
   * The one-hot class's length at the end of the input row that the
   * conditional layers read ({@linkcode classesRead}), or 0.
   */
  readonly classes: number;
  readonly vars: LayerVars[] = [];

  /** Per layer, the seed offset of a dropout layer's mask. */
  readonly #dropoutSeed: number[] = [];
  /** Kernel entries that label-block masks hold at zero. */
  #fixedZeros = 0;

  /**
   * @param name prefix of the variables' names ("G" or "D").
   * @param inputs the values of one example's input (the latent size, or 784).
   * @param layers the description.
   * @param rng draws the initial weights on the CPU, layer by layer, so that
   *   the same seed gives the same network on every backend.
   */
  constructor(
    name: string,
    inputs: number,
    layers: LayerDesc[],
    rng: Rng,
  ) {
    this.name = name;
    this.descs = layers;
    this.inputShape = [inputs];
    this.shapes = shapes(this.inputShape, layers);
    const read = [...new Set(layers.map(classesRead).filter((c) => c > 0))];
    if (read.length > 1 || (read.length === 1 && read[0] >= inputs)) {
      throw new Error(
        `${name}'s layers read ${read.join(" and ")} classes from an input ` +
          `row of ${inputs} values: one number of classes, fewer than the ` +
          "row's values",
      );
    }
    this.classes = read[0] ?? 0;
    let weightLayers = 0;
    for (const l of layers) {
      this.#dropoutSeed.push(weightLayers);
      if ("filters" in l || l.kind === "dense") weightLayers++;
    }
    const v = (values: Float32Array, shape: number[], what: string) =>
      tf.variable(tf.tensor(values, shape), true, uniqueVariableName(what));
    const uniform = (n: number, r: number) =>
      rng.fillUniform(new Float32Array(n), -r, r);
    // Inside tidy, so that the initial values' tensors are freed (the
    // variables hold their own copies).
    tf.tidy(() =>
      layers.forEach((l, i) => {
        const prev = i === 0 ? this.inputShape : this.shapes[i - 1];
        const channels = prev[prev.length - 1];
        const vars: LayerVars = {};
        const p = `${name}/${"name" in l && l.name ? l.name : i}`;
        if (l.kind === "dense") {
          const init = l.init ?? "glorot";
          const r = init === "glorot"
            ? Math.sqrt(6 / (channels + l.units))
            : init === "pytorch"
            ? 1 / Math.sqrt(channels)
            : init.uniform;
          const w = uniform(channels * l.units, r);
          if (l.labelBlock) {
            const mask = blockMask(channels, l.units, l.labelBlock);
            for (let j = 0; j < w.length; j++) w[j] *= mask[j];
            vars.mask = tf.keep(tf.tensor2d(mask, [channels, l.units]));
            this.#fixedZeros += mask.reduce((n, m) => n + (m ? 0 : 1), 0);
          }
          vars.kernel = v(w, [channels, l.units], `${p}/kernel`);
          if (l.bias !== false) {
            const b = init === "pytorch"
              ? uniform(l.units, r)
              : new Float32Array(l.units);
            vars.bias = v(b, [l.units], `${p}/bias`);
          }
          if (l.projection) {
            // Glorot uniform, as the chainer SNGAN's SNEmbedID.
            const c = l.projection.classes;
            vars.embedding = v(
              uniform(c * channels, Math.sqrt(6 / (c + channels))),
              [c, channels],
              `${p}/embedding`,
            );
          }
        } else if (l.kind === "conv2d" || l.kind === "conv2dTranspose") {
          const field = l.size * l.size;
          // conv2d: [kh, kw, in, out]; transposed: [kh, kw, out, in].
          const conv = l.kind === "conv2d";
          const shape = conv
            ? [l.size, l.size, channels, l.filters]
            : [l.size, l.size, l.filters, channels];
          const fanIn = field * (conv ? channels : l.filters);
          const fanOut = field * (conv ? l.filters : channels);
          vars.kernel = v(
            uniform(
              field * channels * l.filters,
              Math.sqrt(6 / (fanIn + fanOut)),
            ),
            shape,
            `${p}/kernel`,
          );
          if (l.bias !== false) {
            vars.bias = v(
              new Float32Array(l.filters),
              [l.filters],
              `${p}/bias`,
            );
          }
        } else if (l.kind === "batchNorm") {
          // Conditional: one row of gamma and beta per class.
          const shape = l.classes ? [l.classes, channels] : [channels];
          const n = shape.reduce((a, b) => a * b, 1);
          vars.gamma = v(new Float32Array(n).fill(1), shape, `${p}/gamma`);
          vars.beta = v(new Float32Array(n), shape, `${p}/beta`);
          vars.movingMean = tf.variable(
            tf.zeros([channels]),
            false,
            uniqueVariableName(`${p}/moving_mean`),
          );
          vars.movingVar = tf.variable(
            tf.ones([channels]),
            false,
            uniqueVariableName(`${p}/moving_variance`),
          );
        }
        if ("spectralNorm" in l && l.spectralNorm) {
          vars.sn = createSpectralNorm(vars.kernel!, p, rng);
          if (vars.embedding) {
            vars.embeddingSn = createSpectralNorm(
              vars.embedding,
              `${p}/embedding`,
              rng,
            );
          }
        }
        this.vars.push(vars);
      })
    );
  }

  /** The variables an optimiser updates, layer by layer. */
  get trainable(): tf.Variable[] {
    return this.vars.flatMap((v) =>
      [v.kernel, v.bias, v.gamma, v.beta, v.embedding].filter((
        x,
      ): x is tf.Variable => !!x)
    );
  }

  /**
   * Number of trainable parameters (the kernel entries a label block holds
   * at zero are not parameters).
   */
  get parameterCount(): number {
    return this.trainable.reduce((n, v) => n + v.size, 0) - this.#fixedZeros;
  }

  /**
   * The network layer by layer, like PyTorch's `print(net)`: what each
   * layer is, its output shape per example and its trainable weights. A
   * table for `console.table`.
   */
  summary(): LayerSummary[] {
    return this.descs.map((l, i) => ({
      layer: describeLayer(l),
      output: this.shapes[i].join(" × "),
      weights: [
        this.vars[i].kernel,
        this.vars[i].bias,
        this.vars[i].gamma,
        this.vars[i].beta,
        this.vars[i].embedding,
      ].reduce((n, v) => n + (v?.size ?? 0), 0),
    }));
  }

  /** Every variable: the trainable ones, running statistics, u and v. */
  get variables(): tf.Variable[] {
    return this.vars.flatMap((v) =>
      [
        v.kernel,
        v.bias,
        v.gamma,
        v.beta,
        v.movingMean,
        v.movingVar,
        v.sn?.u,
        v.sn?.v,
        v.embedding,
        v.embeddingSn?.u,
        v.embeddingSn?.v,
      ].filter((x): x is tf.Variable => !!x)
    );
  }

  /** The network's output for a batch of rows (images as 784 values). */
  apply(x: tf.Tensor2D, options: LayerApplyOptions): tf.Tensor2D {
    let h: tf.Tensor = x;
    const batch = x.shape[0];
    // The one-hot class, [batch, classes], for the layers conditional on it.
    const y = this.classes
      ? tf.slice(x, [0, x.shape[1] - this.classes], [batch, this.classes])
      : null;
    // The row's 784 pixels as an image, for the layers that take the class
    // off the row.
    const image = (row: tf.Tensor) =>
      tf.reshape(tf.slice(row, [0, 0], [batch, 784]), [batch, 28, 28, 1]);
    this.descs.forEach((l, i) => {
      const v = this.vars[i];
      const kernel = () =>
        v.sn
          ? spectralNormalized(v.kernel!, v.sn, options.training)
          : v.kernel!;
      switch (l.kind) {
        case "reshape":
          h = tf.reshape(h, [batch, ...l.shape]);
          break;
        case "flatten":
          h = tf.reshape(h, [batch, -1]);
          break;
        case "classChannels": {
          // The row's class (this first layer's input is the row itself).
          const planes = tf.tile(tf.reshape(y!, [batch, 1, 1, l.classes]), [
            1,
            28,
            28,
            1,
          ]);
          h = tf.concat([image(h), planes], 3);
          break;
        }
        case "classInput":
          h = image(h);
          break;
        case "dense": {
          const input = h as tf.Tensor2D;
          const k = v.mask ? tf.mul(kernel(), v.mask) : kernel();
          h = tf.matMul(input, k as tf.Tensor2D);
          if (v.bias) h = tf.add(h, v.bias);
          if (v.embedding) {
            // + <embed(y), features>: y's row of the embedding, dotted with
            // the row's input.
            const e = v.embeddingSn
              ? spectralNormalized(v.embedding, v.embeddingSn, options.training)
              : v.embedding;
            const rows = tf.matMul(y!, e as tf.Tensor2D);
            h = tf.add(h, tf.sum(tf.mul(input, rows), 1, true));
          }
          break;
        }
        case "conv2d":
          h = tf.conv2d(
            h as tf.Tensor4D,
            kernel() as tf.Tensor4D,
            l.stride,
            l.padding ?? "same",
          );
          if (v.bias) h = tf.add(h, v.bias);
          break;
        case "conv2dTranspose": {
          const [oh, ow, f] = this.shapes[i];
          h = tf.conv2dTranspose(
            h as tf.Tensor4D,
            v.kernel! as tf.Tensor4D,
            [batch, oh, ow, f],
            l.stride,
            "same",
          );
          if (v.bias) h = tf.add(h, v.bias);
          break;
        }
        case "batchNorm": {
          const eps = l.eps ?? 1e-3;
          let mean: tf.Tensor, variance: tf.Tensor;
          if (options.training) {
            const axes = Array.from({ length: h.rank - 1 }, (_, a) => a);
            ({ mean, variance } = tf.moments(h, axes));
            options.batchStats?.push({ mean, variance });
          } else {
            mean = v.movingMean!;
            variance = v.movingVar!;
          }
          // Written out rather than tf.batchNorm, whose gradient tiles
          // the statistics to the input's shape (a fifth of a dcgan step
          // on wasm); broadcasting ops' gradients sum instead.
          if (l.classes) {
            // Each row's class picks its gamma and beta: [batch, channels],
            // shaped to broadcast over an image's pixels.
            const perRow = (t: tf.Tensor) =>
              tf.reshape(tf.matMul(y!, t as tf.Tensor2D), [
                batch,
                ...h.shape.slice(1, -1).map(() => 1),
                t.shape[1]!,
              ]);
            const normed = l.divide
              ? tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, eps)))
              : tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, eps)));
            h = tf.add(tf.mul(normed, perRow(v.gamma!)), perRow(v.beta!));
          } else if (l.divide) {
            const sd = tf.sqrt(tf.add(variance, eps));
            h = tf.add(tf.mul(tf.div(tf.sub(h, mean), sd), v.gamma!), v.beta!);
          } else {
            const scale = tf.mul(tf.rsqrt(tf.add(variance, eps)), v.gamma!);
            h = tf.add(tf.mul(tf.sub(h, mean), scale), v.beta!);
          }
          break;
        }
        case "relu":
          h = tf.relu(h);
          break;
        case "leakyRelu":
          h = leakyRelu(h, l.slope);
          break;
        case "tanh":
          h = tf.tanh(h);
          break;
        case "sigmoid":
          h = tf.sigmoid(h);
          break;
        case "maxout": {
          const units = h.shape[1]! / l.pieces;
          h = maxOverPieces(
            tf.reshape(h, [-1, units, l.pieces]) as tf.Tensor3D,
          );
          break;
        }
        case "dropout":
          if (options.training && l.rate > 0) {
            if (options.seed === undefined) {
              throw new Error("dropout in training needs a seed");
            }
            const seed = options.seed + this.#dropoutSeed[i];
            const mask = dropoutMask(h.size, 1 - l.rate, seed);
            if (l.keepLast) {
              const row = h.size / batch;
              for (let r = 0; r < mask.length; r += row) {
                mask.fill(1, r + row - l.keepLast, r + row);
              }
            }
            h = tf.mul(h, tf.tensor(mask, h.shape));
          }
          break;
      }
    });
    return h as tf.Tensor2D;
  }

  /** Moves the running statistics towards a step's batch statistics. */
  updateMovingStats(stats: { mean: tf.Tensor; variance: tf.Tensor }[]): void {
    let k = 0;
    tf.tidy(() => {
      this.descs.forEach((l, i) => {
        if (l.kind !== "batchNorm") return;
        const m = l.momentum ?? 0.99;
        const v = this.vars[i];
        const { mean, variance } = stats[k++];
        v.movingMean!.assign(
          tf.add(tf.mul(v.movingMean!, m), tf.mul(mean, 1 - m)),
        );
        v.movingVar!.assign(
          tf.add(tf.mul(v.movingVar!, m), tf.mul(variance, 1 - m)),
        );
      });
    });
  }

  /** Frees the variables. */
  dispose(): void {
    for (const v of this.variables) v.dispose();
    for (const v of this.vars) v.mask?.dispose();
  }
}
