// Deterministic backward AdaptiveAvgPool2d: gather instead of scatter.
//
// Each grad_input element sums grad_output[oy, ox] / area(oy, ox) over exactly the output cells
// whose windows cover it and is written once. The covering cells are the window formula with
// input and output swapped (common.cuh, `window_start/end(i, in, out)`; proved against the
// forward's windows by the crate's exhaustive window test). No zero-fill pass, no atomics, a
// fixed summation order: bitwise identical results run after run. The NCHW gather reads the
// covering ranges and window lengths from per-block tables (gather_tables.cuh) where they fit,
// and writes 16 bytes of consecutive elements per thread.
//
// Entry points and index types: AP_INSTANTIATE in common.cuh. Accumulates in the accumulator
// type (f32 for f32/f16/bf16, f64 for f64) and rounds once.
#include "common.cuh"
#include "gather_tables.cuh"

// Stores the N values of a thread's run at grad_in[e..e + N): one 16-byte store where `vec`
// (grad_in 16-byte aligned) and the run is whole, else element by element up to `total`.
template <typename T, typename I>
__device__ __forceinline__ void store_run(T* __restrict__ grad_in, I e, I total,
                                          const typename Acc<T>::type* vals, bool vec) {
    const int N = V16<T>::N;
    if (vec && e + (I)N <= total) {
        V16<T>::store(grad_in + e, vals);
    } else {
#pragma unroll
        for (int j = 0; j < N; ++j) {
            if (e + (I)j < total) {
                grad_in[e + (I)j] = from_acc<T>(vals[j]);
            }
        }
    }
}

// Sum of grad / area over the cells covering input row `ih` and column `iw` of one plane,
// whose grad_output element (oy, ox) is at `g[oy * row_stride + ox * col_stride]`.
template <typename T, typename I>
__device__ __forceinline__ typename Acc<T>::type gather_one(const T* __restrict__ g, I ih, I iw,
                                                            I in_h, I in_w, I out_h, I out_w,
                                                            I row_stride, I col_stride) {
    typedef typename Acc<T>::type A;
    const I oy0 = window_start(ih, in_h, out_h);
    const I oy1 = window_end(ih, in_h, out_h);
    const I ox0 = window_start(iw, in_w, out_w);
    const I ox1 = window_end(iw, in_w, out_w);
    A sum = 0;
    for (I oy = oy0; oy < oy1; ++oy) {
        const I kh = window_end(oy, out_h, in_h) - window_start(oy, out_h, in_h);
        for (I ox = ox0; ox < ox1; ++ox) {
            const I kw = window_end(ox, out_w, in_w) - window_start(ox, out_w, in_w);
            sum += to_acc(g[oy * row_stride + ox * col_stride]) / (A)(kh * kw);
        }
    }
    return sum;
}

// Per element, dividing: the fallback for extents the tables do not hold.
template <typename T, typename I>
__device__ __forceinline__ void gather_nchw_dividing(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I total, I in_h,
                                                     I in_w, I out_h, I out_w) {
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const I iw = idx % in_w;
        const I rest = idx / in_w;
        const I ih = rest % in_h;
        const I plane = rest / in_h;
        const T* g = grad_out + plane * out_h * out_w;
        grad_in[idx] = from_acc<T>(gather_one(g, ih, iw, in_h, in_w, out_h, out_w, out_w, (I)1));
    }
}

// With the window tables: a thread per 16 bytes of consecutive grad_input elements (a flat
// run that may cross rows and planes; block runs, gather_tables.cuh), its coordinates stepped,
// not divided, from element to element and from one turn to the next. Neighbouring elements
// covered by the same output cells have the same value: it is summed once per run of them.
// Every element's value is gather_one's, summed in the same order.
template <typename T, typename I>
__device__ __forceinline__ void gather_nchw_tables(const GatherTables& t,
                                                   const T* __restrict__ grad_out,
                                                   T* __restrict__ grad_in, I total, I in_h,
                                                   I in_w, I out_h, I out_w) {
    typedef typename Acc<T>::type A;
    const int N = V16<T>::N;
    // A packed covering range never has all bits set (its ends are at most AP_GATHER_TABLE).
    const unsigned int none = 0xffffffffu;
    const bool vec = (((u64)grad_in) & 15u) == 0;
    const I out_hw = out_h * out_w;
    const I vectors = total / (I)N + (I)(total % (I)N != 0);
    const BlockRun<I> run = block_run(vectors, false);
    I v = run.begin + (I)threadIdx.x;
    Step3<I> pos = split3(v * (I)N, in_h, in_w);
    const Step3<I> by = split3((I)blockDim.x * (I)N, in_h, in_w);
    for (; v < run.end; v += (I)blockDim.x) {
        const I e = v * (I)N;
        Step3<I> p = pos;
        const T* g = grad_out + p.outer * out_hw;
        unsigned int rows = t.row_cover[p.h];
        unsigned int cached = none;
        A value = 0;
        A vals[V16<T>::N];
#pragma unroll
        for (int j = 0; j < N; ++j) {
            if (j > 0 && ++p.w == in_w) {
                p.w = 0;
                cached = none;
                if (++p.h == in_h) {
                    p.h = 0;
                    g += out_hw;
                }
                rows = t.row_cover[p.h];
            }
            vals[j] = 0;
            if (e + (I)j < total) {
                const unsigned int cols = t.col_cover[p.w];
                if (cols != cached) {
                    cached = cols;
                    value = gather_cells<T, I>(t, g, rows, cols, out_w, (I)1);
                }
                vals[j] = value;
            }
        }
        store_run(grad_in, e, total, vals, vec);
        advance3(pos, by, in_h, in_w);
    }
}

template <typename T, typename I>
__device__ __forceinline__ void backward_gather_nchw(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    __shared__ GatherTables tables;
    const I total = batch * channels * in_h * in_w;
    if (gather_tables_fit(in_h, in_w, out_h, out_w)) {
        fill_gather_tables(tables, (unsigned int)in_h, (unsigned int)in_w, (unsigned int)out_h,
                           (unsigned int)out_w);
        gather_nchw_tables(tables, grad_out, grad_in, total, in_h, in_w, out_h, out_w);
    } else {
        gather_nchw_dividing(grad_out, grad_in, total, in_h, in_w, out_h, out_w);
    }
}

// Channels-last: consecutive threads take consecutive channels, so both the grad_output reads
// and the grad_input writes are coalesced.
template <typename T, typename I>
__device__ __forceinline__ void backward_gather_nhwc(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    const I total = batch * in_h * in_w * channels;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const I c = idx % channels;
        I rest = idx / channels;
        const I iw = rest % in_w;
        rest /= in_w;
        const I ih = rest % in_h;
        const I n = rest / in_h;
        const T* g = grad_out + n * out_h * out_w * channels + c;
        grad_in[idx] = from_acc<T>(
            gather_one(g, ih, iw, in_h, in_w, out_h, out_w, out_w * channels, channels));
    }
}

// Global pooling (1x1 output): every grad_input element of a plane is grad * (1 / (H * W)),
// the reciprocal rounded once in the accumulator type. That is PyTorch's CUDA MeanBackward
// (`grad / numel` divides by a scalar, which its CUDA kernel does as a multiplication by
// `opmath_t(1) / numel`), and it costs a multiplication per element instead of a division.
template <typename T>
__device__ __forceinline__ typename Acc<T>::type reciprocal_area(u64 hw) {
    typedef typename Acc<T>::type A;
    return (A)1 / (A)hw;
}

// The per-element loop: the fallback of the two layouts' kernels below.
template <typename T, typename I>
__device__ __forceinline__ void broadcast(const T* __restrict__ grad_out,
                                          T* __restrict__ grad_in, I batch, I channels, I in_h,
                                          I in_w, bool channels_last) {
    const I hw = in_h * in_w;
    const I total = batch * channels * hw;
    const typename Acc<T>::type scale = reciprocal_area<T>((u64)hw);
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        // NCHW: the (n, c) plane is idx / hw. NHWC: n = idx / (hw * C), c = idx % C.
        const I cell = channels_last ? (idx / (hw * channels)) * channels + idx % channels
                                     : idx / hw;
        grad_in[idx] = from_acc<T>(to_acc(grad_out[cell]) * scale);
    }
}

// NCHW: a thread per 16 bytes of consecutive grad_input elements (block runs,
// gather_tables.cuh). Where a plane holds at least that many elements, a run crosses at most
// one plane boundary: the thread loads both planes' gradients and picks one per element. Smaller
// planes, and grids with a thread per element (src/plan.rs launches those for problems that
// fit the device at once: the shortest dependent chain), take the per-element loop.
template <typename T, typename I>
__device__ __forceinline__ void backward_broadcast_nchw(const T* __restrict__ grad_out,
                                                        T* __restrict__ grad_in, I batch,
                                                        I channels, I in_h, I in_w, I, I) {
    typedef typename Acc<T>::type A;
    const int N = V16<T>::N;
    const I hw = in_h * in_w;
    const I planes = batch * channels;
    const I total = planes * hw;
    if (hw < (I)N || (u64)blockDim.x * (u64)gridDim.x >= (u64)total) {
        broadcast(grad_out, grad_in, batch, channels, in_h, in_w, false);
        return;
    }
    const A scale = reciprocal_area<T>((u64)hw);
    const bool vec = (((u64)grad_in) & 15u) == 0;
    const I vectors = total / (I)N + (I)(total % (I)N != 0);
    const BlockRun<I> run = block_run(vectors, true);
    for (I v = run.begin + (I)threadIdx.x; v < run.end; v += (I)blockDim.x) {
        const I e = v * (I)N;
        const I plane = e / hw;
        // Elements of the run still in `plane` (at least one).
        const I left = hw - (e - plane * hw);
        const I next = plane + 1 < planes ? plane + 1 : plane;
        const A first = to_acc(grad_out[plane]) * scale;
        const A second = to_acc(grad_out[next]) * scale;
        A vals[V16<T>::N];
#pragma unroll
        for (int j = 0; j < N; ++j) {
            vals[j] = (I)j < left ? first : second;
        }
        store_run(grad_in, e, total, vals, vec);
    }
}

// Most pixels per run of the channels-last broadcast below (src/plan.rs `BROADCAST_RUN` matches).
#define AP_BROADCAST_RUN 8

// NHWC with C a multiple of the vector width and 16-byte aligned buffers. With fewer than two
// 16-byte words of grad_input per thread, a thread per word (block runs, gather_tables.cuh),
// loading its gradient: the shortest dependent chain, which is what a launch that small waits
// for. With more, a column is 16 bytes of one image's channels; a warp takes 32 consecutive
// columns (a group) and a run of the image's pixels, loads and scales the columns' gradients
// once, and stores each lane's packed word at every pixel of the run: one contiguous stretch
// per pixel, a load per run instead of per pixel. Runs are words / threads pixels long, at most
// AP_BROADCAST_RUN, and split H * W evenly. Warp unit w is (group w / runs, run w % runs), so a
// block's warps take consecutive runs of the same columns and their loads meet in L1: each
// gradient comes from L2 or DRAM about once, whatever the caches hold between pixels (a word
// per thread reads an image's gradient row once per pixel). Otherwise, and with a thread per
// element (as for the NCHW kernel), the per-element loop. Every element is grad * (1 / (H * W))
// rounded once to T: the values of the loop.
template <typename T, typename I>
__device__ __forceinline__ void backward_broadcast_nhwc(const T* __restrict__ grad_out,
                                                        T* __restrict__ grad_in, I batch,
                                                        I channels, I in_h, I in_w, I, I) {
    typedef typename Acc<T>::type A;
    const int N = V16<T>::N;
    const I hw = in_h * in_w;
    const I total = batch * channels * hw;
    const u64 threads = (u64)blockDim.x * (u64)gridDim.x;
    if (channels % (I)N != 0 || !aligned16(grad_out, grad_in) || threads >= (u64)total) {
        broadcast(grad_out, grad_in, batch, channels, in_h, in_w, true);
        return;
    }
    const A scale = reciprocal_area<T>((u64)hw);
    const I words = total / (I)N;
    if ((u64)words < 2 * threads) {
        const I image = hw * channels;
        const BlockRun<I> run = block_run(words, true);
        for (I v = run.begin + (I)threadIdx.x; v < run.end; v += (I)blockDim.x) {
            const I e = v * (I)N;
            A vals[V16<T>::N];
            V16<T>::load(grad_out + (e / image) * channels + e % channels, vals);
#pragma unroll
            for (int j = 0; j < N; ++j) {
                vals[j] = vals[j] * scale;
            }
            V16<T>::store(grad_in + e, vals);
        }
        return;
    }
    const I vectors = channels / (I)N;  // words per pixel
    const I columns = batch * vectors;
    const I groups = (columns + 31) / 32;
    // Fewer threads than elements (checked above), so this fits I.
    const I per_thread = words / (I)threads;
    const I run_length = per_thread < AP_BROADCAST_RUN ? per_thread : AP_BROADCAST_RUN;
    const I runs = (hw + run_length - 1) / run_length;
    const I base = hw / runs;
    const I longer = hw % runs;  // runs [0, longer) take one pixel more
    const I units = groups * runs;
    const I lane = (I)threadIdx.x % 32;
    const I warps = (I)threads / 32;
    for (I w = ((I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x) / 32; w < units; w += warps) {
        const I group = w / runs;
        const I run = w - group * runs;
        const I column = group * 32 + lane;
        if (column >= columns) {
            continue;
        }
        const I n = column / vectors;
        const I c = (column - n * vectors) * (I)N;
        A vals[V16<T>::N];
        V16<T>::load(grad_out + n * channels + c, vals);
#pragma unroll
        for (int j = 0; j < N; ++j) {
            vals[j] = vals[j] * scale;
        }
        const uint4 word = V16<T>::pack(vals);
        const I first = run * base + (run < longer ? run : longer);
        const I count = base + (run < longer ? (I)1 : (I)0);
        uint4* dst = reinterpret_cast<uint4*>(grad_in + (n * hw + first) * channels + c);
        // Not unrolled: the stores are independent either way, and the registers an unrolled
        // loop takes would cost the small launches occupancy.
#pragma unroll 1
        for (I k = 0; k < count; ++k, dst += vectors) {
            *dst = word;
        }
    }
}

AP_INSTANTIATE_ALL_DTYPES(backward_gather_nchw)
AP_INSTANTIATE_ALL_DTYPES(backward_gather_nhwc)
AP_INSTANTIATE_ALL_DTYPES(backward_broadcast_nchw)
AP_INSTANTIATE_ALL_DTYPES(backward_broadcast_nhwc)
