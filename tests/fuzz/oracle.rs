//! An independent model of what each call must do: which checks a set of arguments fails, and
//! the results of valid calls. Written from PyTorch's definition with exact `u128` integer
//! arithmetic, not from the crate's code, so a wrong check or a wrong window in the crate shows
//! up as a disagreement.

use adaptive_pool::{Element, Error, Layout, OutputSize};

/// The kind of an error, for comparing with the set of checks a call's arguments fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    InvalidRank,
    EmptyDimension,
    ShapeMismatch,
    LayoutMismatch,
    BufferLength,
    Overflow,
    HostAllocation,
    ContextMismatch,
    Cuda,
    Other,
}

pub fn kind(e: &Error) -> Kind {
    match e {
        Error::InvalidRank { .. } => Kind::InvalidRank,
        Error::EmptyDimension { .. } => Kind::EmptyDimension,
        Error::ShapeMismatch { .. } => Kind::ShapeMismatch,
        Error::LayoutMismatch { .. } => Kind::LayoutMismatch,
        Error::BufferLength { .. } => Kind::BufferLength,
        Error::ElementCountOverflow { .. } => Kind::Overflow,
        Error::HostAllocation { .. } => Kind::HostAllocation,
        Error::ContextMismatch { .. } => Kind::ContextMismatch,
        Error::Cuda { .. } => Kind::Cuda,
        _ => Kind::Other,
    }
}

/// The checks a call fails, in no particular order. A call must succeed when there are none and
/// fail with one of them otherwise.
#[derive(Clone, Debug, Default)]
pub struct Violations(pub Vec<Kind>);

impl Violations {
    pub fn add(&mut self, kind: Kind, violated: bool) {
        if violated && !self.0.contains(&kind) {
            self.0.push(kind);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Panics unless `result` agrees: `Ok` exactly when nothing is violated, otherwise an error
    /// of a violated kind (whose message must be non-empty and name no Rust internals).
    pub fn check<T>(&self, what: &str, result: &Result<T, Error>) {
        match result {
            Ok(_) => assert!(
                self.0.is_empty(),
                "{what}: succeeded although it violates {:?}",
                self.0
            ),
            Err(e) => {
                let k = kind(e);
                assert!(
                    self.0.contains(&k),
                    "{what}: failed with {k:?} ({e}) but the arguments violate only {:?}",
                    self.0
                );
                let message = e.to_string();
                assert!(!message.is_empty(), "{what}: empty error message");
            }
        }
    }
}

/// The product of `dims`, exactly (`None` beyond `u128`): zero if any dimension is.
pub fn product(dims: &[usize]) -> Option<u128> {
    if dims.contains(&0) {
        return Some(0);
    }
    dims.iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
}

/// Whether a shape of `dims` has an element count whose size in bytes of the widest dtype (8)
/// fits in `usize`: the crate's promise for every shape it accepts.
pub fn count_fits(dims: &[usize]) -> bool {
    product(dims).is_some_and(|n| n.checked_mul(8).is_some_and(|b| b <= usize::MAX as u128))
}

/// The element count, where it fits (see [`count_fits`]).
pub fn numel(dims: &[usize]) -> Option<usize> {
    count_fits(dims).then(|| product(dims).map(|n| n as usize))?
}

/// What `Shape::new(dims)` must report, or `None` if it must accept them.
pub fn shape_error(dims: &[usize]) -> Option<Kind> {
    if dims.len() != 3 && dims.len() != 4 {
        Some(Kind::InvalidRank)
    } else if !count_fits(dims) {
        Some(Kind::Overflow)
    } else {
        None
    }
}

/// `[n, c, h, w]`, with `n = 1` for 3-D dims.
pub fn four(dims: &[usize]) -> [usize; 4] {
    match *dims {
        [c, h, w] => [1, c, h, w],
        [n, c, h, w] => [n, c, h, w],
        _ => panic!("four() of rank {}", dims.len()),
    }
}

/// PyTorch's check on a pooling input: every dimension after the first is non-zero.
pub fn has_empty_non_batch_dim(dims: &[usize]) -> bool {
    dims.iter().skip(1).any(|&d| d == 0)
}

/// The output dims for an input of `dims` (rank 3 or 4) and `size`.
pub fn resolve(dims: &[usize], size: OutputSize) -> Vec<usize> {
    let (h, w) = match size {
        OutputSize::Square(s) => (Some(s), Some(s)),
        OutputSize::Pair(h, w) => (h, w),
    };
    let mut out = dims.to_vec();
    let r = out.len();
    out[r - 2] = h.unwrap_or(dims[r - 2]);
    out[r - 1] = w.unwrap_or(dims[r - 1]);
    out
}

/// PyTorch's window `[floor(o * i / out), ceil((o + 1) * i / out))`.
pub fn window(o: usize, out: usize, i: usize) -> (usize, usize) {
    let (o, out, i) = (o as u128, out as u128, i as u128);
    let start = o * i / out;
    let end = ((o + 1) * i).div_ceil(out);
    (start as usize, end as usize)
}

/// Offset of `(n, c, h, w)` in a tensor of 4-D dims `d` in `layout`.
pub fn offset(d: [usize; 4], layout: Layout, n: usize, c: usize, h: usize, w: usize) -> usize {
    let [_, cs, hs, ws] = d;
    match layout {
        Layout::Nchw => ((n * cs + c) * hs + h) * ws + w,
        Layout::Nhwc => ((n * hs + h) * ws + w) * cs + c,
    }
}

/// The forward of a small valid input: each cell the f64 mean of its window, summed row by row
/// and rounded once.
pub fn forward<T: Element>(
    input: &[T],
    dims: &[usize],
    layout: Layout,
    out_dims: &[usize],
) -> Vec<T> {
    let d = four(dims);
    let o = four(out_dims);
    if o.contains(&0) {
        return Vec::new(); // (the other dimensions may be huge)
    }
    let mut out = vec![T::from_f64(f64::NAN); o.iter().product()];
    for n in 0..d[0] {
        for c in 0..d[1] {
            for y in 0..o[2] {
                let (h0, h1) = window(y, o[2], d[2]);
                for x in 0..o[3] {
                    let (w0, w1) = window(x, o[3], d[3]);
                    let mut sum = 0.0f64;
                    for h in h0..h1 {
                        for w in w0..w1 {
                            sum += input[offset(d, layout, n, c, h, w)].to_f64();
                        }
                    }
                    let area = ((h1 - h0) * (w1 - w0)) as f64;
                    out[offset(o, layout, n, c, y, x)] = T::from_f64(sum / area);
                }
            }
        }
    }
    out
}

/// The backward of a small valid case: each input element gathers `grad / area` from the
/// output cells whose windows contain it, in increasing (y, x) order, summed in f64 and rounded
/// once.
pub fn backward<T: Element>(
    grad: &[T],
    out_dims: &[usize],
    in_dims: &[usize],
    layout: Layout,
) -> Vec<T> {
    let d = four(in_dims);
    let o = four(out_dims);
    if d.contains(&0) {
        return Vec::new(); // (the other dimensions may be huge)
    }
    if o.contains(&0) {
        return vec![T::from_f64(0.0); d.iter().product()]; // no cell: no gradient
    }
    let covering = |i: usize, out: usize, len: usize| -> Vec<(usize, usize)> {
        (0..out)
            .filter_map(|y| {
                let (a, b) = window(y, out, len);
                (a <= i && i < b).then_some((y, b - a))
            })
            .collect()
    };
    let rows: Vec<_> = (0..d[2]).map(|h| covering(h, o[2], d[2])).collect();
    let cols: Vec<_> = (0..d[3]).map(|w| covering(w, o[3], d[3])).collect();
    let mut gi = vec![T::from_f64(f64::NAN); d.iter().product()];
    for n in 0..d[0] {
        for c in 0..d[1] {
            for h in 0..d[2] {
                for w in 0..d[3] {
                    let mut sum = 0.0f64;
                    for &(y, ry) in &rows[h] {
                        for &(x, rx) in &cols[w] {
                            let g = grad[offset(o, layout, n, c, y, x)].to_f64();
                            sum += g / (ry * rx) as f64;
                        }
                    }
                    gi[offset(d, layout, n, c, h, w)] = T::from_f64(sum);
                }
            }
        }
    }
    gi
}

/// Panics unless `got` and `want` hold the same values bit for bit (any NaN matching any NaN).
pub fn assert_same<T: Element>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_f64(), w.to_f64());
        assert!(
            (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits(),
            "{what}: element {i}: got {g:e}, want {w:e}"
        );
    }
}
