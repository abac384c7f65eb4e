/**
 * The MLP presets' notation and the networks it stands for. An
 * {@linkcode MlpNotation}'s `hidden`, `activation`, `pieces`, `batchNorm`,
 * `dropout`, `initRange` and `labelUnits` describe a multilayer perceptron
 * block by block ({@linkcode LayerSpec}: dropout of the block's input, a
 * dense map, batch norm, a nonlinearity); {@linkcode mlpLayers} writes the
 * blocks as a list of layers (`lib/nets/layer_net.ts`), the form every network
 * of the project takes, with the MLPs' own initialisation, batch norm and
 * variable names, so that they train and resume bit for bit as they always
 * have. {@linkcode asMlp} reads the blocks back from a list, for what only
 * MLPs have (the WGSL training step).
 *
 * @module
 */

import type * as tf from "@tensorflow/tfjs";
import { type LayerDesc, LayerNet } from "./layer_net.ts";
import type { Rng } from "../random/rng.ts";

/** Hidden-layer nonlinearity. Maxout takes the max over `pieces` linear units. */
export type Activation = "relu" | "leaky_relu" | "maxout" | "tanh";
/** Output nonlinearity of G: tanh for data in [-1, 1], sigmoid for [0, 1]. */
export type OutputActivation = "tanh" | "sigmoid";

/**
 * A multilayer perceptron in the MLP presets' notation (a preset's
 * `generator` or `discriminator` without `layers`).
 */
export interface MlpNotation {
  /** Hidden layer sizes (units; for maxout, units after the max). */
  hidden: number[];
  activation: Activation;
  /** Pieces per maxout unit (default 5): one number, or one per hidden layer. */
  pieces?: number | number[];
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
  /**
   * In a conditional GAN (see {@linkcode GanConfig.classes}), units of the
   * first hidden layer that see the class alone, as Mirza and Osindero
   * (2014) built theirs: the layer has `hidden[0]` units on the network's
   * own input (noise or image) and `labelUnits` more on the one-hot class,
   * side by side (a block-diagonal weight matrix), and the next layer joins
   * them. Without it the one-hot class is simply appended to the input.
   */
  labelUnits?: number;
}

/** LeakyReLU's slope in the MLPs. */
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
  /**
   * In a conditional network's first layer: the last `classInputs` inputs
   * are the one-hot class, which dropout never drops (D would be shown
   * images without their class, G asked for no class).
   */
  classInputs?: number;
  /**
   * A conditional network's first layer in Mirza and Osindero's form: the
   * last `inputs` inputs (the one-hot class) feed only the last `units`
   * units, and the other inputs only the other units. The kernel is
   * block-diagonal: the entries between the blocks start at 0, and a
   * constant mask on the kernel keeps their gradient 0, so they stay 0 and
   * the kernel exports as it is.
   */
  labelBlock?: { inputs: number; units: number };
}

/**
 * The layers of a network of `net`'s shape from `inputs` to `outputs` units.
 * In a conditional network (`classes` > 0) the one-hot class follows the
 * inputs, into the first layer: through its own units when `net` has
 * {@linkcode NetConfig.labelUnits}, else as `classes` more inputs.
 */
export function layerSpecs(
  inputs: number,
  net: MlpNotation,
  outputs: number,
  output: LayerSpec["activation"],
  classes = 0,
): LayerSpec[] {
  const labelUnits = classes ? net.labelUnits ?? 0 : 0;
  const units = net.hidden.map((u, i) => i === 0 ? u + labelUnits : u);
  const sizes = [inputs + classes, ...units];
  const piecesOf = (i: number) =>
    net.activation !== "maxout"
      ? 1
      : Array.isArray(net.pieces)
      ? net.pieces[i]
      : net.pieces ?? 5;
  const hidden: LayerSpec[] = units.map((u, i) => ({
    inputs: sizes[i],
    units: u,
    activation: net.activation,
    pieces: piecesOf(i),
    batchNorm: net.batchNorm ?? false,
    dropout: i === 0 ? net.inputDropout ?? 0 : net.dropout ?? 0,
    ...(i === 0 && classes ? { classInputs: classes } : {}),
    ...(i === 0 && labelUnits
      ? { labelBlock: { inputs: classes, units: labelUnits } }
      : {}),
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

/**
 * The blocks as a list of layers: per block, a dropout layer (when it drops
 * anything), the dense layer (its `pieces` outputs per unit adjacent), batch
 * norm, and the nonlinearity. The dense layers are initialised uniformly in
 * +-`initRange` with zero biases (the paper's) or, without it, as PyTorch's
 * nn.Linear; a dense layer and its batch norm are named by the block's
 * index, as the MLPs' checkpoints always have been.
 */
export function mlpLayers(
  specs: LayerSpec[],
  initRange?: number,
): LayerDesc[] {
  return specs.flatMap((s, i): LayerDesc[] => {
    const layers: LayerDesc[] = [];
    if (s.dropout > 0) {
      layers.push({
        kind: "dropout",
        rate: s.dropout,
        ...(s.classInputs ? { keepLast: s.classInputs } : {}),
      });
    }
    layers.push({
      kind: "dense",
      units: s.units * s.pieces,
      init: initRange === undefined ? "pytorch" : { uniform: initRange },
      ...(s.labelBlock
        ? {
          labelBlock: {
            inputs: s.labelBlock.inputs,
            units: s.labelBlock.units * s.pieces,
          },
        }
        : {}),
      name: String(i),
    });
    if (s.batchNorm) {
      layers.push({
        kind: "batchNorm",
        eps: BN_EPS,
        momentum: 1 - BN_MOMENTUM,
        divide: true,
        name: String(i),
      });
    }
    switch (s.activation) {
      case "relu":
      case "tanh":
      case "sigmoid":
        layers.push({ kind: s.activation });
        break;
      case "leaky_relu":
        layers.push({ kind: "leakyRelu", slope: LEAKY_SLOPE });
        break;
      case "maxout":
        layers.push({ kind: "maxout", pieces: s.pieces });
        break;
      case "linear":
        break;
    }
    return layers;
  });
}

/**
 * The network of `specs` (see {@linkcode mlpLayers}), its weights drawn
 * from `rng`.
 *
 * @param name prefix of the variables' names ("G" or "D").
 */
export function mlpNet(
  name: string,
  specs: LayerSpec[],
  initRange: number | undefined,
  rng: Rng,
): LayerNet {
  return new LayerNet(name, specs[0].inputs, mlpLayers(specs, initRange), rng);
}

/** An MLP's blocks and their variables, read from its list of layers. */
export interface Mlp {
  specs: LayerSpec[];
  /** Per block, its variables. */
  layers: LayerParams[];
  /** The trainable variables, in the network's order. */
  trainable: tf.Variable[];
}

/**
 * `net` as MLP blocks (the inverse of {@linkcode mlpLayers}).
 *
 * @throws {Error} for a network that is not an MLP of the presets' kind
 *   (convolutions, spectral norm, another batch norm or slope).
 */
export function asMlp(net: LayerNet): Mlp {
  const notMlp = (i: number, what: string) =>
    new Error(
      `this needs an MLP network of the MLP presets' kind; layer ${i} of ` +
        `this one is ${what}`,
    );
  const specs: LayerSpec[] = [], layers: LayerParams[] = [];
  const d = net.descs;
  let width = net.inputShape[0];
  let drop: { rate: number; keepLast?: number } | null = null;
  for (let i = 0; i < d.length; i++) {
    const l = d[i];
    if (l.kind === "dropout" && !drop) {
      drop = l;
      continue;
    }
    if (l.kind !== "dense" || l.spectralNorm || l.bias === false) {
      throw notMlp(i, `${l.kind} where a dense layer with a bias belongs`);
    }
    const params: LayerParams = {
      kernel: net.vars[i].kernel!,
      bias: net.vars[i].bias!,
    };
    let j = i + 1, batchNorm = false;
    const bn = d[j];
    if (bn?.kind === "batchNorm") {
      if (
        !bn.divide || bn.eps !== BN_EPS || bn.momentum !== 1 - BN_MOMENTUM
      ) {
        throw notMlp(j, "a batch norm of other settings than the MLPs'");
      }
      const v = net.vars[j];
      Object.assign(params, {
        gamma: v.gamma,
        beta: v.beta,
        movingMean: v.movingMean,
        movingVar: v.movingVar,
      });
      batchNorm = true;
      j++;
    }
    let activation: LayerSpec["activation"] = "linear", pieces = 1;
    const a = d[j];
    if (a?.kind === "relu" || a?.kind === "tanh" || a?.kind === "sigmoid") {
      activation = a.kind;
    } else if (a?.kind === "leakyRelu") {
      if (a.slope !== LEAKY_SLOPE) throw notMlp(j, `slope ${a.slope}`);
      activation = "leaky_relu";
    } else if (a?.kind === "maxout") {
      activation = "maxout";
      pieces = a.pieces;
    }
    if (activation !== "linear") j++;
    const units = l.units / pieces;
    specs.push({
      inputs: width,
      units,
      activation,
      pieces,
      batchNorm,
      dropout: drop?.rate ?? 0,
      ...(drop?.keepLast ? { classInputs: drop.keepLast } : {}),
      ...(l.labelBlock
        ? {
          labelBlock: {
            inputs: l.labelBlock.inputs,
            units: l.labelBlock.units / pieces,
          },
        }
        : {}),
    });
    layers.push(params);
    width = units;
    drop = null;
    i = j - 1;
  }
  if (drop) throw notMlp(d.length - 1, "a dropout at the end");
  return { specs, layers, trainable: net.trainable };
}
