//! The PTX that `build.rs` compiled from `kernels/*.cu` with NVRTC and embedded in the crate.
//!
//! One variant per kernel module (a `.cu` file) and virtual architecture. At run time the
//! crate loads, for each module, the highest architecture not above the device's compute
//! capability.

/// One module's PTX for one virtual architecture.
#[derive(Clone, Copy, Debug)]
pub struct PtxVariant {
    /// The kernel source it came from: `kernels/<module>.cu`.
    pub module: &'static str,
    /// The virtual architecture, as `major * 10 + minor` (`80` is `compute_80`).
    pub arch: u32,
    /// The PTX text.
    pub ptx: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));

/// Every embedded variant: empty when the crate was built without NVRTC.
pub fn variants() -> &'static [PtxVariant] {
    VARIANTS
}

/// Why no PTX is embedded (NVRTC was not found at build time), or `None` when it is.
pub fn not_built_reason() -> Option<&'static str> {
    NOT_BUILT_REASON
}

/// The `(major, minor)` version of the NVRTC that built the PTX.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    NVRTC_VERSION
}

/// The architectures built, ascending.
pub fn archs() -> Vec<u32> {
    let mut archs: Vec<u32> = VARIANTS.iter().map(|v| v.arch).collect();
    archs.sort_unstable();
    archs.dedup();
    archs
}

/// The module names built, in a fixed order.
pub fn modules() -> Vec<&'static str> {
    let mut modules: Vec<&'static str> = VARIANTS.iter().map(|v| v.module).collect();
    modules.sort_unstable();
    modules.dedup();
    modules
}

/// The highest architecture built that a device of compute capability `cc`
/// (`major * 10 + minor`) can run, or `None` if the device is older than all of them.
pub fn select_arch(cc: u32) -> Option<u32> {
    archs().into_iter().filter(|&a| a <= cc).max()
}

/// The PTX of `module` for `arch`.
pub fn get(module: &str, arch: u32) -> Option<&'static str> {
    VARIANTS
        .iter()
        .find(|v| v.module == module && v.arch == arch)
        .map(|v| v.ptx)
}
