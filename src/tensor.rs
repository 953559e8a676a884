//! The GPU tensor type: a device buffer with a shape and a layout.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut,
};

use crate::element::Element;
use crate::error::{cuda, Error, Result};
use crate::reference::{check_len, host_buffer};
use crate::shape::{Layout, Shape};

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for cudarc::driver::CudaSlice<T> {}
    impl<T> Sealed for cudarc::driver::CudaView<'_, T> {}
    impl<T> Sealed for cudarc::driver::CudaViewMut<'_, T> {}
}

/// Device memory a tensor can read: cudarc's [`CudaSlice`], [`CudaView`] and [`CudaViewMut`].
///
/// Sealed: the kernels trust the length and pointer these report, so only cudarc's own buffer
/// types (whose lengths are those of real allocations) are accepted.
pub trait DeviceStorage<T>: DevicePtr<T> + sealed::Sealed {}
impl<T> DeviceStorage<T> for CudaSlice<T> {}
impl<T> DeviceStorage<T> for CudaView<'_, T> {}
impl<T> DeviceStorage<T> for CudaViewMut<'_, T> {}

/// Device memory a tensor can write: cudarc's [`CudaSlice`] and [`CudaViewMut`]. Sealed, as
/// [`DeviceStorage`].
pub trait DeviceStorageMut<T>: DeviceStorage<T> + DevicePtrMut<T> {}
impl<T> DeviceStorageMut<T> for CudaSlice<T> {}
impl<T> DeviceStorageMut<T> for CudaViewMut<'_, T> {}

/// A 3-D or 4-D tensor on a CUDA device: storage `S` with a [`Shape`] and a [`Layout`].
///
/// `S` is one of cudarc's buffer types, so the same type serves owned memory and views of
/// memory the caller already holds (candle's, or their own):
/// - [`DeviceTensor<T>`] owns a [`CudaSlice<T>`];
/// - [`TensorView<T>`] borrows a [`CudaView<T>`] (read-only: inputs, grad_outputs);
/// - [`TensorViewMut<T>`] borrows a [`CudaViewMut<T>`] (outputs written in place).
///
/// The storage's length always equals the shape's element count, and nothing can change it
/// while the tensor exists: the storage is handed out as `&S` or as a fresh view, never as
/// `&mut S` (which would let safe code swap in a shorter buffer):
///
/// ```compile_fail,E0614
/// # use adaptive_pool::{DeviceTensor, Layout};
/// # fn f(stream: &std::sync::Arc<cudarc::driver::CudaStream>) -> Result<(), Box<dyn std::error::Error>> {
/// let mut t = DeviceTensor::<f32>::zeros(stream, &[1, 4, 4], Layout::Nchw)?;
/// // Does not compile: `storage_mut` gives a view of the tensor's memory, not the storage.
/// *t.storage_mut() = stream.alloc_zeros::<f32>(1)?;
/// # Ok(()) }
/// ```
///
/// An empty tensor (zero elements) that this crate creates holds no device memory at all, only
/// the stream it belongs to: [`Tensor::storage`] is then `None`.
#[derive(Debug)]
pub struct Tensor<S> {
    /// Declared before `storage`, so it is dropped first: see `BindOnDrop`.
    _owner: BindOnDrop,
    storage: Storage<S>,
    shape: Shape,
    layout: Layout,
}

/// Makes the context of a tensor's memory current on the dropping thread before the memory is
/// freed. cudarc frees a `CudaSlice` with `cuMemFreeAsync` on its stream without binding the
/// context first; for a legacy default stream (a null handle) the driver then resolves the
/// stream in whatever context is current, so dropping a tensor of device 0 while device 1's
/// context is current would queue the free on device 1's stream, unordered with the copies and
/// kernels still queued on device 0's. `None` for views, which free nothing.
#[derive(Debug)]
struct BindOnDrop(Option<Arc<CudaContext>>);

impl BindOnDrop {
    fn of(stream: &Arc<CudaStream>) -> BindOnDrop {
        BindOnDrop(Some(stream.context().clone()))
    }
}

impl Drop for BindOnDrop {
    fn drop(&mut self) {
        if let Some(ctx) = &self.0 {
            // A failure is recorded in the context by cudarc and surfaces at its next checked
            // call; a drop cannot return it.
            let _ = ctx.bind_to_thread();
        }
    }
}

/// Where a tensor's elements live.
#[derive(Debug)]
enum Storage<S> {
    /// Device memory of exactly the shape's element count.
    Device(S),
    /// No memory: a tensor of zero elements made by this crate, with the stream (and so the
    /// context) it was made on.
    Empty(Arc<CudaStream>),
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
        S: DeviceStorage<T>,
    {
        let shape = Shape::new(dims)?;
        check_len(storage.len(), &shape)?;
        Ok(Tensor {
            _owner: BindOnDrop::of(storage.stream()),
            storage: Storage::Device(storage),
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

    /// The device storage, or `None` for an empty tensor this crate created without memory.
    pub fn storage(&self) -> Option<&S> {
        match &self.storage {
            Storage::Device(s) => Some(s),
            Storage::Empty(_) => None,
        }
    }

    /// Gives the storage back (`None` for an empty tensor this crate created without memory).
    pub fn into_storage(self) -> Option<S> {
        match self.storage {
            Storage::Device(s) => Some(s),
            Storage::Empty(_) => None,
        }
    }

    /// The stream the tensor's memory was allocated on (or, for an empty tensor without
    /// memory, the stream it was made on); its context is the tensor's device.
    pub fn stream<T>(&self) -> &Arc<CudaStream>
    where
        S: DeviceStorage<T>,
    {
        match &self.storage {
            Storage::Device(s) => s.stream(),
            Storage::Empty(stream) => stream,
        }
    }

    /// The storage for a kernel to read, after re-checking that its length is the shape's
    /// element count: `None` only for an empty tensor without memory.
    pub(crate) fn checked_storage<T>(&self) -> Result<Option<&S>>
    where
        S: DeviceStorage<T>,
    {
        match &self.storage {
            Storage::Device(s) => {
                check_len(s.len(), &self.shape)?;
                Ok(Some(s))
            }
            Storage::Empty(_) => {
                check_len(0, &self.shape)?;
                Ok(None)
            }
        }
    }

    /// The storage for a kernel to write, after the same check as [`Tensor::checked_storage`].
    pub(crate) fn checked_storage_mut<T>(&mut self) -> Result<Option<&mut S>>
    where
        S: DeviceStorageMut<T>,
    {
        match &mut self.storage {
            Storage::Device(s) => {
                check_len(s.len(), &self.shape)?;
                Ok(Some(s))
            }
            Storage::Empty(_) => {
                check_len(0, &self.shape)?;
                Ok(None)
            }
        }
    }
}

impl<T: Element> DeviceTensor<T> {
    /// Copies host `data` (in `layout`'s memory order) to a new tensor, queued on `stream`.
    /// An empty tensor allocates no device memory.
    pub fn from_host(
        stream: &Arc<CudaStream>,
        data: &[T],
        dims: &[usize],
        layout: Layout,
    ) -> Result<Self> {
        let shape = Shape::new(dims)?;
        check_len(data.len(), &shape)?;
        let storage = if data.is_empty() {
            Storage::Empty(stream.clone())
        } else {
            Storage::Device(
                stream
                    .clone_htod(data)
                    .map_err(cuda("copying a tensor to the device"))?,
            )
        };
        Ok(Tensor {
            _owner: BindOnDrop::of(stream),
            storage,
            shape,
            layout,
        })
    }

    /// A new zero-filled tensor, queued on `stream`. An empty tensor allocates no device
    /// memory.
    pub fn zeros(stream: &Arc<CudaStream>, dims: &[usize], layout: Layout) -> Result<Self> {
        let shape = Shape::new(dims)?;
        let storage = if shape.numel() == 0 {
            Storage::Empty(stream.clone())
        } else {
            Storage::Device(
                stream
                    .alloc_zeros(shape.numel())
                    .map_err(cuda("allocating a tensor"))?,
            )
        };
        Ok(Tensor {
            _owner: BindOnDrop::of(stream),
            storage,
            shape,
            layout,
        })
    }

    /// Copies the tensor back to the host, in its layout's memory order: queues the copy on
    /// `stream` after the work already queued there (and after any other stream's writes to
    /// the tensor), then waits for `stream` to finish. This is the call that waits.
    ///
    /// Errors if the tensor lives in another context than `stream`.
    pub fn to_host(&self, stream: &Arc<CudaStream>) -> Result<Vec<T>> {
        check_context(stream, "tensor", self.stream())?;
        let mut host = host_buffer::<T>(&self.shape)?;
        if let Some(storage) = self.checked_storage()? {
            stream
                .memcpy_dtoh(storage, &mut host)
                .map_err(cuda("copying a tensor to the host"))?;
        }
        stream.synchronize().map_err(cuda(
            "waiting for the stream after copying a tensor to the host",
        ))?;
        Ok(host)
    }

    /// A read-only view of the whole tensor.
    pub fn view(&self) -> TensorView<'_, T> {
        Tensor {
            _owner: BindOnDrop(None),
            storage: match &self.storage {
                Storage::Device(s) => Storage::Device(s.as_view()),
                Storage::Empty(stream) => Storage::Empty(stream.clone()),
            },
            shape: self.shape,
            layout: self.layout,
        }
    }

    /// A writable view of the whole tensor.
    pub fn view_mut(&mut self) -> TensorViewMut<'_, T> {
        Tensor {
            _owner: BindOnDrop(None),
            storage: match &mut self.storage {
                Storage::Device(s) => Storage::Device(s.as_view_mut()),
                Storage::Empty(stream) => Storage::Empty(stream.clone()),
            },
            shape: self.shape,
            layout: self.layout,
        }
    }

    /// The device memory as a writable view (for cudarc's copies and memsets), or `None` for
    /// an empty tensor. The view has the tensor's length and cannot replace its storage.
    ///
    /// ```no_run
    /// # use adaptive_pool::{DeviceTensor, Layout};
    /// # fn f(stream: &std::sync::Arc<cudarc::driver::CudaStream>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut t = DeviceTensor::<f32>::zeros(stream, &[1, 2, 2], Layout::Nchw)?;
    /// if let Some(mut memory) = t.storage_mut() {
    ///     stream.memcpy_htod(&[1.0f32, 2.0, 3.0, 4.0], &mut memory)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn storage_mut(&mut self) -> Option<CudaViewMut<'_, T>> {
        match &mut self.storage {
            Storage::Device(s) => Some(s.as_view_mut()),
            Storage::Empty(_) => None,
        }
    }
}

impl<T: Element> TensorViewMut<'_, T> {
    /// The viewed memory as a writable view (for cudarc's copies and memsets), or `None` for an
    /// empty tensor. The view has the tensor's length and cannot replace its storage.
    pub fn storage_mut(&mut self) -> Option<CudaViewMut<'_, T>> {
        match &mut self.storage {
            Storage::Device(s) => Some(s.slice_mut(..)),
            Storage::Empty(_) => None,
        }
    }
}

/// A tensor of `shape` (already checked) for a kernel to fill: `alloc` is called only for a
/// shape with elements, so an empty result holds no device memory.
pub(crate) fn output_tensor<T>(
    stream: &Arc<CudaStream>,
    shape: Shape,
    layout: Layout,
    alloc: impl FnOnce(usize) -> Result<CudaSlice<T>>,
) -> Result<Tensor<CudaSlice<T>>> {
    let storage = if shape.numel() == 0 {
        Storage::Empty(stream.clone())
    } else {
        Storage::Device(alloc(shape.numel())?)
    };
    Ok(Tensor {
        _owner: BindOnDrop::of(stream),
        storage,
        shape,
        layout,
    })
}

/// Checks that a tensor whose memory belongs to `theirs` can be used on `stream`: both are in
/// the same CUDA context.
pub(crate) fn check_context(
    stream: &Arc<CudaStream>,
    what: &'static str,
    theirs: &Arc<CudaStream>,
) -> Result<()> {
    let (ours, theirs) = (stream.context(), theirs.context());
    if theirs.cu_ctx() != ours.cu_ctx() {
        return Err(Error::ContextMismatch {
            what,
            expected: ours.ordinal(),
            got: theirs.ordinal(),
        });
    }
    Ok(())
}
