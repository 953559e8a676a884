//! The driver's state: devices, contexts, streams, events, modules, functions and allocations,
//! all behind one lock, and the calling thread's context stack.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::abi::*;
use crate::access::AccessSet;
use crate::clock::Clock;
use crate::config::Config;
use crate::exec::Op;
use crate::ptx_header::{EntryBounds, PtxHeader};
use crate::report::{note, report};

/// Handle tags: the top byte of every handle says what it is, so a handle of the wrong kind is
/// refused (CUDA_ERROR_INVALID_HANDLE) instead of being mistaken for another object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Context = 0xc1,
    Stream = 0xc2,
    Event = 0xc3,
    Module = 0xc4,
    Function = 0xc5,
}

/// The handle of object `id` of kind `tag`.
pub fn handle(tag: Tag, id: u64) -> Handle {
    (((tag as u64) << 56) | id) as usize as Handle
}

/// The id inside `h` if it is a handle of kind `tag`.
pub fn id_of(tag: Tag, h: Handle) -> Option<u64> {
    let v = h as usize as u64;
    (v >> 56 == tag as u64 && v & ((1 << 56) - 1) != 0).then_some(v & ((1 << 56) - 1))
}

/// A fault that ended a context: sticky, returned by every later call on it.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: CUresult,
    pub report: String,
}

pub struct Device {
    pub primary: Option<u64>,
    pub primary_refs: u32,
    pub primary_flags: u32,
}

pub struct Context {
    pub device: i32,
    pub primary: bool,
    pub flags: u32,
    /// The legacy default stream (`CUstream` 0).
    pub null_stream: u64,
    pub fault: Option<Fault>,
    /// The last operations of its destroyed streams (a context synchronize waits for them).
    pub retired: Clock,
    /// Its device memory. Each context has its own, at addresses no other context uses, so a
    /// kernel that dereferences another context's (or device's) pointer faults, as on hardware.
    pub memory: ptxsim::Memory,
}

pub struct Stream {
    pub ctx: u64,
    /// The legacy default stream of its context.
    pub legacy: bool,
    /// Created without CU_STREAM_NON_BLOCKING: synchronises with the legacy default stream.
    pub blocking: bool,
    pub flags: u32,
    pub priority: i32,
    /// Submitted, not yet executed.
    pub queue: VecDeque<Op>,
    /// What the next operation must wait for (the last one's clock, joined with event waits).
    pub clock: Clock,
    /// Number of the last operation submitted.
    pub submitted: u64,
    /// Number of the last operation executed (or dropped after a fault).
    pub done: u64,
}

/// Where and when an event was last recorded.
pub struct Recorded {
    pub clock: Clock,
    pub generation: u64,
    /// Simulated time when the recorded work finished; `None` until it has.
    pub time_ns: Option<f64>,
}

pub struct Event {
    pub ctx: u64,
    pub flags: u32,
    pub record: Option<Recorded>,
    pub generation: u64,
}

pub struct LoadedModule {
    pub ctx: u64,
    pub sim: Arc<ptxsim::Module>,
    pub header: PtxHeader,
}

pub struct Function {
    pub module: u64,
    pub ctx: u64,
    pub name: String,
    /// Byte size of each parameter, from the PTX.
    pub params: Vec<usize>,
    pub bounds: EntryBounds,
    pub ptx_version: (u32, u32),
    pub max_dynamic_shared: u32,
    pub sim: Arc<ptxsim::Module>,
}

pub struct Allocation {
    pub len: u64,
    pub ctx: u64,
    pub device: i32,
    /// A `cuMemFreeAsync` of it was submitted: nothing new may use it.
    pub freeing: bool,
    /// The `cuMemFreeAsync` ran: (stream, operation number). Its memory stays mapped until no
    /// operation concurrent with the free can run, so that such an operation is reported as a
    /// race with the free, and one ordered after it as a use after free.
    pub freed_by: Option<(u64, u64)>,
}

/// An executed operation, kept while a concurrent one may still come.
pub struct Done {
    pub ctx: u64,
    pub stream: u64,
    pub seq: u64,
    pub what: String,
    pub access: AccessSet,
}

pub struct Driver {
    pub config: Config,
    pub devices: Vec<Device>,
    pub contexts: BTreeMap<u64, Context>,
    pub destroyed: BTreeSet<u64>,
    pub streams: BTreeMap<u64, Stream>,
    pub events: BTreeMap<u64, Event>,
    pub modules: BTreeMap<u64, LoadedModule>,
    pub functions: BTreeMap<u64, Function>,
    /// Live allocations by start address.
    pub allocations: BTreeMap<u64, Allocation>,
    pub allocated_bytes: u64,
    /// Contexts created so far: numbers their address regions.
    regions: u64,
    /// What the host has seen finish: every later operation happens after it.
    pub host_clock: Clock,
    pub history: Vec<Done>,
    /// Host copies of device-to-host transfers, by (stream, operation number).
    pub outputs: HashMap<(u64, u64), Vec<u8>>,
    /// Host buffers of executed host-to-device copies, kept for the next copies' staging (a
    /// fresh buffer of hundreds of MB costs more in page faults than the copy itself).
    spare: Vec<Vec<u8>>,
    /// Simulated device time, advanced by each executed operation (see `exec::cost_ns`).
    pub sim_time_ns: f64,
    pub launches: u64,
    next_id: u64,
}

/// Device memory the vgpu reports (an H100's 80 GB); allocations are also refused when the host
/// does not have the memory to back them.
pub const TOTAL_MEMORY: u64 = 80 * 1000 * 1000 * 1000;

impl Driver {
    fn new(config: Config) -> Driver {
        Driver {
            config,
            devices: (0..config.devices)
                .map(|_| Device {
                    primary: None,
                    primary_refs: 0,
                    primary_flags: 0,
                })
                .collect(),
            contexts: BTreeMap::new(),
            destroyed: BTreeSet::new(),
            streams: BTreeMap::new(),
            events: BTreeMap::new(),
            modules: BTreeMap::new(),
            functions: BTreeMap::new(),
            allocations: BTreeMap::new(),
            allocated_bytes: 0,
            regions: 0,
            host_clock: Clock::new(),
            history: Vec::new(),
            outputs: HashMap::new(),
            spare: Vec::new(),
            sim_time_ns: 0.0,
            launches: 0,
            next_id: 1,
        }
    }

    pub fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Checks a device ordinal.
    pub fn device(&self, dev: CUdevice) -> Result<usize, CUresult> {
        usize::try_from(dev)
            .ok()
            .filter(|&d| d < self.devices.len())
            .ok_or_else(|| {
                note(&format!(
                    "device {dev} does not exist: there are {} (VGPU_DEVICES)",
                    self.devices.len()
                ));
                CUDA_ERROR_INVALID_DEVICE
            })
    }

    /// Creates a context on `device` with its legacy default stream.
    pub fn create_context(&mut self, device: i32, primary: bool, flags: u32) -> u64 {
        let id = self.new_id();
        // Context n's memory starts n TiB above ptxsim's first address (regions repeat after
        // 2^20 contexts, far more than a process creates).
        self.regions += 1;
        let mut memory = ptxsim::Memory::new();
        memory.alloc_at_offset(0, (self.regions % (1 << 20)) << 40);
        let null_stream = self.new_id();
        self.streams.insert(
            null_stream,
            Stream {
                ctx: id,
                legacy: true,
                blocking: true,
                flags: 0,
                priority: 0,
                queue: VecDeque::new(),
                clock: Clock::new(),
                submitted: 0,
                done: 0,
            },
        );
        self.contexts.insert(
            id,
            Context {
                device,
                primary,
                flags,
                null_stream,
                fault: None,
                retired: Clock::new(),
                memory,
            },
        );
        id
    }

    /// Finishes a context's work and frees everything it owns.
    pub fn destroy_context(&mut self, ctx: u64) {
        self.run_context(ctx);
        let streams: Vec<u64> = self.streams_of(ctx);
        // Its memory is freed and its addresses never come back: nothing can race with what
        // its streams did.
        self.history.retain(|d| !streams.contains(&d.stream));
        for s in streams {
            self.streams.remove(&s);
            self.host_clock.forget(s);
        }
        self.events.retain(|_, e| e.ctx != ctx);
        self.modules.retain(|_, m| m.ctx != ctx);
        self.functions.retain(|_, f| f.ctx != ctx);
        let owned: Vec<u64> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.ctx == ctx)
            .map(|(&addr, _)| addr)
            .collect();
        for addr in owned {
            self.release_allocation(addr);
        }
        self.contexts.remove(&ctx);
        self.destroyed.insert(ctx);
        self.prune_history();
    }

    /// Streams of `ctx`, its legacy stream included.
    pub fn streams_of(&self, ctx: u64) -> Vec<u64> {
        self.streams
            .iter()
            .filter(|(_, s)| s.ctx == ctx)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Checks a context handle.
    pub fn context(&self, h: Handle) -> Result<u64, CUresult> {
        let id = id_of(Tag::Context, h).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        if self.contexts.contains_key(&id) {
            Ok(id)
        } else if self.destroyed.contains(&id) {
            Err(CUDA_ERROR_CONTEXT_IS_DESTROYED)
        } else {
            Err(CUDA_ERROR_INVALID_CONTEXT)
        }
    }

    /// The calling thread's current context.
    pub fn current(&self) -> Result<u64, CUresult> {
        let Some(id) = current_id() else {
            note("no context is current on the calling thread (cuCtxSetCurrent, or retain the primary context)");
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        };
        if self.contexts.contains_key(&id) {
            Ok(id)
        } else {
            note("the calling thread's current context was destroyed");
            Err(CUDA_ERROR_CONTEXT_IS_DESTROYED)
        }
    }

    /// The current context, if it has not faulted.
    pub fn usable_current(&self) -> Result<u64, CUresult> {
        let ctx = self.current()?;
        self.check_fault(ctx)?;
        Ok(ctx)
    }

    /// The sticky error of `ctx`, if any.
    pub fn check_fault(&self, ctx: u64) -> Result<(), CUresult> {
        match self.contexts.get(&ctx).and_then(|c| c.fault.as_ref()) {
            Some(f) => {
                note(&f.report);
                Err(f.code)
            }
            None => Ok(()),
        }
    }

    /// Requires `ctx` (an object's context) to be the calling thread's current context.
    pub fn require_current(&self, ctx: u64, what: &str) -> Result<(), CUresult> {
        let current = self.current()?;
        if current != ctx {
            note(&format!(
                "{what} belongs to context {:?}, but the calling thread's current context is {:?} \
                 (bind the object's context first)",
                handle(Tag::Context, ctx),
                handle(Tag::Context, current)
            ));
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        }
        self.check_fault(ctx)
    }

    /// Resolves a stream handle: 0 and CU_STREAM_LEGACY are the calling thread's current
    /// context's legacy default stream; any other stream is its own context's.
    pub fn stream(&self, h: Handle) -> Result<u64, CUresult> {
        let raw = h as usize;
        if raw == 0 || raw == CU_STREAM_LEGACY {
            let ctx = self.usable_current()?;
            return self
                .contexts
                .get(&ctx)
                .map(|c| c.null_stream)
                .ok_or(CUDA_ERROR_INVALID_CONTEXT);
        }
        if raw == CU_STREAM_PER_THREAD {
            report("the per-thread default stream (CU_STREAM_PER_THREAD) is not simulated");
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        let id = id_of(Tag::Stream, h).ok_or_else(|| {
            note(&format!("{h:?} is not a stream handle"));
            CUDA_ERROR_INVALID_HANDLE
        })?;
        let Some(s) = self.streams.get(&id) else {
            note(&format!("stream {h:?} does not exist (destroyed?)"));
            return Err(CUDA_ERROR_INVALID_HANDLE);
        };
        // A stream carries its context: work queued on it runs there, whichever context is
        // current on the calling thread.
        self.check_fault(s.ctx)?;
        Ok(id)
    }

    /// The allocation holding `[addr, addr + len)`, for a copy or memset submitted now.
    pub fn allocation_range(&self, addr: u64, len: u64, what: &str) -> Result<u64, CUresult> {
        let found = self.allocations.range(..=addr).next_back();
        match found {
            Some((&start, a)) if addr.checked_add(len).is_some_and(|e| e <= start + a.len) => {
                if a.freeing || a.freed_by.is_some() {
                    note(&format!(
                        "{what}: 0x{addr:x} is in allocation 0x{start:x} whose cuMemFreeAsync was \
                         already submitted"
                    ));
                    return Err(CUDA_ERROR_INVALID_VALUE);
                }
                Ok(start)
            }
            Some((&start, a)) if addr < start + a.len => {
                note(&format!(
                    "{what}: {len} bytes at 0x{addr:x} run past the end of allocation 0x{start:x} \
                     ({} bytes)",
                    a.len
                ));
                Err(CUDA_ERROR_INVALID_VALUE)
            }
            _ => {
                note(&format!(
                    "{what}: 0x{addr:x} is not device memory allocated by this driver"
                ));
                Err(CUDA_ERROR_INVALID_VALUE)
            }
        }
    }

    /// The live allocation containing `addr`, if any: (start, allocation).
    pub fn allocation_at(&self, addr: u64) -> Option<(u64, &Allocation)> {
        self.allocations
            .range(..=addr)
            .next_back()
            .filter(|(&start, a)| addr < start + a.len.max(1))
            .map(|(&s, a)| (s, a))
    }

    /// Allocates `len` bytes for `ctx`, filled with 0xff bytes (NaN in every float type) so that
    /// reading memory nobody wrote shows.
    pub fn allocate(&mut self, ctx: u64, len: u64) -> Result<u64, CUresult> {
        self.relieve_memory_pressure();
        let device = self.contexts.get(&ctx).map_or(0, |c| c.device);
        let available =
            host_available_bytes().min(TOTAL_MEMORY.saturating_sub(self.allocated_bytes));
        let Ok(bytes) = usize::try_from(len) else {
            return Err(CUDA_ERROR_OUT_OF_MEMORY);
        };
        if len > available {
            note(&format!(
                "cannot allocate {len} bytes: {available} bytes are available (the vgpu's memory \
                 is the host's)"
            ));
            return Err(CUDA_ERROR_OUT_OF_MEMORY);
        }
        let Some(memory) = self.contexts.get_mut(&ctx).map(|c| &mut c.memory) else {
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        };
        let addr = memory.alloc(bytes);
        let chunk = vec![0xffu8; bytes.min(1 << 20)];
        let mut at = 0usize;
        while at < bytes {
            let n = chunk.len().min(bytes - at);
            // The range lies inside the allocation just made.
            let _ = memory.write(addr + at as u64, &chunk[..n]);
            at += n;
        }
        self.allocations.insert(
            addr,
            Allocation {
                len,
                ctx,
                device,
                freeing: false,
                freed_by: None,
            },
        );
        self.allocated_bytes += len;
        Ok(addr)
    }

    /// Frees allocation `addr` now.
    pub fn release_allocation(&mut self, addr: u64) {
        if let Some(a) = self.allocations.remove(&addr) {
            self.allocated_bytes -= a.len;
            if let Some(c) = self.contexts.get_mut(&a.ctx) {
                // It is live in the context's memory: `allocate` made it and only this
                // function frees it.
                let _ = c.memory.free(addr);
            }
        }
    }

    /// A staging buffer holding a copy of `data`, reusing a spare one where it fits.
    pub fn stage(&mut self, data: &[u8]) -> Vec<u8> {
        let fit = self
            .spare
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= data.len())
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let mut buf = fit.map_or_else(Vec::new, |i| self.spare.swap_remove(i));
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    /// Keeps an executed copy's staging buffer for reuse (up to 1 GiB of them).
    pub fn unstage(&mut self, buf: Vec<u8>) {
        const KEEP: usize = 1 << 30;
        let kept: usize = self.spare.iter().map(Vec::capacity).sum();
        if buf.capacity() >= 1 << 20 && kept + buf.capacity() <= KEEP {
            self.spare.push(buf);
        }
    }

    /// Reads device memory of whichever context owns `addr`.
    pub fn read_device(&self, addr: u64, len: usize) -> Result<Vec<u8>, ptxsim::SimError> {
        let ctx = self.owner(addr)?;
        match self.contexts.get(&ctx) {
            Some(c) => c.memory.read(addr, len),
            None => Err(unmapped(addr)),
        }
    }

    /// Writes device memory of whichever context owns `addr`.
    pub fn write_device(&mut self, addr: u64, data: &[u8]) -> Result<(), ptxsim::SimError> {
        let ctx = self.owner(addr)?;
        match self.contexts.get_mut(&ctx) {
            Some(c) => c.memory.write(addr, data),
            None => Err(unmapped(addr)),
        }
    }

    fn owner(&self, addr: u64) -> Result<u64, ptxsim::SimError> {
        self.allocation_at(addr)
            .map(|(_, a)| a.ctx)
            .ok_or_else(|| unmapped(addr))
    }
}

fn unmapped(addr: u64) -> ptxsim::SimError {
    ptxsim::SimError::Memory(format!("0x{addr:x} is not in any live allocation (freed?)"))
}

/// Bytes the host can still give (`MemAvailable` less a reserve), or unlimited where unknown.
fn host_available_bytes() -> u64 {
    const RESERVE: u64 = 512 << 20;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| (kb * 1024).saturating_sub(RESERVE))
}

/// The driver's lifecycle.
pub enum Init {
    NotYet,
    Failed(CUresult),
    Ready(Box<Driver>),
}

static STATE: Mutex<Init> = Mutex::new(Init::NotYet);

/// Locks the driver state.
pub fn lock() -> MutexGuard<'static, Init> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `cuInit`: reads the configuration once; later calls return the first result.
pub fn init() -> CUresult {
    let mut state = lock();
    match &*state {
        Init::Ready(_) => CUDA_SUCCESS,
        Init::Failed(code) => *code,
        Init::NotYet => match Config::from_env() {
            Ok(config) if config.devices == 0 => {
                report("VGPU_DEVICES=0: no device");
                *state = Init::Failed(CUDA_ERROR_NO_DEVICE);
                CUDA_ERROR_NO_DEVICE
            }
            Ok(config) => {
                *state = Init::Ready(Box::new(Driver::new(config)));
                CUDA_SUCCESS
            }
            Err(msg) => {
                report(&format!("cuInit failed: {msg}"));
                *state = Init::Failed(CUDA_ERROR_INVALID_VALUE);
                CUDA_ERROR_INVALID_VALUE
            }
        },
    }
}

/// Runs `f` on the initialised driver; CUDA_ERROR_NOT_INITIALIZED before a successful `cuInit`.
pub fn with_driver(f: impl FnOnce(&mut Driver) -> Result<(), CUresult>) -> CUresult {
    let mut state = lock();
    match &mut *state {
        Init::Ready(d) => match f(d) {
            Ok(()) => CUDA_SUCCESS,
            Err(code) => code,
        },
        _ => {
            note("cuInit has not succeeded");
            CUDA_ERROR_NOT_INITIALIZED
        }
    }
}

thread_local! {
    /// The calling thread's context stack (top = current), as context ids.
    static CONTEXT_STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// The calling thread's current context id.
pub fn current_id() -> Option<u64> {
    // `try_with`: during thread teardown (a context dropped by a thread-local destructor) the
    // stack may already be gone, which means no current context.
    CONTEXT_STACK
        .try_with(|s| s.borrow().last().copied())
        .ok()
        .flatten()
}

/// Replaces the current context (`cuCtxSetCurrent`); `None` pops it.
pub fn set_current(ctx: Option<u64>) {
    let _ = CONTEXT_STACK.try_with(|s| {
        let mut s = s.borrow_mut();
        s.pop();
        if let Some(c) = ctx {
            s.push(c);
        }
    });
}

/// Pushes a context (`cuCtxPushCurrent`, `cuCtxCreate`).
pub fn push_current(ctx: u64) {
    let _ = CONTEXT_STACK.try_with(|s| s.borrow_mut().push(ctx));
}

/// Pops the current context (`cuCtxPopCurrent`).
pub fn pop_current() -> Option<u64> {
    CONTEXT_STACK
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
}

/// Removes `ctx` from the calling thread's stack (it was destroyed).
pub fn forget_current(ctx: u64) {
    let _ = CONTEXT_STACK.try_with(|s| s.borrow_mut().retain(|&c| c != ctx));
}

/// A null pointer check for out-parameters.
pub fn out<T>(p: *mut T, name: &str) -> Result<*mut T, CUresult> {
    if p.is_null() {
        note(&format!("{name} is a null pointer"));
        Err(CUDA_ERROR_INVALID_VALUE)
    } else {
        Ok(p)
    }
}

/// A null pointer check for inputs.
pub fn input<T>(p: *const T, name: &str) -> Result<*const T, CUresult> {
    if p.is_null() {
        note(&format!("{name} is a null pointer"));
        Err(CUDA_ERROR_INVALID_VALUE)
    } else {
        Ok(p)
    }
}
