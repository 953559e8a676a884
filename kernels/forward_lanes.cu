// Global pooling (1x1 output) of small NCHW planes: AP_LANES_PER_PLANE lanes per plane, so a
// warp sums 32 / AP_LANES_PER_PLANE planes at once.
//
// A warp per plane (forward_reduce.cu's forward_global_nchw) leaves most lanes idle and has
// one load in flight per lane when a plane is a few dozen elements (7x7). Here lane g of a
// plane's group loads elements g, g + 8, g + 16, ... of it, up to 8 of them before adding any
// (all in flight at once), and the group's sums meet by a shuffle tree. Each block takes one
// contiguous range of planes (an even share of them), a round of 256 / AP_LANES_PER_PLANE planes
// at a time, so that a block's reads are one stretch of the input.
//
// Summation order (fixed, so results are bitwise reproducible, and the same on every device
// and grid): lane g of a plane adds elements g, g + 8, ... in that order; the 8 lanes' sums meet
// by xor shuffles over offsets 4, 2, 1. Same formula and accumulator types as forward.cu (see
// common.cuh).
#include "common.cuh"
#include "batch.cuh"

// Lanes summing one plane (a power of two, at most a warp). src/plan.rs (`LANES_PER_PLANE`)
// matches.
#define AP_LANES_PER_PLANE 8

// q[0] + q[STEP] + ... + q[(count - 1) * STEP] (storage type T), added in that order, in
// batches of 8 loads issued ahead of their adds.
template <int STEP, typename T, typename I>
__device__ __forceinline__ typename Acc<T>::type sum_strided(const T* q, I count) {
    typedef typename Acc<T>::type A;
    typedef typename Raw<T>::type R;
    A sum = 0;
    const T* r = q;
    I left = count;
    for (; left >= 8; left -= 8, r += 8 * STEP) {
        R v[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            v[u] = raw_of(r[u * STEP]);
        }
        after_loads(v);
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            sum += to_acc(of_raw<T>(v[u]));
        }
    }
    if (left > 0) {
        R v[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            v[u] = 0;
            if ((I)u < left) {
                v[u] = raw_of(r[u * STEP]);
            }
        }
        after_loads(v);
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            if ((I)u < left) {
                sum += to_acc(of_raw<T>(v[u]));
            }
        }
    }
    return sum;
}

template <typename T, typename I>
__device__ __forceinline__ void forward_global_lanes_nchw(const T* __restrict__ in,
                                                          T* __restrict__ out, I batch,
                                                          I channels, I in_h, I in_w, I, I) {
    typedef typename Acc<T>::type A;
    const I planes = batch * channels;
    const I hw = in_h * in_w;
    // The mean is the sum times 1 / (H * W), the reciprocal rounded once in the accumulator
    // type: PyTorch's `mean` (MeanOps: `acc * factor`), the op its adaptive pooling runs for a
    // 1x1 output. Computed before the loads, it is off the path that waits for them.
    const A scale = (A)1 / (A)hw;
    const I part = (I)threadIdx.x % AP_LANES_PER_PLANE;
    // Elements of its plane this lane sums.
    const I count = part < hw ? (hw - part + AP_LANES_PER_PLANE - 1) / AP_LANES_PER_PLANE : (I)0;
    const I per_round = (I)blockDim.x / AP_LANES_PER_PLANE;
    // Each block takes one contiguous range of planes, a round of per_round planes at a time.
    const I share = (planes + (I)gridDim.x - 1) / (I)gridDim.x;
    const I begin = (I)blockIdx.x * share;
    const I end = planes - begin < share ? planes : begin + share;
    for (I p0 = begin; p0 < end; p0 += per_round) {
        const I p = p0 + (I)threadIdx.x / AP_LANES_PER_PLANE;
        A sum = 0;
        if (p < end) {  // every lane takes part in the shuffles
            sum = sum_strided<AP_LANES_PER_PLANE>(in + p * hw + part, count);
        }
#pragma unroll
        for (int offset = AP_LANES_PER_PLANE / 2; offset > 0; offset /= 2) {
            sum += __shfl_xor_sync(0xffffffffu, sum, offset);
        }
        if (part == 0 && p < end) {
            out[p] = from_acc<T>(sum * scale);
        }
    }
}

AP_INSTANTIATE_ALL_DTYPES(forward_global_lanes_nchw)
