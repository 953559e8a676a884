//! A CPU implementation of `adaptive_avg_pool2d` forward and backward, the oracle for this
//! crate's tests and for users' CI.
//!
//! All four dtypes, both layouts, 3-D and 4-D, with exactly PyTorch's window formula
//! ([`crate::window`]). Sums are taken in f64 and each result is rounded once to the element
//! type, so the reference is at least as accurate as any GPU kernel it checks.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::shape::{check_pool_input, Layout, OutputSize, Shape};
use crate::window;

/// Forward pass: `input` holds `input_shape` in `layout`; returns the output (same layout) and
/// its shape. Errors as PyTorch does for an empty H, W or (4-D) C, if `input`'s length is not
/// the shape's, if the output's element count overflows, and with [`Error::HostAllocation`] if
/// the host cannot hold the output.
///
/// ```
/// use adaptive_pool::{reference, Layout, Shape};
/// let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
/// let shape = Shape::new(&[1, 4, 4])?;
/// let (out, out_shape) = reference::forward(&input, &shape, Layout::Nchw, (2, 2))?;
/// assert_eq!(out_shape.dims(), &[1, 2, 2]);
/// assert_eq!(out, vec![2.5, 4.5, 10.5, 12.5]);
/// # Ok::<(), adaptive_pool::Error>(())
/// ```
pub fn forward<T: Element>(
    input: &[T],
    input_shape: &Shape,
    layout: Layout,
    output_size: impl Into<OutputSize>,
) -> Result<(Vec<T>, Shape)> {
    check_pool_input("adaptive_avg_pool2d()", input_shape)?;
    check_len(input.len(), input_shape)?;
    let out_shape = output_size.into().resolve(input_shape)?;
    let (ih, iw, oh, ow) = (
        input_shape.height(),
        input_shape.width(),
        out_shape.height(),
        out_shape.width(),
    );
    let mut out = host_buffer::<T>(&out_shape)?;
    if out.is_empty() {
        // One output dimension is zero; the loops below would still walk the others, which
        // can be as large as usize allows.
        return Ok((out, out_shape));
    }
    for n in 0..input_shape.batch() {
        for c in 0..input_shape.channels() {
            for y in 0..oh {
                let rows = window::window(y, oh, ih);
                for x in 0..ow {
                    let cols = window::window(x, ow, iw);
                    let mut sum = 0.0f64;
                    for h in rows.clone() {
                        for w in cols.clone() {
                            sum += input[input_shape.offset(layout, n, c, h, w)].to_f64();
                        }
                    }
                    let area = (rows.len() * cols.len()) as f64;
                    out[out_shape.offset(layout, n, c, y, x)] = T::from_f64(sum / area);
                }
            }
        }
    }
    Ok((out, out_shape))
}

/// Backward pass: the gradient with respect to the input of shape `input_shape`, given
/// `grad_output` (of shape `grad_output_shape`, the forward's output shape for that input),
/// both in `layout`. Each input element receives `grad / area` from every output cell whose
/// window covers it, summed in f64 and rounded once. Errors as [`forward`] does, and if
/// `grad_output_shape` is not the input's with other H and W.
pub fn backward<T: Element>(
    grad_output: &[T],
    grad_output_shape: &Shape,
    input_shape: &Shape,
    layout: Layout,
) -> Result<Vec<T>> {
    check_pool_input("adaptive_avg_pool2d_backward()", input_shape)?;
    check_grad_output_shape(grad_output_shape, input_shape)?;
    check_len(grad_output.len(), grad_output_shape)?;
    let (ih, iw, oh, ow) = (
        input_shape.height(),
        input_shape.width(),
        grad_output_shape.height(),
        grad_output_shape.width(),
    );
    let mut grad_input = host_buffer::<T>(input_shape)?;
    if oh == 0 || ow == 0 {
        return Ok(grad_input);
    }
    for n in 0..input_shape.batch() {
        for c in 0..input_shape.channels() {
            for h in 0..ih {
                for w in 0..iw {
                    let mut sum = 0.0f64;
                    for y in window::covering(h, ih, oh) {
                        for x in window::covering(w, iw, ow) {
                            let area = (window::window(y, oh, ih).len()
                                * window::window(x, ow, iw).len())
                                as f64;
                            let g = grad_output[grad_output_shape.offset(layout, n, c, y, x)];
                            sum += g.to_f64() / area;
                        }
                    }
                    grad_input[input_shape.offset(layout, n, c, h, w)] = T::from_f64(sum);
                }
            }
        }
    }
    Ok(grad_input)
}

/// A grad_output's shape must be the input's with H and W replaced (same rank, N and C).
pub(crate) fn check_grad_output_shape(grad_output: &Shape, input: &Shape) -> Result<()> {
    let same_rank = grad_output.rank() == input.rank();
    if !same_rank
        || grad_output.batch() != input.batch()
        || grad_output.channels() != input.channels()
    {
        let expected = input.with_hw(grad_output.height(), grad_output.width())?;
        return Err(Error::ShapeMismatch {
            op: "adaptive_avg_pool2d_backward()",
            what: "grad_output",
            expected: expected.dims().to_vec(),
            got: grad_output.dims().to_vec(),
        });
    }
    Ok(())
}

/// A host buffer of `shape`'s element count, zero-filled, or [`Error::HostAllocation`] where the
/// allocator refuses it (instead of aborting the process).
pub(crate) fn host_buffer<T: Element>(shape: &Shape) -> Result<Vec<T>> {
    let mut buffer = Vec::new();
    if buffer.try_reserve_exact(shape.numel()).is_err() {
        return Err(Error::HostAllocation {
            shape: shape.dims().to_vec(),
            dtype: T::DTYPE,
            bytes: shape.numel() as u128 * std::mem::size_of::<T>() as u128,
        });
    }
    buffer.resize(shape.numel(), T::default());
    Ok(buffer)
}

pub(crate) fn check_len(len: usize, shape: &Shape) -> Result<()> {
    if len != shape.numel() {
        return Err(Error::BufferLength {
            shape: shape.dims().to_vec(),
            expected: shape.numel(),
            got: len,
        });
    }
    Ok(())
}
