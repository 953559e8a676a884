//! The window formula, PyTorch's `start_index` / `end_index`
//! (`aten/src/ATen/native/AdaptivePooling.h`), in exact integer arithmetic.
//!
//! Output cell `o` of `out_len` over an input of `in_len` averages input positions
//! `[start(o), end(o))` with `start(o) = floor(o * in_len / out_len)` and
//! `end(o) = ceil((o + 1) * in_len / out_len)`. The CUDA twin is `window_start` /
//! `window_end` in `kernels/common.cuh`; the crate's tests compare the two.

use std::ops::Range;

/// First input position of output cell `o`: `floor(o * in_len / out_len)`.
///
/// `out_len` must be non-zero (there is no cell `o` otherwise). Computed in 128 bits, so it
/// never overflows.
pub fn start(o: usize, out_len: usize, in_len: usize) -> usize {
    ((o as u128 * in_len as u128) / out_len as u128) as usize
}

/// One past the last input position of output cell `o`: `ceil((o + 1) * in_len / out_len)`.
pub fn end(o: usize, out_len: usize, in_len: usize) -> usize {
    let num = (o as u128 + 1) * in_len as u128;
    num.div_ceil(out_len as u128) as usize
}

/// The input range averaged by output cell `o`.
pub fn window(o: usize, out_len: usize, in_len: usize) -> Range<usize> {
    start(o, out_len, in_len)..end(o, out_len, in_len)
}

/// The output cells whose windows contain input position `i`: exactly those the backward
/// credits with a share of `grad_output`. It is the window formula with the roles of input and
/// output swapped: `[floor(i * out_len / in_len), ceil((i + 1) * out_len / in_len))`.
pub fn covering(i: usize, in_len: usize, out_len: usize) -> Range<usize> {
    start(i, in_len, out_len)..end(i, in_len, out_len)
}
