#!/usr/bin/env python3
"""adaptive-pool against PyTorch, side by side, on the same GPU and the same cases.

One command on a CUDA machine with PyTorch:

    python3 benches/compare_pytorch.py                      # runs `cargo bench --bench pool`
    python3 benches/compare_pytorch.py --bench-exe PATH     # or a prebuilt bench executable
    python3 benches/compare_pytorch.py --ours results.jsonl # or results saved earlier

It times `torch.nn.functional.adaptive_avg_pool2d` and its backward
(`aten._adaptive_avg_pool2d_backward`, the kernel autograd calls) with CUDA events around many
launches, rotating inputs larger than L2, on the cases of `benches/cases.txt`, in f32, f16 and
bf16, NCHW and channels-last; reads this crate's figures (the JSON lines `benches/pool.rs`
writes to $ADAPTIVE_POOL_BENCH_JSON) and prints one table: case, ours, PyTorch, speed-up, and
our effective bandwidth as a percentage of the device-to-device copy bandwidth. The closing lines
give the geometric-mean speed-ups the project's targets are stated in.

`--list` prints the cases and needs neither a GPU nor PyTorch.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROTATION_BYTES = 256 << 20
DTYPES = ("f32", "f16", "bf16")
LAYOUTS = ("nchw", "nhwc")


def load_cases():
    cases = []
    with open(os.path.join(HERE, "cases.txt")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, *nums = line.split()
            n, c, h, w, oh, ow = map(int, nums)
            cases.append((name, (n, c, h, w), (oh, ow)))
    return cases


def run_ours(args, path):
    env = dict(os.environ, ADAPTIVE_POOL_BENCH_JSON=path)
    if args.bench_exe:
        cmd = [args.bench_exe, "--bench"]
    else:
        cmd = ["cargo", "bench", "--bench", "pool"]
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, env=env, check=True, cwd=os.path.dirname(HERE))


def read_ours(path):
    ours = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                ours[(r["case"], r["dtype"], r["layout"], r["pass"])] = r
    return ours


def time_torch(torch, dims, out_hw, dtype_name, layout, backward):
    """Microseconds per call, CUDA events around many calls over rotating inputs."""
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    numel = math.prod(dims)
    copies = max(2, min(64, ROTATION_BYTES // max(1, numel * torch.finfo(dtype).bits // 8)))
    xs = [torch.randn(dims, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
          for _ in range(copies)]
    f = torch.nn.functional.adaptive_avg_pool2d
    if backward:
        out_dims = (dims[0], dims[1], out_hw[0], out_hw[1])
        gs = [torch.randn(out_dims, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
              for _ in range(min(copies, 8))]
        op = lambda i: torch.ops.aten._adaptive_avg_pool2d_backward(gs[i % len(gs)], xs[i % len(xs)])
    else:
        op = lambda i: f(xs[i % len(xs)], out_hw)
    for i in range(10):
        op(i)
    torch.cuda.synchronize()
    iters = 50
    while True:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(iters):
            op(i)
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
        if ms > 200 or iters >= 20000:
            return ms * 1e3 / iters
        iters *= 4


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="print the cases and exit")
    p.add_argument("--ours", help="JSON lines from benches/pool.rs (skips running it)")
    p.add_argument("--bench-exe", help="a prebuilt `pool` bench executable to run")
    args = p.parse_args()

    cases = load_cases()
    if args.list:
        for name, dims, out_hw in cases:
            print(f"{name:<18} {dims} -> {out_hw}")
        print(f"{len(cases)} cases x {len(DTYPES)} dtypes x {len(LAYOUTS)} layouts")
        return 0

    import torch  # only needed from here on

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to compare (use --list to see the cases)")
        return 0
    path = args.ours
    if path is None:
        path = os.path.join(tempfile.mkdtemp(), "ours.jsonl")
        run_ours(args, path)
    ours = read_ours(path)

    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")
    header = (f"{'case':<18} {'dtype':>5} {'lay':>5} {'pass':<22} {'ours us':>9} "
              f"{'torch us':>9} {'speed-up':>8} {'% copy':>7}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for name, dims, out_hw in cases:
        for dtype in DTYPES:
            for layout in LAYOUTS:
                torch_fwd = time_torch(torch, dims, out_hw, dtype, layout, backward=False)
                torch_bwd = time_torch(torch, dims, out_hw, dtype, layout, backward=True)
                for pass_, t in (("forward", torch_fwd), ("backward_deterministic", torch_bwd),
                                 ("backward_atomic", torch_bwd)):
                    r = ours.get((name, dtype, layout, pass_))
                    if r is None:
                        continue
                    ratio = t / r["us"]
                    ratios.setdefault((pass_, layout, dtype), []).append(ratio)
                    pct = 100.0 * r["gbps"] / r["copy_gbps"]
                    print(f"{name:<18} {dtype:>5} {layout:>5} {pass_:<22} {r['us']:>9.2f} "
                          f"{t:>9.2f} {ratio:>7.2f}x {pct:>6.1f}%")

    def geo(keys):
        vals = [v for k in keys for v in ratios.get(k, [])]
        return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else float("nan")

    print()
    print(f"geometric mean speed-up, forward: "
          f"{geo([('forward', l, d) for l in LAYOUTS for d in DTYPES]):.2f}x")
    for algo in ("backward_deterministic", "backward_atomic"):
        print(f"geometric mean speed-up, NCHW {algo} f16/bf16: "
              f"{geo([(algo, 'nchw', d) for d in ('f16', 'bf16')]):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
