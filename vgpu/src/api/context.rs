//! Contexts: creation, the calling thread's current context, synchronisation.

use std::ffi::{c_int, c_uint};

use super::call;
use crate::abi::*;
use crate::report::{note, report};
use crate::state::{
    self, forget_current, handle, out, pop_current, push_current, set_current, Driver, Tag,
};

fn create(d: &mut Driver, pctx: *mut Handle, flags: c_uint, dev: CUdevice) -> Result<(), CUresult> {
    let pctx = out(pctx, "cuCtxCreate: pctx")?;
    d.device(dev)?;
    let ctx = d.create_context(dev, false, flags);
    push_current(ctx);
    // SAFETY: checked non-null by `out`; the caller passes a writable CUcontext.
    unsafe { pctx.write(handle(Tag::Context, ctx)) };
    Ok(())
}

/// `cuCtxCreate_v2`: a new (non-primary) context, pushed as the calling thread's current one.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxCreate_v2(
    pctx: *mut Handle,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    call("cuCtxCreate_v2", |d| create(d, pctx, flags, dev))
}

/// `cuCtxCreate_v3`: as [`cuCtxCreate_v2`]; execution affinity is not simulated.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxCreate_v3(
    pctx: *mut Handle,
    params: *mut std::ffi::c_void,
    num_params: c_int,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    call("cuCtxCreate_v3", |d| {
        if !params.is_null() && num_params > 0 {
            report("cuCtxCreate_v3: execution affinity parameters are not simulated");
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        create(d, pctx, flags, dev)
    })
}

/// `cuCtxCreate_v4`: as [`cuCtxCreate_v2`]; affinity and CUDA-in-graphics parameters are not
/// simulated.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`; `params` is null or points at a
/// `CUctxCreateParams`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxCreate_v4(
    pctx: *mut Handle,
    params: *const CUctxCreateParams,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    call("cuCtxCreate_v4", |d| {
        if !params.is_null() {
            // SAFETY: non-null; the caller passes a readable CUctxCreateParams.
            let p = unsafe { &*params };
            if !p.cig_params.is_null()
                || (!p.exec_affinity_params.is_null() && p.num_exec_affinity_params > 0)
            {
                report(
                    "cuCtxCreate_v4: affinity and CUDA-in-graphics parameters are not simulated",
                );
                return Err(CUDA_ERROR_NOT_SUPPORTED);
            }
        }
        create(d, pctx, flags, dev)
    })
}

fn destroy(d: &mut Driver, ctx: Handle) -> Result<(), CUresult> {
    let id = d.context(ctx)?;
    if d.contexts.get(&id).is_some_and(|c| c.primary) {
        note("cuCtxDestroy: a primary context is released with cuDevicePrimaryCtxRelease, not destroyed");
        return Err(CUDA_ERROR_INVALID_CONTEXT);
    }
    d.destroy_context(id);
    forget_current(id);
    Ok(())
}

/// `cuCtxDestroy_v2`: finishes the context's work and frees all it owns.
///
/// # Safety
/// None beyond the driver API's: `ctx` is a handle, checked.
#[no_mangle]
pub unsafe extern "C" fn cuCtxDestroy_v2(ctx: Handle) -> CUresult {
    call("cuCtxDestroy_v2", |d| destroy(d, ctx))
}

/// `cuCtxDestroy`: as [`cuCtxDestroy_v2`].
///
/// # Safety
/// None beyond the driver API's: `ctx` is a handle, checked.
#[no_mangle]
pub unsafe extern "C" fn cuCtxDestroy(ctx: Handle) -> CUresult {
    call("cuCtxDestroy", |d| destroy(d, ctx))
}

/// `cuCtxGetCurrent`: the calling thread's current context, or null.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut Handle) -> CUresult {
    call("cuCtxGetCurrent", |_| {
        let pctx = out(pctx, "cuCtxGetCurrent: pctx")?;
        let h = state::current_id().map_or(std::ptr::null_mut(), |c| handle(Tag::Context, c));
        // SAFETY: checked non-null by `out`; the caller passes a writable CUcontext.
        unsafe { pctx.write(h) };
        Ok(())
    })
}

/// `cuCtxSetCurrent`: replaces the calling thread's current context; null unbinds it.
///
/// # Safety
/// None beyond the driver API's: `ctx` is a handle, checked.
#[no_mangle]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: Handle) -> CUresult {
    call("cuCtxSetCurrent", |d| {
        if ctx.is_null() {
            set_current(None);
            return Ok(());
        }
        let id = d.context(ctx)?;
        set_current(Some(id));
        Ok(())
    })
}

/// `cuCtxPushCurrent_v2`.
///
/// # Safety
/// None beyond the driver API's: `ctx` is a handle, checked.
#[no_mangle]
pub unsafe extern "C" fn cuCtxPushCurrent_v2(ctx: Handle) -> CUresult {
    call("cuCtxPushCurrent_v2", |d| {
        let id = d.context(ctx)?;
        push_current(id);
        Ok(())
    })
}

/// `cuCtxPopCurrent_v2`: pops the current context, returning it through `pctx` if given.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(pctx: *mut Handle) -> CUresult {
    call("cuCtxPopCurrent_v2", |_| {
        let Some(id) = pop_current() else {
            note("cuCtxPopCurrent: no context is current on the calling thread");
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        };
        if !pctx.is_null() {
            // SAFETY: non-null; the caller passes a writable CUcontext.
            unsafe { pctx.write(handle(Tag::Context, id)) };
        }
        Ok(())
    })
}

/// `cuCtxGetDevice`: the current context's device.
///
/// # Safety
/// `device` is null or points at a writable `CUdevice`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(device: *mut CUdevice) -> CUresult {
    call("cuCtxGetDevice", |d| {
        let device = out(device, "cuCtxGetDevice: device")?;
        let ctx = d.current()?;
        let dev = d.contexts.get(&ctx).map_or(0, |c| c.device);
        // SAFETY: checked non-null by `out`; the caller passes a writable CUdevice.
        unsafe { device.write(dev) };
        Ok(())
    })
}

/// `cuCtxSynchronize`: runs all queued work of the current context and waits for it; returns
/// its sticky error if any work faulted (now or before).
///
/// # Safety
/// None beyond the driver API's: takes no pointers.
#[no_mangle]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    call("cuCtxSynchronize", |d| {
        let ctx = d.current()?;
        d.observe_context(ctx)
    })
}

/// `cuCtxSetFlags`: recorded (scheduling flags do not change the simulation).
///
/// # Safety
/// None beyond the driver API's: takes no pointers.
#[no_mangle]
pub unsafe extern "C" fn cuCtxSetFlags(flags: c_uint) -> CUresult {
    call("cuCtxSetFlags", |d| {
        let ctx = d.usable_current()?;
        if let Some(c) = d.contexts.get_mut(&ctx) {
            c.flags = flags;
        }
        Ok(())
    })
}

/// `cuCtxGetFlags`.
///
/// # Safety
/// `flags` is null or points at a writable `unsigned int`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetFlags(flags: *mut c_uint) -> CUresult {
    call("cuCtxGetFlags", |d| {
        let flags = out(flags, "cuCtxGetFlags: flags")?;
        let ctx = d.current()?;
        let f = d.contexts.get(&ctx).map_or(0, |c| c.flags);
        // SAFETY: checked non-null by `out`; the caller passes a writable unsigned int.
        unsafe { flags.write(f) };
        Ok(())
    })
}

/// `cuCtxGetStreamPriorityRange`: 0 (lowest) to -5 (highest), as on recent GPUs. Priorities
/// do not change the simulation.
///
/// # Safety
/// `least` and `greatest` are null or point at writable `int`s (either may be null).
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(
    least: *mut c_int,
    greatest: *mut c_int,
) -> CUresult {
    call("cuCtxGetStreamPriorityRange", |d| {
        d.current()?;
        // SAFETY: each is written only if non-null; the caller passes writable ints.
        unsafe {
            if !least.is_null() {
                least.write(0);
            }
            if !greatest.is_null() {
                greatest.write(-5);
            }
        }
        Ok(())
    })
}

/// `cuCtxGetApiVersion`: the driver version, as the API version of every context.
///
/// # Safety
/// `version` is null or points at a writable `unsigned int`.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetApiVersion(ctx: Handle, version: *mut c_uint) -> CUresult {
    call("cuCtxGetApiVersion", |d| {
        let version = out(version, "cuCtxGetApiVersion: version")?;
        if ctx.is_null() {
            d.current()?;
        } else {
            d.context(ctx)?;
        }
        // SAFETY: checked non-null by `out`; the caller passes a writable unsigned int.
        unsafe { version.write(d.config.driver_version) };
        Ok(())
    })
}
