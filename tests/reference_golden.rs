//! The CPU reference against real PyTorch: every golden fixture, forward and backward.

mod common;

use adaptive_pool::half::{bf16, f16};
use adaptive_pool::{reference, AdaptiveAvgPool2d, Element, Layout, OutputSize, Shape};
use common::golden::{load_all, GoldenCase, GoldenDType, GoldenElement};
use common::{assert_close, backward_scale, forward_scale, reference_vs_torch, ErrorSummary};

fn layout(case: &GoldenCase) -> Layout {
    if case.channels_last {
        Layout::Nhwc
    } else {
        Layout::Nchw
    }
}

fn decode<T: GoldenElement>(case: &GoldenCase, raw: &[u8]) -> Vec<T> {
    case.decode(raw)
        .unwrap_or_else(|| panic!("{}: fixture dtype mismatch", case.name))
}

fn check_case<T: Element + GoldenElement>(case: &GoldenCase, summary: &mut ErrorSummary) {
    let input: Vec<T> = decode(case, &case.input);
    let torch_out: Vec<T> = decode(case, &case.output);
    let grad_out: Vec<T> = decode(case, &case.grad_output);
    let torch_grad_in: Vec<T> = decode(case, &case.grad_input);
    let shape = Shape::new(&case.input_shape).expect("fixture shape");
    let layout = layout(case);
    let output_size = OutputSize::from(case.output_size);
    let dtype = <T as Element>::DTYPE;
    let tol = reference_vs_torch(dtype);

    // The output shape rule agrees with PyTorch's.
    let pool = AdaptiveAvgPool2d::new(output_size);
    let out_shape = pool.output_shape(&case.input_shape).expect("output shape");
    assert_eq!(
        out_shape.dims(),
        &case.output_shape[..],
        "{}: output shape",
        case.name
    );

    let (out, got_shape) =
        reference::forward(&input, &shape, layout, output_size).expect("reference forward");
    assert_eq!(got_shape, out_shape);
    let scale = forward_scale(
        &input,
        &shape,
        layout,
        (out_shape.height(), out_shape.width()),
    );
    let err = assert_close(
        &format!("{} forward", case.name),
        &out,
        &torch_out,
        &scale,
        tol,
    );
    summary.record(dtype, err);

    let grad_in =
        reference::backward(&grad_out, &out_shape, &shape, layout).expect("reference backward");
    let scale = backward_scale(&grad_out, &out_shape, &shape, layout);
    let err = assert_close(
        &format!("{} backward", case.name),
        &grad_in,
        &torch_grad_in,
        &scale,
        tol,
    );
    summary.record(dtype, err);
}

#[test]
fn reference_matches_every_pytorch_fixture() {
    let cases = load_all();
    assert!(
        cases.len() >= 100,
        "expected the full fixture set, got {}",
        cases.len()
    );
    let mut summary = ErrorSummary::default();
    for case in &cases {
        match case.dtype {
            GoldenDType::F32 => check_case::<f32>(case, &mut summary),
            GoldenDType::F64 => check_case::<f64>(case, &mut summary),
            GoldenDType::F16 => check_case::<f16>(case, &mut summary),
            GoldenDType::Bf16 => check_case::<bf16>(case, &mut summary),
        }
        summary.cases += 1;
    }
    summary.print("reference vs PyTorch fixtures (forward + backward)");
}

/// PyTorch's own test-suite shapes are all present (guards against a regenerated fixture file
/// silently dropping them).
#[test]
fn fixtures_cover_the_pytorch_suite_cases() {
    let cases = load_all();
    let has = |dims: &[usize], size: (Option<usize>, Option<usize>), channels_last: bool| {
        cases.iter().any(|c| {
            c.input_shape == dims && c.output_size == size && c.channels_last == channels_last
        })
    };
    let s = |v: usize| Some(v);
    /// (input dims, output_size, channels_last)
    type Required<'a> = (&'a [usize], (Option<usize>, Option<usize>), bool);
    let required: &[Required] = &[
        (&[1, 3, 5, 6], (s(3), s(3)), false),
        (&[3, 5, 6], (s(3), s(3)), false),
        (&[1, 3, 5, 6], (s(1), s(1)), false),
        (&[1, 3, 5, 6], (s(3), s(4)), false),
        (&[1, 3, 5, 6], (s(3), None), false),
        (&[4, 4, 4], (s(2), None), false),
        (&[1, 8, 8, 8], (s(5), s(7)), false),
        (&[2, 8, 8, 8], (None, s(7)), false),
        (&[1, 8, 4, 3], (s(5), None), false),
        (&[1, 8, 4, 3], (None, None), false),
        (&[1, 8, 4, 3], (s(5), s(5)), false),
        (&[4, 8, 8, 8], (s(7), s(7)), true),
        (&[2, 3, 6, 6], (s(1), s(1)), false),
        (&[2, 3, 6, 6], (s(1), s(1)), true),
        (&[8, 4, 16, 16], (s(3), s(5)), false),
        (&[0, 10, 10], (s(5), s(5)), false),
        (&[5, 5, 5, 5], (s(5), s(7)), false),
    ];
    for (dims, size, cl) in required {
        assert!(
            has(dims, *size, *cl),
            "missing fixture {dims:?} -> {size:?} channels_last={cl}"
        );
    }
    assert!(cases
        .iter()
        .any(|c| c.input_shape == [8, 4, 16, 16] && c.dtype == GoldenDType::Bf16));
}
