//! `vgpu`: a CUDA driver (`libcuda.so`) that runs kernels on ptxsim, the CPU PTX interpreter of
//! this workspace, so that the crate's whole GPU path (cudarc's module loading, launches,
//! streams, events, copies) runs end to end on a machine without a GPU.
//!
//! Built as a `cdylib`, it exports with C ABI the driver API functions cudarc calls (see
//! [`api`]); `.ci/vgpu.sh CMD...` builds it and runs `CMD` with it first on `LD_LIBRARY_PATH`
//! as `libcuda.so` / `libcuda.so.1`. `vgpu/README.md` says what it proves and what it cannot.
//!
//! - Kernels: `cuModuleLoadData` checks the PTX's `.version` against the configured driver
//!   version and its `.target` against the compute capability, then parses it with ptxsim;
//!   `cuLaunchKernel` reads parameters with the sizes the PTX declares.
//! - Streams are queues ([`exec`]): work runs when the host observes it, unordered work on
//!   different streams that touches the same bytes (one of them writing) is a cross-stream
//!   race, reported naming both operations.
//! - Faults (out of bounds, misaligned, races) are sticky for the rest of the context's life.
//! - The device is configured by `VGPU_*` variables read at `cuInit` ([`config`]).

pub mod abi;
pub mod access;
pub mod api;
pub mod clock;
pub mod config;
pub mod exec;
pub mod ptx_header;
pub mod report;
pub mod state;
