//! Each exported function against the driver API's documented behaviour, with good and bad
//! arguments: null pointers, invalid handles, handles of the wrong kind, the wrong context.
//! Called through cudarc's raw bindings (`cudarc::driver::sys`), which resolve each symbol in
//! the loaded vgpu as they would in the NVIDIA driver.
#![allow(clippy::macro_metavars_in_unsafe)] // `raw!` passes plain values (see common)

mod common;

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::ptr::{null, null_mut};

use common::{init, kernels, last_report, own_context, primary, KERNELS};
use cudarc::driver::sys::{self, CUresult};
use cudarc::driver::{CudaContext, DevicePtr, DevicePtrMut, PushKernelArg};

const OK: CUresult = CUresult::CUDA_SUCCESS;
const INVALID_VALUE: CUresult = CUresult::CUDA_ERROR_INVALID_VALUE;
const INVALID_HANDLE: CUresult = CUresult::CUDA_ERROR_INVALID_HANDLE;
const INVALID_CONTEXT: CUresult = CUresult::CUDA_ERROR_INVALID_CONTEXT;
const NOT_SUPPORTED: CUresult = CUresult::CUDA_ERROR_NOT_SUPPORTED;

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("no NUL")
}

#[test]
fn init_and_version() {
    common::load_driver();
    assert_eq!(raw!(cuInit(1)), INVALID_VALUE, "flags must be 0");
    assert_eq!(raw!(cuInit(0)), OK);
    assert_eq!(raw!(cuInit(0)), OK, "a second cuInit is fine");
    let mut v = 0;
    assert_eq!(raw!(cuDriverGetVersion(&mut v)), OK);
    assert_eq!(v, 13000, "VGPU_DRIVER_VERSION's default");
    assert_eq!(raw!(cuDriverGetVersion(null_mut())), INVALID_VALUE);
}

#[test]
fn error_names_and_strings() {
    common::load_driver();
    let mut s: *const c_char = null();
    assert_eq!(
        raw!(cuGetErrorName(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS, &mut s)),
        OK
    );
    // SAFETY: the driver returned a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(s) }.to_str().unwrap();
    assert_eq!(name, "CUDA_ERROR_ILLEGAL_ADDRESS");
    assert_eq!(
        raw!(cuGetErrorString(
            CUresult::CUDA_ERROR_ILLEGAL_ADDRESS,
            &mut s
        )),
        OK
    );
    // SAFETY: as above.
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap();
    assert_eq!(text, "an illegal memory access was encountered");
    assert_eq!(
        raw!(cuGetErrorString(CUresult::CUDA_SUCCESS, null_mut())),
        INVALID_VALUE
    );
    // cudarc's Display goes through cuGetErrorString.
    let shown = format!(
        "{}",
        cudarc::driver::DriverError(CUresult::CUDA_ERROR_NOT_READY)
    );
    assert!(shown.contains("device not ready"), "{shown}");
    // Every code cudarc knows has a name.
    for code in [
        0u32, 1, 2, 3, 100, 101, 200, 201, 209, 218, 222, 400, 500, 600, 700, 716, 719, 801, 999,
    ] {
        // SAFETY: every value here is a variant of the repr(u32) CUresult enum.
        let code: CUresult = unsafe { std::mem::transmute(code) };
        assert_eq!(raw!(cuGetErrorName(code, &mut s)), OK, "{code:?}");
        // SAFETY: as above.
        let name = unsafe { CStr::from_ptr(s) }.to_str().unwrap();
        assert_eq!(name, format!("{code:?}"));
    }
}

#[test]
fn devices_and_attributes() {
    init();
    let mut n = 0;
    assert_eq!(raw!(cuDeviceGetCount(&mut n)), OK);
    assert_eq!(n, 1);
    assert_eq!(raw!(cuDeviceGetCount(null_mut())), INVALID_VALUE);
    let mut dev = -1;
    assert_eq!(raw!(cuDeviceGet(&mut dev, 0)), OK);
    assert_eq!(dev, 0);
    assert_eq!(
        raw!(cuDeviceGet(&mut dev, 1)),
        CUresult::CUDA_ERROR_INVALID_DEVICE
    );
    assert_eq!(
        raw!(cuDeviceGet(&mut dev, -1)),
        CUresult::CUDA_ERROR_INVALID_DEVICE
    );
    assert_eq!(raw!(cuDeviceGet(null_mut(), 0)), INVALID_VALUE);

    let mut name = [0 as c_char; 64];
    assert_eq!(raw!(cuDeviceGetName(name.as_mut_ptr(), 64, 0)), OK);
    // SAFETY: the driver wrote a NUL-terminated name into `name`.
    let text = unsafe { CStr::from_ptr(name.as_ptr()) }.to_str().unwrap();
    assert_eq!(text, "vgpu sm_90 (ptxsim)");
    assert_eq!(raw!(cuDeviceGetName(name.as_mut_ptr(), 5, 0)), OK);
    // SAFETY: as above.
    let short = unsafe { CStr::from_ptr(name.as_ptr()) }.to_str().unwrap();
    assert_eq!(short, "vgpu", "truncated to len - 1 bytes");
    assert_eq!(
        raw!(cuDeviceGetName(name.as_mut_ptr(), 0, 0)),
        INVALID_VALUE
    );
    assert_eq!(raw!(cuDeviceGetName(null_mut(), 64, 0)), INVALID_VALUE);
    assert_eq!(
        raw!(cuDeviceGetName(name.as_mut_ptr(), 64, 3)),
        CUresult::CUDA_ERROR_INVALID_DEVICE
    );

    use sys::CUdevice_attribute::*;
    let attr = |a| {
        let mut v = -1;
        let rc = raw!(cuDeviceGetAttribute(&mut v, a, 0));
        (rc, v)
    };
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), (OK, 9));
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), (OK, 0));
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), (OK, 132));
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED), (OK, 1));
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK), (OK, 1024));
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_WARP_SIZE), (OK, 32));
    assert_eq!(
        attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
        (OK, 227 * 1024)
    );
    // Not modelled: an error, never an invented value.
    assert_eq!(attr(CU_DEVICE_ATTRIBUTE_CLOCK_RATE).0, NOT_SUPPORTED);
    assert!(last_report().contains("not modelled"), "{}", last_report());
    let mut v = 0;
    assert_eq!(
        raw!(cuDeviceGetAttribute(
            null_mut(),
            CU_DEVICE_ATTRIBUTE_WARP_SIZE,
            0
        )),
        INVALID_VALUE
    );
    assert_eq!(
        raw!(cuDeviceGetAttribute(
            &mut v,
            CU_DEVICE_ATTRIBUTE_WARP_SIZE,
            1
        )),
        CUresult::CUDA_ERROR_INVALID_DEVICE
    );

    let mut bytes = 0usize;
    assert_eq!(raw!(cuDeviceTotalMem_v2(&mut bytes, 0)), OK);
    assert_eq!(bytes, 80_000_000_000);
    assert_eq!(raw!(cuDeviceTotalMem_v2(null_mut(), 0)), INVALID_VALUE);
    let mut uuid = sys::CUuuid { bytes: [0; 16] };
    assert_eq!(raw!(cuDeviceGetUuid_v2(&mut uuid, 0)), OK);
    assert!(uuid.bytes.iter().any(|&b| b != 0));
    assert_eq!(raw!(cuDeviceGetUuid_v2(null_mut(), 0)), INVALID_VALUE);

    // cudarc's safe API over the same calls.
    let ctx = primary();
    assert_eq!(ctx.compute_capability().unwrap(), (9, 0));
    assert_eq!(ctx.name().unwrap(), "vgpu sm_90 (ptxsim)");
    assert_eq!(CudaContext::device_count().unwrap(), 1);
    assert!(ctx.has_async_alloc());
    assert!(CudaContext::new(1).is_err(), "only one device");
}

#[test]
fn primary_context_is_shared_until_the_last_release() {
    init();
    // Device 0's primary context may be retained by other tests of this process: compare
    // handles and counts relative to this test's own retains.
    let mut a = null_mut();
    let mut b = null_mut();
    assert_eq!(raw!(cuDevicePrimaryCtxRetain(&mut a, 0)), OK);
    assert_eq!(raw!(cuDevicePrimaryCtxRetain(&mut b, 0)), OK);
    assert_eq!(a, b, "the same primary context");
    let (mut flags, mut active): (c_uint, c_int) = (9, 9);
    assert_eq!(
        raw!(cuDevicePrimaryCtxGetState(0, &mut flags, &mut active)),
        OK
    );
    assert_eq!(active, 1);
    assert_eq!(raw!(cuDevicePrimaryCtxRelease_v2(0)), OK);
    assert_eq!(raw!(cuDevicePrimaryCtxRelease_v2(0)), OK);
    assert_eq!(raw!(cuDevicePrimaryCtxRetain(null_mut(), 0)), INVALID_VALUE);
    assert_eq!(
        raw!(cuDevicePrimaryCtxRetain(&mut a, 7)),
        CUresult::CUDA_ERROR_INVALID_DEVICE
    );
    assert_eq!(
        raw!(cuDevicePrimaryCtxGetState(0, null_mut(), &mut active)),
        INVALID_VALUE
    );
    // A primary context is released, not destroyed.
    assert_eq!(raw!(cuDevicePrimaryCtxRetain(&mut a, 0)), OK);
    assert_eq!(raw!(cuCtxDestroy_v2(a)), INVALID_CONTEXT);
    assert_eq!(raw!(cuDevicePrimaryCtxRelease_v2(0)), OK);
}

/// In a process of its own: the last release destroys the primary context, and a release
/// without a retain is an error.
#[test]
fn primary_context_release_to_zero() {
    if !common::is_child() {
        return common::in_child("primary_context_release_to_zero", &[]);
    }
    init();
    let mut a = null_mut();
    assert_eq!(
        raw!(cuDevicePrimaryCtxRelease_v2(0)),
        INVALID_CONTEXT,
        "nothing to release"
    );
    assert_eq!(raw!(cuDevicePrimaryCtxRetain(&mut a, 0)), OK);
    assert_eq!(raw!(cuCtxSetCurrent(a)), OK);
    let mut p = 0;
    assert_eq!(raw!(cuMemAlloc_v2(&mut p, 64)), OK);
    assert_eq!(raw!(cuDevicePrimaryCtxRelease_v2(0)), OK);
    let (mut flags, mut active): (c_uint, c_int) = (9, 9);
    assert_eq!(
        raw!(cuDevicePrimaryCtxGetState(0, &mut flags, &mut active)),
        OK
    );
    assert_eq!(active, 0);
    assert_eq!(
        raw!(cuMemAlloc_v2(&mut p, 64)),
        CUresult::CUDA_ERROR_CONTEXT_IS_DESTROYED,
        "the current context is gone"
    );
    assert_eq!(
        raw!(cuMemFree_v2(p)),
        CUresult::CUDA_ERROR_CONTEXT_IS_DESTROYED
    );
    let mut b = null_mut();
    assert_eq!(raw!(cuDevicePrimaryCtxRetain(&mut b, 0)), OK);
    assert_ne!(a, b, "a new primary context");
    assert_eq!(raw!(cuCtxSetCurrent(b)), OK);
    assert_eq!(
        raw!(cuMemFree_v2(p)),
        INVALID_VALUE,
        "its memory went with it"
    );
}

#[test]
fn contexts_current_and_stack() {
    init();
    // A thread of its own, so the context stack starts empty.
    std::thread::spawn(|| {
        let mut cur = 1 as sys::CUcontext;
        assert_eq!(raw!(cuCtxGetCurrent(&mut cur)), OK);
        assert!(cur.is_null(), "no context yet");
        let mut p = 0;
        assert_eq!(raw!(cuMemAlloc_v2(&mut p, 16)), INVALID_CONTEXT);
        assert!(last_report().contains("no context is current"));
        assert_eq!(raw!(cuCtxSynchronize()), INVALID_CONTEXT);
        let mut dev = 0;
        assert_eq!(raw!(cuCtxGetDevice(&mut dev)), INVALID_CONTEXT);

        let mut c1 = null_mut();
        assert_eq!(raw!(cuCtxCreate_v4(&mut c1, null_mut(), 0, 0)), OK);
        assert_eq!(raw!(cuCtxGetCurrent(&mut cur)), OK);
        assert_eq!(cur, c1, "cuCtxCreate makes it current");
        assert_eq!(raw!(cuCtxGetDevice(&mut dev)), OK);
        assert_eq!(dev, 0);
        let mut c2 = null_mut();
        let create_v2: unsafe extern "C" fn(*mut sys::CUcontext, c_uint, c_int) -> CUresult =
            // SAFETY: cuCtxCreate_v2(CUcontext*, unsigned int, CUdevice) in cuda.h.
            unsafe { std::mem::transmute(common::symbol("cuCtxCreate_v2")) };
        // SAFETY: a live out-pointer.
        assert_eq!(unsafe { create_v2(&mut c2, 0, 0) }, OK);
        assert_ne!(c1, c2);
        let mut popped = null_mut();
        assert_eq!(raw!(cuCtxPopCurrent_v2(&mut popped)), OK);
        assert_eq!(popped, c2);
        assert_eq!(raw!(cuCtxGetCurrent(&mut cur)), OK);
        assert_eq!(cur, c1, "the one below comes back");
        assert_eq!(raw!(cuCtxPushCurrent_v2(c2)), OK);
        assert_eq!(raw!(cuCtxSetCurrent(c1)), OK, "replaces the top");
        assert_eq!(raw!(cuCtxGetCurrent(&mut cur)), OK);
        assert_eq!(cur, c1);
        assert_eq!(raw!(cuCtxDestroy_v2(c2)), OK);
        assert_eq!(
            raw!(cuCtxDestroy_v2(c2)),
            CUresult::CUDA_ERROR_CONTEXT_IS_DESTROYED
        );
        assert_eq!(
            raw!(cuCtxSetCurrent(c2)),
            CUresult::CUDA_ERROR_CONTEXT_IS_DESTROYED
        );
        assert_eq!(
            raw!(cuCtxSetCurrent(0x1234 as sys::CUcontext)),
            INVALID_CONTEXT
        );
        assert_eq!(raw!(cuCtxPushCurrent_v2(null_mut())), INVALID_CONTEXT);
        assert_eq!(
            raw!(cuCtxCreate_v4(null_mut(), null_mut(), 0, 0)),
            INVALID_VALUE
        );
        assert_eq!(
            raw!(cuCtxCreate_v4(&mut c2, null_mut(), 0, 5)),
            CUresult::CUDA_ERROR_INVALID_DEVICE
        );
        assert_eq!(raw!(cuCtxGetCurrent(null_mut())), INVALID_VALUE);
        let mut flags = 7;
        assert_eq!(raw!(cuCtxSetFlags(4)), OK);
        assert_eq!(raw!(cuCtxGetFlags(&mut flags)), OK);
        assert_eq!(flags, 4);
        let (mut least, mut greatest) = (9, 9);
        assert_eq!(
            raw!(cuCtxGetStreamPriorityRange(&mut least, &mut greatest)),
            OK
        );
        assert_eq!((least, greatest), (0, -5));
        let mut api = 0;
        assert_eq!(raw!(cuCtxGetApiVersion(c1, &mut api)), OK);
        assert_eq!(api, 13000);
        assert_eq!(raw!(cuCtxSynchronize()), OK);
        // The stack is [c1, c1]: setting null pops the top.
        assert_eq!(raw!(cuCtxSetCurrent(null_mut())), OK, "unbinds");
        assert_eq!(raw!(cuCtxGetCurrent(&mut cur)), OK);
        assert_eq!(cur, c1, "the one below");
        assert_eq!(raw!(cuCtxSetCurrent(null_mut())), OK);
        assert_eq!(raw!(cuCtxGetCurrent(&mut cur)), OK);
        assert!(cur.is_null());
        assert_eq!(raw!(cuCtxPopCurrent_v2(&mut popped)), INVALID_CONTEXT);
        assert_eq!(raw!(cuCtxDestroy_v2(c1)), OK);
    })
    .join()
    .unwrap();
}

#[test]
fn memory_allocation_and_free() {
    let ctx = own_context(0);
    let _ = &ctx;
    let mut p = 0u64;
    assert_eq!(raw!(cuMemAlloc_v2(&mut p, 0)), INVALID_VALUE, "documented");
    assert!(last_report().contains("bytesize is 0"));
    assert_eq!(raw!(cuMemAlloc_v2(null_mut(), 16)), INVALID_VALUE);
    assert_eq!(raw!(cuMemAlloc_v2(&mut p, 1000)), OK);
    assert_ne!(p, 0);
    assert_eq!(p % 256, 0, "256-byte aligned, as the driver's allocations");
    assert_eq!(
        raw!(cuMemAlloc_v2(&mut p, usize::MAX)),
        CUresult::CUDA_ERROR_OUT_OF_MEMORY
    );
    let (mut free, mut total) = (0usize, 0usize);
    assert_eq!(raw!(cuMemGetInfo_v2(&mut free, &mut total)), OK);
    assert!(free < total);
    assert_eq!(raw!(cuMemGetInfo_v2(null_mut(), &mut total)), INVALID_VALUE);
    // New memory reads as 0xff bytes (NaN), not zeros.
    let mut host = [0u8; 8];
    assert_eq!(raw!(cuMemcpyDtoH_v2(host.as_mut_ptr().cast(), p, 8)), OK);
    assert_eq!(host, [0xff; 8]);
    assert_eq!(
        raw!(cuMemFree_v2(p + 4)),
        INVALID_VALUE,
        "not an allocation's start"
    );
    assert_eq!(raw!(cuMemFree_v2(0)), INVALID_VALUE);
    assert_eq!(raw!(cuMemFree_v2(p)), OK);
    assert_eq!(raw!(cuMemFree_v2(p)), INVALID_VALUE, "double free");

    let mut q = 0u64;
    assert_eq!(raw!(cuMemAllocAsync(&mut q, 0, null_mut())), INVALID_VALUE);
    assert!(last_report().contains("undocumented"));
    assert_eq!(
        raw!(cuMemAllocAsync(null_mut(), 8, null_mut())),
        INVALID_VALUE
    );
    assert_eq!(raw!(cuMemAllocAsync(&mut q, 64, null_mut())), OK);
    assert_eq!(raw!(cuMemFreeAsync(q, null_mut())), OK);
    assert_eq!(
        raw!(cuMemFreeAsync(q, null_mut())),
        INVALID_VALUE,
        "already freed"
    );
    assert_eq!(
        raw!(cuMemsetD8Async(q, 0, 8, null_mut())),
        INVALID_VALUE,
        "no new use after cuMemFreeAsync"
    );
    assert_eq!(
        raw!(cuMemAllocAsync(&mut q, 8, 0x77 as sys::CUstream)),
        INVALID_HANDLE
    );
    assert_eq!(raw!(cuCtxSynchronize()), OK);
}

#[test]
fn copies_and_memsets_check_their_ranges() {
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    let mut buf = stream.alloc_zeros::<u32>(16).unwrap();
    let p = buf.device_ptr_mut(&stream).0;
    let data: Vec<u32> = (0..16).collect();
    let s = null_mut();
    assert_eq!(
        raw!(cuMemcpyHtoDAsync_v2(p, data.as_ptr().cast(), 64, s)),
        OK
    );
    assert_eq!(
        raw!(cuMemcpyHtoDAsync_v2(p, data.as_ptr().cast(), 65, s)),
        INVALID_VALUE,
        "one byte past the allocation"
    );
    assert!(
        last_report().contains("run past the end"),
        "{}",
        last_report()
    );
    assert_eq!(
        raw!(cuMemcpyHtoDAsync_v2(p + 4, data.as_ptr().cast(), 64, s)),
        INVALID_VALUE
    );
    assert_eq!(raw!(cuMemcpyHtoDAsync_v2(p, null(), 64, s)), INVALID_VALUE);
    assert_eq!(
        raw!(cuMemcpyHtoDAsync_v2(p, null(), 0, s)),
        OK,
        "zero bytes"
    );
    assert_eq!(
        raw!(cuMemcpyHtoDAsync_v2(0x10, data.as_ptr().cast(), 4, s)),
        INVALID_VALUE,
        "not device memory"
    );
    let mut back = vec![0u32; 16];
    assert_eq!(
        raw!(cuMemcpyDtoHAsync_v2(back.as_mut_ptr().cast(), p, 64, s)),
        OK
    );
    assert_eq!(back, data);
    assert_eq!(
        raw!(cuMemcpyDtoHAsync_v2(null_mut(), p, 64, s)),
        INVALID_VALUE
    );
    assert_eq!(
        raw!(cuMemcpyDtoHAsync_v2(back.as_mut_ptr().cast(), p + 8, 64, s)),
        INVALID_VALUE
    );

    // Memsets: value pattern, alignment of 16/32-bit ones, range.
    assert_eq!(raw!(cuMemsetD32Async(p + 4, 0xdead_beef, 2, s)), OK);
    assert_eq!(raw!(cuMemsetD16Async(p + 12, 0x1234, 2, s)), OK);
    assert_eq!(raw!(cuMemsetD8Async(p + 16, 0xab, 4, s)), OK);
    assert_eq!(
        raw!(cuMemsetD32Async(p + 2, 0, 1, s)),
        INVALID_VALUE,
        "misaligned"
    );
    assert_eq!(
        raw!(cuMemsetD16Async(p + 1, 0, 1, s)),
        INVALID_VALUE,
        "misaligned"
    );
    assert_eq!(raw!(cuMemsetD8Async(p, 0, 65, s)), INVALID_VALUE);
    assert_eq!(raw!(cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p, 64)), OK);
    assert_eq!(
        &back[..6],
        &[0, 0xdead_beef, 0xdead_beef, 0x1234_1234, 0xabab_abab, 5]
    );

    // Device to device, synchronous copies.
    let mut other = stream.alloc_zeros::<u32>(16).unwrap();
    let q = other.device_ptr_mut(&stream).0;
    assert_eq!(raw!(cuMemcpyDtoDAsync_v2(q, p, 64, s)), OK);
    assert_eq!(raw!(cuMemcpyDtoDAsync_v2(q, p, 68, s)), INVALID_VALUE);
    assert_eq!(raw!(cuMemcpyHtoD_v2(p, data.as_ptr().cast(), 64)), OK);
    assert_eq!(raw!(cuMemcpyDtoD_v2(q + 4, p, 60)), OK);
    assert_eq!(raw!(cuMemsetD8_v2(q, 9, 4)), OK);
    let mut got = vec![0u32; 16];
    assert_eq!(raw!(cuMemcpyDtoH_v2(got.as_mut_ptr().cast(), q, 64)), OK);
    assert_eq!(got[0], 0x0909_0909);
    assert_eq!(&got[1..], &data[..15]);
}

#[test]
fn modules_are_checked_like_the_jit() {
    let ctx = own_context(0);
    let _ = &ctx;
    let load = |text: &str| {
        let c = cstr(text);
        let mut m = null_mut();
        let rc = raw!(cuModuleLoadData(&mut m, c.as_ptr().cast()));
        (rc, m)
    };
    let (rc, m) = load(KERNELS);
    assert_eq!(rc, OK);
    assert!(!m.is_null());
    assert_eq!(raw!(cuModuleUnload(m)), OK);
    assert_eq!(raw!(cuModuleUnload(m)), INVALID_HANDLE, "already unloaded");

    let too_new = KERNELS.replace(".version 8.0", ".version 9.1");
    assert_eq!(
        load(&too_new).0,
        CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
    );
    let report = last_report();
    assert!(
        report.contains("PTX ISA 9.1") && report.contains("CUDA 13.0"),
        "{report}"
    );
    let newest = KERNELS.replace(".version 8.0", ".version 9.0");
    assert_eq!(load(&newest).0, OK, "PTX ISA 9.0 is CUDA 13.0's");

    let above = KERNELS.replace(".target sm_75", ".target sm_100");
    assert_eq!(load(&above).0, CUresult::CUDA_ERROR_INVALID_PTX);
    assert!(last_report().contains("sm_100"), "{}", last_report());
    let arch_specific = KERNELS.replace(".target sm_75", ".target sm_80a");
    assert_eq!(load(&arch_specific).0, CUresult::CUDA_ERROR_INVALID_PTX);
    let exact = KERNELS.replace(".target sm_75", ".target sm_90a");
    assert_eq!(load(&exact).0, OK);

    let broken = KERNELS.replace("st.global.u32 [%rd4], %r1;", "st.global.u32 [%rd4] %r1;");
    assert_eq!(load(&broken).0, CUresult::CUDA_ERROR_INVALID_PTX);
    assert!(last_report().contains("line"), "{}", last_report());
    assert_eq!(load("hello").0, CUresult::CUDA_ERROR_INVALID_IMAGE);
    let elf = [0x7fu8, b'E', b'L', b'F', 2, 1, 0];
    let mut m2 = null_mut();
    assert_eq!(
        raw!(cuModuleLoadData(&mut m2, elf.as_ptr().cast())),
        NOT_SUPPORTED
    );
    assert_eq!(raw!(cuModuleLoadData(&mut m2, null())), INVALID_VALUE);
    let c = cstr(KERNELS);
    assert_eq!(
        raw!(cuModuleLoadData(null_mut(), c.as_ptr().cast())),
        INVALID_VALUE
    );
    assert_eq!(
        raw!(cuModuleLoadDataEx(
            &mut m2,
            c.as_ptr().cast(),
            1,
            null_mut(),
            null_mut()
        )),
        INVALID_VALUE
    );
    assert_eq!(
        raw!(cuModuleLoadDataEx(
            &mut m2,
            c.as_ptr().cast(),
            0,
            null_mut(),
            null_mut()
        )),
        OK
    );

    let mut f = null_mut();
    let fill = cstr("fill_u32");
    assert_eq!(raw!(cuModuleGetFunction(&mut f, m2, fill.as_ptr())), OK);
    let mut f2 = null_mut();
    assert_eq!(raw!(cuModuleGetFunction(&mut f2, m2, fill.as_ptr())), OK);
    assert_eq!(f, f2, "one handle per kernel");
    let nope = cstr("nope");
    assert_eq!(
        raw!(cuModuleGetFunction(&mut f2, m2, nope.as_ptr())),
        CUresult::CUDA_ERROR_NOT_FOUND
    );
    assert_eq!(
        raw!(cuModuleGetFunction(&mut f2, m2, null())),
        INVALID_VALUE
    );
    assert_eq!(
        raw!(cuModuleGetFunction(null_mut(), m2, fill.as_ptr())),
        INVALID_VALUE
    );
    assert_eq!(
        raw!(cuModuleGetFunction(
            &mut f2,
            f as sys::CUmodule,
            fill.as_ptr()
        )),
        INVALID_HANDLE,
        "a function handle is not a module"
    );

    use sys::CUfunction_attribute::*;
    let mut v = 0;
    let bounded = cstr("bounded");
    let mut fb = null_mut();
    assert_eq!(raw!(cuModuleGetFunction(&mut fb, m2, bounded.as_ptr())), OK);
    assert_eq!(
        raw!(cuFuncGetAttribute(
            &mut v,
            CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
            fb
        )),
        OK
    );
    assert_eq!(v, 64, ".maxntid");
    assert_eq!(
        raw!(cuFuncGetAttribute(&mut v, CU_FUNC_ATTRIBUTE_PTX_VERSION, f)),
        OK
    );
    assert_eq!(v, 80);
    assert_eq!(
        raw!(cuFuncGetAttribute(&mut v, CU_FUNC_ATTRIBUTE_NUM_REGS, f)),
        NOT_SUPPORTED
    );
    assert_eq!(
        raw!(cuFuncGetAttribute(
            null_mut(),
            CU_FUNC_ATTRIBUTE_PTX_VERSION,
            f
        )),
        INVALID_VALUE
    );

    // The module's context must be current.
    let module_handle = m2 as usize;
    std::thread::spawn(move || {
        let m2 = module_handle as sys::CUmodule;
        let mut f3 = null_mut();
        let fill = cstr("fill_u32");
        assert_eq!(
            raw!(cuModuleGetFunction(&mut f3, m2, fill.as_ptr())),
            INVALID_CONTEXT,
            "no context current on this thread"
        );
        let mut c = null_mut();
        assert_eq!(raw!(cuCtxCreate_v4(&mut c, null_mut(), 0, 0)), OK);
        assert_eq!(
            raw!(cuModuleGetFunction(&mut f3, m2, fill.as_ptr())),
            INVALID_CONTEXT,
            "another context is current"
        );
        assert!(
            last_report().contains("belongs to context"),
            "{}",
            last_report()
        );
        assert_eq!(raw!(cuCtxDestroy_v2(c)), OK);
    })
    .join()
    .unwrap();
    assert_eq!(raw!(cuModuleUnload(m2)), OK);
    let mut gone = 0;
    assert_eq!(
        raw!(cuFuncGetAttribute(
            &mut gone,
            CU_FUNC_ATTRIBUTE_PTX_VERSION,
            f
        )),
        INVALID_HANDLE,
        "its functions went with the module"
    );
}

#[test]
fn launches_are_checked_at_the_call() {
    let ctx = own_context(0);
    let module = kernels(&ctx);
    let stream = ctx.default_stream();
    let fill = module.load_function("fill_u32").unwrap().cu_function();
    let bounded = module.load_function("bounded").unwrap().cu_function();
    let params_fn = module.load_function("params").unwrap().cu_function();
    let mut out = stream.alloc_zeros::<u32>(64).unwrap();
    let p = out.device_ptr_mut(&stream).0;
    let (mut value, mut n) = (5u32, 64u32);
    let mut args: [*mut c_void; 3] = [
        (&p as *const u64).cast_mut().cast(),
        (&mut value as *mut u32).cast(),
        (&mut n as *mut u32).cast(),
    ];
    let s = null_mut();
    let launch = |f, grid: [u32; 3], block: [u32; 3], shared, params: *mut *mut c_void, extra| {
        raw!(cuLaunchKernel(
            f, grid[0], grid[1], grid[2], block[0], block[1], block[2], shared, s, params, extra
        ))
    };
    let a = args.as_mut_ptr();
    assert_eq!(launch(fill, [1, 1, 1], [64, 1, 1], 0, a, null_mut()), OK);
    assert_eq!(
        launch(fill, [0, 1, 1], [64, 1, 1], 0, a, null_mut()),
        INVALID_VALUE
    );
    assert_eq!(
        launch(fill, [1, 1, 1], [1025, 1, 1], 0, a, null_mut()),
        INVALID_VALUE
    );
    assert_eq!(
        launch(fill, [1, 1, 1], [32, 32, 2], 0, a, null_mut()),
        INVALID_VALUE
    );
    assert_eq!(
        launch(fill, [1, 1, 1], [1, 1, 65], 0, a, null_mut()),
        INVALID_VALUE
    );
    assert_eq!(
        launch(fill, [1, 65536, 1], [1, 1, 1], 0, a, null_mut()),
        INVALID_VALUE
    );
    assert_eq!(
        launch(fill, [1, 1, 1], [64, 1, 1], 49 * 1024, a, null_mut()),
        INVALID_VALUE,
        "above 48 KiB without opting in"
    );
    assert_eq!(
        launch(fill, [1, 1, 1], [64, 1, 1], 0, null_mut(), null_mut()),
        INVALID_VALUE
    );
    let mut extra = [null_mut::<c_void>(); 1];
    assert_eq!(
        launch(
            fill,
            [1, 1, 1],
            [64, 1, 1],
            0,
            null_mut(),
            extra.as_mut_ptr()
        ),
        NOT_SUPPORTED
    );
    assert_eq!(
        launch(fill, [1, 1, 1], [64, 1, 1], 0, a, extra.as_mut_ptr()),
        INVALID_VALUE
    );
    let mut holes: [*mut c_void; 3] = [args[0], null_mut(), args[2]];
    assert_eq!(
        launch(
            fill,
            [1, 1, 1],
            [64, 1, 1],
            0,
            holes.as_mut_ptr(),
            null_mut()
        ),
        INVALID_VALUE
    );
    assert!(
        last_report().contains("kernelParams[1]"),
        "{}",
        last_report()
    );
    assert_eq!(
        launch(bounded, [1, 1, 1], [65, 1, 1], 0, a, null_mut()),
        CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
        ".maxntid 64"
    );
    assert_eq!(launch(bounded, [1, 1, 1], [64, 1, 1], 0, a, null_mut()), OK);
    let mut other_stream = null_mut();
    assert_eq!(raw!(cuStreamCreate(&mut other_stream, 0)), OK);
    assert_eq!(
        launch(other_stream.cast(), [1, 1, 1], [1, 1, 1], 0, a, null_mut()),
        INVALID_HANDLE,
        "a stream handle is not a function"
    );
    // Dynamic shared memory above 48 KiB after opting in, up to the device's limit.
    use sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as MAX_DYN;
    assert_eq!(raw!(cuFuncSetAttribute(fill, MAX_DYN, 100 * 1024)), OK);
    assert_eq!(
        launch(fill, [1, 1, 1], [64, 1, 1], 100 * 1024, a, null_mut()),
        OK
    );
    assert_eq!(
        raw!(cuFuncSetAttribute(fill, MAX_DYN, 300 * 1024)),
        INVALID_VALUE
    );
    assert_eq!(stream.clone_dtoh(&out).unwrap(), vec![5u32; 64]);

    // Parameters are read with the sizes the PTX declares.
    let mut o = stream.alloc_zeros::<u8>(16).unwrap();
    let po = o.device_ptr_mut(&stream).0;
    let (mut pa, mut pb, mut pc, mut pd) =
        (0xa1u8, 0xb2c3u16, 0xd4e5_f607u32, 0x1122_3344_5566_7788u64);
    let mut pargs: [*mut c_void; 5] = [
        (&po as *const u64).cast_mut().cast(),
        (&mut pa as *mut u8).cast(),
        (&mut pb as *mut u16).cast(),
        (&mut pc as *mut u32).cast(),
        (&mut pd as *mut u64).cast(),
    ];
    assert_eq!(
        launch(
            params_fn,
            [1, 1, 1],
            [1, 1, 1],
            0,
            pargs.as_mut_ptr(),
            null_mut()
        ),
        OK
    );
    let bytes = stream.clone_dtoh(&o).unwrap();
    assert_eq!(bytes[0], 0xa1);
    assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), 0xb2c3);
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
        0xd4e5_f607
    );
    assert_eq!(
        u64::from_le_bytes(bytes[8..16].try_into().unwrap()),
        0x1122_3344_5566_7788
    );
    assert_eq!(
        raw!(cuCtxSynchronize()),
        OK,
        "argument errors are not sticky"
    );
}

#[test]
fn streams_and_events_reject_bad_arguments() {
    let ctx = own_context(0);
    let _ = &ctx;
    let mut s = null_mut();
    assert_eq!(
        raw!(cuStreamCreate(&mut s, 2)),
        INVALID_VALUE,
        "unknown flag"
    );
    assert_eq!(raw!(cuStreamCreate(null_mut(), 0)), INVALID_VALUE);
    assert_eq!(raw!(cuStreamCreateWithPriority(&mut s, 1, -3)), OK);
    let (mut flags, mut prio) = (0, 0);
    assert_eq!(raw!(cuStreamGetFlags(s, &mut flags)), OK);
    assert_eq!(flags, 1);
    assert_eq!(raw!(cuStreamGetPriority(s, &mut prio)), OK);
    assert_eq!(prio, -3);
    let mut c = null_mut();
    assert_eq!(raw!(cuStreamGetCtx(s, &mut c)), OK);
    assert_eq!(c, ctx.cu_ctx());
    assert_eq!(raw!(cuStreamQuery(s)), OK);
    assert_eq!(raw!(cuStreamSynchronize(s)), OK);
    assert_eq!(
        raw!(cuStreamSynchronize(null_mut())),
        OK,
        "the legacy stream"
    );
    assert_eq!(
        raw!(cuStreamSynchronize(0x2 as sys::CUstream)),
        NOT_SUPPORTED,
        "the per-thread default stream"
    );
    assert_eq!(raw!(cuStreamDestroy_v2(s)), OK);
    assert_eq!(raw!(cuStreamDestroy_v2(s)), INVALID_HANDLE);
    assert_eq!(raw!(cuStreamSynchronize(s)), INVALID_HANDLE);
    assert_eq!(raw!(cuStreamDestroy_v2(null_mut())), INVALID_HANDLE);

    let mut e = null_mut();
    assert_eq!(raw!(cuEventCreate(&mut e, 0x8)), INVALID_VALUE);
    assert_eq!(
        raw!(cuEventCreate(&mut e, 0x4)),
        INVALID_VALUE,
        "interprocess needs disable-timing"
    );
    assert_eq!(raw!(cuEventCreate(null_mut(), 0)), INVALID_VALUE);
    assert_eq!(raw!(cuEventCreate(&mut e, 0)), OK);
    let mut ms = 0f32;
    assert_eq!(
        raw!(cuEventElapsedTime_v2(&mut ms, e, e)),
        INVALID_HANDLE,
        "never recorded"
    );
    assert_eq!(
        raw!(cuEventSynchronize(e)),
        OK,
        "never recorded: nothing to wait for"
    );
    assert_eq!(raw!(cuEventQuery(e)), OK);
    let mut s2 = null_mut();
    assert_eq!(raw!(cuStreamCreate(&mut s2, 0)), OK);
    assert_eq!(
        raw!(cuStreamWaitEvent(s2, e, 0)),
        OK,
        "an unrecorded event orders nothing"
    );
    assert_eq!(raw!(cuStreamWaitEvent(s2, e, 4)), INVALID_VALUE);
    assert_eq!(raw!(cuStreamWaitEvent(s2, s2.cast(), 0)), INVALID_HANDLE);
    assert_eq!(raw!(cuEventRecord(e, s2)), OK);
    assert_eq!(raw!(cuEventRecord(s2.cast(), s2)), INVALID_HANDLE);
    assert_eq!(
        raw!(cuEventElapsedTime_v2(&mut ms, e, e)),
        CUresult::CUDA_ERROR_NOT_READY,
        "recorded but not run"
    );
    assert_eq!(raw!(cuEventSynchronize(e)), OK);
    assert_eq!(raw!(cuEventElapsedTime_v2(&mut ms, e, e)), OK);
    assert_eq!(ms, 0.0);
    assert_eq!(raw!(cuEventElapsedTime_v2(null_mut(), e, e)), INVALID_VALUE);
    let mut quiet = null_mut();
    assert_eq!(raw!(cuEventCreate(&mut quiet, 0x2)), OK);
    assert_eq!(raw!(cuEventRecord(quiet, s2)), OK);
    assert_eq!(raw!(cuEventSynchronize(quiet)), OK);
    let elapsed_v1: unsafe extern "C" fn(*mut f32, sys::CUevent, sys::CUevent) -> CUresult =
        // SAFETY: cuEventElapsedTime(float*, CUevent, CUevent) in cuda.h.
        unsafe { std::mem::transmute(common::symbol("cuEventElapsedTime")) };
    // SAFETY: a live out-pointer and event handles.
    assert_eq!(
        unsafe { elapsed_v1(&mut ms, e, e) },
        OK,
        "the unversioned name too"
    );
    // SAFETY: as above.
    assert_eq!(
        unsafe { elapsed_v1(&mut ms, e, quiet) },
        INVALID_HANDLE,
        "timing disabled"
    );
    assert_eq!(raw!(cuEventDestroy_v2(quiet)), OK);
    assert_eq!(raw!(cuEventDestroy_v2(quiet)), INVALID_HANDLE);

    // An event and a stream of different contexts cannot be recorded together; waiting on
    // an event of another context is allowed.
    let mut other_ctx = null_mut();
    assert_eq!(raw!(cuCtxCreate_v4(&mut other_ctx, null_mut(), 0, 0)), OK);
    let mut other_s = null_mut();
    assert_eq!(raw!(cuStreamCreate(&mut other_s, 1)), OK);
    assert_eq!(raw!(cuEventRecord(e, other_s)), INVALID_HANDLE);
    assert_eq!(raw!(cuStreamWaitEvent(other_s, e, 0)), OK);
    assert_eq!(
        raw!(cuStreamSynchronize(s2)),
        OK,
        "a stream carries its context, current or not"
    );
    assert_eq!(raw!(cuCtxDestroy_v2(other_ctx)), OK);
    ctx.bind_to_thread().unwrap();
    assert_eq!(raw!(cuStreamDestroy_v2(s2)), OK);
    assert_eq!(raw!(cuEventDestroy_v2(e)), OK);
}

#[test]
fn unsupported_functions_answer_not_supported() {
    let ctx = own_context(0);
    let _ = &ctx;
    let mut g = null_mut();
    assert_eq!(raw!(cuGraphCreate(&mut g, 0)), NOT_SUPPORTED);
    assert!(last_report().contains("cuGraphCreate"), "{}", last_report());
    let mut p = null_mut();
    assert_eq!(raw!(cuMemHostAlloc(&mut p, 64, 0)), NOT_SUPPORTED);
    let mut table = std::ptr::dangling::<c_void>();
    let id = sys::CUuuid { bytes: [0; 16] };
    assert_eq!(raw!(cuGetExportTable(&mut table, &id)), NOT_SUPPORTED);
    assert!(table.is_null());
    let mut pfn = std::ptr::dangling_mut::<c_void>();
    let name = cstr("cuInit");
    let mut status = sys::CUdriverProcAddressQueryResult::CU_GET_PROC_ADDRESS_SUCCESS;
    assert_eq!(
        raw!(cuGetProcAddress_v2(
            name.as_ptr(),
            &mut pfn,
            13000,
            0,
            &mut status
        )),
        CUresult::CUDA_ERROR_NOT_FOUND
    );
    assert!(pfn.is_null());
    assert_eq!(
        status,
        sys::CUdriverProcAddressQueryResult::CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
    );
}

#[test]
fn cudarc_safe_api_round_trip() {
    let ctx = primary();
    let stream = ctx.default_stream();
    let module = kernels(&ctx);
    let f = module.load_function("add_one_f32").unwrap();
    let host: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 100.0).collect();
    let input = stream.clone_htod(&host).unwrap();
    let mut output = stream.alloc_zeros::<f32>(1000).unwrap();
    let n = 1000u32;
    let mut b = stream.launch_builder(&f);
    b.arg(&input).arg(&mut output).arg(&n);
    // SAFETY: add_one_f32 takes (const float*, float*, u32) and reads/writes n elements of
    // buffers of 1000.
    unsafe { b.launch(cudarc::driver::LaunchConfig::for_num_elems(1000)) }.unwrap();
    let got = stream.clone_dtoh(&output).unwrap();
    let want: Vec<f32> = host.iter().map(|v| v + 1.0).collect();
    assert_eq!(got, want);
    let (p, _s) = input.device_ptr(&stream);
    assert_ne!(p, 0);
}

/// Garbage, stale and wrong-kind handles get an error, never a crash or an internal error.
#[test]
fn garbage_handles_are_refused() {
    let ctx = own_context(0);
    let module = kernels(&ctx);
    let f = module.load_function("fill_u32").unwrap().cu_function();
    let mut s = null_mut();
    assert_eq!(raw!(cuStreamCreate(&mut s, 1)), OK);
    let mut e = null_mut();
    assert_eq!(raw!(cuEventCreate(&mut e, 0)), OK);
    let tag = |h: *mut c_void, id: u64| ((h as u64 & !((1 << 56) - 1)) | id) as *mut c_void;
    let mut handles: Vec<*mut c_void> = vec![
        0x3 as *mut c_void,
        0xdead_beef as *mut c_void,
        usize::MAX as *mut c_void,
        ctx.cu_ctx().cast(),
        f.cast(),
        s.cast(),
        e.cast(),
    ];
    for real in [ctx.cu_ctx().cast(), f.cast(), s.cast(), e.cast()] {
        handles.push(tag(real, 0));
        handles.push(tag(real, (1 << 56) - 1));
    }
    let garbage = |h: *mut c_void, real: *mut c_void| h != real;
    for &h in &handles {
        let mut p = null_mut();
        let mut v = 0;
        let mut ms = 0f32;
        let mut out = 0u64;
        let results = [
            (
                garbage(h, ctx.cu_ctx().cast()),
                raw!(cuCtxSetCurrent(h.cast())),
            ),
            (
                garbage(h, ctx.cu_ctx().cast()),
                raw!(cuCtxPushCurrent_v2(h.cast())),
            ),
            (garbage(h, s.cast()), raw!(cuStreamSynchronize(h.cast()))),
            (garbage(h, s.cast()), raw!(cuStreamQuery(h.cast()))),
            (garbage(h, s.cast()), raw!(cuStreamGetCtx(h.cast(), &mut p))),
            (
                garbage(h, s.cast()),
                raw!(cuStreamWaitEvent(h.cast(), e, 0)),
            ),
            (
                garbage(h, e.cast()),
                raw!(cuStreamWaitEvent(s, h.cast(), 0)),
            ),
            (garbage(h, e.cast()), raw!(cuEventRecord(h.cast(), s))),
            (garbage(h, e.cast()), raw!(cuEventSynchronize(h.cast()))),
            (garbage(h, e.cast()), raw!(cuEventQuery(h.cast()))),
            (
                garbage(h, e.cast()),
                raw!(cuEventElapsedTime_v2(&mut ms, h.cast(), e)),
            ),
            (
                garbage(h, f.cast()),
                raw!(cuFuncGetAttribute(
                    &mut v,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_PTX_VERSION,
                    h.cast()
                )),
            ),
            (true, raw!(cuModuleUnload(h.cast()))),
            (
                true,
                raw!(cuMemAllocAsync(
                    &mut out,
                    8,
                    if garbage(h, s.cast()) {
                        h.cast()
                    } else {
                        0x9 as sys::CUstream
                    }
                )),
            ),
        ];
        ctx.bind_to_thread().unwrap();
        for (i, (should_fail, rc)) in results.into_iter().enumerate() {
            assert_ne!(
                rc,
                CUresult::CUDA_ERROR_UNKNOWN,
                "call {i} with {h:?}: {}",
                last_report()
            );
            if should_fail {
                assert_ne!(rc, OK, "call {i} accepted {h:?}");
            }
        }
    }
    assert_eq!(raw!(cuStreamDestroy_v2(s)), OK);
    assert_eq!(raw!(cuEventDestroy_v2(e)), OK);
}
