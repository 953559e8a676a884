//! The error type of the simulator.

use std::fmt;

use crate::trace::{AccessKind, MemSpace};

/// The class of a data race, named as compute-sanitizer's racecheck names them (plus the
/// mix of plain and atomic accesses, which racecheck does not report on global memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hazard {
    /// A load unordered with an earlier store by another thread.
    ReadAfterWrite,
    /// A store unordered with an earlier load by another thread.
    WriteAfterRead,
    /// Two unordered stores by different threads.
    WriteAfterWrite,
    /// A plain load or store unordered with an atomic (or `.volatile`/`.relaxed`) access
    /// of another thread, in either order.
    PlainAndAtomic,
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hazard::ReadAfterWrite => "read-after-write",
            Hazard::WriteAfterRead => "write-after-read",
            Hazard::WriteAfterWrite => "write-after-write",
            Hazard::PlainAndAtomic => "plain-vs-atomic",
        })
    }
}

/// One side of a data race: which thread did what, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceAccess {
    /// Block index (x, y, z).
    pub block: [u32; 3],
    /// Thread index within the block (x, y, z).
    pub thread: [u32; 3],
    /// 1-based PTX source line of the instruction.
    pub line: u32,
    /// Source text of the instruction.
    pub inst: String,
    /// Load, store or atomic (`.volatile`/`.relaxed` loads and stores count as atomic).
    pub kind: AccessKind,
}

impl fmt::Display for RaceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.kind {
            AccessKind::Load => "load",
            AccessKind::Store => "store",
            AccessKind::Atomic => "atomic",
        };
        write!(
            f,
            "{verb} by thread ({},{},{}) of block ({},{},{}) at line {} `{}`",
            self.thread[0],
            self.thread[1],
            self.thread[2],
            self.block[0],
            self.block[1],
            self.block[2],
            self.line,
            self.inst
        )
    }
}

/// Everything that can go wrong while parsing, decoding or running PTX.
///
/// Every variant carries enough context to find the offending spot: parse and
/// decode errors carry the 1-based source line, runtime faults carry the
/// kernel, block, thread, instruction text, line and (for memory faults) the
/// address involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The PTX text could not be parsed (syntax, unknown directive, bad operand).
    Parse {
        /// 1-based line in the PTX source.
        line: u32,
        /// What went wrong.
        msg: String,
    },
    /// An instruction or directive parsed but is not supported by the simulator,
    /// or is used with a modifier, type or operand form it does not implement.
    Unsupported {
        /// 1-based line in the PTX source.
        line: u32,
        /// What is unsupported (names the opcode / modifier / directive).
        msg: String,
    },
    /// No `.entry` of that name exists in the module.
    UnknownKernel(String),
    /// The launch parameters do not match the kernel's declared `.param`s.
    Params {
        /// Kernel name.
        kernel: String,
        /// Description naming the offending parameter.
        msg: String,
    },
    /// The launch configuration is invalid (zero-sized grid or block, too many threads, ...).
    Launch {
        /// Kernel name.
        kernel: String,
        /// Description of the problem.
        msg: String,
    },
    /// A fault while executing an instruction of one thread.
    Fault {
        /// Kernel name.
        kernel: String,
        /// Block index (x, y, z).
        block: [u32; 3],
        /// Thread index within the block (x, y, z).
        thread: [u32; 3],
        /// 1-based PTX source line of the instruction.
        line: u32,
        /// Source text of the instruction.
        inst: String,
        /// What happened (includes the address for memory faults).
        msg: String,
    },
    /// Threads of a block can never make progress: a divergent `bar.sync`, a
    /// `shfl.sync` whose member lanes do not all arrive, or a mix of both.
    Deadlock {
        /// Kernel name.
        kernel: String,
        /// Block index (x, y, z).
        block: [u32; 3],
        /// Description naming the waiting/exited lanes and instructions.
        msg: String,
    },
    /// A host-side access through [`crate::Memory`] was invalid.
    Memory(String),
    /// Two threads accessed the same byte, at least one of them writing (or one plainly and
    /// one atomically), with nothing ordering the two accesses: no barrier between them, no
    /// warp synchronisation (shared memory), and never across blocks (global memory). Found
    /// when [`crate::LaunchOptions::race_check`] is on, whatever order the threads ran in.
    Race {
        /// Kernel name.
        kernel: String,
        /// Shared or global memory.
        space: MemSpace,
        /// The first byte both accesses touch: a device address (global) or an offset into
        /// the block's shared memory.
        address: u64,
        /// Read-after-write, write-after-read, write-after-write or plain-vs-atomic.
        hazard: Hazard,
        /// The access that found the race (the later one in the simulated order).
        access: Box<RaceAccess>,
        /// The earlier access it is unordered with.
        earlier: Box<RaceAccess>,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Parse { line, msg } => write!(f, "PTX parse error at line {line}: {msg}"),
            SimError::Unsupported { line, msg } => {
                write!(f, "unsupported PTX at line {line}: {msg}")
            }
            SimError::UnknownKernel(k) => write!(f, "no kernel named `{k}` in the module"),
            SimError::Params { kernel, msg } => {
                write!(f, "bad parameters for kernel `{kernel}`: {msg}")
            }
            SimError::Launch { kernel, msg } => {
                write!(f, "bad launch of kernel `{kernel}`: {msg}")
            }
            SimError::Fault {
                kernel,
                block,
                thread,
                line,
                inst,
                msg,
            } => write!(
                f,
                "fault in kernel `{kernel}`, block ({},{},{}), thread ({},{},{}), line {line} `{inst}`: {msg}",
                block[0], block[1], block[2], thread[0], thread[1], thread[2]
            ),
            SimError::Deadlock { kernel, block, msg } => write!(
                f,
                "deadlock in kernel `{kernel}`, block ({},{},{}): {msg}",
                block[0], block[1], block[2]
            ),
            SimError::Memory(msg) => write!(f, "memory error: {msg}"),
            SimError::Race {
                kernel,
                space,
                address,
                hazard,
                access,
                earlier,
            } => {
                let (mem, why) = match space {
                    MemSpace::Shared => (
                        "shared memory offset",
                        "no barrier or warp synchronisation orders them",
                    ),
                    _ if access.block != earlier.block => (
                        "global address",
                        "threads of different blocks are never ordered within a launch",
                    ),
                    _ => ("global address", "no barrier orders them"),
                };
                write!(
                    f,
                    "race in kernel `{kernel}`: {hazard} hazard at {mem} 0x{address:x}: {access}, and earlier {earlier}; {why}"
                )
            }
        }
    }
}

impl std::error::Error for SimError {}
