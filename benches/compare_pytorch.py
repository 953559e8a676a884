#!/usr/bin/env python3
"""adaptive-pool against PyTorch, side by side, on the same GPU and the same cases.

One command on a CUDA machine with PyTorch:

    python3 benches/compare_pytorch.py                      # runs `cargo bench --bench pool`
    python3 benches/compare_pytorch.py --bench-exe PATH     # or a prebuilt bench executable
    python3 benches/compare_pytorch.py --ours results.jsonl # or results saved earlier

It times `torch.nn.functional.adaptive_avg_pool2d` and the backward autograd really runs for it
on the cases of `benches/cases.txt`, in f32, f16 and bf16, NCHW and channels-last:

- for a 1x1 output the forward is `mean` over (H, W) and autograd's backward is MeanBackward
  (`grad.expand(input_shape) / (H * W)`): `_adaptive_avg_pool2d_backward` is never called there;
- otherwise the backward is `aten._adaptive_avg_pool2d_backward` (zero-fill plus its kernel).

PyTorch's GPU time is measured with CUDA events around replays of a CUDA graph that holds one
call per rotated input (inputs rotated through 256 MiB so that L2 is not what is measured): the
kernels alone, without PyTorch's host dispatch. The host dispatch time (CPU time per eager call,
measured apart) is printed in its own column: in eager use a call costs at least that much.

It reads this crate's figures (the JSON lines `benches/pool.rs` writes to
$ADAPTIVE_POOL_BENCH_JSON) and prints one table: case, ours, PyTorch kernel time, PyTorch host
dispatch time, speed-up over PyTorch's kernel time, and our effective bandwidth as a percentage
of the device-to-device copy bandwidth. Each of our backward algorithms (deterministic gather,
atomic scatter) is a row of its own against PyTorch's one backward. The closing lines give the
geometric-mean speed-ups the project's targets are stated in.

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


def torch_op(torch, dims, out_hw, dtype_name, layout, backward):
    """The call to time and the number of rotated inputs: (op(i), copies)."""
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    numel = math.prod(dims)
    copies = max(2, min(64, ROTATION_BYTES // max(1, numel * torch.finfo(dtype).bits // 8)))
    xs = [torch.randn(dims, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
          for _ in range(copies)]
    f = torch.nn.functional.adaptive_avg_pool2d
    if not backward:
        return (lambda i: f(xs[i % len(xs)], out_hw)), copies
    out_dims = (dims[0], dims[1], out_hw[0], out_hw[1])
    gs = [torch.randn(out_dims, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
          for _ in range(min(copies, 8))]
    if tuple(out_hw) == (1, 1):
        # What autograd runs for mean over (H, W): MeanBackward, grad.expand(shape) / (H * W).
        hw = dims[2] * dims[3]
        return (lambda i: gs[i % len(gs)].expand(dims) / hw), copies
    return (lambda i: torch.ops.aten._adaptive_avg_pool2d_backward(gs[i % len(gs)], xs[i % len(xs)])), copies


def time_torch(torch, dims, out_hw, dtype_name, layout, backward):
    """(kernel us, host dispatch us) per call.

    Kernel time: CUDA events around replays of a CUDA graph of one call per rotated input (no
    host dispatch inside). Host time: CPU time per eager call, the queue kept from blocking by
    synchronising before each batch."""
    import time
    op, copies = torch_op(torch, dims, out_hw, dtype_name, layout, backward)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(3):
            op(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(copies):
            op(i)
    graph.replay()
    torch.cuda.synchronize()
    reps = 4
    while True:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            graph.replay()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
        if ms > 200 or reps >= 4096:
            kernel_us = ms * 1e3 / (reps * copies)
            break
        reps *= 4
    host = []
    for _ in range(5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(20):
            op(i)
        host.append((time.perf_counter() - t0) / 20 * 1e6)
    torch.cuda.synchronize()
    return kernel_us, sorted(host)[len(host) // 2]


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
              f"{'torch us':>9} {'host us':>8} {'speed-up':>8} {'% copy':>7}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for name, dims, out_hw in cases:
        for dtype in DTYPES:
            for layout in LAYOUTS:
                torch_fwd = time_torch(torch, dims, out_hw, dtype, layout, backward=False)
                torch_bwd = time_torch(torch, dims, out_hw, dtype, layout, backward=True)
                # Each of our backward algorithms is compared with PyTorch's one backward.
                for pass_, (t, host) in (("forward", torch_fwd), ("backward_deterministic", torch_bwd),
                                         ("backward_atomic", torch_bwd)):
                    r = ours.get((name, dtype, layout, pass_))
                    if r is None:
                        continue
                    ratio = t / r["us"]
                    ratios.setdefault((pass_, layout, dtype), []).append(ratio)
                    pct = 100.0 * r["gbps"] / r["copy_gbps"]
                    print(f"{name:<18} {dtype:>5} {layout:>5} {pass_:<22} {r['us']:>9.2f} "
                          f"{t:>9.2f} {host:>8.2f} {ratio:>7.2f}x {pct:>6.1f}%")

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
