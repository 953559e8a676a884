//! The GPU tensor type: a device buffer with a shape and a layout.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceSlice};

use crate::element::Element;
use crate::error::{cuda, Result};
use crate::reference::check_len;
use crate::shape::{Layout, Shape};

/// A 3-D or 4-D tensor on a CUDA device: storage `S` with a [`Shape`] and a [`Layout`].
///
/// `S` is one of cudarc's buffer types, so the same type serves owned memory and views of
/// memory the caller already holds (candle's, or their own):
/// - [`DeviceTensor<T>`] owns a [`CudaSlice<T>`];
/// - [`TensorView<T>`] borrows a [`CudaView<T>`] (read-only: inputs, grad_outputs);
/// - [`TensorViewMut<T>`] borrows a [`CudaViewMut<T>`] (outputs written in place).
///
/// The storage's length always equals the shape's element count.
#[derive(Debug)]
pub struct Tensor<S> {
    storage: S,
    shape: Shape,
    layout: Layout,
}

/// A tensor owning its device memory.
pub type DeviceTensor<T> = Tensor<CudaSlice<T>>;
/// A read-only view of device memory as a tensor.
pub type TensorView<'a, T> = Tensor<CudaView<'a, T>>;
/// A writable view of device memory as a tensor.
pub type TensorViewMut<'a, T> = Tensor<CudaViewMut<'a, T>>;

impl<S> Tensor<S> {
    /// Wraps device storage as a tensor of PyTorch-ordered `dims` (3 or 4 of them) in `layout`.
    /// Errors if the rank is not 3 or 4, the element count overflows, or the storage's length
    /// is not the shape's element count.
    pub fn new<T>(storage: S, dims: &[usize], layout: Layout) -> Result<Self>
    where
        S: DeviceSlice<T>,
    {
        let shape = Shape::new(dims)?;
        check_len(storage.len(), &shape)?;
        Ok(Tensor {
            storage,
            shape,
            layout,
        })
    }

    /// The logical shape, in PyTorch's order.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions, in PyTorch's order.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The memory layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The device storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The device storage, writable. Its length cannot change, so the tensor stays valid.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }
}

impl<T: Element> DeviceTensor<T> {
    /// Copies host `data` (in `layout`'s memory order) to a new tensor, queued on `stream`.
    pub fn from_host(
        stream: &Arc<CudaStream>,
        data: &[T],
        dims: &[usize],
        layout: Layout,
    ) -> Result<Self> {
        let shape = Shape::new(dims)?;
        check_len(data.len(), &shape)?;
        let storage = if data.is_empty() {
            stream
                .null()
                .map_err(cuda("creating an empty device buffer"))?
        } else {
            stream
                .clone_htod(data)
                .map_err(cuda("copying a tensor to the device"))?
        };
        Ok(Tensor {
            storage,
            shape,
            layout,
        })
    }

    /// A new zero-filled tensor, queued on `stream`.
    pub fn zeros(stream: &Arc<CudaStream>, dims: &[usize], layout: Layout) -> Result<Self> {
        let shape = Shape::new(dims)?;
        let storage = if shape.numel() == 0 {
            stream
                .null()
                .map_err(cuda("creating an empty device buffer"))?
        } else {
            stream
                .alloc_zeros(shape.numel())
                .map_err(cuda("allocating a tensor"))?
        };
        Ok(Tensor {
            storage,
            shape,
            layout,
        })
    }

    /// Copies the tensor back to the host, in its layout's memory order. Waits for `stream`.
    pub fn to_host(&self, stream: &Arc<CudaStream>) -> Result<Vec<T>> {
        if self.shape.numel() == 0 {
            return Ok(Vec::new());
        }
        stream
            .clone_dtoh(&self.storage)
            .map_err(cuda("copying a tensor to the host"))
    }

    /// A read-only view of the whole tensor.
    pub fn view(&self) -> TensorView<'_, T> {
        Tensor {
            storage: self.storage.as_view(),
            shape: self.shape,
            layout: self.layout,
        }
    }

    /// A writable view of the whole tensor.
    pub fn view_mut(&mut self) -> TensorViewMut<'_, T> {
        Tensor {
            storage: self.storage.as_view_mut(),
            shape: self.shape,
            layout: self.layout,
        }
    }
}

/// Builds a tensor from parts already checked by the caller.
pub(crate) fn from_checked<S>(storage: S, shape: Shape, layout: Layout) -> Tensor<S> {
    Tensor {
        storage,
        shape,
        layout,
    }
}
