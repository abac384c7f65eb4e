/**
 * Choosing where TensorFlow.js runs. `auto` picks WebGPU on a real GPU
 * adapter, else WebAssembly (SIMD), else the pure-JavaScript `cpu` backend,
 * and says which and why. A software WebGPU adapter (llvmpipe, marked
 * `isFallbackAdapter`) is correct but slower than wasm, so `auto` skips it;
 * naming `webgpu` uses it anyway (CI tests WebGPU code that way).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { nativeMatMulActive, useNativeMatMul } from "./blas.ts";
import { registerWasmConvGrad } from "./wasm_conv.ts";
import { registerWasmReductions } from "./wasm_reduce.ts";
import { installDirectUploads, installFusedUpdates } from "./webgpu_fusions.ts";

/** A backend to ask for. */
export type BackendChoice = "auto" | "webgpu" | "wasm" | "cpu";
/** The choices, for flag validation. */
export const BACKEND_CHOICES: readonly BackendChoice[] = [
  "auto",
  "webgpu",
  "wasm",
  "cpu",
];

/** The backend in use and why it was chosen. */
export interface BackendInfo {
  name: "webgpu" | "wasm" | "cpu";
  /** One sentence: which device and why. */
  reason: string;
  /**
   * On wasm: the system BLAS that runs matMul (see `lib/backends/blas.ts`), or null
   * when tfjs-wasm's own kernel does.
   */
  blas?: string | null;
}

/** Options of {@linkcode initBackend}. */
export interface BackendOptions {
  /**
   * On wasm, run matMul in a system BLAS when one loads (`true`, the
   * default) or always in tfjs-wasm's own kernel (`false`).
   */
  blas?: boolean;
}

/** A backend that was asked for by name and cannot start; the message says why. */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

/**
 * Gives this process a private runtime folder where `XDG_RUNTIME_DIR` is
 * unset (ssh sessions, containers, CI runners): Mesa's Vulkan driver reads
 * it when the first adapter is asked for, and prints an error on each start
 * without one. The folder is removed when the process ends.
 */
function ensureRuntimeDir(): void {
  // In a browser (the web page's Train view) there is no process to set up.
  if (typeof Deno === "undefined" || Deno.env.get("XDG_RUNTIME_DIR")) return;
  try {
    const dir = Deno.makeTempDirSync({ prefix: "xdg-runtime-" }); // mode 0700
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // gone already
      }
    });
  } catch {
    // no temporary folder or no env permission: Mesa prints its line
  }
}

/** What the WebGPU adapter is, or why there is none. */
export async function probeWebGpu(): Promise<
  { ok: true; fallback: boolean; description: string } | {
    ok: false;
    why: string;
  }
> {
  ensureRuntimeDir();
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) return { ok: false, why: "navigator.gpu is not available" };
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    return { ok: false, why: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) {
    return {
      ok: false,
      why: "no WebGPU adapter (no GPU, or no Vulkan driver: on Debian, " +
        "`apt-get install mesa-vulkan-drivers libvulkan1` gives a software one)",
    };
  }
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const description = info.description || info.device || info.vendor ||
    "unnamed adapter";
  return { ok: true, fallback: info.isFallbackAdapter === true, description };
}

/**
 * tfjs' own gradient of matMul computes `dy W^T` and `x^T dy` as matMuls
 * with a transposed operand, which tfjs-wasm runs ~17x slower than a
 * transpose followed by a plain matMul. On wasm (without a native BLAS, which
 * takes transposed operands at full speed) this gradient transposes
 * explicitly; elsewhere it is tfjs' own. Each input's gradient stays lazy, so
 * tfjs computes only those it needs: in D's step, not the gradient with
 * respect to D's input images; in G's step, not D's weight gradients.
 */
function installMatMulGradient(): void {
  const original = tf.getGradient("BatchMatMul");
  if (!original || (original as { explicit?: boolean }).explicit) return;
  const lastTwo = (t: tf.Tensor) => {
    const perm = t.shape.map((_, i) => i);
    [perm[t.rank - 2], perm[t.rank - 1]] = [perm[t.rank - 1], perm[t.rank - 2]];
    return tf.transpose(t, perm);
  };
  const config = {
    ...original,
    explicit: true,
    gradFunc: (
      dy: tf.Tensor | tf.Tensor[],
      saved: tf.Tensor[],
      attrs: tf.NamedAttrMap,
    ) => {
      const [a, b] = saved;
      if (
        tf.getBackend() !== "wasm" || nativeMatMulActive() ||
        attrs.transposeA || attrs.transposeB || a.rank !== b.rank
      ) {
        return original.gradFunc(dy, saved, attrs);
      }
      const g = dy as tf.Tensor;
      return {
        a: () => tf.matMul(g, lastTwo(b)),
        b: () => tf.matMul(lastTwo(a), g),
      };
    },
  };
  tf.registerGradient(config);
}

/**
 * While recording gradients tfjs keeps a clone (the `Identity` kernel) of
 * every tensor a backward pass needs: 175 clones in one step of the paper's
 * GAN. tfjs-wasm's `Identity` copies the data (about 5 ms a step); this one
 * shares it and counts the reference, as tfjs-wasm's own `Reshape` and the
 * `cpu` backend's `Identity` do. Tensors are never written in place, so
 * sharing is safe.
 */
function installSharedIdentity(): void {
  const original = tf.getKernel("Identity", "wasm");
  if (!original || (original as { shared?: boolean }).shared) return;
  const config = {
    ...original,
    shared: true,
    kernelFunc: (args: {
      inputs: tf.NamedTensorInfoMap;
      backend: unknown;
      attrs?: tf.NamedAttrMap;
    }) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === "string") {
        return (original.kernelFunc as (a: typeof args) => tf.TensorInfo)(
          args,
        );
      }
      (args.backend as { incRef(id: tf.DataId): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  };
  tf.unregisterKernel("Identity", "wasm");
  tf.registerKernel(config as unknown as tf.KernelConfig);
}

async function start(name: "webgpu" | "wasm" | "cpu"): Promise<boolean> {
  if (name === "webgpu") {
    await import("@tensorflow/tfjs-backend-webgpu");
    installFusedUpdates();
  }
  if (name === "wasm") {
    await import("@tensorflow/tfjs-backend-wasm");
    installMatMulGradient();
    installSharedIdentity();
    // A convolution's weight gradient, which tfjs-wasm lacks.
    registerWasmConvGrad();
    // Batch norm's statistics and bias gradients without a transpose.
    registerWasmReductions();
  }
  try {
    const ok = await tf.setBackend(name);
    await tf.ready();
    if (!ok || tf.getBackend() !== name) return false;
  } catch {
    return false;
  }
  if (name === "webgpu") installDirectUploads();
  return true;
}

/**
 * Starts a backend and returns which one runs and why.
 *
 * @throws {BackendError} when a backend named explicitly cannot start.
 */
export async function initBackend(
  choice: BackendChoice = "auto",
  options: BackendOptions = {},
): Promise<BackendInfo> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new BackendError(
      `unknown backend "${choice}"; expected one of ${
        BACKEND_CHOICES.join(", ")
      }`,
    );
  }
  if (choice === "webgpu" || choice === "auto") {
    const probe = await probeWebGpu();
    if (probe.ok && (choice === "webgpu" || !probe.fallback)) {
      if (await start("webgpu")) {
        return {
          name: "webgpu",
          reason: probe.fallback
            ? `WebGPU on a software adapter (${probe.description}), as asked; wasm is usually faster`
            : `WebGPU on ${probe.description}`,
        };
      }
      if (choice === "webgpu") {
        throw new BackendError(
          `WebGPU adapter ${probe.description} found, but the TF.js WebGPU backend did not start`,
        );
      }
    } else if (choice === "webgpu") {
      throw new BackendError(
        `backend webgpu is not available: ${
          probe.ok ? "" : probe.why
        }. Use --backend wasm (or auto).`,
      );
    }
    const skipped = probe.ok
      ? `the WebGPU adapter (${probe.description}) is a software fallback`
      : probe.why;
    if (await start("wasm")) {
      return wasmInfo(`WebAssembly (SIMD) on the CPU: ${skipped}`, options);
    }
    await start("cpu");
    return {
      name: "cpu",
      reason:
        `the pure-JavaScript CPU backend: ${skipped}, and wasm did not start`,
    };
  }
  if (!(await start(choice))) {
    throw new BackendError(`backend ${choice} did not start`);
  }
  if (choice === "wasm") {
    return wasmInfo("WebAssembly (SIMD) on the CPU, as asked", options);
  }
  return {
    name: choice,
    reason:
      "the pure-JavaScript CPU backend, as asked (slow: wasm is ~10x faster)",
  };
}

/** Sets up matMul on a started wasm backend and says how it runs. */
function wasmInfo(reason: string, options: BackendOptions): BackendInfo {
  const native = useNativeMatMul(options.blas !== false);
  if (native.ok) {
    const threads = native.threads ? `, ${native.threads} threads` : "";
    return {
      name: "wasm",
      reason: `${reason}; matMul in ${native.library}${threads}`,
      blas: native.library,
    };
  }
  const why = options.blas === false
    ? "as asked"
    : `${native.why}; it is several times slower`;
  return {
    name: "wasm",
    reason: `${reason}; matMul in tfjs-wasm's own kernel (${why})`,
    blas: null,
  };
}
