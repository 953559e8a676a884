//! Devices and their primary contexts.

use std::ffi::{c_char, c_int, c_uint};

use super::call;
use crate::abi::*;
use crate::config::Config;
use crate::report::{note, report};
use crate::state::{handle, out, Driver, Tag, TOTAL_MEMORY};

/// `cuDeviceGet`: device `ordinal` (0 to VGPU_DEVICES - 1).
///
/// # Safety
/// `device` is null or points at a writable `CUdevice`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> CUresult {
    call("cuDeviceGet", |d| {
        let device = out(device, "cuDeviceGet: device")?;
        d.device(ordinal)?;
        // SAFETY: checked non-null by `out`; the caller passes a writable CUdevice.
        unsafe { device.write(ordinal) };
        Ok(())
    })
}

/// `cuDeviceGetCount`: VGPU_DEVICES.
///
/// # Safety
/// `count` is null or points at a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    call("cuDeviceGetCount", |d| {
        let count = out(count, "cuDeviceGetCount: count")?;
        // SAFETY: checked non-null by `out`; the caller passes a writable int.
        unsafe { count.write(d.devices.len() as c_int) };
        Ok(())
    })
}

/// `cuDeviceGetName`: "vgpu sm_90 (ptxsim)", truncated to `len - 1` bytes plus a NUL.
///
/// # Safety
/// `name` is null or points at `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    call("cuDeviceGetName", |d| {
        let name = out(name, "cuDeviceGetName: name")?;
        d.device(dev)?;
        let Ok(len) = usize::try_from(len) else {
            note(&format!("cuDeviceGetName: len {len} is negative"));
            return Err(CUDA_ERROR_INVALID_VALUE);
        };
        if len == 0 {
            note("cuDeviceGetName: len is 0");
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let text = format!("vgpu sm_{} (ptxsim)", d.config.compute_capability);
        let n = text.len().min(len - 1);
        // SAFETY: `name` is non-null (checked) and the caller passes `len` writable bytes; at
        // most `len - 1` bytes and a NUL are written.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), name, n);
            name.add(n).write(0);
        }
        Ok(())
    })
}

/// The value of attribute `attrib` for the configured device, `Err(None)` when the vgpu does
/// not model it.
fn attribute_value(config: &Config, attrib: i32) -> Option<i32> {
    use crate::abi::attribute::*;
    let cc = config.compute_capability;
    let v = match attrib {
        MAX_THREADS_PER_BLOCK => 1024,
        MAX_BLOCK_DIM_X | MAX_BLOCK_DIM_Y => 1024,
        MAX_BLOCK_DIM_Z => 64,
        MAX_GRID_DIM_X => i32::MAX,
        MAX_GRID_DIM_Y | MAX_GRID_DIM_Z => 65535,
        MAX_SHARED_MEMORY_PER_BLOCK => config.shared_per_block() as i32,
        TOTAL_CONSTANT_MEMORY => 65536,
        WARP_SIZE => 32,
        MAX_REGISTERS_PER_BLOCK | MAX_REGISTERS_PER_MULTIPROCESSOR => 65536,
        MULTIPROCESSOR_COUNT => config.multiprocessors as i32,
        INTEGRATED | MANAGED_MEMORY => 0,
        CONCURRENT_KERNELS | UNIFIED_ADDRESSING | STREAM_PRIORITIES_SUPPORTED => 1,
        MAX_THREADS_PER_MULTIPROCESSOR => match cc {
            75 => 1024,
            86 | 87 | 89 => 1536,
            120.. => 1536,
            _ => 2048,
        },
        COMPUTE_CAPABILITY_MAJOR => config.cc_major() as i32,
        COMPUTE_CAPABILITY_MINOR => config.cc_minor() as i32,
        MAX_SHARED_MEMORY_PER_MULTIPROCESSOR => (config.shared_per_block_optin() + 1024) as i32,
        MAX_SHARED_MEMORY_PER_BLOCK_OPTIN => config.shared_per_block_optin() as i32,
        MAX_BLOCKS_PER_MULTIPROCESSOR => match cc {
            75 | 86 | 87 => 16,
            89 => 24,
            _ => 32,
        },
        MEMORY_POOLS_SUPPORTED => i32::from(config.memory_pools),
        _ => return None,
    };
    Some(v)
}

/// `cuDeviceGetAttribute`: the attributes a program tuning launches reads (limits, compute
/// capability, multiprocessors, memory pools); others are CUDA_ERROR_NOT_SUPPORTED, never a
/// made-up value.
///
/// # Safety
/// `value` is null or points at a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    value: *mut c_int,
    attrib: c_int,
    dev: CUdevice,
) -> CUresult {
    call("cuDeviceGetAttribute", |d| {
        let value = out(value, "cuDeviceGetAttribute: pi")?;
        d.device(dev)?;
        if attrib <= 0 {
            note(&format!(
                "cuDeviceGetAttribute: {attrib} is not an attribute"
            ));
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let Some(v) = attribute_value(&d.config, attrib) else {
            report(&format!(
                "cuDeviceGetAttribute: attribute {attrib} is not modelled by the vgpu"
            ));
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        };
        // SAFETY: checked non-null by `out`; the caller passes a writable int.
        unsafe { value.write(v) };
        Ok(())
    })
}

/// `cuDeviceComputeCapability` (deprecated, still exported by the driver).
///
/// # Safety
/// `major` and `minor` are null or point at writable `int`s.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceComputeCapability(
    major: *mut c_int,
    minor: *mut c_int,
    dev: CUdevice,
) -> CUresult {
    call("cuDeviceComputeCapability", |d| {
        let major = out(major, "cuDeviceComputeCapability: major")?;
        let minor = out(minor, "cuDeviceComputeCapability: minor")?;
        d.device(dev)?;
        // SAFETY: both checked non-null by `out`; the caller passes writable ints.
        unsafe {
            major.write(d.config.cc_major() as c_int);
            minor.write(d.config.cc_minor() as c_int);
        }
        Ok(())
    })
}

/// `cuDeviceTotalMem_v2`: 80 GB, as an H100 (allocations are further limited by the host).
///
/// # Safety
/// `bytes` is null or points at a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    call("cuDeviceTotalMem_v2", |d| {
        let bytes = out(bytes, "cuDeviceTotalMem: bytes")?;
        d.device(dev)?;
        // SAFETY: checked non-null by `out`; the caller passes a writable size_t.
        unsafe { bytes.write(TOTAL_MEMORY as usize) };
        Ok(())
    })
}

fn uuid(d: &Driver, uuid: *mut CUuuid, dev: CUdevice) -> Result<(), CUresult> {
    let uuid = out(uuid, "cuDeviceGetUuid: uuid")?;
    let ordinal = d.device(dev)?;
    let mut bytes = *b"vgpu-ptxsim-dev\0";
    bytes[15] = ordinal as u8;
    // SAFETY: checked non-null by `out`; the caller passes a writable CUuuid.
    unsafe { uuid.write(CUuuid { bytes }) };
    Ok(())
}

/// `cuDeviceGetUuid`: a fixed UUID per ordinal.
///
/// # Safety
/// `id` is null or points at a writable `CUuuid`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid(id: *mut CUuuid, dev: CUdevice) -> CUresult {
    call("cuDeviceGetUuid", |d| uuid(d, id, dev))
}

/// `cuDeviceGetUuid_v2`: as [`cuDeviceGetUuid`].
///
/// # Safety
/// `id` is null or points at a writable `CUuuid`.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(id: *mut CUuuid, dev: CUdevice) -> CUresult {
    call("cuDeviceGetUuid_v2", |d| uuid(d, id, dev))
}

/// `cuDevicePrimaryCtxRetain`: the device's primary context, created on first retain; the same
/// context until the last release, a new one after.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut Handle, dev: CUdevice) -> CUresult {
    call("cuDevicePrimaryCtxRetain", |d| {
        let pctx = out(pctx, "cuDevicePrimaryCtxRetain: pctx")?;
        let ordinal = d.device(dev)?;
        let existing = d.devices[ordinal].primary;
        let ctx = match existing {
            Some(c) => c,
            None => {
                let flags = d.devices[ordinal].primary_flags;
                let c = d.create_context(dev, true, flags);
                d.devices[ordinal].primary = Some(c);
                c
            }
        };
        d.devices[ordinal].primary_refs += 1;
        // SAFETY: checked non-null by `out`; the caller passes a writable CUcontext.
        unsafe { pctx.write(handle(Tag::Context, ctx)) };
        Ok(())
    })
}

fn release_primary(d: &mut Driver, dev: CUdevice) -> Result<(), CUresult> {
    let ordinal = d.device(dev)?;
    let device = &mut d.devices[ordinal];
    let Some(ctx) = device.primary else {
        note(&format!(
            "cuDevicePrimaryCtxRelease: device {dev}'s primary context is not retained"
        ));
        return Err(CUDA_ERROR_INVALID_CONTEXT);
    };
    device.primary_refs -= 1;
    if device.primary_refs == 0 {
        device.primary = None;
        d.destroy_context(ctx);
    }
    Ok(())
}

/// `cuDevicePrimaryCtxRelease_v2`: the last release destroys the primary context (its memory,
/// modules, streams and sticky error go with it).
///
/// # Safety
/// None beyond the driver API's: takes no pointers.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    call("cuDevicePrimaryCtxRelease_v2", |d| release_primary(d, dev))
}

/// `cuDevicePrimaryCtxRelease`: as [`cuDevicePrimaryCtxRelease_v2`].
///
/// # Safety
/// None beyond the driver API's: takes no pointers.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease(dev: CUdevice) -> CUresult {
    call("cuDevicePrimaryCtxRelease", |d| release_primary(d, dev))
}

/// `cuDevicePrimaryCtxGetState`: its flags and whether it is active (retained).
///
/// # Safety
/// `flags` and `active` are null or point at writable storage of their types.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(
    dev: CUdevice,
    flags: *mut c_uint,
    active: *mut c_int,
) -> CUresult {
    call("cuDevicePrimaryCtxGetState", |d| {
        let flags = out(flags, "cuDevicePrimaryCtxGetState: flags")?;
        let active = out(active, "cuDevicePrimaryCtxGetState: active")?;
        let ordinal = d.device(dev)?;
        let device = &d.devices[ordinal];
        // SAFETY: both checked non-null by `out`; the caller passes writable storage.
        unsafe {
            flags.write(device.primary_flags);
            active.write(c_int::from(device.primary.is_some()));
        }
        Ok(())
    })
}
