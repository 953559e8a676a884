//! The 64-bit index kernels at real offsets past 2^32: every forward and backward kernel group,
//! on every architecture and dtype, over inputs and outputs of more than 2^32 elements (16 GiB
//! of f32) held in ptxsim's sparse memory: input bytes come from a function of their index,
//! output pages are materialised (poisoned with NaN) only where a kernel writes.
//!
//! A launch runs a few chosen blocks of its grid (`LaunchOptions::blocks`): the first, the one
//! holding the last work item (whose grid-stride loop wraps past 2^32), and the grid's last.
//! The cells those blocks must write are worked out here from each kernel's documented work
//! decomposition; an observer records every store, and the test checks that the blocks stored
//! to exactly those cells, that some of them lie past 2^32 elements, that each holds the f64
//! reference of that cell, and that the cells a 32-bit index would have hit instead (the same
//! offset modulo 2^32) are still poisoned.
//!
//! The planner is given a device with 2^20 multiprocessors, so its grid-stride grids hold
//! 2^23 blocks of 256 threads: a thread's loop steps by 2^31 items and wraps past 2^32.

mod common;

use std::collections::BTreeSet;

use adaptive_pool::half::{bf16, f16};
use adaptive_pool::plan::{
    self, BackwardKernel, Buffer, DeviceLimits, ForwardKernel, IndexWidth, KernelArg, KernelLaunch,
    Step, THREADS_PER_BLOCK,
};
use adaptive_pool::{ptx, reference, window, DType, Element, Layout, Shape};
use common::sim::{from_bytes, module, to_bytes};
use common::{assert_close, kernel_vs_reference, Tolerance};
use ptxsim::trace::{Access, AccessKind, MemSpace, Observer};
use ptxsim::{BlockOrder, LaunchConfig, LaunchOptions, Memory, ParamValue, Schedule, ThreadOrder};

/// 2^32: element offsets at or past this overflow a 32-bit index.
const FAR: usize = 1 << 32;

/// A device big enough that the planner's grid-stride grids hold 2^23 blocks (8 per
/// multiprocessor): a loop steps by 2^31 threads.
const HUGE_DEVICE_SMS: u32 = 1 << 20;

/// The planner's device for these cases (the compute capability does not change a plan).
fn huge_device() -> DeviceLimits {
    DeviceLimits {
        multiprocessors: HUGE_DEVICE_SMS,
        compute_capability: 90,
    }
}

fn archs() -> Vec<u32> {
    let archs = ptx::archs();
    assert!(!archs.is_empty(), "no PTX was built (bash .ci/nvrtc.sh)");
    archs
}

/// The value of input element `i` (memory order): pseudo-random in [-2, 2), from a hash of
/// the index, so any element of a 16 GiB virtual tensor can be produced on demand.
fn value_at(i: usize) -> f64 {
    // splitmix64
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
}

/// Element `i` of the generated input, rounded to `T`.
fn element<T: Element>(i: usize) -> T {
    T::from_f64(value_at(i))
}

/// A fill function for `Memory::alloc_sparse` producing elements of `T` from `value`.
fn fill_with<T: Element>(value: fn(usize) -> T) -> impl Fn(u64, &mut [u8]) + Send + Sync {
    move |off: u64, buf: &mut [u8]| {
        let size = std::mem::size_of::<T>();
        let mut done = 0;
        while done < buf.len() {
            let byte = off as usize + done;
            let (e, within) = (byte / size, byte % size);
            let bytes = to_bytes(&[value(e)]);
            let n = (size - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[within..within + n]);
            done += n;
        }
    }
}

fn nan<T: Element>(_: usize) -> T {
    T::from_f64(f64::NAN)
}

fn zero<T: Element>(_: usize) -> T {
    T::from_f64(0.0)
}

/// Logical `(n, c, h, w)` of memory offset `e` of `shape` in `layout`.
fn decode(shape: &Shape, layout: Layout, e: usize) -> (usize, usize, usize, usize) {
    let (c, h, w) = (shape.channels(), shape.height(), shape.width());
    match layout {
        Layout::Nchw => (e / (c * h * w), (e / (h * w)) % c, (e / w) % h, e % w),
        Layout::Nhwc => (e / (h * w * c), e % c, (e / (w * c)) % h, (e / c) % w),
    }
}

/// The forward's f64 value of output element `e`, and its magnitude (the mean of |input|),
/// from input elements `x(offset)`.
fn forward_cell(
    input: &Shape,
    output: &Shape,
    layout: Layout,
    x: &dyn Fn(usize) -> f64,
    e: usize,
) -> (f64, f64) {
    let (n, c, oh, ow) = decode(output, layout, e);
    let rows = window::window(oh, output.height(), input.height());
    let cols = window::window(ow, output.width(), input.width());
    let (mut sum, mut abs) = (0.0, 0.0);
    for h in rows.clone() {
        for w in cols.clone() {
            let v = x(input.offset(layout, n, c, h, w));
            sum += v;
            abs += v.abs();
        }
    }
    let area = (rows.len() * cols.len()) as f64;
    (sum / area, abs / area)
}

/// The backward's f64 value of grad_input element `e` and its magnitude, from grad_output
/// elements `g(offset)`: `grad / area` of every output cell whose window covers it.
fn backward_cell(
    grad_output: &Shape,
    input: &Shape,
    layout: Layout,
    g: &dyn Fn(usize) -> f64,
    e: usize,
) -> (f64, f64) {
    let (n, c, ih, iw) = decode(input, layout, e);
    let (in_h, in_w, out_h, out_w) = (
        input.height(),
        input.width(),
        grad_output.height(),
        grad_output.width(),
    );
    let (mut sum, mut abs) = (0.0, 0.0);
    for oy in window::covering(ih, in_h, out_h) {
        let kh = window::window(oy, out_h, in_h).len();
        for ox in window::covering(iw, in_w, out_w) {
            let kw = window::window(ox, out_w, in_w).len();
            let v = g(grad_output.offset(layout, n, c, oy, ox)) / (kh * kw) as f64;
            sum += v;
            abs += v.abs();
        }
    }
    (sum, abs)
}

/// The per-cell references above agree with the crate's reference on whole tensors, so the
/// large tests below check against the reference, not against a second formula.
#[test]
fn per_cell_references_match_the_reference() {
    let mut compared = 0;
    for layout in Layout::ALL {
        for (dims, out) in [
            ([2, 3, 7, 9], (3, 4)),
            ([1, 2, 3, 4], (7, 9)),
            ([2, 5, 6, 7], (1, 1)),
        ] {
            let input = Shape::new(&dims).expect("shape");
            let output = Shape::new(&[dims[0], dims[1], out.0, out.1]).expect("shape");
            let x: Vec<f64> = (0..input.numel()).map(value_at).collect();
            let (want, _) = reference::forward(&x, &input, layout, out).expect("forward");
            for (e, w) in want.iter().enumerate() {
                assert_eq!(forward_cell(&input, &output, layout, &|i| x[i], e).0, *w);
                let (n, c, h, wi) = decode(&output, layout, e);
                assert_eq!(output.offset(layout, n, c, h, wi), e);
                compared += 1;
            }
            let g: Vec<f64> = (0..output.numel()).map(value_at).collect();
            let want = reference::backward(&g, &output, &input, layout).expect("backward");
            for (e, w) in want.iter().enumerate() {
                let got = backward_cell(&output, &input, layout, &|i| g[i], e).0;
                assert!((got - w).abs() <= 1e-15 * w.abs().max(1.0), "{got} {w}");
                compared += 1;
            }
        }
    }
    println!("{compared} cells compared");
}

/// How a kernel family splits its work over the grid, and which destination elements one
/// work item writes (`kernels/*.cu`).
#[derive(Clone, Copy, Debug)]
enum Work {
    /// A grid-stride loop over items, one thread each.
    Thread,
    /// A grid-stride loop over items, one warp each.
    Warp,
    /// A grid-stride loop over items, one block each.
    Block,
    /// One contiguous range of items per block, an even share of them (groups of 8 threads).
    Range,
    /// A grid-stride loop over items, this many consecutive items per block (the NHWC split
    /// kernel's lanes; its window slices share an item).
    Lanes(usize),
    /// Block runs (`block_run` in `kernels/gather_tables.cuh`), one thread per item: block b
    /// takes items [b * per, (b + 1) * per), per = 256 where the grid holds every item at once,
    /// else ceil(items / grid).
    Run,
    /// Block runs of ceil(items / grid) items, whatever the grid (`block_run` with `even`).
    EvenRun,
}

/// One large case: a kernel group, shapes, and what its items are.
#[derive(Clone)]
struct LargeCase {
    name: String,
    /// The plan's shapes: forward input/output, or backward grad_output/grad_input.
    input: Shape,
    output: Shape,
    layout: Layout,
    forward: Option<ForwardKernel>,
    backward: Option<BackwardKernel>,
    work: Work,
    items: usize,
    /// The atomic scatter's (log2 Tc, log2 Tr) for the planned grid (`scatter_split`).
    split: (usize, usize),
    /// Consecutive destination elements per item of the backward's vector paths (1: the
    /// kernel's own rule in `writes`).
    per_item: usize,
    /// Multiprocessors of the device the plan is made for.
    sms: u32,
    /// The NHWC broadcast's pixel runs per image on its run path (0 otherwise).
    runs: usize,
}

impl LargeCase {
    /// Destination elements written by item `i`, for elements of `size` bytes.
    fn writes(&self, i: usize, size: usize) -> Vec<usize> {
        let vec = 16 / size;
        let c = self.output.channels();
        if self.per_item > 1 {
            let end = ((i + 1) * self.per_item).min(self.input.numel());
            return (i * self.per_item..end).collect();
        }
        match (self.forward, self.backward) {
            (_, Some(BackwardKernel::Broadcast)) if self.runs > 0 => {
                // `backward_broadcast_nhwc`'s run path: warp unit i is (group i / runs, run
                // i % runs); lane l of group g takes column 32 g + l (16 bytes of one image's
                // channels), the runs an even split of the image's pixels.
                let vectors = c / vec;
                let columns = self.input.batch() * vectors;
                let hw = self.input.height() * self.input.width();
                let (group, run) = (i / self.runs, i % self.runs);
                let (base, longer) = (hw / self.runs, hw % self.runs);
                let first = run * base + run.min(longer);
                let count = base + usize::from(run < longer);
                (group * 32..((group + 1) * 32).min(columns))
                    .flat_map(|column| {
                        let (n, ch) = (column / vectors, column % vectors * vec);
                        (first..first + count).flat_map(move |p| {
                            let at = (n * hw + p) * c + ch;
                            at..at + vec
                        })
                    })
                    .collect()
            }
            (Some(ForwardKernel::NhwcVector), _) | (_, Some(BackwardKernel::GatherNhwcVector)) => {
                (i * vec..(i + 1) * vec).collect()
            }
            (Some(ForwardKernel::NhwcSplit), _) => {
                let width = if c % vec == 0 { vec } else { 1 };
                (i * width..(i + 1) * width).collect()
            }
            (Some(ForwardKernel::BlockPerCell), _) if self.layout == Layout::Nhwc => {
                let ct = c.next_power_of_two().min(32);
                let tiles = c.div_ceil(ct);
                let (cell, tile) = (i / tiles, i % tiles);
                (tile * ct..((tile + 1) * ct).min(c))
                    .map(|ch| cell * c + ch)
                    .collect()
            }
            (_, Some(BackwardKernel::AtomicScatter)) => {
                // `plan::scatter_split`: item i is (grad_output element, row part tr, lane tc); the
                // element adds to its window's rows tr, tr + Tr, ... (NCHW: columns tc, tc + Tc,
                // ..., in 4-byte pairs for 16-bit types).
                let (lc, lr) = self.split;
                let (idx, tr, tc) = match self.layout {
                    Layout::Nchw => (
                        i >> (lc + lr),
                        (i >> lc) & ((1 << lr) - 1),
                        i & ((1 << lc) - 1),
                    ),
                    Layout::Nhwc => (i % self.output.numel(), i / self.output.numel(), 0),
                };
                let (n, ch, oy, ox) = decode(&self.output, self.layout, idx);
                let (g, o) = (&self.input, &self.output);
                let mut cells = Vec::new();
                for h in window::window(oy, o.height(), g.height())
                    .skip(tr)
                    .step_by(1 << lr)
                {
                    let cols = window::window(ox, o.width(), g.width());
                    let row = |w| g.offset(self.layout, n, ch, h, w);
                    if self.layout == Layout::Nchw && size == 2 {
                        // The buffers are 4-byte aligned: pair q holds elements 2q and 2q + 1.
                        let (e0, e1) = (row(cols.start), row(cols.end - 1) + 1);
                        for q in ((e0 >> 1) + tc..)
                            .step_by(1 << lc)
                            .take_while(|q| 2 * q < e1)
                        {
                            cells.extend((2 * q..2 * q + 2).filter(|&e| e < g.numel()));
                        }
                    } else {
                        cells.extend(cols.skip(tc).step_by(1 << lc).map(row));
                    }
                }
                cells
            }
            // One destination element per item: output cell, plane or grad_input element.
            _ => vec![i],
        }
    }
}

/// A forward input and output shape (the backward's grad_input and grad_output).
type Shapes = (Shape, Shape);

/// Two cases per kernel group, each with more than 2^32 elements on the side it indexes most
/// (input, output or both): one huge plane (NCHW) or image (NHWC), so that offsets within a
/// plane pass 2^32, and many planes or images, so that the offsets of planes (`n * C + c`
/// times the plane size) or images (`n` times the image size) do. Global pooling of one huge
/// plane would take a warp or a block 2^32 loads, so those kernels get many planes only.
fn large_cases(dtype: DType) -> Vec<LargeCase> {
    use BackwardKernel as B;
    use ForwardKernel as F;
    use Layout::{Nchw, Nhwc};
    let s = |d: [usize; 4]| Shape::new(&d).expect("shape");
    let vec = 16 / dtype.size_bytes();
    // One plane with windows of one or two elements: 2^32 + 2^16 outputs, as many inputs
    // and more.
    let plane = (
        s([1, 1, (1 << 16) + 3, (1 << 16) + 5]),
        s([1, 1, 1 << 16, (1 << 16) + 1]),
    );
    // The same with windows of two or three elements (2^30 cells: per warp or block).
    let plane_pooled = (plane.0, s([1, 1, 1 << 15, 1 << 15]));
    // 2^16 + 1 planes of 256 x 256 to 256 x 257: the last plane starts at 2^32 on both sides.
    let planes = (
        s([1, (1 << 16) + 1, 256, 256]),
        s([1, (1 << 16) + 1, 256, 257]),
    );
    // 2^26 + 2 planes of 8x8: 2^32 + 128 input elements, global pooling.
    let planes_global = (s([1, (1 << 26) + 2, 8, 8]), s([1, (1 << 26) + 2, 1, 1]));
    // 2^24 + 1 planes of 16x16 to 2x2: windows of 64.
    let planes_large_windows = (s([1, (1 << 24) + 1, 16, 16]), s([1, (1 << 24) + 1, 2, 2]));
    // One image of 16 channels (every vector width divides 16), and 2^12 + 1 of them.
    let image = (
        s([1, 16, (1 << 14) + 3, (1 << 14) + 5]),
        s([1, 16, 1 << 14, (1 << 14) + 1]),
    );
    let image_pooled = (image.0, s([1, 16, 1 << 13, 1 << 13]));
    let images = (
        s([(1 << 12) + 1, 16, 256, 256]),
        s([(1 << 12) + 1, 16, 256, 257]),
    );
    // 2^22 + 1 images of 8x8x16, global pooling.
    let images_global = (s([(1 << 22) + 1, 16, 8, 8]), s([(1 << 22) + 1, 16, 1, 1]));
    // Downsampling by exactly 2 in each direction, for the scatter: its windows are disjoint,
    // so each grad_input element receives exactly one atomic add.
    let plane_halved = (
        s([1, 1, 1 << 17, (1 << 16) + 2]),
        s([1, 1, 1 << 16, (1 << 15) + 1]),
    );
    let planes_halved = (
        s([1, (1 << 15) + 1, 512, 256]),
        s([1, (1 << 15) + 1, 256, 128]),
    );
    let image_halved = (
        s([1, 16, 1 << 15, (1 << 14) + 2]),
        s([1, 16, 1 << 14, (1 << 13) + 1]),
    );
    let images_halved = (
        s([(1 << 12) + 1, 16, 256, 256]),
        s([(1 << 12) + 1, 16, 128, 128]),
    );
    // A single plane or image to 1x1, for the broadcast's index decoding.
    let plane_global = (s([1, 1, (1 << 16) + 1, 1 << 16]), s([1, 1, 1, 1]));
    let image_global = (s([1, 16, (1 << 14) + 1, 1 << 14]), s([1, 16, 1, 1]));

    let forward: &[(F, Layout, &[Shapes])] = &[
        (F::Elementwise, Nchw, &[plane, planes]),
        (F::Elementwise, Nhwc, &[image, images]),
        (F::NhwcVector, Nhwc, &[image, images]),
        (
            F::NhwcSplit,
            Nhwc,
            &[image, images, image_pooled, images_global],
        ),
        (F::GlobalWarp, Nchw, &[planes_global]),
        (F::GlobalLanes, Nchw, &[planes_global]),
        (F::WarpPerCell, Nchw, &[plane_pooled, planes_large_windows]),
        (F::BlockPerCell, Nchw, &[plane_pooled, planes_global]),
        (F::BlockPerCell, Nhwc, &[image_pooled, images_global]),
    ];
    let backward: &[(B, Layout, &[Shapes])] = &[
        (B::AtomicScatter, Nchw, &[plane_halved, planes_halved]),
        (B::AtomicScatter, Nhwc, &[image_halved, images_halved]),
        (B::Gather, Nchw, &[plane, planes]),
        (B::Gather, Nhwc, &[image, images]),
        (B::GatherNhwcVector, Nhwc, &[image, images]),
        (B::Broadcast, Nchw, &[plane_global, planes_global]),
        (B::Broadcast, Nhwc, &[image_global, images_global]),
    ];
    let mut cases = Vec::new();
    for &(k, layout, shapes) in forward {
        for &(input, output) in shapes {
            let (work, items) = match k {
                F::Elementwise => (Work::Thread, output.numel()),
                F::NhwcVector => (Work::Thread, output.numel() / vec),
                F::NhwcSplit => {
                    let width = if output.channels() % vec == 0 { vec } else { 1 };
                    let items = output.numel() / width;
                    let slices = plan::nhwc_split_slices(items, &input, &output, &huge_device());
                    (Work::Lanes(THREADS_PER_BLOCK as usize / slices), items)
                }
                F::GlobalWarp | F::WarpPerCell => (Work::Warp, output.numel()),
                F::GlobalLanes => (Work::Range, output.numel()),
                _ if layout == Nchw => (Work::Block, output.numel()),
                _ => {
                    let c = output.channels();
                    let tiles = c.div_ceil(c.next_power_of_two().min(32));
                    (Work::Block, output.numel() / c * tiles)
                }
            };
            cases.push(LargeCase {
                name: format!("fwd {k:?} {layout:?} {input:?} -> {output:?}"),
                input,
                output,
                layout,
                forward: Some(k),
                backward: None,
                work,
                items,
                split: (0, 0),
                sms: HUGE_DEVICE_SMS,
                runs: 0,
                per_item: 1,
            });
        }
    }
    for &(k, layout, shapes) in backward {
        for &(input, output) in shapes {
            // The gathers' window tables (`AP_GATHER_TABLE` in `kernels/gather_tables.cuh`):
            // block runs where every extent fits them, else a grid-stride loop.
            let tables = [
                input.height(),
                input.width(),
                output.height(),
                output.width(),
            ]
            .iter()
            .all(|&d| d <= 1024);
            // (work, items, destination elements per item)
            let (work, items, per_item) = match k {
                B::AtomicScatter => {
                    assert!(input.height() % output.height() == 0);
                    assert!(input.width() % output.width() == 0);
                    (Work::Thread, output.numel(), 1)
                }
                B::Gather if layout == Nchw && tables => {
                    (Work::Run, input.numel().div_ceil(vec), vec)
                }
                B::GatherNhwcVector if tables => (Work::Run, input.numel() / vec, vec),
                B::GatherNhwcVector => (Work::Thread, input.numel() / vec, 1),
                // Every case here has more elements than the grid has threads: 16 bytes of
                // grad_input per item.
                B::Broadcast => (Work::EvenRun, input.numel().div_ceil(vec), vec),
                _ => (Work::Thread, input.numel(), 1),
            };
            cases.push(LargeCase {
                name: format!("bwd {k:?} {layout:?} {output:?} -> {input:?}"),
                input,
                output,
                layout,
                forward: None,
                backward: Some(k),
                work,
                items,
                split: (0, 0),
                sms: HUGE_DEVICE_SMS,
                runs: 0,
                per_item,
            });
        }
    }
    // The channels-last broadcast on a device with an eighth of the threads: two or more
    // 16-byte words per thread, so its warps store runs of pixels (`run_large` counts them).
    for (input, output) in [image_global, images_global] {
        cases.push(LargeCase {
            name: format!("bwd Broadcast runs Nhwc {output:?} -> {input:?}"),
            input,
            output,
            layout: Nhwc,
            forward: None,
            backward: Some(B::Broadcast),
            work: Work::Warp,
            items: 0,
            split: (0, 0),
            per_item: 1,
            sms: HUGE_DEVICE_SMS >> 3,
            runs: 0,
        });
    }
    cases
}

/// Every global store and atomic of a launch into the destination buffer, and the highest
/// offsets read from each buffer.
struct Recorder {
    src: (u64, u64),
    dst: (u64, u64),
    size: u64,
    /// Destination elements stored or atomically updated.
    written: BTreeSet<usize>,
    /// Accesses outside both buffers (there must be none: ptxsim faults on them anyway).
    foreign: usize,
    max_src_read: Option<u64>,
    max_dst_written: Option<u64>,
}

impl Observer for Recorder {
    fn access(&mut self, a: &Access) {
        if a.space != MemSpace::Global {
            return;
        }
        let inside =
            |(base, len): (u64, u64)| a.addr >= base && a.addr + u64::from(a.bytes) <= base + len;
        if inside(self.dst) {
            let off = a.addr - self.dst.0;
            if a.kind != AccessKind::Load {
                for e in off / self.size..(off + u64::from(a.bytes)).div_ceil(self.size) {
                    self.written.insert(e as usize);
                }
                self.max_dst_written = self.max_dst_written.max(Some(off));
            }
        } else if inside(self.src) {
            assert_eq!(a.kind, AccessKind::Load, "a kernel wrote its input: {a:?}");
            self.max_src_read = self.max_src_read.max(Some(a.addr - self.src.0));
        } else {
            self.foreign += 1;
        }
    }
}

/// Items per block of [`Work::Run`] and [`Work::EvenRun`].
fn run_length(work: Work, grid: usize, items: usize) -> usize {
    let threads = THREADS_PER_BLOCK as usize;
    if matches!(work, Work::Run) && grid * threads >= items {
        threads
    } else {
        items.div_ceil(grid)
    }
}

/// The block of the grid that runs item `i` of `items`.
fn block_of(work: Work, i: usize, grid: usize, items: usize) -> u64 {
    let threads = THREADS_PER_BLOCK as usize;
    (match work {
        Work::Thread => (i % (grid * threads)) / threads,
        Work::Warp => (i % (grid * threads / 32)) * 32 / threads,
        Work::Block => i % grid,
        Work::Range => i / items.div_ceil(grid),
        Work::Lanes(lanes) => (i % (grid * lanes)) / lanes,
        Work::Run | Work::EvenRun => i / run_length(work, grid, items),
    }) as u64
}

/// The items block `b` runs.
fn items_of(work: Work, b: usize, grid: usize, items: usize) -> Vec<usize> {
    let threads = THREADS_PER_BLOCK as usize;
    if let Work::Run | Work::EvenRun = work {
        let per = run_length(work, grid, items);
        return (b * per..((b + 1) * per).min(items)).collect();
    }
    let (first, per_block, stride) = match work {
        Work::Thread => (b * threads, threads, grid * threads),
        Work::Warp => (b * threads / 32, threads / 32, grid * threads / 32),
        Work::Block => (b, 1, grid),
        Work::Range => {
            let share = items.div_ceil(grid);
            let first = (b * share).min(items);
            return (first..((b + 1) * share).min(items)).collect();
        }
        Work::Lanes(lanes) => (b * lanes, lanes, grid * lanes),
        Work::Run | Work::EvenRun => (0, 0, 1),
    };
    (first..first + per_block)
        .flat_map(|i| (i..items).step_by(stride))
        .collect()
}

/// Runs `case` in dtype `T` on `arch` for the chosen blocks and checks what they wrote.
/// Returns the number of cells checked and how many of them lie past 2^32 elements.
fn run_large<T: Element>(arch: u32, case: &LargeCase) -> (usize, usize) {
    let device = DeviceLimits {
        compute_capability: arch,
        multiprocessors: case.sms,
    };
    let dtype = T::DTYPE;
    let plan = match (case.forward, case.backward) {
        (Some(k), _) => plan::forward_with_index(
            k,
            IndexWidth::Auto,
            &case.input,
            &case.output,
            case.layout,
            dtype,
            &device,
        ),
        (_, Some(k)) => plan::backward_with_index(
            k,
            IndexWidth::Auto,
            &case.output,
            &case.input,
            case.layout,
            dtype,
            &device,
        ),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{}: no plan", case.name));
    let atomic = case.backward == Some(BackwardKernel::AtomicScatter);
    let launch: &KernelLaunch = match plan.steps.as_slice() {
        [Step::Launch(l)] => l,
        // The scatter's zero fill: the sparse destination below starts as zeros instead.
        [Step::ZeroDst, Step::Launch(l)] if atomic => l,
        other => panic!("{}: unexpected plan {other:?}", case.name),
    };
    assert!(
        launch.kernel.ends_with("_idx64"),
        "{}: the planner chose {}",
        case.name,
        launch.kernel
    );
    let grid = launch.grid[0] as usize;
    assert_eq!(launch.grid[1..], [1, 1]);
    let size = std::mem::size_of::<T>();
    let scatter;
    let broadcast;
    let case = if atomic {
        // The planner's mirror of the kernel's split: a mismatch shows as wrong cells below.
        let (lanes, rows) = plan::scatter_split(&case.output, &case.input, case.layout, dtype);
        let split = (
            lanes.trailing_zeros() as usize,
            rows.trailing_zeros() as usize,
        );
        scatter = LargeCase {
            split,
            items: case.output.numel() << (split.0 + split.1),
            ..case.clone()
        };
        &scatter
    } else if case.backward == Some(BackwardKernel::Broadcast) && case.layout == Layout::Nhwc {
        let vec = 16 / size;
        let words = case.input.numel() / vec;
        let per_thread = words / (grid * THREADS_PER_BLOCK as usize);
        // `large_cases` gives the word path's cases block runs and the run path's warp units;
        // each must take the path it was written for.
        let run_path = matches!(case.work, Work::Warp);
        assert_eq!(
            per_thread >= 2,
            run_path,
            "{}: {per_thread} words per thread",
            case.name
        );
        if !run_path {
            case
        } else {
            // Warp units: groups of 32 columns (16 bytes of one image's channels each) times
            // pixel runs of min(words / threads, BROADCAST_RUN) pixels.
            let columns = case.input.batch() * case.input.channels() / vec;
            let hw = case.input.height() * case.input.width();
            let runs = hw.div_ceil(per_thread.min(plan::BROADCAST_RUN));
            broadcast = LargeCase {
                items: columns.div_ceil(32) * runs,
                runs,
                ..case.clone()
            };
            &broadcast
        }
    } else {
        case
    };

    // The first block, the one holding the last item (its loop wraps furthest), the last.
    let mut blocks: Vec<u64> = vec![
        0,
        block_of(case.work, case.items - 1, grid, case.items),
        grid as u64 - 1,
    ];
    blocks.sort_unstable();
    blocks.dedup();
    let mut expected = BTreeSet::new();
    for &b in &blocks {
        for i in items_of(case.work, b as usize, grid, case.items) {
            expected.extend(case.writes(i, size));
        }
    }

    let (src_shape, dst_shape) = match case.forward {
        Some(_) => (&case.input, &case.output),
        None => (&case.output, &case.input),
    };
    let mut mem = Memory::new();
    let src_bytes = (src_shape.numel() * size) as u64;
    let dst_bytes = (dst_shape.numel() * size) as u64;
    let src = mem
        .alloc_sparse(src_bytes, fill_with::<T>(element::<T>))
        .expect("sparse src");
    let dst = if atomic {
        mem.alloc_sparse(dst_bytes, fill_with::<T>(zero::<T>))
            .expect("sparse dst")
    } else {
        mem.alloc_sparse(dst_bytes, fill_with::<T>(nan::<T>))
            .expect("sparse dst")
    };
    let params: Vec<ParamValue> = launch
        .args
        .iter()
        .map(|a| match *a {
            KernelArg::Pointer(Buffer::Src) => ParamValue::U64(src),
            KernelArg::Pointer(Buffer::Dst) => ParamValue::U64(dst),
            KernelArg::U64(v) => ParamValue::U64(v),
        })
        .collect();
    let cfg = LaunchConfig {
        grid: launch.grid,
        block: launch.block,
        dynamic_shared_bytes: launch.shared_bytes,
        block_order: BlockOrder::Forward,
    };
    let options = LaunchOptions {
        schedule: Schedule::RunToBlock(ThreadOrder::Ascending),
        race_check: true,
        blocks: Some(blocks.clone()),
        ..LaunchOptions::default()
    };
    let mut recorder = Recorder {
        src: (src, src_bytes),
        dst: (dst, dst_bytes),
        size: size as u64,
        written: BTreeSet::new(),
        foreign: 0,
        max_src_read: None,
        max_dst_written: None,
    };
    let context = format!("{} {dtype} compute_{arch} blocks {blocks:?}", case.name);
    module(launch.module, arch)
        .launch_with(
            &launch.kernel,
            &cfg,
            &params,
            &mut mem,
            &options,
            &mut recorder,
        )
        .unwrap_or_else(|e| panic!("{context}: {e}"));

    // The blocks wrote exactly the cells their items own, some of them past 2^32 elements
    // on the side this case makes large.
    assert_eq!(recorder.foreign, 0, "{context}");
    assert!(
        recorder.written == expected,
        "{context}: wrote {} cells, expected {} (first difference {:?})",
        recorder.written.len(),
        expected.len(),
        recorder.written.symmetric_difference(&expected).next()
    );
    let far_src = recorder
        .max_src_read
        .is_some_and(|o| o / size as u64 >= FAR as u64);
    let far_dst = expected.last().is_some_and(|&e| e >= FAR);
    assert!(far_src || far_dst, "{context}: nothing past 2^32 elements");
    if src_shape.numel() > FAR {
        assert!(far_src, "{context}: no read past 2^32 elements");
    }
    if dst_shape.numel() > FAR {
        assert!(far_dst, "{context}: no write past 2^32 elements");
    }

    // Each cell holds the reference; the reference of a grad_input element under the
    // scatter is its one contribution (the windows are disjoint).
    let x = |i: usize| element::<T>(i).to_f64();
    let (mut got, mut want, mut scale) = (Vec::new(), Vec::new(), Vec::new());
    for &e in &expected {
        let raw = mem.read(dst + (e * size) as u64, size).expect("read dst");
        got.push(from_bytes::<T>(&raw)[0]);
        let (v, s) = match case.forward {
            Some(_) => forward_cell(src_shape, dst_shape, case.layout, &x, e),
            None => backward_cell(src_shape, dst_shape, case.layout, &x, e),
        };
        want.push(T::from_f64(v));
        scale.push(T::from_f64(s));
    }
    let tol: Tolerance = kernel_vs_reference(dtype);
    assert_close(&context, &got, &want, &scale, tol);

    // A 32-bit index would have put the far cells at their offset modulo 2^32: those cells,
    // unless the chosen blocks own them, still hold the poison.
    if !atomic {
        for &e in expected.range(FAR..) {
            let wrapped = e % FAR;
            if !expected.contains(&wrapped) {
                let raw = mem.read(dst + (wrapped * size) as u64, size).expect("read");
                assert!(
                    from_bytes::<T>(&raw)[0].to_f64().is_nan(),
                    "{context}: cell {wrapped} was written"
                );
            }
        }
    }
    let far = expected.range(FAR..).count();
    (expected.len(), far)
}

fn run_all<T: Element>(forward: bool) {
    let mut total = (0, 0, 0);
    for arch in archs() {
        for case in large_cases(T::DTYPE) {
            if case.forward.is_some() != forward {
                continue;
            }
            let (cells, far) = run_large::<T>(arch, &case);
            total = (total.0 + 1, total.1 + cells, total.2 + far);
        }
    }
    println!(
        "{} {} runs: {} cells checked, {} past 2^32 elements",
        T::DTYPE,
        total.0,
        total.1,
        total.2
    );
}

/// Guards the `_idx64` forward kernels against any 32-bit truncation of an index, offset or
/// grid-stride step: 2^32 + 2^16 outputs read from as many inputs, more than 2^32 inputs
/// pooled into few outputs, every forward group, dtype and architecture.
#[test]
fn forward_kernels_index_past_2_pow_32() {
    run_all::<f32>(true);
    run_all::<f64>(true);
    run_all::<f16>(true);
    run_all::<bf16>(true);
}

/// The same for the `_idx64` backward kernels: grad_input of more than 2^32 elements written
/// by the gather, the vector gather, the broadcast and the atomic scatter.
#[test]
fn backward_kernels_index_past_2_pow_32() {
    run_all::<f32>(false);
    run_all::<f64>(false);
    run_all::<f16>(false);
    run_all::<bf16>(false);
}
