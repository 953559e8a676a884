//! The `VGPU_*` variables, each read once at `cuInit`: every test here runs its body in a child
//! process with the configuration under test.
#![allow(clippy::macro_metavars_in_unsafe)] // `raw!` passes plain values (see common)

mod common;

use std::ffi::c_char;
use std::ptr::null_mut;

use common::{in_child, is_child, kernels, last_report, run_child, KERNELS};
use cudarc::driver::sys::{self, CUresult};
use cudarc::driver::{CudaContext, DevicePtr, DriverError, PushKernelArg};

const OK: CUresult = CUresult::CUDA_SUCCESS;

fn attribute(a: sys::CUdevice_attribute, dev: i32) -> i32 {
    let mut v = -1;
    assert_eq!(raw!(cuDeviceGetAttribute(&mut v, a, dev)), OK, "{a:?}");
    v
}

fn load(ptx: &str) -> CUresult {
    let c = std::ffi::CString::new(ptx).unwrap();
    let mut m = null_mut();
    raw!(cuModuleLoadData(&mut m, c.as_ptr().cast()))
}

#[test]
fn compute_capability_75() {
    if !is_child() {
        return in_child(
            "compute_capability_75",
            &[("VGPU_COMPUTE_CAPABILITY", "75")],
        );
    }
    let ctx = common::primary();
    assert_eq!(ctx.compute_capability().unwrap(), (7, 5));
    use sys::CUdevice_attribute::*;
    assert_eq!(
        attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 0),
        64 * 1024
    );
    assert_eq!(
        attribute(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 0),
        1024
    );
    assert_eq!(load(KERNELS), OK, ".target sm_75 runs on 7.5");
    let sm80 = KERNELS.replace(".target sm_75", ".target sm_80");
    assert_eq!(load(&sm80), CUresult::CUDA_ERROR_INVALID_PTX);
    let report = last_report();
    assert!(
        report.contains("sm_80") && report.contains("7.5"),
        "{report}"
    );
}

#[test]
fn compute_capability_86_and_multiprocessors() {
    if !is_child() {
        return in_child(
            "compute_capability_86_and_multiprocessors",
            &[
                ("VGPU_COMPUTE_CAPABILITY", "86"),
                ("VGPU_MULTIPROCESSORS", "7"),
            ],
        );
    }
    let ctx = common::primary();
    assert_eq!(ctx.compute_capability().unwrap(), (8, 6));
    assert_eq!(
        attribute(
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            0
        ),
        7
    );
    let sm80 = KERNELS.replace(".target sm_75", ".target sm_80");
    assert_eq!(load(&sm80), OK, "PTX for 8.0 runs on 8.6");
}

#[test]
fn driver_version_12080() {
    if !is_child() {
        return in_child("driver_version_12080", &[("VGPU_DRIVER_VERSION", "12080")]);
    }
    common::init();
    let mut v = 0;
    assert_eq!(raw!(cuDriverGetVersion(&mut v)), OK);
    assert_eq!(v, 12080);
    let ctx = common::primary();
    let _ = &ctx;
    let isa = |version: &str| KERNELS.replace(".version 8.0", &format!(".version {version}"));
    assert_eq!(load(&isa("8.7")), OK, "CUDA 12.8 loads PTX ISA 8.7");
    assert_eq!(
        load(&isa("8.8")),
        CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
    );
    assert_eq!(
        load(&isa("9.0")),
        CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
    );
    let report = last_report();
    assert!(
        report.contains("PTX ISA 9.0") && report.contains("CUDA 12.8") && report.contains("8.7"),
        "{report}"
    );
    // cudarc surfaces the code the crate maps to its PtxTooNew error.
    let err = ctx
        .load_module(cudarc::nvrtc::Ptx::from_src(isa("9.0")))
        .unwrap_err();
    assert_eq!(
        err,
        DriverError(CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
    );
}

#[test]
fn memory_pools_off() {
    if !is_child() {
        return in_child("memory_pools_off", &[("VGPU_MEMORY_POOLS", "0")]);
    }
    let ctx = common::primary();
    assert_eq!(
        attribute(
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
            0
        ),
        0
    );
    assert!(!ctx.has_async_alloc());
    let mut p = 0;
    assert_eq!(
        raw!(cuMemAllocAsync(&mut p, 64, null_mut())),
        CUresult::CUDA_ERROR_NOT_SUPPORTED
    );
    // cudarc uses cuMemAlloc / cuMemFree instead.
    let s = ctx.default_stream();
    let buf = s.clone_htod(&[1.5f32, 2.5]).unwrap();
    assert_eq!(s.clone_dtoh(&buf).unwrap(), vec![1.5, 2.5]);
    drop(buf);
    ctx.synchronize().unwrap();
    assert_eq!(
        raw!(cuMemAlloc_v2(&mut p, 0)),
        CUresult::CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        s.null::<f32>().unwrap_err(),
        DriverError(CUresult::CUDA_ERROR_INVALID_VALUE)
    );
}

#[test]
fn two_devices() {
    if !is_child() {
        return in_child("two_devices", &[("VGPU_DEVICES", "2")]);
    }
    common::load_driver();
    assert_eq!(CudaContext::device_count().unwrap(), 2);
    let dev1 = CudaContext::new(1).unwrap();
    let s1 = dev1.new_stream().unwrap();
    let buf1 = s1.clone_htod(&[1u32, 2, 3, 4]).unwrap();
    let dev0 = CudaContext::new(0).unwrap();
    assert_ne!(dev0.cu_ctx(), dev1.cu_ctx());
    assert_eq!(dev1.ordinal(), 1);
    // A copy between devices: cuMemcpyPeerAsync on the destination's stream, after an event
    // of the source's.
    let s0 = dev0.new_stream().unwrap();
    let mut buf0 = s0.alloc_zeros::<u32>(4).unwrap();
    s0.memcpy_dtod(&buf1, &mut buf0).unwrap();
    assert_eq!(s0.clone_dtoh(&buf0).unwrap(), vec![1, 2, 3, 4]);
    // A kernel on device 0 cannot use device 1's memory.
    let store = kernels(&dev0).load_function("store_at").unwrap();
    let ptr = buf1.device_ptr(buf1.stream()).0;
    dev0.bind_to_thread().unwrap();
    let offset = 0u64;
    let mut b = s0.launch_builder(&store);
    b.arg(&ptr).arg(&offset);
    // SAFETY: a store into another device's buffer, which the vgpu must refuse.
    unsafe { b.launch(common::ONE_THREAD) }.unwrap();
    assert_eq!(
        s0.synchronize().unwrap_err(),
        DriverError(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS)
    );
    assert!(last_report().contains("device 1"), "{}", last_report());
    assert_eq!(
        s1.clone_dtoh(&buf1).unwrap(),
        vec![1, 2, 3, 4],
        "device 1 carries on"
    );
}

/// On the legacy default streams, cudarc 0.19's `memcpy_dtod` between devices queues the peer
/// copy on the source device's legacy stream: the temporary event it waits on is dropped first,
/// and its drop makes the source context current, which the null stream handle then means.
/// The copy is then unordered with the destination stream's later work, and the vgpu reports
/// the race.
#[test]
fn cudarc_peer_copy_on_default_streams_is_unordered() {
    if !is_child() {
        return in_child(
            "cudarc_peer_copy_on_default_streams_is_unordered",
            &[("VGPU_DEVICES", "2")],
        );
    }
    common::load_driver();
    let dev1 = CudaContext::new(1).unwrap();
    let buf1 = dev1.default_stream().clone_htod(&[1u32, 2, 3, 4]).unwrap();
    let dev0 = CudaContext::new(0).unwrap();
    let s0 = dev0.default_stream();
    let mut buf0 = s0.alloc_zeros::<u32>(4).unwrap();
    s0.memcpy_dtod(&buf1, &mut buf0).unwrap();
    assert_eq!(
        s0.clone_dtoh(&buf0).unwrap_err(),
        DriverError(CUresult::CUDA_ERROR_LAUNCH_FAILED)
    );
    let report = last_report();
    assert!(
        report.contains("cross-stream race") && report.contains("memcpy DtoD"),
        "{report}"
    );
}

#[test]
fn no_devices() {
    if !is_child() {
        return in_child("no_devices", &[("VGPU_DEVICES", "0")]);
    }
    common::load_driver();
    assert_eq!(raw!(cuInit(0)), CUresult::CUDA_ERROR_NO_DEVICE);
    assert_eq!(
        raw!(cuInit(0)),
        CUresult::CUDA_ERROR_NO_DEVICE,
        "the same answer again"
    );
    let mut n = 0;
    assert_eq!(
        raw!(cuDeviceGetCount(&mut n)),
        CUresult::CUDA_ERROR_NOT_INITIALIZED
    );
    assert!(CudaContext::new(0).is_err());
}

/// Each invalid value makes `cuInit` fail with CUDA_ERROR_INVALID_VALUE and a message on
/// stderr naming the variable; nothing panics.
#[test]
fn invalid_values_fail_init_with_a_message() {
    if is_child() {
        common::load_driver();
        assert_eq!(raw!(cuInit(0)), CUresult::CUDA_ERROR_INVALID_VALUE);
        let mut p = null_mut();
        assert_eq!(
            raw!(cuDevicePrimaryCtxRetain(&mut p, 0)),
            CUresult::CUDA_ERROR_NOT_INITIALIZED
        );
        let mut name: *const c_char = std::ptr::null();
        assert_eq!(
            raw!(cuGetErrorName(
                CUresult::CUDA_ERROR_INVALID_VALUE,
                &mut name
            )),
            OK,
            "error strings still work"
        );
        return;
    }
    for (var, value) in [
        ("VGPU_COMPUTE_CAPABILITY", "sm_90"),
        ("VGPU_COMPUTE_CAPABILITY", "9"),
        ("VGPU_MULTIPROCESSORS", "0"),
        ("VGPU_DRIVER_VERSION", "13.0"),
        ("VGPU_DRIVER_VERSION", "13005"),
        ("VGPU_MEMORY_POOLS", "true"),
        ("VGPU_DEVICES", "-1"),
    ] {
        let (passed, output) =
            run_child("invalid_values_fail_init_with_a_message", &[(var, value)]);
        assert!(passed, "{var}={value}:\n{output}");
        assert!(
            output.contains(&format!("vgpu: cuInit failed: {var}=\"{value}\"")),
            "stderr names {var}={value}:\n{output}"
        );
    }
}
