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
        // ResNet-50 head: 524,288 planes of 49 elements: a warp per plane.
        (
            [256, 2048, 7, 7],
            (1, 1),
            Layout::Nchw,
            DType::F32,
            ForwardKernel::GlobalWarp,
        ),
        // ... and in channels-last, 16 bytes of channels per thread.
        (
            [256, 2048, 7, 7],
            (1, 1),
            Layout::Nhwc,
            DType::F16,
            ForwardKernel::NhwcVector,
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
            ForwardKernel::BlockPerCell,
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
            ForwardKernel::BlockPerCell,
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
            ForwardKernel::NhwcVector,
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
            ForwardKernel::Elementwise,
        ),
        // A tiny latency case with 64 planes: too few planes for a warp each on 132 SMs.
        (
            [1, 64, 8, 8],
            (1, 1),
            Layout::Nchw,
            DType::F32,
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

#[test]
fn backward_selection() {
    let (_, global) = shapes([2, 16, 7, 7], 1);
    let (_, pooled) = shapes([2, 16, 9, 9], (4, 4));
    let (_, odd) = shapes([2, 3, 9, 9], (4, 4));
    let det = BackwardAlgorithm::Deterministic;
    assert_eq!(BackwardAlgorithm::default(), det);
    assert_eq!(
        select_backward(det, &global, Layout::Nchw, DType::F32),
        BackwardKernel::Broadcast
    );
    assert_eq!(
        select_backward(det, &pooled, Layout::Nhwc, DType::F16),
        BackwardKernel::GatherNhwcVector
    );
    assert_eq!(
        select_backward(det, &odd, Layout::Nhwc, DType::F16),
        BackwardKernel::Gather
    );
    assert_eq!(
        select_backward(det, &pooled, Layout::Nchw, DType::F64),
        BackwardKernel::Gather
    );
    for out in [&global, &pooled, &odd] {
        assert_eq!(
            select_backward(BackwardAlgorithm::Atomic, out, Layout::Nchw, DType::Bf16),
            BackwardKernel::AtomicScatter
        );
    }
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
                                    assert_eq!(l.block, [THREADS_PER_BLOCK, 1, 1]);
                                    assert!(
                                        l.grid[0] >= 1
                                            && l.grid[0] <= 132 * plan::BLOCKS_PER_MULTIPROCESSOR
                                    );
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
