/**
 * A generator {@linkcode LayerNet} exported as a standard TF.js layers
 * model, holding copies of its weights, in inference mode: what `deno task
 * sample`, the web page and `tf.loadLayersModel` load.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { LayerNet } from "./layer_net.ts";

/** A layer of {@linkcode layerNetAsLayersModel} and its weights. */
interface ExportedLayer {
  layer: tf.layers.Layer;
  weights: tf.Tensor[];
}

/**
 * The TF.js layer of `net`'s layer `i` (null: nothing in inference), its
 * weights beside it; `first` is spread into its options (a sequential
 * model's first layer's input shape). A conditional batch norm's layer is
 * its normalisation only (no scale or shift), which
 * {@linkcode layerNetAsLayersModel} follows with the class's gamma and beta.
 */
function exportedLayer(
  net: LayerNet,
  i: number,
  first: { inputShape?: number[] },
): ExportedLayer | null {
  const l = net.descs[i];
  const v = net.vars[i];
  const name = `${l.kind}_${i}`;
  const none: tf.Tensor[] = [];
  switch (l.kind) {
    case "dense":
      if (l.projection) {
        throw new Error(
          "a generator with a projection layer cannot be exported (it is a " +
            "projection discriminator's output layer)",
        );
      }
      return {
        layer: tf.layers.dense({
          units: l.units,
          useBias: !!v.bias,
          name,
          ...first,
        }),
        weights: [v.kernel!, ...(v.bias ? [v.bias] : [])],
      };
    case "conv2dTranspose":
      return {
        layer: tf.layers.conv2dTranspose({
          filters: l.filters,
          kernelSize: l.size,
          strides: l.stride,
          padding: "same",
          useBias: !!v.bias,
          name,
          ...first,
        }),
        weights: [v.kernel!, ...(v.bias ? [v.bias] : [])],
      };
    case "batchNorm": {
      const options = {
        momentum: l.momentum ?? 0.99,
        epsilon: l.eps ?? 1e-3,
        name,
        ...first,
      };
      return l.classes
        ? {
          layer: tf.layers.batchNormalization({
            ...options,
            center: false,
            scale: false,
          }),
          weights: [v.movingMean!, v.movingVar!],
        }
        : {
          layer: tf.layers.batchNormalization(options),
          weights: [v.gamma!, v.beta!, v.movingMean!, v.movingVar!],
        };
    }
    case "relu":
    case "tanh":
    case "sigmoid":
      return {
        layer: tf.layers.activation({ activation: l.kind, name, ...first }),
        weights: none,
      };
    case "leakyRelu":
      return {
        layer: tf.layers.leakyReLU({ alpha: l.slope, name, ...first }),
        weights: none,
      };
    case "reshape":
      return {
        layer: tf.layers.reshape({ targetShape: l.shape, name, ...first }),
        weights: none,
      };
    case "flatten":
      return { layer: tf.layers.flatten({ name, ...first }), weights: none };
    case "dropout":
      return null; // inference: nothing
    case "maxout":
      throw new Error(
        "a generator with maxout cannot be exported (TF.js layers have no " +
          "maxout; it belongs in D)",
      );
    case "conv2d":
      throw new Error(
        "a generator with conv2d layers cannot be exported (spectral " +
          "norm and strided convolutions belong in D)",
      );
    case "classChannels":
    case "classInput":
      throw new Error(
        `a generator with a ${l.kind} layer cannot be exported (it is a ` +
          "conditional D's first layer)",
      );
  }
}

/**
 * A generator {@linkcode LayerNet} as a standard TF.js layers model (dense,
 * conv2dTranspose, batch normalisation, activations, reshape, flatten)
 * holding copies of its weights, in inference mode: it loads in a browser
 * with `tf.loadLayersModel`. A sequential model, or, with class-conditional
 * batch norm, a functional one of standard layers only (see
 * {@linkcode conditionalModel}).
 */
export function layerNetAsLayersModel(net: LayerNet): tf.LayersModel {
  if (net.descs.some((l) => l.kind === "batchNorm" && l.classes)) {
    return conditionalModel(net);
  }
  const model = tf.sequential({ name: "generator" });
  net.descs.forEach((_, i) => {
    const first = model.layers.length === 0
      ? { inputShape: net.inputShape }
      : {};
    const e = exportedLayer(net, i, first);
    if (!e) return;
    model.add(e.layer);
    if (e.weights.length) e.layer.setWeights(e.weights);
  });
  return model;
}

/**
 * A generator with class-conditional batch norm as a functional TF.js
 * model of standard layers: a dense layer without bias (its kernel 0 and
 * an identity) picks the one-hot class off the input row, and each
 * conditional batch norm is a batch norm without scale or shift, times
 * the class's gamma (a dense layer of the class, its kernel gamma), plus
 * its beta, both reshaped to broadcast over the pixels.
 */
function conditionalModel(net: LayerNet): tf.LayersModel {
  const inputs = net.inputShape[0];
  const classes = net.classes;
  const input = tf.input({ shape: [inputs], name: "noise_and_class" });
  const pick = tf.layers.dense({
    units: classes,
    useBias: false,
    name: "class",
  });
  const y = pick.apply(input) as tf.SymbolicTensor;
  const select = new Float32Array(inputs * classes);
  for (let c = 0; c < classes; c++) {
    select[(inputs - classes + c) * classes + c] = 1;
  }
  const selection = tf.tensor2d(select, [inputs, classes]);
  const set: [tf.layers.Layer, tf.Tensor[]][] = [[pick, [selection]]];
  let h = input;
  net.descs.forEach((l, i) => {
    const e = exportedLayer(net, i, {});
    if (!e) return;
    h = e.layer.apply(h) as tf.SymbolicTensor;
    if (e.weights.length) set.push([e.layer, e.weights]);
    if (l.kind !== "batchNorm" || !l.classes) return;
    const v = net.vars[i];
    const channels = h.shape[h.shape.length - 1]!;
    const broadcast = [...h.shape.slice(1, -1).map(() => 1), channels];
    const perClass = (what: string, t: tf.Tensor) => {
      const dense = tf.layers.dense({
        units: channels,
        useBias: false,
        name: `${what}_${i}`,
      });
      set.push([dense, [t]]);
      const rows = dense.apply(y) as tf.SymbolicTensor;
      return broadcast.length === 1 ? rows : tf.layers.reshape({
        targetShape: broadcast,
        name: `${what}_${i}_shape`,
      }).apply(rows) as tf.SymbolicTensor;
    };
    const scaled = tf.layers.multiply({ name: `scale_${i}` })
      .apply([h, perClass("gamma", v.gamma!)]) as tf.SymbolicTensor;
    h = tf.layers.add({ name: `shift_${i}` })
      .apply([scaled, perClass("beta", v.beta!)]) as tf.SymbolicTensor;
  });
  const model = tf.model({ inputs: input, outputs: h, name: "generator" });
  for (const [layer, weights] of set) layer.setWeights(weights);
  selection.dispose();
  return model;
}
