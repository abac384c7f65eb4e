/**
 * The notebooks' parameters: environment variables (`GAN_EPOCHS=2 jupyter
 * notebook notebooks/`, `deno task notebooks --quick`) read in each
 * notebook's first code cell and checked there, so that a value that
 * cannot work stops the notebook at its first cell, naming the variable,
 * its value and what it must be, instead of failing cells later. Everything
 * a parameter cell needs comes from this one module; `deno task notebooks`
 * runs the parameter cells before it starts a kernel, so the same checks
 * refuse a bad value in a second.
 *
 * @module
 */

export { BACKEND_CHOICES } from "../backends/choice.ts";
export { DATASET_NAMES } from "../data.ts";
export { PRESETS } from "../presets.ts";

/**
 * Training images a notebook can train on: MNIST's and Fashion-MNIST's
 * 60,000, less the 10,000 that training keeps out for the evaluation
 * (`DEFAULT_HOLDOUT` in lib/run/split.ts). `limit` takes the first N of them.
 */
export const TRAINING_IMAGES = 50000;

/**
 * Fewest samples a notebook evaluates: one KID subset, as `evaluateImages`
 * requires (`MIN_SAMPLES` in lib/eval/evaluate.ts, not imported here so that
 * a parameter cell loads no network code).
 */
export const MIN_EVAL_SAMPLES = 1000;

/** A notebook parameter with a value that cannot work; the message says why. */
export class NotebookParameterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotebookParameterError";
  }
}

/** The values {@linkcode envInt} accepts. */
export interface IntRange {
  /** The smallest value (default 1). */
  min?: number;
  /** The largest value (default: none). */
  max?: number;
  /**
   * What 0 means, when 0 is allowed besides `min`..`max` (GAN_LIMIT: "every
   * training image").
   */
  zero?: string;
}

function quoted(value: string): string {
  return JSON.stringify(value);
}

/** "an integer >= 1", "0 (every training image) or an integer from 100 to 50000". */
function describeRange(range: IntRange): string {
  const min = range.min ?? 1, max = range.max ?? Infinity;
  const ints = max === Infinity
    ? min === 1 ? "a positive integer" : `an integer >= ${min}`
    : `an integer from ${min} to ${max}`;
  return range.zero === undefined ? ints : `0 (${range.zero}) or ${ints}`;
}

/**
 * The integer parameter in the environment variable `name`, or `fallback`
 * (the notebook's own value) when the variable is not set:
 * `envInt("GAN_EPOCHS", 10)`, `envInt("GAN_LIMIT", 0, { zero: "every
 * training image", min: 100, max: TRAINING_IMAGES })`.
 *
 * @throws {NotebookParameterError} when the variable is set (empty
 *   included) to anything but an integer in the range, naming the variable,
 *   its value, what it must be and the notebook's own value.
 */
export function envInt(
  name: string,
  fallback: number,
  range: IntRange = {},
): number {
  const value = Deno.env.get(name);
  if (value === undefined) return fallback;
  const n = Number(value);
  const min = range.min ?? 1, max = range.max ?? Infinity;
  const ok = value.trim() !== "" && Number.isSafeInteger(n) &&
    ((n >= min && n <= max) || (n === 0 && range.zero !== undefined));
  if (!ok) {
    throw new NotebookParameterError(
      `${name} must be ${describeRange(range)}, got ${quoted(value)} ` +
        `(unset it to use the notebook's value, ${fallback})`,
    );
  }
  return n;
}

/**
 * The parameter in the environment variable `name`, one of `choices`, or
 * `fallback` when the variable is not set:
 * `envChoice("GAN_BACKEND", "auto", BACKEND_CHOICES)`.
 *
 * @throws {NotebookParameterError} when the variable is set (empty
 *   included) to anything else, naming the variable, its value and the
 *   choices.
 */
export function envChoice<T extends string>(
  name: string,
  fallback: NoInfer<T>,
  choices: readonly T[],
): T {
  const value = Deno.env.get(name);
  if (value === undefined) return fallback;
  if (!choices.includes(value as T)) {
    throw new NotebookParameterError(
      `${name} must be one of ${choices.join(", ")}, got ${quoted(value)} ` +
        `(unset it to use the notebook's value, ${fallback})`,
    );
  }
  return value as T;
}
