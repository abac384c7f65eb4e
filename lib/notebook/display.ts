/**
 * Showing pictures in a Jupyter notebook run by the Deno kernel: PNG outputs
 * (an SVG figure is rendered to one), and one display updated in place (a training run's live view),
 * instead of a new output per epoch. Outside the kernel (a script, a test)
 * nothing is shown unless a `send` function is given.
 *
 * @module
 */

import { svgToPng } from "../pictures/figures.ts";

/** A Jupyter MIME bundle: MIME type -> content (images base64-encoded). */
export type MimeBundle = Record<string, string>;

/** Sends a bundle to the front end; `update` replaces display `id`. */
export type Send = (
  bundle: MimeBundle,
  options: { id: string; update: boolean },
) => Promise<void>;

type Jupyter = {
  display(
    obj: unknown,
    options: { raw: boolean; display_id?: string; update?: boolean },
  ): Promise<void>;
};

/** `Deno.jupyter`; reading it outside the kernel throws. */
const jupyter: Jupyter | undefined = (() => {
  try {
    // deno-lint-ignore no-explicit-any
    return (Deno as any).jupyter as Jupyter;
  } catch {
    return undefined;
  }
})();

/** Whether this code runs in the Deno Jupyter kernel. */
export const inKernel: boolean = jupyter !== undefined;

const kernelSend: Send = async (bundle, { id, update }) => {
  await jupyter?.display(bundle, { raw: true, display_id: id, update });
};

/** Base64 of bytes (chunked: spreading a large array overflows the stack). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** The bundle of a PNG image, with a text description for plain viewers. */
export function pngBundle(png: Uint8Array, text = "[image]"): MimeBundle {
  return { "image/png": base64(png), "text/plain": text };
}

/**
 * The bundle of an SVG image, as a PNG rendering of it (at twice its size,
 * for sharp screens) and no SVG: Jupyter shows SVG only in notebooks the
 * user has trusted, and nbconvert's HTML (and GitHub's and other viewers
 * built on it) prefers SVG to PNG and sanitises it, stripping the
 * `<g transform>` groups that place a figure's panels, so an SVG beside
 * the PNG would show as an empty box there. A PNG shows everywhere.
 */
function svgBundle(svg: string, text = "[figure]"): MimeBundle {
  return pngBundle(svgToPng(svg), text);
}

/**
 * A value that the Deno kernel displays as the bundle when it ends a cell
 * (the kernel looks for `Symbol.for("Jupyter.display")`).
 */
function displayable(
  bundle: MimeBundle,
): { [k: symbol]: () => MimeBundle } {
  return { [Symbol.for("Jupyter.display")]: () => bundle };
}

/** A PNG as a cell's result: `png(bytes)` as the last line of a cell shows it. */
export function png(bytes: Uint8Array, text?: string) {
  return displayable(pngBundle(bytes, text));
}

/** An SVG as a cell's result. */
export function svg(markup: string, text?: string) {
  return displayable(svgBundle(markup, text));
}

let displays = 0;

/**
 * One output that is replaced on every {@linkcode LiveDisplay.update}: the
 * first update creates it, later ones rewrite it in place.
 */
export class LiveDisplay {
  readonly id: string;
  #shown = false;
  #send: Send;

  /** @param send where bundles go (default: the Deno kernel, if any). */
  constructor(send: Send = kernelSend) {
    this.id = `live-${Date.now().toString(36)}-${displays++}`;
    this.#send = send;
  }

  /** Shows `bundle`, replacing what this display showed before. */
  async update(bundle: MimeBundle): Promise<void> {
    await this.#send(bundle, { id: this.id, update: this.#shown });
    this.#shown = true;
  }
}
