//! Initialisation, version, error strings, and the entry points tools look up.

use std::ffi::{c_char, c_int, c_uint, c_void};

use super::guard;
use crate::abi::*;
use crate::config::Config;
use crate::report::{note, report};
use crate::state::{self, Init};

/// `cuInit`: reads the `VGPU_*` configuration (once; later calls return the first result).
///
/// # Safety
/// None beyond the driver API's: takes no pointers.
#[no_mangle]
pub unsafe extern "C" fn cuInit(flags: c_uint) -> CUresult {
    guard("cuInit", || {
        if flags != 0 {
            note(&format!("cuInit flags must be 0, got {flags}"));
            return CUDA_ERROR_INVALID_VALUE;
        }
        state::init()
    })
}

/// `cuDriverGetVersion`: VGPU_DRIVER_VERSION (works before `cuInit`, as on the real driver).
///
/// # Safety
/// `version` is null or points at a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    guard("cuDriverGetVersion", || {
        if version.is_null() {
            note("cuDriverGetVersion: driverVersion is a null pointer");
            return CUDA_ERROR_INVALID_VALUE;
        }
        let configured = match &*state::lock() {
            Init::Ready(d) => Ok(d.config.driver_version),
            _ => Config::from_env().map(|c| c.driver_version),
        };
        match configured {
            Ok(v) => {
                // SAFETY: checked non-null above; the caller passes a writable int.
                unsafe { version.write(v as c_int) };
                CUDA_SUCCESS
            }
            Err(msg) => {
                report(&msg);
                CUDA_ERROR_INVALID_VALUE
            }
        }
    })
}

fn error_text(error: CUresult, text: *mut *const c_char, name: bool) -> CUresult {
    if text.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let found = ERRORS.iter().find(|e| e.0 == error);
    let ptr = found.map_or(std::ptr::null(), |e| {
        let s = if name { e.1 } else { e.2 };
        s.as_ptr().cast::<c_char>()
    });
    // SAFETY: checked non-null above; the caller passes a writable `const char*`. The strings
    // are NUL-terminated statics.
    unsafe { text.write(ptr) };
    if found.is_some() {
        CUDA_SUCCESS
    } else {
        CUDA_ERROR_INVALID_VALUE
    }
}

/// `cuGetErrorName`: `"CUDA_ERROR_INVALID_VALUE"` etc.; an unknown code gives
/// CUDA_ERROR_INVALID_VALUE and a null string.
///
/// # Safety
/// `text` is null or points at a writable `const char*`.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, text: *mut *const c_char) -> CUresult {
    guard("cuGetErrorName", || error_text(error, text, true))
}

/// `cuGetErrorString`: the description of an error code.
///
/// # Safety
/// `text` is null or points at a writable `const char*`.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, text: *mut *const c_char) -> CUresult {
    guard("cuGetErrorString", || error_text(error, text, false))
}

/// `cuGetExportTable`: the driver's private interfaces, which the vgpu does not have. NVRTC
/// asks for them while compiling and carries on without.
///
/// # Safety
/// `table` is null or points at a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn cuGetExportTable(
    table: *mut *const c_void,
    _id: *const CUuuid,
) -> CUresult {
    guard("cuGetExportTable", || {
        if !table.is_null() {
            // SAFETY: checked non-null; the caller passes a writable pointer.
            unsafe { table.write(std::ptr::null()) };
        }
        CUDA_ERROR_NOT_SUPPORTED
    })
}

/// `cuGetProcAddress`: not offered; callers fall back to the exported symbols.
///
/// # Safety
/// `pfn` is null or points at a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn cuGetProcAddress(
    _symbol: *const c_char,
    pfn: *mut *mut c_void,
    _cuda_version: c_int,
    _flags: u64,
) -> CUresult {
    guard("cuGetProcAddress", || {
        if !pfn.is_null() {
            // SAFETY: checked non-null; the caller passes a writable pointer.
            unsafe { pfn.write(std::ptr::null_mut()) };
        }
        CUDA_ERROR_NOT_FOUND
    })
}

/// `cuGetProcAddress_v2`: as [`cuGetProcAddress`]; `symbol_status` (if given) says
/// CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND.
///
/// # Safety
/// `pfn` and `symbol_status` are null or point at writable storage of their types.
#[no_mangle]
pub unsafe extern "C" fn cuGetProcAddress_v2(
    _symbol: *const c_char,
    pfn: *mut *mut c_void,
    _cuda_version: c_int,
    _flags: u64,
    symbol_status: *mut c_int,
) -> CUresult {
    guard("cuGetProcAddress_v2", || {
        if !pfn.is_null() {
            // SAFETY: checked non-null; the caller passes a writable pointer.
            unsafe { pfn.write(std::ptr::null_mut()) };
        }
        if !symbol_status.is_null() {
            // SAFETY: checked non-null; CUdriverProcAddressQueryResult is an int-sized enum and
            // 1 is CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND.
            unsafe { symbol_status.write(1) };
        }
        CUDA_ERROR_NOT_FOUND
    })
}
