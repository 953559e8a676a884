//! The CUDA path: loads the embedded PTX once per context and executes launch plans with
//! cudarc.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaModule, CudaStream, DevicePtr, DevicePtrMut, DriverError,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::element::Element;
use crate::error::{cuda, Error, Result};
use crate::plan::{Buffer, DeviceLimits, KernelArg, LaunchPlan, Step};
use crate::ptx;

/// The kernels of one CUDA context: every module loaded once, functions looked up on first use.
pub(crate) struct ContextKernels {
    ctx: Arc<CudaContext>,
    limits: DeviceLimits,
    modules: Vec<(&'static str, Arc<CudaModule>)>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

/// Every context whose kernels were loaded. An entry holds its context alive: the kernels of a
/// context stay loaded for the life of the process (see [`crate::release_kernels`]).
static REGISTRY: Mutex<Vec<Arc<ContextKernels>>> = Mutex::new(Vec::new());

/// The kernels for `ctx`, loading them on first use.
pub(crate) fn kernels(ctx: &Arc<CudaContext>) -> Result<Arc<ContextKernels>> {
    if let Some(reason) = ptx::not_built_reason() {
        return Err(Error::KernelsNotBuilt { reason });
    }
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = registry.iter().find(|k| k.ctx.cu_ctx() == ctx.cu_ctx()) {
        return Ok(found.clone());
    }
    let loaded = Arc::new(load(ctx)?);
    registry.push(loaded.clone());
    Ok(loaded)
}

/// Drops the kernels loaded for `ctx` (they are reloaded on next use). Returns whether any were.
pub(crate) fn release(ctx: &CudaContext) -> bool {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let before = registry.len();
    registry.retain(|k| k.ctx.cu_ctx() != ctx.cu_ctx());
    registry.len() != before
}

fn load(ctx: &Arc<CudaContext>) -> Result<ContextKernels> {
    let (major, minor) = ctx
        .compute_capability()
        .map_err(cuda("querying the device's compute capability"))?;
    let (major, minor) = (major.max(0) as u32, minor.max(0) as u32);
    let cc = major * 10 + minor;
    let Some(arch) = ptx::select_arch(cc) else {
        let lowest = ptx::archs().first().copied().unwrap_or(0);
        return Err(Error::UnsupportedDevice {
            ordinal: ctx.ordinal(),
            major,
            minor,
            lowest_major: lowest / 10,
            lowest_minor: lowest % 10,
        });
    };
    let multiprocessors = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(cuda("querying the device's multiprocessor count"))?;
    let mut modules = Vec::new();
    for module in ptx::modules() {
        let Some(src) = ptx::get(module, arch) else {
            continue;
        };
        let loaded = ctx
            .load_module(Ptx::from_src(src))
            .map_err(|e| load_error(e, module, arch))?;
        modules.push((module, loaded));
    }
    Ok(ContextKernels {
        ctx: ctx.clone(),
        limits: DeviceLimits {
            multiprocessors: multiprocessors.max(1) as u32,
            compute_capability: cc,
        },
        modules,
        functions: Mutex::new(HashMap::new()),
    })
}

fn load_error(e: DriverError, module: &str, arch: u32) -> Error {
    if e.0 == sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
        let mut version = 0;
        // SAFETY: the out-pointer points at a live local; the driver library is loaded (the
        // failed call above came from it).
        let rc = unsafe { sys::cuDriverGetVersion(&mut version) };
        if rc == sys::CUresult::CUDA_SUCCESS {
            let (nvrtc_major, nvrtc_minor) = ptx::nvrtc_version().unwrap_or((0, 0));
            return Error::PtxTooNew {
                driver_major: version / 1000,
                driver_minor: (version % 1000) / 10,
                nvrtc_major,
                nvrtc_minor,
            };
        }
    }
    Error::Cuda {
        doing: format!("loading the PTX of kernels/{module}.cu for compute_{arch}"),
        source: e,
    }
}

impl ContextKernels {
    /// The planner's view of this device.
    pub(crate) fn limits(&self) -> DeviceLimits {
        self.limits
    }

    fn function(&self, module: &str, kernel: &str) -> Result<CudaFunction> {
        let mut functions = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = functions.get(kernel) {
            return Ok(f.clone());
        }
        let Some((_, loaded)) = self.modules.iter().find(|(m, _)| *m == module) else {
            return Err(Error::Cuda {
                doing: format!("finding module {module} for kernel {kernel}"),
                source: DriverError(sys::CUresult::CUDA_ERROR_NOT_FOUND),
            });
        };
        let f = loaded
            .load_function(kernel)
            .map_err(cuda(format!("loading kernel {kernel}")))?;
        functions.insert(kernel.to_string(), f.clone());
        Ok(f)
    }

    /// Queues `plan` on `stream`, reading `src` and writing `dst`.
    ///
    /// The caller guarantees that the plan was made for buffers of exactly `src.len()` and
    /// `dst.len()` elements (the shapes the plan was built from), which is what makes each
    /// launch's memory accesses in bounds.
    pub(crate) fn execute<T: Element, S: DevicePtr<T>, D: DevicePtrMut<T>>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &LaunchPlan,
        src: &S,
        dst: &mut D,
    ) -> Result<()> {
        for step in &plan.steps {
            match step {
                Step::ZeroDst => stream
                    .memset_zeros(dst)
                    .map_err(cuda("zeroing the destination buffer"))?,
                Step::Launch(launch) => {
                    let func = self.function(launch.module, &launch.kernel)?;
                    let (src_ptr, _src_sync) = src.device_ptr(stream);
                    let (dst_ptr, _dst_sync) = dst.device_ptr_mut(stream);
                    let values: Vec<u64> = launch
                        .args
                        .iter()
                        .map(|arg| match *arg {
                            KernelArg::Pointer(Buffer::Src) => src_ptr,
                            KernelArg::Pointer(Buffer::Dst) => dst_ptr,
                            KernelArg::U64(v) => v,
                        })
                        .collect();
                    let mut builder = stream.launch_builder(&func);
                    for value in &values {
                        builder.arg(value);
                    }
                    let cfg = LaunchConfig {
                        grid_dim: (launch.grid[0], launch.grid[1], launch.grid[2]),
                        block_dim: (launch.block[0], launch.block[1], launch.block[2]),
                        shared_mem_bytes: launch.shared_bytes,
                    };
                    // SAFETY: every kernel of the crate takes `(const T*, T*, u64 x 6)`
                    // (kernels/*.cu, documented in plan.rs) and the plan lists exactly those
                    // eight 8-byte values in that order, with pointers of element type T (this
                    // function's T is the dtype the plan's kernel name was built from, in
                    // `AdaptiveAvgPool2d::{forward_into, backward_into}`). Those functions
                    // checked that `src` and `dst` hold exactly the element counts of the shapes
                    // passed to the planner, and the kernels only touch offsets below those
                    // counts: the window formula keeps every window inside [0, in_len). `dst`
                    // is borrowed mutably, so nothing else writes it while the launch is queued;
                    // the sync guards order the launch after earlier work on both buffers.
                    unsafe { builder.launch(cfg) }
                        .map_err(cuda(format!("launching kernel {}", launch.kernel)))?;
                }
            }
        }
        Ok(())
    }
}
