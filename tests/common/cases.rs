//! Test cases and checks shared by every backend that runs the kernels: the GPU (`tests/gpu.rs`)
//! and the PTX simulator (`tests/sim.rs`).

use adaptive_pool::half::{bf16, f16};
use adaptive_pool::{reference, BackwardAlgorithm, DType, Element, Layout, OutputSize, Shape};
use rand::rngs::StdRng;
use rand::Rng;

use super::{
    assert_close, backward_scale, forward_scale, kernel_vs_reference, poison, random_data,
    ErrorSummary,
};

/// Something that runs the crate's kernels on host data. Outputs start as the `poison` given
/// (NaN), so an element the kernels never write fails the comparison.
pub trait Backend {
    /// Forward of `input` (`shape`, `layout`) into an output of `out_shape`.
    fn forward<T: Element>(
        &self,
        input: &[T],
        shape: &Shape,
        layout: Layout,
        out_shape: &Shape,
        poisoned_output: Vec<T>,
    ) -> Vec<T>;

    /// Backward of `grad_output` (`grad_output_shape`) into grad_input of `input_shape`.
    fn backward<T: Element>(
        &self,
        grad_output: &[T],
        grad_output_shape: &Shape,
        input_shape: &Shape,
        layout: Layout,
        algorithm: BackwardAlgorithm,
        poisoned_grad_input: Vec<T>,
    ) -> Vec<T>;
}

/// One shape to test.
#[derive(Clone, Debug)]
pub struct Case {
    pub dims: Vec<usize>,
    pub output_size: OutputSize,
    pub layout: Layout,
}

impl Case {
    fn new(dims: &[usize], output_size: impl Into<OutputSize>, layout: Layout) -> Case {
        Case {
            dims: dims.to_vec(),
            output_size: output_size.into(),
            layout,
        }
    }
}

/// The fixed edge cases, in both layouts: non-divisible, upsampling, 1x1 output, identity,
/// 1-wide and 1-tall inputs, an empty batch, a zero output size, None entries, a shape that
/// needs the 64-bit index kernels (its window products pass 2^32), and global pooling of
/// planes of several sizes.
pub fn edge_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for layout in Layout::ALL {
        cases.extend([
            Case::new(&[2, 3, 7, 9], (3, 4), layout),
            Case::new(&[1, 2, 3, 4], (7, 9), layout),
            Case::new(&[2, 5, 6, 7], 1, layout),
            Case::new(&[3, 5, 6], (5, 6), layout),
            Case::new(&[2, 3, 1, 9], (1, 4), layout),
            Case::new(&[2, 3, 9, 1], (4, 3), layout),
            Case::new(&[0, 3, 8, 8], 3, layout),
            Case::new(&[0, 4, 4], 2, layout),
            Case::new(&[1, 2, 5, 5], (0, 3), layout),
            Case::new(&[2, 3, 5, 6], (Some(3), None), layout),
            Case::new(&[1, 1, 1, 70_000], (1, 69_999), layout),
            // Channel counts that the 16-byte NHWC kernels take, large windows, global pooling
            // with many and with few planes.
            Case::new(&[2, 16, 20, 20], (2, 3), layout),
            Case::new(&[1, 8, 40, 40], 1, layout),
            Case::new(&[2, 32, 9, 9], (4, 4), layout),
            Case::new(&[3, 64, 7, 7], 1, layout),
            Case::new(&[2, 24, 5, 5], 7, layout),
            Case::new(&[1, 3, 70, 90], (2, 3), layout),
            Case::new(&[16, 40, 3], (1, 1), layout),
            // Global pooling of planes of 15 elements (each plane starts at a different
            // 16-byte phase, so the warp kernel's scalar head and tail vary) and of 1x1 planes.
            Case::new(&[3, 5, 3, 5], 1, layout),
            Case::new(&[4, 1, 1], 1, layout),
            // An extent past the 1024 entries of the gathers' shared tables
            // (`kernels/gather_tables.cuh`): their dividing fallback, the 16-byte NHWC gather's
            // included (8 channels).
            Case::new(&[1, 8, 1030, 2], (3, 2), layout),
            // Global pooling with more 16-byte words than a small device has threads: the
            // channels-last broadcast's warps store runs of several pixels (575 pixels in
            // uneven runs, the last group of 32 columns partial in every dtype).
            Case::new(&[2, 96, 23, 25], 1, layout),
        ]);
    }
    cases
}

/// `count` random shapes: rank 3 or 4, small sizes, output sizes from 1 to twice the input
/// plus two (so downsampling, non-divisible, identity and upsampling all occur).
pub fn random_cases(rng: &mut StdRng, count: usize) -> Vec<Case> {
    (0..count)
        .map(|_| {
            let h = rng.random_range(1..=18);
            let w = rng.random_range(1..=18);
            let c = [1, 2, 3, 4, 5, 8, 16][rng.random_range(0..7)];
            let dims = if rng.random_bool(0.5) {
                vec![rng.random_range(1..=3), c, h, w]
            } else {
                vec![c, h, w]
            };
            let oh = rng.random_range(1..=2 * h + 2);
            let ow = rng.random_range(1..=2 * w + 2);
            let output_size = match rng.random_range(0..6) {
                0 => OutputSize::Pair(None, Some(ow)),
                1 => OutputSize::Pair(Some(oh), None),
                _ => OutputSize::Pair(Some(oh), Some(ow)),
            };
            let layout = if rng.random_bool(0.5) {
                Layout::Nchw
            } else {
                Layout::Nhwc
            };
            Case {
                dims,
                output_size,
                layout,
            }
        })
        .collect()
}

/// Runs `case` forward in dtype `T` on `backend` and compares with the reference; returns the
/// largest error.
pub fn check_forward<T: Element, B: Backend>(backend: &B, case: &Case, rng: &mut StdRng) -> f64 {
    let shape = Shape::new(&case.dims).expect("case shape");
    let out_shape = case.output_size.resolve(&shape).expect("output shape");
    let input: Vec<T> = random_data(rng, shape.numel());
    let got = backend.forward(
        &input,
        &shape,
        case.layout,
        &out_shape,
        poison(out_shape.numel()),
    );
    let (want, _) = reference::forward(&input, &shape, case.layout, case.output_size)
        .expect("reference forward");
    let scale = forward_scale(
        &input,
        &shape,
        case.layout,
        (out_shape.height(), out_shape.width()),
    );
    let name = format!(
        "{:?} -> {} {} {} forward",
        case.dims,
        case.output_size,
        case.layout,
        T::DTYPE
    );
    let err = assert_close(&name, &got, &want, &scale, kernel_vs_reference(T::DTYPE));
    assert_within_half_precision_ulps(&name, &got, &want);
    err
}

/// How far, in units in the last place of the dtype, an f16 or bf16 result of the forward may
/// be from the f64 reference rounded to that dtype. The kernels sum the window in f32 (24 bits
/// against 11 or 8: sums of f16/bf16 inputs are exact or off by a tiny fraction of the dtype's
/// ulp), divide once and round once, so they can land on the other side of a rounding
/// boundary from the exact mean: one ulp. A kernel that accumulates in the storage type rounds
/// at every term and misses by several. (Not the backward: the gather divides each term before
/// summing, and where the terms cancel to nearly zero their f32 rounding errors are many ulps
/// of the tiny result; it keeps [`super::kernel_vs_reference`]'s relative bound.)
pub const HALF_PRECISION_ULPS: i32 = 1;

/// A 16-bit float's bits mapped to integers that increase with its value (so that the
/// difference of two is their distance in ulps); -0 and +0 both map to 0.
fn ordered_bits(v: f64, dtype: DType) -> i32 {
    let bits = match dtype {
        DType::F16 => f16::from_f64(v).to_bits(),
        DType::Bf16 => bf16::from_f64(v).to_bits(),
        DType::F32 | DType::F64 => unreachable!("16-bit floats only"),
    };
    let magnitude = i32::from(bits & 0x7fff);
    if bits & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// For f16 and bf16 (no-op for f32 and f64): every element of `got` within
/// [`HALF_PRECISION_ULPS`] of `want`. NaNs are compared by `assert_close`.
pub fn assert_within_half_precision_ulps<T: Element>(what: &str, got: &[T], want: &[T]) {
    if !matches!(T::DTYPE, DType::F16 | DType::Bf16) {
        return;
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_f64(), w.to_f64());
        if g.is_nan() || w.is_nan() {
            continue;
        }
        let ulps = (ordered_bits(g, T::DTYPE) - ordered_bits(w, T::DTYPE)).abs();
        assert!(
            ulps <= HALF_PRECISION_ULPS,
            "{what}: element {i}: got {g}, want {w}: {ulps} ulps apart (at most {HALF_PRECISION_ULPS})"
        );
    }
}

/// Runs `case` backward in dtype `T` on `backend` and compares with the reference; the
/// backward must also conserve the gradient (grad_input sums to grad_output's sum). Returns the
/// largest error.
pub fn check_backward<T: Element, B: Backend>(
    backend: &B,
    case: &Case,
    algorithm: BackwardAlgorithm,
    rng: &mut StdRng,
) -> f64 {
    let shape = Shape::new(&case.dims).expect("case shape");
    let out_shape = case.output_size.resolve(&shape).expect("output shape");
    let tol = kernel_vs_reference(T::DTYPE);
    let name = format!(
        "{:?} -> {} {} {} backward {algorithm:?}",
        case.dims,
        case.output_size,
        case.layout,
        T::DTYPE
    );
    let grad_out: Vec<T> = random_data(rng, out_shape.numel());
    let got = backend.backward(
        &grad_out,
        &out_shape,
        &shape,
        case.layout,
        algorithm,
        poison(shape.numel()),
    );
    let want = reference::backward(&grad_out, &out_shape, &shape, case.layout)
        .expect("reference backward");
    let scale = backward_scale(&grad_out, &out_shape, &shape, case.layout);
    let err = assert_close(&name, &got, &want, &scale, tol);

    // Conservation: each grad_output element is spread over its window with weights summing
    // to one, so grad_input sums to grad_output's sum.
    let sum_in: f64 = got.iter().map(|v| v.to_f64()).sum();
    let sum_out: f64 = grad_out.iter().map(|v| v.to_f64()).sum();
    let magnitude: f64 = grad_out.iter().map(|v| v.to_f64().abs()).sum();
    let bound = tol.abs * shape.numel() as f64 + tol.rel * magnitude;
    assert!(
        (sum_in - sum_out).abs() <= bound,
        "{name}: grad_input sums to {sum_in}, grad_output to {sum_out} (bound {bound:e})"
    );
    err
}

/// [`check_forward`] and [`check_backward`] for one case, recorded in `summary`.
pub fn check_case<T: Element, B: Backend>(
    backend: &B,
    case: &Case,
    algorithm: BackwardAlgorithm,
    rng: &mut StdRng,
    summary: &mut ErrorSummary,
) {
    summary.record(T::DTYPE, check_forward::<T, B>(backend, case, rng));
    summary.record(
        T::DTYPE,
        check_backward::<T, B>(backend, case, algorithm, rng),
    );
    summary.cases += 1;
}

/// [`check_case`] in the dtype given as a value.
pub fn check_case_dtype<B: Backend>(
    backend: &B,
    dtype: DType,
    case: &Case,
    algorithm: BackwardAlgorithm,
    rng: &mut StdRng,
    summary: &mut ErrorSummary,
) {
    match dtype {
        DType::F32 => check_case::<f32, B>(backend, case, algorithm, rng, summary),
        DType::F64 => check_case::<f64, B>(backend, case, algorithm, rng, summary),
        DType::F16 => check_case::<f16, B>(backend, case, algorithm, rng, summary),
        DType::Bf16 => check_case::<bf16, B>(backend, case, algorithm, rng, summary),
    }
}
