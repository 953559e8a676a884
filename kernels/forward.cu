// Forward AdaptiveAvgPool2d: one thread per output element, grid-stride.
//
// out[n, c, oh, ow] = mean(in[n, c, h, w]) over h in [window_start(oh), window_end(oh)) and
// w in [window_start(ow), window_end(ow)) (PyTorch's adaptive_avg_pool2d, see common.cuh),
// summed in the accumulator type (f32 for f32/f16/bf16, f64 for f64) and divided by the area.
//
// Index type I is `unsigned int` for the `_idx32` kernels (the launch planner picks them only
// when every index and product they form is below 2^31) and `u64` for `_idx64`.
#include "common.cuh"

// Contiguous NCHW: planes of in_h x in_w, consecutive threads take consecutive output columns.
template <typename T, typename I>
__device__ __forceinline__ void forward_nchw(const T* __restrict__ in, T* __restrict__ out,
                                             I planes, I in_h, I in_w, I out_h, I out_w) {
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
        const T* p = in + plane * in_h * in_w;
        A sum = 0;
        for (I h = h0; h < h1; ++h) {
            for (I w = w0; w < w1; ++w) {
                sum += to_acc(p[h * in_w + w]);
            }
        }
        out[idx] = from_acc<T>(sum / (A)((h1 - h0) * (w1 - w0)));
    }
}

// Channels-last NHWC: channels are innermost, so consecutive threads read consecutive channels
// of the same pixel (coalesced) and write consecutive channels of the same output cell.
template <typename T, typename I>
__device__ __forceinline__ void forward_nhwc(const T* __restrict__ in, T* __restrict__ out,
                                             I batch, I channels, I in_h, I in_w, I out_h,
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
        const T* p = in + n * in_h * in_w * channels + c;
        A sum = 0;
        for (I h = h0; h < h1; ++h) {
            for (I w = w0; w < w1; ++w) {
                sum += to_acc(p[(h * in_w + w) * channels]);
            }
        }
        out[idx] = from_acc<T>(sum / (A)((h1 - h0) * (w1 - w0)));
    }
}

// Every kernel takes the same parameter list, in this order (see `src/plan.rs`):
//   (const T* src, T* dst, u64 batch, u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w)
#define AP_FORWARD_KERNELS(T, NAME)                                                              \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        forward_nchw_##NAME##_idx32(const T* __restrict__ src, T* __restrict__ dst, u64 batch,   \
                                    u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w) {    \
        forward_nchw<T, unsigned int>(src, dst, (unsigned int)(batch * channels),                \
                                      (unsigned int)in_h, (unsigned int)in_w,                    \
                                      (unsigned int)out_h, (unsigned int)out_w);                 \
    }                                                                                            \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        forward_nchw_##NAME##_idx64(const T* __restrict__ src, T* __restrict__ dst, u64 batch,   \
                                    u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w) {    \
        forward_nchw<T, u64>(src, dst, batch * channels, in_h, in_w, out_h, out_w);              \
    }                                                                                            \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        forward_nhwc_##NAME##_idx32(const T* __restrict__ src, T* __restrict__ dst, u64 batch,   \
                                    u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w) {    \
        forward_nhwc<T, unsigned int>(src, dst, (unsigned int)batch, (unsigned int)channels,     \
                                      (unsigned int)in_h, (unsigned int)in_w,                    \
                                      (unsigned int)out_h, (unsigned int)out_w);                 \
    }                                                                                            \
    extern "C" __global__ void AP_LAUNCH_BOUNDS                           \
        forward_nhwc_##NAME##_idx64(const T* __restrict__ src, T* __restrict__ dst, u64 batch,   \
                                    u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w) {    \
        forward_nhwc<T, u64>(src, dst, batch, channels, in_h, in_w, out_h, out_w);               \
    }

AP_FORWARD_KERNELS(float, f32)
AP_FORWARD_KERNELS(double, f64)
AP_FORWARD_KERNELS(f16_raw, f16)
AP_FORWARD_KERNELS(bf16_raw, bf16)
