#!/usr/bin/env bash
# The GPU check, in one command: is the WGSL step right on this GPU, and how
# fast is it? Run from the repository root on a machine with a GPU and with
# the folder that `deno task gpu:prepare` writes (.gpu/, or $GPU_DIR): it
# needs no registry, no Deno and no Vulkan loader of its own.
#
#   bash bench/gpu_check.sh [--quick] [--only PART,...]
#
# Writes gpu-check.json and PNGs into $OUT when set, else runs/gpu-check/.
# --quick: small sizes (what the test suite runs on the software adapter).
# --only: the named parts alone (correctness, conv, spectral-norm, bench,
# torch, train, train-sngan-fc), to rerun what failed in less time.
# Exit status: 0 every part ran and the step is right; 3 the WGSL step is
# WRONG on this GPU; 1 a part failed; 2 the prepared folder is missing.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
gpu=${GPU_DIR:-$root/.gpu}
gpu=$(cd "$gpu" 2>/dev/null && pwd) || {
  echo "no prepared folder at ${GPU_DIR:-$root/.gpu}: run 'deno task gpu:prepare' first" >&2
  exit 2
}
[ -f "$gpu/manifest.json" ] || {
  echo "$gpu has no manifest.json: run 'deno task gpu:prepare' again" >&2
  exit 2
}
out=${OUT:-$root/runs/gpu-check}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Unpacking with xz and tar where they exist, else with Python's lzma.
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}
untar_to() {
  if command -v xz >/dev/null 2>&1; then tar -xJf "$1" -C "$2"
  else python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
  fi
}
started=$(date +%s)
unxz_to "$gpu/deno.xz" "$work/deno" && chmod +x "$work/deno"
untar_to "$gpu/node_modules.tar.xz" "$work"
untar_to "$gpu/bundles.tar.xz" "$work"
echo "unpacked $gpu in $(( $(date +%s) - started )) s (built from $(grep -m1 '"commit"' "$gpu/manifest.json" | cut -d'"' -f4))"

# Debian's Vulkan loader from the folder, and NVIDIA's driver where it is.
vk=$(dirname "$(find "$gpu/vulkan" -name 'libvulkan.so.1' | head -1)")
export LD_LIBRARY_PATH="$vk${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia" ]; then
  export VK_DRIVER_FILES=$nvidia
fi
command -v nvidia-smi >/dev/null 2>&1 &&
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export GAN_DATA_DIR="$gpu/data" DENO_DIR="$work/deno-dir" GAN_CACHE_DIR="$work/cache"
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work}

"$work/deno" run -A --no-config --node-modules-dir=manual \
  "$work/bundles/gpu_check.js" --bundles "$work/bundles" --root "$root/" \
  --reference "$gpu/reference.json" --out "$out" "$@"
status=$?
echo "gpu_check.sh: exit $status after $(( $(date +%s) - started )) s"
exit $status
