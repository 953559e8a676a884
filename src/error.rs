//! The crate's one error type.

use cudarc::driver::DriverError;

/// Everything that can go wrong in this crate. Messages say what was given and what was
/// expected, in the style of PyTorch's own checks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not 3-D `(C, H, W)` or 4-D `(N, C, H, W)`.
    #[error("{op}: Expected 3D or 4D tensor, but got {shape:?}")]
    InvalidRank {
        /// The operation that checked it.
        op: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },

    /// A non-batch dimension (H or W, or C of a 4-D input) is zero.
    #[error(
        "{op}: Expected input to have non-zero size for non-batch dimensions, but input has \
         sizes {shape:?} with dimension {dim} being empty"
    )]
    EmptyDimension {
        /// The operation that checked it.
        op: &'static str,
        /// The shape given.
        shape: Vec<usize>,
        /// Index of the empty dimension.
        dim: usize,
    },

    /// A tensor's shape is not the one the operation needs (for example a `grad_output` that is
    /// not the forward's output shape for that input shape, or an output buffer of the wrong
    /// shape).
    #[error("{op}: Expected {what} of shape {expected:?}, but got {got:?}")]
    ShapeMismatch {
        /// The operation that checked it.
        op: &'static str,
        /// Which tensor.
        what: &'static str,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },

    /// Two tensors that must share a memory layout do not.
    #[error("{op}: Expected {what} in layout {expected}, but got {got}")]
    LayoutMismatch {
        /// The operation that checked it.
        op: &'static str,
        /// Which tensor.
        what: &'static str,
        /// The layout needed.
        expected: crate::Layout,
        /// The layout given.
        got: crate::Layout,
    },

    /// A buffer's length does not match the number of elements of its shape.
    #[error("buffer of {got} elements given for shape {shape:?}, which needs {expected}")]
    BufferLength {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements in the buffer.
        got: usize,
    },

    /// The product of a shape's dimensions (or a size derived from it) overflows `usize`.
    #[error("the element count of shape {shape:?} overflows usize")]
    ElementCountOverflow {
        /// The shape.
        shape: Vec<usize>,
    },

    /// The host cannot allocate a buffer of this shape (the reference's result, or a tensor's
    /// host copy).
    #[error("cannot allocate {bytes} bytes on the host for a {dtype} tensor of shape {shape:?}")]
    HostAllocation {
        /// The shape.
        shape: Vec<usize>,
        /// The element type.
        dtype: crate::DType,
        /// Bytes asked for.
        bytes: u128,
    },

    /// A tensor lives in a different CUDA context than the stream it is used on.
    #[error(
        "{what} lives on CUDA device {got} but the stream belongs to device {expected}; copy it \
         to the stream's device first"
    )]
    ContextMismatch {
        /// Which tensor.
        what: &'static str,
        /// Ordinal of the stream's device.
        expected: usize,
        /// Ordinal of the tensor's device.
        got: usize,
    },

    /// The crate was built without NVRTC, so it holds no GPU kernels.
    #[error("adaptive-pool was built without its CUDA kernels: {reason}")]
    KernelsNotBuilt {
        /// Why, and how to fix it.
        reason: &'static str,
    },

    /// The device is older than the oldest architecture the PTX was built for.
    #[error(
        "CUDA device {ordinal} has compute capability {major}.{minor}, but adaptive-pool's \
         kernels need at least {lowest_major}.{lowest_minor}"
    )]
    UnsupportedDevice {
        /// Device ordinal.
        ordinal: usize,
        /// The device's compute capability, major part.
        major: u32,
        /// The device's compute capability, minor part.
        minor: u32,
        /// Oldest architecture built, major part.
        lowest_major: u32,
        /// Oldest architecture built, minor part.
        lowest_minor: u32,
    },

    /// The driver rejected the PTX as newer than it understands.
    #[error(
        "the CUDA driver (version {driver_major}.{driver_minor}) cannot load adaptive-pool's \
         PTX, which NVRTC {nvrtc_major}.{nvrtc_minor} built: update the driver to one that \
         supports CUDA {nvrtc_major}.{nvrtc_minor} or newer, or rebuild the crate with an \
         older NVRTC"
    )]
    PtxTooNew {
        /// Driver's CUDA version, major part.
        driver_major: i32,
        /// Driver's CUDA version, minor part.
        driver_minor: i32,
        /// NVRTC that built the PTX, major part.
        nvrtc_major: i32,
        /// NVRTC that built the PTX, minor part.
        nvrtc_minor: i32,
    },

    /// A CUDA driver call failed.
    #[error("CUDA error while {doing}: {}", describe(source))]
    Cuda {
        /// What the crate was doing.
        doing: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps a driver error with what the crate was doing.
pub(crate) fn cuda(doing: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
    let doing = doing.into();
    move |source| Error::Cuda { doing, source }
}

/// `CUDA_ERROR_NAME (description)`; the description only where the driver library is loaded
/// (cudarc's own formatting asks the driver for it, and aborts where there is none).
fn describe(e: &DriverError) -> String {
    // SAFETY: `is_culib_present` only tries to open the driver library; it calls nothing in it.
    let loaded = unsafe { cudarc::driver::sys::is_culib_present() };
    let description = if loaded {
        e.error_string()
            .ok()
            .map(|s| format!(" ({})", s.to_string_lossy()))
    } else {
        None
    };
    format!("{:?}{}", e.0, description.unwrap_or_default())
}
