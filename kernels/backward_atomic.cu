// Backward AdaptiveAvgPool2d, atomic-add scatter (PyTorch's atomic_adaptive_average_gradinput).
//
// grad_input must be zero before the launch (the launch plan zeroes it on the same stream).
// One thread per grad_output element: it computes delta = grad / area in the accumulator type,
// rounds it once to the storage type, and atomically adds it to every grad_input element of its
// window (window formula in common.cuh). Overlapping windows make the summation order depend on
// scheduling: results are not bitwise reproducible run to run.
//
// Entry points and index types: AP_INSTANTIATE in common.cuh.
#include "common.cuh"

template <typename T, typename I>
__device__ __forceinline__ void backward_atomic_nchw(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    typedef typename Acc<T>::type A;
    const I total = batch * channels * out_h * out_w;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const Cell<I> at = cell_of(idx, in_h, in_w, out_h, out_w);
        const I plane = at.outer;
        const Window<I> win = at.win;
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const T delta = from_acc<T>(to_acc(grad_out[idx]) / (A)((h1 - h0) * (w1 - w0)));
        T* p = grad_in + plane * in_h * in_w;
        for (I h = h0; h < h1; ++h) {
            for (I w = w0; w < w1; ++w) {
                atomic_add(p + h * in_w + w, delta);
            }
        }
    }
}

template <typename T, typename I>
__device__ __forceinline__ void backward_atomic_nhwc(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I batch,
                                                     I channels, I in_h, I in_w, I out_h,
                                                     I out_w) {
    typedef typename Acc<T>::type A;
    const I total = batch * out_h * out_w * channels;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const I c = idx % channels;
        I rest = idx / channels;
        const I ow = rest % out_w;
        rest /= out_w;
        const I oh = rest % out_h;
        const I n = rest / out_h;
        const Window<I> win = window_of(oh, ow, in_h, in_w, out_h, out_w);
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const T delta = from_acc<T>(to_acc(grad_out[idx]) / (A)((h1 - h0) * (w1 - w0)));
        T* p = grad_in + n * in_h * in_w * channels + c;
        for (I h = h0; h < h1; ++h) {
            for (I w = w0; w < w1; ++w) {
                atomic_add(p + (h * in_w + w) * channels, delta);
            }
        }
    }
}

AP_INSTANTIATE_ALL_DTYPES(backward_atomic_nchw)
AP_INSTANTIATE_ALL_DTYPES(backward_atomic_nhwc)
