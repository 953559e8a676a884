// Deterministic backward AdaptiveAvgPool2d: gather instead of scatter.
//
// One thread per grad_input element: it sums grad_output[oy, ox] / area(oy, ox) over exactly
// the output cells whose windows cover it and writes the result once. The covering cells are
// the window formula with input and output swapped (common.cuh, `window_start/end(i, in, out)`;
// proved against the forward's windows by the crate's exhaustive window test). No zero-fill
// pass, no atomics, a fixed summation order: bitwise identical results run after run.
//
// Entry points and index types: AP_INSTANTIATE in common.cuh. Accumulates in the accumulator type (f32 for f32/f16/bf16,
// f64 for f64) and rounds once.
#include "common.cuh"

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

template <typename T, typename I>
__device__ __forceinline__ void backward_gather_nchw(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    const I total = batch * channels * in_h * in_w;
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

// Global pooling (1x1 output): every grad_input element of a plane is grad / (H * W).
template <typename T, typename I>
__device__ __forceinline__ void broadcast(const T* __restrict__ grad_out,
                                          T* __restrict__ grad_in, I batch, I channels, I in_h,
                                          I in_w, bool channels_last) {
    typedef typename Acc<T>::type A;
    const I hw = in_h * in_w;
    const I total = batch * channels * hw;
    const A area = (A)hw;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        // NCHW: the (n, c) plane is idx / hw. NHWC: n = idx / (hw * C), c = idx % C.
        const I cell = channels_last ? (idx / (hw * channels)) * channels + idx % channels
                                     : idx / hw;
        grad_in[idx] = from_acc<T>(to_acc(grad_out[cell]) / area);
    }
}

template <typename T, typename I>
__device__ __forceinline__ void backward_broadcast_nchw(const T* __restrict__ grad_out,
                                                        T* __restrict__ grad_in, I batch,
                                                        I channels, I in_h, I in_w, I, I) {
    broadcast(grad_out, grad_in, batch, channels, in_h, in_w, false);
}

template <typename T, typename I>
__device__ __forceinline__ void backward_broadcast_nhwc(const T* __restrict__ grad_out,
                                                        T* __restrict__ grad_in, I batch,
                                                        I channels, I in_h, I in_w, I, I) {
    broadcast(grad_out, grad_in, batch, channels, in_h, in_w, true);
}

AP_INSTANTIATE_ALL_DTYPES(backward_gather_nchw)
AP_INSTANTIATE_ALL_DTYPES(backward_gather_nhwc)
AP_INSTANTIATE_ALL_DTYPES(backward_broadcast_nchw)
AP_INSTANTIATE_ALL_DTYPES(backward_broadcast_nhwc)
