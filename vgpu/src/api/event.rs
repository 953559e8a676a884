//! Events: points in a stream that other streams wait for and the host observes. Their times
//! come from the vgpu's simulated clock (a cost model, see `exec::cost`): elapsed times are
//! consistent within a run but are not measurements of anything.

use std::ffi::c_uint;

use super::call;
use crate::abi::*;
use crate::exec::OpKind;
use crate::report::note;
use crate::state::{handle, id_of, out, Driver, Event, Recorded, Tag};

/// The event behind a handle.
pub fn event_id(d: &Driver, h: Handle, name: &str) -> Result<u64, CUresult> {
    id_of(Tag::Event, h)
        .filter(|id| d.events.contains_key(id))
        .ok_or_else(|| {
            note(&format!(
                "{name}: {h:?} is not an event created by cuEventCreate"
            ));
            CUDA_ERROR_INVALID_HANDLE
        })
}

/// `cuEventCreate`: flags CU_EVENT_DEFAULT, BLOCKING_SYNC, DISABLE_TIMING, INTERPROCESS (the
/// last only with DISABLE_TIMING, as documented).
///
/// # Safety
/// `phevent` is null or points at a writable `CUevent`.
#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(phevent: *mut Handle, flags: c_uint) -> CUresult {
    call("cuEventCreate", |d| {
        let phevent = out(phevent, "cuEventCreate: phEvent")?;
        let known = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
        if flags & !known != 0
            || (flags & CU_EVENT_INTERPROCESS != 0 && flags & CU_EVENT_DISABLE_TIMING == 0)
        {
            note(&format!("cuEventCreate: invalid flags 0x{flags:x}"));
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let ctx = d.usable_current()?;
        let id = d.new_id();
        d.events.insert(
            id,
            Event {
                ctx,
                flags,
                record: None,
                generation: 0,
            },
        );
        // SAFETY: checked non-null by `out`; the caller passes a writable CUevent.
        unsafe { phevent.write(handle(Tag::Event, id)) };
        Ok(())
    })
}

fn destroy(d: &mut Driver, event: Handle) -> Result<(), CUresult> {
    let id = event_id(d, event, "cuEventDestroy")?;
    d.events.remove(&id);
    Ok(())
}

/// `cuEventDestroy_v2`.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuEventDestroy_v2(event: Handle) -> CUresult {
    call("cuEventDestroy_v2", |d| destroy(d, event))
}

/// `cuEventDestroy`: as [`cuEventDestroy_v2`].
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuEventDestroy(event: Handle) -> CUresult {
    call("cuEventDestroy", |d| destroy(d, event))
}

fn record(d: &mut Driver, event: Handle, stream: Handle) -> Result<(), CUresult> {
    let e = event_id(d, event, "cuEventRecord")?;
    let s = d.stream(stream)?;
    let ectx = d.events[&e].ctx;
    if d.streams.get(&s).map(|s| s.ctx) != Some(ectx) {
        note("cuEventRecord: the event and the stream belong to different contexts");
        return Err(CUDA_ERROR_INVALID_HANDLE);
    }
    let generation = d.events[&e].generation + 1;
    d.submit(
        s,
        OpKind::EventMark {
            event: e,
            generation,
        },
        format!("cuEventRecord of {event:?}"),
    );
    let clock = d
        .streams
        .get(&s)
        .map(|s| s.clock.clone())
        .unwrap_or_default();
    if let Some(ev) = d.events.get_mut(&e) {
        ev.generation = generation;
        ev.record = Some(Recorded {
            clock,
            generation,
            time_ns: None,
        });
    }
    Ok(())
}

/// `cuEventRecord`: captures the work submitted to `stream` so far.
///
/// # Safety
/// None beyond the driver API's: the handles are checked.
#[no_mangle]
pub unsafe extern "C" fn cuEventRecord(event: Handle, stream: Handle) -> CUresult {
    call("cuEventRecord", |d| record(d, event, stream))
}

/// `cuEventRecordWithFlags`: as [`cuEventRecord`] (CU_EVENT_RECORD_EXTERNAL is for graphs).
///
/// # Safety
/// None beyond the driver API's: the handles are checked.
#[no_mangle]
pub unsafe extern "C" fn cuEventRecordWithFlags(
    event: Handle,
    stream: Handle,
    flags: c_uint,
) -> CUresult {
    call("cuEventRecordWithFlags", |d| {
        if flags & !1 != 0 {
            note(&format!(
                "cuEventRecordWithFlags: unknown flags 0x{flags:x}"
            ));
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        record(d, event, stream)
    })
}

fn wait(d: &mut Driver, event: Handle, name: &str) -> Result<(), CUresult> {
    let e = event_id(d, event, name)?;
    let ev = &d.events[&e];
    let ctx = ev.ctx;
    let Some(clock) = ev.record.as_ref().map(|r| r.clock.clone()) else {
        return d.check_fault(ctx);
    };
    d.observe(&clock, ctx)
}

/// `cuEventSynchronize`: runs and waits for the recorded work (success at once if the event
/// was never recorded); returns the context's sticky error if any work faulted.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuEventSynchronize(event: Handle) -> CUresult {
    call("cuEventSynchronize", |d| {
        wait(d, event, "cuEventSynchronize")
    })
}

/// `cuEventQuery`: a query observes the event: the recorded work runs, and CUDA_SUCCESS (never
/// CUDA_ERROR_NOT_READY) comes back.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuEventQuery(event: Handle) -> CUresult {
    call("cuEventQuery", |d| wait(d, event, "cuEventQuery"))
}

fn elapsed(d: &mut Driver, ms: *mut f32, start: Handle, end: Handle) -> Result<(), CUresult> {
    let ms = out(ms, "cuEventElapsedTime: pMilliseconds")?;
    let times = [start, end].map(|h| {
        let id = event_id(d, h, "cuEventElapsedTime")?;
        let ev = &d.events[&id];
        if ev.flags & CU_EVENT_DISABLE_TIMING != 0 {
            note(&format!(
                "cuEventElapsedTime: {h:?} was created with CU_EVENT_DISABLE_TIMING"
            ));
            return Err(CUDA_ERROR_INVALID_HANDLE);
        }
        let Some(r) = &ev.record else {
            note(&format!("cuEventElapsedTime: {h:?} was never recorded"));
            return Err(CUDA_ERROR_INVALID_HANDLE);
        };
        d.check_fault(ev.ctx)?;
        r.time_ns.ok_or_else(|| {
            note(&format!(
                "cuEventElapsedTime: the work {h:?} recorded has not run (synchronize the event \
                 first)"
            ));
            CUDA_ERROR_NOT_READY
        })
    });
    let [start, end] = times;
    let ms_value = ((end? - start?) / 1e6) as f32;
    // SAFETY: checked non-null by `out`; the caller passes a writable float.
    unsafe { ms.write(ms_value) };
    Ok(())
}

/// `cuEventElapsedTime`: milliseconds between two completed events on the simulated clock
/// (modelled, not measured). CUDA_ERROR_NOT_READY if their work has not run.
///
/// # Safety
/// `ms` is null or points at a writable `float`.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Handle, end: Handle) -> CUresult {
    call("cuEventElapsedTime", |d| elapsed(d, ms, start, end))
}

/// `cuEventElapsedTime_v2`: as [`cuEventElapsedTime`].
///
/// # Safety
/// `ms` is null or points at a writable `float`.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    start: Handle,
    end: Handle,
) -> CUresult {
    call("cuEventElapsedTime_v2", |d| elapsed(d, ms, start, end))
}
