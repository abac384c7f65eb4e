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
  /** Per layer, the block mask of a {@linkcode LayerSpec.labelBlock}, or null. */
  #masks: (tf.Tensor2D | null)[] = [];

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
        const mask = s.labelBlock ? blockMask(s, cols) : null;
        if (mask) { for (let j = 0; j < w.length; j++) w[j] *= mask[j]; }
        this.#masks.push(
          mask ? tf.keep(tf.tensor2d(mask, [s.inputs, cols])) : null,
        );
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

  /**
   * Number of trainable parameters (the weights a block mask holds at zero
   * are not parameters).
   */
  get parameterCount(): number {
    const fixed = this.specs.reduce((n, s) => n + fixedZeros(s), 0);
    return this.trainable.reduce((n, v) => n + v.size, 0) - fixed;
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
        if (s.classInputs) keepClassInputs(mask, s.inputs, s.classInputs);
        h = tf.mul(h, tf.tensor(mask, h.shape));
      }
      const mask = this.#masks[i];
      const kernel = mask ? tf.mul(p.kernel, mask) : p.kernel;
      h = dense(h, kernel as tf.Tensor2D, p.bias as tf.Tensor1D);
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
    for (const m of this.#masks) m?.dispose();
  }
}

/** Sets the mask of each row's last `classes` inputs (the class) to 1: kept, unscaled. */
function keepClassInputs(mask: Float32Array, inputs: number, classes: number) {
  for (let r = 0; r < mask.length; r += inputs) {
    mask.fill(1, r + inputs - classes, r + inputs);
  }
}

/** Where a {@linkcode LayerSpec.labelBlock}'s label rows and columns start. */
function blockCorner(s: LayerSpec) {
  const block = s.labelBlock!;
  return {
    firstLabelRow: s.inputs - block.inputs,
    firstLabelCol: (s.units - block.units) * s.pieces,
  };
}

/** Kernel weights a layer's block mask holds at zero (0 without a block). */
function fixedZeros(s: LayerSpec): number {
  if (!s.labelBlock) return 0;
  const { firstLabelRow, firstLabelCol } = blockCorner(s);
  const labelRows = s.inputs - firstLabelRow;
  const labelCols = s.units * s.pieces - firstLabelCol;
  return firstLabelRow * labelCols + labelRows * firstLabelCol;
}

/**
 * The 0/1 mask of a {@linkcode LayerSpec.labelBlock} layer's kernel
 * ([inputs, cols] row-major): the label rows reach only the label units'
 * columns, the other rows only the others'. A unit's maxout pieces are
 * adjacent columns, so a unit's pieces all fall in one block.
 */
function blockMask(s: LayerSpec, cols: number): Float32Array {
  const { firstLabelRow, firstLabelCol } = blockCorner(s);
  const mask = new Float32Array(s.inputs * cols);
  for (let r = 0; r < s.inputs; r++) {
    const label = r >= firstLabelRow;
    for (let c = 0; c < cols; c++) {
      if (label === c >= firstLabelCol) mask[r * cols + c] = 1;
    }
  }
  return mask;
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

/**
 * LeakyReLU. On wasm as x * step(x, slope), its gradient dy * step(x,
 * slope): the same values as `tf.leakyRelu` and its gradient there, bit
 * for bit (slope times x is one float32 product either way), but
 * tfjs-wasm's LeakyRelu kernel costs about ten times a product, and tfjs'
 * gradient of it (greater, a product, where) twenty (docs/speed.md). Other
 * backends run `tf.leakyRelu` (the cpu backend's multiplies by the slope
 * in double precision, so the product form would change its last bits).
 */
export function leakyRelu<T extends tf.Tensor>(x: T, slope: number): T {
  return (tf.getBackend() === "wasm"
    ? leakyReluOp(x, slope)
    : tf.leakyRelu(x, slope)) as T;
}

const leakyReluOp = (x: tf.Tensor, slope: number): tf.Tensor =>
  tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[1] as tf.GradSaveFunc;
    const mask = tf.step(args[0] as tf.Tensor, slope);
    save([mask]);
    return {
      value: tf.mul(args[0] as tf.Tensor, mask),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        tf.mul(dy as tf.Tensor, saved[0]),
    };
  })(x);

function activate(h: tf.Tensor2D, s: LayerSpec): tf.Tensor2D {
  switch (s.activation) {
    case "relu":
      return tf.relu(h);
    case "leaky_relu":
      return leakyRelu(h, LEAKY_SLOPE);
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

/**
 * The layers of a network of `net`'s shape from `inputs` to `outputs` units.
 * In a conditional network (`classes` > 0) the one-hot class follows the
 * inputs, into the first layer: through its own units when `net` has
 * {@linkcode NetConfig.labelUnits}, else as `classes` more inputs.
 */
export function layerSpecs(
  inputs: number,
  net: NetConfig,
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
