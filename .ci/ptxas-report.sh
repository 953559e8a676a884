#!/usr/bin/env bash
# Assembles every embedded PTX variant with ptxas (from the `nvidia-cuda-nvcc` 13.0 wheel, put in
# the git-ignored `.ptxas/`; no GPU needed) for the matching real architecture, prints registers
# and spills per kernel, and fails if any kernel spills or does not assemble.
#   bash .ci/ptxas-report.sh [PTX_DIR]   (default: the newest release build's OUT_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
ptxas=.ptxas/nvidia/cu13/bin/ptxas
if [ ! -x "$ptxas" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target .ptxas \
    "nvidia-cuda-nvcc==13.0.*"
fi
dir=${1:-$(ls -td target/release/build/adaptive-pool-*/out 2>/dev/null | head -n1)}
[ -n "$dir" ] && ls "$dir"/*.ptx >/dev/null 2>&1 || { echo "no PTX found: build first"; exit 1; }
log=$(mktemp)
for ptx in "$dir"/*.ptx; do
  arch=${ptx##*.sm}; arch=${arch%.ptx}
  printf '%s %s bytes\n' "$(basename "$ptx")" "$(wc -c <"$ptx")"
  "$ptxas" -v -arch="sm_$arch" "$ptx" -o /dev/null 2>>"$log"
done
python3 - "$log" <<'PY'
import collections, re, sys
regs, spills, kernel = collections.defaultdict(dict), collections.defaultdict(set), None
for line in open(sys.argv[1]):
    m = re.search(r"Compiling entry function '(\w+)' for 'sm_(\d+)'", line)
    if m:
        kernel, arch = m.groups()
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and kernel:
        spills[kernel].add((arch, m.group(1), m.group(2)))
    m = re.search(r"Used (\d+) registers", line)
    if m and kernel:
        regs[kernel][arch] = m.group(1)
archs = sorted({a for r in regs.values() for a in r})
print(f"{'kernel':40}" + "".join(f"{'sm_' + a:>7}" for a in archs) + "  spills")
bad = []
for k in sorted(regs):
    s = [x for x in spills[k] if x[1] != "0" or x[2] != "0"]
    bad += [k] if s else []
    print(f"{k:40}" + "".join(f"{regs[k].get(a, '-'):>7}" for a in archs) + ("  none" if not s else f"  {s}"))
print(f"{len(regs)} kernels x {len(archs)} architectures assembled")
sys.exit(f"spills in {bad}" if bad else 0)
PY
