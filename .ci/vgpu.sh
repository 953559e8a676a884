#!/usr/bin/env bash
# Runs CMD with the vgpu as the CUDA driver: builds the vgpu (release) if needed, then runs CMD
# from the caller's directory with a private folder holding libcuda.so and libcuda.so.1 (links
# to the vgpu) first on LD_LIBRARY_PATH. Nothing is installed anywhere else: without this
# script a real driver is used as before.
#
#   bash .ci/vgpu.sh cargo test --release --test gpu -- --include-ignored
#   VGPU_COMPUTE_CAPABILITY=75 bash .ci/vgpu.sh cargo run --release --example demo
#
# The VGPU_* variables (vgpu/README.md) pass through to CMD.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: bash .ci/vgpu.sh CMD [ARGS...]" >&2
    exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac

# Build with the caller's LD_LIBRARY_PATH, not the vgpu's: the vgpu's own build needs no driver.
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p vgpu

lib="$target/release/libvgpu.so"
[ -f "$lib" ] || { echo "vgpu.sh: $lib was not built" >&2; exit 1; }
driver_dir="$target/vgpu-driver"
mkdir -p "$driver_dir"
ln -sf "$lib" "$driver_dir/libcuda.so"
ln -sf "$lib" "$driver_dir/libcuda.so.1"

export LD_LIBRARY_PATH="$driver_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
