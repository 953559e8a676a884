// Per-block window tables for the deterministic backward (gather) kernels.
//
// The gather needs, for every grad_input row (column), the range of output rows (columns)
// whose windows cover it, and for every output row (column) its window length. Worked out per
// element, that is a dozen integer divisions by kernel parameters per element; here each block
// works them out once per row and column into shared memory, and the kernels read them back.
// The entries are the same window formula (common.cuh) evaluated at the same arguments, so a
// kernel reading the tables computes exactly what one dividing per element computes.
//
// Tables are used where every extent is at most AP_GATHER_TABLE (both ends of a covering range
// then fit in 16 bits); kernels fall back to dividing per element otherwise.
#pragma once
#include "common.cuh"

#define AP_GATHER_TABLE 1024

struct GatherTables {
    // Covering output range of input row ih: first | (one past the last) << 16.
    unsigned int row_cover[AP_GATHER_TABLE];
    // The same for input column iw.
    unsigned int col_cover[AP_GATHER_TABLE];
    // Window height of output row oy, width of output column ox.
    unsigned int row_len[AP_GATHER_TABLE];
    unsigned int col_len[AP_GATHER_TABLE];
};

// Whether these extents fit the tables.
template <typename I>
__device__ __forceinline__ bool gather_tables_fit(I in_h, I in_w, I out_h, I out_w) {
    const I cap = (I)AP_GATHER_TABLE;
    return in_h <= cap && in_w <= cap && out_h <= cap && out_w <= cap;
}

// Covering output range of input position i (of in_len) packed as above.
__device__ __forceinline__ unsigned int cover_packed(unsigned int i, unsigned int in_len,
                                                     unsigned int out_len) {
    return window_start(i, in_len, out_len) | (window_end(i, in_len, out_len) << 16);
}

// Fills the tables; every thread of the block must call it (it ends with a barrier). Only for
// extents that gather_tables_fit accepts.
__device__ __forceinline__ void fill_gather_tables(GatherTables& t, unsigned int in_h,
                                                   unsigned int in_w, unsigned int out_h,
                                                   unsigned int out_w) {
    for (unsigned int i = threadIdx.x; i < in_h; i += blockDim.x) {
        t.row_cover[i] = cover_packed(i, in_h, out_h);
    }
    for (unsigned int i = threadIdx.x; i < in_w; i += blockDim.x) {
        t.col_cover[i] = cover_packed(i, in_w, out_w);
    }
    for (unsigned int o = threadIdx.x; o < out_h; o += blockDim.x) {
        t.row_len[o] = window_end(o, out_h, in_h) - window_start(o, out_h, in_h);
    }
    for (unsigned int o = threadIdx.x; o < out_w; o += blockDim.x) {
        t.col_len[o] = window_end(o, out_w, in_w) - window_start(o, out_w, in_w);
    }
    __syncthreads();
}

// Sum of grad / area over the output cells (oy, ox) in the packed ranges `rows` x `cols`, in
// row-major order, where grad (oy, ox) is at `g[oy * row_stride + ox * col_stride]`: the
// division and the order of gather_one in backward_gather.cu, with the lengths from the tables.
template <typename T, typename I>
__device__ __forceinline__ typename Acc<T>::type gather_cells(const GatherTables& t,
                                                              const T* __restrict__ g,
                                                              unsigned int rows,
                                                              unsigned int cols, I row_stride,
                                                              I col_stride) {
    typedef typename Acc<T>::type A;
    const unsigned int oy0 = rows & 0xffffu, oy1 = rows >> 16;
    const unsigned int ox0 = cols & 0xffffu, ox1 = cols >> 16;
    A sum = 0;
    for (unsigned int oy = oy0; oy < oy1; ++oy) {
        const unsigned int kh = t.row_len[oy];
        const T* gr = g + (I)oy * row_stride;
        for (unsigned int ox = ox0; ox < ox1; ++ox) {
            const unsigned int kw = t.col_len[ox];
            sum += to_acc(gr[(I)ox * col_stride]) / (A)(kh * kw);
        }
    }
    return sum;
}

// Grid-stride stepping without divisions: a flat row-major index over (outer, h, w) kept as
// its three coordinates, advanced by a fixed stride decomposed once.
template <typename I>
struct Step3 {
    I outer, h, w;
};

template <typename I>
__device__ __forceinline__ Step3<I> split3(I flat, I h_len, I w_len) {
    Step3<I> s;
    s.w = flat % w_len;
    const I rest = flat / w_len;
    s.h = rest % h_len;
    s.outer = rest / h_len;
    return s;
}

// pos += by, where by.h < h_len and by.w < w_len.
template <typename I>
__device__ __forceinline__ void advance3(Step3<I>& pos, const Step3<I>& by, I h_len, I w_len) {
    pos.w += by.w;
    I carry = 0;
    if (pos.w >= w_len) {
        pos.w -= w_len;
        carry = 1;
    }
    pos.h += by.h + carry;
    carry = 0;
    if (pos.h >= h_len) {
        pos.h -= h_len;
        carry = 1;
    }
    pos.outer += by.outer + carry;
}

// The contiguous run [begin, end) of `items` work items that this block takes. Where the grid
// holds every item at once (a thread each), block b takes items [b * blockDim.x, ...), as a
// plain grid would, with no division; otherwise, or where `even` asks for it, the grid splits
// the items into runs of equal length (but the last). The block's threads take every
// blockDim.x-th item of its run. Every block but the last then does the same work whatever the
// item count, where a grid-stride loop gives some blocks one turn more than others.
template <typename I>
struct BlockRun {
    I begin, end;
};

template <typename I>
__device__ __forceinline__ BlockRun<I> block_run(I items, bool even) {
    const I grid = (I)gridDim.x;
    I per = (I)blockDim.x;
    if (even || (u64)grid * (u64)blockDim.x < (u64)items) {
        per = items / grid + (I)(items % grid != 0);
    }
    // b * per < grid * per <= items + grid or blockDim.x * grid: no overflow where items fits
    // in half of I and the grid is at most what the device keeps resident.
    const I start = (I)blockIdx.x * per;
    BlockRun<I> run;
    run.begin = start < items ? start : items;
    run.end = items - run.begin < per ? items : run.begin + per;
    return run;
}
