//! Every error the crate reports: what triggers it and what its message says.
//!
//! The ones that need a device to trigger (a context mismatch, a real launch) are in
//! `tests/gpu.rs`; here the others are triggered for real, and the device-only ones are checked
//! through the pure functions that decide them.

use adaptive_pool::half::f16;
use adaptive_pool::{ptx, reference, AdaptiveAvgPool2d, Error, Layout, Shape};

#[test]
fn rank_other_than_3_or_4_is_rejected_like_pytorch() {
    for dims in [&[4usize, 4][..], &[5], &[], &[1, 2, 3, 4, 5]] {
        let err = Shape::new(dims).unwrap_err();
        assert!(matches!(err, Error::InvalidRank { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {dims:?}")
        );
    }
    let err = AdaptiveAvgPool2d::new(2).output_shape(&[4, 4]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got [4, 4]"
    );
}

#[test]
fn empty_non_batch_dimensions_are_rejected() {
    let pool = AdaptiveAvgPool2d::new(2);
    for (dims, dim) in [
        (&[1usize, 0, 4, 4][..], 1),
        (&[1, 3, 0, 4], 2),
        (&[1, 3, 4, 0], 3),
        (&[3, 0, 4], 1),
        (&[3, 4, 0], 2),
    ] {
        let err = pool.output_shape(dims).unwrap_err();
        match &err {
            Error::EmptyDimension { dim: d, shape, .. } => {
                assert_eq!(*d, dim);
                assert_eq!(shape, dims);
            }
            other => panic!("{dims:?}: {other:?}"),
        }
        assert!(err
            .to_string()
            .contains(&format!("dimension {dim} being empty")));
        let input = vec![1.0f32; Shape::new(dims).unwrap().numel()];
        let err = reference::forward(&input, &Shape::new(dims).unwrap(), Layout::Nchw, 2);
        assert!(matches!(err, Err(Error::EmptyDimension { .. })));
    }
}

#[test]
fn empty_batch_and_zero_output_size_give_empty_outputs() {
    let pool = AdaptiveAvgPool2d::new((5, 5));
    // A zero batch (4-D) or zero channels (3-D, PyTorch's (0, 10, 10) case) is allowed.
    assert_eq!(
        pool.output_shape(&[0, 3, 10, 10]).unwrap().dims(),
        &[0, 3, 5, 5]
    );
    assert_eq!(pool.output_shape(&[0, 10, 10]).unwrap().dims(), &[0, 5, 5]);
    let (out, shape) = reference::forward::<f32>(
        &[],
        &Shape::new(&[0, 10, 10]).unwrap(),
        Layout::Nchw,
        (5, 5),
    )
    .unwrap();
    assert!(out.is_empty());
    assert_eq!(shape.dims(), &[0, 5, 5]);
    // An output size of zero gives an empty output; its backward is all zeros.
    let input: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let in_shape = Shape::new(&[1, 4, 4]).unwrap();
    let (out, shape) = reference::forward(&input, &in_shape, Layout::Nchw, (0, 3)).unwrap();
    assert!(out.is_empty());
    assert_eq!(shape.dims(), &[1, 0, 3]);
    let grad = reference::backward::<f32>(&[], &shape, &in_shape, Layout::Nchw).unwrap();
    assert_eq!(grad, vec![0.0; 16]);
}

#[test]
fn nan_and_infinity_propagate_like_pytorch() {
    let mut input = vec![1.0f32; 16];
    input[0] = f32::NAN;
    input[15] = f32::INFINITY;
    let shape = Shape::new(&[1, 4, 4]).unwrap();
    let (out, _) = reference::forward(&input, &shape, Layout::Nchw, 2).unwrap();
    assert!(out[0].is_nan());
    assert_eq!(out[1], 1.0);
    assert_eq!(out[2], 1.0);
    assert_eq!(out[3], f32::INFINITY);
}

#[test]
fn grad_output_of_the_wrong_shape_is_rejected() {
    let input = Shape::new(&[2, 3, 8, 8]).unwrap();
    for bad in [&[2usize, 4, 4, 4][..], &[1, 3, 4, 4], &[3, 4, 4]] {
        let grad = vec![1.0f32; Shape::new(bad).unwrap().numel()];
        let err = reference::backward(&grad, &Shape::new(bad).unwrap(), &input, Layout::Nchw)
            .unwrap_err();
        match &err {
            Error::ShapeMismatch { what, got, .. } => {
                assert_eq!(*what, "grad_output");
                assert_eq!(got, bad);
            }
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("adaptive_avg_pool2d_backward(): Expected grad_output of shape"));
    }
}

#[test]
fn buffer_length_must_match_the_shape() {
    let shape = Shape::new(&[1, 2, 3, 4]).unwrap();
    let err = reference::forward(&[1.0f64; 23], &shape, Layout::Nhwc, 2).unwrap_err();
    assert!(matches!(
        err,
        Error::BufferLength {
            expected: 24,
            got: 23,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "buffer of 23 elements given for shape [1, 2, 3, 4], which needs 24"
    );
    let out_shape = Shape::new(&[1, 2, 2, 2]).unwrap();
    let err = reference::backward(&[f16::ONE; 9], &out_shape, &shape, Layout::Nchw).unwrap_err();
    assert!(matches!(
        err,
        Error::BufferLength {
            expected: 8,
            got: 9,
            ..
        }
    ));
}

#[test]
fn element_count_overflow_is_an_error_not_a_panic() {
    for dims in [
        &[usize::MAX, 2, 1, 1][..],
        &[1 << 20, 1 << 20, 1 << 20, 1 << 20],
        &[usize::MAX / 4, 1, 1],
    ] {
        let err = Shape::new(dims).unwrap_err();
        assert!(
            matches!(err, Error::ElementCountOverflow { .. }),
            "{dims:?}: {err:?}"
        );
        assert!(err.to_string().contains("overflows"));
    }
    // The output shape can overflow where the input does not (upsampling).
    let err = AdaptiveAvgPool2d::new((usize::MAX / 2, 3)).output_shape(&[1, 1, 2, 2]);
    assert!(matches!(err, Err(Error::ElementCountOverflow { .. })));
}

/// A device older than every PTX variant gets no variant; the error says what it needs.
#[test]
fn devices_below_the_lowest_ptx_get_a_clear_error() {
    let archs = ptx::archs();
    assert!(!archs.is_empty(), "the PTX must be built for these tests");
    assert_eq!(ptx::select_arch(archs[0] - 1), None);
    assert_eq!(ptx::select_arch(archs[0]), Some(archs[0]));
    // The highest variant not above the device: an sm_86 device runs compute_80.
    assert_eq!(ptx::select_arch(86), Some(80));
    assert_eq!(ptx::select_arch(90), Some(90));
    assert_eq!(ptx::select_arch(120), archs.last().copied());
    let err = Error::UnsupportedDevice {
        ordinal: 0,
        major: 6,
        minor: 1,
        lowest_major: 7,
        lowest_minor: 5,
    };
    assert_eq!(
        err.to_string(),
        "CUDA device 0 has compute capability 6.1, but adaptive-pool's kernels need at least 7.5"
    );
}

#[test]
fn device_side_errors_say_what_to_do() {
    let err = Error::PtxTooNew {
        driver_major: 12,
        driver_minor: 4,
        nvrtc_major: 13,
        nvrtc_minor: 0,
    };
    let msg = err.to_string();
    assert!(
        msg.contains("version 12.4") && msg.contains("CUDA 13.0 or newer"),
        "{msg}"
    );
    let err = Error::KernelsNotBuilt {
        reason: "NVRTC was not found",
    };
    assert!(err
        .to_string()
        .contains("built without its CUDA kernels: NVRTC was not found"));
    let err = Error::ContextMismatch {
        what: "input",
        expected: 0,
        got: 1,
    };
    assert!(err.to_string().contains("input lives on CUDA device 1"));
    let err = Error::Cuda {
        doing: "launching kernel forward_nchw_f32_idx32".into(),
        source: cudarc::driver::DriverError(
            cudarc::driver::sys::CUresult::CUDA_ERROR_LAUNCH_FAILED,
        ),
    };
    assert!(err
        .to_string()
        .starts_with("CUDA error while launching kernel forward_nchw_f32_idx32"));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn display_prints_like_pytorch() {
    assert_eq!(
        AdaptiveAvgPool2d::new((7, 7)).to_string(),
        "AdaptiveAvgPool2d(output_size=(7, 7))"
    );
    assert_eq!(
        AdaptiveAvgPool2d::new(5).to_string(),
        "AdaptiveAvgPool2d(output_size=5)"
    );
    assert_eq!(
        AdaptiveAvgPool2d::new((Some(3), None)).to_string(),
        "AdaptiveAvgPool2d(output_size=(3, None))"
    );
    assert_eq!(
        AdaptiveAvgPool2d::new((None, None))
            .output_shape(&[1, 8, 4, 3])
            .unwrap()
            .dims(),
        &[1, 8, 4, 3]
    );
}

#[test]
fn the_module_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AdaptiveAvgPool2d>();
}
