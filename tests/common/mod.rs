//! Support shared by the integration tests: golden fixtures, random data, named tolerances,
//! comparisons.
#![allow(dead_code)]

pub mod cases;
pub mod golden;
pub mod sim;

use adaptive_pool::{reference, DType, Element, Layout, Shape};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An error bound: `|got - want| <= abs + rel * scale`, where `scale` is the magnitude of the
/// quantity (the same pooling applied to absolute values, so cancellation cannot make it
/// tiny).
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

/// Our f64 reference against PyTorch's CPU results. PyTorch sums f32 in f32 and f16/bf16 in
/// their own CPU accumulation and rounds once; the reference sums in f64 and rounds once, so
/// they differ by the rounding of PyTorch's sum: a few ulps of the result's dtype.
pub fn reference_vs_torch(dtype: DType) -> Tolerance {
    match dtype {
        // f32 ulp is 1.2e-7 relative; PyTorch's f32 sums of up to a few hundred terms.
        DType::F32 => Tolerance {
            abs: 1e-6,
            rel: 1e-5,
        },
        DType::F64 => Tolerance {
            abs: 1e-12,
            rel: 1e-12,
        },
        // f16 ulp is 9.8e-4 relative: a few ulps.
        DType::F16 => Tolerance {
            abs: 2e-3,
            rel: 1e-2,
        },
        // bf16 ulp is 7.8e-3 relative: a few ulps.
        DType::Bf16 => Tolerance {
            abs: 1e-2,
            rel: 2e-2,
        },
    }
}

/// The kernels against the f64 reference. The kernels accumulate f32/f16/bf16 in f32 and f64
/// in f64; the backward's atomic adds round once per contribution in the storage type. The
/// bound is relative to the magnitude `scale` of each element.
pub fn kernel_vs_reference(dtype: DType) -> Tolerance {
    match dtype {
        // Window sums of up to ~1000 terms in f32: well under 1e-5 of their magnitude.
        DType::F32 => Tolerance {
            abs: 1e-6,
            rel: 1e-5,
        },
        // The same in f64.
        DType::F64 => Tolerance {
            abs: 1e-14,
            rel: 1e-13,
        },
        // One rounding of the f32 result (half an ulp, 4.9e-4) plus, in the backward, one per
        // atomic contribution (a handful in these tests): 8 ulps.
        DType::F16 => Tolerance {
            abs: 1e-4,
            rel: 8e-3,
        },
        // The same for bf16 (half an ulp is 3.9e-3).
        DType::Bf16 => Tolerance {
            abs: 1e-3,
            rel: 6e-2,
        },
    }
}

/// A random generator from a fresh seed, printed so that a failure can be replayed with
/// `ADAPTIVE_POOL_TEST_SEED`.
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("ADAPTIVE_POOL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("{test}: seed {seed} (replay with ADAPTIVE_POOL_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// `len` random values in [-2, 2), never all zero.
pub fn random_data<T: Element>(rng: &mut StdRng, len: usize) -> Vec<T> {
    let mut v: Vec<T> = (0..len)
        .map(|_| T::from_f64(rng.random_range(-2.0..2.0)))
        .collect();
    if let Some(first) = v.first_mut() {
        if first.to_f64() == 0.0 {
            *first = T::from_f64(1.0);
        }
    }
    v
}

/// `len` NaNs: fill an output with this before a kernel runs, so an unwritten element fails.
pub fn poison<T: Element>(len: usize) -> Vec<T> {
    vec![T::from_f64(f64::NAN); len]
}

/// Compares `got` with `want` element by element against `tol` scaled by `scale`; NaN must
/// match NaN. Panics naming the first bad element; returns the largest absolute error.
pub fn assert_close<T: Element>(
    what: &str,
    got: &[T],
    want: &[T],
    scale: &[T],
    tol: Tolerance,
) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(scale.len(), want.len(), "{what}: scale length");
    let mut max_err = 0.0f64;
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        let (g, w, s) = (g.to_f64(), w.to_f64(), s.to_f64().abs());
        if w.is_nan() || g.is_nan() {
            assert!(
                w.is_nan() && g.is_nan(),
                "{what}: element {i}: got {g}, want {w}"
            );
            continue;
        }
        if w.is_infinite() || g.is_infinite() {
            assert_eq!(g, w, "{what}: element {i}");
            continue;
        }
        let err = (g - w).abs();
        let bound = tol.abs + tol.rel * s.max(w.abs());
        assert!(
            err <= bound,
            "{what}: element {i}: got {g}, want {w}, error {err:e} > bound {bound:e} ({tol:?})"
        );
        max_err = max_err.max(err);
    }
    max_err
}

/// The magnitude of each forward output: the same pooling of |input|.
pub fn forward_scale<T: Element>(
    input: &[T],
    shape: &Shape,
    layout: Layout,
    out_hw: (usize, usize),
) -> Vec<T> {
    let abs: Vec<T> = input
        .iter()
        .map(|v| T::from_f64(v.to_f64().abs()))
        .collect();
    match reference::forward(&abs, shape, layout, out_hw) {
        Ok((v, _)) => v,
        Err(e) => panic!("reference forward of |input| failed: {e}"),
    }
}

/// The magnitude of each grad_input element: the backward of |grad_output|.
pub fn backward_scale<T: Element>(
    grad_output: &[T],
    grad_output_shape: &Shape,
    input_shape: &Shape,
    layout: Layout,
) -> Vec<T> {
    let abs: Vec<T> = grad_output
        .iter()
        .map(|v| T::from_f64(v.to_f64().abs()))
        .collect();
    match reference::backward(&abs, grad_output_shape, input_shape, layout) {
        Ok(v) => v,
        Err(e) => panic!("reference backward of |grad_output| failed: {e}"),
    }
}

/// Largest error seen per dtype, for the closing summary of a test.
#[derive(Default, Debug)]
pub struct ErrorSummary {
    pub cases: usize,
    pub max: [f64; 4],
    pub count: [usize; 4],
}

impl ErrorSummary {
    pub fn record(&mut self, dtype: DType, err: f64) {
        let i = DType::ALL.iter().position(|&d| d == dtype).unwrap_or(0);
        self.max[i] = self.max[i].max(err);
        self.count[i] += 1;
    }

    pub fn print(&self, title: &str) {
        println!("{title}: {} cases", self.cases);
        for (i, d) in DType::ALL.iter().enumerate() {
            if self.count[i] == 0 {
                continue;
            }
            println!(
                "  {d:>4}: {:>4} comparisons, largest error {:e}",
                self.count[i], self.max[i]
            );
        }
    }
}
