//! The error type of the simulator.

use std::fmt;

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
        }
    }
}

impl std::error::Error for SimError {}
