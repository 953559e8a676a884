//! PyTorch's `AdaptiveAvgPool2d` on NVIDIA GPUs: forward and backward CUDA kernels, compiled
//! from `kernels/*.cu` to PTX by NVRTC at build time, loaded and launched through
//! [`cudarc`], behind a safe API.
//!
//! ```no_run
//! use adaptive_pool::{AdaptiveAvgPool2d, DeviceTensor, Layout};
//! use cudarc::driver::CudaContext;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = CudaContext::new(0)?;
//! let stream = ctx.default_stream();
//! let host: Vec<f32> = (0..2 * 64 * 10 * 20).map(|i| (i % 97) as f32).collect();
//! let input = DeviceTensor::from_host(&stream, &host, &[2, 64, 10, 20], Layout::Nchw)?;
//!
//! let pool = AdaptiveAvgPool2d::new((1, 7));
//! let output = pool.forward(&stream, &input)?;
//! assert_eq!(output.dims(), &[2, 64, 1, 7]);
//!
//! // The backward takes grad_output and the input's shape.
//! let grad_input = pool.backward(&stream, &output, input.dims())?;
//! assert_eq!(grad_input.dims(), input.dims());
//!
//! // The CPU reference computes the same thing, in f64.
//! let (expected, _) = adaptive_pool::reference::forward(&host, input.shape(), Layout::Nchw, (1, 7))?;
//! let got = output.to_host(&stream)?;
//! assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0)));
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics
//! Exactly PyTorch's: output cell `o` of `O` over an input of length `I` averages the window
//! `[floor(o * I / O), ceil((o + 1) * I / O))` (see [`window`]), in each of H and W. Inputs are
//! 3-D `(C, H, W)` or 4-D `(N, C, H, W)`, contiguous ([`Layout::Nchw`]) or channels-last
//! ([`Layout::Nhwc`]); outputs keep the input's rank and layout and may be larger than the
//! input. Element types are `f32`, `f64`, `half::f16` and `half::bf16`; f16 and bf16 are
//! accumulated in f32, f32 in f32 and f64 in f64.
//!
//! # Streams
//! Every GPU operation is queued on the stream passed in; nothing synchronizes with the host
//! except [`DeviceTensor::to_host`]. The `_into` forms allocate nothing.
//!
//! # Without a GPU
//! [`reference`](mod@reference) runs on any machine. The crate builds without NVRTC too (every GPU entry point
//! then returns [`Error::KernelsNotBuilt`]); with NVRTC the embedded PTX is in [`ptx`] and the
//! launch plans in [`plan`], which is how the crate's own tests execute the real kernels on a
//! PTX simulator.

#![warn(missing_docs)]

mod cuda;
mod element;
mod error;
pub mod plan;
mod pool;
pub mod ptx;
pub mod reference;
mod shape;
mod tensor;
pub mod window;

pub use cudarc;
pub use element::{DType, Element};
pub use error::{Error, Result};
pub use half;
pub use plan::BackwardAlgorithm;
pub use pool::AdaptiveAvgPool2d;
pub use shape::{Layout, OutputSize, Shape};
pub use tensor::{
    DeviceStorage, DeviceStorageMut, DeviceTensor, Tensor, TensorView, TensorViewMut,
};

/// Drops the kernels this crate loaded into `ctx` (and its reference to the context). They are
/// loaded again on next use. Returns whether any were loaded.
pub fn release_kernels(ctx: &cudarc::driver::CudaContext) -> bool {
    cuda::release(ctx)
}
