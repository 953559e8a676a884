//! The `AdaptiveAvgPool2d` module.

use std::fmt;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::cuda;
use crate::element::Element;
use crate::error::{cuda as cuda_err, Error, Result};
use crate::plan::{self, BackwardAlgorithm};
use crate::reference::check_grad_output_shape;
use crate::shape::{check_pool_input, OutputSize, Shape};
use crate::tensor::{
    check_context, output_tensor, DeviceStorage, DeviceStorageMut, DeviceTensor, Tensor,
};

/// PyTorch's `torch.nn.AdaptiveAvgPool2d` on a CUDA device.
///
/// Plain data (`Send + Sync`, cheap to copy): share one between threads, streams and devices.
/// The kernels are loaded once per CUDA context, on first use, and shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptiveAvgPool2d {
    output_size: OutputSize,
    backward_algorithm: BackwardAlgorithm,
}

impl AdaptiveAvgPool2d {
    /// A pool to `output_size`: a `usize` (square), a `(usize, usize)`, or an
    /// `(Option<usize>, Option<usize>)` whose `None` entries keep that input dimension.
    pub fn new(output_size: impl Into<OutputSize>) -> Self {
        AdaptiveAvgPool2d {
            output_size: output_size.into(),
            backward_algorithm: BackwardAlgorithm::default(),
        }
    }

    /// The same pool with another backward algorithm.
    pub fn with_backward_algorithm(self, algorithm: BackwardAlgorithm) -> Self {
        AdaptiveAvgPool2d {
            backward_algorithm: algorithm,
            ..self
        }
    }

    /// The output size as given.
    pub fn output_size(&self) -> OutputSize {
        self.output_size
    }

    /// The backward algorithm.
    pub fn backward_algorithm(&self) -> BackwardAlgorithm {
        self.backward_algorithm
    }

    /// The output shape for an input of PyTorch-ordered `input_dims`, after PyTorch's checks:
    /// rank 3 or 4, H and W (and C of a 4-D input) non-zero.
    pub fn output_shape(&self, input_dims: &[usize]) -> Result<Shape> {
        let input = Shape::new(input_dims)?;
        check_pool_input("adaptive_avg_pool2d()", &input)?;
        self.output_size.resolve(&input)
    }

    /// Forward pass into a new tensor of the input's layout and rank, queued on `stream`.
    ///
    /// Shapes: `(N, C, H, W)` or `(C, H, W)` in, `(N, C, oH, oW)` or `(C, oH, oW)` out; any
    /// dtype of [`Element`]; either layout. Nothing waits for the GPU. An empty output holds no
    /// device memory.
    pub fn forward<T: Element, S: DeviceStorage<T>>(
        &self,
        stream: &Arc<CudaStream>,
        input: &Tensor<S>,
    ) -> Result<DeviceTensor<T>> {
        let out_shape = self.output_shape(input.dims())?;
        check_context(stream, "input", input.stream())?;
        let mut output = output_tensor(stream, out_shape, input.layout(), |n| alloc(stream, n))?;
        self.forward_into(stream, input, &mut output)?;
        Ok(output)
    }

    /// Forward pass into `output`, which must have the output shape and the input's layout.
    /// Allocates nothing and never synchronizes, so it can be captured in a CUDA graph.
    pub fn forward_into<T: Element, S: DeviceStorage<T>, D: DeviceStorageMut<T>>(
        &self,
        stream: &Arc<CudaStream>,
        input: &Tensor<S>,
        output: &mut Tensor<D>,
    ) -> Result<()> {
        const OP: &str = "adaptive_avg_pool2d()";
        let expected = self.output_shape(input.dims())?;
        check_output(OP, "output", &expected, input, output)?;
        check_context(stream, "input", input.stream())?;
        check_context(stream, "output", output.stream())?;
        // Re-checked here, right before the launch: the plan below is made for exactly these
        // lengths.
        let src = input.checked_storage()?;
        let Some(dst) = output.checked_storage_mut()? else {
            return Ok(()); // an empty output: nothing to compute
        };
        let kernels = cuda::kernels(stream.context())?;
        let limits = kernels.limits();
        let plan = plan::forward(input.shape(), &expected, input.layout(), T::DTYPE, &limits);
        kernels.execute(stream, &plan, src, dst)
    }

    /// Backward pass: the gradient with respect to an input of PyTorch-ordered `input_dims`,
    /// given `grad_output` (the forward's output shape for that input), in a new tensor of
    /// grad_output's layout, queued on `stream`. An empty grad_input holds no device memory.
    pub fn backward<T: Element, S: DeviceStorage<T>>(
        &self,
        stream: &Arc<CudaStream>,
        grad_output: &Tensor<S>,
        input_dims: &[usize],
    ) -> Result<DeviceTensor<T>> {
        const OP: &str = "adaptive_avg_pool2d_backward()";
        let input_shape = Shape::new(input_dims)?;
        check_pool_input(OP, &input_shape)?;
        check_grad_output(self.output_size, OP, grad_output.shape(), &input_shape)?;
        check_context(stream, "grad_output", grad_output.stream())?;
        let mut grad_input = output_tensor(stream, input_shape, grad_output.layout(), |n| {
            alloc(stream, n)
        })?;
        self.backward_into(stream, grad_output, &mut grad_input)?;
        Ok(grad_input)
    }

    /// Backward pass into `grad_input`, whose shape is the forward's input shape and whose
    /// layout is grad_output's. Every element of `grad_input` is overwritten. Allocates nothing
    /// and never synchronizes.
    pub fn backward_into<T: Element, S: DeviceStorage<T>, D: DeviceStorageMut<T>>(
        &self,
        stream: &Arc<CudaStream>,
        grad_output: &Tensor<S>,
        grad_input: &mut Tensor<D>,
    ) -> Result<()> {
        const OP: &str = "adaptive_avg_pool2d_backward()";
        let input_shape = *grad_input.shape();
        check_pool_input(OP, &input_shape)?;
        let expected = check_grad_output(self.output_size, OP, grad_output.shape(), &input_shape)?;
        if grad_input.layout() != grad_output.layout() {
            return Err(Error::LayoutMismatch {
                op: OP,
                what: "grad_input",
                expected: grad_output.layout(),
                got: grad_input.layout(),
            });
        }
        check_context(stream, "grad_output", grad_output.stream())?;
        check_context(stream, "grad_input", grad_input.stream())?;
        // Re-checked here, right before the launch: the plan below is made for exactly these
        // lengths.
        let src = grad_output.checked_storage()?;
        let Some(dst) = grad_input.checked_storage_mut()? else {
            return Ok(()); // an empty grad_input: nothing to compute
        };
        let kernels = cuda::kernels(stream.context())?;
        let plan = plan::backward(
            &expected,
            &input_shape,
            grad_output.layout(),
            T::DTYPE,
            self.backward_algorithm,
            &kernels.limits(),
        );
        kernels.execute(stream, &plan, src, dst)
    }
}

impl fmt::Display for AdaptiveAvgPool2d {
    /// As PyTorch prints the module: `AdaptiveAvgPool2d(output_size=(7, 7))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdaptiveAvgPool2d(output_size={})", self.output_size)
    }
}

/// Checks that `output` has the expected shape and the input's layout.
fn check_output<S, D>(
    op: &'static str,
    what: &'static str,
    expected: &Shape,
    input: &Tensor<S>,
    output: &Tensor<D>,
) -> Result<()> {
    if output.shape() != expected {
        return Err(Error::ShapeMismatch {
            op,
            what,
            expected: expected.dims().to_vec(),
            got: output.dims().to_vec(),
        });
    }
    if output.layout() != input.layout() {
        return Err(Error::LayoutMismatch {
            op,
            what,
            expected: input.layout(),
            got: output.layout(),
        });
    }
    Ok(())
}

/// Checks a grad_output's shape against an input shape: the input's rank, N and C, with the
/// output size's H and W. Returns that expected shape.
fn check_grad_output(
    output_size: OutputSize,
    op: &'static str,
    grad_output: &Shape,
    input: &Shape,
) -> Result<Shape> {
    check_grad_output_shape(grad_output, input)?;
    let expected = output_size.resolve(input)?;
    if grad_output != &expected {
        return Err(Error::ShapeMismatch {
            op,
            what: "grad_output",
            expected: expected.dims().to_vec(),
            got: grad_output.dims().to_vec(),
        });
    }
    Ok(expected)
}

/// An uninitialised device buffer of `len` (non-zero) elements; every plan writes all of it.
fn alloc<T: Element>(stream: &Arc<CudaStream>, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the memory is uninitialised until the plan runs; every caller hands the buffer
    // straight to `forward_into` / `backward_into`, whose plans write every element (the
    // forward kernel one per output element, the backward after zeroing it) before anything
    // can read it, and on error the buffer is dropped unread.
    unsafe { stream.alloc::<T>(len) }.map_err(cuda_err("allocating an output tensor"))
}
