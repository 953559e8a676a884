// The mutation corpus of ptxsim's hazard checks (tests/hazards.rs): for each hazard, a kernel
// with the bug and its correct twin. Every kernel passes on ptxsim's default schedule without
// the checks; each bug must be reported, each twin must pass under every schedule.
//
// Regenerate the PTX fixtures with tests/ptx/gen_ptx.py for compute_75, compute_80 and
// compute_90 (no CUDA headers needed).

// ---------------------------------------------------------------------------------------------
// Missing barrier, read-after-write: each thread stages one value in shared memory and reads
// the value its mirror thread (blockDim.x - 1 - t, in another warp) staged.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void mirror_no_barrier(const float* in, float* out) {
    __shared__ float stage[256];
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    stage[t] = in[i];
    // BUG: no __syncthreads() before reading another thread's element
    out[i] = stage[blockDim.x - 1 - t];
}

extern "C" __global__ void mirror(const float* in, float* out) {
    __shared__ float stage[256];
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    stage[t] = in[i];
    __syncthreads();
    out[i] = stage[blockDim.x - 1 - t];
}

// ---------------------------------------------------------------------------------------------
// Missing barrier, write-after-read: a shared buffer reused by the next loop iteration. Round
// r stages in[r][t]; every thread adds its mirror's value.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void rounds_no_second_barrier(const float* in, float* out, int rounds) {
    __shared__ float stage[256];
    const int t = threadIdx.x;
    const int n = blockDim.x;
    float acc = 0.0f;
    for (int r = 0; r < rounds; ++r) {
        stage[t] = in[r * n + t];
        __syncthreads();
        acc += stage[n - 1 - t];
        // BUG: no __syncthreads(): the next round overwrites stage[t] while thread n - 1 - t
        // may still be reading it
    }
    out[blockIdx.x * n + t] = acc;
}

extern "C" __global__ void rounds(const float* in, float* out, int rounds) {
    __shared__ float stage[256];
    const int t = threadIdx.x;
    const int n = blockDim.x;
    float acc = 0.0f;
    for (int r = 0; r < rounds; ++r) {
        stage[t] = in[r * n + t];
        __syncthreads();
        acc += stage[n - 1 - t];
        __syncthreads();
    }
    out[blockIdx.x * n + t] = acc;
}

// ---------------------------------------------------------------------------------------------
// Plain read-modify-write instead of an atomic: a histogram of keys.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void histogram_plain(const int* keys, int* bins, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const int k = keys[i];
        bins[k] = bins[k] + 1;  // BUG: lost updates when two threads hit one bin
    }
}

extern "C" __global__ void histogram(const int* keys, int* bins, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        atomicAdd(&bins[keys[i]], 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Compare-and-swap that never retries: a sum built from CAS.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void sum_cas_once(const int* in, int* total, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const int old = *total;
        atomicCAS(total, old, old + in[i]);  // BUG: the update is lost when the CAS fails
    }
}

extern "C" __global__ void sum_cas(const int* in, int* total, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        int old = *total;
        int assumed;
        do {
            assumed = old;
            old = atomicCAS(total, assumed, assumed + in[i]);
        } while (old != assumed);
    }
}

// ---------------------------------------------------------------------------------------------
// Off-by-one overrun: scalar and 16-byte vector.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void scale_overrun(const float* in, float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) {  // BUG: one element past the end
        out[i] = 2.0f * in[i];
    }
}

extern "C" __global__ void scale(const float* in, float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = 2.0f * in[i];
    }
}

// n floats as float4 (the buffers must be 16-byte aligned).
extern "C" __global__ void scale4_overrun(const float4* in, float4* out, int n) {
    const int v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v < (n + 3) / 4) {  // BUG: the last vector runs past n when n % 4 != 0
        const float4 a = in[v];
        out[v] = make_float4(2.0f * a.x, 2.0f * a.y, 2.0f * a.z, 2.0f * a.w);
    }
}

extern "C" __global__ void scale4(const float4* in, float4* out, int n) {
    const int v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v < n / 4) {
        const float4 a = in[v];
        out[v] = make_float4(2.0f * a.x, 2.0f * a.y, 2.0f * a.z, 2.0f * a.w);
    } else if (v == n / 4) {
        const float* s = reinterpret_cast<const float*>(in);
        float* d = reinterpret_cast<float*>(out);
        for (int j = 4 * v; j < n; ++j) {
            d[j] = 2.0f * s[j];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Warp-synchronous exchange through shared memory: lanes swap with their neighbour.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void swap_no_syncwarp(const int* in, int* out) {
    __shared__ int lanes[256];
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    lanes[t] = 0;
    __syncthreads();
    lanes[t] = in[i];
    // BUG: no __syncwarp(): lanes run independently since Volta
    out[i] = lanes[t ^ 1];
}

extern "C" __global__ void swap_syncwarp(const int* in, int* out) {
    __shared__ int lanes[256];
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    lanes[t] = 0;
    __syncthreads();
    lanes[t] = in[i];
    __syncwarp();
    out[i] = lanes[t ^ 1];
}

// ---------------------------------------------------------------------------------------------
// Shuffle within the lower half-warp.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void half_warp_sum_outside_mask(const int* in, int* out) {
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    int v = in[i];
    if ((t & 31) < 16) {
        v += __shfl_xor_sync(0x0000ffffu, v, 16);  // BUG: lane ^ 16 is not in the mask
    }
    out[i] = v;
}

extern "C" __global__ void half_warp_sum(const int* in, int* out) {
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    int v = in[i];
    if ((t & 31) < 16) {
        for (int d = 8; d > 0; d /= 2) {
            v += __shfl_xor_sync(0x0000ffffu, v, d);
        }
    }
    out[i] = v;
}

// ---------------------------------------------------------------------------------------------
// Spin-waits. The bug is a grid-wide barrier built from an atomic counter: blocks are not
// guaranteed to run at the same time, and on ptxsim they never do, so block 0 waits forever.
// The twin waits only for a thread of its own block, which makes progress on its own.
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void grid_barrier_spin(int* arrived, int* out) {
    if (threadIdx.x == 0) {
        atomicAdd(arrived, 1);
        while (atomicAdd(arrived, 0) < (int)gridDim.x) {
            // BUG: spins until every block has arrived
        }
    }
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

extern "C" __global__ void block_flag_spin(const int* in, int* out) {
    __shared__ int box;
    const int t = threadIdx.x;
    if (t == 0) {
        box = 0;
    }
    __syncthreads();
    if (t == 0) {
        atomicExch(&box, in[blockIdx.x] + 1);
    }
    int v;
    while ((v = atomicAdd(&box, 0)) == 0) {
        // waits for thread 0 of this block
    }
    out[blockIdx.x * blockDim.x + t] = v - 1;
}
