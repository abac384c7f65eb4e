/**
 * A small seeded random number generator whose whole state is four 32-bit
 * integers, so a checkpoint can store it and a resumed run continues the exact
 * same sequence. Algorithm: xoshiro128** (Blackman & Vigna), seeded through
 * splitmix32 so that nearby seeds give unrelated streams.
 *
 * @module
 */

/** The serialisable state of an {@linkcode Rng}: four unsigned 32-bit integers. */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Seeded pseudo-random numbers: uniform, normal, and permutations. */
export class Rng {
  #s: Uint32Array = new Uint32Array(4);

  /**
   * @param seed any integers of at most 53 bits (safe integers); the same seed
   * always gives the same sequence, and seeds that differ in any bit (the
   * high ones included) give different ones.
   * Several integers (for example a run's seed and an epoch number) are mixed
   * into one stream, so `new Rng(seed, epoch)` differs for every epoch.
   */
  constructor(...seed: number[]) {
    if (seed.length === 0) seed = [0];
    let mixed = 0x12345678;
    // The high words of parts outside 0..2^32 - 1, mixed on their own:
    // folded into `mixed` alone, seed 2^32 + 1 gave seed 0's stream (and
    // -1 seed 0's). Parts within 0..2^32 - 1 keep the streams they had.
    let high = 0, anyHigh = false;
    for (const [i, part] of seed.entries()) {
      if (!Number.isSafeInteger(part)) {
        throw new RangeError(
          `Rng seed must be integers within +-(2^53 - 1), got ${part}`,
        );
      }
      const hi = Math.floor(part / 2 ** 32);
      mixed = splitmix32(mixed ^ (part >>> 0) ^ hi)();
      if (hi !== 0) {
        anyHigh = true;
        high = splitmix32(high ^ (hi >>> 0) ^ Math.imul(i + 1, 0x9e3779b9))();
      }
    }
    const next = splitmix32(mixed);
    for (let i = 0; i < 4; i++) this.#s[i] = next();
    if (anyHigh) {
      // (mixed, high) determines (low word, high word) of a one-part seed, so
      // two seeds below 2^53 never share both; the state takes both.
      const more = splitmix32(high ^ 0x6a09e667);
      for (let i = 0; i < 4; i++) this.#s[i] ^= more();
    }
    if (this.#s.every((v) => v === 0)) this.#s[0] = 1;
  }

  /** A copy of the state, for checkpoints. */
  getState(): RngState {
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** Restores a state returned by {@linkcode Rng.getState}. */
  setState(state: RngState): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v))) {
      throw new RangeError("Rng state must be four integers");
    }
    for (let i = 0; i < 4; i++) this.#s[i] = state[i] >>> 0;
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.#s;
    const x = Math.imul(s[1], 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return result;
  }

  /** A uniform float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * Fills `out` with standard normal samples (Box-Muller, both values of each
   * pair used). The whole state stays in {@linkcode Rng.getState}, so a
   * restored generator continues the same sequence.
   */
  fillNormal(out: Float32Array): Float32Array {
    return normalsFromUints(
      this.normalUints(new Uint32Array(2 * Math.ceil(out.length / 2))),
      out,
    );
  }

  /**
   * The draws {@linkcode Rng.fillNormal} makes for `out.length / 2` normal
   * pairs: per pair a nonzero integer for the radius (zeros are skipped),
   * then one for the angle. {@linkcode normalsFromUints} turns them into
   * the same normals; that part is the costly one and can run elsewhere
   * (`lib/random/noise_workers.ts`).
   */
  normalUints<T extends Uint32Array>(out: T): T {
    // nextUint32 with the state in locals (twice as fast here).
    const s = this.#s;
    let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    for (let i = 0; i < out.length;) {
      const x = Math.imul(s1, 5);
      const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      // A radius of 0 is skipped: its slot (even i) is drawn again.
      if (result !== 0 || (i & 1) === 1) out[i++] = result;
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
    return out;
  }

  /** Fills `out` with uniform samples in [low, high). */
  fillUniform(out: Float32Array, low = 0, high = 1): Float32Array {
    for (let i = 0; i < out.length; i++) {
      out[i] = low + (high - low) * this.next();
    }
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}

/**
 * Box-Muller on {@linkcode Rng.normalUints}'s draws: elements `from` to
 * `to` (`from` even) of `out`, each pair `r cos(theta)`, `r sin(theta)` with
 * `r = sqrt(-2 ln u1)`, `theta = 2 pi u2`, `u = draw / 2^32`. Self-contained
 * (worker threads run its source).
 */
export function normalsFromUints(
  draws: Uint32Array,
  out: Float32Array,
  from = 0,
  to = out.length,
): Float32Array {
  for (let i = from; i < to; i += 2) {
    const r = Math.sqrt(-2 * Math.log(draws[i] / 4294967296));
    const theta = 2 * Math.PI * (draws[i + 1] / 4294967296);
    out[i] = r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}
