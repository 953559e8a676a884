//! What the vgpu says about an error beyond its `CUresult`: a fault's kernel, block, thread and
//! instruction, the two operations of a race, why a module was refused. Reports go to stderr
//! (prefixed `vgpu:`), and the calling thread's last one is kept for
//! [`crate::api::report::vgpu_last_report`].

use std::cell::RefCell;
use std::io::Write;

thread_local! {
    static LAST: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `msg` as the calling thread's last report and prints it to stderr.
pub fn report(msg: &str) {
    // A failed write to stderr is not the caller's error: the report stays retrievable.
    let _ = writeln!(std::io::stderr(), "vgpu: {msg}");
    note(msg);
}

/// Records `msg` as the calling thread's last report without printing it (argument errors,
/// which a caller probing bad input would otherwise flood stderr with).
pub fn note(msg: &str) {
    // `try_with`: during thread teardown the slot may be gone; the report was printed or is
    // an argument error nobody can ask about any more.
    let _ = LAST.try_with(|last| {
        let mut last = last.borrow_mut();
        last.clear();
        last.push_str(msg);
    });
}

/// The calling thread's last report.
pub fn last() -> String {
    LAST.try_with(|last| last.borrow().clone())
        .unwrap_or_default()
}
