//! `vgpu_last_report`: the vgpu's own export (not part of the CUDA API), for tests and tools
//! that want the text behind the last error: a fault's kernel, block, thread and instruction, a
//! race's two operations, an argument error's reason.

use std::ffi::c_char;

use super::guard;
use crate::report::last;

/// Copies the calling thread's last report, NUL-terminated and truncated to `len` bytes, into `buf` (if not
/// null) and returns its full length in bytes (without the NUL).
///
/// # Safety
/// `buf` is null or points at `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn vgpu_last_report(buf: *mut c_char, len: usize) -> usize {
    let mut full = 0;
    guard("vgpu_last_report", || {
        let text = last();
        full = text.len();
        if !buf.is_null() && len > 0 {
            let n = text.len().min(len - 1);
            // SAFETY: `buf` is non-null and the caller passes `len` writable bytes; at most
            // `len - 1` bytes and a NUL are written.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buf, n);
                buf.add(n).write(0);
            }
        }
        0
    });
    full
}
