// Writes the window formula's bounds for every output cell, so that tests can compare the CUDA
// definition (common.cuh) with the Rust one (`adaptive_pool::window`) size by size.
//
// table[2 * o] = window_start(o), table[2 * o + 1] = window_end(o), for o in [0, out_len).
#include "common.cuh"

template <typename I>
__device__ __forceinline__ void window_table(u64* __restrict__ table, I in_len, I out_len) {
    const I stride = (I)blockDim.x * (I)gridDim.x;
    for (I o = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; o < out_len; o += stride) {
        table[2 * (u64)o] = (u64)window_start(o, out_len, in_len);
        table[2 * (u64)o + 1] = (u64)window_end(o, out_len, in_len);
    }
}

extern "C" __global__ void AP_LAUNCH_BOUNDS
    window_table_idx32(u64* __restrict__ table, u64 in_len, u64 out_len) {
    window_table<unsigned int>(table, (unsigned int)in_len, (unsigned int)out_len);
}

extern "C" __global__ void AP_LAUNCH_BOUNDS
    window_table_idx64(u64* __restrict__ table, u64 in_len, u64 out_len) {
    window_table<u64>(table, in_len, out_len);
}
