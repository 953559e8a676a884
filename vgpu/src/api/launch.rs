//! `cuLaunchKernel`: what the driver checks at the call is checked at the call; the kernel runs
//! on ptxsim when its stream is observed.

use std::ffi::{c_uint, c_void};

use super::call;
use super::module::function_id;
use crate::abi::*;
use crate::exec::OpKind;
use crate::report::{note, report};
use crate::state::Driver;

/// Device limits on launch shapes (every architecture since compute capability 3.0).
const MAX_BLOCK: [u32; 3] = [1024, 1024, 64];
const MAX_THREADS: u64 = 1024;
const MAX_GRID: [u32; 3] = [i32::MAX as u32, 65535, 65535];

#[allow(clippy::too_many_arguments)]
fn launch(
    d: &mut Driver,
    func: Handle,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    stream: Handle,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Result<(), CUresult> {
    let fid = function_id(d, func, "cuLaunchKernel")?;
    let (fctx, name) = {
        let f = &d.functions[&fid];
        (f.ctx, f.name.clone())
    };
    d.check_fault(fctx)?;
    let s = d.stream(stream)?;
    if d.streams.get(&s).map(|s| s.ctx) != Some(fctx) {
        note(&format!(
            "cuLaunchKernel: `{name}` and stream {stream:?} belong to different contexts"
        ));
        return Err(CUDA_ERROR_INVALID_HANDLE);
    }
    let bad = |msg: String| {
        note(&format!("cuLaunchKernel `{name}`: {msg}"));
        Err(CUDA_ERROR_INVALID_VALUE)
    };
    if grid.contains(&0) || block.contains(&0) {
        return bad(format!("grid {grid:?} and block {block:?} must be nonzero"));
    }
    if (0..3).any(|i| block[i] > MAX_BLOCK[i] || grid[i] > MAX_GRID[i]) {
        return bad(format!(
            "grid {grid:?} or block {block:?} exceeds the device's limits (grid {MAX_GRID:?}, \
             block {MAX_BLOCK:?})"
        ));
    }
    let threads: u64 = block.iter().map(|&b| u64::from(b)).product();
    if threads > MAX_THREADS {
        return bad(format!(
            "block {block:?} has {threads} threads, more than {MAX_THREADS}"
        ));
    }
    let f = &d.functions[&fid];
    if let Some(req) = f.bounds.reqntid {
        if req != block {
            return bad(format!(
                "the kernel requires blocks of {req:?} (.reqntid), got {block:?}"
            ));
        }
    }
    if let Some(max) = f.bounds.maxntid {
        let limit: u64 = max.iter().map(|&m| u64::from(m)).product();
        if threads > limit {
            note(&format!(
                "cuLaunchKernel `{name}`: block {block:?} has {threads} threads but the kernel \
                 allows at most {limit} (.maxntid {max:?}, __launch_bounds__)"
            ));
            return Err(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES);
        }
    }
    if shared > f.max_dynamic_shared {
        return bad(format!(
            "{shared} bytes of dynamic shared memory, more than the kernel's limit of {} \
             (raise it with cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES))",
            f.max_dynamic_shared
        ));
    }
    if !extra.is_null() {
        if !params.is_null() {
            return bad("both kernelParams and extra are given".into());
        }
        report("cuLaunchKernel: parameters through `extra` are not simulated; use kernelParams");
        return Err(CUDA_ERROR_NOT_SUPPORTED);
    }
    if params.is_null() && !f.params.is_empty() {
        return bad(format!(
            "kernelParams is null but the kernel takes {} parameters",
            f.params.len()
        ));
    }
    let mut values = Vec::with_capacity(f.params.len());
    for (i, &size) in f.params.iter().enumerate() {
        // SAFETY: `params` is non-null here (a kernel with parameters was checked above) and the
        // caller's contract is one pointer per kernel parameter.
        let p = unsafe { *params.add(i) };
        if p.is_null() {
            return bad(format!("kernelParams[{i}] is a null pointer"));
        }
        // SAFETY: the caller's contract is that kernelParams[i] points at a value of the
        // parameter's size, which the PTX declares.
        let v = unsafe {
            match size {
                1 => ptxsim::ParamValue::U8(p.cast::<u8>().read_unaligned()),
                2 => ptxsim::ParamValue::U16(p.cast::<u16>().read_unaligned()),
                4 => ptxsim::ParamValue::U32(p.cast::<u32>().read_unaligned()),
                _ => ptxsim::ParamValue::U64(p.cast::<u64>().read_unaligned()),
            }
        };
        values.push(v);
    }
    d.launches += 1;
    let n = d.launches;
    let sim = f.sim.clone();
    let cfg = ptxsim::LaunchConfig {
        grid,
        block,
        dynamic_shared_bytes: shared,
        // Blocks run in a different pseudo-random order in every launch: a kernel that depends
        // on the order of blocks shows it.
        block_order: ptxsim::BlockOrder::Shuffled(n),
    };
    d.submit(
        s,
        OpKind::Kernel {
            sim,
            name: name.clone(),
            cfg,
            params: values,
        },
        format!("kernel `{name}` (launch {n}, grid {grid:?}, block {block:?})"),
    );
    Ok(())
}

/// `cuLaunchKernel`: queues `func` on `stream` with its parameters read now (their sizes come
/// from the PTX), after the checks the driver makes at the call: nonzero shapes within the
/// device's limits, the kernel's `.maxntid`/`.reqntid`, dynamic shared memory within its limit.
///
/// # Safety
/// `params` is null (for a kernel without parameters) or holds one pointer per kernel
/// parameter, each pointing at a value of that parameter's size.
#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernel(
    func: Handle,
    grid_x: c_uint,
    grid_y: c_uint,
    grid_z: c_uint,
    block_x: c_uint,
    block_y: c_uint,
    block_z: c_uint,
    shared_bytes: c_uint,
    stream: Handle,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    call("cuLaunchKernel", |d| {
        launch(
            d,
            func,
            [grid_x, grid_y, grid_z],
            [block_x, block_y, block_z],
            shared_bytes,
            stream,
            params,
            extra,
        )
    })
}
