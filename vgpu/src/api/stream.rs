//! Streams: queues whose work runs when the host observes it.

use std::collections::VecDeque;
use std::ffi::{c_int, c_uint};

use super::call;
use crate::abi::*;
use crate::clock::Clock;
use crate::report::note;
use crate::state::{handle, id_of, out, Driver, Stream, Tag};

fn create(
    d: &mut Driver,
    phstream: *mut Handle,
    flags: c_uint,
    priority: c_int,
) -> Result<(), CUresult> {
    let phstream = out(phstream, "cuStreamCreate: phStream")?;
    if flags & !CU_STREAM_NON_BLOCKING != 0 {
        note(&format!("cuStreamCreate: unknown flags 0x{flags:x}"));
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let ctx = d.usable_current()?;
    let id = d.new_id();
    d.streams.insert(
        id,
        Stream {
            ctx,
            legacy: false,
            blocking: flags & CU_STREAM_NON_BLOCKING == 0,
            flags,
            priority: priority.clamp(-5, 0),
            queue: VecDeque::new(),
            clock: Clock::new(),
            submitted: 0,
            done: 0,
        },
    );
    // SAFETY: checked non-null by `out`; the caller passes a writable CUstream.
    unsafe { phstream.write(handle(Tag::Stream, id)) };
    Ok(())
}

/// `cuStreamCreate`: CU_STREAM_DEFAULT (synchronises with the legacy default stream) or
/// CU_STREAM_NON_BLOCKING (does not).
///
/// # Safety
/// `phstream` is null or points at a writable `CUstream`.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(phstream: *mut Handle, flags: c_uint) -> CUresult {
    call("cuStreamCreate", |d| create(d, phstream, flags, 0))
}

/// `cuStreamCreateWithPriority`: priorities are recorded (clamped to 0..=-5) and change nothing.
///
/// # Safety
/// `phstream` is null or points at a writable `CUstream`.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    phstream: *mut Handle,
    flags: c_uint,
    priority: c_int,
) -> CUresult {
    call("cuStreamCreateWithPriority", |d| {
        create(d, phstream, flags, priority)
    })
}

fn explicit_stream(d: &Driver, h: Handle, name: &str) -> Result<u64, CUresult> {
    let id = id_of(Tag::Stream, h)
        .filter(|id| d.streams.contains_key(id))
        .ok_or_else(|| {
            note(&format!(
                "{name}: {h:?} is not a stream created by cuStreamCreate"
            ));
            CUDA_ERROR_INVALID_HANDLE
        })?;
    Ok(id)
}

fn destroy(d: &mut Driver, h: Handle) -> Result<(), CUresult> {
    let id = explicit_stream(d, h, "cuStreamDestroy")?;
    let (ctx, submitted) = d.streams.get(&id).map_or((0, 0), |s| (s.ctx, s.submitted));
    // The device finishes a destroyed stream's work; the host does not wait for it.
    d.run_stream_to(id, submitted);
    d.streams.remove(&id);
    if let Some(c) = d.contexts.get_mut(&ctx) {
        c.retired.raise(id, submitted);
    }
    Ok(())
}

/// `cuStreamDestroy_v2`: its queued work still runs (now); the host does not wait for it.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuStreamDestroy_v2(stream: Handle) -> CUresult {
    call("cuStreamDestroy_v2", |d| destroy(d, stream))
}

/// `cuStreamDestroy`: as [`cuStreamDestroy_v2`].
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuStreamDestroy(stream: Handle) -> CUresult {
    call("cuStreamDestroy", |d| destroy(d, stream))
}

/// `cuStreamSynchronize`: runs the stream's work (and what its event waits reach), waits for
/// it, and returns the context's sticky error if any work faulted.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuStreamSynchronize(stream: Handle) -> CUresult {
    call("cuStreamSynchronize", |d| {
        let s = d.stream(stream)?;
        d.observe_stream(s)
    })
}

/// `cuStreamQuery`: a query observes the stream: its work runs, and CUDA_SUCCESS (never
/// CUDA_ERROR_NOT_READY) comes back.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuStreamQuery(stream: Handle) -> CUresult {
    call("cuStreamQuery", |d| {
        let s = d.stream(stream)?;
        d.observe_stream(s)
    })
}

/// `cuStreamWaitEvent`: later work on `stream` waits for the work the event last recorded (of
/// any context); an event never recorded orders nothing.
///
/// # Safety
/// None beyond the driver API's: the handles are checked.
#[no_mangle]
pub unsafe extern "C" fn cuStreamWaitEvent(
    stream: Handle,
    event: Handle,
    flags: c_uint,
) -> CUresult {
    call("cuStreamWaitEvent", |d| {
        if flags & !1 != 0 {
            note(&format!("cuStreamWaitEvent: unknown flags 0x{flags:x}"));
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let s = d.stream(stream)?;
        let e = crate::api::event::event_id(d, event, "cuStreamWaitEvent")?;
        let clock = d.events[&e].record.as_ref().map(|r| r.clock.clone());
        if let (Some(clock), Some(st)) = (clock, d.streams.get_mut(&s)) {
            st.clock.join(&clock);
        }
        Ok(())
    })
}

/// `cuStreamGetCtx`: the stream's context.
///
/// # Safety
/// `pctx` is null or points at a writable `CUcontext`.
#[no_mangle]
pub unsafe extern "C" fn cuStreamGetCtx(stream: Handle, pctx: *mut Handle) -> CUresult {
    call("cuStreamGetCtx", |d| {
        let pctx = out(pctx, "cuStreamGetCtx: pctx")?;
        let s = d.stream(stream)?;
        let ctx = d.streams.get(&s).map_or(0, |s| s.ctx);
        // SAFETY: checked non-null by `out`; the caller passes a writable CUcontext.
        unsafe { pctx.write(handle(Tag::Context, ctx)) };
        Ok(())
    })
}

/// `cuStreamGetFlags`.
///
/// # Safety
/// `flags` is null or points at a writable `unsigned int`.
#[no_mangle]
pub unsafe extern "C" fn cuStreamGetFlags(stream: Handle, flags: *mut c_uint) -> CUresult {
    call("cuStreamGetFlags", |d| {
        let flags = out(flags, "cuStreamGetFlags: flags")?;
        let s = d.stream(stream)?;
        let f = d.streams.get(&s).map_or(0, |s| s.flags);
        // SAFETY: checked non-null by `out`; the caller passes a writable unsigned int.
        unsafe { flags.write(f) };
        Ok(())
    })
}

/// `cuStreamGetPriority`.
///
/// # Safety
/// `priority` is null or points at a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn cuStreamGetPriority(stream: Handle, priority: *mut c_int) -> CUresult {
    call("cuStreamGetPriority", |d| {
        let priority = out(priority, "cuStreamGetPriority: priority")?;
        let s = d.stream(stream)?;
        let p = d.streams.get(&s).map_or(0, |s| s.priority);
        // SAFETY: checked non-null by `out`; the caller passes a writable int.
        unsafe { priority.write(p) };
        Ok(())
    })
}
