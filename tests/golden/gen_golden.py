#!/usr/bin/env python3
"""Generate golden fixtures for adaptive-pool from real PyTorch (CPU).

Writes ``fixtures.bin`` next to this script. Requires only ``torch``.
Deterministic: the case parameters come from ``random.Random(RANDOM_CASE_SEED)``
and all tensor data from ``torch.manual_seed(TORCH_SEED)``.

File format (all integers little-endian):

    magic       8 bytes  b"APGOLD01"
    u32         number of cases
    per case:
      u16       name length, then UTF-8 name bytes
      u8        dtype: 0=f32, 1=f64, 2=f16, 3=bf16
      u8        layout: 0 = contiguous NCHW (or CHW), 1 = channels-last NHWC (or HWC)
      u8        rank (3 or 4), then rank x u64 logical input dims ((N,)C,H,W)
      2 x i64   output_size as given to PyTorch (-1 means None)
      rank x u64 logical output dims as returned by PyTorch
      4 arrays  input, output, grad_output, grad_input; each is a u64 element
                count followed by the raw little-endian elements (f32: 4 bytes,
                f64: 8, f16/bf16: 2-byte bit patterns) in PHYSICAL memory order
                of the case's layout (NCHW/CHW, or NHWC/HWC for channels-last).

Usage: python3 gen_golden.py
"""

import os
import random
import struct
import sys

import torch
import torch.nn.functional as F

MAGIC = b"APGOLD01"
TORCH_SEED = 20240521
RANDOM_CASE_SEED = 1234567
MAX_INPUT_ELEMENTS = 10_000
MAX_FILE_BYTES = 2 * 1024 * 1024

DTYPES = {
    "f32": (0, torch.float32),
    "f64": (1, torch.float64),
    "f16": (2, torch.float16),
    "bf16": (3, torch.bfloat16),
}
LAYOUTS = {"nchw": 0, "nhwc": 1}


def randn(shape, dtype):
    """torch.randn in `dtype`; f16/bf16 are drawn in float32 then cast."""
    if dtype in (torch.float16, torch.bfloat16):
        return torch.randn(*shape, dtype=torch.float32).to(dtype)
    return torch.randn(*shape, dtype=dtype)


def make_tensor(logical_shape, dtype, layout):
    """Random tensor with the given logical shape, stored in `layout`."""
    if layout == "nchw":
        return randn(logical_shape, dtype).contiguous()
    if len(logical_shape) == 4:
        return randn(logical_shape, dtype).contiguous(memory_format=torch.channels_last)
    c, h, w = logical_shape
    return randn((h, w, c), dtype).permute(2, 0, 1)  # physical HWC


def physical(t, layout):
    """Contiguous tensor whose flat order is the physical order of `layout`."""
    t = t.detach()
    if layout == "nchw":
        return t.contiguous()
    if t.dim() == 4:
        return t.permute(0, 2, 3, 1).contiguous()
    return t.permute(1, 2, 0).contiguous()


def has_layout(t, layout):
    if layout == "nchw":
        return t.is_contiguous()
    if t.dim() == 4:
        return t.is_contiguous(memory_format=torch.channels_last)
    return t.permute(1, 2, 0).is_contiguous()


def raw_bytes(t):
    flat = t.reshape(-1)
    if flat.numel() == 0:
        return b""
    return bytes(flat.view(torch.uint8).tolist())


def fmt_os(output_size):
    if isinstance(output_size, int):
        return str(output_size)
    return "x".join("None" if o is None else str(o) for o in output_size)


def make_name(prefix, shape, output_size, dtype_name, layout):
    return f"{prefix}_{'x'.join(map(str, shape))}_to_{fmt_os(output_size)}_{dtype_name}_{layout}"


class Writer:
    def __init__(self):
        self.cases = []  # bytes per case
        self.names = set()
        self.summary = []
        self.layout_notes = []
        self.skipped = []

    def add(self, name, shape, output_size, dtype_name, layout):
        assert name not in self.names, f"duplicate case name {name}"
        assert len(shape) in (3, 4)
        numel = 1
        for d in shape:
            numel *= d
        assert numel < MAX_INPUT_ELEMENTS, f"{name}: {numel} input elements"
        code, dtype = DTYPES[dtype_name]

        x = make_tensor(shape, dtype, layout)
        if x.numel() > 0:
            assert bool((x != 0).any()), f"{name}: all-zero input"
        x = x.detach().requires_grad_()
        assert has_layout(x, layout), f"{name}: input not in layout {layout}"
        try:
            out = F.adaptive_avg_pool2d(x, output_size)
        except Exception as e:  # record nothing for inputs PyTorch rejects
            self.skipped.append((name, repr(e)))
            print(f"SKIP {name}: torch raised {e!r}")
            return
        assert out.dtype == dtype
        go = make_tensor(tuple(out.shape), dtype, layout)
        (gi,) = torch.autograd.grad(out, x, go)
        assert gi.dtype == dtype and tuple(gi.shape) == tuple(x.shape)

        for label, t in (("output", out), ("grad_input", gi)):
            if not has_layout(t, layout):
                note = (f"{name}: PyTorch returned {label} with strides {t.stride()} "
                        f"(not {layout}); recorded in {layout} order anyway")
                self.layout_notes.append(note)
                print("NOTE", note)

        if isinstance(output_size, int):
            os_pair = (output_size, output_size)
        else:
            os_pair = tuple(-1 if o is None else int(o) for o in output_size)

        b = bytearray()
        nb = name.encode("utf-8")
        b += struct.pack("<H", len(nb)) + nb
        b += struct.pack("<BBB", code, LAYOUTS[layout], len(shape))
        b += struct.pack(f"<{len(shape)}Q", *shape)
        b += struct.pack("<2q", *os_pair)
        b += struct.pack(f"<{out.dim()}Q", *out.shape)
        for t in (x, out, go, gi):
            p = physical(t, layout)
            b += struct.pack("<Q", p.numel())
            b += raw_bytes(p)
        self.cases.append(bytes(b))
        self.names.add(name)
        line = (f"{name:<55} in={tuple(shape)} os={fmt_os(output_size)} -> out={tuple(out.shape)} "
                f"out_strides={out.stride()} gi_strides={gi.stride()} bytes={len(b)}")
        self.summary.append((dtype_name, layout, len(shape)))
        print(line)

    def write(self, path):
        data = MAGIC + struct.pack("<I", len(self.cases)) + b"".join(self.cases)
        assert len(data) < MAX_FILE_BYTES, f"fixture file too large: {len(data)} bytes"
        with open(path, "wb") as f:
            f.write(data)
        return len(data)


def suite_cases(w):
    """Shapes from PyTorch's own test suite for AdaptiveAvgPool2d."""
    suite = [
        ((1, 3, 5, 6), 3),
        ((3, 5, 6), 3),
        ((1, 3, 5, 6), 1),
        ((1, 3, 5, 6), (3, 4)),
        ((1, 3, 5, 6), (3, None)),
        ((4, 4, 4), (2, None)),
        ((1, 8, 8, 8), (5, 7)),
        ((2, 8, 8, 8), (None, 7)),
        ((1, 8, 4, 3), (5, None)),
        ((1, 8, 4, 3), (None, None)),
        ((1, 8, 4, 3), 5),
        ((4, 8, 8, 8), (7, 7)),
        ((2, 3, 6, 6), 1),
        ((0, 10, 10), (5, 5)),
        ((5, 5, 5, 5), (5, 7)),
    ]
    # Every suite case in f32, in both layouts (3-D channels-last = physical HWC).
    for shape, os_ in suite:
        for layout in ("nchw", "nhwc"):
            w.add(make_name("torch_suite", shape, os_, "f32", layout), shape, os_, "f32", layout)
    # bf16 suite case (test_adaptive_pooling_bfloat16), both layouts.
    for layout in ("nchw", "nhwc"):
        shape, os_ = (8, 4, 16, 16), (3, 5)
        w.add(make_name("torch_suite", shape, os_, "bf16", layout), shape, os_, "bf16", layout)
    # A handful of suite cases in all other dtypes and both layouts.
    handful = [
        ((1, 3, 5, 6), 3),
        ((3, 5, 6), 3),
        ((1, 8, 8, 8), (5, 7)),
        ((2, 8, 8, 8), (None, 7)),
        ((5, 5, 5, 5), (5, 7)),
        ((2, 3, 6, 6), 1),
    ]
    for shape, os_ in handful:
        for dt in ("f64", "f16", "bf16"):
            for layout in ("nchw", "nhwc"):
                w.add(make_name("torch_suite", shape, os_, dt, layout), shape, os_, dt, layout)


def resolved_output_hw(output_size, h, w):
    """Output (H, W) that PyTorch produces for `output_size` (None keeps the input dim)."""
    if isinstance(output_size, int):
        return output_size, output_size
    oh, ow = output_size
    return (h if oh is None else oh), (w if ow is None else ow)


def random_cases(w, per_dtype=16):
    rng = random.Random(RANDOM_CASE_SEED)
    kinds = ["out1x1", "w1", "h1", "identity", "upsample", "none", "nondivisible"]
    kinds += ["random"] * (per_dtype - len(kinds))
    for d, dt in enumerate(("f32", "f64", "f16", "bf16")):
        for i, kind in enumerate(kinds):
            layout = ("nchw", "nhwc")[(i + d) % 2]
            rank = 4 if (i // 2 + d) % 2 == 0 else 3
            while True:
                n = rng.randint(1, 3)
                c = rng.randint(1, 6)
                h = rng.randint(1, 20)
                wd = rng.randint(1, 20)
                if kind == "w1":
                    wd = 1
                elif kind == "h1":
                    h = 1
                elif kind in ("upsample", "nondivisible"):
                    h, wd = rng.randint(3, 20), rng.randint(3, 20)
                oh = rng.randint(1, 2 * h + 2)
                ow = rng.randint(1, 2 * wd + 2)
                os_ = (oh, ow)
                if kind == "out1x1":
                    os_ = rng.choice([1, (1, 1)])
                elif kind == "identity":
                    os_ = (h, wd)
                elif kind == "upsample":
                    os_ = (rng.randint(h + 1, 2 * h + 2), rng.randint(wd + 1, 2 * wd + 2))
                elif kind == "none":
                    os_ = rng.choice([(None, ow), (oh, None)])
                elif kind == "nondivisible":
                    cands_h = [o for o in range(2, h) if h % o] or [h - 1]
                    cands_w = [o for o in range(2, wd) if wd % o] or [wd - 1]
                    os_ = (rng.choice(cands_h), rng.choice(cands_w))
                elif rng.random() < 0.1:
                    os_ = (None, ow) if rng.random() < 0.5 else (oh, None)
                shape = (n, c, h, wd) if rank == 4 else (c, h, wd)
                ohh, oww = resolved_output_hw(os_, h, wd)
                onumel = (n if rank == 4 else 1) * c * ohh * oww
                if onumel <= 4000:
                    break
            name = make_name(f"random_{kind}_{i:02d}", shape, os_, dt, layout)
            w.add(name, shape, os_, dt, layout)


def main():
    assert sys.byteorder == "little", "raw_bytes assumes a little-endian host"
    torch.manual_seed(TORCH_SEED)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    w = Writer()
    suite_cases(w)
    random_cases(w)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.bin")
    size = w.write(path)

    counts = {}
    for key in w.summary:
        counts[key] = counts.get(key, 0) + 1
    print(f"\nwrote {len(w.cases)} cases, {size} bytes to {path}")
    for (dt, layout, rank), n in sorted(counts.items()):
        print(f"  {dt:<5} {layout} rank{rank}: {n}")
    for name, err in w.skipped:
        print(f"  skipped {name}: {err}")
    for note in w.layout_notes:
        print(f"  layout note: {note}")


if __name__ == "__main__":
    main()
