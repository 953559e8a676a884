//! Compiles every `kernels/*.cu` source to PTX with NVRTC, once per virtual architecture, and
//! embeds the PTX in the crate (`$OUT_DIR/ptx.rs`, included by `src/ptx.rs`).
//!
//! NVRTC is found without `LD_LIBRARY_PATH`: `ADAPTIVE_POOL_NVRTC` (a path to the library),
//! `CUDA_HOME`/`CUDA_PATH`/`CUDA_ROOT`, `/usr/local/cuda`, a project-local `.nvrtc/` folder
//! (where `.ci/run` installs the `nvidia-cuda-nvrtc` wheel), the wheel in `python3`'s
//! site-packages, then the system's library search path. Where none is found the crate still
//! builds (docs, CPU-only machines) with a warning, and every GPU entry point returns
//! `Error::KernelsNotBuilt`; `ADAPTIVE_POOL_REQUIRE_PTX=1` turns that case into a build failure.
//! A kernel that fails to compile fails the build with NVRTC's log.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Virtual architectures the PTX is built for, when the NVRTC found supports them. Every
/// kernel needs sm_70 at least (f16 and 16-bit CAS atomics); NVRTC 13 starts at compute_75.
const ARCHS: &[u32] = &[70, 75, 80, 90];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "ADAPTIVE_POOL_NVRTC",
        "ADAPTIVE_POOL_REQUIRE_PTX",
        "CUDA_HOME",
        "CUDA_PATH",
        "CUDA_ROOT",
        "LD_LIBRARY_PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let kernel_dir = manifest_dir.join("kernels");
    let require = env::var("ADAPTIVE_POOL_REQUIRE_PTX").is_ok_and(|v| v == "1");

    let generated = match find_and_load_nvrtc(&manifest_dir) {
        Ok(found) => {
            if found.version > (13, 0) {
                println!(
                    "cargo:warning=adaptive-pool: NVRTC {}.{} builds PTX that only drivers for \
                     CUDA {}.{} or newer load; NVRTC 13.0 (`bash .ci/nvrtc.sh`) reaches CUDA \
                     13.0 drivers (r580) too",
                    found.version.0, found.version.1, found.version.0, found.version.1
                );
            }
            build_all(&kernel_dir, &out_dir, &found)
        }
        Err(searched) => {
            let reason = format!(
                "NVRTC was not found (looked in: {searched}); install the CUDA toolkit or \
                 `pip install nvidia-cuda-nvrtc==13.0.*`, or set ADAPTIVE_POOL_NVRTC to the \
                 path of libnvrtc, then rebuild"
            );
            if require {
                panic!("ADAPTIVE_POOL_REQUIRE_PTX=1 but the kernels cannot be built: {reason}");
            }
            println!(
                "cargo:warning=adaptive-pool: building without GPU kernels; every GPU entry \
                 point will return Error::KernelsNotBuilt. {reason}"
            );
            format!(
                "/// Why no PTX is embedded.\npub(crate) const NOT_BUILT_REASON: Option<&str> = \
                 Some({reason:?});\n/// NVRTC version that built the PTX.\npub(crate) const \
                 NVRTC_VERSION: Option<(i32, i32)> = None;\n/// Every embedded PTX \
                 variant.\npub(crate) static VARIANTS: &[PtxVariant] = &[];\n"
            )
        }
    };
    fs::write(out_dir.join("ptx.rs"), generated).expect("writing $OUT_DIR/ptx.rs");
}

/// NVRTC that was found and loaded into this process.
struct Nvrtc {
    version: (i32, i32),
    supported_archs: Vec<u32>,
}

/// Compiles every kernel source for every supported architecture and returns the Rust source
/// that embeds the results.
fn build_all(kernel_dir: &Path, out_dir: &Path, nvrtc: &Nvrtc) -> String {
    let mut sources: Vec<PathBuf> = fs::read_dir(kernel_dir)
        .expect("reading kernels/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();
    let archs: Vec<u32> = ARCHS
        .iter()
        .copied()
        .filter(|a| nvrtc.supported_archs.contains(a))
        .collect();
    if archs.is_empty() {
        panic!(
            "NVRTC {}.{} supports none of the architectures this crate builds ({ARCHS:?}); it \
             supports {:?}",
            nvrtc.version.0, nvrtc.version.1, nvrtc.supported_archs
        );
    }

    let mut rs = String::new();
    rs.push_str(
        "/// Why no PTX is embedded.\npub(crate) const NOT_BUILT_REASON: Option<&str> = None;\n",
    );
    let _ = writeln!(
        rs,
        "/// NVRTC version that built the PTX.\npub(crate) const NVRTC_VERSION: Option<(i32, \
         i32)> = Some(({}, {}));",
        nvrtc.version.0, nvrtc.version.1
    );
    rs.push_str(
        "/// Every embedded PTX variant.\npub(crate) static VARIANTS: &[PtxVariant] = &[\n",
    );
    for src_path in &sources {
        let module = src_path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("kernel file names are UTF-8");
        let src = fs::read_to_string(src_path).expect("reading a kernel source");
        for &arch in &archs {
            let arch_name: &'static str = match arch {
                70 => "compute_70",
                75 => "compute_75",
                80 => "compute_80",
                90 => "compute_90",
                _ => unreachable!("ARCHS lists only these"),
            };
            let opts = cudarc::nvrtc::CompileOptions {
                arch: Some(arch_name),
                include_paths: vec![kernel_dir.display().to_string()],
                options: vec!["--std=c++17".into()],
                name: Some(format!("{module}.cu")),
                ..Default::default()
            };
            let ptx = match cudarc::nvrtc::compile_ptx_with_opts(&src, opts) {
                Ok(ptx) => ptx.to_src(),
                Err(cudarc::nvrtc::CompileError::CompileError { log, options, .. }) => panic!(
                    "NVRTC failed to compile kernels/{module}.cu for {arch_name} (options \
                     {options:?}):\n{}",
                    log.to_string_lossy()
                ),
                Err(e) => panic!("NVRTC failed on kernels/{module}.cu for {arch_name}: {e}"),
            };
            let file = out_dir.join(format!("{module}.sm{arch}.ptx"));
            fs::write(&file, &ptx).expect("writing PTX to OUT_DIR");
            let _ = writeln!(
                rs,
                "    PtxVariant {{ module: {module:?}, arch: {arch}, ptx: include_str!({:?}) }},",
                file.display().to_string()
            );
        }
    }
    rs.push_str("];\n");
    rs
}

/// Finds libnvrtc, loads it into this process so that cudarc's loader (which opens it by its
/// soname) finds it, and returns its version; on failure returns where it looked.
fn find_and_load_nvrtc(manifest_dir: &Path) -> Result<Nvrtc, String> {
    let mut searched: Vec<String> = Vec::new();
    for candidate in nvrtc_candidates(manifest_dir) {
        let place = candidate.parent().map_or_else(
            || candidate.display().to_string(),
            |d| d.display().to_string(),
        );
        if !searched.contains(&place) {
            searched.push(place);
        }
        if candidate.is_file() && preload_builtins_beside(&candidate) && preload(&candidate) {
            println!("cargo:rerun-if-changed={}", candidate.display());
            return query_nvrtc().ok_or_else(|| searched.join(", "));
        }
    }
    searched.push("the system library path".into());
    // SAFETY: `is_culib_present` only tries to open the library by name; no symbol is called.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return query_nvrtc().ok_or_else(|| searched.join(", "));
    }
    Err(searched.join(", "))
}

/// NVRTC opens `libnvrtc-builtins.so.X.Y` by name when it compiles; load the one beside the
/// library first, so it is found without `LD_LIBRARY_PATH`. True when there is none to load.
fn preload_builtins_beside(nvrtc: &Path) -> bool {
    let Some(dir) = nvrtc.parent() else {
        return true;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return true;
    };
    let mut builtins: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so"))
        })
        .collect();
    builtins.sort();
    builtins.iter().all(|b| preload(b))
}

/// Every path where a libnvrtc may be, in order of preference.
fn nvrtc_candidates(manifest_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(p) = env::var_os("ADAPTIVE_POOL_NVRTC") {
        files.push(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Some(root) = env::var_os(var) {
            let root = PathBuf::from(root);
            dirs.push(root.join("lib64"));
            dirs.push(root.join("lib"));
            dirs.push(root.join("targets/x86_64-linux/lib"));
            dirs.push(root.join("targets/sbsa-linux/lib"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs.push(PathBuf::from("/usr/local/cuda/targets/x86_64-linux/lib"));
    for wheel_root in [manifest_dir.join(".nvrtc/nvidia")]
        .into_iter()
        .chain(python_nvidia_dirs())
    {
        // nvidia-cuda-nvrtc 13.x lays out nvidia/cu13/lib, 12.x nvidia/cuda_nvrtc/lib.
        for sub in ["cu13/lib", "cuda_nvrtc/lib", "cu12/lib"] {
            dirs.push(wheel_root.join(sub));
        }
    }
    for dir in dirs {
        for name in ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"] {
            files.push(dir.join(name));
        }
    }
    files
}

/// The `nvidia` namespace package directories of `python3`'s site-packages, if any.
fn python_nvidia_dirs() -> Vec<PathBuf> {
    let script = "import nvidia, os; print(os.pathsep.join(nvidia.__path__))";
    let Ok(out) = Command::new("python3").args(["-c", script]).output() else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(unix)]
fn preload(path: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    extern "C" {
        fn dlopen(filename: *const std::ffi::c_char, flags: std::ffi::c_int) -> *mut ();
    }
    const RTLD_NOW: std::ffi::c_int = 2;
    const RTLD_GLOBAL: std::ffi::c_int = 0x100;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call; dlopen has no other
    // preconditions. The handle is deliberately leaked: the library stays loaded for the
    // lifetime of the build script, which is what lets cudarc find it by soname.
    let handle = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW | RTLD_GLOBAL) };
    !handle.is_null()
}

#[cfg(not(unix))]
fn preload(path: &Path) -> bool {
    // Elsewhere the loader searches PATH: put the library's folder there.
    if let Some(dir) = path.parent() {
        let mut paths: Vec<PathBuf> = env::var_os("PATH")
            .map(|p| env::split_paths(&p).collect())
            .unwrap_or_default();
        paths.insert(0, dir.to_path_buf());
        if let Ok(joined) = env::join_paths(paths) {
            env::set_var("PATH", joined);
        }
    }
    true
}

/// Reads NVRTC's version and supported architectures, or None if the library misbehaves.
fn query_nvrtc() -> Option<Nvrtc> {
    use cudarc::nvrtc::sys;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both out-pointers point at live locals; the library was found above, so cudarc's
    // loader does not abort.
    let rc = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    if rc != sys::nvrtcResult::NVRTC_SUCCESS {
        return None;
    }
    let mut count = 0;
    // SAFETY: out-pointer to a live local.
    let rc = unsafe { sys::nvrtcGetNumSupportedArchs(&mut count) };
    if rc != sys::nvrtcResult::NVRTC_SUCCESS || count <= 0 {
        return None;
    }
    let mut archs = vec![0i32; count as usize];
    // SAFETY: `archs` has room for the `count` entries NVRTC just reported.
    let rc = unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
    if rc != sys::nvrtcResult::NVRTC_SUCCESS {
        return None;
    }
    Some(Nvrtc {
        version: (major, minor),
        supported_archs: archs.into_iter().map(|a| a as u32).collect(),
    })
}
