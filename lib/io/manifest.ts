/**
 * The web page's `manifest.json`: what `cli/site.ts` writes of each
 * generator under `models/`, and what `web/main.ts` reads. Types only, so
 * that the page's bundle takes nothing else from here. A manifest comes
 * from files on disk, so the page checks its values before using them.
 *
 * @module
 */

/** One generator in `manifest.json`. */
export interface ManifestEntry {
  name: string;
  /** model.json, relative to the page. */
  path: string;
  preset?: string;
  dataset?: string;
  epochs?: number;
  /** Its training in words: "20 epochs", or "the mean of epochs 10-15". */
  training?: string;
  /** "normal" or "uniform" for a generator of this project. */
  latent?: string;
  latentDim?: number;
  /** "tanh" or "sigmoid" for a generator of this project. */
  output?: string;
  /** A conditional generator's classes, and their names. */
  classes?: number;
  classNames?: string[];
  /** `deno task eval`'s figures (its `eval.json`), where the generator has them. */
  evaluation?: {
    parzen?: number;
    fid?: number;
    classes?: number;
    /** A conditional generator's share of samples of the class asked for. */
    conditionalAccuracy?: number;
    kid?: number;
    precision?: number;
    recall?: number;
    /** The data-copying test's C_T (`copying_ct`). */
    copying?: number;
  };
  /** An animation of its training (`progress.gif`), where there is one. */
  progress?: string;
}

/** What the page lists. */
export interface Manifest {
  generators: ManifestEntry[];
  /** Folders under the models folder that were left out, and why. */
  skipped: { name: string; why: string }[];
}
