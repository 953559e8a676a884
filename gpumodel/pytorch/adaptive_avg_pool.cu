// PyTorch's CUDA AdaptiveAvgPool2d algorithms, rewritten for the performance model only (never
// shipped, never launched by the crate). Each kernel follows the grid mapping, per-thread work,
// index arithmetic, types and memory accesses of the kernel of the same name in PyTorch's
// aten/src/ATen/native/cuda/AdaptiveAveragePooling.cu, so that the model sees the same memory
// traffic and parallel structure:
//
// - pt_adaptive_average_pool (NCHW forward): a block per (n, c) plane (grid.x), 32 x 8 threads
//   over output columns x rows; each thread sums its window with scalar loads and divides twice.
//   START_IND is int arithmetic, END_IND a 64-bit division (as in PyTorch).
// - pt_atomic_adaptive_average_gradinput (NCHW backward): same grid; each thread divides its
//   gradient by kW then kH in the storage type and atomically adds it over its window
//   (gpuAtomicAddNoReturn: native f32/f64/f16 atomics, bf16 native on sm_90 and a 16-bit CAS
//   loop below, the same atomic_add as kernels/common.cuh). grad_input is zero-filled before.
// - pt_adaptive_average_pool_nhwc (channels-last forward): block (x: channels, y: output
//   columns, z: output rows), grid (N * kernel_stride_C, tiles of W, tiles of H); per-thread
//   accumulators in dynamic shared memory (kernel_size_C per thread), int32 indices.
// - pt_adaptive_average_gradinput_nhwc (channels-last backward): gather over the covering
//   output cells with the column ranges and reciprocal factors cached in shared memory, the
//   accumulation in the storage type; grad_input is zero-filled before (zeros_like).
//
// Entry points: extern "C" NAME_DT for DT in f32, f64, f16, bf16.
#include "common.cuh"

#define PT_START_IND(a, b, c) ((long long)((a / b) * c + ((a % b) * c) / b))
#define PT_END_IND(a, b, c) (1 + ((long long)(a + 1) * c - 1) / b)
#define PT_START_IND_INT(a, b, c) ((a * c) / b)
#define PT_END_IND_INT(a, b, c) (((a + 1) * c + b - 1) / b)

// Storage-type arithmetic as at::Half / at::BFloat16 do it: through f32, rounded back.
template <typename T> __device__ __forceinline__ T st_from_int(int v) {
    return from_acc<T>((typename Acc<T>::type)v);
}
template <typename T> __device__ __forceinline__ T st_div(T a, T b) {
    return from_acc<T>(to_acc(a) / to_acc(b));
}
template <typename T> __device__ __forceinline__ T st_mul(T a, T b) {
    return from_acc<T>(to_acc(a) * to_acc(b));
}
template <typename T> __device__ __forceinline__ T st_add(T a, T b) {
    return from_acc<T>(to_acc(a) + to_acc(b));
}

template <typename T>
__device__ __forceinline__ void adaptive_average_pool(const T* input, T* output, int isizeH,
                                                      int isizeW, int osizeH, int osizeW,
                                                      long long istrideD, long long istrideH,
                                                      long long istrideW) {
    typedef typename Acc<T>::type A;
    int o_plane = blockIdx.x;
    int i_plane = o_plane;
    output = output + o_plane * osizeH * osizeW;
    input = input + i_plane * istrideD;
    int ostartH = blockDim.y * blockIdx.y + threadIdx.y;
    int oendH = osizeH;
    const int ostepH = blockDim.y * gridDim.y;
    int ostartW = threadIdx.x;
    int oendW = osizeW;
    const int ostepW = blockDim.x;
    for (int oh = ostartH; oh < oendH; oh += ostepH) {
        int istartH = PT_START_IND(oh, osizeH, isizeH);
        int iendH = PT_END_IND(oh, osizeH, isizeH);
        int kH = iendH - istartH;
        for (int ow = ostartW; ow < oendW; ow += ostepW) {
            int istartW = PT_START_IND(ow, osizeW, isizeW);
            int iendW = PT_END_IND(ow, osizeW, isizeW);
            int kW = iendW - istartW;
            const T* ptr_input = input + istartH * istrideH + istartW * istrideW;
            T* ptr_output = output + oh * osizeW + ow;
            A sum = (A)0;
            for (int ih = 0; ih < kH; ++ih) {
                for (int iw = 0; iw < kW; ++iw) {
                    T val = ptr_input[iw * istrideW];
                    sum += to_acc(val);
                }
                ptr_input += istrideH;
            }
            *ptr_output = from_acc<T>(sum / (A)kH / (A)kW);
        }
    }
}

template <typename T>
__device__ __forceinline__ void atomic_adaptive_average_gradinput(T* gradInput,
                                                                  const T* gradOutput,
                                                                  int isizeH, int isizeW,
                                                                  int osizeH, int osizeW) {
    int o_plane = blockIdx.x;
    int i_plane = o_plane;
    gradOutput = gradOutput + o_plane * osizeW * osizeH;
    gradInput = gradInput + i_plane * isizeW * isizeH;
    int ostartH = blockDim.y * blockIdx.y + threadIdx.y;
    int oendH = osizeH;
    int ostepH = blockDim.y * gridDim.y;
    int ostartW = threadIdx.x;
    int oendW = osizeW;
    int ostepW = blockDim.x;
    for (int oh = ostartH; oh < oendH; oh += ostepH) {
        int istartH = PT_START_IND(oh, osizeH, isizeH);
        int iendH = PT_END_IND(oh, osizeH, isizeH);
        int kH = iendH - istartH;
        for (int ow = ostartW; ow < oendW; ow += ostepW) {
            int istartW = PT_START_IND(ow, osizeW, isizeW);
            int iendW = PT_END_IND(ow, osizeW, isizeW);
            int kW = iendW - istartW;
            T* ptr_gradInput = gradInput + istartH * isizeW + istartW;
            const T* ptr_gradOutput = gradOutput + oh * osizeW + ow;
            T grad_delta = st_div(st_div(*ptr_gradOutput, st_from_int<T>(kW)), st_from_int<T>(kH));
            for (int ih = 0; ih < kH; ++ih) {
                for (int iw = 0; iw < kW; ++iw) {
                    atomic_add(&(ptr_gradInput[iw]), grad_delta);
                }
                ptr_gradInput += isizeW;
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void adaptive_average_pool_nhwc(
    const T* __restrict__ input, T* __restrict__ output, int sizeB, int sizeC, int isizeH,
    int isizeW, int osizeH, int osizeW, int kernel_stride_C, int kernel_size_C, int istrideB,
    int istrideC, int istrideH, int istrideW) {
    typedef typename Acc<T>::type A;
    typedef int index_t;
    extern __shared__ int smem[];
    A* out_cached = reinterpret_cast<A*>(smem);
    int thread_id = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int block_size = blockDim.x * blockDim.y * blockDim.z;
    for (index_t i = thread_id; i < kernel_size_C * blockDim.x * blockDim.y * blockDim.z;
         i += block_size) {
        out_cached[i] = (A)0;
    }
    __syncthreads();
    int batch_id = blockIdx.x % sizeB;
    int channel_id = blockIdx.x / sizeB;
    int channel_offset = threadIdx.x + channel_id * blockDim.x;
    output = output + batch_id * osizeH * osizeW * sizeC;
    input = input + batch_id * istrideB;
    out_cached = &out_cached[(threadIdx.z * blockDim.y + threadIdx.y) * kernel_size_C * blockDim.x];
    index_t oH = (osizeH + gridDim.z - 1) / gridDim.z;
    index_t oW = (osizeW + gridDim.y - 1) / gridDim.y;
    index_t ostartH = threadIdx.z + blockIdx.z * oH;
    index_t oendH = min(ostartH + oH, osizeH);
    index_t ostartW = threadIdx.y + blockIdx.y * oW;
    index_t oendW = min(ostartW + oW, osizeW);
    for (int oh = ostartH; oh < oendH; oh += blockDim.z) {
        int istartH = PT_START_IND_INT(oh, osizeH, isizeH);
        int iendH = PT_END_IND_INT(oh, osizeH, isizeH);
        for (int ow = ostartW; ow < oendW; ow += blockDim.y) {
            int istartW = PT_START_IND_INT(ow, osizeW, isizeW);
            int iendW = PT_END_IND_INT(ow, osizeW, isizeW);
            T factor = st_div(st_from_int<T>(1), st_from_int<T>((iendH - istartH) * (iendW - istartW)));
            for (index_t ih = istartH; ih < iendH; ih++) {
                for (index_t iw = istartW; iw < iendW; iw++) {
                    int cached_index = threadIdx.x;
                    const T* ptr_input = input + ih * istrideH + iw * istrideW;
                    for (index_t c = channel_offset; c < sizeC;
                         c += blockDim.x * kernel_stride_C) {
                        out_cached[cached_index] += to_acc(ptr_input[c * istrideC]);
                        cached_index += blockDim.x;
                    }
                }
            }
            T* ptr_output = output + (oh * osizeW + ow) * sizeC;
            int cached_index = threadIdx.x;
            for (index_t c = channel_offset; c < sizeC; c += blockDim.x * kernel_stride_C) {
                ptr_output[c] = from_acc<T>(out_cached[cached_index] * to_acc(factor));
                out_cached[cached_index] = (A)0;
                cached_index += blockDim.x;
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void adaptive_average_gradinput_nhwc(
    T* __restrict__ gradInput, const T* __restrict__ gradOutput, int sizeB, int sizeC,
    int isizeH, int isizeW, int osizeH, int osizeW, int kernel_stride_C, int kernel_size_C,
    int ostrideB, int ostrideC, int ostrideH, int ostrideW) {
    typedef int index_t;
    extern __shared__ int smem[];
    index_t* ostartW_cached = smem;
    index_t* oendW_cached = &ostartW_cached[isizeW];
    T* r_kW_cached = reinterpret_cast<T*>(&oendW_cached[isizeW]);
    T* r_kH_cached = &r_kW_cached[osizeW];
    T* out_cached = &r_kH_cached[osizeH];
    int thread_id = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int block_size = blockDim.x * blockDim.y * blockDim.z;
    for (index_t i = thread_id; i < isizeW; i += block_size) {
        ostartW_cached[i] = PT_START_IND_INT(i, isizeW, osizeW);
        oendW_cached[i] = PT_END_IND_INT(i, isizeW, osizeW);
    }
    for (index_t i = thread_id; i < osizeH; i += block_size) {
        r_kH_cached[i] = st_div(st_from_int<T>(1),
                                st_from_int<T>(PT_END_IND_INT(i, osizeH, isizeH) -
                                               PT_START_IND_INT(i, osizeH, isizeH)));
    }
    for (index_t i = thread_id; i < osizeW; i += block_size) {
        r_kW_cached[i] = st_div(st_from_int<T>(1),
                                st_from_int<T>(PT_END_IND_INT(i, osizeW, isizeW) -
                                               PT_START_IND_INT(i, osizeW, isizeW)));
    }
    int batch_id = blockIdx.x % sizeB;
    int channel_id = blockIdx.x / sizeB;
    int channel_offset = threadIdx.x + channel_id * blockDim.x;
    for (index_t i = thread_id; i < kernel_size_C * blockDim.x * blockDim.y * blockDim.z;
         i += block_size) {
        out_cached[i] = st_from_int<T>(0);
    }
    __syncthreads();
    gradInput = gradInput + batch_id * isizeH * isizeW * sizeC;
    gradOutput = gradOutput + batch_id * ostrideB;
    out_cached = &out_cached[(threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x * kernel_size_C];
    index_t iH = (isizeH + gridDim.z - 1) / gridDim.z;
    index_t iW = (isizeW + gridDim.y - 1) / gridDim.y;
    index_t istartH = threadIdx.z + blockIdx.z * iH;
    index_t iendH = min(istartH + iH, isizeH);
    index_t istartW = threadIdx.y + blockIdx.y * iW;
    index_t iendW = min(istartW + iW, isizeW);
    for (index_t ih = istartH; ih < iendH; ih += blockDim.z) {
        index_t ostartH = PT_START_IND_INT(ih, isizeH, osizeH);
        index_t oendH = PT_END_IND_INT(ih, isizeH, osizeH);
        for (index_t iw = istartW; iw < iendW; iw += blockDim.y) {
            for (index_t oh = ostartH; oh < oendH; ++oh) {
                for (index_t ow = ostartW_cached[iw]; ow < oendW_cached[iw]; ++ow) {
                    T f = st_mul(r_kW_cached[ow], r_kH_cached[oh]);
                    const T* ptr_gradOutput = gradOutput + oh * ostrideH + ow * ostrideW;
                    int cached_index = threadIdx.x;
                    for (index_t c = channel_offset; c < sizeC;
                         c += blockDim.x * kernel_stride_C) {
                        out_cached[cached_index] = st_add(
                            out_cached[cached_index], st_mul(ptr_gradOutput[c * ostrideC], f));
                        cached_index += blockDim.x;
                    }
                }
            }
            T* ptr_gradInput = gradInput + (ih * isizeW + iw) * sizeC;
            int cached_index = threadIdx.x;
            for (index_t c = channel_offset; c < sizeC; c += blockDim.x * kernel_stride_C) {
                ptr_gradInput[c] = out_cached[cached_index];
                out_cached[cached_index] = st_from_int<T>(0);
                cached_index += blockDim.x;
            }
        }
    }
}

// PyTorch launches these with at most 1024 threads (C10_LAUNCH_BOUNDS_1(CUDA_MAX_THREADS) on
// the NHWC kernels; the NCHW ones have no bounds and 256-thread blocks).
#define PT_NCHW(DT, T)                                                                           \
    extern "C" __global__ void pt_adaptive_average_pool_##DT(                                    \
        const T* input, T* output, int isizeH, int isizeW, int osizeH, int osizeW,               \
        long long istrideD, long long istrideH, long long istrideW) {                            \
        adaptive_average_pool<T>(input, output, isizeH, isizeW, osizeH, osizeW, istrideD,        \
                                 istrideH, istrideW);                                            \
    }                                                                                            \
    extern "C" __global__ void pt_atomic_adaptive_average_gradinput_##DT(                        \
        T* gradInput, const T* gradOutput, int isizeH, int isizeW, int osizeH, int osizeW) {     \
        atomic_adaptive_average_gradinput<T>(gradInput, gradOutput, isizeH, isizeW, osizeH,      \
                                             osizeW);                                            \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(1024) pt_adaptive_average_pool_nhwc_##DT(       \
        const T* __restrict__ input, T* __restrict__ output, int sizeB, int sizeC, int isizeH,   \
        int isizeW, int osizeH, int osizeW, int kernel_stride_C, int kernel_size_C,             \
        int istrideB, int istrideC, int istrideH, int istrideW) {                                \
        adaptive_average_pool_nhwc<T>(input, output, sizeB, sizeC, isizeH, isizeW, osizeH,       \
                                      osizeW, kernel_stride_C, kernel_size_C, istrideB,          \
                                      istrideC, istrideH, istrideW);                             \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(1024) pt_adaptive_average_gradinput_nhwc_##DT(  \
        T* __restrict__ gradInput, const T* __restrict__ gradOutput, int sizeB, int sizeC,       \
        int isizeH, int isizeW, int osizeH, int osizeW, int kernel_stride_C, int kernel_size_C, \
        int ostrideB, int ostrideC, int ostrideH, int ostrideW) {                                \
        adaptive_average_gradinput_nhwc<T>(gradInput, gradOutput, sizeB, sizeC, isizeH, isizeW, \
                                           osizeH, osizeW, kernel_stride_C, kernel_size_C,       \
                                           ostrideB, ostrideC, ostrideH, ostrideW);              \
    }

PT_NCHW(f32, float)
PT_NCHW(f64, double)
PT_NCHW(f16, f16_raw)
PT_NCHW(bf16, bf16_raw)
