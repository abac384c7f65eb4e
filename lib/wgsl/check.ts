/**
 * Is the WGSL step right on this GPU? It is checked against the tfjs step,
 * which runs tfjs's own kernels: both take the same training steps from the
 * same state with the same inputs, and every value of the resulting state
 * (weights, optimiser slots, batch norm's running statistics) and every
 * figure is compared.
 *
 * A software adapter (llvmpipe, where the test suite runs) executes
 * workgroups in an order a GPU does not, so a missing barrier or a race can
 * pass there and give wrong numbers on a real GPU. Training therefore runs
 * this comparison for one step before it trusts the WGSL step on a GPU
 * (`train()`'s self-check), and `bench/gpu_check.ts` runs it for three.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { asMlp } from "../nets/mlp.ts";
import {
  createGan,
  disposeGan,
  type Gan,
  ganVariables,
  playRound,
} from "../gan.ts";
import { type GanConfig, realBatchSize } from "../presets.ts";
import { labelledRows, sampleLatent } from "../nets/latent.ts";
import { logicalName } from "../nets/optim.ts";
import { Rng } from "../random/rng.ts";
import { WgslStep, type WgslStepOptions } from "./step.ts";
import { LayerStep } from "./layer_step.ts";

/**
 * How far apart two results may be: a weight's or a figure's difference
 * divided by max(1, |value|). Float32 rounding in another order stays near
 * 1e-6 after a few steps; a wrong program is off by far more.
 */
const STEP_TOLERANCE = 1e-4;

/**
 * The same for an optimiser slot (Adam's moments, SGD's momentum: the
 * gradients' traces), whose difference is divided by the largest |value|
 * among its network's slots of its kind (all of D's Adam `m`, say): the
 * gradients are compared at their own scale, far more strictly than
 * max(1, |value|) would. A gradient that is a sum nearly cancelling (the
 * output bias's) keeps rounding of about 1e-5 of that scale, hence 1e-3.
 */
export const SLOT_TOLERANCE = 1e-3;

/** The result of {@linkcode compareWithTfjs}. */
export interface StepComparison {
  /** Whether every difference is within its tolerance. */
  ok: boolean;
  /** The tolerance of the part (weights, slots, figures) furthest from its own. */
  tolerance: number;
  /** That part's largest difference (see STEP_TOLERANCE, SLOT_TOLERANCE). */
  maxDifference: number;
  /** Where it is: a variable's name and index, or a figure's name. */
  where: string;
  /** The largest difference in the weights and running statistics. */
  weights: number;
  /** The largest difference in the optimisers' slots. */
  optimizer: number;
  /** The largest difference in the figures (losses, D(x), D(G(z)), ...). */
  figures: number;
  steps: number;
  seconds: number;
}

/** Options of {@linkcode compareWithTfjs}. */
export interface CompareOptions {
  /** Training steps to take (default 1). */
  steps?: number;
  /** Seed of the inputs (default 0). */
  seed?: number;
  /** Passed to {@linkcode WgslStep.create} (not `data`: batches are uploaded). */
  wgsl?: Omit<WgslStepOptions, "data">;
  /**
   * Largest difference allowed in weights and figures (default
   * {@linkcode STEP_TOLERANCE}; the slots' scales with it).
   */
  tolerance?: number;
  /** The epoch of the first step (the schedules' input; default 0), then one more a step. */
  epoch?: number;
  /**
   * Both copies update with {@linkcode CHECK_SGD} in place of the GAN's
   * optimisers (default false): every program is compared but Adam's
   * element-wise update, without Adam's turning a gradient's rounding into
   * a step of up to lr. A network whose leaky ReLUs change their
   * derivative where rounding moves a value across 0 (`dcgan`'s) parts
   * from the tfjs step under Adam as tfjs's own backends part from each
   * other (bench/step_agreement.ts); under SGD its rounding stays small.
   */
  sgd?: boolean;
}

const FIGURES = [
  "D loss",
  "V",
  "D(x)",
  "D(G(z))",
  "acc real",
  "acc fake",
  "G loss",
];

/**
 * A copy of `gan`'s whole state (weights, slots, step counts) in new
 * variables; with `sgd`, its networks only (and G's average), updated by
 * {@linkcode CHECK_SGD} from fresh slots.
 */
function cloneGan(gan: Gan, sgd = false): Gan {
  const config = sgd
    ? { ...gan.config, optimizerG: CHECK_SGD, optimizerD: CHECK_SGD }
    : gan.config;
  const copy = createGan(config, { seed: 0 });
  // Under SGD the copy's slots are SGD's own: only the networks are copied.
  const state = (g: Gan) =>
    sgd
      ? [
        ...g.generator.variables,
        ...g.discriminator.variables,
        ...g.generatorEma?.variables ?? [],
      ]
      : ganVariables(g);
  const from = state(gan), to = state(copy);
  tf.tidy(() => to.forEach((v, i) => v.assign(from[i])));
  if (!sgd) {
    copy.optimizerG.step = gan.optimizerG.step;
    copy.optimizerD.step = gan.optimizerD.step;
  }
  return copy;
}

/**
 * The optimiser of {@linkcode CompareOptions.sgd}: plain SGD with momentum,
 * at a rate that moves the weights as much as Adam's first steps do.
 */
export const CHECK_SGD = { kind: "sgd", lr: 0.01, momentum: 0.5 } as const;

/** One of the two runs compared: the GAN it trained and its figure sums. */
export interface Run {
  gan: Gan;
  figures: ArrayLike<number>;
}

/** One training step's inputs, the same for both implementations. */
export interface StepInputs {
  /** Real images in the data's range. */
  real: Float32Array;
  /** D's noise. */
  zD: Float32Array;
  /** G's noise (unused by simultaneous updates). */
  zG: Float32Array;
  /** Seed of D's dropout masks. */
  dSeed: number;
  /** Seed of G's update's masks. */
  gSeed: number;
  /** A conditional GAN's batch classes (both players' and the images'). */
  labels?: Uint8Array;
}

/**
 * The tfjs step (tfjs's own kernels) over `inputs`, on `gan`: one round of
 * {@linkcode playRound} each, G's update on `zG` with masks from `gSeed`
 * (k = 1). Returns the figures' sums in the WGSL step's order.
 */
export async function playTfjsRounds(
  gan: Gan,
  inputs: readonly StepInputs[],
  epoch0: number,
): Promise<Run> {
  const config = gan.config;
  const sums = new Float64Array(7);
  // A conditional GAN: each row followed by its one-hot class, as
  // lib/rounds.ts gives them (the images' classes asked of G too).
  const classes = config.classes ?? 0;
  const rows = (x: Float32Array, dim: number, labels?: Uint8Array) =>
    labelledRows(x, labels, dim, classes);
  for (const [i, s] of inputs.entries()) {
    const real = rows(s.real, 784, s.labels);
    const noise = rows(s.zD, config.latentDim, s.labels);
    const zG = rows(s.zG, config.latentDim, s.labels);
    const simultaneous = config.update === "simultaneous";
    const r = playRound(gan, {
      real,
      noise,
      masks: s.dSeed,
      epoch: epoch0 + i,
      generator: simultaneous ? [] : [{ noise: zG, masks: s.gSeed }],
    });
    const figures = [
      r.loss,
      r.value,
      r.dReal,
      r.dFake,
      r.accReal,
      r.accFake,
      r.gLosses[0],
    ];
    const values = await Promise.all(figures.map((f) => f.data()));
    values.forEach((v, k) => sums[k] += v[0]);
    tf.dispose([real, noise, zG, ...figures]);
  }
  return { gan, figures: sums };
}

/** Whether a GAN's networks are layer lists (the convolutional presets). */
function layered(config: GanConfig): boolean {
  return !!(config.generator.layers || config.discriminator.layers);
}

/** The WGSL step over `inputs`, on `gan` (its state written back at the end). */
export async function runWgsl(
  gan: Gan,
  inputs: readonly StepInputs[],
  epoch0: number,
  options: Omit<WgslStepOptions, "data">,
): Promise<Run> {
  using wgsl = layered(gan.config)
    ? await LayerStep.create(gan, options)
    : await WgslStep.create(gan, options);
  const simultaneous = gan.config.update === "simultaneous";
  for (const [i, s] of inputs.entries()) {
    const epoch = epoch0 + i;
    wgsl.step(
      simultaneous
        ? { real: s.real, zD: s.zD, dSeed: s.dSeed, labels: s.labels, epoch }
        : { ...s, epoch },
    );
  }
  const figures = await wgsl.figures();
  await wgsl.exportTo(gan);
  return { gan, figures };
}

/**
 * Compares run `got` with run `want`: every value of the state and every
 * figure, with the measure of {@linkcode STEP_TOLERANCE}. The two may be on
 * different backends (bench/step_agreement.ts compares tfjs's own).
 */
export async function compareRuns(
  got: Run,
  want: Run,
  o: { tolerance: number; steps: number; started: number },
): Promise<StepComparison> {
  const result = {
    weights: { max: 0, where: "" },
    optimizer: { max: 0, where: "" },
    figures: { max: 0, where: "" },
  };
  // An accuracy counts the rows whose logit is on one side of 0, and a
  // logit within rounding of 0 (D's logits start there, and stay there in
  // a game as symmetric as the hinge's) falls on either: the accuracies may
  // differ by a few rows, 1% of the rows seen or one row, whichever is more.
  const B = want.gan.config.batchSize;
  const flips = Math.max(1, Math.ceil(0.01 * B * o.steps)) / B;
  for (let k = 0; k < FIGURES.length; k++) {
    const accuracy = FIGURES[k].startsWith("acc");
    worse(
      result.figures,
      got.figures[k],
      want.figures[k],
      FIGURES[k],
      // (With a tolerance of 0, the accuracies too must agree exactly.)
      accuracy && o.tolerance > 0 ? flips / o.tolerance : undefined,
    );
  }
  // Batch norm cancels the biases before it: their gradient is rounding
  // noise around 0, which Adam turns into steps of up to lr either way,
  // different noise on each path, and nothing depends on them. They are
  // left out of the comparison.
  // (In a layer list: the bias of a layer right before batch norm.)
  const G = want.gan.generator;
  const bnBias = layered(want.gan.config)
    ? G.descs.flatMap((_, i) =>
      G.descs[i + 1]?.kind === "batchNorm" && G.vars[i].bias
        ? [logicalName(G.vars[i].bias!)]
        : []
    )
    : asMlp(G).specs.flatMap((s, l) => s.batchNorm ? [`G/${l}/bias`] : []);
  const a = ganVariables(got.gan), b = ganVariables(want.gan);
  const slots = new Set([
    ...want.gan.optimizerG.slots,
    ...want.gan.optimizerD.slots,
  ]);
  const [x, y] = await Promise.all([
    Promise.all(a.map((v) => v.data())),
    Promise.all(b.map((v) => v.data())),
  ]);
  // A slot's scale: the largest |value| of its network's slots of its kind
  // (D's Adam m, say). A single slot can be a sum that nearly cancels (the
  // output bias's gradient), small beside its rounding: its own largest
  // value would be no scale for it.
  const kind = (name: string) => name.replace(/^(\w+)\/.*\/(\w+)$/, "$1 $2");
  const scales = new Map<string, number>();
  b.forEach((v, i) => {
    if (!slots.has(v)) return;
    const k = kind(logicalName(v));
    let m = scales.get(k) ?? 0;
    for (const value of y[i]) m = Math.max(m, Math.abs(value));
    scales.set(k, m);
  });
  for (let i = 0; i < a.length; i++) {
    const name = logicalName(b[i]);
    if (bnBias.some((n) => name.includes(n))) continue;
    const slot = slots.has(b[i]);
    const into = slot ? result.optimizer : result.weights;
    const scale = slot ? scales.get(kind(name)) : undefined;
    for (let j = 0; j < x[i].length; j++) {
      worse(into, x[i][j], y[i][j], `${name}[${j}]`, scale);
    }
  }
  const slotTolerance = o.tolerance * (SLOT_TOLERANCE / STEP_TOLERANCE);
  const all = [
    { ...result.weights, tolerance: o.tolerance },
    { ...result.optimizer, tolerance: slotTolerance },
    { ...result.figures, tolerance: o.tolerance },
  ];
  // The part furthest from its tolerance.
  const top = all.reduce((p, q) =>
    q.max / q.tolerance > p.max / p.tolerance ? q : p
  );
  return {
    ok: all.every((p) => p.max <= p.tolerance),
    tolerance: top.tolerance,
    maxDifference: top.max,
    where: top.where,
    weights: result.weights.max,
    optimizer: result.optimizer.max,
    figures: result.figures.max,
    steps: o.steps,
    seconds: (performance.now() - o.started) / 1000,
  };
}

/**
 * Takes `steps` training steps with the WGSL step and with the tfjs step,
 * each on its own copy of `gan` (which is left as it is), from the same
 * inputs (uniform images in the data's range, noise and dropout seeds from
 * `seed`), and compares the results. Runs on the WebGPU backend.
 */
export async function compareWithTfjs(
  gan: Gan,
  options: CompareOptions = {},
): Promise<StepComparison> {
  const started = performance.now();
  const steps = options.steps ?? 1;
  const inputs = stepInputs(gan.config, steps, options.seed ?? 0);
  const epoch = options.epoch ?? 0;
  const sgd = options.sgd ?? false;
  const ref = cloneGan(gan, sgd), mine = cloneGan(gan, sgd);
  try {
    const want = await playTfjsRounds(ref, inputs, epoch);
    const got = await runWgsl(mine, inputs, epoch, options.wgsl ?? {});
    return await compareRuns(got, want, {
      tolerance: options.tolerance ?? STEP_TOLERANCE,
      steps,
      started,
    });
  } finally {
    disposeGan(ref);
    disposeGan(mine);
  }
}

/**
 * Takes `steps` WGSL steps with the matMul programs chosen by shape (wide
 * tiles, split K) and with the plain 64 x 64 tiles, each on its own copy of
 * `gan`, and compares the results: wide tiles add each product's terms in
 * the same order (the same bits); split K sums partial products (rounding).
 */
export async function compareWithPlainPlan(
  gan: Gan,
  options: Omit<CompareOptions, "wgsl"> = {},
): Promise<StepComparison> {
  const started = performance.now();
  const steps = options.steps ?? 1;
  const inputs = stepInputs(gan.config, steps, options.seed ?? 0);
  const epoch = options.epoch ?? 0;
  const plain = cloneGan(gan), auto = cloneGan(gan);
  try {
    const want = await runWgsl(plain, inputs, epoch, { matMul: "plain" });
    const got = await runWgsl(auto, inputs, epoch, { matMul: "auto" });
    return await compareRuns(got, want, {
      tolerance: options.tolerance ?? STEP_TOLERANCE,
      steps,
      started,
    });
  } finally {
    disposeGan(plain);
    disposeGan(auto);
  }
}

/** Keeps the larger difference in `into`; NaN on either side counts as infinite. */
function worse(
  into: { max: number; where: string },
  got: number,
  want: number,
  where: string,
  /** A slot's scale (see STEP_TOLERANCE); else max(1, |want|) is used. */
  scale?: number,
) {
  const by = scale === undefined
    ? Math.max(1, Math.abs(want))
    : Math.max(scale, 1e-30);
  let d = Math.abs(got - want) / by;
  if (Number.isNaN(d)) d = Object.is(got, want) ? 0 : Infinity;
  if (d > into.max) {
    into.max = d;
    into.where = `${where}: ${got} vs ${want}`;
  }
}

/** Inputs of `steps` steps: images in the data's range, noise, dropout seeds. */
export function stepInputs(
  config: GanConfig,
  steps: number,
  seed: number,
): StepInputs[] {
  const rng = new Rng(seed, 7);
  const B = config.batchSize;
  // D's real images and noise: half a batch with halfBatchD.
  const H = realBatchSize(config);
  const low = config.output === "tanh" ? -1 : 0;
  const classes = config.classes ?? 0;
  return Array.from({ length: steps }, () => {
    const real = rng.fillUniform(new Float32Array(H * 784), low, 1);
    const zD = sampleLatent(config, H, rng), zG = sampleLatent(config, B, rng);
    const dSeed = rng.nextUint32(), gSeed = rng.nextUint32();
    // A reused round: G's step on D's noise and masks.
    const reuse = config.update === "reuse";
    return {
      real,
      zD,
      zG: reuse ? zD : zG,
      dSeed,
      gSeed: reuse ? dSeed : gSeed,
      ...(classes
        ? {
          labels: Uint8Array.from(
            { length: B },
            () => rng.nextUint32() % classes,
          ),
        }
        : {}),
    };
  });
}

/** One line for a log: "agrees within 3.1e-7 (1 step, 0.4 s)" or what differs. */
export function describeComparison(c: StepComparison): string {
  const n = `${c.steps} step${c.steps > 1 ? "s" : ""}`;
  return c.ok
    ? `agrees with the tfjs step within ${c.maxDifference.toExponential(1)} ` +
      `(${n}, ${c.seconds.toFixed(1)} s)`
    : `differs from the tfjs step by ${c.maxDifference.toExponential(1)} ` +
      `(more than ${c.tolerance}) at ${c.where} after ${n}`;
}
