/**
 * A small convolutional classifier per dataset, whose penultimate layer (128
 * features) is the feature space of the project's FID and whose class
 * probabilities give the Inception Score and the class histogram of a
 * generator's samples. Inception-v3 features mean little on 28 x 28 digits;
 * a domain classifier's are what the MNIST GAN literature uses.
 *
 * Architecture: conv 5x5 x 32, max-pool, conv 5x5 x 64, max-pool, dense 128
 * (the features), dense 10. Trained with Adam on seeded batches, so the same
 * seed and backend give the same weights; the trained weights are committed
 * in `models/classifier/<dataset>/` (TF.js layers format).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { batches, type Dataset, IMAGE_SIZE, toFloat } from "../data.ts";
import { exists } from "../io/files.ts";
import { dense } from "../nets/ops.ts";
import { accuracyOf } from "./metrics.ts";
import { Optimizer, uniqueVariableName } from "../nets/optim.ts";
import { Rng } from "../random/rng.ts";
import { loadLayersModelFile, saveLayersModel } from "../io/layers_model.ts";

/** Name of the feature layer. */
const FEATURE_LAYER = "features";
/** Number of features. */
export const FEATURE_DIM = 128;

/** Builds the untrained classifier; `seed` fixes the initial weights. */
function buildClassifier(seed: number): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed + k });
  const model = tf.sequential({ name: "classifier" });
  model.add(tf.layers.conv2d({
    inputShape: [IMAGE_SIZE, IMAGE_SIZE, 1],
    filters: 32,
    kernelSize: 5,
    activation: "relu",
    kernelInitializer: init(1),
    name: "conv1",
  }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2, name: "pool1" }));
  model.add(tf.layers.conv2d({
    filters: 64,
    kernelSize: 5,
    activation: "relu",
    kernelInitializer: init(2),
    name: "conv2",
  }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2, name: "pool2" }));
  model.add(tf.layers.flatten({ name: "flatten" }));
  model.add(tf.layers.dense({
    units: FEATURE_DIM,
    activation: "relu",
    kernelInitializer: init(3),
    name: FEATURE_LAYER,
  }));
  model.add(tf.layers.dense({
    units: 10,
    kernelInitializer: init(4),
    name: "logits",
  }));
  return model;
}

/**
 * The classifier's variables for training. The wasm backend has no gradient
 * kernel for convolutions, so training writes each 5 x 5 convolution as
 * im2col: the 25 shifted slices of the input, concatenated (order: row
 * offset, column offset, channel) and multiplied by a [25 * C_in, C_out]
 * matrix; max-pooling is a reshape and a max. That matrix is exactly a conv
 * kernel [5, 5, C_in, C_out] flattened, so {@linkcode ClassifierNet.toLayersModel}
 * copies the weights into {@linkcode buildClassifier}'s standard layers.
 */
export class ClassifierNet {
  readonly vars: tf.Variable[];

  /** @param seed fixes the initial weights (Glorot uniform, zero biases). */
  constructor(seed: number) {
    const rng = new Rng(seed, 0xc1a5);
    const shapes: [number, number][] = [
      [25, 32],
      [25 * 32, 64],
      [4 * 4 * 64, FEATURE_DIM],
      [FEATURE_DIM, 10],
    ];
    this.vars = tf.tidy(() =>
      shapes.flatMap(([fanIn, fanOut], i) => {
        // Glorot: fan_in and fan_out of a conv count the receptive field.
        const convOut = i < 2 ? fanOut * 25 : fanOut;
        const r = Math.sqrt(6 / (fanIn + convOut));
        const w = rng.fillUniform(new Float32Array(fanIn * fanOut), -r, r);
        return [
          tf.variable(
            tf.tensor2d(w, [fanIn, fanOut]),
            true,
            uniqueVariableName(`C/${i}/kernel`),
          ),
          tf.variable(
            tf.zeros([fanOut]),
            true,
            uniqueVariableName(`C/${i}/bias`),
          ),
        ];
      })
    );
  }

  /** Logits and features for a batch `x` of n x 784 values in [0, 1]. */
  apply(x: tf.Tensor2D): { logits: tf.Tensor2D; features: tf.Tensor2D } {
    const v = this.vars as tf.Tensor2D[];
    const n = x.shape[0];
    const conv = (h: tf.Tensor4D, w: tf.Tensor2D, b: tf.Tensor1D) => {
      const [, height, width] = h.shape;
      const oh = height - 4, ow = width - 4;
      const slices: tf.Tensor4D[] = [];
      for (let dy = 0; dy < 5; dy++) {
        for (let dx = 0; dx < 5; dx++) {
          slices.push(tf.slice(h, [0, dy, dx, 0], [n, oh, ow, h.shape[3]]));
        }
      }
      const patches = tf.reshape(tf.concat(slices, 3), [n * oh * ow, -1]);
      const out = tf.relu(dense(patches as tf.Tensor2D, w, b as tf.Tensor1D));
      return tf.reshape(out, [n, oh, ow, w.shape[1]]) as tf.Tensor4D;
    };
    const pool = (h: tf.Tensor4D) => {
      const [, height, width, c] = h.shape;
      return tf.max(
        tf.reshape(h, [n, height / 2, 2, width / 2, 2, c]),
        [2, 4],
      ) as tf.Tensor4D;
    };
    let h = tf.reshape(x, [n, IMAGE_SIZE, IMAGE_SIZE, 1]) as tf.Tensor4D;
    h = pool(conv(h, v[0], v[1] as unknown as tf.Tensor1D));
    h = pool(conv(h, v[2], v[3] as unknown as tf.Tensor1D));
    const flat = tf.reshape(h, [n, -1]) as tf.Tensor2D;
    const features = tf.relu(dense(flat, v[4], v[5] as unknown as tf.Tensor1D));
    const logits = dense(features, v[6], v[7] as unknown as tf.Tensor1D);
    return { logits, features };
  }

  /** A standard layers model ({@linkcode buildClassifier}) with these weights. */
  toLayersModel(): tf.Sequential {
    const model = buildClassifier(0);
    tf.tidy(() => {
      const v = this.vars;
      model.getLayer("conv1").setWeights([
        tf.reshape(v[0], [5, 5, 1, 32]),
        v[1],
      ]);
      model.getLayer("conv2").setWeights([
        tf.reshape(v[2], [5, 5, 32, 64]),
        v[3],
      ]);
      model.getLayer(FEATURE_LAYER).setWeights([v[4], v[5]]);
      model.getLayer("logits").setWeights([v[6], v[7]]);
    });
    return model;
  }

  dispose(): void {
    for (const v of this.vars) v.dispose();
  }
}

/** Options of {@linkcode trainClassifier}. */
export interface ClassifierTrainOptions {
  epochs: number;
  seed: number;
  batchSize?: number;
  lr?: number;
  /** Called after each epoch with the test accuracy. */
  onEpoch?: (epoch: number, testAccuracy: number, seconds: number) => void;
}

/**
 * Trains the classifier on the whole training split (inputs in [0, 1]) with
 * Adam, and returns it as a layers model with its test accuracy.
 */
export async function trainClassifier(
  dataset: Dataset,
  options: ClassifierTrainOptions,
): Promise<{ model: tf.Sequential; testAccuracy: number }> {
  const net = new ClassifierNet(options.seed);
  const optimizer = new Optimizer(
    { kind: "adam", lr: options.lr ?? 1e-3, beta1: 0.9, beta2: 0.999 },
    net.vars,
    "optC",
  );
  const bs = options.batchSize ?? 128;
  let model = net.toLayersModel();
  let testAccuracy = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const started = performance.now();
    for (
      const batch of batches(dataset.train, {
        batchSize: bs,
        seed: options.seed,
        epoch,
        range: "[0,1]",
      })
    ) {
      tf.tidy(() => {
        const x = tf.tensor2d(batch.images, [bs, IMAGE_SIZE * IMAGE_SIZE]);
        const y = tf.oneHot(tf.tensor1d(batch.labels, "int32"), 10);
        const { grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(y, net.apply(x).logits),
          net.vars,
        );
        optimizer.apply(grads, epoch);
      });
    }
    model.dispose();
    model = net.toLayersModel();
    testAccuracy = await accuracy(
      model,
      dataset.test.images,
      dataset.test.labels,
    );
    options.onEpoch?.(
      epoch + 1,
      testAccuracy,
      (performance.now() - started) / 1000,
    );
  }
  optimizer.dispose();
  net.dispose();
  return { model, testAccuracy };
}

/**
 * Runs the classifier on `n` images (floats in [0, 1], n x 784) in chunks
 * and returns the features (n x 128) and class probabilities (n x 10).
 */
export async function classify(
  model: tf.LayersModel,
  images: Float32Array,
): Promise<{ features: Float32Array; probs: Float32Array }> {
  const n = images.length / (IMAGE_SIZE * IMAGE_SIZE);
  const featureModel = tf.model({
    inputs: model.inputs,
    outputs: [
      model.getLayer(FEATURE_LAYER).output as tf.SymbolicTensor,
      model.outputs[0],
    ],
  });
  const features = new Float32Array(n * FEATURE_DIM);
  const probs = new Float32Array(n * 10);
  const chunk = 1000;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const [f, p] = tf.tidy(() => {
      const x = tf.tensor4d(
        images.subarray(start * 784, (start + m) * 784),
        [m, IMAGE_SIZE, IMAGE_SIZE, 1],
      );
      const [feat, logits] = featureModel.predict(x) as tf.Tensor[];
      return [feat, tf.softmax(logits)];
    });
    features.set(await f.data(), start * FEATURE_DIM);
    probs.set(await p.data(), start * 10);
    tf.dispose([f, p]);
  }
  return { features, probs };
}

/** Fraction of `images` (bytes, n x 784) classified as their label. */
export async function accuracy(
  model: tf.LayersModel,
  images: Uint8Array,
  labels: Uint8Array,
): Promise<number> {
  const { probs } = await classify(model, toFloat(images, "[0,1]"));
  return accuracyOf(probs, labels);
}

/** Metadata saved beside the classifier's weights. */
export interface ClassifierMetadata {
  dataset: string;
  testAccuracy: number;
  epochs: number;
  seed: number;
  backend: string;
}

/** Saves the classifier as a TF.js layers model in `dir`. */
export async function saveClassifier(
  dir: string,
  model: tf.LayersModel,
  metadata: ClassifierMetadata,
): Promise<void> {
  await saveLayersModel(dir, model, {
    metadata: { classifier: metadata },
  });
}

/** Loads a classifier saved by {@linkcode saveClassifier}. */
export async function loadClassifier(
  dir: string,
): Promise<{ model: tf.LayersModel; metadata: ClassifierMetadata }> {
  if (!exists(`${dir}/model.json`)) {
    throw new Error(
      `no classifier at ${dir}: train one with \`deno task classifier --dataset NAME\``,
    );
  }
  const { model, metadata } = await loadLayersModelFile(`${dir}/model.json`);
  return { model, metadata: metadata.classifier as ClassifierMetadata };
}
