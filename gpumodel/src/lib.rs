//! `gpumodel` — a performance model of NVIDIA A100 and H100 GPUs driven by the PTX a kernel
//! really runs, executed on [`ptxsim`] (dev-only; no GPU needed).
//!
//! ptxsim executes the kernel and reports every thread's instructions and memory accesses to an
//! observer ([`trace::Tracer`]), which rebuilds warp instructions (with their active lanes) and
//! per-warp memory requests (32-byte sectors, 128-byte lines). [`model`] replays those requests
//! through an L1 per SM and an L2 (sectored LRU caches, [`cache`]), weighs every warp
//! instruction by its machine-code cost per execution pipe ([`cost`], calibrated offline from
//! ptxas and nvdisasm: [`sass_costs`]), follows each warp's dependent-latency timeline, and
//! turns occupancy (registers from [`ptxas`], shared memory, block size) and waves into a time:
//! the largest of the DRAM, L2, issue and latency bounds per wave, plus launch overhead, as a
//! range over the parameters that are not published ([`gpu`]). [`sim`] runs a launch with block
//! sampling so that large problems take seconds. [`pytorch`] holds PyTorch's algorithms for the
//! same operation as benchmark-only kernels, for a side-by-side comparison.
//!
//! Every figure this crate produces is *modelled*, never measured.

pub mod cache;
pub mod cost;
pub mod gpu;
pub mod model;
pub mod ptxas;
pub mod pytorch;
pub mod sass_costs;
pub mod sim;
pub mod trace;

/// A float4 (16 bytes per thread) copy, one vector per thread, `n4` vectors: the calibration
/// kernel whose modelled bandwidth is compared with published copy bandwidths.
pub const COPY_PTX: &str = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry copy_f32x4(.param .u64 src, .param .u64 dst, .param .u64 n4)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .f32 %f<5>;
    .reg .b64 %rd<10>;
    ld.param.u64 %rd1, [src];
    ld.param.u64 %rd2, [dst];
    ld.param.u64 %rd3, [n4];
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    cvt.u64.u32 %rd4, %r4;
    setp.ge.u64 %p1, %rd4, %rd3;
    @%p1 bra DONE;
    cvta.to.global.u64 %rd5, %rd1;
    cvta.to.global.u64 %rd6, %rd2;
    shl.b64 %rd7, %rd4, 4;
    add.s64 %rd8, %rd5, %rd7;
    ld.global.nc.v4.f32 {%f1, %f2, %f3, %f4}, [%rd8];
    add.s64 %rd9, %rd6, %rd7;
    st.global.v4.f32 [%rd9], {%f1, %f2, %f3, %f4};
DONE:
    ret;
}
"#;
