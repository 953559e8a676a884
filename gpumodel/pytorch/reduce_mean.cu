// PyTorch's `mean` over (H, W) on CUDA, which `adaptive_avg_pool2d` calls for a 1x1 output
// (aten/src/ATen/native/AdaptiveAveragePooling.cpp): `reduce_kernel` of
// aten/src/ATen/native/cuda/Reduce.cuh with MeanOps (sum in the accumulator type, times
// 1 / (H * W) at the end), vt0 = 4 accumulators per thread, input vectors of 4 elements.
// Rewritten for the performance model only. The host side (gpumodel's `pytorch::reduce_config`)
// ports `setReduceConfig`: block width and height, which of lanes, warps and blocks split the
// input or the outputs, the output vector size and the number of blocks per output; this kernel
// follows ReduceOp::run: thread_reduce (vectorised along the input when the reduced dimension is
// contiguous and long, along the output otherwise), block_y_reduce through shared memory,
// block_x_reduce by warp shuffles, and global_reduce through a staging buffer and a per-output
// semaphore (the last block to arrive finishes the output). Index arithmetic is 32-bit and the
// output-to-input offset uses IntDivider's multiply-high division, as in PyTorch.
//
// Entry points: extern "C" pt_reduce_mean_DT_ovsV for DT in f32, f64, f16, bf16 and the output
// vector size V in 1, 2, 4.
#include "common.cuh"

#define PT_VT0 4

template <typename A, int V> struct AVec {
    A v[V];
};

// aligned_vector<T, N> loads: N elements of T in one access of N * sizeof(T) bytes (two 16-byte
// accesses for 32 bytes).
template <typename T, int N> struct VecLoad;
template <typename T> struct VecLoad<T, 1> {
    __device__ static __forceinline__ void load(const T* p, typename Acc<T>::type* a) {
        a[0] = to_acc(p[0]);
    }
};
template <> struct VecLoad<float, 2> {
    __device__ static __forceinline__ void load(const float* p, float* a) {
        const float2 v = *reinterpret_cast<const float2*>(p);
        a[0] = v.x; a[1] = v.y;
    }
};
template <> struct VecLoad<float, 4> {
    __device__ static __forceinline__ void load(const float* p, float* a) {
        const float4 v = *reinterpret_cast<const float4*>(p);
        a[0] = v.x; a[1] = v.y; a[2] = v.z; a[3] = v.w;
    }
};
template <> struct VecLoad<double, 2> {
    __device__ static __forceinline__ void load(const double* p, double* a) {
        const double2 v = *reinterpret_cast<const double2*>(p);
        a[0] = v.x; a[1] = v.y;
    }
};
template <> struct VecLoad<double, 4> {
    __device__ static __forceinline__ void load(const double* p, double* a) {
        const double2 v = *reinterpret_cast<const double2*>(p);
        const double2 w = *reinterpret_cast<const double2*>(p + 2);
        a[0] = v.x; a[1] = v.y; a[2] = w.x; a[3] = w.y;
    }
};
template <typename H> struct HalfVecLoad2 {
    __device__ static __forceinline__ void load(const H* p, float* a) {
        const unsigned int w = *reinterpret_cast<const unsigned int*>(p);
        H lo, hi;
        lo.bits = (unsigned short)(w & 0xffffu);
        hi.bits = (unsigned short)(w >> 16);
        a[0] = to_acc(lo); a[1] = to_acc(hi);
    }
};
template <typename H> struct HalfVecLoad4 {
    __device__ static __forceinline__ void load(const H* p, float* a) {
        const uint2 w = *reinterpret_cast<const uint2*>(p);
        const unsigned int ws[2] = {w.x, w.y};
#pragma unroll
        for (int k = 0; k < 2; ++k) {
            H lo, hi;
            lo.bits = (unsigned short)(ws[k] & 0xffffu);
            hi.bits = (unsigned short)(ws[k] >> 16);
            a[2 * k] = to_acc(lo); a[2 * k + 1] = to_acc(hi);
        }
    }
};
template <> struct VecLoad<f16_raw, 2> : HalfVecLoad2<f16_raw> {};
template <> struct VecLoad<bf16_raw, 2> : HalfVecLoad2<bf16_raw> {};
template <> struct VecLoad<f16_raw, 4> : HalfVecLoad4<f16_raw> {};
template <> struct VecLoad<bf16_raw, 4> : HalfVecLoad4<bf16_raw> {};

// ReduceConfig and the output offset calculator (kernel arguments, one scalar each).
struct ReduceArgs {
    int num_outputs, num_inputs, step_input, step_output;
    int input_mult0, input_mult1, input_mult2, output_mult0, output_mult1;
    int ctas_per_output, vectorize_input;
    // Output index -> input offset (elements): one dimension (o * in_stride0) or two, split by
    // IntDivider (divisor, multiplier, shift): (o % d) * in_stride0 + (o / d) * in_stride1.
    int out_dims;
    unsigned int div, m1, shift;
    unsigned int in_stride0, in_stride1;
    // Input index -> element offset within the output's slice.
    unsigned int element_stride;
};

__device__ __forceinline__ unsigned int input_offset_of(const ReduceArgs& c, unsigned int o) {
    if (c.out_dims == 1) {
        return o * c.in_stride0;
    }
    unsigned int q = __umulhi(o, c.m1);
    q = (q + o) >> c.shift;
    const unsigned int r = o - q * c.div;
    return r * c.in_stride0 + q * c.in_stride1;
}

template <typename T, int V>
__device__ __forceinline__ AVec<typename Acc<T>::type, V> thread_reduce_impl(const ReduceArgs& c,
                                                                             const T* data) {
    typedef typename Acc<T>::type A;
    unsigned int idx = threadIdx.x * c.input_mult0 + threadIdx.y * c.input_mult1 +
                       blockIdx.y * c.input_mult2;
    const unsigned int end = c.num_inputs;
    const unsigned int stride = c.step_input;
    A value_list[PT_VT0][V];
    A values[PT_VT0][V];
#pragma unroll
    for (int i = 0; i < PT_VT0; i++) {
#pragma unroll
        for (int j = 0; j < V; j++) value_list[i][j] = (A)0;
    }
    while (idx + (PT_VT0 - 1) * stride < end) {
#pragma unroll
        for (int i = 0; i < PT_VT0; i++) {
            VecLoad<T, V>::load(data + (idx + i * stride) * c.element_stride, values[i]);
        }
#pragma unroll
        for (int i = 0; i < PT_VT0; i++) {
#pragma unroll
            for (int j = 0; j < V; j++) value_list[i][j] += values[i][j];
        }
        idx += stride * PT_VT0;
    }
    const unsigned int idx_ = idx;
#pragma unroll
    for (int i = 0; i < PT_VT0; i++) {
        if (idx >= end) break;
        VecLoad<T, V>::load(data + idx * c.element_stride, values[i]);
        idx += stride;
    }
    idx = idx_;
#pragma unroll
    for (int i = 0; i < PT_VT0; i++) {
        if (idx >= end) break;
#pragma unroll
        for (int j = 0; j < V; j++) value_list[i][j] += values[i][j];
        idx += stride;
    }
#pragma unroll
    for (int i = 1; i < PT_VT0; i++) {
#pragma unroll
        for (int j = 0; j < V; j++) value_list[0][j] += value_list[i][j];
    }
    AVec<A, V> out;
#pragma unroll
    for (int j = 0; j < V; j++) out.v[j] = value_list[0][j];
    return out;
}

// input_vectorized_thread_reduce_impl: contiguous reduced dimension, 4-element vectors, an
// unaligned head and a tail handled by the first lanes.
template <typename T>
__device__ __forceinline__ typename Acc<T>::type input_vectorized_thread_reduce(
    const ReduceArgs& c, const T* data) {
    typedef typename Acc<T>::type A;
    const int input_vec_size = PT_VT0;
    unsigned int end = c.num_inputs;
    A value = (A)0;
    const int align_bytes = (int)sizeof(T) * input_vec_size;
    const int align_elements = input_vec_size;
    int shift = (int)(((u64)data) % align_bytes / sizeof(T));
    const bool reduce_tail = (c.input_mult1 == 0 || threadIdx.y == 0) &&
                             (c.input_mult2 == 0 || blockIdx.y == 0);
    if (shift > 0) {
        data -= shift;
        end += shift;
        if ((int)threadIdx.x >= shift && (int)threadIdx.x < align_elements && reduce_tail) {
            value += to_acc(data[threadIdx.x]);
        }
        end -= align_elements;
        data += align_elements;
        shift = align_elements - shift;
    }
    unsigned int idx = threadIdx.x * c.input_mult0 + threadIdx.y * c.input_mult1 +
                       blockIdx.y * c.input_mult2;
    const unsigned int stride = c.step_input;
    A value_list[PT_VT0];
    value_list[0] = value;
#pragma unroll
    for (int i = 1; i < PT_VT0; i++) value_list[i] = (A)0;
    while (idx * input_vec_size + input_vec_size - 1 < end) {
        A vals[PT_VT0];
        VecLoad<T, PT_VT0>::load(data + idx * input_vec_size, vals);
#pragma unroll
        for (int i = 0; i < input_vec_size; i++) value_list[i] += vals[i];
        idx += stride;
    }
    const unsigned int tail_start = end - end % input_vec_size;
    if (reduce_tail) {
        const unsigned int t = tail_start + threadIdx.x;
        if (t < end) value_list[0] += to_acc(data[t]);
    }
#pragma unroll
    for (int i = 1; i < PT_VT0; i++) value_list[0] += value_list[i];
    return value_list[0];
}

template <typename A, int V>
__device__ __forceinline__ AVec<A, V> block_y_reduce(AVec<A, V> value, char* shared_memory) {
    AVec<A, V>* shared = (AVec<A, V>*)shared_memory;
    shared[threadIdx.x + threadIdx.y * blockDim.x] = value;
    for (int offset = blockDim.y / 2; offset > 0; offset >>= 1) {
        __syncthreads();
        if ((int)threadIdx.y < offset && threadIdx.y + offset < blockDim.y) {
            AVec<A, V> other = shared[threadIdx.x + (threadIdx.y + offset) * blockDim.x];
#pragma unroll
            for (int i = 0; i < V; i++) value.v[i] += other.v[i];
            shared[threadIdx.x + threadIdx.y * blockDim.x] = value;
        }
    }
    return value;
}

template <typename A, int V>
__device__ __forceinline__ AVec<A, V> block_x_reduce(AVec<A, V> value, char* shared_memory) {
    int dim_x = blockDim.x;
    AVec<A, V>* shared = (AVec<A, V>*)shared_memory;
    if (dim_x > AP_WARP) {
        int address_base = threadIdx.x + threadIdx.y * blockDim.x;
        shared[address_base] = value;
        for (int offset = dim_x / 2; offset >= AP_WARP; offset >>= 1) {
            __syncthreads();
            if ((int)threadIdx.x < offset && threadIdx.x + offset < blockDim.x) {
                AVec<A, V> other = shared[address_base + offset];
#pragma unroll
                for (int i = 0; i < V; i++) value.v[i] += other.v[i];
                shared[address_base] = value;
            }
        }
        dim_x = AP_WARP;
    }
    __syncthreads();
    for (int offset = 1; offset < dim_x; offset <<= 1) {
#pragma unroll
        for (int i = 0; i < V; i++) {
            A other = __shfl_down_sync(0xffffffffu, value.v[i], offset, AP_WARP);
            value.v[i] += other;
        }
    }
    return value;
}

template <typename T, int V>
__device__ __forceinline__ void reduce_mean(const T* __restrict__ src, T* __restrict__ dst,
                                            typename Acc<T>::type* cta_buf, int* semaphores,
                                            const ReduceArgs& c, typename Acc<T>::type factor) {
    typedef typename Acc<T>::type A;
    extern __shared__ char shared_memory[];
    __shared__ bool is_last_block_done_shared;
    const unsigned int output_idx =
        (threadIdx.x * c.output_mult0 + threadIdx.y * c.output_mult1 + blockIdx.x * c.step_output) * V;
    const unsigned int input_idx = threadIdx.x * c.input_mult0 + threadIdx.y * c.input_mult1 +
                                   blockIdx.y * c.input_mult2;
    AVec<A, V> value;
#pragma unroll
    for (int i = 0; i < V; i++) value.v[i] = (A)0;
    if (output_idx < (unsigned int)c.num_outputs && input_idx < (unsigned int)c.num_inputs) {
        const T* input_slice = src + input_offset_of(c, output_idx);
        if (V == 1 && c.vectorize_input) {
            value.v[0] = input_vectorized_thread_reduce<T>(c, input_slice);
        } else {
            value = thread_reduce_impl<T, V>(c, input_slice);
        }
    }
    const bool block_x = c.input_mult0 != 0;
    const bool block_y = c.input_mult1 != 0;
    if (block_y) value = block_y_reduce<A, V>(value, shared_memory);
    __syncthreads();
    if (block_x) value = block_x_reduce<A, V>(value, shared_memory);
    const bool should_store = output_idx < (unsigned int)c.num_outputs &&
                              (!block_x || threadIdx.x == 0) && (!block_y || threadIdx.y == 0);
    if (c.input_mult2 != 0) {
        // global_reduce: stage, count arrivals, the last block of this output finishes it.
        AVec<A, V>* reduce_buffer = (AVec<A, V>*)cta_buf;
        if (should_store) {
            unsigned int offset = blockIdx.y + blockIdx.x * gridDim.y;
            if (!block_x) offset = threadIdx.x + offset * blockDim.x;
            reduce_buffer[offset] = value;
        }
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0 && threadIdx.y == 0) {
            int prev_blocks_finished = atomicAdd(&semaphores[blockIdx.x], 1);
            is_last_block_done_shared = (prev_blocks_finished == (int)gridDim.y - 1);
        }
        __syncthreads();
        if (is_last_block_done_shared) {
            __threadfence();
#pragma unroll
            for (int i = 0; i < V; i++) value.v[i] = (A)0;
            unsigned int input_offset = block_x ? threadIdx.x + threadIdx.y * blockDim.x : threadIdx.y;
            const unsigned int step = block_x ? blockDim.x * blockDim.y : blockDim.y;
            for (; input_offset < (unsigned int)c.ctas_per_output; input_offset += step) {
                unsigned int idx = input_offset + blockIdx.x * gridDim.y;
                if (!block_x) idx = threadIdx.x + idx * blockDim.x;
                AVec<A, V> next = reduce_buffer[idx];
#pragma unroll
                for (int i = 0; i < V; i++) value.v[i] += next.v[i];
            }
            value = block_y_reduce<A, V>(value, shared_memory);
            if (block_x) value = block_x_reduce<A, V>(value, shared_memory);
            if (should_store) {
#pragma unroll
                for (int i = 0; i < V; i++) dst[output_idx + i] = from_acc<T>(value.v[i] * factor);
            }
        }
    } else if (should_store) {
#pragma unroll
        for (int i = 0; i < V; i++) dst[output_idx + i] = from_acc<T>(value.v[i] * factor);
    }
}

#define PT_REDUCE(DT, T, V)                                                                      \
    extern "C" __global__ void __launch_bounds__(512 / V, 4) pt_reduce_mean_##DT##_ovs##V(      \
        const T* __restrict__ src, T* __restrict__ dst, typename Acc<T>::type* cta_buf,          \
        int* semaphores, int num_outputs, int num_inputs, int step_input, int step_output,      \
        int input_mult0, int input_mult1, int input_mult2, int output_mult0, int output_mult1,   \
        int ctas_per_output, int vectorize_input, int out_dims, unsigned int div,               \
        unsigned int m1, unsigned int shift, unsigned int in_stride0, unsigned int in_stride1,   \
        unsigned int element_stride, typename Acc<T>::type factor) {                             \
        const ReduceArgs args = {num_outputs,  num_inputs,   step_input,      step_output,       \
                                 input_mult0,  input_mult1,  input_mult2,     output_mult0,      \
                                 output_mult1, ctas_per_output, vectorize_input, out_dims,       \
                                 div,          m1,           shift,           in_stride0,        \
                                 in_stride1,   element_stride};                                  \
        reduce_mean<T, V>(src, dst, cta_buf, semaphores, args, factor);                          \
    }
#define PT_REDUCE_ALL(DT, T) PT_REDUCE(DT, T, 1) PT_REDUCE(DT, T, 2) PT_REDUCE(DT, T, 4)

PT_REDUCE_ALL(f32, float)
PT_REDUCE_ALL(f64, double)
PT_REDUCE_ALL(f16, f16_raw)
PT_REDUCE_ALL(bf16, bf16_raw)
