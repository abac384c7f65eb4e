/**
 * MNIST and Fashion-MNIST in memory: their names and classes, splits of
 * bytes, and seeded mini-batches in the order every run draws them.
 *
 * Nothing here touches a file: `lib/data.ts` loads the datasets from disk,
 * npm or a download on the command line, and the web page from its server;
 * both train from the same splits and batches.
 *
 * @module
 */

import { expectDims, IdxError } from "./io/idx_format.ts";
import { Rng } from "./random/rng.ts";

/** The datasets the project trains on. */
export const DATASET_NAMES = ["mnist", "fashion"] as const;
/** `"mnist"` or `"fashion"`. */
export type DatasetName = typeof DATASET_NAMES[number];

/** Side of the square images. */
export const IMAGE_SIZE = 28;
/** Pixels per image (28 x 28). */
export const IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/** Class names, indexed by label. */
export const CLASS_NAMES: Record<DatasetName, readonly string[]> = {
  mnist: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  fashion: [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
  ],
};

/**
 * Captions for `classes` classes of dataset `name`: its class names when
 * it has that many, else the class numbers.
 */
export function classLabels(name: string, classes: number): string[] {
  const names = (CLASS_NAMES as Record<string, readonly string[]>)[name];
  return names && names.length === classes
    ? [...names]
    : Array.from({ length: classes }, (_, i) => String(i));
}

/** One split: `size` images of 28 x 28 bytes (0 = background) and their labels. */
export interface Split {
  /** `size * 784` bytes, image after image, row-major. */
  images: Uint8Array;
  /** `size` labels in 0..9. */
  labels: Uint8Array;
  /** Number of images. */
  size: number;
}

/** Where a dataset came from. */
export type SourceKind = "dir" | "npm" | "download";

/** A loaded dataset. */
export interface Dataset {
  name: DatasetName;
  train: Split;
  test: Split;
  classNames: readonly string[];
  /** Which kind of source was used. */
  sourceKind: SourceKind;
  /** One sentence saying where the images came from. */
  source: string;
}

/** The four official files, by role, without the `.gz` ending. */
export const IDX_FILES = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
} as const;
/**
 * A split from its images' and labels' IDX arrays: 28 x 28 images, as many
 * labels, each in 0..9.
 *
 * @throws {IdxError} naming the file that is wrong.
 */
export function splitFrom(
  images: { dims: number[]; data: Uint8Array },
  labels: { dims: number[]; data: Uint8Array },
  imagesFile: string,
  labelsFile: string,
): Split {
  expectDims(images, [null, IMAGE_SIZE, IMAGE_SIZE], imagesFile);
  expectDims(labels, [null], labelsFile);
  if (images.dims[0] !== labels.dims[0]) {
    throw new IdxError(
      labelsFile,
      `holds ${labels.dims[0]} labels but ${imagesFile} holds ${
        images.dims[0]
      } images; the two files do not belong together`,
    );
  }
  const bad = labels.data.findIndex((l) => l > 9);
  if (bad >= 0) {
    throw new IdxError(
      labelsFile,
      `label ${labels.data[bad]} at index ${bad} is outside 0..9`,
    );
  }
  return { images: images.data, labels: labels.data, size: images.dims[0] };
}

/** The first `n` images of a split (all of it when `n` is larger). */
export function head(split: Split, n: number): Split {
  const size = Math.min(n, split.size);
  return {
    images: split.images.subarray(0, size * IMAGE_PIXELS),
    labels: split.labels.subarray(0, size),
    size,
  };
}

/** Pixel range of the floats fed to the networks: `[-1, 1]` for a tanh generator, `[0, 1]` for a sigmoid one. */
export type PixelRange = "[-1,1]" | "[0,1]";

/**
 * Converts bytes 0..255 to floats in `range`: x / 255 for `[0,1]`,
 * x / 127.5 - 1 for `[-1,1]`.
 */
export function toFloat(
  bytes: Uint8Array,
  range: PixelRange,
  out: Float32Array = new Float32Array(bytes.length),
): Float32Array {
  if (range === "[0,1]") {
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
  } else {
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 127.5 - 1;
  }
  return out;
}

/**
 * Floats in `range` back to bytes 0..255, rounded and clamped: the
 * inverse of {@linkcode toFloat}, for images G drew (default `[0,1]`).
 */
export function toBytes(
  images: Float32Array,
  range: PixelRange = "[0,1]",
): Uint8Array {
  const tanh = range === "[-1,1]";
  return Uint8Array.from(images, (v) => {
    const u = tanh ? (v + 1) / 2 : v;
    return Math.max(0, Math.min(255, Math.round(u * 255)));
  });
}

/** One mini-batch, ready to upload with `tf.tensor2d(images, [size, 784])`. */
export interface Batch {
  /** `size * 784` floats in the requested range (empty with `images: false`). */
  images: Float32Array;
  labels: Uint8Array;
  /** The images' positions in the split. */
  indices: Uint32Array;
  size: number;
  /** Position of this batch in the epoch, from 0. */
  index: number;
}

/** Options of {@linkcode batches}. */
export interface BatchOptions {
  batchSize: number;
  /** The run's seed; with `epoch` it fixes the order. */
  seed: number;
  /** Epoch number: each epoch has its own order. */
  epoch: number;
  /** Default `[-1,1]`. */
  range?: PixelRange;
  /** Drop the last incomplete batch (default true), so every batch has `batchSize` images. */
  dropLast?: boolean;
  /** Skip the first `start` batches (to resume within an epoch). Default 0. */
  start?: number;
  /**
   * Build each batch's images (default true); false leaves `images` empty
   * for a consumer that has the split's images already (the WGSL step
   * keeps them on the GPU and takes `indices`).
   */
  images?: boolean;
}

/** Batches in one epoch of `size` images. */
export function batchesPerEpoch(
  size: number,
  batchSize: number,
  dropLast = true,
): number {
  return dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
}

/**
 * The order of one epoch: a permutation of 0..size-1 fixed by `seed` and
 * `epoch` alone, so a resumed run sees the same order without stored state.
 */
export function epochOrder(
  size: number,
  seed: number,
  epoch: number,
): Uint32Array {
  return new Rng(seed, epoch, 0x5eed).permutation(size);
}

/**
 * Shuffled mini-batches of one epoch, normalised to `range`. Each batch is a
 * fresh array (tensors may keep a reference to it).
 */
export function* batches(
  split: Split,
  options: BatchOptions,
): Generator<Batch> {
  const { batchSize, seed, epoch } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(
      `batch size must be a positive integer, got ${batchSize}`,
    );
  }
  const range = options.range ?? "[-1,1]";
  const dropLast = options.dropLast ?? true;
  const order = epochOrder(split.size, seed, epoch);
  const count = batchesPerEpoch(split.size, batchSize, dropLast);
  for (let b = options.start ?? 0; b < count; b++) {
    const idx = order.subarray(b * batchSize, (b + 1) * batchSize);
    const build = options.images ?? true;
    const images = new Float32Array(build ? idx.length * IMAGE_PIXELS : 0);
    const labels = new Uint8Array(idx.length);
    for (let i = 0; i < idx.length; i++) {
      if (build) {
        const src = split.images.subarray(
          idx[i] * IMAGE_PIXELS,
          (idx[i] + 1) * IMAGE_PIXELS,
        );
        toFloat(src, range, images.subarray(i * IMAGE_PIXELS));
      }
      labels[i] = split.labels[idx[i]];
    }
    yield { images, labels, indices: idx, size: idx.length, index: b };
  }
}

/**
 * The first `perClass` images of each class, class by class (class 0's
 * first, then class 1's, ...): rows of a grid labelled by class name.
 */
export function examplesByClass(
  split: Split,
  perClass: number,
  classes = 10,
): Uint8Array {
  const out = new Uint8Array(classes * perClass * IMAGE_PIXELS);
  const filled = new Array(classes).fill(0);
  for (let i = 0; i < split.size; i++) {
    const c = split.labels[i];
    if (c >= classes || filled[c] >= perClass) continue;
    out.set(
      split.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS),
      (c * perClass + filled[c]++) * IMAGE_PIXELS,
    );
  }
  return out;
}
