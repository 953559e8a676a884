//! Random arguments, biased towards the values that break things: ranks 0 to 6, dimensions 0,
//! 1 and near overflow, output sizes 0 and far larger than the input, buffers one element off.

use adaptive_pool::{DType, Element, Layout, OutputSize};
use rand::rngs::StdRng;
use rand::Rng;

/// Elements of the largest valid tensor a case computes on (its input, output or grad_input):
/// the reference and the kernels on the virtual GPU stay cheap, so that ten thousand cases take
/// seconds.
pub const SMALL: usize = 1 << 12;

/// One dimension: mostly small, often 0 or 1, sometimes at a 32-bit boundary or near
/// `usize::MAX`.
pub fn dim(rng: &mut StdRng) -> usize {
    match rng.random_range(0..100) {
        0..=9 => 0,
        10..=24 => 1,
        25..=64 => rng.random_range(2..=9),
        65..=74 => rng.random_range(10..=70),
        75..=84 => {
            let k = rng.random_range(16..=62);
            (1usize << k)
                .wrapping_add(rng.random_range(0..=2))
                .wrapping_sub(1)
        }
        85..=92 => [
            (1 << 31) - 1,
            1 << 31,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 1,
            u32::MAX as usize / 3,
        ][rng.random_range(0..6)],
        _ => [
            usize::MAX,
            usize::MAX - 1,
            usize::MAX / 2,
            usize::MAX / 2 + 1,
            usize::MAX / 8,
            usize::MAX / 8 + 1,
            usize::MAX / 16,
        ][rng.random_range(0..7)],
    }
}

/// Any dimensions: rank 0 to 6 (3 and 4, the valid ranks, half the time), each from [`dim`].
pub fn any_dims(rng: &mut StdRng) -> Vec<usize> {
    let rank = if rng.random_bool(0.5) {
        rng.random_range(3..=4)
    } else {
        rng.random_range(0..=6)
    };
    (0..rank).map(|_| dim(rng)).collect()
}

/// A small valid pooling input: rank 3 or 4, the batch (or 3-D channels) sometimes 0, every
/// other dimension at least 1, at most [`SMALL`] elements.
pub fn small_input(rng: &mut StdRng) -> Vec<usize> {
    loop {
        let lead = if rng.random_bool(0.08) {
            0
        } else {
            rng.random_range(1..=3)
        };
        let c = [1, 2, 3, 4, 5, 8, 16][rng.random_range(0..7)];
        let (h, w) = (rng.random_range(1..=12), rng.random_range(1..=12));
        let dims = if rng.random_bool(0.5) {
            vec![lead, c, h, w]
        } else {
            vec![if lead == 0 { 0 } else { c }, h, w]
        };
        if dims.iter().product::<usize>() <= SMALL {
            return dims;
        }
    }
}

/// An output size: square or a pair with `None`s, small (0 included, downsampling and
/// upsampling of a small input) or, with probability `1 - small`, possibly large (far larger
/// than any input, up to near overflow).
pub fn output_size(rng: &mut StdRng, small: f64) -> OutputSize {
    let small_only = rng.random_bool(small);
    let side = |rng: &mut StdRng| -> usize {
        if small_only || rng.random_bool(0.75) {
            match rng.random_range(0..10) {
                0 => 0,
                1 => 1,
                _ => rng.random_range(1..=16),
            }
        } else {
            dim(rng)
        }
    };
    match rng.random_range(0..4) {
        0 => OutputSize::Square(side(rng)),
        1 => OutputSize::Pair(Some(side(rng)), Some(side(rng))),
        2 => OutputSize::Pair(
            rng.random_bool(0.5).then(|| side(rng)),
            rng.random_bool(0.5).then(|| side(rng)),
        ),
        _ => {
            let (h, w) = (side(rng), side(rng));
            match rng.random_range(0..3) {
                0 => h.into(),
                1 => (h, w).into(),
                _ => (Some(h), None).into(),
            }
        }
    }
}

pub fn layout(rng: &mut StdRng) -> Layout {
    Layout::ALL[rng.random_range(0..2)]
}

pub fn dtype(rng: &mut StdRng) -> DType {
    DType::ALL[rng.random_range(0..4)]
}

/// A buffer length for a shape of `numel` elements (`None`: too many to hold): usually right
/// when that is small, otherwise one off, zero, or some other small length.
pub fn buffer_len(rng: &mut StdRng, numel: Option<usize>) -> usize {
    match numel {
        Some(n) if n <= SMALL && rng.random_bool(0.8) => n,
        Some(n) if n <= SMALL + 1 => match rng.random_range(0..4) {
            0 => n + 1,
            1 => n.saturating_sub(1),
            2 => 0,
            _ => rng.random_range(0..=64),
        },
        _ => rng.random_range(0..=64),
    }
}

/// `len` values in [-2, 2), with now and then a NaN, an infinity or a signed zero, which must
/// propagate as in PyTorch.
pub fn data<T: Element>(rng: &mut StdRng, len: usize) -> Vec<T> {
    let specials = rng.random_bool(0.1);
    (0..len)
        .map(|_| {
            let v = if specials && rng.random_bool(0.05) {
                [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0][rng.random_range(0..4)]
            } else {
                rng.random_range(-2.0..2.0)
            };
            T::from_f64(v)
        })
        .collect()
}
