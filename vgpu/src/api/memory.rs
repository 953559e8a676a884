//! Device memory: allocation, copies, memsets. Device pointers are ptxsim addresses; every
//! new allocation is filled with 0xff bytes (NaN in every float type), so a kernel that reads
//! memory nobody wrote produces NaN rather than a plausible zero.

use std::ffi::{c_uchar, c_uint, c_ushort, c_void};

use super::call;
use crate::abi::*;
use crate::exec::OpKind;
use crate::report::{note, report};
use crate::state::{input, out, Driver};

/// `cuMemAlloc_v2`: `bytes` of device memory in the current context. Zero bytes is
/// CUDA_ERROR_INVALID_VALUE, as the driver documents.
///
/// # Safety
/// `dptr` is null or points at a writable `CUdeviceptr`.
#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
    call("cuMemAlloc_v2", |d| {
        let dptr = out(dptr, "cuMemAlloc: dptr")?;
        let ctx = d.usable_current()?;
        if bytes == 0 {
            note("cuMemAlloc: bytesize is 0 (the driver documents CUDA_ERROR_INVALID_VALUE)");
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let addr = d.allocate(ctx, bytes as u64)?;
        // SAFETY: checked non-null by `out`; the caller passes a writable CUdeviceptr.
        unsafe { dptr.write(addr) };
        Ok(())
    })
}

fn free_now(d: &mut Driver, ptr: CUdeviceptr) -> Result<(), CUresult> {
    d.current()?;
    let Some(a) = d.allocations.get(&ptr) else {
        note(&format!(
            "cuMemFree: 0x{ptr:x} is not the start of an allocation of this driver"
        ));
        return Err(CUDA_ERROR_INVALID_VALUE);
    };
    if a.freeing {
        note(&format!(
            "cuMemFree: 0x{ptr:x} is already being freed by cuMemFreeAsync"
        ));
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // The driver frees only after the device is done with the memory: wait for the context.
    let ctx = a.ctx;
    let waited = d.observe_context(ctx);
    d.release_allocation(ptr);
    waited
}

/// `cuMemFree_v2`: waits for the allocation's context to finish its work, then frees.
///
/// # Safety
/// None beyond the driver API's: `ptr` is checked against the allocation table.
#[no_mangle]
pub unsafe extern "C" fn cuMemFree_v2(ptr: CUdeviceptr) -> CUresult {
    call("cuMemFree_v2", |d| free_now(d, ptr))
}

/// `cuMemAllocAsync`: stream-ordered allocation (needs VGPU_MEMORY_POOLS=1). Using the memory
/// on another stream before this operation is ordered before that use is a race. Zero bytes is
/// refused with CUDA_ERROR_INVALID_VALUE: the driver leaves it undocumented, so no caller may
/// rely on it.
///
/// # Safety
/// `dptr` is null or points at a writable `CUdeviceptr`.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemAllocAsync", |d| {
        if !d.config.memory_pools {
            note(
                "cuMemAllocAsync: this device does not support memory pools (VGPU_MEMORY_POOLS=0)",
            );
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        let dptr = out(dptr, "cuMemAllocAsync: dptr")?;
        let s = d.stream(stream)?;
        if bytes == 0 {
            note(
                "cuMemAllocAsync: bytesize is 0 (undocumented on the driver, so refused here: \
                 an empty buffer needs no allocation)",
            );
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let ctx = d.streams.get(&s).map_or(0, |s| s.ctx);
        let addr = d.allocate(ctx, bytes as u64)?;
        d.submit(
            s,
            OpKind::Alloc {
                addr,
                len: bytes as u64,
            },
            format!("cuMemAllocAsync of {bytes} bytes at 0x{addr:x}"),
        );
        // SAFETY: checked non-null by `out`; the caller passes a writable CUdeviceptr.
        unsafe { dptr.write(addr) };
        Ok(())
    })
}

/// `cuMemFreeAsync`: stream-ordered free; nothing may use the memory after this call, and
/// work on another stream not ordered before the free that touches it is a race.
///
/// # Safety
/// None beyond the driver API's: `ptr` is checked against the allocation table.
#[no_mangle]
pub unsafe extern "C" fn cuMemFreeAsync(ptr: CUdeviceptr, stream: Handle) -> CUresult {
    call("cuMemFreeAsync", |d| {
        if !d.config.memory_pools {
            note("cuMemFreeAsync: this device does not support memory pools (VGPU_MEMORY_POOLS=0)");
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        let s = d.stream(stream)?;
        let len = match d.allocations.get_mut(&ptr) {
            Some(a) if !a.freeing => {
                a.freeing = true;
                a.len
            }
            Some(_) => {
                note(&format!("cuMemFreeAsync: 0x{ptr:x} is already being freed"));
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            None => {
                note(&format!(
                    "cuMemFreeAsync: 0x{ptr:x} is not the start of an allocation of this driver"
                ));
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
        };
        d.submit(
            s,
            OpKind::Free { addr: ptr, len },
            format!("cuMemFreeAsync of 0x{ptr:x} ({len} bytes)"),
        );
        Ok(())
    })
}

/// `cuMemGetInfo_v2`: free and total device memory.
///
/// # Safety
/// `free` and `total` are null or point at writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    call("cuMemGetInfo_v2", |d| {
        let free = out(free, "cuMemGetInfo: free")?;
        let total = out(total, "cuMemGetInfo: total")?;
        d.usable_current()?;
        let all = crate::state::TOTAL_MEMORY;
        // SAFETY: both checked non-null by `out`; the caller passes writable size_ts.
        unsafe {
            free.write(all.saturating_sub(d.allocated_bytes) as usize);
            total.write(all as usize);
        }
        Ok(())
    })
}

/// Queues a host-to-device copy; the host bytes are taken now (the driver stages pageable
/// memory before returning), the device is written when the stream runs.
fn htod(
    d: &mut Driver,
    name: &str,
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
    stream: Handle,
) -> Result<u64, CUresult> {
    let s = d.stream(stream)?;
    if bytes == 0 {
        return Ok(s);
    }
    let src = input(src, &format!("{name}: srcHost"))?;
    d.allocation_range(dst, bytes as u64, name)?;
    d.relieve_memory_pressure();
    // SAFETY: `src` is non-null (checked) and the caller's contract is that it points at
    // `bytes` readable bytes.
    let data = d.stage(unsafe { std::slice::from_raw_parts(src.cast::<u8>(), bytes) });
    d.submit(
        s,
        OpKind::HtoD { dst, data },
        format!("memcpy HtoD of {bytes} bytes to 0x{dst:x}"),
    );
    Ok(s)
}

/// A device-to-host copy into pageable memory: returns once the copy is done, so the stream
/// runs up to it now. Returns the stream's context's sticky error if the copy faulted.
fn dtoh(
    d: &mut Driver,
    name: &str,
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> Result<(), CUresult> {
    let s = d.stream(stream)?;
    if bytes == 0 {
        return Ok(());
    }
    let dst = out(dst, &format!("{name}: dstHost"))?;
    d.allocation_range(src, bytes as u64, name)?;
    let seq = d.submit(
        s,
        OpKind::DtoH { src, len: bytes },
        format!("memcpy DtoH of {bytes} bytes from 0x{src:x}"),
    );
    d.observe_stream(s)?;
    let Some(data) = d.outputs.remove(&(s, seq)) else {
        let ctx = d.streams.get(&s).map_or(0, |s| s.ctx);
        d.check_fault(ctx)?;
        report(&format!("{name}: the copy did not run"));
        return Err(CUDA_ERROR_UNKNOWN);
    };
    // SAFETY: `dst` is non-null (checked) and the caller's contract is that it points at
    // `bytes` writable bytes; `data` has exactly `bytes` bytes.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.cast::<u8>(), bytes) };
    Ok(())
}

fn dtod(
    d: &mut Driver,
    name: &str,
    dst: CUdeviceptr,
    src: CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> Result<(), CUresult> {
    let s = d.stream(stream)?;
    if bytes == 0 {
        return Ok(());
    }
    d.allocation_range(src, bytes as u64, &format!("{name}: source"))?;
    d.allocation_range(dst, bytes as u64, &format!("{name}: destination"))?;
    d.submit(
        s,
        OpKind::DtoD {
            dst,
            src,
            len: bytes,
        },
        format!("memcpy DtoD of {bytes} bytes from 0x{src:x} to 0x{dst:x}"),
    );
    Ok(())
}

/// `cuMemcpyHtoDAsync_v2`.
///
/// # Safety
/// `src` is null or points at `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemcpyHtoDAsync_v2", |d| {
        htod(d, "cuMemcpyHtoDAsync", dst, src, bytes, stream).map(|_| ())
    })
}

/// `cuMemcpyDtoHAsync_v2`: into pageable memory, so it returns when the copy is done.
///
/// # Safety
/// `dst` is null or points at `bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemcpyDtoHAsync_v2", |d| {
        dtoh(d, "cuMemcpyDtoHAsync", dst, src, bytes, stream)
    })
}

/// `cuMemcpyDtoDAsync_v2`.
///
/// # Safety
/// None beyond the driver API's: device ranges are checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemcpyDtoDAsync_v2", |d| {
        dtod(d, "cuMemcpyDtoDAsync", dst, src, bytes, stream)
    })
}

/// `cuMemcpyHtoD_v2`: synchronous, on the legacy default stream.
///
/// # Safety
/// `src` is null or points at `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
) -> CUresult {
    call("cuMemcpyHtoD_v2", |d| {
        let s = htod(d, "cuMemcpyHtoD", dst, src, bytes, std::ptr::null_mut())?;
        d.observe_stream(s)
    })
}

/// `cuMemcpyDtoH_v2`: synchronous, on the legacy default stream.
///
/// # Safety
/// `dst` is null or points at `bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
) -> CUresult {
    call("cuMemcpyDtoH_v2", |d| {
        dtoh(d, "cuMemcpyDtoH", dst, src, bytes, std::ptr::null_mut())
    })
}

/// `cuMemcpyDtoD_v2`: on the legacy default stream (asynchronous to the host, as documented).
///
/// # Safety
/// None beyond the driver API's: device ranges are checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    bytes: usize,
) -> CUresult {
    call("cuMemcpyDtoD_v2", |d| {
        dtod(d, "cuMemcpyDtoD", dst, src, bytes, std::ptr::null_mut())
    })
}

/// `cuMemcpyPeerAsync`: a copy between contexts (devices), queued on `stream`.
///
/// # Safety
/// None beyond the driver API's: handles and device ranges are checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyPeerAsync(
    dst: CUdeviceptr,
    dst_ctx: Handle,
    src: CUdeviceptr,
    src_ctx: Handle,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemcpyPeerAsync", |d| {
        let dst_ctx = d.context(dst_ctx)?;
        let src_ctx = d.context(src_ctx)?;
        d.check_fault(src_ctx)?;
        d.check_fault(dst_ctx)?;
        for (addr, ctx, what) in [(src, src_ctx, "source"), (dst, dst_ctx, "destination")] {
            if bytes > 0 {
                let start = d.allocation_range(addr, bytes as u64, "cuMemcpyPeerAsync")?;
                if d.allocations.get(&start).map(|a| a.ctx) != Some(ctx) {
                    note(&format!(
                        "cuMemcpyPeerAsync: the {what} 0x{addr:x} is not memory of the {what} \
                         context"
                    ));
                    return Err(CUDA_ERROR_INVALID_VALUE);
                }
            }
        }
        dtod(d, "cuMemcpyPeerAsync", dst, src, bytes, stream)
    })
}

fn memset(
    d: &mut Driver,
    name: &str,
    dst: CUdeviceptr,
    pattern: Vec<u8>,
    count: usize,
    stream: Handle,
) -> Result<(), CUresult> {
    let s = d.stream(stream)?;
    if count == 0 {
        return Ok(());
    }
    let unit = pattern.len() as u64;
    if !dst.is_multiple_of(unit) {
        note(&format!("{name}: 0x{dst:x} is not aligned to {unit} bytes"));
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let Some(bytes) = (count as u64).checked_mul(unit) else {
        note(&format!(
            "{name}: {count} elements of {unit} bytes overflow"
        ));
        return Err(CUDA_ERROR_INVALID_VALUE);
    };
    d.allocation_range(dst, bytes, name)?;
    d.submit(
        s,
        OpKind::Memset {
            dst,
            pattern,
            count,
        },
        format!("{name} of {bytes} bytes at 0x{dst:x}"),
    );
    Ok(())
}

/// `cuMemsetD8Async`.
///
/// # Safety
/// None beyond the driver API's: the device range is checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8Async(
    dst: CUdeviceptr,
    value: c_uchar,
    count: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemsetD8Async", |d| {
        memset(d, "cuMemsetD8Async", dst, vec![value], count, stream)
    })
}

/// `cuMemsetD16Async`.
///
/// # Safety
/// None beyond the driver API's: the device range and its alignment are checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemsetD16Async(
    dst: CUdeviceptr,
    value: c_ushort,
    count: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemsetD16Async", |d| {
        memset(
            d,
            "cuMemsetD16Async",
            dst,
            value.to_le_bytes().to_vec(),
            count,
            stream,
        )
    })
}

/// `cuMemsetD32Async`.
///
/// # Safety
/// None beyond the driver API's: the device range and its alignment are checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemsetD32Async(
    dst: CUdeviceptr,
    value: c_uint,
    count: usize,
    stream: Handle,
) -> CUresult {
    call("cuMemsetD32Async", |d| {
        memset(
            d,
            "cuMemsetD32Async",
            dst,
            value.to_le_bytes().to_vec(),
            count,
            stream,
        )
    })
}

/// `cuMemsetD8_v2`: on the legacy default stream (asynchronous to the host, as documented).
///
/// # Safety
/// None beyond the driver API's: the device range is checked.
#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, value: c_uchar, count: usize) -> CUresult {
    call("cuMemsetD8_v2", |d| {
        memset(
            d,
            "cuMemsetD8",
            dst,
            vec![value],
            count,
            std::ptr::null_mut(),
        )
    })
}
