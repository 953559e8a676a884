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
/// Computed in 128 bits, so it never overflows. For `out_len == 0` (no cells) it is 0; for a
/// cell past the end (`o >= out_len`) it is at least `in_len`, saturating at `usize::MAX`.
pub fn start(o: usize, out_len: usize, in_len: usize) -> usize {
    if out_len == 0 {
        return 0;
    }
    saturate((o as u128 * in_len as u128) / out_len as u128)
}

/// One past the last input position of output cell `o`: `ceil((o + 1) * in_len / out_len)`.
/// The same conventions as [`start`].
pub fn end(o: usize, out_len: usize, in_len: usize) -> usize {
    if out_len == 0 {
        return 0;
    }
    let num = (o as u128 + 1) * in_len as u128;
    saturate(num.div_ceil(out_len as u128))
}

fn saturate(v: u128) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The input range averaged by output cell `o` (empty when `out_len == 0`).
pub fn window(o: usize, out_len: usize, in_len: usize) -> Range<usize> {
    start(o, out_len, in_len)..end(o, out_len, in_len)
}

/// The output cells whose windows contain input position `i`: exactly those the backward
/// credits with a share of `grad_output`. It is the window formula with the roles of input and
/// output swapped: `[floor(i * out_len / in_len), ceil((i + 1) * out_len / in_len))` (empty
/// when `in_len == 0`).
pub fn covering(i: usize, in_len: usize, out_len: usize) -> Range<usize> {
    start(i, in_len, out_len)..end(i, in_len, out_len)
}
