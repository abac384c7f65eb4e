/**
 * A layer-list network (`lib/nets/layer_net.ts`) read as the blocks the
 * WGSL passes run (`lib/wgsl/layer_passes.ts`): a weight layer, then
 * optionally batch norm, a nonlinearity and dropout; with its parameters'
 * layout, or an error that says what the passes cannot run. Dropout's
 * mask seed is the pass's plus the weight layers before it, and its
 * derivative is taken from the masked output's sign: after ReLU, leaky
 * ReLU or no nonlinearity only. A conditional GAN's layers read each
 * example's class from a labels buffer of the pass: class-conditional batch
 * norm, and D's projection, whose first layer (`classInput`) is then no
 * layer at all, as the pass's input is the image without its class. Not
 * here yet: maxout, a conditional dense layer's label block, the class as
 * planes (`classChannels`).
 *
 * @module
 */

import type { LayerDesc, LayerNet } from "../nets/layer_net.ts";
import { type ConvGeometry, convGeometry } from "./conv_programs.ts";
import type { Act } from "./programs.ts";

/** One weight layer with the batch norm and nonlinearity after it. */
export interface Block {
  kind: "dense" | "conv2d" | "conv2dTranspose";
  /** Index in the description of the weight layer. */
  layer: number;
  /** Values per example in and out. */
  inputs: number;
  outputs: number;
  /** Columns of the product: units, or output channels. */
  channels: number;
  /**
   * A convolution's geometry for a batch (a transposed layer's: the
   * mirrored convolution, from its output to its input).
   */
  geometry?: (batch: number) => ConvGeometry;
  /** Offsets in the parameters; bias -1 without one. */
  kernel: number;
  kernelSize: number;
  bias: number;
  /** Spectral normalisation: u, v, sigma from `state`, W / sigma from `normed`. */
  sn?: { state: number; normed: number; rest: number; out: number };
  bn?: {
    layer: number;
    gamma: number;
    beta: number;
    eps: number;
    momentum: number;
    divide: boolean;
    /** Class-conditional: gamma and beta are [classes, channels]. */
    classes?: number;
  };
  /**
   * D's projection (`lib/wgsl/projection.ts`): its embedding
   * [classes, inputs] from `embedding` in the parameters, and when the
   * layer is spectrally normalised, the embedding's own state and
   * normalised copy (as `sn`'s).
   */
  projection?: {
    classes: number;
    embedding: number;
    sn?: { state: number; normed: number; rest: number; out: number };
  };
  act: Act;
  /**
   * Dropout of the block's output: its rate, and its mask's seed offset
   * (the weight layers before it).
   */
  dropout?: { rate: number; seed: number };
}

/** The nonlinearity of a layer description, or null for another kind. */
function actOf(l: LayerDesc): Act | null {
  switch (l.kind) {
    case "relu":
    case "tanh":
    case "sigmoid":
      return l.kind;
    case "leakyRelu":
      // The derivative is taken from the output's sign: slope >= 0 only.
      return l.slope >= 0 ? `leaky:${l.slope}` : null;
    default:
      return null;
  }
}

/**
 * `net`'s blocks and its parameters' layout (`LayerNet.trainable`'s order:
 * per layer kernel, bias, gamma, beta), or an error that says what the
 * WGSL passes cannot run.
 */
export function layerBlocks(net: LayerNet): {
  blocks: Block[];
  size: number;
  /** Where each of `LayerNet.trainable` starts. */
  offsets: number[];
  /** Floats of the spectral-norm state and of the normalised weights. */
  snState: number;
  snNormed: number;
} {
  const blocks: Block[] = [];
  const offsets: number[] = [];
  let size = 0, snState = 0, snNormed = 0;
  const take = (n: number) => {
    offsets.push(size);
    size += n;
    return size - n;
  };
  const count = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const refuse = (i: number, why: string): never => {
    throw new Error(
      `${net.name}'s layer ${i} (${
        net.descs[i].kind
      }) ${why} in the WGSL passes`,
    );
  };
  net.descs.forEach((l, i) => {
    const inShape = i === 0 ? net.inputShape : net.shapes[i - 1];
    const outShape = net.shapes[i];
    const last = blocks[blocks.length - 1];
    const v = net.vars[i];
    if (l.kind === "reshape" || l.kind === "flatten") return;
    // The pass's input is the image alone; the class is in its labels.
    if (l.kind === "classInput" && i === 0) return;
    if (
      l.kind === "dense" || l.kind === "conv2d" || l.kind === "conv2dTranspose"
    ) {
      if (l.kind === "dense" && l.labelBlock) {
        refuse(i, "has a label block, which is not written");
      }
      if (l.kind !== "dense" && (inShape.length !== 3)) {
        refuse(i, "needs an image input");
      }
      const kernelSize = v.kernel!.size;
      const kernel = take(kernelSize);
      const bias = v.bias ? take(v.bias.size) : -1;
      const channels = outShape[outShape.length - 1];
      const block: Block = {
        kind: l.kind,
        layer: i,
        inputs: count(inShape),
        outputs: count(outShape),
        channels,
        kernel,
        kernelSize,
        bias,
        act: "linear",
      };
      if (l.kind === "conv2d") {
        const [h, w, c] = inShape;
        block.geometry = (batch) =>
          convGeometry({
            batch,
            inH: h,
            inW: w,
            inC: c,
            outC: l.filters,
            size: l.size,
            stride: l.stride,
            padding: l.padding ?? "same",
          });
      } else if (l.kind === "conv2dTranspose") {
        const [h, w, c] = inShape;
        const [oh, ow] = outShape;
        block.geometry = (batch) => {
          const g = convGeometry({
            batch,
            inH: oh,
            inW: ow,
            inC: l.filters,
            outC: c,
            size: l.size,
            stride: l.stride,
            padding: "same",
          });
          if (g.outH !== h || g.outW !== w) {
            throw new Error(
              `unreachable: ${oh} x ${ow} does not convolve back to ${h} x ${w}`,
            );
          }
          return g;
        };
      }
      if (v.sn) {
        if (l.kind === "conv2dTranspose") {
          refuse(i, "is spectrally normalised, which LayerNet.apply ignores");
        }
        const out = channels, rest = kernelSize / out;
        block.sn = { state: snState, normed: snNormed, rest, out };
        snState += out + rest + 1;
        snNormed += kernelSize;
      }
      if (l.kind === "dense" && l.projection) {
        if (l.units !== 1) {
          refuse(
            i,
            "projects the class into more than one unit, which is not written",
          );
        }
        const classes = l.projection.classes;
        const size = v.embedding!.size;
        block.projection = { classes, embedding: take(size) };
        if (v.embeddingSn) {
          // E [classes, inputs] as the kernel is viewed: [rest, out].
          const out = size / classes;
          block.projection.sn = {
            state: snState,
            normed: snNormed,
            rest: classes,
            out,
          };
          snState += out + classes + 1;
          snNormed += size;
        }
      }
      blocks.push(block);
      return;
    }
    if (l.kind === "batchNorm") {
      if (!last || last.bn || last.act !== "linear" || last.layer !== i - 1) {
        refuse(i, "does not follow a weight layer directly");
      }
      const gamma = take(v.gamma!.size);
      const beta = take(v.beta!.size);
      last.bn = {
        layer: i,
        gamma,
        beta,
        eps: l.eps ?? 1e-3,
        momentum: l.momentum ?? 0.99,
        divide: !!l.divide,
        ...(l.classes ? { classes: l.classes } : {}),
      };
      return;
    }
    const act = actOf(l);
    if (act) {
      if (!last || last.act !== "linear" || last.dropout) {
        refuse(i, "does not follow a weight layer or its batch norm");
      }
      last.act = act;
      return;
    }
    if (l.kind === "dropout") {
      const fromSign = last &&
        (last.act === "linear" || last.act === "relu" ||
          last.act.startsWith("leaky:"));
      if (!last || last.dropout || last.bn || !fromSign) {
        refuse(
          i,
          "does not follow a weight layer and a ReLU, leaky ReLU or none",
        );
      }
      if (l.keepLast) refuse(i, "keeps a one-hot class, which is not written");
      if (l.rate > 0) last.dropout = { rate: l.rate, seed: blocks.length };
      return;
    }
    refuse(
      i,
      l.kind === "leakyRelu"
        ? "has a negative slope, which is not written"
        : "is not written yet",
    );
  });
  if (blocks.length === 0) throw new Error(`${net.name} has no weight layer`);
  // The projection's term is added to the product's output, after its
  // epilogue: the last block's logit, with no nonlinearity after it.
  blocks.forEach((b, k) => {
    if (
      b.projection && (k !== blocks.length - 1 || b.act !== "linear" || b.bn)
    ) {
      refuse(
        b.layer,
        "projects the class but is not the network's last, linear layer, " +
          "which is not written",
      );
    }
  });
  if (blocks[blocks.length - 1].dropout) {
    throw new Error(
      `${net.name}'s output has dropout: not written in the WGSL passes`,
    );
  }
  return { blocks, size, offsets, snState, snNormed };
}
