/**
 * The paper's Figure 1 in one dimension: data from a Gaussian, a generator
 * that maps uniform noise z onto the line, and a discriminator whose curve
 * D(x) can be compared with the optimal D*(x) = p_data / (p_data + p_g)
 * (Proposition 1). Small enough to train in seconds on any backend, and
 * exact enough to check Theorem 1 numerically: C(G) = -log 4 + 2 JSD.
 *
 * The networks, losses and optimiser are the project's own (lib/gan.ts,
 * lib/nets/optim.ts); only the data and the sizes are one-dimensional.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { asMlp, type LayerSpec, mlpNet } from "./nets/mlp.ts";
import { discriminatorLoss, generatorLoss } from "./gan.ts";
import { type LayerNet } from "./nets/layer_net.ts";
import { Optimizer } from "./nets/optim.ts";
import { Rng } from "./random/rng.ts";
import type { DensityPanel } from "./pictures/figures.ts";

/** Options of {@linkcode ToyGan}. */
export interface ToyOptions {
  /** Seed of the weights and of every batch (default 0). */
  seed?: number;
  /** Mean of the data Gaussian (default 1). */
  dataMean?: number;
  /** Standard deviation of the data Gaussian (default 0.4). */
  dataStd?: number;
  /** Samples of each kind per step (default 512). */
  batchSize?: number;
  /** Hidden units of each network (default 32, tanh). */
  hidden?: number;
  /** Adam learning rate of D (default 1e-3). */
  lr?: number;
  /**
   * Adam learning rate of G (default 2e-4). Slower than D's, so that D
   * stays close to D* while G moves, the regime the paper's argument needs.
   */
  gLr?: number;
  /** Factor on G's initial output weights (default 4). */
  gInitScale?: number;
  /** Plotting range of x (default [-1.5, 3]). */
  xRange?: [number, number];
}

/**
 * One panel of Figure 1: the curves on a grid of x and the z -> x mapping
 * ({@linkcode DensityPanel}), and the game's figures at that moment.
 */
export interface ToyPanel extends DensityPanel {
  /** V(D, G) by numerical integration over the grid. */
  value: number;
  /** C(G) = V(D*, G), by numerical integration. */
  criterion: number;
  /** Jensen-Shannon divergence between p_data and p_g. */
  jsd: number;
  /** Generator and discriminator steps taken so far. */
  gSteps: number;
  dSteps: number;
}

const GRID = 361;
const DENSITY_SAMPLES = 20000;
const EPS = 1e-12;

function gaussian(x: number, mean: number, std: number): number {
  const u = (x - mean) / std;
  return Math.exp(-0.5 * u * u) / (std * Math.sqrt(2 * Math.PI));
}

/**
 * The virtual training criterion of Theorem 1 on a grid with spacing `dx`:
 * C(G) = integral of p_data log D* + p_g log(1 - D*), and the JSD, so that
 * the identity C(G) = -log 4 + 2 JSD(p_data || p_g) can be checked.
 */
export function virtualCriterion(
  pData: ArrayLike<number>,
  pG: ArrayLike<number>,
  dx: number,
): { criterion: number; jsd: number } {
  let c = 0, klData = 0, klG = 0;
  for (let i = 0; i < pData.length; i++) {
    const p = pData[i], q = pG[i], m = (p + q) / 2;
    if (p > EPS) {
      c += p * Math.log(p / (p + q));
      klData += p * Math.log(p / m);
    }
    if (q > EPS) {
      c += q * Math.log(q / (p + q));
      klG += q * Math.log(q / m);
    }
  }
  return { criterion: c * dx, jsd: 0.5 * (klData + klG) * dx };
}

/** A 1-D GAN that records the panels of Figure 1 as it trains. */
export class ToyGan {
  readonly generator: LayerNet;
  readonly discriminator: LayerNet;
  readonly grid: number[];
  readonly pData: number[];
  gSteps = 0;
  dSteps = 0;
  #optG: Optimizer;
  #optD: Optimizer;
  #rng: Rng;
  #opts: Required<ToyOptions>;

  constructor(options: ToyOptions = {}) {
    this.#opts = {
      seed: 0,
      dataMean: 1,
      dataStd: 0.4,
      batchSize: 512,
      hidden: 32,
      lr: 1e-3,
      gLr: 2e-4,
      gInitScale: 4,
      xRange: [-1.5, 3],
      ...options,
    };
    const o = this.#opts;
    this.#rng = new Rng(o.seed, 0x70f);
    const layer = (
      inputs: number,
      units: number,
      activation: LayerSpec["activation"],
    ): LayerSpec => ({
      inputs,
      units,
      activation,
      pieces: 1,
      batchNorm: false,
      dropout: 0,
    });
    const net = (inputs: number): LayerSpec[] => [
      layer(inputs, o.hidden, "tanh"),
      layer(o.hidden, o.hidden, "tanh"),
      layer(o.hidden, 1, "linear"),
    ];
    this.generator = mlpNet("toyG", net(1), undefined, this.#rng);
    this.discriminator = mlpNet("toyD", net(1), undefined, this.#rng);
    // Widen G's initial output (PyTorch's init maps all of z into a sliver
    // of width ~0.3), so that p_g starts as a spread-out density beside
    // p_data, as in the paper's panel (a).
    const out = asMlp(this.generator).layers.at(-1)!.kernel;
    tf.tidy(() => out.assign(tf.mul(out, o.gInitScale)));
    const adam = { kind: "adam" as const, lr: o.lr, beta1: 0.5, beta2: 0.999 };
    this.#optG = new Optimizer(
      { ...adam, lr: o.gLr },
      this.generator.trainable,
      "toyOptG",
    );
    this.#optD = new Optimizer(adam, this.discriminator.trainable, "toyOptD");
    const [lo, hi] = o.xRange;
    this.grid = Array.from(
      { length: GRID },
      (_, i) => lo + (hi - lo) * i / (GRID - 1),
    );
    this.pData = this.grid.map((x) => gaussian(x, o.dataMean, o.dataStd));
  }

  #noise(n: number): tf.Tensor2D {
    return tf.tensor2d(
      this.#rng.fillUniform(new Float32Array(n), -1, 1),
      [n, 1],
    );
  }

  #data(n: number): tf.Tensor2D {
    const x = this.#rng.fillNormal(new Float32Array(n));
    for (let i = 0; i < n; i++) {
      x[i] = this.#opts.dataMean + this.#opts.dataStd * x[i];
    }
    return tf.tensor2d(x, [n, 1]);
  }

  /** `steps` discriminator updates with G fixed (the inner loop of Algorithm 1). */
  trainD(steps: number): void {
    const n = this.#opts.batchSize;
    for (let s = 0; s < steps; s++) {
      tf.tidy(() => {
        const real = this.#data(n);
        const fake = this.generator.apply(this.#noise(n), { training: true });
        const { grads } = tf.variableGrads(
          () =>
            discriminatorLoss(
              this.discriminator.apply(real, { training: true }),
              this.discriminator.apply(fake, { training: true }),
            ),
          this.discriminator.trainable,
        );
        this.#optD.apply(grads, 1);
      });
      this.dSteps++;
    }
  }

  /** `steps` generator updates with D fixed (non-saturating loss). */
  trainG(steps: number): void {
    const n = this.#opts.batchSize;
    for (let s = 0; s < steps; s++) {
      tf.tidy(() => {
        const z = this.#noise(n);
        const { grads } = tf.variableGrads(
          () =>
            generatorLoss(
              this.discriminator.apply(
                this.generator.apply(z, { training: true }),
                { training: true },
              ),
            ),
          this.generator.trainable,
        );
        this.#optG.apply(grads, 1);
      });
      this.gSteps++;
    }
  }

  /** Algorithm 1: `rounds` times, k steps of D then one step of G. */
  play(rounds: number, k = 1): void {
    for (let r = 0; r < rounds; r++) {
      this.trainD(k);
      this.trainG(1);
    }
  }

  /** G's density on the grid: a Gaussian kernel estimate from many G(z). */
  generatorDensity(): number[] {
    const m = DENSITY_SAMPLES;
    const zs = Float32Array.from(
      { length: m },
      (_, i) => -1 + 2 * (i + 0.5) / m,
    );
    const gz = tf.tidy(() =>
      this.generator.apply(tf.tensor2d(zs, [m, 1]), { training: false })
        .dataSync()
    );
    const [lo, hi] = this.#opts.xRange;
    const dx = (hi - lo) / (GRID - 1);
    // Bin, then smooth with a Gaussian of 1.5 grid steps.
    const bins = new Float64Array(GRID);
    for (const v of gz) {
      const b = Math.round((v - lo) / dx);
      if (b >= 0 && b < GRID) bins[b] += 1 / (m * dx);
    }
    const h = 1.5, reach = Math.ceil(4 * h);
    const kernel = Array.from(
      { length: 2 * reach + 1 },
      (_, i) => Math.exp(-0.5 * ((i - reach) / h) ** 2),
    );
    const norm = kernel.reduce((a, b) => a + b, 0);
    return this.grid.map((_, i) => {
      let s = 0;
      for (let j = -reach; j <= reach; j++) {
        if (i + j >= 0 && i + j < GRID) s += bins[i + j] * kernel[j + reach];
      }
      return s / norm;
    });
  }

  /** D(x) on the grid. */
  discriminatorCurve(): number[] {
    return tf.tidy(() =>
      Array.from(
        tf.sigmoid(
          this.discriminator.apply(
            tf.tensor2d(this.grid, [GRID, 1]),
            { training: false },
          ),
        ).dataSync(),
      )
    );
  }

  /** The current state as a panel of Figure 1. */
  snapshot(label: string, caption: string): ToyPanel {
    const pG = this.generatorDensity();
    const d = this.discriminatorCurve();
    const dStar = this.grid.map((_, i) => {
      const s = this.pData[i] + pG[i];
      return s > 0.02 ? this.pData[i] / s : NaN;
    });
    const [lo, hi] = this.#opts.xRange;
    const dx = (hi - lo) / (GRID - 1);
    let value = 0;
    for (let i = 0; i < GRID; i++) {
      const di = Math.min(Math.max(d[i], EPS), 1 - EPS);
      value += (this.pData[i] * Math.log(di) + pG[i] * Math.log(1 - di)) * dx;
    }
    const z = Array.from({ length: 21 }, (_, i) => -1 + 2 * (i + 0.5) / 21);
    const gz = tf.tidy(() =>
      Array.from(
        this.generator.apply(tf.tensor2d(z, [z.length, 1]), {
          training: false,
        }).dataSync(),
      )
    );
    return {
      label,
      caption,
      x: this.grid,
      pData: this.pData,
      pG,
      d,
      dStar,
      z,
      gz,
      value,
      ...virtualCriterion(this.pData, pG, dx),
      gSteps: this.gSteps,
      dSteps: this.dSteps,
    };
  }

  /** Frees the variables. */
  dispose(): void {
    this.generator.dispose();
    this.discriminator.dispose();
    this.#optG.dispose();
    this.#optD.dispose();
  }
}

/** How long each stage of {@linkcode figure1} trains. */
export interface Figure1Options extends ToyOptions {
  /** D steps before panel (a): a partially accurate D (default 25). */
  warmup?: number;
  /** D steps with G fixed before panel (b) (default 1500). */
  innerSteps?: number;
  /** G steps with D fixed before panel (c) (default 20). */
  gUpdate?: number;
  /** Rounds of Algorithm 1 before panel (d) (default 3000). */
  rounds?: number;
  /**
   * D steps per round (Algorithm 1's k, default 5): with k = 1 the toy
   * oscillates around the data for thousands of rounds; with D kept near
   * D*, G's gradient points the way the theory says.
   */
  k?: number;
}

/**
 * Trains a toy GAN through the four stages of the paper's Figure 1 and
 * returns one panel per stage: (a) a partially accurate D; (b) D trained
 * towards D* with G fixed; (c) G moved by D's gradient; (d) after many
 * rounds, p_g close to p_data and D close to 1/2.
 */
export function figure1(options: Figure1Options = {}): ToyPanel[] {
  const gan = new ToyGan(options);
  try {
    const panels: ToyPanel[] = [];
    gan.trainD(options.warmup ?? 25);
    panels.push(gan.snapshot("(a)", "D partially accurate"));
    gan.trainD(options.innerSteps ?? 1500);
    panels.push(gan.snapshot("(b)", "D trained towards D*"));
    gan.trainG(options.gUpdate ?? 20);
    panels.push(gan.snapshot("(c)", "G follows D's gradient"));
    gan.play(options.rounds ?? 3000, options.k ?? 5);
    panels.push(gan.snapshot("(d)", "after many rounds"));
    return panels;
  } finally {
    gan.dispose();
  }
}
