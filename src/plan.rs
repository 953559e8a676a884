//! Launch plans: which kernels run, in what order, with which grid, block, shared memory and
//! arguments.
//!
//! A plan is plain data. The CUDA path (`crate::cuda`) executes it with cudarc; the crate's
//! tests execute the very same plan on a PTX simulator. Every kernel of the crate takes the
//! same parameter list:
//!
//! `(const T* src, T* dst, u64 batch, u64 channels, u64 in_h, u64 in_w, u64 out_h, u64 out_w)`
//!
//! where `src`/`dst` are the input/output for the forward and grad_output/grad_input for the
//! backward, and `in_*`/`out_*` always describe the forward's input and output.

use crate::element::DType;
use crate::shape::{Layout, Shape};

/// Threads per block of every kernel (`AP_THREADS_PER_BLOCK` in `kernels/common.cuh`).
pub const THREADS_PER_BLOCK: u32 = 256;

/// Resident blocks per multiprocessor that a grid-stride kernel's grid is sized for; more
/// blocks than that only add scheduling work.
pub const BLOCKS_PER_MULTIPROCESSOR: u32 = 8;

/// The largest grid x dimension CUDA accepts.
const MAX_GRID_X: u64 = (1 << 31) - 1;

/// What the planner needs to know about the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// Compute capability as `major * 10 + minor`.
    pub compute_capability: u32,
}

/// How the backward pass computes grad_input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackwardAlgorithm {
    /// PyTorch's scheme: zero grad_input, then every grad_output element atomically adds its
    /// share into its window. Not bitwise reproducible when windows overlap.
    #[default]
    Atomic,
}

/// Which buffer a pointer argument refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// The buffer read: input (forward) or grad_output (backward).
    Src,
    /// The buffer written: output (forward) or grad_input (backward).
    Dst,
}

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelArg {
    /// A device pointer to the start of a buffer.
    Pointer(Buffer),
    /// A 64-bit unsigned integer.
    U64(u64),
}

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLaunch {
    /// The module (`kernels/<module>.cu`) holding the kernel.
    pub module: &'static str,
    /// The kernel's (unmangled, `extern "C"`) name.
    pub kernel: String,
    /// Grid dimensions in blocks.
    pub grid: [u32; 3],
    /// Block dimensions in threads.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub shared_bytes: u32,
    /// Arguments, in the kernel's parameter order.
    pub args: Vec<KernelArg>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Set every byte of the destination buffer to zero.
    ZeroDst,
    /// Launch a kernel.
    Launch(KernelLaunch),
}

/// An ordered list of steps, all queued on one stream.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LaunchPlan {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Whether the `_idx32` kernels are safe for these shapes: every index and intermediate
/// product they form (element offsets, `(o + 1) * in_len + out_len` in the window formula,
/// and a grid-stride index plus the stride) must stay below 2^32 in unsigned 32-bit
/// arithmetic, which holds when element counts are at most 2^31 and the window products fit.
pub fn fits_idx32(input: &Shape, output: &Shape) -> bool {
    const LIMIT: u128 = 1 << 31;
    let window_fits =
        |o: usize, i: usize| (o as u128 + 1) * i as u128 + o as u128 <= u32::MAX as u128;
    (input.numel() as u128) <= LIMIT
        && (output.numel() as u128) <= LIMIT
        && window_fits(output.height(), input.height())
        && window_fits(output.width(), input.width())
}

/// The plan for the forward pass of `input` into `output` (shapes already validated).
pub fn forward(
    input: &Shape,
    output: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> LaunchPlan {
    let work = output.numel();
    if work == 0 {
        return LaunchPlan::default();
    }
    let kernel = format!(
        "forward_{}_{}_{}",
        layout.name(),
        dtype.name(),
        index_suffix(input, output)
    );
    LaunchPlan {
        steps: vec![Step::Launch(elementwise_launch(
            "forward", kernel, work, input, output, device,
        ))],
    }
}

/// The plan for the backward pass: `grad_output` (the forward's output shape) into
/// `grad_input` (the forward's input shape), shapes already validated.
pub fn backward(
    grad_output: &Shape,
    grad_input: &Shape,
    layout: Layout,
    dtype: DType,
    algorithm: BackwardAlgorithm,
    device: &DeviceLimits,
) -> LaunchPlan {
    if grad_input.numel() == 0 {
        return LaunchPlan::default();
    }
    match algorithm {
        BackwardAlgorithm::Atomic => {
            let mut steps = vec![Step::ZeroDst];
            let work = grad_output.numel();
            if work > 0 {
                let kernel = format!(
                    "backward_atomic_{}_{}_{}",
                    layout.name(),
                    dtype.name(),
                    index_suffix(grad_input, grad_output)
                );
                steps.push(Step::Launch(elementwise_launch(
                    "backward_atomic",
                    kernel,
                    work,
                    grad_input,
                    grad_output,
                    device,
                )));
            }
            LaunchPlan { steps }
        }
    }
}

fn index_suffix(input: &Shape, output: &Shape) -> &'static str {
    if fits_idx32(input, output) {
        "idx32"
    } else {
        "idx64"
    }
}

/// A one-thread-per-element grid-stride launch over `work` elements, with the crate's common
/// argument list.
fn elementwise_launch(
    module: &'static str,
    kernel: String,
    work: usize,
    input: &Shape,
    output: &Shape,
    device: &DeviceLimits,
) -> KernelLaunch {
    let wanted = (work as u64).div_ceil(u64::from(THREADS_PER_BLOCK));
    let resident = u64::from(device.multiprocessors.max(1)) * u64::from(BLOCKS_PER_MULTIPROCESSOR);
    let blocks = wanted.min(resident).clamp(1, MAX_GRID_X) as u32;
    KernelLaunch {
        module,
        kernel,
        grid: [blocks, 1, 1],
        block: [THREADS_PER_BLOCK, 1, 1],
        shared_bytes: 0,
        args: vec![
            KernelArg::Pointer(Buffer::Src),
            KernelArg::Pointer(Buffer::Dst),
            KernelArg::U64(input.batch() as u64),
            KernelArg::U64(input.channels() as u64),
            KernelArg::U64(input.height() as u64),
            KernelArg::U64(input.width() as u64),
            KernelArg::U64(output.height() as u64),
            KernelArg::U64(output.width() as u64),
        ],
    }
}
