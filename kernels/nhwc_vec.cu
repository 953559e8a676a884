// Channels-last kernels that move 16 bytes of consecutive channels per access (4 x f32,
// 2 x f64, 8 x f16 or bf16). The launch planner picks them only when C is a multiple of that
// count; where a pointer is not 16-byte aligned (a view into a larger buffer) they fall back to
// scalar accesses of the same elements, so results never depend on alignment. Each channel is
// summed in the same order as in the scalar kernels (forward.cu, backward_gather.cu).
#include "common.cuh"
#include "gather_tables.cuh"

// Loads the N channels at q into vals, vectorised or not.
template <typename T>
__device__ __forceinline__ void load_group(const T* q, typename Acc<T>::type* vals, bool vec) {
    if (vec) {
        V16<T>::load(q, vals);
    } else {
#pragma unroll
        for (int j = 0; j < V16<T>::N; ++j) {
            vals[j] = to_acc(q[j]);
        }
    }
}

// Stores the N channels in vals at q, vectorised or not.
template <typename T>
__device__ __forceinline__ void store_group(T* q, const typename Acc<T>::type* vals, bool vec) {
    if (vec) {
        V16<T>::store(q, vals);
    } else {
#pragma unroll
        for (int j = 0; j < V16<T>::N; ++j) {
            q[j] = from_acc<T>(vals[j]);
        }
    }
}

// Forward: one thread per (n, oh, ow, group of N channels).
template <typename T, typename I>
__device__ __forceinline__ void forward_nhwc_vec(const T* __restrict__ in, T* __restrict__ out,
                                                 I batch, I channels, I in_h, I in_w, I out_h,
                                                 I out_w) {
    typedef typename Acc<T>::type A;
    const int N = V16<T>::N;
    const bool vec = aligned16(in, out);
    const I groups = channels / (I)N;
    const I total = batch * out_h * out_w * groups;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const I g = idx % groups;
        const I cell = idx / groups;
        const Cell<I> at = cell_of(cell, in_h, in_w, out_h, out_w);
        const I n = at.outer;
        const Window<I> win = at.win;
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const T* p = in + n * in_h * in_w * channels + g * (I)N;
        A acc[V16<T>::N];
#pragma unroll
        for (int j = 0; j < N; ++j) {
            acc[j] = 0;
        }
        for (I h = h0; h < h1; ++h) {
            for (I w = w0; w < w1; ++w) {
                A vals[V16<T>::N];
                load_group(p + (h * in_w + w) * channels, vals, vec);
#pragma unroll
                for (int j = 0; j < N; ++j) {
                    acc[j] += vals[j];
                }
            }
        }
        const A area = (A)((h1 - h0) * (w1 - w0));
#pragma unroll
        for (int j = 0; j < N; ++j) {
            acc[j] = acc[j] / area;
        }
        store_group(out + cell * channels + g * (I)N, acc, vec);
    }
}


// Deterministic backward (gather): one thread per (n, ih, iw, group of N channels). Where the
// window tables (gather_tables.cuh) hold the extents, the covering ranges and window lengths
// come from them, each block takes a run of items (block_run) and each thread's
// (n, ih, iw, group) is stepped from one turn to the next instead of divided out; otherwise
// everything is divided per element in a grid-stride loop. Either way each channel sums
// grad / area over the covering cells in row-major order.
template <typename T, typename I>
__device__ __forceinline__ void backward_gather_nhwc_vec(const T* __restrict__ grad_out,
                                                         T* __restrict__ grad_in, I batch,
                                                         I channels, I in_h, I in_w, I out_h,
                                                         I out_w) {
    typedef typename Acc<T>::type A;
    const int N = V16<T>::N;
    __shared__ GatherTables tables;
    const bool vec = aligned16(grad_out, grad_in);
    const I groups = channels / (I)N;
    const I total = batch * in_h * in_w * groups;
    if (gather_tables_fit(in_h, in_w, out_h, out_w)) {
        fill_gather_tables(tables, (unsigned int)in_h, (unsigned int)in_w, (unsigned int)out_h,
                           (unsigned int)out_w);
        const I plane = out_h * out_w * channels;
        const I step = (I)blockDim.x;
        const BlockRun<I> run = block_run(total, false);
        I idx = run.begin + (I)threadIdx.x;
        I g = idx % groups;
        Step3<I> pos = split3(idx / groups, in_h, in_w);
        const I by_g = step % groups;
        const Step3<I> by = split3(step / groups, in_h, in_w);
        for (; idx < run.end; idx += step) {
            const unsigned int rows = tables.row_cover[pos.h];
            const unsigned int cols = tables.col_cover[pos.w];
            const unsigned int oy0 = rows & 0xffffu, oy1 = rows >> 16;
            const unsigned int ox0 = cols & 0xffffu, ox1 = cols >> 16;
            const T* p = grad_out + pos.outer * plane + g * (I)N;
            A acc[V16<T>::N];
#pragma unroll
            for (int j = 0; j < N; ++j) {
                acc[j] = 0;
            }
            for (unsigned int oy = oy0; oy < oy1; ++oy) {
                const unsigned int kh = tables.row_len[oy];
                for (unsigned int ox = ox0; ox < ox1; ++ox) {
                    const A area = (A)(kh * tables.col_len[ox]);
                    A vals[V16<T>::N];
                    load_group(p + ((I)oy * out_w + (I)ox) * channels, vals, vec);
#pragma unroll
                    for (int j = 0; j < N; ++j) {
                        acc[j] += vals[j] / area;
                    }
                }
            }
            store_group(grad_in + idx * (I)N, acc, vec);
            // (pixel, g) += (stride / groups, stride % groups), the pixel as (n, ih, iw).
            g += by_g;
            const bool carry = g >= groups;
            if (carry) {
                g -= groups;
            }
            advance3(pos, by, in_h, in_w);
            if (carry && ++pos.w == in_w) {
                pos.w = 0;
                if (++pos.h == in_h) {
                    pos.h = 0;
                    ++pos.outer;
                }
            }
        }
        return;
    }
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const I g = idx % groups;
        const I pixel = idx / groups;
        const I iw = pixel % in_w;
        const I rest = pixel / in_w;
        const I ih = rest % in_h;
        const I n = rest / in_h;
        const I oy0 = window_start(ih, in_h, out_h);
        const I oy1 = window_end(ih, in_h, out_h);
        const I ox0 = window_start(iw, in_w, out_w);
        const I ox1 = window_end(iw, in_w, out_w);
        const T* p = grad_out + n * out_h * out_w * channels + g * (I)N;
        A acc[V16<T>::N];
#pragma unroll
        for (int j = 0; j < N; ++j) {
            acc[j] = 0;
        }
        for (I oy = oy0; oy < oy1; ++oy) {
            const I kh = window_end(oy, out_h, in_h) - window_start(oy, out_h, in_h);
            for (I ox = ox0; ox < ox1; ++ox) {
                const I kw = window_end(ox, out_w, in_w) - window_start(ox, out_w, in_w);
                const A area = (A)(kh * kw);
                A vals[V16<T>::N];
                load_group(p + (oy * out_w + ox) * channels, vals, vec);
#pragma unroll
                for (int j = 0; j < N; ++j) {
                    acc[j] += vals[j] / area;
                }
            }
        }
        store_group(grad_in + pixel * channels + g * (I)N, acc, vec);
    }
}

AP_INSTANTIATE_ALL_DTYPES(forward_nhwc_vec)
AP_INSTANTIATE_ALL_DTYPES(backward_gather_nhwc_vec)
