//! The CUDA path: loads the embedded PTX per context, one module at a time on first use, and
//! executes launch plans with cudarc.
//!
//! Locking: the process-wide [`REGISTRY`] lock is held only to find or insert a context's
//! entry, never across a driver call. Each context's modules are loaded on first use, each under
//! its own lock, so a module's JIT compilation (which can take seconds on a real driver) holds
//! up only the threads that need that very module in that very context; work on other devices,
//! other contexts, and other modules of the same context goes on. Only the modules the launch
//! plans name are ever loaded (test-only modules such as `window_table` never are).

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

/// The kernels of one CUDA context: modules loaded on first use, functions looked up on first
/// use.
pub(crate) struct ContextKernels {
    ctx: Arc<CudaContext>,
    limits: DeviceLimits,
    /// The PTX architecture loaded for this device.
    arch: u32,
    /// One slot per module name; the map's lock is held only to find or insert a slot.
    modules: Mutex<HashMap<&'static str, Arc<ModuleSlot>>>,
    /// Functions already looked up, by kernel name; the lock is never held across a driver
    /// call.
    functions: Mutex<HashMap<String, CudaFunction>>,
}

/// One module of one context. Its lock is held while that module is JIT-compiled.
#[derive(Default)]
struct ModuleSlot {
    loaded: Mutex<Option<Arc<CudaModule>>>,
}

/// Every context whose kernels were used. An entry holds its context alive: the kernels of a
/// context stay loaded for the life of the process (see [`crate::release_kernels`]).
static REGISTRY: Mutex<Vec<Arc<ContextKernels>>> = Mutex::new(Vec::new());

/// The kernels for `ctx`: its entry in the registry, made on first use (device queries only;
/// modules load later, when a plan needs them).
pub(crate) fn kernels(ctx: &Arc<CudaContext>) -> Result<Arc<ContextKernels>> {
    if let Some(reason) = ptx::not_built_reason() {
        return Err(Error::KernelsNotBuilt { reason });
    }
    if let Some(found) = find(ctx) {
        return Ok(found);
    }
    // Made without the registry lock: the queries are driver calls.
    let fresh = Arc::new(ContextKernels::new(ctx)?);
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = registry.iter().find(|k| k.ctx.cu_ctx() == ctx.cu_ctx()) {
        return Ok(found.clone()); // another thread got there first
    }
    registry.push(fresh.clone());
    Ok(fresh)
}

fn find(ctx: &CudaContext) -> Option<Arc<ContextKernels>> {
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    registry
        .iter()
        .find(|k| k.ctx.cu_ctx() == ctx.cu_ctx())
        .cloned()
}

/// Drops the kernels loaded for `ctx` (they are reloaded on next use). Returns whether any were.
pub(crate) fn release(ctx: &CudaContext) -> bool {
    let removed: Vec<Arc<ContextKernels>> = {
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let (removed, kept) = std::mem::take(&mut *registry)
            .into_iter()
            .partition(|k| k.ctx.cu_ctx() == ctx.cu_ctx());
        *registry = kept;
        removed
    };
    // Dropped here, outside the lock: unloading modules calls the driver.
    !removed.is_empty()
}

impl ContextKernels {
    fn new(ctx: &Arc<CudaContext>) -> Result<ContextKernels> {
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
        Ok(ContextKernels {
            ctx: ctx.clone(),
            limits: DeviceLimits {
                multiprocessors: multiprocessors.max(1) as u32,
                compute_capability: cc,
            },
            arch,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The planner's view of this device.
    pub(crate) fn limits(&self) -> DeviceLimits {
        self.limits
    }

    /// `kernels/<module>.cu` loaded into this context, JIT-compiling it on first use.
    fn module(&self, module: &'static str) -> Result<Arc<CudaModule>> {
        let slot = {
            let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
            modules.entry(module).or_default().clone()
        };
        let mut loaded = slot.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = &*loaded {
            return Ok(m.clone());
        }
        let Some(src) = ptx::get(module, self.arch) else {
            return Err(Error::Cuda {
                doing: format!(
                    "finding the PTX of kernels/{module}.cu for compute_{}",
                    self.arch
                ),
                source: DriverError(sys::CUresult::CUDA_ERROR_NOT_FOUND),
            });
        };
        #[cfg(test)]
        tests::jit_hook(module);
        // `load_module` binds the context to this thread before cuModuleLoadData.
        let m = self
            .ctx
            .load_module(Ptx::from_src(src))
            .map_err(|e| load_error(e, module, self.arch))?;
        *loaded = Some(m.clone());
        Ok(m)
    }

    /// The modules loaded so far, sorted.
    #[cfg(test)]
    fn loaded_modules(&self) -> Vec<&'static str> {
        let modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<&'static str> = modules
            .iter()
            .filter(|(_, slot)| {
                slot.loaded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            })
            .map(|(name, _)| *name)
            .collect();
        names.sort_unstable();
        names
    }

    fn function(&self, module: &'static str, kernel: &str) -> Result<CudaFunction> {
        {
            let functions = self
                .functions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = functions.get(kernel) {
                return Ok(f.clone());
            }
        }
        let loaded = self.module(module)?;
        // cuModuleGetFunction works on the calling thread's current context, which need not be
        // this one (a thread that last used another device, or none).
        self.ctx.bind_to_thread().map_err(cuda(format!(
            "binding the context to look up kernel {kernel}"
        )))?;
        let f = loaded
            .load_function(kernel)
            .map_err(cuda(format!("loading kernel {kernel}")))?;
        let mut functions = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(functions.entry(kernel.to_string()).or_insert(f).clone())
    }

    /// Queues `plan` on `stream`, reading `src` (absent only for an empty source, which a plan
    /// with launches never has) and writing `dst`.
    ///
    /// The caller guarantees that the plan was made for buffers of exactly `src.len()` and
    /// `dst.len()` elements (the shapes the plan was built from), which is what makes each
    /// launch's memory accesses in bounds.
    pub(crate) fn execute<T: Element, S: DevicePtr<T>, D: DevicePtrMut<T>>(
        &self,
        stream: &Arc<CudaStream>,
        plan: &LaunchPlan,
        src: Option<&S>,
        dst: &mut D,
    ) -> Result<()> {
        for step in &plan.steps {
            match step {
                Step::ZeroDst => stream
                    .memset_zeros(dst)
                    .map_err(cuda("zeroing the destination buffer"))?,
                Step::Launch(launch) => {
                    let Some(src) = src else {
                        return Err(Error::Cuda {
                            doing: format!(
                                "launching kernel {} without a source buffer",
                                launch.kernel
                            ),
                            source: DriverError(sys::CUresult::CUDA_ERROR_INVALID_VALUE),
                        });
                    };
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
                    // re-checked, just before calling this, that `src` and `dst` hold exactly
                    // the element counts of the shapes passed to the planner (their storage is
                    // one of cudarc's own buffer types, `DeviceStorage` being sealed, and a
                    // tensor never hands out `&mut` to it, so the lengths are real), and the
                    // kernels only touch offsets below those counts: the window formula keeps
                    // every window inside [0, in_len). `dst` is borrowed mutably, so nothing
                    // else writes it while the launch is queued; the sync guards order the
                    // launch after earlier work on both buffers.
                    unsafe { builder.launch(cfg) }
                        .map_err(cuda(format!("launching kernel {}", launch.kernel)))?;
                }
            }
        }
        Ok(())
    }
}

fn load_error(e: DriverError, module: &str, arch: u32) -> Error {
    if e.0 == sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
        let mut version = 0;
        // SAFETY: the out-pointer points at a live local; the driver library is loaded (the
        // failed call above came from it). cuDriverGetVersion needs no current context.
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

/// The loading rules, checked from inside the crate (they need to see which modules a context
/// loaded and to stretch a JIT compilation out). They need a CUDA device:
/// `cargo test --release --lib -- --include-ignored`.
#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::{plan, AdaptiveAvgPool2d, BackwardAlgorithm, DeviceTensor, Layout, Shape};

    type Hook = Arc<dyn Fn(&'static str) + Send + Sync>;

    /// Called with each module's name just before its JIT compilation, where one is installed.
    static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

    /// The tests below install hooks and release kernels: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    pub(super) fn jit_hook(module: &'static str) {
        let hook = HOOK.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(hook) = hook {
            hook(module);
        }
    }

    fn set_hook(hook: Option<Hook>) {
        *HOOK.lock().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    /// A time no JIT of these small modules comes near, on a real driver or the virtual one.
    const STALL: Duration = Duration::from_secs(60);

    fn data(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i % 13) as f32 - 6.5).collect()
    }

    /// A runtime call loads exactly the modules its plans launch from: never the test-only
    /// `window_table`, and not every module up front.
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn only_the_modules_a_plan_launches_from_are_loaded() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let ctx = CudaContext::new(0).expect("a CUDA device");
        crate::release_kernels(&ctx);
        let stream = ctx.default_stream();
        let dims = [2, 3, 10, 9];
        let x = DeviceTensor::from_host(&stream, &data(2 * 3 * 10 * 9), &dims, Layout::Nchw)
            .expect("upload");
        let pool =
            AdaptiveAvgPool2d::new((3, 4)).with_backward_algorithm(BackwardAlgorithm::Atomic);
        let y = pool.forward(&stream, &x).expect("forward");
        pool.backward(&stream, &y, &dims).expect("backward");
        stream.synchronize().expect("synchronize");

        let loaded = kernels(&ctx).expect("kernels").loaded_modules();
        let limits = kernels(&ctx).expect("kernels").limits();
        let input = Shape::new(&dims).expect("shape");
        let output = Shape::new(&[2, 3, 3, 4]).expect("shape");
        let mut planned: Vec<&'static str> = [
            plan::forward(&input, &output, Layout::Nchw, crate::DType::F32, &limits),
            plan::backward(
                &output,
                &input,
                Layout::Nchw,
                crate::DType::F32,
                BackwardAlgorithm::Atomic,
                &limits,
            ),
        ]
        .iter()
        .flat_map(|p| &p.steps)
        .filter_map(|s| match s {
            Step::Launch(l) => Some(l.module),
            Step::ZeroDst => None,
        })
        .collect();
        planned.sort_unstable();
        planned.dedup();
        assert!(
            !loaded.contains(&"window_table"),
            "the test-only module window_table was loaded: {loaded:?}"
        );
        assert_eq!(
            loaded, planned,
            "modules loaded vs modules the plans launch from"
        );
        crate::release_kernels(&ctx);
    }

    /// While one module is being JIT-compiled for a context, a call that needs another module
    /// of that context, or an already loaded one, goes ahead instead of waiting for it.
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn a_module_being_compiled_holds_up_no_other_work() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let ctx = CudaContext::new(0).expect("a CUDA device");
        crate::release_kernels(&ctx);
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let entered_tx = Mutex::new(entered_tx);
        let release_rx = Mutex::new(release_rx);
        set_hook(Some(Arc::new(move |module| {
            if module == "forward" {
                let _ = entered_tx.lock().map(|tx| tx.send(()));
                // Stretch this JIT out until the test says so (or STALL passes).
                let _ = release_rx.lock().map(|rx| rx.recv_timeout(STALL));
            }
        })));

        // Thread A: a forward whose plan launches from `forward` (an element-wise shape),
        // stalled inside that module's JIT.
        let slow = {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let stream = ctx.default_stream();
                let x = DeviceTensor::from_host(&stream, &data(50), &[2, 5, 5], Layout::Nchw)?;
                AdaptiveAvgPool2d::new(3)
                    .forward(&stream, &x)?
                    .to_host(&stream)
            })
        };
        entered_rx
            .recv_timeout(STALL)
            .expect("the forward never reached the JIT of module `forward`");

        // Thread B, meanwhile: a deterministic backward, from module `backward_gather`.
        let (done_tx, done_rx) = mpsc::channel();
        let quick = {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let stream = ctx.default_stream();
                let g = DeviceTensor::from_host(&stream, &data(18), &[2, 3, 3], Layout::Nchw)
                    .and_then(|g| AdaptiveAvgPool2d::new(3).backward(&stream, &g, &[2, 5, 5]))
                    .and_then(|gi| gi.to_host(&stream));
                let _ = done_tx.send(g);
            })
        };
        let waited = done_rx.recv_timeout(Duration::from_secs(20));
        let _ = release_tx.send(());
        set_hook(None);
        let forward = slow.join().expect("thread A");
        let _ = quick.join();
        crate::release_kernels(&ctx);
        let backward = waited.expect(
            "a backward on the same context waited for the JIT of an unrelated module: a lock \
             is held across module loading",
        );
        let grad = backward.expect("backward");
        assert_eq!(grad.len(), 50);
        assert_eq!(forward.expect("forward").len(), 18);
    }
}
