//! The kernels on a real CUDA device, against the reference. Ignored where there is no GPU; GPU
//! runners run them with `cargo test -- --include-ignored`.

mod common;

use std::sync::Arc;

use adaptive_pool::cudarc::driver::{CudaContext, CudaStream};
use adaptive_pool::half::{bf16, f16};
use adaptive_pool::{
    reference, AdaptiveAvgPool2d, BackwardAlgorithm, DType, DeviceTensor, Element, Error, Layout,
    Shape, Tensor,
};
use common::cases::{check_case_dtype, edge_cases, random_cases, Backend};
use common::golden::{load_all, GoldenCase, GoldenDType, GoldenElement};
use common::{
    assert_close, forward_scale, kernel_vs_reference, poison, random_data, rng, ErrorSummary,
};

fn stream() -> Arc<CudaStream> {
    let ctx = CudaContext::new(0).expect("a CUDA device is needed for this test");
    ctx.default_stream()
}

/// Runs the kernels through the public API, on one stream, into poisoned `_into` outputs.
struct Gpu {
    stream: Arc<CudaStream>,
}

impl Backend for Gpu {
    fn forward<T: Element>(
        &self,
        input: &[T],
        shape: &Shape,
        layout: Layout,
        out_shape: &Shape,
        poisoned_output: Vec<T>,
    ) -> Vec<T> {
        let s = &self.stream;
        let input = DeviceTensor::from_host(s, input, shape.dims(), layout).expect("upload");
        let mut out =
            DeviceTensor::from_host(s, &poisoned_output, out_shape.dims(), layout).expect("upload");
        AdaptiveAvgPool2d::new((out_shape.height(), out_shape.width()))
            .forward_into(s, &input, &mut out)
            .expect("forward_into");
        out.to_host(s).expect("download")
    }

    fn backward<T: Element>(
        &self,
        grad_output: &[T],
        grad_output_shape: &Shape,
        input_shape: &Shape,
        layout: Layout,
        algorithm: BackwardAlgorithm,
        poisoned_grad_input: Vec<T>,
    ) -> Vec<T> {
        let s = &self.stream;
        let go = DeviceTensor::from_host(s, grad_output, grad_output_shape.dims(), layout)
            .expect("upload");
        let mut gi = DeviceTensor::from_host(s, &poisoned_grad_input, input_shape.dims(), layout)
            .expect("upload");
        AdaptiveAvgPool2d::new((grad_output_shape.height(), grad_output_shape.width()))
            .with_backward_algorithm(algorithm)
            .backward_into(s, &go, &mut gi)
            .expect("backward_into");
        gi.to_host(s).expect("download")
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn every_kernel_dtype_layout_and_rank_matches_the_reference() {
    let gpu = Gpu { stream: stream() };
    let mut rng = rng("gpu");
    let mut cases = edge_cases();
    cases.extend(random_cases(&mut rng, 48));
    let mut summary = ErrorSummary::default();
    for case in &cases {
        for dtype in DType::ALL {
            for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
                check_case_dtype(&gpu, dtype, case, algorithm, &mut rng, &mut summary);
            }
        }
    }
    summary.print("GPU kernels vs reference");
}

fn golden_on_gpu<T: Element + GoldenElement>(s: &Arc<CudaStream>, case: &GoldenCase) -> f64 {
    let layout = if case.channels_last {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let input: Vec<T> = case.decode(&case.input).expect("dtype");
    let torch: Vec<T> = case.decode(&case.output).expect("dtype");
    let pool = AdaptiveAvgPool2d::new(case.output_size);
    let x = DeviceTensor::from_host(s, &input, &case.input_shape, layout).expect("upload");
    let mut out = DeviceTensor::from_host(
        s,
        &poison::<T>(case.output_numel()),
        &case.output_shape,
        layout,
    )
    .expect("upload");
    pool.forward_into(s, &x, &mut out).expect("forward");
    let got = out.to_host(s).expect("download");
    let shape = Shape::new(&case.input_shape).expect("shape");
    let scale = forward_scale(
        &input,
        &shape,
        layout,
        (
            case.output_shape[case.output_shape.len() - 2],
            case.output_shape[case.output_shape.len() - 1],
        ),
    );
    assert_close(
        &case.name,
        &got,
        &torch,
        &scale,
        common::reference_vs_torch(<T as Element>::DTYPE),
    )
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pytorch_fixtures_on_the_gpu() {
    let s = stream();
    let mut summary = ErrorSummary::default();
    for case in load_all() {
        let (dtype, err) = match case.dtype {
            GoldenDType::F32 => (DType::F32, golden_on_gpu::<f32>(&s, &case)),
            GoldenDType::F64 => (DType::F64, golden_on_gpu::<f64>(&s, &case)),
            GoldenDType::F16 => (DType::F16, golden_on_gpu::<f16>(&s, &case)),
            GoldenDType::Bf16 => (DType::Bf16, golden_on_gpu::<bf16>(&s, &case)),
        };
        summary.record(dtype, err);
        summary.cases += 1;
    }
    summary.print("GPU forward vs PyTorch fixtures");
}

/// One module shared by several threads, each with its own stream, all at once.
#[test]
#[ignore = "needs a CUDA GPU"]
fn concurrent_use_from_several_threads_and_streams() {
    let ctx = CudaContext::new(0).expect("a CUDA device is needed for this test");
    let pool = AdaptiveAvgPool2d::new((5, 7));
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let ctx = ctx.clone();
            scope.spawn(move || {
                let s = ctx.new_stream().expect("stream");
                let mut rng = rng(&format!("thread {t}"));
                for round in 0..20 {
                    let layout = if (t + round) % 2 == 0 {
                        Layout::Nchw
                    } else {
                        Layout::Nhwc
                    };
                    let dims = [2, 3 + t as usize, 17, 23];
                    let shape = Shape::new(&dims).expect("shape");
                    let host: Vec<f32> = random_data(&mut rng, shape.numel());
                    let x = DeviceTensor::from_host(&s, &host, &dims, layout).expect("upload");
                    let y = pool.forward(&s, &x).expect("forward");
                    let (want, out_shape) =
                        reference::forward(&host, &shape, layout, (5, 7)).expect("reference");
                    let scale = forward_scale(&host, &shape, layout, (5, 7));
                    assert_close(
                        "concurrent forward",
                        &y.to_host(&s).expect("download"),
                        &want,
                        &scale,
                        kernel_vs_reference(DType::F32),
                    );
                    let gi = pool.backward(&s, &y, &dims).expect("backward");
                    let want_gi = reference::backward(&want, &out_shape, &shape, layout)
                        .expect("reference backward");
                    let gscale = common::backward_scale(&want, &out_shape, &shape, layout);
                    assert_close(
                        "concurrent backward",
                        &gi.to_host(&s).expect("download"),
                        &want_gi,
                        &gscale,
                        kernel_vs_reference(DType::F32),
                    );
                }
            });
        }
    });
}

/// Views of caller-owned memory work as inputs and outputs, without copies.
#[test]
#[ignore = "needs a CUDA GPU"]
fn views_of_caller_owned_buffers() {
    let s = stream();
    let mut rng = rng("views");
    let host: Vec<f32> = random_data(&mut rng, 100 + 2 * 3 * 8 * 8);
    let buffer = s.clone_htod(&host).expect("upload");
    // The tensor is a sub-range of a larger buffer.
    let view = buffer.slice(100..);
    let input = Tensor::new(view, &[2, 3, 8, 8], Layout::Nchw).expect("view");
    let mut out_buffer = s.clone_htod(&poison::<f32>(2 * 3 * 3 * 3)).expect("upload");
    let mut output =
        Tensor::new(out_buffer.as_view_mut(), &[2, 3, 3, 3], Layout::Nchw).expect("view");
    AdaptiveAvgPool2d::new(3)
        .forward_into(&s, &input, &mut output)
        .expect("forward");
    let got = s.clone_dtoh(&out_buffer).expect("download");
    let shape = Shape::new(&[2, 3, 8, 8]).expect("shape");
    let (want, _) = reference::forward(&host[100..], &shape, Layout::Nchw, 3).expect("reference");
    let scale = forward_scale(&host[100..], &shape, Layout::Nchw, (3, 3));
    assert_close(
        "view forward",
        &got,
        &want,
        &scale,
        kernel_vs_reference(DType::F32),
    );
}

/// A tensor from another context is refused, not launched on.
#[test]
#[ignore = "needs a CUDA GPU"]
fn tensors_from_another_context_are_rejected() {
    let s = stream();
    let device = s.context().cu_device();
    let mut raw = std::ptr::null_mut();
    // SAFETY: `raw` is a live out-pointer, null creation parameters are allowed, and `device`
    // comes from a context the driver already created for ordinal 0.
    let rc = unsafe {
        adaptive_pool::cudarc::driver::sys::cuCtxCreate_v4(
            &mut raw,
            std::ptr::null_mut(),
            0,
            device,
        )
    };
    rc.result().expect("a second context on device 0");
    // SAFETY: `raw` was just created for `device` (ordinal 0) and is handed over, not destroyed
    // here.
    let other = unsafe { CudaContext::from_raw_context(0, device, raw) }.expect("wrap context");
    let other_stream = other.default_stream();
    let x = DeviceTensor::from_host(&other_stream, &[1.0f32; 16], &[1, 4, 4], Layout::Nchw)
        .expect("upload");
    let err = AdaptiveAvgPool2d::new(2).forward(&s, &x).unwrap_err();
    assert!(
        matches!(err, Error::ContextMismatch { what: "input", .. }),
        "{err}"
    );
}

/// Shape errors come before any launch, on the GPU path too.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_entry_points_check_shapes_and_layouts() {
    let s = stream();
    let pool = AdaptiveAvgPool2d::new(2);
    let x = DeviceTensor::from_host(&s, &[1.0f32; 32], &[2, 4, 4], Layout::Nchw).expect("upload");
    let mut wrong = DeviceTensor::<f32>::zeros(&s, &[2, 3, 3], Layout::Nchw).expect("alloc");
    assert!(matches!(
        pool.forward_into(&s, &x, &mut wrong),
        Err(Error::ShapeMismatch { what: "output", .. })
    ));
    let mut other_layout = DeviceTensor::<f32>::zeros(&s, &[2, 2, 2], Layout::Nhwc).expect("alloc");
    assert!(matches!(
        pool.forward_into(&s, &x, &mut other_layout),
        Err(Error::LayoutMismatch { .. })
    ));
    let go = DeviceTensor::from_host(&s, &[1.0f32; 18], &[2, 3, 3], Layout::Nchw).expect("upload");
    assert!(matches!(
        pool.backward(&s, &go, &[2, 4, 4]),
        Err(Error::ShapeMismatch {
            what: "grad_output",
            ..
        })
    ));
    assert!(matches!(
        DeviceTensor::from_host(&s, &[1.0f32; 5], &[1, 2, 3], Layout::Nchw),
        Err(Error::BufferLength {
            expected: 6,
            got: 5,
            ..
        })
    ));
}

/// The deterministic backward gives identical bits on every run (the GPU schedules blocks
/// differently each time), in every dtype and layout, including overlapping windows.
#[test]
#[ignore = "needs a CUDA GPU"]
fn deterministic_backward_is_bitwise_reproducible() {
    let s = stream();
    let mut rng = rng("gpu determinism");
    let pool = AdaptiveAvgPool2d::new((9, 13));
    for layout in Layout::ALL {
        let dims = [4, 16, 31, 17];
        let grad: Vec<bf16> = random_data(&mut rng, 4 * 16 * 9 * 13);
        let go = DeviceTensor::from_host(&s, &grad, &[4, 16, 9, 13], layout).expect("upload");
        let first: Vec<u16> = pool
            .backward(&s, &go, &dims)
            .and_then(|g| g.to_host(&s))
            .expect("backward")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        for _ in 0..20 {
            let again: Vec<u16> = pool
                .backward(&s, &go, &dims)
                .and_then(|g| g.to_host(&s))
                .expect("backward")
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(again, first, "{layout}: bits differ between runs");
        }
    }
}
