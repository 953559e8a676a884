// Packed atomic adds for f16 and bf16: one atomic updates the two 16-bit neighbours of a
// 4-byte-aligned word (PyTorch's fastSpecializedAtomicAdd does the same).
//
// What ptxas 13.0 makes of each (ptxas -arch=sm_XX, then nvdisasm):
//   red.global.add.noftz.f16x2    sm_75: RED.E.ADD.F16x2.RN   sm_80: RED.E.ADD.F16x2.RN
//                                 sm_90: REDG.E.ADD.F16x2.RN  (native on all three)
//   red.global.add.noftz.bf16x2   sm_90: REDG.E.ADD.BF16x2.RN (native); the PTX ISA has it
//                                 from sm_90 only, so below sm_90 this file uses a 32-bit
//                                 compare-and-swap loop (LDG + ATOMG.CAS per trip) that
//                                 updates both halves at once.
//   red.global.add.noftz.f16 / .bf16 (scalar, common.cuh's atomic_add): a 32-bit CAS loop
//                                 (LDG + ATOMG.E.CAS + ALU) on sm_75, sm_80 and sm_90.
// So a pair costs one native atomic where a scalar 16-bit add costs a CAS loop.
#pragma once
#include "common.cuh"

// The bits of -0.0 in f16 and bf16: adding it leaves every value (+0, -0, NaN aside) as it was,
// so a pair whose other half lies outside the window adds -0 there.
#define AP_HALF_NEG_ZERO 0x8000u

// Atomically add `lo` to p[0] where `add_lo` and `hi` to p[1] where `add_hi`. `p` must be
// 4-byte aligned and both halves must lie inside the tensor.
__device__ __forceinline__ void atomic_add_pair(f16_raw* p, f16_raw lo, f16_raw hi, bool add_lo,
                                                bool add_hi) {
    const unsigned int l = add_lo ? (unsigned int)lo.bits : AP_HALF_NEG_ZERO;
    const unsigned int h = add_hi ? (unsigned int)hi.bits : AP_HALF_NEG_ZERO;
    asm volatile("red.global.add.noftz.f16x2 [%0], %1;" ::"l"(p), "r"(l | (h << 16))
                 : "memory");
}

__device__ __forceinline__ void atomic_add_pair(bf16_raw* p, bf16_raw lo, bf16_raw hi,
                                                bool add_lo, bool add_hi) {
#if __CUDA_ARCH__ >= 900
    const unsigned int l = add_lo ? (unsigned int)lo.bits : AP_HALF_NEG_ZERO;
    const unsigned int h = add_hi ? (unsigned int)hi.bits : AP_HALF_NEG_ZERO;
    asm volatile("red.global.add.noftz.bf16x2 [%0], %1;" ::"l"(p), "r"(l | (h << 16))
                 : "memory");
#else
    // Compare-and-swap on the 32-bit word; a half outside the window keeps its bits exactly.
    unsigned int* w = reinterpret_cast<unsigned int*>(p);
    unsigned int old = *w;
    unsigned int assumed;
    do {
        assumed = old;
        bf16_raw cl, ch;
        cl.bits = (unsigned short)(assumed & 0xffffu);
        ch.bits = (unsigned short)(assumed >> 16);
        const unsigned int nl =
            add_lo ? (unsigned int)from_acc<bf16_raw>(to_acc(cl) + to_acc(lo)).bits : cl.bits;
        const unsigned int nh =
            add_hi ? (unsigned int)from_acc<bf16_raw>(to_acc(ch) + to_acc(hi)).bits : ch.bits;
        asm volatile("atom.global.cas.b32 %0, [%1], %2, %3;"
                     : "=r"(old)
                     : "l"(w), "r"(assumed), "r"(nl | (nh << 16))
                     : "memory");
    } while (old != assumed);
#endif
}
