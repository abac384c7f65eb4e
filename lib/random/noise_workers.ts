/**
 * Normal noise computed by worker threads.
 *
 * A training step draws two batches of normal noise on the CPU. The
 * integers are cheap (about 5 ns each), but Box-Muller's logarithm, sine
 * and cosine are not: at batch 8192 the two batches cost ~75 ms on one
 * core, more than the rest of a step on a GPU. So the training loop draws
 * the integers in order on its own thread ({@linkcode Rng.normalUints},
 * which keeps the generator's sequence) and worker threads turn them into
 * normals with {@linkcode normalsFromUints}, the very function
 * {@linkcode Rng.fillNormal} uses: the noise is the same to the bit.
 *
 * @module
 */

import { normalsFromUints, type Rng } from "./rng.ts";

/** The worker's program: `normalsFromUints` over a slice. */
const WORKER_SOURCE = `const normalsFromUints = ${normalsFromUints.toString()};
self.onmessage = (e) => {
  const { id, draws, out, from, to } = e.data;
  normalsFromUints(draws, out, from, to);
  self.postMessage(id);
};`;

/** Options of {@linkcode NoiseWorkers.create}. */
export interface NoiseWorkersOptions {
  /**
   * Worker threads; default one per core but one (for the training loop),
   * at least 1 and at most 8.
   */
  workers?: number;
}

/** A pool of worker threads that compute normal noise. */
export class NoiseWorkers {
  #workers: Worker[];
  #url: string;
  #pending = new Map<
    number,
    { resolve: () => void; reject: (e: Error) => void }
  >();
  #next = 0;

  private constructor(count: number) {
    this.#url = URL.createObjectURL(
      new Blob([WORKER_SOURCE], { type: "text/javascript" }),
    );
    this.#workers = Array.from({ length: count }, () => {
      const w = new Worker(this.#url, { type: "module" });
      w.onmessage = (e: MessageEvent<number>) => {
        this.#pending.get(e.data)?.resolve();
        this.#pending.delete(e.data);
      };
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#fail(new Error(`a noise worker failed: ${e.message}`));
      };
      return w;
    });
  }

  /**
   * Whether worker threads can share the noise: a page that is not
   * cross-origin isolated has no `SharedArrayBuffer` (the caller then draws
   * the noise on its own thread, the same numbers).
   */
  static get available(): boolean {
    return typeof SharedArrayBuffer !== "undefined";
  }

  /** Starts the worker threads. */
  static create(options: NoiseWorkersOptions = {}): NoiseWorkers {
    const cores = navigator.hardwareConcurrency ?? 2;
    const count = options.workers ?? Math.min(8, Math.max(1, cores - 1));
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`workers must be a positive integer, got ${count}`);
    }
    return new NoiseWorkers(count);
  }

  /** The number of worker threads. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * `n` standard normals, the same as `rng.fillNormal(new Float32Array(n))`
   * would give: the integers are drawn from `rng` now (so later draws from
   * `rng` follow them, as after `fillNormal`), the normals computed by the
   * workers, each a slice.
   */
  normals(rng: Rng, n: number): Promise<Float32Array> {
    if (this.#workers.length === 0) {
      throw new Error("the noise workers were stopped");
    }
    const pairs = Math.ceil(n / 2);
    const draws = rng.normalUints(
      new Uint32Array(new SharedArrayBuffer(8 * Math.max(1, pairs))),
    );
    const out = new Float32Array(new SharedArrayBuffer(4 * Math.max(1, n)))
      .subarray(0, n);
    const per = Math.ceil(pairs / this.#workers.length);
    const slices = this.#workers.map((w, k) => {
      const from = 2 * Math.min(pairs, k * per);
      const to = Math.min(n, 2 * Math.min(pairs, (k + 1) * per));
      if (from >= to) return Promise.resolve();
      const id = this.#next++;
      return new Promise<void>((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        w.postMessage({ id, draws, out, from, to });
      });
    });
    // A copy in ordinary memory: WebGPU's writeBuffer refuses shared memory.
    return Promise.all(slices).then(() => out.slice());
  }

  #fail(error: Error): void {
    for (const job of this.#pending.values()) job.reject(error);
    this.#pending.clear();
  }

  /** Stops the worker threads (unfinished noise is refused). */
  dispose(): void {
    this.#fail(new Error("the noise workers were stopped"));
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    URL.revokeObjectURL(this.#url);
  }

  /** {@linkcode dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
