"""Regenerates the NVRTC fixtures in this folder (dev tool, not run by tests).

Usage (needs libnvrtc.so.13 and its builtins on LD_LIBRARY_PATH, and the CUDA
headers for cuda_fp16.h / cuda_bf16.h):

    for a in 75 80 90; do
        python3 gen_ptx.py pool_kernels.cu $a pool_kernels.sm$a.ptx -I<cuda>/include
        python3 gen_ptx.py hazards.cu $a hazards.sm$a.ptx
    done

(hazards.cu, the mutation corpus of tests/hazards.rs, needs no headers.)
"""
import ctypes, sys
lib = ctypes.CDLL("libnvrtc.so.13")
def compile(src, arch, name="k.cu", extra=()):
    prog = ctypes.c_void_p()
    r = lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None)
    assert r == 0, r
    opts = [f"--gpu-architecture=compute_{arch}".encode(), b"-default-device", b"-std=c++17"] + [e.encode() for e in extra]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    r = lib.nvrtcCompileProgram(prog, len(opts), arr)
    lsz = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(lsz))
    log = ctypes.create_string_buffer(lsz.value); lib.nvrtcGetProgramLog(prog, log)
    if r != 0:
        print(log.value.decode(), file=sys.stderr); sys.exit(1)
    sz = ctypes.c_size_t(); lib.nvrtcGetPTXSize(prog, ctypes.byref(sz))
    buf = ctypes.create_string_buffer(sz.value); lib.nvrtcGetPTX(prog, buf)
    return buf.value.decode()
if __name__ == "__main__":
    src = open(sys.argv[1]).read()
    arch = sys.argv[2]
    out = sys.argv[3]
    extra = sys.argv[4:]
    open(out, "w").write(compile(src, arch, extra=extra))
