// Backward AdaptiveAvgPool2d, atomic-add scatter (PyTorch's atomic_adaptive_average_gradinput).
//
// grad_input must be zero before the launch (the launch plan zeroes it on the same stream).
// One thread per grad_output element: it computes delta = grad / area in the accumulator type,
// rounds it once to the storage type, and atomically adds it to every grad_input element of its
// window (window formula in common.cuh). Overlapping windows make the summation order depend on
// scheduling: results are not bitwise reproducible run to run.
//
// Index type I as in forward.cu.
#include "common.cuh"

template <typename T, typename I>
__device__ __forceinline__ void backward_atomic_nchw(const T* __restrict__ grad_out,
                                                     T* __restrict__ grad_in, I planes, I in_h,
                                                     I in_w, I out_h, I out_w) {
    typedef typename Acc<T>::type A;
    const I total = planes * out_h * out_w;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const I ow = idx % out_w;
        const I rest = idx / out_w;
        const I oh = rest % out_h;
        const I plane = rest / out_h;
        const I h0 = window_start(oh, out_h, in_h);
        const I h1 = window_end(oh, out_h, in_h);
        const I w0 = window_start(ow, out_w, in_w);
        const I w1 = window_end(ow, out_w, in_w);
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
        const I h0 = window_start(oh, out_h, in_h);
        const I h1 = window_end(oh, out_h, in_h);
        const I w0 = window_start(ow, out_w, in_w);
        const I w1 = window_end(ow, out_w, in_w);
        const T delta = from_acc<T>(to_acc(grad_out[idx]) / (A)((h1 - h0) * (w1 - w0)));
        T* p = grad_in + n * in_h * in_w * channels + c;
        for (I h = h0; h < h1; ++h) {
            for (I w = w0; w < w1; ++w) {
                atomic_add(p + (h * in_w + w) * channels, delta);
            }
        }
    }
}

// Parameter list shared with every kernel of the crate (see `src/plan.rs`):
//   (const T* src = grad_output, T* dst = grad_input, u64 batch, u64 channels,
//    u64 in_h, u64 in_w, u64 out_h, u64 out_w)
#define AP_BACKWARD_ATOMIC_KERNELS(T, NAME)                                                      \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        backward_atomic_nchw_##NAME##_idx32(const T* __restrict__ src, T* __restrict__ dst,      \
                                            u64 batch, u64 channels, u64 in_h, u64 in_w,         \
                                            u64 out_h, u64 out_w) {                              \
        backward_atomic_nchw<T, unsigned int>(src, dst, (unsigned int)(batch * channels),        \
                                              (unsigned int)in_h, (unsigned int)in_w,            \
                                              (unsigned int)out_h, (unsigned int)out_w);         \
    }                                                                                            \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        backward_atomic_nchw_##NAME##_idx64(const T* __restrict__ src, T* __restrict__ dst,      \
                                            u64 batch, u64 channels, u64 in_h, u64 in_w,         \
                                            u64 out_h, u64 out_w) {                              \
        backward_atomic_nchw<T, u64>(src, dst, batch * channels, in_h, in_w, out_h, out_w);      \
    }                                                                                            \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        backward_atomic_nhwc_##NAME##_idx32(const T* __restrict__ src, T* __restrict__ dst,      \
                                            u64 batch, u64 channels, u64 in_h, u64 in_w,         \
                                            u64 out_h, u64 out_w) {                              \
        backward_atomic_nhwc<T, unsigned int>(src, dst, (unsigned int)batch,                     \
                                              (unsigned int)channels, (unsigned int)in_h,        \
                                              (unsigned int)in_w, (unsigned int)out_h,           \
                                              (unsigned int)out_w);                              \
    }                                                                                            \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        backward_atomic_nhwc_##NAME##_idx64(const T* __restrict__ src, T* __restrict__ dst,      \
                                            u64 batch, u64 channels, u64 in_h, u64 in_w,         \
                                            u64 out_h, u64 out_w) {                              \
        backward_atomic_nhwc<T, u64>(src, dst, batch, channels, in_h, in_w, out_h, out_w);       \
    }

AP_BACKWARD_ATOMIC_KERNELS(float, f32)
AP_BACKWARD_ATOMIC_KERNELS(double, f64)
AP_BACKWARD_ATOMIC_KERNELS(f16_raw, f16)
AP_BACKWARD_ATOMIC_KERNELS(bf16_raw, bf16)
