// Channels-last forward with each output's window split over the threads of a block, for every
// NHWC shape: few cells with large windows (squeeze-excite, global pooling of a small batch)
// as well as many cells with small windows.
//
// A block is blockDim.x lanes by blockDim.y slices (256 threads). Lane x takes work item
// base + x, an item being (n, oh, ow, group of W consecutive channels), so the lanes of a
// slice read consecutive 16-byte groups of one pixel (coalesced); slice y sums the pixels
// y, y + S, y + 2S, ... of the item's window in row-major order (S = blockDim.y), stepping
// (h, w) and the element offset incrementally: no division per pixel. It loads BATCH pixels
// into registers before adding any (BATCH loads in flight per thread), in the same order. The
// S partial sums of an item meet in shared memory in a fixed tree order, so each output's
// summation order depends only on the shapes and S: results are bitwise reproducible run to
// run. With S = 1 the order is the row-major order of forward.cu and nhwc_vec.cu. The launch
// planner (src/plan.rs) picks S so that the grid fills the device.
//
// Two entry-point families: forward_nhwc_split (W = V16<T>::N channels per item, 16-byte
// loads where both buffers are 16-byte aligned, else scalar loads of the same elements; needs
// C a multiple of W) and forward_nhwc_split1 (W = 1, any C).
#include "common.cuh"
#include "batch.cuh"

// Pixels a thread loads before it adds them.
#define AP_SPLIT_BATCH 4

// The global-space address of a generic pointer into global memory.
__device__ __forceinline__ u64 global_address(const void* p) {
    u64 g;
    asm("cvta.to.global.u64 %0, %1;" : "=l"(g) : "l"(p));
    return g;
}

// W channels of BATCH (4) pixels as loaded, before widening to the accumulator type. Each
// `load4` issues its four pixels' loads in one asm statement, so all four are in flight before
// the first add: the compiler would otherwise place each add right after its load.

// Vector pixels: one 16-byte load each (the address must be 16-byte aligned), widened by
// batch.cuh's unpack16.
template <typename T>
struct VectorPixels {
    uint4 v[AP_SPLIT_BATCH];
    __device__ __forceinline__ void load4(const u64* a) {
        asm volatile(
            "ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%16];\n\t"
            "ld.global.nc.v4.u32 {%4, %5, %6, %7}, [%17];\n\t"
            "ld.global.nc.v4.u32 {%8, %9, %10, %11}, [%18];\n\t"
            "ld.global.nc.v4.u32 {%12, %13, %14, %15}, [%19];"
            : "=r"(v[0].x), "=r"(v[0].y), "=r"(v[0].z), "=r"(v[0].w), "=r"(v[1].x),
              "=r"(v[1].y), "=r"(v[1].z), "=r"(v[1].w), "=r"(v[2].x), "=r"(v[2].y),
              "=r"(v[2].z), "=r"(v[2].w), "=r"(v[3].x), "=r"(v[3].y), "=r"(v[3].z),
              "=r"(v[3].w)
            : "l"(a[0]), "l"(a[1]), "l"(a[2]), "l"(a[3]));
    }
    __device__ __forceinline__ void add_to(int b, typename Acc<T>::type* acc) const {
        typename Acc<T>::type vals[V16<T>::N];
        unpack16<T>(v[b], vals);
#pragma unroll
        for (int j = 0; j < V16<T>::N; ++j) {
            acc[j] += vals[j];
        }
    }
};

// One channel per pixel.
template <typename T> struct ScalarLoad4;
template <> struct ScalarLoad4<float> {
    __device__ static __forceinline__ void load4(const u64* a, float* v) {
        asm volatile(
            "ld.global.nc.f32 %0, [%4];\n\tld.global.nc.f32 %1, [%5];\n\t"
            "ld.global.nc.f32 %2, [%6];\n\tld.global.nc.f32 %3, [%7];"
            : "=f"(v[0]), "=f"(v[1]), "=f"(v[2]), "=f"(v[3])
            : "l"(a[0]), "l"(a[1]), "l"(a[2]), "l"(a[3]));
    }
};
template <> struct ScalarLoad4<double> {
    __device__ static __forceinline__ void load4(const u64* a, double* v) {
        asm volatile(
            "ld.global.nc.f64 %0, [%4];\n\tld.global.nc.f64 %1, [%5];\n\t"
            "ld.global.nc.f64 %2, [%6];\n\tld.global.nc.f64 %3, [%7];"
            : "=d"(v[0]), "=d"(v[1]), "=d"(v[2]), "=d"(v[3])
            : "l"(a[0]), "l"(a[1]), "l"(a[2]), "l"(a[3]));
    }
};
template <typename H> struct ScalarLoad4Half {
    __device__ static __forceinline__ void load4(const u64* a, H* v) {
        asm volatile(
            "ld.global.nc.b16 %0, [%4];\n\tld.global.nc.b16 %1, [%5];\n\t"
            "ld.global.nc.b16 %2, [%6];\n\tld.global.nc.b16 %3, [%7];"
            : "=h"(v[0].bits), "=h"(v[1].bits), "=h"(v[2].bits), "=h"(v[3].bits)
            : "l"(a[0]), "l"(a[1]), "l"(a[2]), "l"(a[3]));
    }
};
template <> struct ScalarLoad4<f16_raw> : ScalarLoad4Half<f16_raw> {};
template <> struct ScalarLoad4<bf16_raw> : ScalarLoad4Half<bf16_raw> {};

// W scalar channels per pixel: the one-channel kernel (W = 1) and the vector kernel's fallback
// for misaligned buffers (W = V16<T>::N, element-aligned addresses).
template <typename T, int W>
struct ScalarPixels {
    T v[W][AP_SPLIT_BATCH];
    __device__ __forceinline__ void load4(const u64* a) {
#pragma unroll
        for (int j = 0; j < W; ++j) {
            const u64 aj[AP_SPLIT_BATCH] = {a[0] + j * sizeof(T), a[1] + j * sizeof(T),
                                            a[2] + j * sizeof(T), a[3] + j * sizeof(T)};
            ScalarLoad4<T>::load4(aj, v[j]);
        }
    }
    __device__ __forceinline__ void add_to(int b, typename Acc<T>::type* acc) const {
#pragma unroll
        for (int j = 0; j < W; ++j) {
            acc[j] += to_acc(v[j][b]);
        }
    }
};

// A thread's walk over its pixels of a window: (w, offset) of the current pixel, stepped by S
// pixels in row-major order without dividing.
template <typename I>
struct Walk {
    I w, off;
    I w1, kw, dw, step, wrap;
    __device__ __forceinline__ void next() {
        w += dw;
        off += step;
        if (w >= w1) {
            w -= kw;
            off += wrap;
        }
    }
};

// Adds the `count` pixels of `walk` (at element offsets from global address g) into acc, in
// walk order, loading four at a time; a batch's missing pixels (past count) reload its first
// one and are not added.
template <typename T, typename I, typename Pixels>
__device__ __forceinline__ void sum_pixels(u64 g, Walk<I> walk, I count,
                                           typename Acc<T>::type* acc) {
    while (count > 0) {
        u64 a[AP_SPLIT_BATCH];
        a[0] = g + (u64)walk.off * sizeof(T);
#pragma unroll
        for (int b = 1; b < AP_SPLIT_BATCH; ++b) {
            a[b] = a[0];
            if ((I)b < count) {
                walk.next();
                a[b] = g + (u64)walk.off * sizeof(T);
            }
        }
        Pixels px;
        px.load4(a);
#pragma unroll
        for (int b = 0; b < AP_SPLIT_BATCH; ++b) {
            if ((I)b < count) {
                px.add_to(b, acc);
            }
        }
        if (count <= (I)AP_SPLIT_BATCH) {
            break;
        }
        walk.next();
        count -= (I)AP_SPLIT_BATCH;
    }
}

// Vector or scalar loads for W channels per pixel: a vector is 16 bytes, so only W = V16<T>::N
// has the vector path.
template <typename T, typename I, int W>
struct SumWindow {
    __device__ static __forceinline__ void run(bool vec, u64 g, Walk<I> walk, I count,
                                               typename Acc<T>::type* acc) {
        if (vec) {
            sum_pixels<T, I, VectorPixels<T> >(g, walk, count, acc);
        } else {
            sum_pixels<T, I, ScalarPixels<T, W> >(g, walk, count, acc);
        }
    }
};
template <typename T, typename I>
struct SumWindow<T, I, 1> {
    __device__ static __forceinline__ void run(bool, u64 g, Walk<I> walk, I count,
                                               typename Acc<T>::type* acc) {
        sum_pixels<T, I, ScalarPixels<T, 1> >(g, walk, count, acc);
    }
};

template <typename T, typename I, int W>
__device__ __forceinline__ void nhwc_split(const T* __restrict__ in, T* __restrict__ out,
                                           I batch, I channels, I in_h, I in_w, I out_h,
                                           I out_w) {
    typedef typename Acc<T>::type A;
    // Partial sums, channel-major so that consecutive lanes touch consecutive words.
    __shared__ A partial[W][AP_THREADS_PER_BLOCK];
    const bool vec = W > 1 && aligned16(in, out);
    const I lanes = (I)blockDim.x;
    const I slices = (I)blockDim.y;
    const I x = (I)threadIdx.x;
    const I y = (I)threadIdx.y;
    const I t = y * lanes + x;
    const I groups = channels / (I)W;
    const I items = batch * out_h * out_w * groups;
    const I row = in_w * channels;
    for (I base = (I)blockIdx.x * lanes; base < items; base += (I)gridDim.x * lanes) {
        const I item = base + x;
        A acc[W];
#pragma unroll
        for (int j = 0; j < W; ++j) {
            acc[j] = 0;
        }
        I area = 1;
        if (item < items) {
            const I g = item % groups;
            const Cell<I> at = cell_of(item / groups, in_h, in_w, out_h, out_w);
            const Window<I> win = at.win;
            Walk<I> walk;
            walk.w1 = win.w1;
            walk.kw = win.w1 - win.w0;
            area = (win.h1 - win.h0) * walk.kw;
            walk.wrap = row - walk.kw * channels;
            I count, h;
            if (slices == 1) {
                h = win.h0;
                walk.w = win.w0;
                walk.dw = 1;
                walk.step = channels;
                count = area;
            } else {
                h = win.h0 + y / walk.kw;
                walk.w = win.w0 + y % walk.kw;
                walk.dw = slices % walk.kw;
                walk.step = (slices / walk.kw) * row + walk.dw * channels;
                count = y < area ? (area - y + slices - 1) / slices : 0;
            }
            walk.off = h * row + walk.w * channels;
            const u64 base_address = global_address(in + at.outer * in_h * row + g * (I)W);
            SumWindow<T, I, W>::run(vec, base_address, walk, count, acc);
        }
        if (slices > 1) {
            // Tree over the slices: while s partial sums remain, slice y < s - ceil(s / 2)
            // adds slice y + ceil(s / 2)'s. Every block takes this branch alike.
#pragma unroll
            for (int j = 0; j < W; ++j) {
                partial[j][t] = acc[j];
            }
            __syncthreads();
            for (I s = slices; s > 1;) {
                const I half = (s + 1) / 2;
                if (y + half < s) {
#pragma unroll
                    for (int j = 0; j < W; ++j) {
                        partial[j][t] += partial[j][t + half * lanes];
                    }
                }
                __syncthreads();
                s = half;
            }
            if (y == 0) {
#pragma unroll
                for (int j = 0; j < W; ++j) {
                    acc[j] = partial[j][x];
                }
            }
            __syncthreads();  // partial is reused by the next items
        }
        if (y == 0 && item < items) {
            T* q = out + item * (I)W;
#pragma unroll
            for (int j = 0; j < W; ++j) {
                acc[j] = acc[j] / (A)area;
            }
            if (vec) {
                V16<T>::store(q, acc);
            } else {
#pragma unroll
                for (int j = 0; j < W; ++j) {
                    q[j] = from_acc<T>(acc[j]);
                }
            }
        }
    }
}

template <typename T, typename I>
__device__ __forceinline__ void forward_nhwc_split(const T* __restrict__ in, T* __restrict__ out,
                                                   I batch, I channels, I in_h, I in_w, I out_h,
                                                   I out_w) {
    nhwc_split<T, I, V16<T>::N>(in, out, batch, channels, in_h, in_w, out_h, out_w);
}

template <typename T, typename I>
__device__ __forceinline__ void forward_nhwc_split1(const T* __restrict__ in,
                                                    T* __restrict__ out, I batch, I channels,
                                                    I in_h, I in_w, I out_h, I out_w) {
    nhwc_split<T, I, 1>(in, out, batch, channels, in_h, in_w, out_h, out_w);
}

AP_INSTANTIATE_ALL_DTYPES(forward_nhwc_split)
AP_INSTANTIATE_ALL_DTYPES(forward_nhwc_split1)
