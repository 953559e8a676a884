// Shared definitions for the adaptive-pool kernels.
//
// Everything here compiles with NVRTC alone: no CUDA toolkit header is included. f16 and bf16
// are raw 16-bit storage types; their conversions are inline PTX, and arithmetic on them
// always happens in f32.
#pragma once

typedef unsigned long long u64;
typedef long long i64;

// Threads per block for every kernel in this crate. The Rust launch planner
// (`src/plan.rs`, `THREADS_PER_BLOCK`) uses the same number; `__launch_bounds__` lets ptxas
// budget registers for it.
#define AP_THREADS_PER_BLOCK 256

// Every kernel's launch bounds: 256-thread blocks, at least 2 resident per multiprocessor (at
// most 128 registers a thread). Naming the minimum matters: with `.maxntid` alone, ptxas 13
// squeezes some kernels to 32 registers for full occupancy and spills to local memory to get
// there; with it, no kernel spills (`.ci/ptxas-report.sh` checks).
#define AP_MIN_BLOCKS_PER_SM 2
#define AP_LAUNCH_BOUNDS __launch_bounds__(AP_THREADS_PER_BLOCK, AP_MIN_BLOCKS_PER_SM)

// ---------------------------------------------------------------------------------------------
// The window formula, PyTorch's `start_index` / `end_index`
// (aten/src/ATen/native/AdaptivePooling.h): output cell `o` of `out_len` over an input of
// `in_len` covers [floor(o * in_len / out_len), ceil((o + 1) * in_len / out_len)).
// Exact integer arithmetic, never floats. The Rust twin is `adaptive_pool::window`; the crate's
// tests run both over every small size and compare.
// ---------------------------------------------------------------------------------------------
template <typename I>
__device__ __forceinline__ I window_start(I o, I out_len, I in_len) {
    return (o * in_len) / out_len;
}

template <typename I>
__device__ __forceinline__ I window_end(I o, I out_len, I in_len) {
    return ((o + 1) * in_len + out_len - 1) / out_len;
}

// The input window of output cell (oh, ow).
template <typename I>
struct Window {
    I h0, h1, w0, w1;
    __device__ __forceinline__ I area() const { return (h1 - h0) * (w1 - w0); }
};

template <typename I>
__device__ __forceinline__ Window<I> window_of(I oh, I ow, I in_h, I in_w, I out_h, I out_w) {
    Window<I> win;
    win.h0 = window_start(oh, out_h, in_h);
    win.h1 = window_end(oh, out_h, in_h);
    win.w0 = window_start(ow, out_w, in_w);
    win.w1 = window_end(ow, out_w, in_w);
    return win;
}

// Output cell `cell` of a row-major (outer, out_h, out_w) grid, where outer is the (n, c) plane
// of an NCHW output or n of an NHWC one (channels taken out): its outer index and its window.
template <typename I>
struct Cell {
    I outer;
    Window<I> win;
};

template <typename I>
__device__ __forceinline__ Cell<I> cell_of(I cell, I in_h, I in_w, I out_h, I out_w) {
    const I ow = cell % out_w;
    const I rest = cell / out_w;
    const I oh = rest % out_h;
    Cell<I> at;
    at.outer = rest / out_h;
    at.win = window_of(oh, ow, in_h, in_w, out_h, out_w);
    return at;
}

// ---------------------------------------------------------------------------------------------
// Storage types and their accumulators
// ---------------------------------------------------------------------------------------------
struct __align__(2) f16_raw {
    unsigned short bits;
};
struct __align__(2) bf16_raw {
    unsigned short bits;
};

// Accumulator type: f32 for f32/f16/bf16 (as PyTorch's CUDA kernels), f64 for f64.
template <typename T> struct Acc;
template <> struct Acc<float> { typedef float type; };
template <> struct Acc<double> { typedef double type; };
template <> struct Acc<f16_raw> { typedef float type; };
template <> struct Acc<bf16_raw> { typedef float type; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }

__device__ __forceinline__ float to_acc(f16_raw v) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(v.bits));
    return r;
}

__device__ __forceinline__ float to_acc(bf16_raw v) {
    // A bf16 is the upper half of an f32: widening is exact.
    return __uint_as_float(((unsigned int)v.bits) << 16);
}

template <typename T> __device__ __forceinline__ T from_acc(typename Acc<T>::type v);

template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }

template <> __device__ __forceinline__ f16_raw from_acc<f16_raw>(float v) {
    f16_raw r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(v));
    return r;
}

template <> __device__ __forceinline__ bf16_raw from_acc<bf16_raw>(float v) {
    bf16_raw r;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(v));
#else
    // Round to nearest even by hand (no cvt.bf16 below sm_80). NaN stays NaN (quieted).
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (unsigned short)((u >> 16) | 0x0040u);
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);
        r.bits = (unsigned short)(u >> 16);
    }
#endif
    return r;
}

// ---------------------------------------------------------------------------------------------
// Atomic add of an already-rounded value of the storage type (PyTorch's `gpuAtomicAdd`).
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }

__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }

__device__ __forceinline__ void atomic_add(f16_raw* p, f16_raw v) {
    // Native f16 atomics exist from sm_70, below every architecture this crate builds.
    asm volatile("red.global.add.noftz.f16 [%0], %1;" ::"l"(p), "h"(v.bits) : "memory");
}

__device__ __forceinline__ void atomic_add(bf16_raw* p, bf16_raw v) {
#if __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.noftz.bf16 [%0], %1;" ::"l"(p), "h"(v.bits) : "memory");
#else
    // Compare-and-swap on the 16-bit word (atom.cas.b16 exists from sm_70).
    unsigned short old = p->bits;
    unsigned short assumed;
    do {
        assumed = old;
        bf16_raw cur;
        cur.bits = assumed;
        const bf16_raw sum = from_acc<bf16_raw>(to_acc(cur) + to_acc(v));
        asm volatile("atom.global.cas.b16 %0, [%1], %2, %3;"
                     : "=h"(old)
                     : "l"(p), "h"(assumed), "h"(sum.bits)
                     : "memory");
    } while (old != assumed);
#endif
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------
#define AP_WARP 32

// Sum over the 32 lanes of a warp; every lane gets the total. All 32 lanes must call it.
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int offset = AP_WARP / 2; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// ---------------------------------------------------------------------------------------------
// 16-byte vector access: V16<T>::N elements of T per 16 bytes, loaded into or stored from the
// accumulator type. `p` must be 16-byte aligned.
// ---------------------------------------------------------------------------------------------
template <typename T> struct V16;

template <> struct V16<float> {
    static const int N = 4;
    __device__ static __forceinline__ void load(const float* p, float* a) {
        const float4 v = *reinterpret_cast<const float4*>(p);
        a[0] = v.x; a[1] = v.y; a[2] = v.z; a[3] = v.w;
    }
    __device__ static __forceinline__ void store(float* p, const float* a) {
        float4 v;
        v.x = a[0]; v.y = a[1]; v.z = a[2]; v.w = a[3];
        *reinterpret_cast<float4*>(p) = v;
    }
    // The 16 bytes `store` writes, as a word (to store it more than once).
    __device__ static __forceinline__ uint4 pack(const float* a) {
        return make_uint4(__float_as_uint(a[0]), __float_as_uint(a[1]), __float_as_uint(a[2]),
                          __float_as_uint(a[3]));
    }
};

template <> struct V16<double> {
    static const int N = 2;
    __device__ static __forceinline__ void load(const double* p, double* a) {
        const double2 v = *reinterpret_cast<const double2*>(p);
        a[0] = v.x; a[1] = v.y;
    }
    __device__ static __forceinline__ void store(double* p, const double* a) {
        double2 v;
        v.x = a[0]; v.y = a[1];
        *reinterpret_cast<double2*>(p) = v;
    }
    __device__ static __forceinline__ uint4 pack(const double* a) {
        return make_uint4((unsigned int)__double2loint(a[0]), (unsigned int)__double2hiint(a[0]),
                          (unsigned int)__double2loint(a[1]), (unsigned int)__double2hiint(a[1]));
    }
};

// Widens the eight f16 or bf16 values of a 16-byte word (four 32-bit words, low half first:
// little-endian) to f32.
template <typename H>
__device__ __forceinline__ void unpack16_half(uint4 r, float* a) {
    const unsigned int w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        H lo, hi;
        lo.bits = (unsigned short)(w[k] & 0xffffu);
        hi.bits = (unsigned short)(w[k] >> 16);
        a[2 * k] = to_acc(lo);
        a[2 * k + 1] = to_acc(hi);
    }
}

// f16 and bf16: eight 16-bit values per 16 bytes (unpack16_half's order).
template <typename H> struct V16Half {
    static const int N = 8;
    __device__ static __forceinline__ void load(const H* p, float* a) {
        unpack16_half<H>(*reinterpret_cast<const uint4*>(p), a);
    }
    __device__ static __forceinline__ uint4 pack(const float* a) {
        unsigned int w[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const unsigned int lo = from_acc<H>(a[2 * k]).bits;
            const unsigned int hi = from_acc<H>(a[2 * k + 1]).bits;
            w[k] = lo | (hi << 16);
        }
        return make_uint4(w[0], w[1], w[2], w[3]);
    }
    __device__ static __forceinline__ void store(H* p, const float* a) {
        *reinterpret_cast<uint4*>(p) = pack(a);
    }
};
template <> struct V16<f16_raw> : V16Half<f16_raw> {};
template <> struct V16<bf16_raw> : V16Half<bf16_raw> {};

// Whether every pointer is 16-byte aligned (vector kernels fall back to scalar access if not).
__device__ __forceinline__ bool aligned16(const void* a, const void* b) {
    return (((u64)a | (u64)b) & 15u) == 0;
}

// ---------------------------------------------------------------------------------------------
// Kernel entry points. Every kernel of the crate (but window_table.cu's) has the parameter list
// the Rust launch planner passes (src/plan.rs):
//   (const T* src, T* dst, u64 batch, u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w)
// where src/dst are input/output (forward) or grad_output/grad_input (backward) and in_*/out_*
// always describe the forward's input and output. AP_INSTANTIATE(KERNEL, T, DT) defines
// extern "C" KERNEL_DT_idx32 and KERNEL_DT_idx64, calling the device template
// KERNEL<T, I>(src, dst, batch, channels, in_h, in_w, out_h, out_w) with I = unsigned int or
// u64. The planner picks _idx32 only where every index and product fits (plan::fits_idx32).
// ---------------------------------------------------------------------------------------------
#define AP_INSTANTIATE_INDEX(KERNEL, T, DT, SUFFIX, I)                                           \
    extern "C" __global__ void AP_LAUNCH_BOUNDS KERNEL##_##DT##_##SUFFIX(                         \
        const T* __restrict__ src, T* __restrict__ dst, u64 batch, u64 channels, u64 in_h,       \
        u64 in_w, u64 out_h, u64 out_w) {                                                        \
        KERNEL<T, I>(src, dst, (I)batch, (I)channels, (I)in_h, (I)in_w, (I)out_h, (I)out_w);    \
    }
#define AP_INSTANTIATE(KERNEL, T, DT)                                                            \
    AP_INSTANTIATE_INDEX(KERNEL, T, DT, idx32, unsigned int)                                     \
    AP_INSTANTIATE_INDEX(KERNEL, T, DT, idx64, u64)
#define AP_INSTANTIATE_ALL_DTYPES(KERNEL)                                                        \
    AP_INSTANTIATE(KERNEL, float, f32)                                                           \
    AP_INSTANTIATE(KERNEL, double, f64)                                                          \
    AP_INSTANTIATE(KERNEL, f16_raw, f16)                                                         \
    AP_INSTANTIATE(KERNEL, bf16_raw, bf16)
