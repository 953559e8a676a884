//! What the vgpu's tests share: loading the vgpu as the process's CUDA driver, contexts,
//! the test kernels, the last report, and running a test in a child process with other
//! `VGPU_*` settings.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cudarc::driver::{sys, CudaContext, CudaModule};
use cudarc::nvrtc::Ptx;

/// The test kernels (`fill_u32`, `add_one_f32`, `count`, `store_at`, `params`, `bounded`).
pub const KERNELS: &str = include_str!("kernels.ptx");

/// One block of one thread: for `store_at`, whose every thread stores to the same address (a
/// larger launch is a write-after-write race, which the vgpu reports as such).
pub const ONE_THREAD: cudarc::driver::LaunchConfig = cudarc::driver::LaunchConfig {
    grid_dim: (1, 1, 1),
    block_dim: (1, 1, 1),
    shared_mem_bytes: 0,
};

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}
const RTLD_NOW: c_int = 2;
const RTLD_GLOBAL: c_int = 0x100;

struct Loaded(*mut c_void);
// SAFETY: a dlopen handle is a process-wide token; the loader's functions are thread-safe.
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

static DRIVER: OnceLock<Loaded> = OnceLock::new();

/// The vgpu library built with these tests: next to the test executable (`deps/`) or one
/// folder up.
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the executable's folder").to_path_buf();
    for dir in [deps.clone(), deps.join("..")] {
        let candidate = dir.join("libvgpu.so");
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "libvgpu.so is not next to {} (cargo builds it with the tests)",
        exe.display()
    );
}

/// Loads the vgpu into this process (once). Its soname is `libcuda.so`, so cudarc's
/// `dlopen("libcuda.so")` gets it, whatever the library path holds.
pub fn load_driver() {
    DRIVER.get_or_init(|| {
        let path = library_path();
        let c_path = CString::new(path.to_string_lossy().as_bytes()).expect("no NUL in a path");
        // SAFETY: a NUL-terminated path; loading runs no code of ours that needs set-up.
        let handle = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW | RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated message after a failed dlopen.
            let why = unsafe { std::ffi::CStr::from_ptr(dlerror()) };
            panic!("cannot load {}: {why:?}", path.display());
        }
        Loaded(handle)
    });
}

/// Initialises the driver, failing the test on error.
pub fn init() {
    load_driver();
    // SAFETY: takes no pointers.
    let rc = unsafe { sys::cuInit(0) };
    assert_eq!(rc, sys::CUresult::CUDA_SUCCESS, "cuInit");
}

/// The primary context of device 0: for tests that leave it usable (no faults, no races).
pub fn primary() -> Arc<CudaContext> {
    load_driver();
    CudaContext::new(0).expect("the vgpu's device 0")
}

/// A new context of its own on `device`, current on the calling thread, destroyed when the
/// last reference goes: for tests that fault or race.
pub fn own_context(device: i32) -> Arc<CudaContext> {
    init();
    let mut raw = std::ptr::null_mut();
    // SAFETY: `raw` is a live out-pointer; null creation parameters are allowed.
    let rc = unsafe { sys::cuCtxCreate_v4(&mut raw, std::ptr::null_mut(), 0, device) };
    assert_eq!(rc, sys::CUresult::CUDA_SUCCESS, "cuCtxCreate_v4");
    // SAFETY: `raw` was just created for `device` and is handed over.
    unsafe { CudaContext::from_raw_context(device as usize, device, raw) }.expect("wrap context")
}

/// The test kernels loaded into `ctx`.
pub fn kernels(ctx: &Arc<CudaContext>) -> Arc<CudaModule> {
    ctx.load_module(Ptx::from_src(KERNELS))
        .expect("the test kernels load")
}

/// The address of the vgpu's export `name` (for functions cudarc's bindings of this CUDA
/// version do not declare). Cast it to the function's C type with `std::mem::transmute`.
pub fn symbol(name: &str) -> *mut c_void {
    load_driver();
    let handle = DRIVER.get().expect("loaded").0;
    let c_name = CString::new(name).expect("no NUL");
    // SAFETY: a live handle and a NUL-terminated name.
    let f = unsafe { dlsym(handle, c_name.as_ptr()) };
    assert!(!f.is_null(), "the vgpu exports {name}");
    f
}

/// The vgpu's last report (`vgpu_last_report`).
pub fn last_report() -> String {
    let f = symbol("vgpu_last_report");
    // SAFETY: the symbol is `vgpu_last_report(char*, size_t) -> size_t`.
    let report: unsafe extern "C" fn(*mut c_char, usize) -> usize =
        unsafe { std::mem::transmute(f) };
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` has 4096 writable bytes.
    let n = unsafe { report(buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(n.min(buf.len() - 1));
    String::from_utf8_lossy(&buf).into_owned()
}

/// Calls a raw driver function and returns its result. The tests pass, on purpose, null
/// pointers and invalid handles, which the driver must refuse; every other pointer argument
/// is a live local of the right type and size. (The test files using it allow clippy's
/// `macro_metavars_in_unsafe`: the arguments are those plain values, nothing unsafe of their
/// own.)
#[macro_export]
macro_rules! raw {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        // SAFETY: the arguments are null, invalid handles the driver checks, or live locals of
        // the types the function takes (see the macro's documentation).
        unsafe { cudarc::driver::sys::$f($($arg),*) }
    }};
}

/// Whether this process is a child started by [`in_child`].
pub fn is_child() -> bool {
    std::env::var_os("VGPU_TEST_CHILD").is_some()
}

/// Runs test `name` of this executable alone in a child process with `env` set (the `VGPU_*`
/// configuration is read once per process, at `cuInit`), and returns (passed, output).
pub fn run_child(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env("VGPU_TEST_CHILD", "1");
    for var in [
        "VGPU_COMPUTE_CAPABILITY",
        "VGPU_MULTIPROCESSORS",
        "VGPU_DRIVER_VERSION",
        "VGPU_MEMORY_POOLS",
        "VGPU_DEVICES",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = text.contains("1 passed") || text.contains("1 failed");
    assert!(ran, "the child did not run test `{name}`:\n{text}");
    (out.status.success(), text)
}

/// Runs test `name` in a child with `env` and fails unless it passes there.
pub fn in_child(name: &str, env: &[(&str, &str)]) {
    let (passed, text) = run_child(name, env);
    assert!(passed, "`{name}` with {env:?} failed:\n{text}");
}
