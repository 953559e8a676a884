// PyTorch's backward of `mean` over (H, W) (autograd's MeanBackward1 for a 1x1
// adaptive_avg_pool2d output): `grad.expand(input_sizes) / (H * W)`
// (torch/csrc/autograd/FunctionsManual.cpp, mean_backward -> sum_backward), which runs as
// div_true_kernel_cuda with a CPU scalar: `out = grad_expanded * (1 / (H * W))` in the
// accumulator type, through gpu_kernel's non-contiguous path (the expanded input has zero
// strides): aten/src/ATen/native/cuda/CUDALoops.cuh `elementwise_kernel<128, vt>` with vt = 2
// for 4- and 8-byte elements and 4 for 2-byte ones, each thread taking vt elements 128 apart,
// and an OffsetCalculator (IntDivider multiply-high divisions) from the linear output index to
// the output and input offsets. Rewritten for the performance model only.
//
// The offset calculator's dimensions after TensorIterator coalescing: NCHW output
// [H*W, N*C] (one division), channels-last output [C, H*W, N] (two divisions); the caller
// passes per dimension its size as an IntDivider (divisor, multiplier, shift) and the output
// and input strides in elements.
//
// Entry points: extern "C" pt_mean_backward_DT for DT in f32, f64, f16, bf16.
#include "common.cuh"

#define PT_ELEMENTWISE_THREADS 128

struct OffsetArgs {
    int dims;
    unsigned int div[3], m1[3], shift[3];
    unsigned int out_stride[3], in_stride[3];
};

template <typename T, int VT>
__device__ __forceinline__ void mean_backward(T* __restrict__ out, const T* __restrict__ grad,
                                              int n, OffsetArgs c,
                                              typename Acc<T>::type inv_b) {
    const int nv = PT_ELEMENTWISE_THREADS * VT;
    int idx = nv * blockIdx.x + threadIdx.x;
#pragma unroll
    for (int i = 0; i < VT; i++) {
        if (idx < n) {
            unsigned int linear = (unsigned int)idx;
            unsigned int out_off = 0, in_off = 0;
#pragma unroll
            for (int d = 0; d < 3; ++d) {
                if (d == c.dims) break;
                unsigned int q = __umulhi(linear, c.m1[d]);
                q = (q + linear) >> c.shift[d];
                const unsigned int r = linear - q * c.div[d];
                out_off += r * c.out_stride[d];
                in_off += r * c.in_stride[d];
                linear = q;
            }
            out[out_off] = from_acc<T>(to_acc(grad[in_off]) * inv_b);
            idx += PT_ELEMENTWISE_THREADS;
        }
    }
}

#define PT_MEAN_BACKWARD(DT, T, VT)                                                              \
    extern "C" __global__ void __launch_bounds__(PT_ELEMENTWISE_THREADS, 4)                      \
        pt_mean_backward_##DT(T* __restrict__ out, const T* __restrict__ grad, int n, int dims,  \
                              unsigned int div0, unsigned int m10, unsigned int shift0,          \
                              unsigned int out_stride0, unsigned int in_stride0,                 \
                              unsigned int div1, unsigned int m11, unsigned int shift1,          \
                              unsigned int out_stride1, unsigned int in_stride1,                 \
                              unsigned int div2, unsigned int m12, unsigned int shift2,          \
                              unsigned int out_stride2, unsigned int in_stride2,                 \
                              typename Acc<T>::type inv_b) {                                     \
        const OffsetArgs args = {dims,                                                           \
                                 {div0, div1, div2},                                             \
                                 {m10, m11, m12},                                                \
                                 {shift0, shift1, shift2},                                       \
                                 {out_stride0, out_stride1, out_stride2},                        \
                                 {in_stride0, in_stride1, in_stride2}};                          \
        mean_backward<T, VT>(out, grad, n, args, inv_b);                                         \
    }

PT_MEAN_BACKWARD(f32, float, 2)
PT_MEAN_BACKWARD(f64, double, 2)
PT_MEAN_BACKWARD(f16, f16_raw, 4)
PT_MEAN_BACKWARD(bf16, bf16_raw, 4)
