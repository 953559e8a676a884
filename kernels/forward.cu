// Forward AdaptiveAvgPool2d: one thread per output element, grid-stride.
//
// out[n, c, oh, ow] = mean(in[n, c, h, w]) over h in [window_start(oh), window_end(oh)) and
// w in [window_start(ow), window_end(ow)) (PyTorch's adaptive_avg_pool2d, see common.cuh),
// summed in the accumulator type (f32 for f32/f16/bf16, f64 for f64) and divided by the area.
//
// Entry points and index types: AP_INSTANTIATE in common.cuh.
#include "common.cuh"
#include "batch.cuh"

// Contiguous NCHW: planes of in_h x in_w, consecutive threads take consecutive output columns.
// Windows at least two 16-byte vectors wide are read with 16-byte loads along their rows.
template <typename T, typename I>
__device__ __forceinline__ void forward_nchw(const T* __restrict__ in, T* __restrict__ out,
                                             I batch, I channels, I in_h, I in_w, I out_h,
                                             I out_w) {
    typedef typename Acc<T>::type A;
    const I total = batch * channels * out_h * out_w;
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I idx = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; idx < total; idx += stride) {
        const Cell<I> at = cell_of(idx, in_h, in_w, out_h, out_w);
        const I plane = at.outer;
        const Window<I> win = at.win;
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
        const T* p = in + plane * in_h * in_w;
        A sum = 0;
        if (w1 - w0 >= (I)(2 * V16<T>::N)) {
            // Rows of at least two vectors: 16-byte loads along each row where aligned
            // (batch.cuh). Same row-major order as the scalar loop below.
            for (I h = h0; h < h1; ++h) {
                sum = sum_row_vec16(p + h * in_w, w0, w1, sum);
            }
        } else {
            for (I h = h0; h < h1; ++h) {
                for (I w = w0; w < w1; ++w) {
                    sum += to_acc(p[h * in_w + w]);
                }
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
        const Window<I> win = window_of(oh, ow, in_h, in_w, out_h, out_w);
        const I h0 = win.h0, h1 = win.h1, w0 = win.w0, w1 = win.w1;
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

AP_INSTANTIATE_ALL_DTYPES(forward_nchw)
AP_INSTANTIATE_ALL_DTYPES(forward_nhwc)
