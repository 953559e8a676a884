//! Modules and functions: PTX is checked as the driver's JIT would (ISA version against the
//! driver version, `.target` against the device) and parsed by ptxsim.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::Arc;

use super::call;
use crate::abi::function_attribute as fa;
use crate::abi::*;
use crate::ptx_header::PtxHeader;
use crate::report::{note, report};
use crate::state::{handle, id_of, input, out, Driver, Function, LoadedModule, Tag};

/// Checks and parses PTX text for the current context; returns the module id.
fn load(d: &mut Driver, image: &[u8], how: &str) -> Result<u64, CUresult> {
    let ctx = d.usable_current()?;
    if image.starts_with(b"\x7fELF") || image.starts_with(&[0x50, 0xed, 0x55, 0xba]) {
        report(&format!(
            "{how}: the image is a cubin or fatbin; the vgpu runs PTX text only"
        ));
        return Err(CUDA_ERROR_NOT_SUPPORTED);
    }
    let Ok(text) = std::str::from_utf8(image) else {
        report(&format!(
            "{how}: the image is neither PTX text nor a known binary"
        ));
        return Err(CUDA_ERROR_INVALID_IMAGE);
    };
    let header = PtxHeader::scan(text).map_err(|e| {
        report(&format!("{how}: not PTX: {e}"));
        CUDA_ERROR_INVALID_IMAGE
    })?;
    let newest = d.config.max_ptx_isa();
    if header.version > newest {
        let v = d.config.driver_version;
        report(&format!(
            "{how}: PTX ISA {}.{} is newer than this driver (CUDA {}.{}, VGPU_DRIVER_VERSION={v}) \
             loads: its newest is PTX ISA {}.{}",
            header.version.0,
            header.version.1,
            v / 1000,
            (v % 1000) / 10,
            newest.0,
            newest.1
        ));
        return Err(CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
    }
    let cc = d.config.compute_capability;
    if !header.target.runs_on(cc) {
        // The driver JIT-compiles PTX for the device; its ptxas refuses a `.target` above it
        // ("SM version specified by .target is higher than default SM version assumed"), which
        // the driver reports as a failed JIT compilation.
        report(&format!(
            "{how}: `.target {}` cannot run on this device (compute capability {}.{}, \
             VGPU_COMPUTE_CAPABILITY={cc})",
            header.target,
            cc / 10,
            cc % 10
        ));
        return Err(CUDA_ERROR_INVALID_PTX);
    }
    let sim = ptxsim::Module::parse(text).map_err(|e| match e {
        ptxsim::SimError::Unsupported { .. } => {
            report(&format!(
                "{how}: the PTX uses something ptxsim does not simulate: {e}"
            ));
            CUDA_ERROR_NOT_SUPPORTED
        }
        _ => {
            report(&format!("{how}: invalid PTX: {e}"));
            CUDA_ERROR_INVALID_PTX
        }
    })?;
    let id = d.new_id();
    d.modules.insert(
        id,
        LoadedModule {
            ctx,
            sim: Arc::new(sim),
            header,
        },
    );
    Ok(id)
}

/// `cuModuleLoadData`: loads a NUL-terminated PTX image into the current context.
///
/// # Safety
/// `module` is null or points at a writable `CUmodule`; `image` is null or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut Handle, image: *const c_void) -> CUresult {
    call("cuModuleLoadData", |d| {
        let module = out(module, "cuModuleLoadData: module")?;
        let image = input(image, "cuModuleLoadData: image")?;
        // SAFETY: non-null (checked); the caller's contract is a NUL-terminated image (the only
        // form PTX can be passed in without a size).
        let bytes = unsafe { CStr::from_ptr(image.cast::<c_char>()) }.to_bytes();
        let id = load(d, bytes, "cuModuleLoadData")?;
        // SAFETY: checked non-null by `out`; the caller passes a writable CUmodule.
        unsafe { module.write(handle(Tag::Module, id)) };
        Ok(())
    })
}

/// `cuModuleLoadDataEx`: as [`cuModuleLoadData`]; JIT options are accepted and ignored (there
/// is no JIT log: the vgpu's reports go to stderr).
///
/// # Safety
/// As [`cuModuleLoadData`]; `options` and `values` are null or hold `num_options` entries.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut Handle,
    image: *const c_void,
    num_options: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
) -> CUresult {
    call("cuModuleLoadDataEx", |d| {
        if num_options > 0 && (options.is_null() || values.is_null()) {
            note("cuModuleLoadDataEx: numOptions > 0 with null options or optionValues");
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let module = out(module, "cuModuleLoadDataEx: module")?;
        let image = input(image, "cuModuleLoadDataEx: image")?;
        // SAFETY: as in `cuModuleLoadData`.
        let bytes = unsafe { CStr::from_ptr(image.cast::<c_char>()) }.to_bytes();
        let id = load(d, bytes, "cuModuleLoadDataEx")?;
        // SAFETY: checked non-null by `out`; the caller passes a writable CUmodule.
        unsafe { module.write(handle(Tag::Module, id)) };
        Ok(())
    })
}

/// `cuModuleLoad`: loads a PTX file.
///
/// # Safety
/// `module` is null or points at a writable `CUmodule`; `path` is null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoad(module: *mut Handle, path: *const c_char) -> CUresult {
    call("cuModuleLoad", |d| {
        let module = out(module, "cuModuleLoad: module")?;
        let path = input(path, "cuModuleLoad: fname")?;
        // SAFETY: non-null (checked); the caller passes a NUL-terminated path.
        let path = unsafe { CStr::from_ptr(path) }
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).map_err(|e| {
            note(&format!("cuModuleLoad: cannot read {path}: {e}"));
            CUDA_ERROR_FILE_NOT_FOUND
        })?;
        let id = load(d, &bytes, &format!("cuModuleLoad({path})"))?;
        // SAFETY: checked non-null by `out`; the caller passes a writable CUmodule.
        unsafe { module.write(handle(Tag::Module, id)) };
        Ok(())
    })
}

fn module_id(d: &Driver, h: Handle, name: &str) -> Result<u64, CUresult> {
    id_of(Tag::Module, h)
        .filter(|id| d.modules.contains_key(id))
        .ok_or_else(|| {
            note(&format!("{name}: {h:?} is not a loaded module"));
            CUDA_ERROR_INVALID_HANDLE
        })
}

/// `cuModuleUnload`: its functions become invalid; launches already queued still run.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuModuleUnload(module: Handle) -> CUresult {
    call("cuModuleUnload", |d| {
        let id = module_id(d, module, "cuModuleUnload")?;
        d.modules.remove(&id);
        d.functions.retain(|_, f| f.module != id);
        Ok(())
    })
}

/// `cuModuleGetFunction`: the module's context must be current on the calling thread.
///
/// # Safety
/// `func` is null or points at a writable `CUfunction`; `name` is null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    func: *mut Handle,
    module: Handle,
    name: *const c_char,
) -> CUresult {
    call("cuModuleGetFunction", |d| {
        let func = out(func, "cuModuleGetFunction: hfunc")?;
        let name = input(name, "cuModuleGetFunction: name")?;
        let id = module_id(d, module, "cuModuleGetFunction")?;
        // SAFETY: non-null (checked); the caller passes a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let (ctx, sim, version, bounds) = {
            let m = &d.modules[&id];
            (
                m.ctx,
                m.sim.clone(),
                m.header.version,
                m.header.entry(&name).cloned(),
            )
        };
        d.require_current(ctx, &format!("module {module:?}"))?;
        let existing = d
            .functions
            .iter()
            .find(|(_, f)| f.module == id && f.name == name)
            .map(|(&fid, _)| fid);
        let fid = match existing {
            Some(fid) => fid,
            None => {
                let (Ok(params), Some(bounds)) = (sim.kernel_params(&name), bounds) else {
                    note(&format!(
                        "cuModuleGetFunction: no kernel `{name}` in module {module:?}"
                    ));
                    return Err(CUDA_ERROR_NOT_FOUND);
                };
                let fid = d.new_id();
                d.functions.insert(
                    fid,
                    Function {
                        module: id,
                        ctx,
                        name,
                        params: params.iter().map(|p| p.size()).collect(),
                        bounds,
                        ptx_version: version,
                        max_dynamic_shared: d.config.shared_per_block(),
                        sim,
                    },
                );
                fid
            }
        };
        // SAFETY: checked non-null by `out`; the caller passes a writable CUfunction.
        unsafe { func.write(handle(Tag::Function, fid)) };
        Ok(())
    })
}

/// The function behind a handle.
pub fn function_id(d: &Driver, h: Handle, name: &str) -> Result<u64, CUresult> {
    id_of(Tag::Function, h)
        .filter(|id| d.functions.contains_key(id))
        .ok_or_else(|| {
            note(&format!(
                "{name}: {h:?} is not a function of a loaded module"
            ));
            CUDA_ERROR_INVALID_HANDLE
        })
}

/// `cuFuncGetAttribute`: the attributes the vgpu knows from the PTX (max threads per block,
/// PTX and binary version, the dynamic shared memory limit); others are NOT_SUPPORTED.
///
/// # Safety
/// `value` is null or points at a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(
    value: *mut c_int,
    attrib: c_int,
    func: Handle,
) -> CUresult {
    call("cuFuncGetAttribute", |d| {
        let value = out(value, "cuFuncGetAttribute: pi")?;
        let fid = function_id(d, func, "cuFuncGetAttribute")?;
        let f = &d.functions[&fid];
        let cc = d.config.compute_capability as c_int;
        let v = match attrib {
            fa::MAX_THREADS_PER_BLOCK => {
                let bound = f.bounds.reqntid.or(f.bounds.maxntid);
                bound.map_or(1024, |b| b.iter().product::<u32>().min(1024)) as c_int
            }
            fa::PTX_VERSION => (f.ptx_version.0 * 10 + f.ptx_version.1) as c_int,
            fa::BINARY_VERSION => cc,
            fa::MAX_DYNAMIC_SHARED_SIZE_BYTES => f.max_dynamic_shared as c_int,
            // Registers, local/shared/constant sizes, cache mode...: ptxas figures the vgpu
            // has no way to know.
            a if (0..=20).contains(&a) => {
                report(&format!(
                    "cuFuncGetAttribute: attribute {attrib} is not modelled by the vgpu"
                ));
                return Err(CUDA_ERROR_NOT_SUPPORTED);
            }
            _ => {
                note(&format!(
                    "cuFuncGetAttribute: {attrib} is not a function attribute"
                ));
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
        };
        // SAFETY: checked non-null by `out`; the caller passes a writable int.
        unsafe { value.write(v) };
        Ok(())
    })
}

/// `cuFuncSetAttribute`: MAX_DYNAMIC_SHARED_SIZE_BYTES (up to the device's opt-in limit) is
/// honoured by `cuLaunchKernel`; other settable attributes are accepted and change nothing.
///
/// # Safety
/// None beyond the driver API's: the handle is checked.
#[no_mangle]
pub unsafe extern "C" fn cuFuncSetAttribute(func: Handle, attrib: c_int, value: c_int) -> CUresult {
    call("cuFuncSetAttribute", |d| {
        let fid = function_id(d, func, "cuFuncSetAttribute")?;
        let optin = d.config.shared_per_block_optin();
        match attrib {
            fa::MAX_DYNAMIC_SHARED_SIZE_BYTES => {
                let Some(v) = u32::try_from(value).ok().filter(|&v| v <= optin) else {
                    note(&format!(
                        "cuFuncSetAttribute: {value} bytes of dynamic shared memory is outside \
                         0..={optin} for this device"
                    ));
                    return Err(CUDA_ERROR_INVALID_VALUE);
                };
                if let Some(f) = d.functions.get_mut(&fid) {
                    f.max_dynamic_shared = v;
                }
                Ok(())
            }
            // PREFERRED_SHARED_MEMORY_CARVEOUT and the cluster attributes: hints.
            9..=20 => Ok(()),
            _ => {
                note(&format!(
                    "cuFuncSetAttribute: attribute {attrib} cannot be set"
                ));
                Err(CUDA_ERROR_INVALID_VALUE)
            }
        }
    })
}
