//! Device faults end the context as on hardware: the call that observes the fault and every
//! later call on the context return the fault's code (out of bounds: ILLEGAL_ADDRESS,
//! misaligned: MISALIGNED_ADDRESS), other contexts carry on, and destroying the context (or
//! the last release of a primary context) is the way out.
#![allow(clippy::macro_metavars_in_unsafe)] // `raw!` passes plain values (see common)

mod common;

use std::ptr::null_mut;
use std::sync::Arc;

use common::{kernels, last_report, own_context};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{CudaContext, CudaSlice, DevicePtr, DriverError, PushKernelArg};

const ILLEGAL_ADDRESS: CUresult = CUresult::CUDA_ERROR_ILLEGAL_ADDRESS;

/// Queues `store_at(buf, offset)` on the context's legacy stream: a 4-byte store of 7 at byte
/// `offset` of a 16-byte buffer. Returns the buffer and its device address.
fn store_at(ctx: &Arc<CudaContext>, offset: u64) -> (CudaSlice<u32>, u64) {
    let stream = ctx.default_stream();
    let f = kernels(ctx).load_function("store_at").unwrap();
    let buf = stream.alloc_zeros::<u32>(4).unwrap();
    let (ptr, _sync) = buf.device_ptr(&stream);
    let mut b = stream.launch_builder(&f);
    b.arg(&ptr).arg(&offset);
    // SAFETY: store_at writes 4 bytes at ptr + offset; the offsets the tests pass that are out
    // of bounds or misaligned are what the vgpu must report, in simulated memory.
    unsafe { b.launch(common::ONE_THREAD) }.expect("the launch itself succeeds");
    drop(_sync);
    (buf, ptr)
}

#[test]
fn an_out_of_bounds_store_is_a_sticky_illegal_address() {
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    let (_buf, ptr) = store_at(&ctx, 16);
    let err = stream.synchronize().unwrap_err();
    assert_eq!(err, DriverError(ILLEGAL_ADDRESS));
    let report = last_report();
    assert!(
        report.contains("store_at")
            && report.contains("block (0,0,0), thread (0,0,0)")
            && report.contains(&format!("0x{:x}", ptr + 16)),
        "the report names kernel, block, thread and address: {report}"
    );
    // Every later call that uses the context fails the same way.
    assert_eq!(
        stream.alloc_zeros::<u8>(4).unwrap_err(),
        DriverError(ILLEGAL_ADDRESS)
    );
    assert_eq!(ctx.synchronize().unwrap_err(), DriverError(ILLEGAL_ADDRESS));
    let mut p = 0;
    assert_eq!(raw!(cuMemAlloc_v2(&mut p, 8)), ILLEGAL_ADDRESS);
    assert_eq!(
        raw!(cuMemsetD8Async(ptr, 0, 4, null_mut())),
        ILLEGAL_ADDRESS
    );
    let mut e = null_mut();
    assert_eq!(raw!(cuEventCreate(&mut e, 0)), ILLEGAL_ADDRESS);
    assert!(ctx
        .load_module(cudarc::nvrtc::Ptx::from_src(common::KERNELS))
        .is_err());
    // Another context is not affected, even its streams used while the faulted one is current.
    let other = own_context(0);
    let s2 = other.default_stream();
    assert_eq!(
        s2.clone_dtoh(&s2.clone_htod(&[1u32, 2]).unwrap()).unwrap(),
        vec![1, 2]
    );
    let explicit = other.new_stream().unwrap();
    assert_eq!(raw!(cuCtxSetCurrent(ctx.cu_ctx())), CUresult::CUDA_SUCCESS);
    assert_eq!(
        raw!(cuStreamSynchronize(explicit.cu_stream())),
        CUresult::CUDA_SUCCESS
    );
}

#[test]
fn a_misaligned_store_is_a_misaligned_address() {
    let ctx = own_context(0);
    let _buf = store_at(&ctx, 2);
    assert_eq!(
        ctx.synchronize().unwrap_err(),
        DriverError(CUresult::CUDA_ERROR_MISALIGNED_ADDRESS)
    );
    assert!(last_report().contains("misaligned"), "{}", last_report());
    assert_eq!(
        ctx.default_stream().synchronize().unwrap_err(),
        DriverError(CUresult::CUDA_ERROR_MISALIGNED_ADDRESS)
    );
}

#[test]
fn an_in_bounds_store_is_fine() {
    let ctx = own_context(0);
    let (_buf, ptr) = store_at(&ctx, 12);
    ctx.synchronize().unwrap();
    let mut host = [0u32; 4];
    assert_eq!(
        raw!(cuMemcpyDtoH_v2(host.as_mut_ptr().cast(), ptr, 16)),
        CUresult::CUDA_SUCCESS
    );
    assert_eq!(host, [0, 0, 0, 7]);
}

#[test]
fn a_kernel_cannot_touch_memory_of_another_context() {
    let owner = own_context(0);
    let buf = owner.default_stream().alloc_zeros::<u32>(4).unwrap();
    let ptr = buf.device_ptr(buf.stream()).0;
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    let f = kernels(&ctx).load_function("store_at").unwrap();
    let offset = 0u64;
    let mut b = stream.launch_builder(&f);
    b.arg(&ptr).arg(&offset);
    // SAFETY: a store into another context's buffer, which the vgpu must refuse.
    unsafe { b.launch(common::ONE_THREAD) }.unwrap();
    assert_eq!(
        stream.synchronize().unwrap_err(),
        DriverError(ILLEGAL_ADDRESS)
    );
    assert!(
        last_report().contains("another context"),
        "{}",
        last_report()
    );
    owner.bind_to_thread().unwrap();
    owner.synchronize().unwrap();
}

#[test]
fn a_use_after_a_stream_ordered_free_faults() {
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    let f = kernels(&ctx).load_function("store_at").unwrap();
    let buf = stream.alloc_zeros::<u32>(4).unwrap();
    let ptr = buf.device_ptr(&stream).0;
    drop(buf); // cuMemFreeAsync on the same stream
    let offset = 0u64;
    let mut b = stream.launch_builder(&f);
    b.arg(&ptr).arg(&offset);
    // SAFETY: a store into freed memory, which the vgpu must report.
    unsafe { b.launch(common::ONE_THREAD) }.unwrap();
    assert_eq!(
        stream.synchronize().unwrap_err(),
        DriverError(ILLEGAL_ADDRESS)
    );
    assert!(last_report().contains("freed"), "{}", last_report());
}

#[test]
fn argument_errors_are_not_sticky() {
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    let mut p = 0;
    assert_eq!(
        raw!(cuMemAlloc_v2(&mut p, 0)),
        CUresult::CUDA_ERROR_INVALID_VALUE
    );
    assert_eq!(
        raw!(cuMemFree_v2(12345)),
        CUresult::CUDA_ERROR_INVALID_VALUE
    );
    stream.synchronize().unwrap();
    assert_eq!(
        stream
            .clone_dtoh(&stream.clone_htod(&[5u8]).unwrap())
            .unwrap(),
        vec![5]
    );
}

/// In a process of its own: a fault in the primary context lasts until its last release;
/// retained again, the device is usable.
#[test]
fn the_primary_context_recovers_after_its_last_release() {
    if !common::is_child() {
        return common::in_child("the_primary_context_recovers_after_its_last_release", &[]);
    }
    common::load_driver();
    {
        let ctx = CudaContext::new(0).unwrap();
        let _buf = store_at(&ctx, 4096);
        assert_eq!(ctx.synchronize().unwrap_err(), DriverError(ILLEGAL_ADDRESS));
        let again = CudaContext::new(0).unwrap();
        assert_eq!(again.cu_ctx(), ctx.cu_ctx(), "the same primary context");
        assert_eq!(
            again.synchronize().unwrap_err(),
            DriverError(ILLEGAL_ADDRESS),
            "still faulted"
        );
    }
    let ctx = CudaContext::new(0).expect("a fresh primary context");
    let s = ctx.default_stream();
    assert_eq!(
        s.clone_dtoh(&s.clone_htod(&[3u16]).unwrap()).unwrap(),
        vec![3]
    );
}
