//! The exported CUDA driver API functions, grouped as the driver API documentation groups
//! them. Every export runs inside [`guard`], so a panic (a bug in the vgpu) becomes
//! CUDA_ERROR_UNKNOWN with a report instead of unwinding into C.
//!
//! # Safety of the exports
//!
//! Each export is `unsafe extern "C"` with the contract of the CUDA driver API function of the
//! same name: pointer arguments are null or point at memory of the documented type and size
//! (host buffers of the given byte count, NUL-terminated strings, `kernelParams` with one valid
//! pointer per kernel parameter). The vgpu checks what the real driver checks (null pointers,
//! handles, device addresses, sizes) and cannot check the rest, exactly like the real driver.

#![allow(non_snake_case)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{CUresult, CUDA_ERROR_UNKNOWN};
use crate::report::report;
use crate::state::{with_driver, Driver};

pub mod context;
pub mod device;
pub mod event;
pub mod init;
pub mod launch;
pub mod memory;
pub mod module;
pub mod report;
pub mod stream;
pub mod unsupported;

/// Runs an export's body; a panic becomes CUDA_ERROR_UNKNOWN.
pub fn guard(name: &str, body: impl FnOnce() -> CUresult) -> CUresult {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(_) => {
            report(&format!(
                "internal error in {name}: the vgpu panicked (a bug in the vgpu, not in the caller)"
            ));
            CUDA_ERROR_UNKNOWN
        }
    }
}

/// [`guard`] around [`with_driver`]: the body runs on the initialised driver, under its lock.
pub fn call(name: &str, body: impl FnOnce(&mut Driver) -> Result<(), CUresult>) -> CUresult {
    guard(name, || with_driver(body))
}
