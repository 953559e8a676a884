#!/usr/bin/env python3
"""Regenerates gpumodel/src/sass_costs.rs: what each PTX instruction class costs in machine code.

For every probe below, a one-instruction PTX kernel (the instruction applied to values that
depend on a parameter and the thread index, the result stored) is assembled by ptxas for sm_80
and sm_90 and disassembled by nvdisasm; the SASS instructions of the probe minus those of a
baseline kernel (the same kernel with a `mov` instead of the instruction) are the instruction's
cost, counted per execution pipe. Where ptxas emits a subroutine (64-bit division) its body is
added; where it emits a rarely taken slow path behind a branch (IEEE f32/f64 division and
reciprocal: the operands of this crate's kernels are normal numbers), only the main body counts.
A 16-bit atomic compare-and-swap becomes a 32-bit CAS loop; one trip of the loop is counted.

Run from the repository root (no GPU needed; not run by the build or by CI):

    bash .ci/ptxas-report.sh >/dev/null   # installs ptxas into .ptxas/ (or any ptxas 13.0)
    python3 -m pip install --target .ptxas/nvdisasm "nvidia-cuda-nvdisasm==13.2.*"
    python3 gpumodel/calibrate/sass_costs.py > gpumodel/src/sass_costs.rs

Pipes follow Nsight Compute's names: alu (integer add, logic, compare, shift, select, moves),
fma (FP32 add/mul/fma), imad (integer multiply-add: the FMA-heavy pipe), fp16 (HADD2/HFMA2,
incl. the f16->f32 widening HADD2.F32), fp64, xu (MUFU transcendentals and int<->float
conversions), lsu (loads, stores, atomics, shuffles), cbu (branches, calls, warp
synchronisation), uniform (the scalar datapath: ULDC, UMOV, ...).
"""
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PTXAS = os.environ.get("PTXAS", os.path.join(ROOT, ".ptxas/nvidia/cu13/bin/ptxas"))
NVDISASM = os.environ.get("NVDISASM", os.path.join(ROOT, ".ptxas/nvdisasm/nvidia/cu13/bin/nvdisasm"))
ARCHS = (80, 90)

# Registers available to a probe: %r1 (u32, varies per thread), %r2 (u32 parameter),
# %rd1/%rd2 (u64), %f1/%f2 (f32), %fd1/%fd2 (f64), %h1/%h2 (16-bit), %rd9 (a global address).
# Each probe: (name, PTX lines computing the result, register holding it, its store type).
PROBES = [
    ("add.s32", ["add.s32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("mul.lo.s32", ["mul.lo.s32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("mad.lo.s32", ["mad.lo.s32 %r3, %r1, %r2, %r1;"], "%r3", "u32"),
    ("mul.hi.u32", ["mul.hi.u32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("mul.wide.u32", ["mul.wide.u32 %rd3, %r1, %r2;"], "%rd3", "u64"),
    ("shl.b32", ["shl.b32 %r3, %r1, 3;"], "%r3", "u32"),
    ("setp.lt.u32", ["setp.lt.u32 %p1, %r1, %r2;", "selp.u32 %r3, 1, 2, %p1;"], "%r3", "u32"),
    ("min.s32", ["min.s32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("div.u32", ["div.u32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("rem.u32", ["rem.u32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("div.s32", ["div.s32 %r3, %r1, %r2;"], "%r3", "u32"),
    ("add.s64", ["add.s64 %rd3, %rd1, %rd2;"], "%rd3", "u64"),
    ("mul.lo.s64", ["mul.lo.s64 %rd3, %rd1, %rd2;"], "%rd3", "u64"),
    ("shl.b64", ["shl.b64 %rd3, %rd1, 3;"], "%rd3", "u64"),
    ("setp.lt.u64", ["setp.lt.u64 %p1, %rd1, %rd2;", "selp.u32 %r3, 1, 2, %p1;"], "%r3", "u32"),
    ("div.u64", ["div.u64 %rd3, %rd1, %rd2;"], "%rd3", "u64"),
    ("rem.u64", ["rem.u64 %rd3, %rd1, %rd2;"], "%rd3", "u64"),
    ("div.s64", ["div.s64 %rd3, %rd1, %rd2;"], "%rd3", "u64"),
    ("add.f32", ["add.f32 %f3, %f1, %f2;"], "%f3", "f32"),
    ("mul.f32", ["mul.f32 %f3, %f1, %f2;"], "%f3", "f32"),
    ("div.rn.f32", ["div.rn.f32 %f3, %f1, %f2;"], "%f3", "f32"),
    ("rcp.rn.f32", ["rcp.rn.f32 %f3, %f1;"], "%f3", "f32"),
    ("add.f64", ["add.f64 %fd3, %fd1, %fd2;"], "%fd3", "f64"),
    ("div.rn.f64", ["div.rn.f64 %fd3, %fd1, %fd2;"], "%fd3", "f64"),
    ("rcp.rn.f64", ["rcp.rn.f64 %fd3, %fd1;"], "%fd3", "f64"),
    ("cvt.rn.f32.u32", ["cvt.rn.f32.u32 %f3, %r1;"], "%f3", "f32"),
    ("cvt.rn.f32.u64", ["cvt.rn.f32.u64 %f3, %rd1;"], "%f3", "f32"),
    ("cvt.rn.f64.u32", ["cvt.rn.f64.u32 %fd3, %r1;"], "%fd3", "f64"),
    ("cvt.rn.f64.u64", ["cvt.rn.f64.u64 %fd3, %rd1;"], "%fd3", "f64"),
    ("cvt.f32.f16", ["cvt.f32.f16 %f3, %h1;"], "%f3", "f32"),
    ("cvt.rn.f16.f32", ["cvt.rn.f16.f32 %h3, %f1;"], "%h3", "b16"),
    ("cvt.rn.bf16.f32", ["cvt.rn.bf16.f32 %h3, %f1;"], "%h3", "b16"),
    ("cvt.u64.u32", ["cvt.u64.u32 %rd3, %r1;"], "%rd3", "u64"),
    ("red.global.add.f32", ["red.global.add.f32 [%rd9], %f1;"], "%f1", "f32"),
    ("red.global.add.f64", ["red.global.add.f64 [%rd9], %fd1;"], "%fd1", "f64"),
    ("atom.global.add.f32", ["atom.global.add.f32 %f3, [%rd9], %f1;"], "%f3", "f32"),
    ("red.global.add.noftz.f16", ["red.global.add.noftz.f16 [%rd9], %h1;"], "%h1", "b16"),
    ("red.global.add.noftz.bf16", ["red.global.add.noftz.bf16 [%rd9], %h1;"], "%h1", "b16"),  # sm_90 only
    ("atom.global.cas.b16", ["atom.global.cas.b16 %h3, [%rd9], %h1, %h2;"], "%h3", "b16"),
]

TEMPLATE = """.version 9.0
.target sm_{arch}
.address_size 64
.visible .entry probe(.param .u64 out, .param .u64 buf, .param .u32 a, .param .u64 b, .param .f32 c, .param .f64 d)
{{
    .reg .pred %p<4>;
    .reg .b16 %h<4>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<4>;
    .reg .f64 %fd<4>;
    ld.param.u64 %rd8, [out];
    ld.param.u64 %rd9, [buf];
    cvta.to.global.u64 %rd8, %rd8;
    cvta.to.global.u64 %rd9, %rd9;
    ld.param.u32 %r2, [a];
    ld.param.u64 %rd2, [b];
    ld.param.f32 %f2, [c];
    ld.param.f64 %fd2, [d];
    ld.global.u32 %r1, [%rd9+64];
    ld.global.u64 %rd1, [%rd9+72];
    ld.global.f32 %f1, [%rd9+80];
    ld.global.f64 %fd1, [%rd9+88];
    ld.global.u16 %h1, [%rd9+96];
    ld.global.u16 %h2, [%rd9+98];
{body}
    st.global.{ty} [%rd8], {res};
    ret;
}}
"""

# Integer divisions: repeated REPEAT times as a dependent chain (`x = op(x, d)`) by the same
# divisor and the delta divided by REPEAT. Every division in these kernels is by a kernel
# parameter (a size), loop-invariant, and ptxas computes the divisor's reciprocal (I2F, MUFU.RCP,
# F2I) once and keeps it: the chain measures that per-division cost. Other probes are single.
REPEAT = 4
CHAIN = {"%r3": "%r1", "%rd3": "%rd1", "%f3": "%f1", "%fd3": "%fd1"}

# Register moves and constant loads that ptxas places differently from kernel to kernel: not
# the cost of an instruction.
MOVES = ("MOV", "IMAD.MOV", "IMAD.MOV.U32", "HFMA2.MMA", "LDC", "LDC.64", "ULDC", "ULDC.64", "UMOV", "CS2R")

PIPES = ["alu", "fma", "imad", "fp16", "fp64", "xu", "lsu", "cbu", "uniform"]


def pipe_of(op):
    base = op.split(".")[0]
    if base.startswith("U") and base not in ("UMOV",) or base in ("UMOV", "ULDC", "UIADD3", "ULEA", "USHF", "ULOP3", "UISETP", "UIMAD", "UPRMT", "USEL", "UFLO", "UPOPC", "S2UR", "R2UR"):
        return "uniform"
    if base in ("IMAD", "IMUL", "IMADSP", "IDP", "IDP4A"):
        return "imad"
    if base in ("FFMA", "FADD", "FMUL", "FFMA32I", "FADD32I", "FMUL32I", "FCHK", "FSWZADD"):
        return "fma"
    if base in ("HADD2", "HFMA2", "HMUL2", "HSETP2", "HMNMX2"):
        return "fp16"
    if base in ("DADD", "DMUL", "DFMA", "DSETP", "DMNMX"):
        return "fp64"
    if base in ("MUFU", "I2F", "F2I", "F2F", "I2I", "FRND", "I2FP", "F2IP"):
        return "xu"
    if base in ("LDG", "STG", "LD", "ST", "LDS", "STS", "ATOMG", "ATOM", "RED", "REDG", "LDGSTS", "ATOMS", "SHFL",
                "S2R", "CS2R", "LDC", "MEMBAR", "ERRBAR", "CCTL", "LDL", "STL", "MATCH", "REDUX"):
        return "lsu"
    if base in ("BRA", "BRX", "JMP", "CALL", "RET", "EXIT", "BSSY", "BSYNC", "WARPSYNC", "BAR",
                "BREAK", "BPT", "NOP", "YIELD", "KILL", "VOTE", "VOTEU", "BMOV", "WARPGROUP"):
        return "cbu"
    # IADD3, LOP3, SHF, ISETP, LEA, SEL, MOV, PRMT, IMNMX, FSEL, FSETP, FMNMX, F2FP, POPC, FLO,
    # BREV, PLOP3, P2R, R2P, IABS, BMSK, SGXT, ...
    return "alu"


def sass(ptx, arch):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "p.ptx")
        c = os.path.join(d, "p.cubin")
        open(p, "w").write(ptx)
        subprocess.run([PTXAS, f"-arch=sm_{arch}", p, "-o", c], check=True)
        out = subprocess.run([NVDISASM, "-c", c], check=True, capture_output=True, text=True).stdout
    main, subs, cur = [], [], None
    for line in out.splitlines():
        if re.match(r"^(probe|\.text\.probe):", line.strip()):
            cur = main
            continue
        if re.match(r"^\s*\S+:\s*$", line) and not line.strip().startswith(".L_x"):
            cur = subs  # a subroutine label
            continue
        m = re.match(r"^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z0-9_.]+)", line)
        if m and cur is not None:
            op = m.group(2)
            if op == "NOP":
                continue
            cur.append(op)
    # Drop the trailing self-branch ptxas appends after EXIT (never executed).
    while main and main[-1] == "BRA":
        main.pop()
    return main, subs


def counts(ops):
    c = Counter(pipe_of(o) for o in ops)
    return [c.get(p, 0) for p in PIPES]


def main():
    base = {a: sass(TEMPLATE.format(arch=a, body="", ty="u32", res="%r1"), a)[0] for a in ARCHS}
    rows = []
    for name, body, res, ty in PROBES:
        for arch in ARCHS:
            if name.endswith(".bf16") and name.startswith("red") and arch < 90:
                continue
            lines = body
            reps = 1
            first = body[0].split()
            if first[0].startswith(("div.u", "div.s", "rem.")) and len(body) == 1 and first[1].rstrip(",") == res and res in CHAIN and \
                    first[2].rstrip(",") == CHAIN[res]:
                reps = REPEAT
                chained = body[0].replace(f" {CHAIN[res]},", f" {res},", 1)
                lines = [f"mov.b{ {'%r3': 32, '%rd3': 64, '%f3': 32, '%fd3': 64}[res] } {res}, {CHAIN[res]};"] + [chained] * reps
            mainb, subs = sass(TEMPLATE.format(arch=arch, body="\n".join("    " + l for l in lines),
                                               ty=ty, res=res), arch)
            # The store of a wider or narrower value and the set-up of registers differ a little
            # from the baseline's; the baseline for each store type is the probe's own store
            # with a `mov` of its input.
            movs = {"u32": "mov.u32 %r3, %r1;", "u64": "mov.u64 %rd3, %rd1;", "f32": "mov.f32 %f3, %f1;",
                    "f64": "mov.f64 %fd3, %fd1;", "b16": "mov.b16 %h3, %h1;"}
            bres = {"u32": "%r3", "u64": "%rd3", "f32": "%f3", "f64": "%fd3", "b16": "%h3"}[ty]
            b, _ = sass(TEMPLATE.format(arch=arch, body="    " + movs[ty], ty=ty, res=bres), arch)
            # The probe's inputs are loads that ptxas drops when unused: loads are not the cost of
            # an arithmetic probe.
            memory_probe = name.startswith(("ld.", "st.", "red.", "atom.", "shfl."))
            keep = lambda o: o not in MOVES and (memory_probe or not o.startswith("LDG"))
            delta = Counter(o for o in mainb if keep(o))
            delta.subtract(Counter(o for o in b if keep(o)))
            ops = list(delta.elements())
            c = [round(x / reps) if reps > 1 else x for x in counts(ops)]
            if name.startswith(("div.u64", "rem.u64", "div.s64")):
                # The subroutine runs once per division (it is emitted once).
                c = [a + b for a, b in zip(c, counts(subs))]
                ops += subs
            rows.append((name, arch, c, sorted(set(ops))))
    print("// @generated by gpumodel/calibrate/sass_costs.py (ptxas + nvdisasm 13.x); do not edit.")
    print("//")
    print("// SASS instructions per PTX instruction, per execution pipe, for sm_80 and sm_90: the")
    print("// probe kernel's SASS minus the baseline's (see the script's doc string for the method).")
    print("// Columns: " + ", ".join(PIPES) + ". The opcodes each probe produced are listed beside it.")
    print()
    print("/// `(ptx class, sm, [alu, fma, imad, fp16, fp64, xu, lsu, cbu, uniform])`.")
    print("pub const SASS_COSTS: &[(&str, u32, [u16; 9])] = &[")
    for name, arch, c, ops in rows:
        c = [max(0, x) for x in c]
        print(f"    // {' '.join(ops) if ops else '(no SASS: folded into its user)'}")
        print(f"    ({name!r}, {arch}, {c}),".replace("'", '"'))
    print("];")


if __name__ == "__main__":
    sys.exit(main())
