// Helpers for kernels that keep several loads in flight per thread: a batch of loads is
// issued into registers before any of them is added, in a fixed order.
#pragma once
#include "common.cuh"

// An empty asm that takes the 8 values as operands: every load that produced them is issued
// before it and every add that uses them comes after it, so the compiler cannot interleave the
// adds with the loads (which would leave one load in flight at a time). Emits no instruction.
__device__ __forceinline__ void after_loads(float (&v)[8]) {
    asm volatile("" : "+f"(v[0]), "+f"(v[1]), "+f"(v[2]), "+f"(v[3]), "+f"(v[4]), "+f"(v[5]),
                      "+f"(v[6]), "+f"(v[7]));
}
__device__ __forceinline__ void after_loads(unsigned short (&v)[8]) {
    asm volatile("" : "+h"(v[0]), "+h"(v[1]), "+h"(v[2]), "+h"(v[3]), "+h"(v[4]), "+h"(v[5]),
                      "+h"(v[6]), "+h"(v[7]));
}
__device__ __forceinline__ void after_loads(double (&v)[8]) {
    asm volatile("" : "+d"(v[0]), "+d"(v[1]), "+d"(v[2]), "+d"(v[3]), "+d"(v[4]), "+d"(v[5]),
                      "+d"(v[6]), "+d"(v[7]));
}
__device__ __forceinline__ void after_loads(unsigned int (&v)[8]) {
    asm volatile("" : "+r"(v[0]), "+r"(v[1]), "+r"(v[2]), "+r"(v[3]), "+r"(v[4]), "+r"(v[5]),
                      "+r"(v[6]), "+r"(v[7]));
}
__device__ __forceinline__ void after_loads(unsigned int (&v)[4]) {
    asm volatile("" : "+r"(v[0]), "+r"(v[1]), "+r"(v[2]), "+r"(v[3]));
}

// Storage values as the operands after_loads takes: f32 and f64 as they are, f16 and bf16 as
// their bits (so that their conversions also come after every load).
template <typename T> struct Raw { typedef T type; };
template <> struct Raw<f16_raw> { typedef unsigned short type; };
template <> struct Raw<bf16_raw> { typedef unsigned short type; };
__device__ __forceinline__ float raw_of(float v) { return v; }
__device__ __forceinline__ double raw_of(double v) { return v; }
__device__ __forceinline__ unsigned short raw_of(f16_raw v) { return v.bits; }
__device__ __forceinline__ unsigned short raw_of(bf16_raw v) { return v.bits; }
template <typename T> __device__ __forceinline__ T of_raw(typename Raw<T>::type v) { return v; }
template <> __device__ __forceinline__ f16_raw of_raw<f16_raw>(unsigned short v) {
    f16_raw r;
    r.bits = v;
    return r;
}
template <> __device__ __forceinline__ bf16_raw of_raw<bf16_raw>(unsigned short v) {
    bf16_raw r;
    r.bits = v;
    return r;
}

// The elements p[h * in_w + w] for rows h = h_first, h_first + h_step, ... below h1 and, in
// each row, columns w = w_first, w_first + w_step, ... below w1, summed in that (row-major)
// order in the accumulator type, in batches of 8 loads issued ahead of their adds. The row and
// column are stepped, not divided, from one element to the next.
template <typename T, typename I>
__device__ __forceinline__ typename Acc<T>::type sum_window(const T* p, I in_w, I h_first,
                                                            I h1, I h_step, I w_first, I w1,
                                                            I w_step) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<T>::type R;
    A sum = 0;
    if (w_first >= w1) {
        return sum;
    }
    I h = h_first;
    I w = w_first;
    while (h < h1) {
        R v[8];
        int n = 0;
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            v[u] = 0;
            if (h < h1) {
                v[u] = raw_of(p[h * in_w + w]);
                n = u + 1;
                w += w_step;
                if (w >= w1) {
                    w = w_first;
                    h += h_step;
                }
            }
        }
        after_loads(v);
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            if (u < n) {
                sum += to_acc(of_raw<T>(v[u]));
            }
        }
    }
    return sum;
}

// The V16<T>::N values of a 16-byte vector already in registers, in the accumulator type, in
// memory order (V16<T>::load without the load).
__device__ __forceinline__ void unpack16(uint4 r, float* a) {
    a[0] = __uint_as_float(r.x);
    a[1] = __uint_as_float(r.y);
    a[2] = __uint_as_float(r.z);
    a[3] = __uint_as_float(r.w);
}
__device__ __forceinline__ void unpack16(uint4 r, double* a) {
    a[0] = __hiloint2double((int)r.y, (int)r.x);
    a[1] = __hiloint2double((int)r.w, (int)r.z);
}
template <typename T>
__device__ __forceinline__ void unpack16(uint4 r, typename Acc<T>::type* a);
template <> __device__ __forceinline__ void unpack16<float>(uint4 r, float* a) {
    unpack16(r, a);
}
template <> __device__ __forceinline__ void unpack16<double>(uint4 r, double* a) {
    unpack16(r, a);
}
template <> __device__ __forceinline__ void unpack16<f16_raw>(uint4 r, float* a) {
    unpack16_half<f16_raw>(r, a);
}
template <> __device__ __forceinline__ void unpack16<bf16_raw>(uint4 r, float* a) {
    unpack16_half<bf16_raw>(r, a);
}

// sum + row[w0] + row[w0 + 1] + ... + row[w1 - 1], added in that order: scalar loads up to the
// first 16-byte boundary, then 16-byte vectors (4 loads in flight before their adds), then
// scalar loads for the rest. Alignment is checked here, at run time.
template <typename T, typename I>
__device__ __forceinline__ typename Acc<T>::type sum_row_vec16(const T* row, I w0, I w1,
                                                               typename Acc<T>::type sum) {
    typedef typename Acc<T>::type A;
    const int N = V16<T>::N;
    I w = w0;
    I head = (I)(((16u - ((u64)(row + w0) & 15u)) & 15u) / sizeof(T));
    head = head < w1 - w0 ? head : w1 - w0;
    for (const I stop = w0 + head; w < stop; ++w) {
        sum += to_acc(row[w]);
    }
    const I vectors = (w1 - w) / (I)N;
    const uint4* v = reinterpret_cast<const uint4*>(row + w);
    for (I k = 0; k < vectors; k += 4) {
        uint4 r[4];
        unsigned int first[4];
        int n = 0;
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            r[u] = make_uint4(0u, 0u, 0u, 0u);
            if (k + (I)u < vectors) {
                r[u] = v[k + (I)u];
                n = u + 1;
            }
            first[u] = r[u].x;
        }
        after_loads(first);
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            if (u < n) {
                r[u].x = first[u];
                A vals[V16<T>::N];
                unpack16<T>(r[u], vals);
#pragma unroll
                for (int j = 0; j < N; ++j) {
                    sum += vals[j];
                }
            }
        }
    }
    for (w += vectors * (I)N; w < w1; ++w) {
        sum += to_acc(row[w]);
    }
    return sum;
}
