/**
 * The training run of the GPU check's part 3, shared by `gpu_check.ts`
 * (which runs it on WebGPU) and `gpu_prepare.ts` (which records the CPU's
 * figures for the same arguments).
 *
 * @module
 */

/** One epoch of `paper` from seed 0; of 500 images for a quick check. */
export function trainArgs(quick: boolean): string[] {
  const args = ["--preset", "paper", "--epochs", "1", "--seed", "0"];
  return quick ? [...args, "--limit", "500", "--holdout", "0"] : args;
}
