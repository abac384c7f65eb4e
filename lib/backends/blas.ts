/**
 * Native matrix multiply for the wasm backend. tfjs-wasm multiplies matrices
 * on one core with 128-bit SIMD and no fused multiply-add: 16-25 GFLOP/s on
 * this project's 2-core test machine, where the GAN step spends most of its
 * time. A system BLAS (OpenBLAS on Linux, Accelerate on macOS) does the same
 * product on every core with AVX2/FMA: ~170 GFLOP/s on that machine. Through
 * Deno's FFI it reads and writes the tensors where they already live, in the
 * wasm heap, so nothing is copied.
 *
 * {@linkcode useNativeMatMul} replaces the wasm backend's `BatchMatMul`
 * kernel with one that calls `cblas_sgemm`; shapes it does not handle
 * (broadcast batch dimensions, empty matrices) go to the original kernel.
 * Results agree with the wasm kernel within float rounding (a test checks
 * every transpose combination), but not bit for bit, so a run resumed with
 * the other setting continues with slightly different numbers.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Where to look for a CBLAS, per operating system, first found wins. */
const LIBRARIES: Record<string, string[]> = {
  linux: [
    "libopenblas.so.0",
    "libopenblas.so",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  ],
  darwin: [
    "/System/Library/Frameworks/Accelerate.framework/Accelerate",
    "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
    "/usr/local/opt/openblas/lib/libopenblas.dylib",
  ],
  windows: ["libopenblas.dll", "openblas.dll"],
};

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "buffer", // A
      "i32", // lda
      "buffer", // B
      "i32", // ldb
      "f32", // beta
      "buffer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  // OpenBLAS only (Accelerate does not say): null where absent.
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
} as const;

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

type Sgemm = (
  order: number,
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

/** The native matMul in use, or why there is none. */
export type NativeMatMul =
  | { ok: true; library: string; threads: number | null }
  | { ok: false; why: string };

let sgemm: Sgemm | null = null;
let loaded: { library: string; threads: number | null } | null = null;
let original: tf.KernelConfig | null = null;

/** Opens the first CBLAS found; caches it. */
function open(): NativeMatMul {
  if (loaded) return { ok: true, ...loaded };
  const candidates = LIBRARIES[Deno.build.os] ?? [];
  if (candidates.length === 0) {
    return { ok: false, why: `no BLAS known for ${Deno.build.os}` };
  }
  const errors: string[] = [];
  for (const library of candidates) {
    try {
      const lib = Deno.dlopen(library, SYMBOLS);
      sgemm = lib.symbols.cblas_sgemm as unknown as Sgemm;
      const threads = lib.symbols.openblas_get_num_threads?.() ?? null;
      loaded = { library, threads };
      return { ok: true, ...loaded };
    } catch (e) {
      errors.push((e as Error).message.split("\n")[0]);
      if (e instanceof Deno.errors.NotCapable) break;
    }
  }
  const hint = Deno.build.os === "linux"
    ? " (on Debian/Ubuntu: `apt-get install libopenblas0-pthread`)"
    : "";
  return {
    ok: false,
    why: `no system BLAS could be loaded${hint}: ${errors[0] ?? "not found"}`,
  };
}

/** What a kernel written in TypeScript uses of the wasm backend. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}

/** A kernel's arguments, as tfjs passes them. */
export type KernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
};

/** A kernel of the wasm backend, as a function. */
export type WasmKernel = (args: KernelArgs) => tf.TensorInfo;

/** The kernels tfjs-wasm registered, by name, kept when replaced. */
const replacedKernels = new Map<string, WasmKernel>();

/**
 * Replaces tfjs-wasm's kernel `name` by `kernel` (once: a second call keeps
 * the first replacement), keeping the original's setup (binding its wasm
 * function), so that `kernel` can still call it through
 * {@linkcode originalWasmKernel}. Does nothing where wasm has no such kernel.
 */
export function replaceWasmKernel(name: string, kernel: WasmKernel): void {
  if (replacedKernels.has(name)) return;
  const current = tf.getKernel(name, "wasm");
  if (!current) return;
  replacedKernels.set(name, current.kernelFunc as unknown as WasmKernel);
  tf.unregisterKernel(name, "wasm");
  tf.registerKernel({
    kernelName: name,
    backendName: "wasm",
    kernelFunc: kernel as unknown as tf.KernelFunc,
    setupFunc: current.setupFunc,
  });
}

/** tfjs-wasm's own kernel `name`, replaced by {@linkcode replaceWasmKernel}. */
export function originalWasmKernel(name: string): WasmKernel {
  const k = replacedKernels.get(name);
  if (!k) throw new Error(`wasm kernel ${name} was not replaced`);
  return k;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Rows and columns of the matrices in a tensor, as used (transposed or not). */
function rowsAndColumns(shape: number[], transposed: boolean): number[] {
  const [rows, columns] = shape.slice(-2);
  return transposed ? [columns, rows] : [rows, columns];
}

/** `BatchMatMul` through `cblas_sgemm`, for the wasm backend. */
function nativeBatchMatMul(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo {
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const transposeA = args.attrs.transposeA === true;
  const transposeB = args.attrs.transposeB === true;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const [m, k] = rowsAndColumns(a.shape, transposeA);
  const [kB, n] = rowsAndColumns(b.shape, transposeB);
  const sameOuter = outerA.length === outerB.length &&
    outerA.every((d, i) => d === outerB[i]);
  if (
    a.dtype !== "float32" || b.dtype !== "float32" || !sameOuter ||
    k !== kB || m * n * k === 0 || !sgemm
  ) {
    return (original!.kernelFunc as (x: typeof args) => tf.TensorInfo)(args);
  }
  const backend = args.backend as WasmBackend;
  const out = backend.makeOutput([...outerA, m, n], "float32");
  // Views after makeOutput: allocating may grow the heap, which detaches
  // earlier views of it.
  const av = backend.typedArrayFromHeap(a);
  const bv = backend.typedArrayFromHeap(b);
  const cv = backend.typedArrayFromHeap(out);
  const lda = a.shape[a.shape.length - 1];
  const ldb = b.shape[b.shape.length - 1];
  const batches = size(outerA);
  for (let i = 0; i < batches; i++) {
    sgemm(
      ROW_MAJOR,
      transposeA ? TRANS : NO_TRANS,
      transposeB ? TRANS : NO_TRANS,
      m,
      n,
      k,
      1,
      batches === 1 ? av : av.subarray(i * m * k, (i + 1) * m * k),
      lda,
      batches === 1 ? bv : bv.subarray(i * k * n, (i + 1) * k * n),
      ldb,
      0,
      batches === 1 ? cv : cv.subarray(i * m * n, (i + 1) * m * n),
      n,
    );
  }
  return out;
}

/**
 * Turns the native matMul of the wasm backend on or off (call after the wasm
 * backend has started). Turning it on loads a system BLAS once; when none
 * loads, the wasm kernel stays and the result says why.
 */
export function useNativeMatMul(on: boolean): NativeMatMul {
  const current = tf.getKernel("BatchMatMul", "wasm");
  if (!current) return { ok: false, why: "the wasm backend is not loaded" };
  if (!on) {
    if (original) {
      tf.unregisterKernel("BatchMatMul", "wasm");
      tf.registerKernel(original);
      original = null;
    }
    return { ok: false, why: "turned off" };
  }
  const native = open();
  if (!native.ok) return native;
  if (!original) {
    original = current;
    tf.unregisterKernel("BatchMatMul", "wasm");
    tf.registerKernel({
      kernelName: "BatchMatMul",
      backendName: "wasm",
      kernelFunc: nativeBatchMatMul as unknown as tf.KernelFunc,
    });
  }
  return native;
}

/** Whether the wasm backend's matMul runs in a native BLAS now. */
export function nativeMatMulActive(): boolean {
  return original !== null;
}

/** Matrix products in the system BLAS, for other wasm kernels. */
export interface BlasProducts {
  /** C [m, n] = A B, with A [m, k] and B [k, n], all row-major. */
  times(
    m: number,
    k: number,
    n: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
  ): void;
  /** C [m, n] = A B^T, with A [m, k] and B [n, k], all row-major. */
  timesTransposed(
    m: number,
    k: number,
    n: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
  ): void;
  /** C [k, n] = A^T B, with A [rows, k] and B [rows, n], all row-major. */
  transposedTimes(
    rows: number,
    k: number,
    n: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
  ): void;
}

/**
 * The system BLAS's products while the wasm backend's matMul runs in it
 * (`--blas auto` with a BLAS loaded), else null (`--blas off`, or none).
 */
export function sgemmOrNull(): BlasProducts | null {
  const f = sgemm;
  if (!f || original === null) return null;
  return {
    times(m, k, n, a, b, c) {
      f(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, 1, a, k, b, n, 0, c, n);
    },
    timesTransposed(m, k, n, a, b, c) {
      f(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, a, k, b, k, 0, c, n);
    },
    transposedTimes(rows, k, n, a, b, c) {
      f(ROW_MAJOR, TRANS, NO_TRANS, k, n, rows, 1, a, k, b, n, 0, c, n);
    },
  };
}
