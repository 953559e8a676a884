//! Shapes, memory layouts and output sizes.

use std::fmt;

use crate::error::{Error, Result};

/// How a tensor's elements are laid out in memory. The logical shape is always PyTorch's
/// `(N, C, H, W)` or `(C, H, W)`; the layout says which index varies fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Contiguous `(N, C, H, W)` (or `(C, H, W)`): width fastest. PyTorch's
    /// `torch.contiguous_format`.
    #[default]
    Nchw,
    /// Channels-last: memory order `(N, H, W, C)` (or `(H, W, C)`): channels fastest.
    /// PyTorch's `torch.channels_last`.
    Nhwc,
}

impl Layout {
    /// Both layouts.
    pub const ALL: [Layout; 2] = [Layout::Nchw, Layout::Nhwc];

    /// The name used in kernel names: `nchw` or `nhwc`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "NCHW (contiguous)",
            Layout::Nhwc => "NHWC (channels-last)",
        })
    }
}

/// A 3-D `(C, H, W)` or 4-D `(N, C, H, W)` shape, in PyTorch's logical order whatever the
/// memory layout. A 3-D shape behaves as a batch of one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; 4],
    rank: usize,
}

impl Shape {
    /// A shape from PyTorch-ordered dimensions. Errors unless there are 3 or 4 of them and
    /// their product fits in `usize` (and the product in bytes of the widest dtype, f64, does
    /// too). A product with a zero factor is zero, whatever the other dimensions.
    pub fn new(dims: &[usize]) -> Result<Shape> {
        let mut all = [1usize; 4];
        match dims.len() {
            3 => all[1..].copy_from_slice(dims),
            4 => all.copy_from_slice(dims),
            _ => {
                return Err(Error::InvalidRank {
                    op: "adaptive_avg_pool2d()",
                    shape: dims.to_vec(),
                })
            }
        }
        // A zero anywhere makes the element count zero, however large the other dimensions
        // (PyTorch's rule too): multiplying left to right would overflow on the way to it.
        let numel = if dims.contains(&0) {
            Some(0)
        } else {
            dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
        };
        if numel.and_then(|n| n.checked_mul(8)).is_none() {
            return Err(Error::ElementCountOverflow {
                shape: dims.to_vec(),
            });
        }
        Ok(Shape {
            dims: all,
            rank: dims.len(),
        })
    }

    /// A 4-D shape `(n, c, h, w)`.
    pub fn nchw(n: usize, c: usize, h: usize, w: usize) -> Result<Shape> {
        Shape::new(&[n, c, h, w])
    }

    /// The same shape with other height and width (the rank is kept).
    pub(crate) fn with_hw(&self, h: usize, w: usize) -> Result<Shape> {
        let mut dims = self.dims;
        dims[2] = h;
        dims[3] = w;
        Shape::new(&dims[4 - self.rank..])
    }

    /// The dimensions as given: 3 or 4 of them.
    pub fn dims(&self) -> &[usize] {
        &self.dims[4 - self.rank..]
    }

    /// 3 or 4.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// N (1 for a 3-D shape).
    pub fn batch(&self) -> usize {
        self.dims[0]
    }

    /// C.
    pub fn channels(&self) -> usize {
        self.dims[1]
    }

    /// H.
    pub fn height(&self) -> usize {
        self.dims[2]
    }

    /// W.
    pub fn width(&self) -> usize {
        self.dims[3]
    }

    /// Number of elements (cannot overflow: checked in [`Shape::new`]).
    pub fn numel(&self) -> usize {
        if self.dims.contains(&0) {
            0 // the other dimensions' product may not fit
        } else {
            self.dims.iter().product()
        }
    }

    /// Offset in memory of logical element `(n, c, h, w)` in `layout`.
    pub fn offset(&self, layout: Layout, n: usize, c: usize, h: usize, w: usize) -> usize {
        let [_, cs, hs, ws] = self.dims;
        match layout {
            Layout::Nchw => ((n * cs + c) * hs + h) * ws + w,
            Layout::Nhwc => ((n * hs + h) * ws + w) * cs + c,
        }
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

/// The target output size of an adaptive pool: one number for a square output, or a pair
/// whose `None` entries keep that input dimension, as PyTorch's `output_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputSize {
    /// `output_size=7`: a 7x7 output.
    Square(usize),
    /// `output_size=(h, w)`, either of which may be `None` (keep the input's size).
    Pair(Option<usize>, Option<usize>),
}

impl OutputSize {
    /// Height and width, with `None` where the input's size is kept.
    pub fn hw(self) -> (Option<usize>, Option<usize>) {
        match self {
            OutputSize::Square(s) => (Some(s), Some(s)),
            OutputSize::Pair(h, w) => (h, w),
        }
    }

    /// The output shape for an input shape: the input's shape with H and W replaced.
    pub fn resolve(self, input: &Shape) -> Result<Shape> {
        let (h, w) = self.hw();
        input.with_hw(h.unwrap_or(input.height()), w.unwrap_or(input.width()))
    }
}

impl From<usize> for OutputSize {
    fn from(s: usize) -> Self {
        OutputSize::Square(s)
    }
}

impl From<(usize, usize)> for OutputSize {
    fn from((h, w): (usize, usize)) -> Self {
        OutputSize::Pair(Some(h), Some(w))
    }
}

impl From<(Option<usize>, Option<usize>)> for OutputSize {
    fn from((h, w): (Option<usize>, Option<usize>)) -> Self {
        OutputSize::Pair(h, w)
    }
}

impl fmt::Display for OutputSize {
    /// As PyTorch prints it: `7`, `(7, 7)`, `(3, None)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |v: Option<usize>| v.map_or_else(|| "None".to_string(), |v| v.to_string());
        match *self {
            OutputSize::Square(s) => write!(f, "{s}"),
            OutputSize::Pair(h, w) => write!(f, "({}, {})", one(h), one(w)),
        }
    }
}

/// PyTorch's input check for adaptive pooling: H and W, and C of a 4-D input, must be
/// non-zero (the batch, and C of a 3-D input, may be zero: the output is then empty).
pub(crate) fn check_pool_input(op: &'static str, shape: &Shape) -> Result<()> {
    // Dimension 0 is N of a 4-D shape or C of a 3-D one: both may be zero.
    for (dim, &size) in shape.dims().iter().enumerate().skip(1) {
        if size == 0 {
            return Err(Error::EmptyDimension {
                op,
                shape: shape.dims().to_vec(),
                dim,
            });
        }
    }
    Ok(())
}
