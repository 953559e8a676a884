//! What the vgpu says about an error beyond its `CUresult`: a fault's kernel, block, thread and
//! instruction, the two operations of a race, why a module was refused. Reports go to stderr
//! (prefixed `vgpu:`) and are kept for [`crate::api::report::vgpu_last_report`].

use std::io::Write;
use std::sync::{Mutex, PoisonError};

static LAST: Mutex<String> = Mutex::new(String::new());

/// Records `msg` as the last report and prints it to stderr.
pub fn report(msg: &str) {
    // A failed write to stderr is not the caller's error: the report stays retrievable.
    let _ = writeln!(std::io::stderr(), "vgpu: {msg}");
    note(msg);
}

/// Records `msg` as the last report without printing it (argument errors, which a caller
/// probing bad input would otherwise flood stderr with).
pub fn note(msg: &str) {
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    last.clear();
    last.push_str(msg);
}

/// The last report.
pub fn last() -> String {
    LAST.lock().unwrap_or_else(PoisonError::into_inner).clone()
}
