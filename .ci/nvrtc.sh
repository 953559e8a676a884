#!/usr/bin/env bash
# Makes NVRTC 13.0 available to build.rs on a machine without a CUDA toolkit: installs the
# `nvidia-cuda-nvrtc` wheel into the project-local, git-ignored `.nvrtc/` folder, which
# build.rs searches before python3's site-packages. Does nothing when a toolkit is found or the
# wheel is already there. NVRTC is pinned to 13.0.x: PTX from a newer NVRTC does not load on a
# CUDA 13.0 driver (r580).
set -euo pipefail
cd "$(dirname "$0")/.."
for root in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "${CUDA_ROOT:-}" /usr/local/cuda; do
  if [ -n "$root" ] && ls "$root"/lib64/libnvrtc.so* >/dev/null 2>&1; then
    echo "nvrtc: using the CUDA toolkit at $root"
    exit 0
  fi
done
if ls .nvrtc/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
  echo "nvrtc: using .nvrtc/ ($(ls .nvrtc/*.dist-info -d 2>/dev/null | head -n1 | xargs -r basename))"
  exit 0
fi
echo "nvrtc: installing nvidia-cuda-nvrtc 13.0.x into .nvrtc/"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target .nvrtc \
  "nvidia-cuda-nvrtc==13.0.*"
ls .nvrtc/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null
