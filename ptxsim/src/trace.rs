//! The execution trace: an observer interface through which tools (a performance model, a
//! coverage counter, a driver that needs a launch's exact access set) watch a launch.
//!
//! The interpreter calls an [`Observer`] at a handful of points: launch and block boundaries,
//! every instruction a thread issues, every memory access, and every barrier release. The
//! observer is a generic parameter of the interpreter, so a launch without one
//! ([`NoObserver`], what [`crate::Module::launch`] uses) compiles the hooks away: the
//! `if O::ENABLED` tests are on a constant.
//!
//! Events are per thread, in the order the scheduler runs threads (see
//! [`crate::Schedule`]), not in hardware order. A tool that wants warp-level instructions
//! rebuilds them from `(block, thread / 32, pc, n)` where `n` counts the times that thread has
//! issued that pc.

/// Which memory an access went to (generic addresses are resolved first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemSpace {
    /// Device (global) memory; `addr` is a device address.
    Global,
    /// The block's shared memory; `addr` is an offset into it.
    Shared,
    /// Kernel parameters; `addr` is an offset into the parameter buffer.
    Param,
}

/// What an access did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A plain load (`ld`).
    Load,
    /// A plain store (`st`).
    Store,
    /// An atomic read-modify-write (`atom`, `red`).
    Atomic,
}

/// One memory access of one thread: all bytes of one instruction's operand, so a
/// `ld.global.v4.f32` is a single 16-byte access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Linear block index (x fastest).
    pub block: u64,
    /// Linear thread index within the block (x fastest).
    pub thread: u32,
    /// The instruction's index in the kernel (see [`crate::Module::instructions`]).
    pub pc: u32,
    /// Which memory.
    pub space: MemSpace,
    /// Load, store or atomic.
    pub kind: AccessKind,
    /// Address (global) or offset (shared, param) of the first byte.
    pub addr: u64,
    /// Bytes accessed.
    pub bytes: u32,
}

/// One instruction issued by one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Linear block index (x fastest).
    pub block: u64,
    /// Linear thread index within the block (x fastest).
    pub thread: u32,
    /// The instruction's index in the kernel (see [`crate::Module::instructions`]).
    pub pc: u32,
    /// False when the instruction's guard predicate was false (issued, but no effect).
    pub executed: bool,
}

/// The shape of a launch, given to [`Observer::launch`] before any block runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchInfo {
    /// Kernel name.
    pub kernel: String,
    /// Grid dimensions in blocks.
    pub grid: [u32; 3],
    /// Block dimensions in threads.
    pub block: [u32; 3],
    /// Static plus dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
    /// Blocks that will run: every block of the grid, or the subset chosen in
    /// [`crate::LaunchOptions::blocks`].
    pub blocks_run: u64,
}

/// Watches a launch. Every method has an empty default, so an observer implements only what
/// it needs.
pub trait Observer {
    /// False only for [`NoObserver`]: lets the interpreter skip building events.
    const ENABLED: bool = true;

    /// Called once before the first block runs.
    fn launch(&mut self, _info: &LaunchInfo) {}
    /// A block starts (threads are reset).
    fn block_begin(&mut self, _block: u64) {}
    /// A block has finished (all of its threads exited).
    fn block_end(&mut self, _block: u64) {}
    /// A thread issued an instruction (also when its guard was false).
    fn issue(&mut self, _event: &Issue) {}
    /// A thread accessed memory. Called before the access takes effect; an access that
    /// faults is still reported.
    fn access(&mut self, _event: &Access) {}
    /// A `bar.sync`/`barrier.sync` released the threads of `block` waiting at `pc`.
    fn barrier(&mut self, _block: u64, _pc: u32) {}
}

/// The observer of a plain launch: watches nothing, costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    const ENABLED: bool = false;
}

/// Forwards to the observer behind a mutable reference, so `&mut O` can be passed where an
/// observer is taken by value.
impl<O: Observer> Observer for &mut O {
    const ENABLED: bool = O::ENABLED;
    fn launch(&mut self, info: &LaunchInfo) {
        (**self).launch(info)
    }
    fn block_begin(&mut self, block: u64) {
        (**self).block_begin(block)
    }
    fn block_end(&mut self, block: u64) {
        (**self).block_end(block)
    }
    fn issue(&mut self, event: &Issue) {
        (**self).issue(event)
    }
    fn access(&mut self, event: &Access) {
        (**self).access(event)
    }
    fn barrier(&mut self, block: u64, pc: u32) {
        (**self).barrier(block, pc)
    }
}
