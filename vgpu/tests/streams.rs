//! Stream semantics: work runs when the host observes it; work on different streams is ordered
//! only by event waits, the legacy default stream's implicit synchronisation, or the host
//! having waited for it; unordered work touching the same bytes (one of them writing) is a
//! cross-stream race that fails the observing call and the context.
//!
//! Each test runs in a context of its own (races and faults are sticky).
#![allow(clippy::macro_metavars_in_unsafe)] // `raw!` passes plain values (see common)

mod common;

use std::ptr::null_mut;
use std::sync::Arc;

use common::{kernels, last_report, own_context};
use cudarc::driver::sys::{self, CUresult};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DriverError, LaunchConfig,
    PushKernelArg,
};

const RACE: CUresult = CUresult::CUDA_ERROR_LAUNCH_FAILED;

/// A context of its own whose slices are not tracked by cudarc's events: the streams are
/// ordered only by what a test does itself.
fn untracked_context() -> Arc<CudaContext> {
    let ctx = own_context(0);
    // SAFETY: the tests order their streams themselves; missing orderings are what they test.
    unsafe { ctx.disable_event_tracking() };
    ctx
}

/// Queues `fill_u32(buf + offset elements, value, n)` on `stream`.
fn fill(
    stream: &Arc<CudaStream>,
    f: &CudaFunction,
    buf: &CudaSlice<u32>,
    offset: usize,
    n: u32,
    value: u32,
) {
    let (base, _sync) = buf.device_ptr(stream);
    let ptr = base + 4 * offset as u64;
    let mut b = stream.launch_builder(f);
    b.arg(&ptr).arg(&value).arg(&n);
    // SAFETY: fill_u32 takes (u32*, u32, u32) and writes n elements from ptr, inside `buf`
    // (every caller passes offset + n <= buf.len()).
    unsafe { b.launch(LaunchConfig::for_num_elems(n)) }.expect("launch");
}

fn race_report() -> String {
    let report = last_report();
    assert!(report.contains("cross-stream race"), "{report}");
    report
}

#[test]
fn a_missing_wait_is_caught_as_a_race() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let buf = a.alloc_zeros::<u32>(256).unwrap();
    a.synchronize().unwrap();
    fill(&a, &f, &buf, 0, 256, 7);
    // Stream b reads what stream a writes, without waiting for it.
    let err = b.clone_dtoh(&buf).unwrap_err();
    assert_eq!(err, DriverError(RACE));
    let report = race_report();
    assert!(
        report.contains("memcpy DtoH") && report.contains("kernel `fill_u32`"),
        "{report}"
    );
    assert!(report.contains(&format!("{:?}", a.cu_stream())), "{report}");
    assert!(report.contains(&format!("{:?}", b.cu_stream())), "{report}");
    // Sticky: every later call on the context fails the same way.
    assert_eq!(ctx.synchronize().unwrap_err(), DriverError(RACE));
    assert_eq!(a.alloc_zeros::<u8>(4).unwrap_err(), DriverError(RACE));
}

#[test]
fn an_event_wait_orders_the_streams() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let buf = a.alloc_zeros::<u32>(256).unwrap();
    fill(&a, &f, &buf, 0, 256, 7);
    b.join(&a).unwrap();
    assert_eq!(b.clone_dtoh(&buf).unwrap(), vec![7; 256]);
    ctx.synchronize().unwrap();
}

#[test]
fn cudarc_event_tracking_orders_streams_by_itself() {
    let ctx = own_context(0);
    let f = kernels(&ctx).load_function("add_one_f32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let host: Vec<f32> = (0..512).map(|i| i as f32).collect();
    let input = a.clone_htod(&host).unwrap();
    let mut output = b.alloc_zeros::<f32>(512).unwrap();
    let n = 512u32;
    let mut builder = b.launch_builder(&f);
    builder.arg(&input).arg(&mut output).arg(&n);
    // SAFETY: add_one_f32 takes (const float*, float*, u32) and touches n = 512 elements of
    // buffers of 512.
    unsafe { builder.launch(LaunchConfig::for_num_elems(512)) }.unwrap();
    let got = a.clone_dtoh(&output).unwrap();
    assert_eq!(got, host.iter().map(|v| v + 1.0).collect::<Vec<_>>());
    ctx.synchronize().unwrap();
}

#[test]
fn work_is_deferred_until_the_host_observes_it() {
    let ctx = own_context(0);
    let module = kernels(&ctx);
    let store = module.load_function("store_at").unwrap();
    let stream = ctx.default_stream();
    let buf = stream.alloc_zeros::<u32>(4).unwrap();
    let (ptr, _sync) = buf.device_ptr(&stream);
    let past_the_end = 16u64;
    let mut b = stream.launch_builder(&store);
    b.arg(&ptr).arg(&past_the_end);
    // SAFETY: deliberately out of bounds: the vgpu must report it, not touch host memory.
    unsafe { b.launch(common::ONE_THREAD) }.expect("the launch itself succeeds");
    let mut event = null_mut();
    assert_eq!(raw!(cuEventCreate(&mut event, 0)), CUresult::CUDA_SUCCESS);
    assert_eq!(
        raw!(cuEventRecord(event, stream.cu_stream())),
        CUresult::CUDA_SUCCESS
    );
    let mut ms = 0f32;
    assert_eq!(
        raw!(cuEventElapsedTime_v2(&mut ms, event, event)),
        CUresult::CUDA_ERROR_NOT_READY,
        "nothing has run yet"
    );
    assert_eq!(
        stream.synchronize().unwrap_err(),
        DriverError(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS),
        "the fault shows when the stream is observed"
    );
}

#[test]
fn the_legacy_stream_orders_blocking_streams_only() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let legacy = ctx.default_stream();
    // A blocking stream (CU_STREAM_DEFAULT) and the legacy stream are ordered.
    let mut raw_blocking = null_mut();
    assert_eq!(
        raw!(cuStreamCreate(&mut raw_blocking, 0)),
        CUresult::CUDA_SUCCESS
    );
    // SAFETY: a stream of this context, destroyed below after its work.
    let blocking = unsafe { ctx.wrap_borrowed_stream(raw_blocking) };
    let x = legacy.alloc_zeros::<u32>(64).unwrap();
    legacy.synchronize().unwrap();
    fill(&blocking, &f, &x, 0, 64, 3);
    assert_eq!(legacy.clone_dtoh(&x).unwrap(), vec![3; 64]);
    ctx.synchronize().unwrap();
    // A non-blocking stream is not.
    let non_blocking = ctx.new_stream().unwrap();
    fill(&non_blocking, &f, &x, 0, 64, 4);
    assert_eq!(legacy.clone_dtoh(&x).unwrap_err(), DriverError(RACE));
    race_report();
    assert_eq!(raw!(cuStreamSynchronize(raw_blocking)), RACE, "sticky");
    drop(blocking);
    assert_eq!(
        raw!(cuStreamDestroy_v2(raw_blocking)),
        CUresult::CUDA_SUCCESS,
        "a faulted context's objects can still be destroyed"
    );
}

#[test]
fn concurrent_reads_of_one_buffer_are_not_races() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("add_one_f32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let host: Vec<f32> = (0..300).map(|i| i as f32 * 0.25).collect();
    let input = a.clone_htod(&host).unwrap();
    let mut out_a = a.alloc_zeros::<f32>(300).unwrap();
    let mut out_b = b.alloc_zeros::<f32>(300).unwrap();
    ctx.synchronize().unwrap();
    for (s, out) in [(&a, &mut out_a), (&b, &mut out_b)] {
        let n = 300u32;
        let mut builder = s.launch_builder(&f);
        builder.arg(&input).arg(out).arg(&n);
        // SAFETY: add_one_f32 takes (const float*, float*, u32), n = 300 elements of 300.
        unsafe { builder.launch(LaunchConfig::for_num_elems(300)) }.unwrap();
    }
    let want: Vec<f32> = host.iter().map(|v| v + 1.0).collect();
    assert_eq!(a.clone_dtoh(&out_a).unwrap(), want);
    assert_eq!(b.clone_dtoh(&out_b).unwrap(), want);
    ctx.synchronize().unwrap();
}

#[test]
fn disjoint_writes_to_one_allocation_are_not_races_but_overlapping_ones_are() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let buf = a.alloc_zeros::<u32>(200).unwrap();
    a.synchronize().unwrap();
    fill(&a, &f, &buf, 0, 100, 1);
    fill(&b, &f, &buf, 100, 100, 2);
    ctx.synchronize().unwrap();
    let got = a.clone_dtoh(&buf).unwrap();
    assert_eq!(&got[..100], &[1; 100]);
    assert_eq!(&got[100..], &[2; 100]);

    fill(&a, &f, &buf, 0, 101, 5);
    fill(&b, &f, &buf, 100, 100, 6);
    assert_eq!(ctx.synchronize().unwrap_err(), DriverError(RACE));
    let report = race_report();
    let at = buf.device_ptr(&a).0 + 400;
    assert!(
        report.contains(&format!("bytes 0x{at:x}..0x{:x}", at + 4)),
        "the report names the one shared element: {report}"
    );
}

#[test]
fn atomic_updates_from_two_streams_are_not_races() {
    let ctx = untracked_context();
    let count = kernels(&ctx).load_function("count").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let counter = a.alloc_zeros::<u32>(1).unwrap();
    a.synchronize().unwrap();
    for s in [&a, &b] {
        let (p, _sync) = counter.device_ptr(s);
        let mut builder = s.launch_builder(&count);
        builder.arg(&p);
        // SAFETY: count takes (u32*) and updates one element of a buffer of 1.
        unsafe {
            builder.launch(LaunchConfig {
                grid_dim: (3, 1, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            })
        }
        .unwrap();
    }
    ctx.synchronize().unwrap();
    assert_eq!(a.clone_dtoh(&counter).unwrap(), vec![768]);
    // A plain read on another stream, concurrent with the atomics, is a race.
    let (p, _sync) = counter.device_ptr(&a);
    let mut builder = a.launch_builder(&count);
    builder.arg(&p);
    // SAFETY: as above.
    unsafe { builder.launch(LaunchConfig::for_num_elems(1)) }.unwrap();
    assert_eq!(b.clone_dtoh(&counter).unwrap_err(), DriverError(RACE));
    assert!(
        race_report().contains("updates atomically"),
        "{}",
        last_report()
    );
}

#[test]
fn a_free_while_another_stream_uses_the_memory_is_a_race() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let buf = a.alloc_zeros::<u32>(64).unwrap();
    a.synchronize().unwrap();
    fill(&b, &f, &buf, 0, 64, 9);
    drop(buf); // cuMemFreeAsync on stream a, which never waited for b
    assert_eq!(ctx.synchronize().unwrap_err(), DriverError(RACE));
    assert!(
        race_report().contains("cuMemFreeAsync"),
        "{}",
        last_report()
    );
}

#[test]
fn memory_allocated_on_one_stream_needs_a_wait_before_another_uses_it() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    // SAFETY: fill_u32 writes every element before anything reads it.
    let buf = unsafe { a.alloc::<u32>(64) }.unwrap();
    fill(&b, &f, &buf, 0, 64, 1);
    assert_eq!(b.synchronize().unwrap_err(), DriverError(RACE));
    assert!(
        race_report().contains("cuMemAllocAsync"),
        "{}",
        last_report()
    );
}

#[test]
fn what_the_host_waited_for_is_ordered_before_later_work() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let (a, b) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    let buf = a.alloc_zeros::<u32>(64).unwrap();
    fill(&a, &f, &buf, 0, 64, 4);
    a.synchronize().unwrap();
    fill(&b, &f, &buf, 0, 32, 5);
    assert_eq!(
        b.clone_dtoh(&buf).unwrap()[..33],
        [[5; 32].as_slice(), &[4]].concat()
    );
    ctx.synchronize().unwrap();
}

#[test]
fn a_destroyed_streams_work_still_runs_and_a_context_sync_waits_for_it() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let legacy = ctx.default_stream();
    let buf = legacy.alloc_zeros::<u32>(64).unwrap();
    legacy.synchronize().unwrap();
    {
        let short_lived = ctx.new_stream().unwrap();
        fill(&short_lived, &f, &buf, 0, 64, 8);
    }
    ctx.synchronize().unwrap();
    let other = ctx.new_stream().unwrap();
    assert_eq!(other.clone_dtoh(&buf).unwrap(), vec![8; 64]);
}

#[test]
fn elapsed_time_comes_from_the_cost_model() {
    let ctx = own_context(0);
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let stream = ctx.default_stream();
    let small = stream.alloc_zeros::<u32>(1 << 10).unwrap();
    let large = stream.alloc_zeros::<u32>(1 << 16).unwrap();
    let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
    let time = |buf: &CudaSlice<u32>| {
        let start = stream.record_event(timing).unwrap();
        fill(&stream, &f, buf, 0, buf.len() as u32, 1);
        let end = stream.record_event(timing).unwrap();
        start.elapsed_ms(&end).unwrap()
    };
    let (t_small, t_large) = (time(&small), time(&large));
    assert!(
        t_small > 0.0 && t_large > t_small,
        "{t_small} ms, {t_large} ms"
    );
}

#[test]
fn a_host_to_device_copy_takes_the_host_bytes_at_the_call() {
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    let buf = stream.alloc_zeros::<u32>(4).unwrap();
    let (ptr, _sync) = buf.device_ptr(&stream);
    let mut host = [1u32, 2, 3, 4];
    assert_eq!(
        raw!(cuMemcpyHtoDAsync_v2(
            ptr,
            host.as_ptr().cast(),
            16,
            stream.cu_stream()
        )),
        CUresult::CUDA_SUCCESS
    );
    host = [9; 4];
    let mut back = [0u32; 4];
    assert_eq!(
        raw!(cuMemcpyDtoHAsync_v2(
            back.as_mut_ptr().cast(),
            ptr,
            16,
            stream.cu_stream()
        )),
        CUresult::CUDA_SUCCESS
    );
    assert_eq!(back, [1, 2, 3, 4], "not {host:?}");
}

/// Unobserved work does not hold the host's memory: past 1 GiB of queued uploads and freed
/// allocations, the queued work runs and freed memory is returned.
#[test]
fn unobserved_frees_do_not_accumulate() {
    let ctx = own_context(0);
    let stream = ctx.default_stream();
    const CHUNK: usize = 64 << 20;
    for _ in 0..24 {
        // SAFETY: never read; allocated and freed only.
        let buf = unsafe { stream.alloc::<u8>(CHUNK) }.unwrap();
        drop(buf); // cuMemFreeAsync, never observed in this loop
    }
    let (mut free, mut total) = (0usize, 0usize);
    assert_eq!(
        raw!(cuMemGetInfo_v2(&mut free, &mut total)),
        CUresult::CUDA_SUCCESS
    );
    let held = total - free;
    assert!(held <= (1 << 30) + 2 * CHUNK, "{held} bytes still held");
    ctx.synchronize().unwrap();
}

#[test]
fn an_event_outlives_the_stream_it_was_recorded_on() {
    let ctx = untracked_context();
    let f = kernels(&ctx).load_function("fill_u32").unwrap();
    let buf = ctx.default_stream().alloc_zeros::<u32>(32).unwrap();
    ctx.synchronize().unwrap();
    let event = {
        let short_lived = ctx.new_stream().unwrap();
        fill(&short_lived, &f, &buf, 0, 32, 6);
        short_lived.record_event(None).unwrap()
    };
    // Many streams come and go; the host observes them all.
    for _ in 0..200 {
        let s = ctx.new_stream().unwrap();
        s.synchronize().unwrap();
    }
    let reader = ctx.new_stream().unwrap();
    reader.wait(&event).unwrap();
    assert_eq!(reader.clone_dtoh(&buf).unwrap(), vec![6; 32]);
    ctx.synchronize().unwrap();
}
