//! The launch planner: which kernel the selection rule picks for the shapes of real models, and
//! the invariants every plan keeps.

use adaptive_pool::plan::{
    self, select_backward, select_forward, BackwardKernel, DeviceLimits, ForwardKernel, KernelArg,
    Step, THREADS_PER_BLOCK,
};
use adaptive_pool::{BackwardAlgorithm, DType, Layout, OutputSize, Shape};

/// An H100 SXM: 132 multiprocessors, compute capability 9.0.
const H100: DeviceLimits = DeviceLimits {
    multiprocessors: 132,
    compute_capability: 90,
};

fn shapes(dims: [usize; 4], size: impl Into<OutputSize>) -> (Shape, Shape) {
    let input = Shape::new(&dims).expect("shape");
    let output = size.into().resolve(&input).expect("output");
    (input, output)
}

#[test]
fn selection_rule_on_model_shapes() {
    /// (input dims, output size, layout, dtype, expected kernel)
    type Expect = ([usize; 4], (usize, usize), Layout, DType, ForwardKernel);
    let cases: &[Expect] = &[
        // ResNet-50 head: 524,288 planes of 49 elements: 8 lanes per plane.
        (
            [256, 2048, 7, 7],
            (1, 1),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::GlobalLanes,
        ),
        // ... also with few planes (head at batch 1).
        (
            [1, 2048, 7, 7],
            (1, 1),
            Layout::Nchw,
            DType::F64,
            ForwardKernel::GlobalLanes,
        ),
        // ... and in channels-last, the split kernel, as for every NHWC shape.
        (
            [256, 2048, 7, 7],
            (1, 1),
            Layout::Nhwc,
            DType::F16,
            ForwardKernel::NhwcSplit,
        ),
        // Squeeze-excite: planes of 3136.
        (
            [64, 256, 56, 56],
            (1, 1),
            Layout::Nchw,
            DType::Bf16,
            ForwardKernel::GlobalWarp,
        ),
        (
            [64, 256, 56, 56],
            (1, 1),
            Layout::Nhwc,
            DType::F32,
            ForwardKernel::NhwcSplit,
        ),
        // 224 -> 7: windows of 32x32, 100,352 cells: a warp per cell.
        (
            [32, 64, 224, 224],
            (7, 7),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::WarpPerCell,
        ),
        (
            [1, 64, 224, 224],
            (7, 7),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::WarpPerCell,
        ),
        (
            [32, 64, 224, 224],
            (7, 7),
            Layout::Nhwc,
            DType::F16,
            ForwardKernel::NhwcSplit,
        ),
        // Eight 1024x1024 planes to 3x3: 72 cells of ~117,000 elements: a block per cell.
        (
            [8, 1, 1024, 1024],
            (3, 3),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::BlockPerCell,
        ),
        // Small windows: one thread per output.
        (
            [64, 512, 14, 14],
            (7, 7),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::Elementwise,
        ),
        (
            [64, 512, 14, 14],
            (7, 7),
            Layout::Nhwc,
            DType::Bf16,
            ForwardKernel::NhwcSplit,
        ),
        (
            [64, 256, 5, 5],
            (7, 7),
            Layout::Nchw,
            DType::F16,
            ForwardKernel::Elementwise,
        ),
        // C = 3 is no multiple of any vector width.
        (
            [4, 3, 9, 9],
            (4, 4),
            Layout::Nhwc,
            DType::F32,
            ForwardKernel::NhwcSplit,
        ),
        // A tiny latency case with 64 planes of 64 elements: 8 lanes per plane.
        (
            [1, 64, 8, 8],
            (1, 1),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::GlobalLanes,
        ),
        // Squeeze-excite at batch 8: 1,024 planes of 28x28, about 8 per SM: a warp each.
        (
            [8, 128, 28, 28],
            (1, 1),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::GlobalWarp,
        ),
        // ... at batch 1, under one plane per SM: a block per plane.
        (
            [1, 128, 28, 28],
            (1, 1),
            Layout::Nchw,
            DType::F16,
            ForwardKernel::BlockPerCell,
        ),
    ];
    for &(dims, size, layout, dtype, want) in cases {
        let (input, output) = shapes(dims, size);
        let got = select_forward(&input, &output, layout, dtype, &H100);
        assert_eq!(got, want, "{dims:?} -> {size:?} {layout} {dtype}");
        assert!(got.supports(&output, layout, dtype));
    }
}

/// The split kernel's window slices on the table's channels-last shapes (H100): the smallest
/// power of two that fills 2048 threads per SM, at most 128 and a quarter of the smallest
/// window.
#[test]
fn nhwc_split_slices_fill_the_device() {
    // (input dims, output size, dtype, slices, what the case is)
    type Expect = ([usize; 4], (usize, usize), DType, usize, &'static str);
    let cases: &[Expect] = &[
        (
            [32, 2048, 7, 7],
            (1, 1),
            DType::F32,
            8,
            "16 would leave 3 of 49 pixels a slice",
        ),
        (
            [1, 2048, 7, 7],
            (1, 1),
            DType::F16,
            8,
            "256 items, the same floor",
        ),
        (
            [256, 2048, 7, 7],
            (1, 1),
            DType::F32,
            4,
            "131,072 items x 4 >= 270,336",
        ),
        (
            [64, 256, 56, 56],
            (1, 1),
            DType::F64,
            64,
            "8,192 items x 64 = 524,288",
        ),
        (
            [64, 256, 56, 56],
            (1, 1),
            DType::F32,
            128,
            "4,096 items: capped at 128",
        ),
        (
            [8, 1, 1024, 1024],
            (3, 3),
            DType::F32,
            128,
            "72 items: capped at 128",
        ),
        (
            [32, 64, 224, 224],
            (7, 7),
            DType::F32,
            16,
            "25,088 items x 16 = 401,408",
        ),
        ([64, 512, 7, 7], (7, 7), DType::F32, 1, "one-pixel windows"),
        (
            [64, 512, 14, 14],
            (7, 7),
            DType::F32,
            1,
            "four-pixel windows",
        ),
    ];
    for &(dims, size, dtype, want, why) in cases {
        let (input, output) = shapes(dims, size);
        let p = plan::forward_with(
            ForwardKernel::NhwcSplit,
            &input,
            &output,
            Layout::Nhwc,
            dtype,
            &H100,
        )
        .expect("plan");
        let Step::Launch(l) = &p.steps[0] else {
            panic!("{p:?}");
        };
        assert_eq!(
            l.block[1] as usize, want,
            "{dims:?} -> {size:?} {dtype}: {why}"
        );
    }
}

#[test]
fn backward_selection() {
    let (input, global) = shapes([2, 16, 7, 7], 1);
    let (nine, pooled) = shapes([2, 16, 9, 9], (4, 4));
    let (nine_odd, odd) = shapes([2, 3, 9, 9], (4, 4));
    let (eight, divisible) = shapes([2, 16, 8, 8], (4, 4));
    let (five, upsampled) = shapes([2, 16, 5, 5], (7, 7));
    let det = BackwardAlgorithm::Deterministic;
    assert_eq!(BackwardAlgorithm::default(), det);
    assert_eq!(
        select_backward(det, &global, &input, Layout::Nchw, DType::F32),
        BackwardKernel::Broadcast
    );
    assert_eq!(
        select_backward(det, &pooled, &nine, Layout::Nhwc, DType::F16),
        BackwardKernel::GatherNhwcVector
    );
    assert_eq!(
        select_backward(det, &odd, &nine_odd, Layout::Nhwc, DType::F16),
        BackwardKernel::Gather
    );
    for dtype in DType::ALL {
        assert_eq!(
            select_backward(det, &pooled, &nine, Layout::Nchw, dtype),
            BackwardKernel::Gather
        );
    }
    // The atomic algorithm: the scatter for f16 NCHW with overlapping downsampling windows
    // (9 -> 4) only; the gather elsewhere: other dtypes, windows that do not overlap (8 -> 4)
    // or upsampling (5 -> 7), channels-last; the broadcast for global pooling.
    let atomic = BackwardAlgorithm::Atomic;
    for (out, inp) in [(&pooled, &nine), (&odd, &nine_odd)] {
        assert_eq!(
            select_backward(atomic, out, inp, Layout::Nchw, DType::F16),
            BackwardKernel::AtomicScatter
        );
        for dtype in [DType::F32, DType::F64, DType::Bf16] {
            assert_eq!(
                select_backward(atomic, out, inp, Layout::Nchw, dtype),
                BackwardKernel::Gather
            );
        }
    }
    for (out, inp) in [(&divisible, &eight), (&upsampled, &five)] {
        assert_eq!(
            select_backward(atomic, out, inp, Layout::Nchw, DType::F16),
            BackwardKernel::Gather
        );
    }
    for layout in Layout::ALL {
        assert_eq!(
            select_backward(atomic, &global, &input, layout, DType::F16),
            BackwardKernel::Broadcast
        );
    }
    assert_eq!(
        select_backward(atomic, &pooled, &nine, Layout::Nhwc, DType::F16),
        BackwardKernel::GatherNhwcVector
    );
    assert_eq!(
        select_backward(atomic, &odd, &nine_odd, Layout::Nhwc, DType::F16),
        BackwardKernel::Gather
    );
}

/// Every plan: kernel names that exist in the embedded PTX, 256-thread blocks, a grid no larger
/// than the device keeps resident, the common argument list, and a zero-fill only before the
/// atomic scatter (or for an empty output).
#[test]
fn plans_keep_their_invariants() {
    let mut checked = 0;
    for dims in [[2, 16, 9, 9], [1, 8, 40, 40], [3, 64, 7, 7], [1, 3, 1, 5]] {
        for size in [
            OutputSize::Square(1),
            OutputSize::Square(4),
            OutputSize::Pair(Some(0), Some(3)),
            OutputSize::Pair(Some(13), None),
        ] {
            let (input, output) = shapes(dims, size);
            for layout in Layout::ALL {
                for dtype in DType::ALL {
                    let mut plans = Vec::new();
                    for k in ForwardKernel::ALL {
                        plans.extend(
                            plan::forward_with(k, &input, &output, layout, dtype, &H100)
                                .map(|p| (p, false)),
                        );
                    }
                    for k in BackwardKernel::ALL {
                        let p = plan::backward_with(k, &output, &input, layout, dtype, &H100);
                        plans.extend(p.map(|p| {
                            (p, k == BackwardKernel::AtomicScatter || output.numel() == 0)
                        }));
                    }
                    for (p, zero_allowed) in plans {
                        for step in &p.steps {
                            match step {
                                Step::ZeroDst => assert!(zero_allowed, "{p:?}"),
                                Step::Launch(l) => {
                                    let ptx =
                                        adaptive_pool::ptx::get(l.module, 90).expect("module");
                                    assert!(
                                        ptx.contains(&format!(".entry {}(", l.kernel)),
                                        "{} missing",
                                        l.kernel
                                    );
                                    // 256 threads: in x, or lanes by window slices (NhwcSplit).
                                    assert_eq!(l.block[0] * l.block[1], THREADS_PER_BLOCK);
                                    assert_eq!(l.block[2], 1);
                                    // The split kernel's grid has a block per tile of items.
                                    let cap = if l.module == "forward_nhwc_split" {
                                        output.numel() as u32
                                    } else {
                                        132 * plan::BLOCKS_PER_MULTIPROCESSOR
                                    };
                                    assert!(l.grid[0] >= 1 && l.grid[0] <= cap);
                                    assert_eq!(l.args.len(), 8);
                                    assert!(l.args[2..]
                                        .iter()
                                        .all(|a| matches!(a, KernelArg::U64(_))));
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!("{checked} launches checked");
    assert!(checked > 100);
}

/// (input dims, output size, whether `fits_idx32` holds, what the case is)
type Limit = (&'static [usize], (usize, usize), bool, &'static str);

/// A shape from dimensions and an output size, for the index-width limits below.
fn pair(dims: &[usize], out: (usize, usize)) -> (Shape, Shape) {
    let input = Shape::new(dims).expect("shape");
    let output = OutputSize::Pair(Some(out.0), Some(out.1))
        .resolve(&input)
        .expect("output");
    (input, output)
}

/// The 32-bit kernels compute element offsets and grid-stride indices in `u32`: an element
/// count of 2^31 still fits (index plus stride stays below 2^32), one more does not, on the
/// input side (forward reads, backward writes) and on the output side (upsampling), and
/// 2^32 elements certainly do not.
#[test]
fn fits_idx32_at_the_element_count_limits() {
    const TWO_31: usize = 1 << 31;
    // 2^31 + 1 = 3 * 715,827,883.
    const ODD: usize = 715_827_883;
    assert_eq!(3 * ODD, TWO_31 + 1);
    let cases: &[Limit] = &[
        (&[1, 1, 1 << 15, 1 << 16], (1, 1), true, "input of 2^31"),
        (
            &[2, 4, 1 << 13, 1 << 15],
            (3, 5),
            true,
            "input of 2^31, 4-D",
        ),
        (&[1, 1, 3, ODD], (1, 1), false, "input of 2^31 + 1"),
        (&[1, 1, 1 << 16, 1 << 16], (1, 1), false, "input of 2^32"),
        (&[1, 2, 1, 1], (1 << 15, 1 << 15), true, "output of 2^31"),
        (&[1, 1, 1, 1], (3, ODD), false, "output of 2^31 + 1"),
        (&[1, 1, 1, 1], (1 << 16, 1 << 16), false, "output of 2^32"),
    ];
    for &(dims, out, want, what) in cases {
        let (input, output) = pair(dims, out);
        assert_eq!(
            plan::fits_idx32(&input, &output),
            want,
            "{what}: {dims:?} -> {out:?}"
        );
    }
}

/// The window formula forms `(o + 1) * in_len + out_len - 1` (and its input/output-swapped
/// twin in the gather) in the index type; `fits_idx32` demands `(O + 1) * I + O <= 2^32 - 1`
/// per dimension even when the element counts are small.
#[test]
fn fits_idx32_at_the_window_product_limits() {
    const MAX: usize = u32::MAX as usize;
    // O = 1: 2 * I + 1 <= 2^32 - 1 holds up to I = 2^31 - 1.
    let cases: &[Limit] = &[
        (&[1, 1, (1 << 31) - 1, 1], (1, 1), true, "H = 2^31 - 1"),
        (&[1, 1, 1 << 31, 1], (1, 1), false, "H = 2^31"),
        (&[1, 1, (1 << 31) - 1], (1, 1), true, "W = 2^31 - 1 (3-D)"),
        (&[1, 1, 1 << 31], (1, 1), false, "W = 2^31 (3-D)"),
    ];
    for &(dims, out, want, what) in cases {
        let (input, output) = pair(dims, out);
        assert_eq!(
            plan::fits_idx32(&input, &output),
            want,
            "{what}: {dims:?} -> {out:?}"
        );
    }
    // Both sides small in elements, the product exactly at and one past the limit: I = 65,535
    // and O = 65,535 give (O + 1) * I + O = 2^32 - 1; I = 65,536 gives 2^32 + 65,535.
    for (len, out, want) in [(65_535, 65_535, true), (65_536, 65_535, false)] {
        assert_eq!(((out + 1) * len + out <= MAX), want);
        let (input, output) = pair(&[1, 1, len, 1], (out, 1));
        assert_eq!(plan::fits_idx32(&input, &output), want, "H {len} -> {out}");
        let (input, output) = pair(&[1, 1, 1, len], (1, out));
        assert_eq!(plan::fits_idx32(&input, &output), want, "W {len} -> {out}");
    }
}

/// `IndexWidth` picks the entry point: `Idx64` forces the 64-bit kernel on any shape,
/// `Idx32` is refused where `fits_idx32` does not hold, and `Auto` is what `forward_with` and
/// `backward_with` (and so the CUDA path) use.
#[test]
fn index_width_selects_the_entry_point() {
    use plan::IndexWidth;
    let name = |p: &plan::LaunchPlan| -> String {
        p.steps
            .iter()
            .find_map(|s| match s {
                Step::Launch(l) => Some(l.kernel.clone()),
                Step::ZeroDst => None,
            })
            .expect("a launch")
    };
    let mut checked = 0;
    // 2^32 elements with 16 channels (so the 16-byte NHWC kernels apply), pooled to 4x4 and
    // to 1x1 (so the global-pooling kernels apply).
    for out in [(4, 4), (1, 1)] {
        let (small, small_out) = pair(&[2, 16, 9, 9], out);
        let (big, big_out) = pair(&[1, 16, 1 << 14, 1 << 14], out);
        for layout in Layout::ALL {
            for dtype in DType::ALL {
                for k in ForwardKernel::ALL {
                    let f = |w, i: &Shape, o: &Shape| {
                        plan::forward_with_index(k, w, i, o, layout, dtype, &H100)
                    };
                    let Some(auto) =
                        plan::forward_with(k, &small, &small_out, layout, dtype, &H100)
                    else {
                        continue;
                    };
                    assert_eq!(
                        Some(&auto),
                        f(IndexWidth::Auto, &small, &small_out).as_ref()
                    );
                    assert_eq!(
                        Some(&auto),
                        f(IndexWidth::Idx32, &small, &small_out).as_ref()
                    );
                    assert!(name(&auto).ends_with("_idx32"), "{}", name(&auto));
                    let wide = f(IndexWidth::Idx64, &small, &small_out).expect("idx64 plan");
                    assert_eq!(name(&wide), name(&auto).replace("_idx32", "_idx64"));
                    assert!(f(IndexWidth::Idx32, &big, &big_out).is_none(), "{k:?}");
                    let big_auto = f(IndexWidth::Auto, &big, &big_out).expect("plan");
                    assert!(name(&big_auto).ends_with("_idx64"));
                    checked += 1;
                }
                for k in BackwardKernel::ALL {
                    let b = |w, o: &Shape, i: &Shape| {
                        plan::backward_with_index(k, w, o, i, layout, dtype, &H100)
                    };
                    let Some(auto) =
                        plan::backward_with(k, &small_out, &small, layout, dtype, &H100)
                    else {
                        continue;
                    };
                    assert_eq!(
                        Some(&auto),
                        b(IndexWidth::Idx32, &small_out, &small).as_ref()
                    );
                    assert!(name(&auto).ends_with("_idx32"), "{}", name(&auto));
                    let wide = b(IndexWidth::Idx64, &small_out, &small).expect("idx64 plan");
                    assert_eq!(name(&wide), name(&auto).replace("_idx32", "_idx64"));
                    assert_eq!(wide.steps.len(), auto.steps.len());
                    assert!(b(IndexWidth::Idx32, &big_out, &big).is_none(), "{k:?}");
                    let big_auto = b(IndexWidth::Auto, &big_out, &big).expect("plan");
                    assert!(name(&big_auto).ends_with("_idx64"));
                    checked += 1;
                }
            }
        }
    }
    // 4 dtypes x (at 4x4, NCHW: 3 forward + 2 backward families, NHWC: 4 + 3; at 1x1, NCHW:
    // 5 + 3, NHWC: 4 + 4).
    assert_eq!(checked, 4 * (5 + 7 + 8 + 8), "{checked}");
}
