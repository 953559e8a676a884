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
///
/// Modelled crossover (`cargo run --release --example model -- --gpu h100 --sweep`, gpumodel,
/// 2026-11-21; modelled, not measured): over the 180 rows of the table's cases below 2^28 input
/// elements (f32 and f16, both layouts, all three passes), capping grids at 2, 4, 8, 16 and 32
/// blocks per SM gives geometric-mean times of 1.23, 1.05, 1.00, 1.01 and 1.00 times those of
/// 8: fewer leave SMs idle, more gain nothing. The model supports keeping 8.
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
    /// Each grad_input element gathers `grad / area` from exactly the output cells whose
    /// windows cover it and is written once: no zero-fill pass, no atomics, bitwise identical
    /// results run after run. The default: it moves fewer bytes than the scatter (which writes
    /// grad_input once to zero it and then read-modify-writes it once per contribution) and
    /// avoids the compare-and-swap loops that bf16 atomics become below sm_90.
    #[default]
    Deterministic,
    /// PyTorch's scheme: zero grad_input, then every grad_output element atomically adds its
    /// share into its window. Not bitwise reproducible when windows overlap.
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
/// product they form (element offsets, `(o + 1) * in_len + out_len` in the window formula and
/// its input/output-swapped twin in the gather, and a grid-stride index plus the stride) must
/// stay below 2^32 in unsigned 32-bit arithmetic, which holds when element counts are at most
/// 2^31 and the window products fit.
pub fn fits_idx32(input: &Shape, output: &Shape) -> bool {
    const LIMIT: u128 = 1 << 31;
    let window_fits =
        |o: usize, i: usize| (o as u128 + 1) * i as u128 + o as u128 <= u32::MAX as u128;
    (input.numel() as u128) <= LIMIT
        && (output.numel() as u128) <= LIMIT
        && window_fits(output.height(), input.height())
        && window_fits(output.width(), input.width())
}

/// Elements per 16-byte vector access of the `nhwc_vec` kernels (`V16<T>::N` in
/// `kernels/common.cuh`).
pub fn vector_width(dtype: DType) -> usize {
    16 / dtype.size_bytes()
}

/// Window area (elements averaged per output cell, the largest over the output) from which
/// one thread per output element is a long serial loop and the reduction kernels take over.
///
/// Modelled crossovers (`--sweep` of `examples/model.rs` on H100, (4, 64, 7k, 7k) -> 7x7 f32;
/// modelled, not measured): in NCHW, one thread per cell beats a warp per cell up to 8x8
/// windows and loses from 10x10 on (7.2 vs 8.3 us at 8x8, 16.5 vs 9.7 us at 10x10; the estimate
/// here counts those as 81 and 121); in NHWC with so few cells a block per cell wins at every
/// window swept (3.4 vs 4.1 us at 2x2). One constant serves both layouts, so the model supports
/// no single better value: 64 stays.
pub const LARGE_WINDOW: usize = 64;

/// Input planes below which global pooling has too few planes for a warp each and uses a
/// block per plane instead, per multiprocessor.
///
/// Modelled crossover (`--sweep` of `examples/model.rs` on H100, NCHW global pooling; modelled,
/// not measured): a warp per plane overtakes a block per plane between 4 and 8 planes per SM
/// for 7x7 planes, is ahead at every count for 14x14, and overtakes between 8 and 16 for 56x56
/// (10.8 vs 7.5 us at 8, 11.3 vs 18.2 us at 16). 16 is at or above every crossover measured,
/// costing at most 1.4 us on small planes between 8 and 15 per SM: the model supports keeping it.
pub const WARPS_PER_MULTIPROCESSOR: usize = 16;

/// Threads one multiprocessor keeps resident (2048 on sm_75 to sm_90 with 256-thread blocks).
pub const THREADS_PER_MULTIPROCESSOR: usize = 2048;

/// A forward kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardKernel {
    /// One thread per output element (`kernels/forward.cu`), both layouts.
    Elementwise,
    /// NHWC, one thread per 16 bytes of consecutive channels (`kernels/nhwc_vec.cu`); needs C a
    /// multiple of [`vector_width`].
    NhwcVector,
    /// Global pooling (1x1 output) in NCHW: one warp per (n, c) plane with 16-byte loads
    /// (`kernels/forward_reduce.cu`).
    GlobalWarp,
    /// NCHW large windows: one warp per output cell, lanes across each window row.
    WarpPerCell,
    /// Large windows with few cells: one block per output cell (NCHW) or per output cell and
    /// tile of up to 32 channels (NHWC), reduced through shared memory.
    BlockPerCell,
}

impl ForwardKernel {
    /// Every forward kernel family.
    pub const ALL: [ForwardKernel; 5] = [
        ForwardKernel::Elementwise,
        ForwardKernel::NhwcVector,
        ForwardKernel::GlobalWarp,
        ForwardKernel::WarpPerCell,
        ForwardKernel::BlockPerCell,
    ];

    /// Whether this family computes the forward for these shapes, layout and dtype.
    pub fn supports(self, output: &Shape, layout: Layout, dtype: DType) -> bool {
        match self {
            ForwardKernel::Elementwise | ForwardKernel::BlockPerCell => true,
            ForwardKernel::NhwcVector => {
                layout == Layout::Nhwc && output.channels() % vector_width(dtype) == 0
            }
            ForwardKernel::GlobalWarp => {
                layout == Layout::Nchw && output.height() == 1 && output.width() == 1
            }
            ForwardKernel::WarpPerCell => layout == Layout::Nchw,
        }
    }
}

/// A backward kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackwardKernel {
    /// Zero grad_input, then one thread per grad_output element adds into its window
    /// (`kernels/backward_atomic.cu`). [`BackwardAlgorithm::Atomic`].
    AtomicScatter,
    /// One thread per grad_input element gathers from its covering cells
    /// (`kernels/backward_gather.cu`). [`BackwardAlgorithm::Deterministic`].
    Gather,
    /// NHWC gather over 16 bytes of consecutive channels per thread (`kernels/nhwc_vec.cu`);
    /// needs C a multiple of [`vector_width`]. Deterministic.
    GatherNhwcVector,
    /// Global pooling (1x1 output): every grad_input element of a plane is `grad / (H * W)`.
    /// Deterministic.
    Broadcast,
}

impl BackwardKernel {
    /// Every backward kernel family.
    pub const ALL: [BackwardKernel; 4] = [
        BackwardKernel::AtomicScatter,
        BackwardKernel::Gather,
        BackwardKernel::GatherNhwcVector,
        BackwardKernel::Broadcast,
    ];

    /// Whether this family computes the backward for these shapes, layout and dtype.
    pub fn supports(self, grad_output: &Shape, layout: Layout, dtype: DType) -> bool {
        match self {
            BackwardKernel::AtomicScatter | BackwardKernel::Gather => true,
            BackwardKernel::GatherNhwcVector => {
                layout == Layout::Nhwc && grad_output.channels() % vector_width(dtype) == 0
            }
            BackwardKernel::Broadcast => grad_output.height() == 1 && grad_output.width() == 1,
        }
    }

    /// Whether its results are bitwise reproducible.
    pub fn is_deterministic(self) -> bool {
        self != BackwardKernel::AtomicScatter
    }
}

/// The largest window area over the output: `ceil(in / out) + 1` rows (or `in` when
/// `out == 1`) times the same for columns; zero for an empty output.
fn max_window_area(input: &Shape, output: &Shape) -> usize {
    let span = |i: usize, o: usize| match o {
        0 => 0,
        1 => i,
        _ => i.div_ceil(o) + 1,
    };
    span(input.height(), output.height()).saturating_mul(span(input.width(), output.width()))
}

/// The forward kernel for these shapes on this device. The one selection rule:
///
/// 1. NCHW global pooling (1x1 output) of planes of at least 8 elements: a warp per plane
///    ([`ForwardKernel::GlobalWarp`]) when there are at least [`WARPS_PER_MULTIPROCESSOR`]
///    planes per multiprocessor, else a block per plane ([`ForwardKernel::BlockPerCell`]).
/// 2. Windows of at least [`LARGE_WINDOW`] elements with fewer output elements than the device
///    keeps threads resident ([`THREADS_PER_MULTIPROCESSOR`] per multiprocessor), where one
///    thread per output would leave it idle: NCHW takes a warp per cell
///    ([`ForwardKernel::WarpPerCell`]) when there are at least [`WARPS_PER_MULTIPROCESSOR`]
///    cells per multiprocessor, else a block per cell; NHWC takes a block per cell and
///    channel tile.
/// 3. Otherwise one thread per output element: 16 bytes of channels per thread in NHWC when C
///    allows ([`ForwardKernel::NhwcVector`]), else one element ([`ForwardKernel::Elementwise`]).
///
/// The compute capability does not change the choice: every kernel exists for every
/// architecture built, and ptxas reports no spills for any of them.
pub fn select_forward(
    input: &Shape,
    output: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> ForwardKernel {
    let sms = device.multiprocessors.max(1) as usize;
    let cells = output.numel();
    let global = output.height() == 1 && output.width() == 1;
    let hw = input.height().saturating_mul(input.width());
    if layout == Layout::Nchw && global && hw >= 8 {
        let planes = input.batch() * input.channels();
        return if planes >= sms * WARPS_PER_MULTIPROCESSOR {
            ForwardKernel::GlobalWarp
        } else {
            ForwardKernel::BlockPerCell
        };
    }
    if max_window_area(input, output) >= LARGE_WINDOW && cells < sms * THREADS_PER_MULTIPROCESSOR {
        return match layout {
            Layout::Nchw if cells >= sms * WARPS_PER_MULTIPROCESSOR => ForwardKernel::WarpPerCell,
            _ => ForwardKernel::BlockPerCell,
        };
    }
    if ForwardKernel::NhwcVector.supports(output, layout, dtype) {
        ForwardKernel::NhwcVector
    } else {
        ForwardKernel::Elementwise
    }
}

/// The backward kernel for an algorithm: [`BackwardKernel::AtomicScatter`] for
/// [`BackwardAlgorithm::Atomic`]; for [`BackwardAlgorithm::Deterministic`],
/// [`BackwardKernel::Broadcast`] for global pooling, [`BackwardKernel::GatherNhwcVector`] for
/// NHWC when C allows, else [`BackwardKernel::Gather`].
pub fn select_backward(
    algorithm: BackwardAlgorithm,
    grad_output: &Shape,
    layout: Layout,
    dtype: DType,
) -> BackwardKernel {
    match algorithm {
        BackwardAlgorithm::Atomic => BackwardKernel::AtomicScatter,
        BackwardAlgorithm::Deterministic => {
            if BackwardKernel::Broadcast.supports(grad_output, layout, dtype) {
                BackwardKernel::Broadcast
            } else if BackwardKernel::GatherNhwcVector.supports(grad_output, layout, dtype) {
                BackwardKernel::GatherNhwcVector
            } else {
                BackwardKernel::Gather
            }
        }
    }
}

/// The plan for the forward pass of `input` into `output` (shapes already validated), with
/// the kernel [`select_forward`] picks.
pub fn forward(
    input: &Shape,
    output: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> LaunchPlan {
    let kernel = select_forward(input, output, layout, dtype, device);
    // The selected kernel supports the shapes; the element-wise kernel supports every shape.
    forward_with(kernel, input, output, layout, dtype, device)
        .or_else(|| {
            forward_with(
                ForwardKernel::Elementwise,
                input,
                output,
                layout,
                dtype,
                device,
            )
        })
        .unwrap_or_default()
}

/// The plan for the forward pass with a given kernel family, or `None` if that family does
/// not support these shapes ([`ForwardKernel::supports`]). Tests use it to run every family.
pub fn forward_with(
    kernel: ForwardKernel,
    input: &Shape,
    output: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> Option<LaunchPlan> {
    forward_with_index(
        kernel,
        IndexWidth::Auto,
        input,
        output,
        layout,
        dtype,
        device,
    )
}

/// [`forward_with`] with the index width chosen by the caller, or `None` if the family does
/// not support these shapes or `index` is [`IndexWidth::Idx32`] where [`fits_idx32`] does not
/// hold. Tests use [`IndexWidth::Idx64`] to run the 64-bit kernels on small shapes.
pub fn forward_with_index(
    kernel: ForwardKernel,
    index: IndexWidth,
    input: &Shape,
    output: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> Option<LaunchPlan> {
    if !kernel.supports(output, layout, dtype) {
        return None;
    }
    let suffix = format!("{}_{}", dtype.name(), index.suffix(input, output)?);
    let cells = output.numel();
    if cells == 0 {
        return Some(LaunchPlan::default());
    }
    let (module, name, items, threads_per_item) = match kernel {
        ForwardKernel::Elementwise => ("forward", format!("forward_{}", layout.name()), cells, 1),
        ForwardKernel::NhwcVector => (
            "nhwc_vec",
            "forward_nhwc_vec".to_string(),
            cells / vector_width(dtype),
            1,
        ),
        ForwardKernel::GlobalWarp => (
            "forward_reduce",
            "forward_global_nchw".to_string(),
            cells,
            32,
        ),
        ForwardKernel::WarpPerCell => {
            ("forward_reduce", "forward_warp_nchw".to_string(), cells, 32)
        }
        ForwardKernel::BlockPerCell => {
            let jobs = match layout {
                Layout::Nchw => cells,
                Layout::Nhwc => {
                    let tile = output.channels().next_power_of_two().min(32);
                    (cells / output.channels()) * output.channels().div_ceil(tile)
                }
            };
            (
                "forward_reduce",
                format!("forward_block_{}", layout.name()),
                jobs,
                THREADS_PER_BLOCK as usize,
            )
        }
    };
    Some(LaunchPlan {
        steps: vec![Step::Launch(grid_stride_launch(
            module,
            format!("{name}_{suffix}"),
            items,
            threads_per_item,
            input,
            output,
            device,
        ))],
    })
}

/// The plan for the backward pass: `grad_output` (the forward's output shape) into
/// `grad_input` (the forward's input shape), shapes already validated, with the kernel
/// [`select_backward`] picks for `algorithm`.
pub fn backward(
    grad_output: &Shape,
    grad_input: &Shape,
    layout: Layout,
    dtype: DType,
    algorithm: BackwardAlgorithm,
    device: &DeviceLimits,
) -> LaunchPlan {
    let kernel = select_backward(algorithm, grad_output, layout, dtype);
    // The selected kernel supports the shapes; the gather supports every shape.
    backward_with(kernel, grad_output, grad_input, layout, dtype, device)
        .or_else(|| {
            let gather = BackwardKernel::Gather;
            backward_with(gather, grad_output, grad_input, layout, dtype, device)
        })
        .unwrap_or_default()
}

/// The plan for the backward pass with a given kernel family, or `None` if that family does
/// not support these shapes ([`BackwardKernel::supports`]).
pub fn backward_with(
    kernel: BackwardKernel,
    grad_output: &Shape,
    grad_input: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> Option<LaunchPlan> {
    backward_with_index(
        kernel,
        IndexWidth::Auto,
        grad_output,
        grad_input,
        layout,
        dtype,
        device,
    )
}

/// [`backward_with`] with the index width chosen by the caller, or `None` if the family does
/// not support these shapes or `index` is [`IndexWidth::Idx32`] where [`fits_idx32`] does not
/// hold.
pub fn backward_with_index(
    kernel: BackwardKernel,
    index: IndexWidth,
    grad_output: &Shape,
    grad_input: &Shape,
    layout: Layout,
    dtype: DType,
    device: &DeviceLimits,
) -> Option<LaunchPlan> {
    if !kernel.supports(grad_output, layout, dtype) {
        return None;
    }
    let width = index.suffix(grad_input, grad_output)?;
    if grad_input.numel() == 0 {
        return Some(LaunchPlan::default());
    }
    if grad_output.numel() == 0 {
        // An empty output (a zero output size) receives no gradient: grad_input is all zeros.
        return Some(LaunchPlan {
            steps: vec![Step::ZeroDst],
        });
    }
    let suffix = format!("{}_{}", dtype.name(), width);
    let (module, name, items, zero_first) = match kernel {
        BackwardKernel::AtomicScatter => (
            "backward_atomic",
            format!("backward_atomic_{}", layout.name()),
            grad_output.numel(),
            true,
        ),
        // NCHW: a thread per 16 bytes of grad_input (`kernels/backward_gather.cu`).
        BackwardKernel::Gather => (
            "backward_gather",
            format!("backward_gather_{}", layout.name()),
            match layout {
                Layout::Nchw => grad_input.numel().div_ceil(vector_width(dtype)),
                Layout::Nhwc => grad_input.numel(),
            },
            false,
        ),
        BackwardKernel::GatherNhwcVector => (
            "nhwc_vec",
            "backward_gather_nhwc_vec".to_string(),
            grad_input.numel() / vector_width(dtype),
            false,
        ),
        BackwardKernel::Broadcast => (
            "backward_gather",
            format!("backward_broadcast_{}", layout.name()),
            broadcast_items(grad_input.numel(), dtype, device),
            false,
        ),
    };
    let mut steps = Vec::with_capacity(2);
    if zero_first {
        steps.push(Step::ZeroDst);
    }
    steps.push(Step::Launch(grid_stride_launch(
        module,
        format!("{name}_{suffix}"),
        items,
        1,
        grad_input,
        grad_output,
        device,
    )));
    Some(LaunchPlan { steps })
}

/// Threads of the broadcast kernels (`kernels/backward_gather.cu`): a thread per element where
/// the device holds them all at once (the per-element path has the shortest dependent chain,
/// which is what a launch that small waits for), else a thread per 16 bytes of grad_input in
/// a whole number of blocks per multiprocessor: the kernels split the work into equal runs per
/// block, so every multiprocessor gets the same work.
fn broadcast_items(numel: usize, dtype: DType, device: &DeviceLimits) -> usize {
    let block = THREADS_PER_BLOCK as usize;
    let sms = device.multiprocessors.max(1) as usize;
    let resident = sms * BLOCKS_PER_MULTIPROCESSOR as usize;
    if numel <= resident * block {
        return numel;
    }
    let blocks = numel.div_ceil(vector_width(dtype)).div_ceil(block);
    blocks.next_multiple_of(sms).min(resident) * block
}

/// Which index width of a kernel a plan launches: the `_idx32` or the `_idx64` entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IndexWidth {
    /// 32-bit where [`fits_idx32`] proves it safe, else 64-bit: what [`forward`] and
    /// [`backward`] use.
    #[default]
    Auto,
    /// 32-bit, only where [`fits_idx32`] holds (no plan otherwise).
    Idx32,
    /// 64-bit whatever the shapes (always correct, slower on small shapes).
    Idx64,
}

impl IndexWidth {
    /// The kernel name suffix for these shapes, or `None` for a 32-bit request that does not
    /// fit.
    fn suffix(self, input: &Shape, output: &Shape) -> Option<&'static str> {
        let fits = fits_idx32(input, output);
        match self {
            IndexWidth::Auto if fits => Some("idx32"),
            IndexWidth::Auto | IndexWidth::Idx64 => Some("idx64"),
            IndexWidth::Idx32 if fits => Some("idx32"),
            IndexWidth::Idx32 => None,
        }
    }
}

/// A grid-stride launch over `items` work items of `threads_per_item` threads each (1: a
/// thread, 32: a warp, 256: a block), with the crate's common argument list. The grid covers
/// every item once, up to what the device keeps resident; the kernels loop over the rest.
fn grid_stride_launch(
    module: &'static str,
    kernel: String,
    items: usize,
    threads_per_item: usize,
    input: &Shape,
    output: &Shape,
    device: &DeviceLimits,
) -> KernelLaunch {
    let threads = (items as u64).saturating_mul(threads_per_item as u64);
    let wanted = threads.div_ceil(u64::from(THREADS_PER_BLOCK));
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
