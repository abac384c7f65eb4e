/**
 * The networks: multilayer perceptrons held as plain variables, so that
 * every operation of a layer (dense product, batch norm, nonlinearity,
 * maxout, dropout) is a visible tfjs op, and G as a standard TF.js layers
 * model for export. A layer is described by a {@linkcode LayerSpec}; new
 * kinds of layer slot in beside these.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { alea } from "./alea.ts";
import { uniqueVariableName } from "./optim.ts";
import type { Activation, NetConfig, OutputActivation } from "./presets.ts";
import { Rng } from "./rng.ts";

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
 * seedrandom's alea, seeded the same way), so the committed models stay
 * reproducible; built as one array on the CPU, it is one upload instead of
 * a uniform tensor and three ops (see docs/speed.md). `lib/alea.ts` draws
 * the same masks on the GPU for the WGSL step.
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
 * multiplication, since tfjs-wasm's broadcasting `equal` (and `tile`) are
 * far slower than its same-shape ops (see docs/speed.md).
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

/** The layers of a network of `net`'s shape from `inputs` to `outputs` units. */
export function layerSpecs(
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
