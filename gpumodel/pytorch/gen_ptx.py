#!/usr/bin/env python3
"""Regenerates the committed PTX of the benchmark-only PyTorch-algorithm kernels in this folder
with NVRTC 13.0 (not run by the build or by CI; rerun after editing a .cu file).

    python3 gpumodel/pytorch/gen_ptx.py        # from the repository root, after bash .ci/nvrtc.sh

Each NAME.cu becomes NAME.sm80.ptx and NAME.sm90.ptx (compute_80 for the A100 model, compute_90
for the H100 model), with kernels/ on the include path for common.cuh, and the same options as
build.rs (-std=c++17).
"""
import ctypes
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(ROOT, ".nvrtc/nvidia/cu13/lib")


def load():
    for name in ("libnvrtc-builtins.so.13.0",):
        ctypes.CDLL(os.path.join(LIB, name), mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(os.path.join(LIB, "libnvrtc.so.13"))


def compile_ptx(lib, src, name, arch):
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None)
    if rc != 0:
        sys.exit(f"nvrtcCreateProgram failed: {rc}")
    opts = [f"--gpu-architecture=compute_{arch}", "-std=c++17", f"-I{os.path.join(ROOT, 'kernels')}"]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if rc != 0:
        sys.exit(f"{name} (compute_{arch}):\n{log.value.decode()}")
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, buf)
    return buf.value.decode()


def main():
    lib = load()
    for path in sorted(glob.glob(os.path.join(HERE, "*.cu"))):
        name = os.path.basename(path)
        src = open(path).read()
        for arch in (80, 90):
            out = os.path.join(HERE, f"{name[:-3]}.sm{arch}.ptx")
            open(out, "w").write(compile_ptx(lib, src, name, arch))
            print(f"{out}: {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
