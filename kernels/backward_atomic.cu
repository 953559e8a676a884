// Backward AdaptiveAvgPool2d, atomic-add scatter (PyTorch's atomic_adaptive_average_gradinput).
//
// grad_input must be zero before the launch (the launch plan zeroes it on the same stream).
// Each grad_output element computes delta = grad / area in the accumulator type, rounds it once
// to the storage type, and atomically adds it to every grad_input element of its window (window
// formula in common.cuh). Overlapping windows make the summation order depend on scheduling:
// results are not bitwise reproducible run to run.
//
// NCHW: a window is split over Tc x Tr threads (both powers of two). Tc consecutive lanes walk
// along each window row (coalesced atomics) for windows of more than AP_SCATTER_SPLIT_AREA
// elements; smaller windows keep one thread per cell (Tc = 1). Tr threads take every Tr-th row,
// Tr > 1 only for windows of many more atomics than AP_SCATTER_THREAD_WORK, so that a few cells
// with huge windows still fill the GPU. f16 and bf16 add 4-byte-aligned pairs of neighbours with
// one packed atomic (atomic_pairs.cuh, which lists the SASS each architecture gets).
// NHWC: one thread per grad_output element (lanes along channels: coalesced), Tr threads per
// window as in NCHW.
//
// Entry points and index types: AP_INSTANTIATE in common.cuh.
#include "common.cuh"
#include "atomic_pairs.cuh"

// Windows of more than this many elements (nominal: ceil(in/out) in each dimension) are split
// along their rows; the Rust planner (`plan.rs`, SCATTER_SPLIT_AREA) uses the same number.
// Modelled (gpumodel, not measured) on 32x256x56x56 -> 7x7: 8x8 windows split over 8 lanes
// gain 13% in f32 on H100 but lose 12% on A100 and in f64 on both, so 8x8 stays whole.
#define AP_SCATTER_SPLIT_AREA 64
// Atomics a thread keeps at least when a window's rows are split (`rows_split`); plan.rs
// (SCATTER_THREAD_WORK) uses the same number.
#define AP_SCATTER_THREAD_WORK 256

// Whether 16-bit elements are added in pairs.
template <typename T> struct Paired { static const bool value = false; };
template <> struct Paired<f16_raw> { static const bool value = true; };
template <> struct Paired<bf16_raw> { static const bool value = true; };

// log2 of the smallest power of two >= v, at most `cap`.
template <typename I>
__device__ __forceinline__ unsigned int log2_ceil(I v, unsigned int cap) {
    unsigned int l = 0;
    while (l < cap && ((I)1 << l) < v) {
        ++l;
    }
    return l;
}

// log2 of Tr, the threads that share a window's rows: the window's `span_h` rows of `per_row`
// atomics each are split while every thread keeps at least AP_SCATTER_THREAD_WORK atomics (and
// a row). A function of the shapes alone, so that every problem with the same windows splits
// them alike; the Rust planner (`plan.rs`, `scatter_items`) mirrors it to size the grid.
template <typename I>
__device__ __forceinline__ unsigned int rows_split(I span_h, I per_row) {
    const u64 work = (u64)span_h * (u64)per_row;
    unsigned int l = 0;
    while (((u64)2 << l) <= (u64)span_h && (work >> (l + 1)) >= AP_SCATTER_THREAD_WORK) {
        ++l;
    }
    return l;
}

// Atomically add delta to grad_in[e] for e in [e0, e1), the thread taking e0 + tc, + tc + Tc...
template <typename T, typename I>
__device__ __forceinline__ void scatter_row(T* grad_in, I e0, I e1, I tc, I tcs, I, T delta) {
    for (I e = e0 + tc; e < e1; e += tcs) {
        atomic_add(grad_in + e, delta);
    }
}

// Pairs: element e sits at virtual index v = e + s, where s = 1 if grad_in is 2 mod 4 bytes
// aligned; pair q covers v = 2q, 2q + 1 (a 4-byte-aligned word). A pair reaching past either
// end of the tensor (`total` elements) adds its one element with a scalar atomic. Indices stay
// below total + 2, which fits I (at most 2^31 elements with 32-bit indices).
template <typename T, typename I>
__device__ __forceinline__ void scatter_pairs(T* grad_in, I e0, I e1, I tc, I tcs, I total,
                                              T delta) {
    if (e1 - e0 == 1) {
        // A one-element row (windows of width one, or upsampling): a pair would add -0 to its
        // neighbour for nothing.
        if (tc == 0) {
            atomic_add(grad_in + e0, delta);
        }
        return;
    }
    const I s = (I)(((u64)grad_in >> 1) & 1);
    const I v0 = e0 + s, v1 = e1 + s;
    for (I v = ((v0 >> 1) + tc) * 2; v < v1; v += 2 * tcs) {
        const bool lo = v >= v0;
        const bool hi = v + 1 < v1;
        if (v >= s && v + 1 - s < total) {
            atomic_add_pair(grad_in + (v - s), delta, delta, lo, hi);
        } else if (lo) {
            atomic_add(grad_in + (v - s), delta);
        } else {
            atomic_add(grad_in + (v + 1 - s), delta);
        }
    }
}

template <typename I>
__device__ __forceinline__ void scatter_row(f16_raw* g, I e0, I e1, I tc, I tcs, I total,
                                            f16_raw d) {
    scatter_pairs(g, e0, e1, tc, tcs, total, d);
}

template <typename I>
__device__ __forceinline__ void scatter_row(bf16_raw* g, I e0, I e1, I tc, I tcs, I total,
                                            bf16_raw d) {
    scatter_pairs(g, e0, e1, tc, tcs, total, d);
}

// Grad_output element idx (NCHW) adds its delta to rows tr, tr + trs, ... of its window, lanes
// tc, tc + tcs, ... along each row.
template <typename T, typename I>
__device__ __forceinline__ void scatter_cell(const T* __restrict__ grad_out,
                                             T* __restrict__ grad_in, I idx, I tc, I tcs, I tr,
                                             I trs, I total, I in_h, I in_w, I out_h, I out_w) {
    typedef typename Acc<T>::type A;
    const Cell<I> at = cell_of(idx, in_h, in_w, out_h, out_w);
    const Window<I> win = at.win;
    const T delta = from_acc<T>(to_acc(grad_out[idx]) / (A)win.area());
    I row = (at.outer * in_h + win.h0 + tr) * in_w;
    for (I h = win.h0 + tr; h < win.h1; h += trs, row += trs * in_w) {
        scatter_row(grad_in, row + win.w0, row + win.w1, tc, tcs, total, delta);
    }
}

template <typename T, typename I>
__device__ __forceinline__ void backward_atomic_nchw(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    const I cells = batch * channels * out_h * out_w;
    const I total = batch * channels * in_h * in_w;
    const I span_w = (in_w + out_w - 1) / out_w;
    const I span_h = (in_h + out_h - 1) / out_h;
    // Lanes along a row: enough to cover its width (in pairs for 16-bit types), at most a warp.
    const I units = Paired<T>::value ? (span_w + 1) / 2 : span_w;
    const unsigned int lc =
        (u64)span_w * (u64)span_h > AP_SCATTER_SPLIT_AREA ? log2_ceil(units, 5u) : 0u;
    const unsigned int lr = rows_split(span_h, (units + ((I)1 << lc) - 1) >> lc);
    const I tcs = (I)1 << lc, trs = (I)1 << lr;
    const I gid = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    if ((stride & ((tcs << lr) - 1)) == 0) {
        // Tc x Tr divides the grid's stride (always, up to 256 threads a cell): each thread
        // keeps its lane and row part and steps over cells, as the 64-bit loop below would.
        const I tc = gid & (tcs - 1);
        const I tr = (gid >> lc) & (trs - 1);
        for (I idx = gid >> (lc + lr); idx < cells; idx += stride >> (lc + lr)) {
            scatter_cell(grad_out, grad_in, idx, tc, tcs, tr, trs, total, in_h, in_w, out_h,
                         out_w);
        }
    } else {
        // Items (cell, tr, tc) counted in 64 bits (more than 256 threads a cell).
        const u64 items = (u64)cells << (lc + lr);
        for (u64 item = gid; item < items; item += stride) {
            scatter_cell(grad_out, grad_in, (I)(item >> (lc + lr)), (I)item & (tcs - 1), tcs,
                         (I)(item >> lc) & (trs - 1), trs, total, in_h, in_w, out_h, out_w);
        }
    }
}

// Grad_output element idx (NHWC) adds its delta to rows tr, tr + trs, ... of its window.
template <typename T, typename I>
__device__ __forceinline__ void scatter_cell_nhwc(const T* __restrict__ grad_out,
                                                  T* __restrict__ grad_in, I idx, I tr, I trs,
                                                  I channels, I in_h, I in_w, I out_h, I out_w) {
    typedef typename Acc<T>::type A;
    const I cell = idx / channels;
    const I c = idx - cell * channels;
    const I ow = cell % out_w;
    const I rest = cell / out_w;
    const I oh = rest % out_h;
    const I n = rest / out_h;
    const Window<I> win = window_of(oh, ow, in_h, in_w, out_h, out_w);
    const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
    const T delta = from_acc<T>(to_acc(grad_out[idx]) / (A)((h1 - h0) * (w1 - w0)));
    T* p = grad_in + n * in_h * in_w * channels + c;
    for (I h = h0 + tr; h < h1; h += trs) {
        for (I w = w0; w < w1; ++w) {
            atomic_add(p + (h * in_w + w) * channels, delta);
        }
    }
}

template <typename T, typename I>
__device__ __forceinline__ void backward_atomic_nhwc(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    const I total = batch * out_h * out_w * channels;
    const I span_h = (in_h + out_h - 1) / out_h;
    const I span_w = (in_w + out_w - 1) / out_w;
    const I trs = (I)1 << rows_split(span_h, span_w);
    const I stride = (I)blockDim.x * (I)gridDim.x;
    const I start = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (trs == 1) {
        // One thread per grad_output element (channels fastest: lanes along channels).
        for (I idx = start; idx < total; idx += stride) {
            scatter_cell_nhwc(grad_out, grad_in, idx, (I)0, (I)1, channels, in_h, in_w, out_h,
                              out_w);
        }
        return;
    }
    // Items (tr, idx), tr slowest: the grid-stride step is split once into whole passes over
    // idx and a remainder.
    const I step_tr = stride / total;
    const I step_idx = stride - step_tr * total;
    I tr = start / total;
    I idx = start - tr * total;
    while (tr < trs) {
        scatter_cell_nhwc(grad_out, grad_in, idx, tr, trs, channels, in_h, in_w, out_h, out_w);
        tr += step_tr;
        if (idx < total - step_idx) {
            idx += step_idx;
        } else {
            idx -= total - step_idx;
            ++tr;
        }
    }
}

AP_INSTANTIATE_ALL_DTYPES(backward_atomic_nchw)
AP_INSTANTIATE_ALL_DTYPES(backward_atomic_nhwc)
