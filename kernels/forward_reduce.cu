// Forward kernels that split one window over many threads and reduce, for the shapes where one
// thread per output element starves the GPU: global pooling (1x1 output) and large windows
// with few outputs. Same formula and accumulator types as forward.cu (see common.cuh); only the
// summation order differs.
#include "common.cuh"
#include "batch.cuh"

// Global pooling, NCHW: one warp per (n, c) plane; the plane is contiguous, so lanes stride
// over it with 16-byte vector loads (up to 8 per lane in flight) after a scalar head that
// reaches 16-byte alignment.
template <typename T, typename I>
__device__ __forceinline__ void forward_global_nchw(const T* __restrict__ in,
                                                    T* __restrict__ out, I batch, I channels,
                                                    I in_h, I in_w, I, I) {
    typedef typename Acc<T>::type A;
    const I planes = batch * channels;
    const I hw = in_h * in_w;
    const int N = V16<T>::N;
    const I lane = (I)(threadIdx.x % AP_WARP);
    const I warps = (I)blockDim.x / AP_WARP * (I)gridDim.x;
    for (I p = ((I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x) / AP_WARP; p < planes;
         p += warps) {
        const T* src = in + p * hw;
        // Elements before the first 16-byte boundary (elements are naturally aligned).
        I head = (I)(((16u - ((u64)src & 15u)) & 15u) / sizeof(T));
        head = head < hw ? head : hw;
        const I vectors = (hw - head) / (I)N;
        const I tail = head + vectors * (I)N;
        // Each lane has at most one element of the head and one of the tail (both are shorter
        // than a vector); they are loaded first so that they are in flight with the vectors.
        typedef typename Raw<T>::type R;
        R head_value = 0;
        R tail_value = 0;
        if (lane < head) {
            head_value = raw_of(src[lane]);
        }
        if (tail + lane < hw) {
            tail_value = raw_of(src[tail + lane]);
        }
        // Lane order: its head element, its vectors lane, lane + 32, ... (8 loads in flight,
        // batch.cuh), its tail element.
        A sum = 0;
        bool head_added = false;
        const uint4* vsrc = reinterpret_cast<const uint4*>(src + head);
        for (I v0 = lane; v0 < vectors; v0 += AP_WARP * 8) {
            uint4 r[8];
            unsigned int first[8];
            int n = 0;
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                r[k] = make_uint4(0u, 0u, 0u, 0u);
                if (v0 + (I)k * AP_WARP < vectors) {
                    r[k] = vsrc[v0 + (I)k * AP_WARP];
                    n = k + 1;
                }
                first[k] = r[k].x;
            }
            after_loads(first);
            if (!head_added && lane < head) {
                sum += to_acc(of_raw<T>(head_value));
            }
            head_added = true;
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                if (k < n) {
                    r[k].x = first[k];
                    A vals[V16<T>::N];
                    unpack16<T>(r[k], vals);
#pragma unroll
                    for (int j = 0; j < N; ++j) {
                        sum += vals[j];
                    }
                }
            }
        }
        if (!head_added && lane < head) {
            sum += to_acc(of_raw<T>(head_value));
        }
        if (tail + lane < hw) {
            sum += to_acc(of_raw<T>(tail_value));
        }
        sum = warp_sum(sum);
        if (lane == 0) {
            out[p] = from_acc<T>(sum / (A)hw);
        }
    }
}

// Large windows, many cells, NCHW: one warp per output cell, lanes across the window's columns
// row by row (coalesced), each lane with up to 8 loads in flight, then a warp reduction.
template <typename T, typename I>
__device__ __forceinline__ void forward_warp_nchw(const T* __restrict__ in, T* __restrict__ out,
                                                  I batch, I channels, I in_h, I in_w, I out_h,
                                                  I out_w) {
    typedef typename Acc<T>::type A;
    const I lane = (I)(threadIdx.x % AP_WARP);
    const I warps = (I)blockDim.x / AP_WARP * (I)gridDim.x;
    const I total = batch * channels * out_h * out_w;
    for (I cell = ((I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x) / AP_WARP; cell < total;
         cell += warps) {
        const Cell<I> at = cell_of(cell, in_h, in_w, out_h, out_w);
        const I plane = at.outer;
        const Window<I> win = at.win;
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const T* p = in + plane * in_h * in_w;
        // Row by row, lanes across the columns, 8 loads per lane in flight (batch.cuh).
        A sum = sum_window(p, in_w, h0, h1, (I)1, w0 + lane, w1, (I)AP_WARP);
        sum = warp_sum(sum);
        if (lane == 0) {
            out[cell] = from_acc<T>(sum / (A)((h1 - h0) * (w1 - w0)));
        }
    }
}

// Large windows, few cells, NCHW: one block per output cell; warp k takes rows h0 + k,
// h0 + k + 8, ..., lanes across columns, each lane with up to 8 loads in flight; warp sums meet
// in shared memory.
template <typename T, typename I>
__device__ __forceinline__ void forward_block_nchw(const T* __restrict__ in, T* __restrict__ out,
                                                   I batch, I channels, I in_h, I in_w, I out_h,
                                                   I out_w) {
    typedef typename Acc<T>::type A;
    __shared__ A warp_sums[AP_THREADS_PER_BLOCK / AP_WARP];
    const I lane = (I)(threadIdx.x % AP_WARP);
    const I warp = (I)(threadIdx.x / AP_WARP);
    const I warps_per_block = (I)blockDim.x / AP_WARP;
    const I total = batch * channels * out_h * out_w;
    for (I cell = (I)blockIdx.x; cell < total; cell += (I)gridDim.x) {
        const Cell<I> at = cell_of(cell, in_h, in_w, out_h, out_w);
        const I plane = at.outer;
        const Window<I> win = at.win;
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const T* p = in + plane * in_h * in_w;
        // Rows h0 + warp, h0 + warp + 8, ..., lanes across the columns, 8 loads per lane in
        // flight (batch.cuh).
        A sum = sum_window(p, in_w, h0 + warp, h1, warps_per_block, w0 + lane, w1, (I)AP_WARP);
        sum = warp_sum(sum);
        if (lane == 0) {
            warp_sums[warp] = sum;
        }
        __syncthreads();
        if (warp == 0) {
            A total_sum = lane < warps_per_block ? warp_sums[lane] : (A)0;
            total_sum = warp_sum(total_sum);
            if (lane == 0) {
                out[cell] = from_acc<T>(total_sum / (A)((h1 - h0) * (w1 - w0)));
            }
        }
        __syncthreads();  // warp_sums is reused by the next cell
    }
}

// Large windows, few cells, NHWC: one block per (cell, tile of up to 32 channels). Thread
// (ty, tx) sums channel tile * CT + tx over window pixels ty, ty + P, ... (CT threads per pixel
// read consecutive channels: coalesced); the P partial sums of a channel meet in shared memory.
template <typename T, typename I>
__device__ __forceinline__ void forward_block_nhwc(const T* __restrict__ in, T* __restrict__ out,
                                                   I batch, I channels, I in_h, I in_w, I out_h,
                                                   I out_w) {
    typedef typename Acc<T>::type A;
    __shared__ A partial[AP_THREADS_PER_BLOCK];
    // Channels per tile: the smallest power of two covering C, at most a warp.
    I ct = 1;
    while (ct < channels && ct < AP_WARP) {
        ct *= 2;
    }
    const I pixel_groups = (I)blockDim.x / ct;
    const I tx = (I)threadIdx.x % ct;
    const I ty = (I)threadIdx.x / ct;
    const I tiles = (channels + ct - 1) / ct;
    const I jobs = batch * out_h * out_w * tiles;
    for (I job = (I)blockIdx.x; job < jobs; job += (I)gridDim.x) {
        const I tile = job % tiles;
        const I cell = job / tiles;
        const Cell<I> at = cell_of(cell, in_h, in_w, out_h, out_w);
        const I n = at.outer;
        const Window<I> win = at.win;
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const I kw = w1 - w0;
        const I area = (h1 - h0) * kw;
        const I c = tile * ct + tx;
        A sum = 0;
        if (c < channels) {
            const T* p = in + n * in_h * in_w * channels + c;
            for (I k = ty; k < area; k += pixel_groups) {
                const I h = h0 + k / kw;
                const I w = w0 + k % kw;
                sum += to_acc(p[(h * in_w + w) * channels]);
            }
        }
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (I s = pixel_groups / 2; s > 0; s /= 2) {
            if (ty < s) {
                partial[threadIdx.x] += partial[threadIdx.x + s * ct];
            }
            __syncthreads();
        }
        if (ty == 0 && c < channels) {
            out[cell * channels + c] = from_acc<T>(partial[tx] / (A)area);
        }
        __syncthreads();  // partial is reused by the next job
    }
}

AP_INSTANTIATE_ALL_DTYPES(forward_global_nchw)
AP_INSTANTIATE_ALL_DTYPES(forward_warp_nchw)
AP_INSTANTIATE_ALL_DTYPES(forward_block_nchw)
AP_INSTANTIATE_ALL_DTYPES(forward_block_nhwc)
