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
    /// Atomics allowed: the planner may run PyTorch's NCHW scheme (zero grad_input, then every
    /// grad_output element atomically adds its share into its window), not bitwise
    /// reproducible when windows overlap, where it is faster than the gather: f16 NCHW with
    /// overlapping downsampling windows. Everywhere else it runs the deterministic kernels,
    /// which write each element once and are faster there. See [`select_backward`].
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

/// Cells (per multiprocessor) below which large windows have too few cells for a warp each and
/// use a block per cell instead (rule 3 of [`select_forward`]).
///
/// No sweep over cells per SM for large windows exists (modelled or measured); 16 is the value
/// set when this constant also served global pooling, where the model (`--sweep` on H100, before
/// [`PLANES_PER_MULTIPROCESSOR`]; modelled, not measured) put the crossover of a warp per plane
/// over a block per plane between 4 and 8 planes per SM for 7x7 planes and between 8 and 16 for
/// 56x56. No case of the table has between 1 and 16 large-window cells per SM.
pub const WARPS_PER_MULTIPROCESSOR: usize = 16;

/// Input planes (per multiprocessor) below which NCHW global pooling of planes larger than
/// [`SMALL_PLANE`] has too few planes for a warp each and uses a block per plane instead.
///
/// Modelled crossover (`cargo run --release --example model -- --gpu h100 --sweep`, and
/// `--gpu a100`, first table, gpumodel, 2026-11-21; modelled, not measured), with a warp per
/// plane keeping up to 8 vector loads per lane in flight: for 56x56 f32 planes a block per plane
/// is ahead at 1 and 2 planes per SM (H100 3.9 vs 4.3 us, A100 4.4 vs 4.8 us), the two meet at
/// 4 (H100 4.8 vs 4.7, A100 5.6 vs 5.5) and a warp per plane is ahead from 8 on (H100 7.3 vs 6.9,
/// A100 9.0 vs 8.4); for 7x7 and 14x14 planes a warp per plane is ahead at every count from 1
/// to 64. 4 is the crossover.
pub const PLANES_PER_MULTIPROCESSOR: usize = 4;

/// Lanes that sum one plane in [`ForwardKernel::GlobalLanes`] (`AP_LANES_PER_PLANE` in
/// `kernels/forward_lanes.cu`): a block takes 256 / 8 = 32 planes per round.
pub const LANES_PER_PLANE: usize = 8;

/// The largest NCHW plane (elements) whose global pooling takes
/// [`ForwardKernel::GlobalLanes`]: 8 elements per lane, so that every lane's loads are one
/// batch in flight together (larger planes take several dependent batches, where a warp per
/// plane with 16-byte loads does better).
///
/// Modelled (`cargo run --release --example model -- --gpu h100 --case NAME` with this
/// constant at 64 and at 0, gpumodel, 2026-11-21; modelled, not measured), f32 / f16 / f64:
/// `resnet50_head_b32` (65,536 planes of 7x7) 6.9 / 4.7 / 11.3 us with 8 lanes per plane
/// against 13.6 / 15.0 / 12.4 us with a warp per plane (both with 8 loads per lane in flight);
/// `head_batch1` (2,048 planes of 7x7) 3.0 / 3.0 / 3.1 us, where `--sweep` puts a warp per
/// plane at 3.1 us (f32, f16) for 1 to 16 planes of 7x7 per SM: on a par where launch-bound,
/// ahead where bandwidth counts. No case of the table has planes between 65 and 783 elements:
/// the crossover above 64 is not modelled, and 64 is where the one-batch argument above ends.
pub const SMALL_PLANE: usize = 64;

/// Threads one multiprocessor keeps resident (2048 on sm_75 to sm_90 with 256-thread blocks).
pub const THREADS_PER_MULTIPROCESSOR: usize = 2048;

/// A forward kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardKernel {
    /// One thread per output element (`kernels/forward.cu`), both layouts; in NCHW, 16-byte
    /// loads along window rows at least two vectors wide.
    Elementwise,
    /// NHWC, one thread per 16 bytes of consecutive channels (`kernels/nhwc_vec.cu`); needs C a
    /// multiple of [`vector_width`].
    NhwcVector,
    /// Global pooling (1x1 output) in NCHW: one warp per (n, c) plane with 16-byte loads, up
    /// to 8 per lane in flight (`kernels/forward_reduce.cu`).
    GlobalWarp,
    /// Global pooling (1x1 output) in NCHW: [`LANES_PER_PLANE`] lanes per (n, c) plane, each
    /// with up to 8 loads in flight, and a contiguous range of planes per block
    /// (`kernels/forward_lanes.cu`). For planes of at most [`SMALL_PLANE`] elements.
    GlobalLanes,
    /// NCHW large windows: one warp per output cell, lanes across each window row, up to 8
    /// loads per lane in flight.
    WarpPerCell,
    /// Large windows with few cells: one block per output cell (NCHW) or per output cell and
    /// tile of up to 32 channels (NHWC), reduced through shared memory.
    BlockPerCell,
    /// NHWC, every shape (`kernels/forward_nhwc_split.cu`): a block of lanes (16 bytes of
    /// channels each where C is a multiple of [`vector_width`], else one channel) by window
    /// slices ([`nhwc_split_slices`]), partial sums reduced through shared memory in a fixed
    /// order.
    NhwcSplit,
}

impl ForwardKernel {
    /// Every forward kernel family.
    pub const ALL: [ForwardKernel; 7] = [
        ForwardKernel::Elementwise,
        ForwardKernel::NhwcVector,
        ForwardKernel::GlobalWarp,
        ForwardKernel::GlobalLanes,
        ForwardKernel::WarpPerCell,
        ForwardKernel::BlockPerCell,
        ForwardKernel::NhwcSplit,
    ];

    /// Whether this family computes the forward for these shapes, layout and dtype.
    pub fn supports(self, output: &Shape, layout: Layout, dtype: DType) -> bool {
        match self {
            ForwardKernel::Elementwise | ForwardKernel::BlockPerCell => true,
            ForwardKernel::NhwcVector => {
                layout == Layout::Nhwc && output.channels() % vector_width(dtype) == 0
            }
            ForwardKernel::GlobalWarp | ForwardKernel::GlobalLanes => {
                layout == Layout::Nchw && output.height() == 1 && output.width() == 1
            }
            ForwardKernel::WarpPerCell => layout == Layout::Nchw,
            ForwardKernel::NhwcSplit => layout == Layout::Nhwc,
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
/// 1. NHWC: [`ForwardKernel::NhwcSplit`], whatever the shapes: it covers small windows with many
///    cells (one slice: a thread per 16 bytes of channels, as [`ForwardKernel::NhwcVector`],
///    with four loads in flight instead of one) and large windows or few cells (the window
///    split over up to [`MAX_NHWC_SLICES`] threads, see [`nhwc_split_slices`]), and replaces
///    [`ForwardKernel::NhwcVector`], [`ForwardKernel::BlockPerCell`] and
///    [`ForwardKernel::Elementwise`] in that layout. Modelled (gpumodel, the 17 cases of
///    `benches/cases.txt` x 4 dtypes on H100 and A100; not measured): it is faster than the
///    family it replaces on every row those lost to PyTorch (4.8x on head_batch1 f32, H100),
///    and on every other row faster or at most 6% slower (A100 resnet50_head f64, DRAM-bound
///    both ways), inside the model's sampling error.
/// 2. NCHW global pooling (1x1 output) of planes of at least 8 elements: planes of at most
///    [`SMALL_PLANE`] elements take [`LANES_PER_PLANE`] lanes per plane
///    ([`ForwardKernel::GlobalLanes`]); larger ones take a warp per plane
///    ([`ForwardKernel::GlobalWarp`]) when there are at least [`PLANES_PER_MULTIPROCESSOR`]
///    planes per multiprocessor, else a block per plane ([`ForwardKernel::BlockPerCell`]).
/// 3. NCHW windows of at least [`LARGE_WINDOW`] elements with fewer output elements than the
///    device keeps threads resident ([`THREADS_PER_MULTIPROCESSOR`] per multiprocessor), where
///    one thread per output would leave it idle: a warp per cell
///    ([`ForwardKernel::WarpPerCell`]) when there are at least [`WARPS_PER_MULTIPROCESSOR`]
///    cells per multiprocessor, else a block per cell.
/// 4. Otherwise (NCHW) one thread per output element ([`ForwardKernel::Elementwise`]).
///
/// The compute capability does not change the choice: every kernel exists for every
/// architecture built, and ptxas reports no spills for any of them.
pub fn select_forward(
    input: &Shape,
    output: &Shape,
    layout: Layout,
    _dtype: DType,
    device: &DeviceLimits,
) -> ForwardKernel {
    let sms = device.multiprocessors.max(1) as usize;
    let cells = output.numel();
    let global = output.height() == 1 && output.width() == 1;
    let hw = input.height().saturating_mul(input.width());
    if layout == Layout::Nhwc {
        return ForwardKernel::NhwcSplit;
    }
    if global && hw >= 8 {
        let planes = input.batch() * input.channels();
        return if hw <= SMALL_PLANE {
            ForwardKernel::GlobalLanes
        } else if planes >= sms * PLANES_PER_MULTIPROCESSOR {
            ForwardKernel::GlobalWarp
        } else {
            ForwardKernel::BlockPerCell
        };
    }
    if max_window_area(input, output) >= LARGE_WINDOW && cells < sms * THREADS_PER_MULTIPROCESSOR {
        return if cells >= sms * WARPS_PER_MULTIPROCESSOR {
            ForwardKernel::WarpPerCell
        } else {
            ForwardKernel::BlockPerCell
        };
    }
    ForwardKernel::Elementwise
}

/// The most window slices (threads per output's 16 bytes of channels) of
/// [`ForwardKernel::NhwcSplit`]: 128 keeps at least two lanes per block, so a slice's lanes
/// read at least a whole 32-byte sector of a pixel when C allows.
pub const MAX_NHWC_SLICES: usize = 128;

/// Pixels of the smallest window each slice of [`ForwardKernel::NhwcSplit`] keeps at least:
/// one batch of four loads in flight.
///
/// Modelled crossover (gpumodel, `--case`; modelled, not measured), against filling half the
/// resident threads with no floor: on resnet50_head_b32 (49-pixel windows, H100) slices of
/// 1.5 pixels made f32 issue-bound (8.8 us at a full fill, 7.0 us with this floor) and f16
/// latency-bound (5.8 us at half the fill, 4.7 us with the floor); with the floor a full fill
/// takes 224_to_7x7 on A100 from 254.6 to 234.1 us (f32) and 506.8 to 465.8 us (f64),
/// finer blocks leaving a smaller last wave. head_batch1 on H100 pays 0.2-0.3 us for it
/// (3.7 to 3.9 us f32).
pub const MIN_PIXELS_PER_SLICE: usize = 4;

/// Window slices of [`ForwardKernel::NhwcSplit`] (its block is `256 / slices` lanes by `slices`):
/// the smallest power of two at which `items x slices` threads fill the device
/// ([`THREADS_PER_MULTIPROCESSOR`] per multiprocessor), at most [`MAX_NHWC_SLICES`] and at
/// most the smallest window's area over [`MIN_PIXELS_PER_SLICE`] (a slice with fewer pixels
/// spends more on its item's index arithmetic and the tree than on loads). `items` counts
/// (n, output cell, channel group) triples.
///
/// Why fill the device and no more: a thread's serial chain is about `pixels / (4 x slices)`
/// DRAM latencies (four loads in flight), so while the threads do not fill the device each
/// doubling of the slices halves the critical path of a latency-bound launch; once they fill
/// it, more slices only queue more blocks and add a barrier to the tree per doubling.
pub fn nhwc_split_slices(
    items: usize,
    input: &Shape,
    output: &Shape,
    device: &DeviceLimits,
) -> usize {
    let span = |i: usize, o: usize| i.checked_div(o).map_or(0, |q| q.max(1));
    let min_area =
        span(input.height(), output.height()).saturating_mul(span(input.width(), output.width()));
    let fill = (device.multiprocessors.max(1) as usize).saturating_mul(THREADS_PER_MULTIPROCESSOR);
    let mut slices = 1;
    while slices < MAX_NHWC_SLICES
        && slices * 2 * MIN_PIXELS_PER_SLICE <= min_area
        && items.saturating_mul(slices) < fill
    {
        slices *= 2;
    }
    slices
}

/// Whether some input element lies in two output windows of a downsampling axis: the input
/// is longer than the output but not a whole multiple of it (224 -> 5, 13 -> 6), in H or W.
fn windows_overlap_downsampling(grad_output: &Shape, grad_input: &Shape) -> bool {
    let overlaps = |i: usize, o: usize| o > 0 && i > o && i % o != 0;
    overlaps(grad_input.height(), grad_output.height())
        || overlaps(grad_input.width(), grad_output.width())
}

/// The backward kernel for an algorithm. The one selection rule:
///
/// 1. Global pooling (1x1 output), either algorithm: [`BackwardKernel::Broadcast`] (each
///    grad_input element is its plane's grad / (H * W): no atomics to gain from).
/// 2. [`BackwardAlgorithm::Atomic`], NCHW, f16, downsampling windows that overlap (input not a
///    multiple of the output in H or W): [`BackwardKernel::AtomicScatter`].
/// 3. Otherwise the gather: [`BackwardKernel::GatherNhwcVector`] for NHWC when C allows, else
///    [`BackwardKernel::Gather`].
///
/// The atomic algorithm only permits atomics; the planner takes the scatter where the model
/// says it is faster than the gather (gpumodel, the 17 cases of `benches/cases.txt` x 4
/// dtypes on H100 and A100; modelled, not measured). It zero-fills grad_input and then
/// read-modify-writes it, about three times the DRAM bytes of the gather, which writes each
/// element once: the gather is faster on every f32 and f64 row (by 1.1-3x) and on every
/// channels-last and global row, as PyTorch itself runs no atomics there (its channels-last
/// backward is a gather, autograd's global one MeanBackward). The scatter wins with f16, whose
/// pairs are native packed atomics on every architecture, where windows overlap, so that the
/// gather visits up to four cells per element: 224_to_5x5 by 1.44x (H100) and 1.31x (A100),
/// alexnet_13_to_6 by 1.11x and 1.31x, a tie on 1024_to_3x3; on non-overlapping f16 windows
/// it loses (56_to_7: 0.67x and 0.69x). bf16 pairs are a compare-and-swap loop below sm_90
/// and the gather wins on A100 (224_to_5x5: 0.85x), so bf16 takes the gather.
pub fn select_backward(
    algorithm: BackwardAlgorithm,
    grad_output: &Shape,
    grad_input: &Shape,
    layout: Layout,
    dtype: DType,
) -> BackwardKernel {
    if BackwardKernel::Broadcast.supports(grad_output, layout, dtype) {
        BackwardKernel::Broadcast
    } else if algorithm == BackwardAlgorithm::Atomic
        && layout == Layout::Nchw
        && dtype == DType::F16
        && windows_overlap_downsampling(grad_output, grad_input)
    {
        BackwardKernel::AtomicScatter
    } else if BackwardKernel::GatherNhwcVector.supports(grad_output, layout, dtype) {
        BackwardKernel::GatherNhwcVector
    } else {
        BackwardKernel::Gather
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
        ForwardKernel::GlobalLanes => (
            "forward_lanes",
            "forward_global_lanes_nchw".to_string(),
            cells,
            LANES_PER_PLANE,
        ),
        ForwardKernel::WarpPerCell => {
            ("forward_reduce", "forward_warp_nchw".to_string(), cells, 32)
        }
        ForwardKernel::NhwcSplit => {
            let slices = nhwc_split_slices(
                cells / nhwc_split_width(output, dtype),
                input,
                output,
                device,
            );
            return nhwc_split_with_slices(slices, index, input, output, dtype, device);
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

/// Channels per work item of [`ForwardKernel::NhwcSplit`]: [`vector_width`] where C is a
/// multiple of it (`forward_nhwc_split`), else 1 (`forward_nhwc_split1`).
fn nhwc_split_width(output: &Shape, dtype: DType) -> usize {
    let width = vector_width(dtype);
    if output.channels() % width == 0 {
        width
    } else {
        1
    }
}

/// The [`ForwardKernel::NhwcSplit`] plan (NHWC) with `slices` window slices (1 to 256; any
/// count is correct, [`nhwc_split_slices`] picks powers of two), or `None` for another count or
/// an [`IndexWidth::Idx32`] request where [`fits_idx32`] does not hold. The performance model
/// uses it to give a reduced problem the real problem's block shape, and tests to force
/// slice counts.
pub fn nhwc_split_with_slices(
    slices: usize,
    index: IndexWidth,
    input: &Shape,
    output: &Shape,
    dtype: DType,
    device: &DeviceLimits,
) -> Option<LaunchPlan> {
    if !(1..=THREADS_PER_BLOCK as usize).contains(&slices) {
        return None;
    }
    let width = nhwc_split_width(output, dtype);
    let name = if width == 1 {
        "forward_nhwc_split1"
    } else {
        "forward_nhwc_split"
    };
    let suffix = format!("{}_{}", dtype.name(), index.suffix(input, output)?);
    let items = output.numel() / width;
    if items == 0 {
        return Some(LaunchPlan::default());
    }
    let lanes = THREADS_PER_BLOCK as usize / slices;
    let mut launch = grid_stride_launch(
        "forward_nhwc_split",
        format!("{name}_{suffix}"),
        items.div_ceil(lanes),
        THREADS_PER_BLOCK as usize,
        input,
        output,
        device,
    );
    // A block per tile of `lanes` items, not capped at what the device keeps resident: every
    // block then runs one tile, where a capped grid gives some blocks one more trip of the
    // loop than others (vgg_head_14, 1,568 tiles on 864 blocks of an A100: 704 blocks run
    // two). Modelled (gpumodel, A100; not measured): vgg_head_14 f32 32.6 us capped, 20.6 us
    // not, f64 47.7 and 38.7 us; vgg_head_7 f32 10.2 and 9.7 us. Part of the capped figures
    // is the model's: it samples the first blocks, which are the ones with the extra trip.
    // The kernel keeps its grid-stride loop, so grids past `MAX_GRID_X` stay correct.
    launch.grid[0] = (items.div_ceil(lanes) as u64).clamp(1, MAX_GRID_X) as u32;
    launch.block = [lanes as u32, slices as u32, 1];
    Some(LaunchPlan {
        steps: vec![Step::Launch(launch)],
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
    let kernel = select_backward(algorithm, grad_output, grad_input, layout, dtype);
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
            scatter_items(grad_output, grad_input, layout, dtype),
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

/// Windows of more than this many elements (nominal `ceil(in / out)` per dimension) are split
/// along their rows over up to a warp of lanes by the NCHW atomic scatter
/// (`AP_SCATTER_SPLIT_AREA` in `kernels/backward_atomic.cu`, which gives the modelled reason).
const SCATTER_SPLIT_AREA: usize = 64;

/// Atomics a scatter thread keeps at least when a window's rows are split over threads
/// (`AP_SCATTER_THREAD_WORK` in `kernels/backward_atomic.cu`).
const SCATTER_THREAD_WORK: usize = 256;

/// The atomic scatter's work split (`kernels/backward_atomic.cu`), a function of the shapes
/// alone: Tc lanes along a window row (NCHW windows of more than `SCATTER_SPLIT_AREA`
/// nominal elements, counted in 4-byte pairs for 16-bit types, up to a warp) and Tr threads
/// taking every Tr-th row of it (doubled while each thread keeps at least
/// `SCATTER_THREAD_WORK` atomics and a row), both powers of two. Returns (Tc, Tr).
pub fn scatter_split(
    grad_output: &Shape,
    grad_input: &Shape,
    layout: Layout,
    dtype: DType,
) -> (usize, usize) {
    let span = |i: usize, o: usize| i.div_ceil(o.max(1)).max(1);
    let span_h = span(grad_input.height(), grad_output.height());
    let span_w = span(grad_input.width(), grad_output.width());
    let paired = matches!(dtype, DType::F16 | DType::Bf16);
    let units = if paired { span_w.div_ceil(2) } else { span_w };
    let lanes = if layout == Layout::Nchw && span_w.saturating_mul(span_h) > SCATTER_SPLIT_AREA {
        units.next_power_of_two().min(32)
    } else {
        1
    };
    let per_row = if layout == Layout::Nchw {
        units.div_ceil(lanes)
    } else {
        span_w
    };
    let work = span_h.saturating_mul(per_row);
    let mut rows = 1;
    while rows * 2 <= span_h && work / (rows * 2) >= SCATTER_THREAD_WORK {
        rows *= 2;
    }
    (lanes, rows)
}

/// Threads the atomic scatter runs: Tc x Tr per grad_output element ([`scatter_split`]).
fn scatter_items(grad_output: &Shape, grad_input: &Shape, layout: Layout, dtype: DType) -> usize {
    let (lanes, rows) = scatter_split(grad_output, grad_input, layout, dtype);
    grad_output
        .numel()
        .saturating_mul(lanes)
        .saturating_mul(rows)
}

/// Most pixels per run of the channels-last [`BackwardKernel::Broadcast`] (`AP_BROADCAST_RUN`
/// in `kernels/backward_gather.cu`): with at least two 16-byte words of grad_input per thread, a
/// warp loads 32 columns of 16 bytes of an image's gradient once and stores them at a run of
/// `min(words / threads, 8)` pixels (the runs split H x W evenly); with fewer, a thread per
/// word.
pub const BROADCAST_RUN: usize = 8;

/// Threads of the broadcast kernels (`kernels/backward_gather.cu`): a thread per element where
/// the device holds them all at once (the per-element path has the shortest dependent chain,
/// which is what a launch that small waits for), else a thread per 16 bytes of grad_input in
/// a whole number of blocks per multiprocessor, up to the resident blocks: the NCHW kernel
/// splits the work into equal runs per block, so every multiprocessor gets the same work; the
/// NHWC kernel's warps loop over (32 columns, a run of up to [`BROADCAST_RUN`] pixels) units
/// where each thread has at least two words to store.
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
