/**
 * Whether a GAN configuration can train: every setting checked, and every
 * problem said at once in one readable error, before a network is built.
 * `lib/gan.ts` (createGan) and the training loop call it.
 *
 * @module
 */

import { type GanConfig, LOSS_KINDS, UPDATE_KINDS } from "./presets.ts";
import { classesRead } from "./nets/layer_net.ts";

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
  if (config.classes !== undefined && config.classes !== 0) {
    if (!Number.isInteger(config.classes) || config.classes < 2) {
      problems.push(
        `classes must be an integer >= 2 (or 0: unconditional), got ${config.classes}`,
      );
    }
    const d = config.discriminator.layers;
    const first = d?.[0];
    // Its number of classes is checked with every layer that reads one.
    if (
      d && !(first?.kind === "classChannels" || first?.kind === "classInput")
    ) {
      problems.push(
        `${config.preset} cannot be conditional: a layer list's D must start ` +
          "with a classChannels or classInput layer, which --conditional puts in place of a convolutional D's " +
          "first reshape (keras-mlp's dense D has none); train a conditional " +
          "MLP (--preset cgan, or --conditional with paper, mlp or bn) or a " +
          "convolutional preset (sngan, sngan-fc, dcgan)",
      );
    }
  }
  // classInput takes the class off the image: without a projection, D
  // would not see it at all.
  const dLayers = config.discriminator.layers ?? [];
  if (
    dLayers[0]?.kind === "classInput" &&
    !dLayers.some((l) => l.kind === "dense" && l.projection)
  ) {
    problems.push(
      "D's classInput layer takes the class off the image for a projection, " +
        "and D has none: end D with a dense layer of one unit with a " +
        "projection, or start it with classChannels",
    );
  }
  // The class input layers come first in a conditional D, and nowhere
  // else; the layers that read the class read the GAN's number of classes.
  for (
    const [name, layers] of [
      ["G", config.generator.layers ?? []],
      ["D", config.discriminator.layers ?? []],
    ] as const
  ) {
    layers.forEach((l, i) => {
      const read = classesRead(l);
      if (read === 0) return;
      const what = l.kind === "dense"
        ? "projection"
        : l.kind === "batchNorm"
        ? "conditional batch norm"
        : `${l.kind} layer`;
      if (read !== (config.classes ?? 0)) {
        problems.push(
          `${name}'s ${what} (layer ${i}) reads ${read} classes, and the ` +
            `GAN is ${
              config.classes
                ? `conditional on ${config.classes}`
                : "not conditional"
            }`,
        );
      }
      const input = l.kind === "classChannels" || l.kind === "classInput";
      if (input && (name === "G" || i > 0)) {
        problems.push(
          `a ${l.kind} layer belongs in D only, as its first layer (it reads ` +
            "the one-hot class after the pixels)",
        );
      }
      if (
        l.kind === "dense" && l.projection &&
        (name === "G" || i !== layers.length - 1 || l.units !== 1)
      ) {
        problems.push(
          "a projection belongs in D's last layer, a dense layer of one unit",
        );
      }
    });
  }
  for (
    const [name, net] of [["G", config.generator], [
      "D",
      config.discriminator,
    ]] as const
  ) {
    (net.layers ?? []).forEach((l, i, layers) => {
      if ("units" in l) positiveInt(l.units, `${name} dense units`);
      if ("filters" in l) positiveInt(l.filters, `${name} filters`);
      if ("size" in l) positiveInt(l.size, `${name} kernel size`);
      if ("stride" in l) positiveInt(l.stride, `${name} stride`);
      if (l.kind === "dropout" && !(l.rate >= 0 && l.rate < 1)) {
        problems.push(`${name} dropout must be in [0, 1), got ${l.rate}`);
      }
      if (l.kind === "maxout") {
        positiveInt(l.pieces, `${name} maxout pieces`);
        const before = layers[i - 1];
        if (!(before?.kind === "dense" && before.units % l.pieces === 0)) {
          problems.push(
            `${name}'s maxout (layer ${i}) must follow a dense layer whose ` +
              `units are a multiple of its ${l.pieces} pieces`,
          );
        }
      }
    });
    net.hidden.forEach((h) => positiveInt(h, `${name} hidden size`));
    if (net.labelUnits !== undefined) {
      positiveInt(net.labelUnits, `${name} label units`);
      if (!config.classes) {
        problems.push(
          `${name} has label units but the GAN is not conditional (no classes)`,
        );
      }
      if (net.hidden.length === 0) {
        problems.push(`${name}'s label units need a hidden layer`);
      }
    }
    if (Array.isArray(net.pieces)) {
      if (net.pieces.length !== net.hidden.length) {
        problems.push(
          `${name} has ${net.hidden.length} hidden layers but ` +
            `${net.pieces.length} maxout piece counts`,
        );
      }
      net.pieces.forEach((p) => positiveInt(p, `${name} maxout pieces`));
    }
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
    if (o.kind === "adam" && !(o.beta2 >= 0 && o.beta2 < 1)) {
      problems.push(`beta2 must be in [0, 1), got ${o.beta2}`);
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
  if (!UPDATE_KINDS.includes(update)) {
    problems.push(
      `update must be one of ${UPDATE_KINDS.join(", ")}, got "${update}"`,
    );
  } else if (
    update !== "alternating" && (config.k !== 1 || config.gSteps !== 1)
  ) {
    problems.push(
      `a ${update} update needs k = 1 and one G step, got k = ${config.k}, ` +
        `${config.gSteps} G steps (use alternating updates, --update alternating)`,
    );
  }
  if (config.halfBatchD) {
    if (config.batchSize % 2 !== 0) {
      problems.push(
        `a half batch for D needs an even batch size, got ${config.batchSize}`,
      );
    }
    if (config.classes) {
      problems.push(
        "a half batch for D (keras-mlp's) is not written for conditional " +
          "GANs (G is asked for the batch's classes, which half a batch " +
          "cannot give it); train a conditional MLP (--preset cgan, or " +
          "--conditional with paper, mlp or bn)",
      );
    }
    if (update !== "alternating") {
      problems.push(
        `a half batch for D (keras-mlp's) needs alternating updates, got ` +
          `${update}; leave --update out, or pass --update alternating`,
      );
    }
  }
  if (
    config.stepsPerEpoch !== undefined &&
    !(Number.isInteger(config.stepsPerEpoch) && config.stepsPerEpoch >= 1)
  ) {
    problems.push(
      `steps per epoch must be a positive integer, got ${config.stepsPerEpoch}`,
    );
  }
  if (config.ema) {
    const { decay, start } = config.ema;
    if (!(decay > 0 && decay < 1)) {
      problems.push(
        `the moving average's decay must be in (0, 1), got ${decay} ` +
          "(0.999 is usual: the average of about the last 1,000 updates)",
      );
    }
    if (!(Number.isInteger(start) && start >= 0)) {
      problems.push(
        `the moving average's start must be an integer >= 0 (G's updates ` +
          `before averaging starts), got ${start}`,
      );
    }
  }
  if (!LOSS_KINDS.includes(config.loss)) {
    problems.push(
      `loss must be one of ${LOSS_KINDS.join(", ")}, got "${config.loss}"`,
    );
  } else if (
    (config.loss === "hinge" || config.loss === "least-squares") &&
    config.realLabel !== 1
  ) {
    const name = config.loss === "hinge" ? "the hinge loss" : "least squares";
    problems.push(
      `label smoothing (${config.realLabel}) moves a cross-entropy target; ` +
        `${name} has none (use --label-smoothing 1 with --loss ${config.loss})`,
    );
  }
  if (config.loss === "wgan-gp") problems.push(...wganProblems(config));
  if (problems.length) {
    throw new Error(`invalid GAN configuration: ${problems.join("; ")}`);
  }
}

/** What a Wasserstein critic with a gradient penalty cannot train with. */
function wganProblems(config: GanConfig): string[] {
  const problems: string[] = [];
  const d = config.discriminator;
  if (config.realLabel !== 1) {
    problems.push(
      `label smoothing (${config.realLabel}) moves a cross-entropy target; ` +
        "the Wasserstein critic has none (use --label-smoothing 1 with " +
        "--loss wgan-gp)",
    );
  }
  if (d.batchNorm || d.layers?.some((l) => l.kind === "batchNorm")) {
    problems.push(
      "the gradient penalty is taken image by image, and batch norm in D " +
        "mixes a batch's images (Gulrajani et al. leave it out of the " +
        "critic): use a preset whose D has none (mlp, paper, sngan, sngan-fc, " +
        "keras-mlp)",
    );
  }
  if (d.layers?.at(-1)?.kind === "sigmoid") {
    problems.push(
      "D's last layer is a sigmoid, and a Wasserstein critic's score must " +
        "be unbounded: use a preset whose D ends in a linear layer",
    );
  }
  if ((config.update ?? "alternating") === "simultaneous") {
    problems.push(
      "the critic takes its k steps before G moves: use alternating " +
        "updates with --loss wgan-gp (--update alternating)",
    );
  }
  return problems;
}
