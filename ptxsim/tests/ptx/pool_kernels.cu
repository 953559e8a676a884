#include <cuda_fp16.h>
#include <cuda_bf16.h>
__device__ __forceinline__ long long start_index(long long a, long long b, long long c) {
  return (a / b) * c + ((a % b) * c) / b;
}
__device__ __forceinline__ long long end_index(long long a, long long b, long long c) {
  return 1 + ((a + 1) * c - 1) / b;
}
template <typename T> __device__ float to_f(T v);
template <> __device__ float to_f<float>(float v) { return v; }
template <> __device__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ T from_f(float v);
template <> __device__ float from_f<float>(float v) { return v; }
template <> __device__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
__device__ void fwd(const T* __restrict__ in, T* __restrict__ out, long long nc, int ih, int iw, int oh, int ow) {
  long long total = nc * oh * ow;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    int ox = i % ow; int oy = (i / ow) % oh; long long p = i / ((long long)ow * oh);
    int y0 = start_index(oy, oh, ih), y1 = end_index(oy, oh, ih);
    int x0 = start_index(ox, ow, iw), x1 = end_index(ox, ow, iw);
    float s = 0.f;
    for (int y = y0; y < y1; ++y) for (int x = x0; x < x1; ++x) s += to_f(in[(p * ih + y) * iw + x]);
    out[i] = from_f<T>(s / ((y1 - y0) * (x1 - x0)));
  }
}
extern "C" __global__ void fwd_f32(const float* in, float* out, long long nc, int ih, int iw, int oh, int ow) { fwd(in, out, nc, ih, iw, oh, ow); }
extern "C" __global__ void fwd_f16(const __half* in, __half* out, long long nc, int ih, int iw, int oh, int ow) { fwd(in, out, nc, ih, iw, oh, ow); }
extern "C" __global__ void fwd_bf16(const __nv_bfloat16* in, __nv_bfloat16* out, long long nc, int ih, int iw, int oh, int ow) { fwd(in, out, nc, ih, iw, oh, ow); }
extern "C" __global__ void fwd_f64(const double* in, double* out, long long nc, int ih, int iw, int oh, int ow) {
  long long total = nc * oh * ow;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    int ox = i % ow; int oy = (i / ow) % oh; long long p = i / ((long long)ow * oh);
    int y0 = start_index(oy, oh, ih), y1 = end_index(oy, oh, ih);
    int x0 = start_index(ox, ow, iw), x1 = end_index(ox, ow, iw);
    double s = 0.;
    for (int y = y0; y < y1; ++y) for (int x = x0; x < x1; ++x) s += in[(p * ih + y) * iw + x];
    out[i] = s / ((y1 - y0) * (x1 - x0));
  }
}
extern "C" __global__ void bwd_atomic_f16(const __half* g, __half* gi, int n, int ih) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(&gi[i % ih], g[i]);
}
extern "C" __global__ void bwd_atomic_bf16(const __nv_bfloat16* g, __nv_bfloat16* gi, int n, int ih) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(&gi[i % ih], g[i]);
}
extern "C" __global__ void bwd_atomic_f32(const float* g, float* gi, int n, int ih) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(&gi[i % ih], g[i]);
}
extern "C" __global__ void bwd_atomic_f64(const double* g, double* gi, int n, int ih) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(&gi[i % ih], g[i]);
}
__device__ void bf16_cas_add(unsigned short* addr, float v) {
  unsigned short old = *addr, assumed;
  do { assumed = old;
    float f = __bfloat162float(__ushort_as_bfloat16(assumed)) + v;
    old = atomicCAS(addr, assumed, __bfloat16_as_ushort(__float2bfloat16_rn(f)));
  } while (assumed != old);
}
extern "C" __global__ void bwd_cas_bf16(const float* g, unsigned short* gi, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) bf16_cas_add(gi, g[i]);
}
extern "C" __global__ void warp_sum(const float* in, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? in[i] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, v);
}
extern "C" __global__ void block_sum(const float* in, float* out, int n) {
  __shared__ float sm[256];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  sm[threadIdx.x] = i < n ? in[i] : 0.f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) { if (threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s]; __syncthreads(); }
  if (threadIdx.x == 0) out[blockIdx.x] = sm[0];
}
extern "C" __global__ void dyn_sum(const double* in, double* out, int n) {
  extern __shared__ __align__(16) unsigned char dsm[];
  double* sm = (double*)dsm;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  sm[threadIdx.x] = i < n ? in[i] : 0.;
  __syncthreads();
  if (threadIdx.x == 0) { double s = 0; for (int k = 0; k < blockDim.x; ++k) s += sm[k]; out[blockIdx.x] = s; }
}
extern "C" __global__ void vec4(const float4* __restrict__ in, float4* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { float4 v = __ldg(&in[i]); v.x *= 2; v.y += 1; v.z = sqrtf(v.z); v.w = 1.0f / v.w; out[i] = v; }
}
extern "C" __global__ void h2(const __half2* in, __half2* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { out[i] = __hadd2(in[i], __hmul2(in[i], in[i])); }
}
