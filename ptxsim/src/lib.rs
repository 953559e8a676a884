//! `ptxsim` — a small, clear PTX interpreter for testing CUDA kernels on the CPU.
//!
//! It executes the PTX that NVRTC emits (for `compute_75`, `compute_80` and
//! `compute_90`, PTX ISA 9.0) so that every kernel of `adaptive-pool` can be
//! tested bit-exactly without a GPU.
//!
//! # Design
//!
//! * **Parse and decode once.** [`Module::parse`] tokenizes the PTX text,
//!   parses every `.entry`, and decodes each instruction into a compact enum
//!   with resolved types and modifiers. Registers become numbered *slots* of a
//!   per-thread `u64` register file; immediates, special registers (`%tid.x`,
//!   ...) and variable addresses become preloaded slots too, so the interpreter
//!   never inspects operand kinds at run time. Labels become instruction
//!   indices. Anything not implemented — opcode, modifier, type, directive,
//!   operand form — is rejected at this point with its line number; nothing is
//!   skipped silently.
//! * **Blocks run one after another**, in the order chosen by
//!   [`BlockOrder`]. Within a block, each thread runs on its own until it
//!   exits or reaches a synchronisation point (`bar.sync`, `shfl.sync`,
//!   `vote.sync`, `bar.warp.sync`). When no thread can run, completed warp
//!   collectives are exchanged and barriers released. A synchronisation that
//!   can never complete (threads that exited or wait elsewhere) is reported as
//!   [`SimError::Deadlock`] naming the threads, never a hang.
//! * **Memory is checked.** Global memory ([`Memory`]) is a set of
//!   caller-allocated buffers separated by unmapped gaps; every access is
//!   bounds- and alignment-checked. Shared memory is fresh for every block and
//!   tracks which bytes have been written, so reading uninitialised shared
//!   memory is an error. Generic addresses equal global addresses, except for
//!   a high window that maps to shared memory (`cvta.shared`).
//! * **Arithmetic is bit-exact.** Integer operations wrap; shifts clamp; division
//!   by zero gives all ones (remainder: the dividend). Float operations use IEEE
//!   round-to-nearest-even; `fma` is fused; f32 NaN results are the canonical
//!   `0x7fffffff`; `min`/`max` ignore a NaN operand. Conversions with directed
//!   rounding and all `f16`/`bf16` rounding use exact integer arithmetic.
//!   `div.approx`/`div.full`/`rcp.approx`/`sqrt.approx` are computed correctly
//!   rounded (the hardware's results may differ in the last bits).
//!
//! # Example
//!
//! ```
//! use ptxsim::{BlockOrder, LaunchConfig, Memory, Module, ParamValue};
//! let ptx = r#"
//! .version 9.0
//! .target sm_80
//! .address_size 64
//! .visible .entry fill(.param .u64 out, .param .u32 v)
//! {
//!     .reg .b32 %r<4>;
//!     .reg .b64 %rd<4>;
//!     ld.param.u64 %rd1, [out];
//!     ld.param.u32 %r1, [v];
//!     mov.u32 %r2, %tid.x;
//!     mul.wide.u32 %rd2, %r2, 4;
//!     add.s64 %rd3, %rd1, %rd2;
//!     st.global.u32 [%rd3], %r1;
//!     ret;
//! }
//! "#;
//! let module = Module::parse(ptx).unwrap();
//! let mut mem = Memory::new();
//! let out = mem.alloc(4 * 8);
//! let cfg = LaunchConfig { grid: [1, 1, 1], block: [8, 1, 1], dynamic_shared_bytes: 0, block_order: BlockOrder::Forward };
//! module.launch("fill", &cfg, &[ParamValue::U64(out), ParamValue::U32(7)], &mut mem).unwrap();
//! assert_eq!(mem.read(out, 4).unwrap(), vec![7, 0, 0, 0]);
//! ```

mod error;
mod exec;
mod fp;
mod ir;
mod lex;
mod memory;
mod parse;
pub mod trace;

pub use error::SimError;
pub use memory::Memory;
pub use trace::{NoObserver, Observer};

/// A parsed and decoded PTX module: all of its `.entry` kernels.
#[derive(Debug, Clone)]
pub struct Module {
    kernels: Vec<parse::Kernel>,
}

/// The declared type of a kernel parameter (`.param .u64 name` -> [`ParamType::U64`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `.b8`
    B8,
    /// `.b16`
    B16,
    /// `.b32`
    B32,
    /// `.b64`
    B64,
    /// `.u8`
    U8,
    /// `.u16`
    U16,
    /// `.u32`
    U32,
    /// `.u64` (also used for pointers)
    U64,
    /// `.s8`
    S8,
    /// `.s16`
    S16,
    /// `.s32`
    S32,
    /// `.s64`
    S64,
    /// `.f16`
    F16,
    /// `.bf16`
    BF16,
    /// `.f32`
    F32,
    /// `.f64`
    F64,
}

impl ParamType {
    /// Size of the parameter in bytes.
    pub fn size(self) -> usize {
        match self {
            ParamType::B8 | ParamType::U8 | ParamType::S8 => 1,
            ParamType::B16 | ParamType::U16 | ParamType::S16 | ParamType::F16 | ParamType::BF16 => {
                2
            }
            ParamType::B32 | ParamType::U32 | ParamType::S32 | ParamType::F32 => 4,
            ParamType::B64 | ParamType::U64 | ParamType::S64 | ParamType::F64 => 8,
        }
    }
}

/// A kernel argument. It is matched by size to the declared `.param`:
/// 8-byte parameters (`.u64`, `.b64`, `.s64`, `.f64`, pointers) take
/// [`ParamValue::U64`] or [`ParamValue::F64`], 4-byte ones `U32` or `F32`, and so on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    /// A 1-byte value.
    U8(u8),
    /// A 2-byte value (also the bit pattern of an `f16`/`bf16`).
    U16(u16),
    /// A 4-byte integer.
    U32(u32),
    /// An 8-byte integer or a device address.
    U64(u64),
    /// A 4-byte float.
    F32(f32),
    /// An 8-byte float.
    F64(f64),
}

impl ParamValue {
    fn bytes(self) -> Vec<u8> {
        match self {
            ParamValue::U8(v) => vec![v],
            ParamValue::U16(v) => v.to_le_bytes().to_vec(),
            ParamValue::U32(v) => v.to_le_bytes().to_vec(),
            ParamValue::U64(v) => v.to_le_bytes().to_vec(),
            ParamValue::F32(v) => v.to_le_bytes().to_vec(),
            ParamValue::F64(v) => v.to_le_bytes().to_vec(),
        }
    }
}

/// The order in which the blocks of a grid are executed (one after another,
/// each to completion). Running a test under several orders catches kernels
/// that wrongly depend on inter-block ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOrder {
    /// Linear block index 0, 1, 2, ... (x fastest).
    Forward,
    /// Highest linear block index first.
    Reverse,
    /// A pseudo-random permutation determined by the seed.
    Shuffled(u64),
}

/// Grid and block shape of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Number of blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z (at most 1024 in total).
    pub block: [u32; 3],
    /// Bytes of dynamic (`.extern .shared`) shared memory per block.
    pub dynamic_shared_bytes: u32,
    /// Order in which blocks are executed.
    pub block_order: BlockOrder,
}

/// The order in which the threads of a block take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadOrder {
    /// Linear thread index 0, 1, 2, ...
    Ascending,
    /// Highest linear thread index first.
    Descending,
    /// A pseudo-random permutation determined by the seed.
    Shuffled(u64),
}

/// How the threads of a block are interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Each thread, in the given order, runs until it blocks (a barrier, a warp collective, or
    /// its exit) before the next one runs.
    RunToBlock(ThreadOrder),
    /// Threads are switched every `quantum` instructions, the next thread chosen
    /// pseudo-randomly from `seed`, so that read-modify-write sequences of different threads
    /// interleave and compare-and-swap loops retry.
    Preemptive {
        /// Instructions a thread runs before it is switched out (at least 1).
        quantum: u32,
        /// Seed of the choice of the next thread.
        seed: u64,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::RunToBlock(ThreadOrder::Ascending)
    }
}

/// Options of [`Module::launch_with`] beyond the grid: scheduling, checks, limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    /// How threads within a block are interleaved.
    pub schedule: Schedule,
    /// Report data races on shared and global memory as errors.
    pub race_check: bool,
    /// The most instructions the launch may execute (summed over threads) before it fails
    /// with an error; `None` for no limit.
    pub max_instructions: Option<u64>,
    /// Run only these linear block indices (x fastest), in this order, instead of the whole
    /// grid in [`LaunchConfig::block_order`]. For sampling large grids.
    pub blocks: Option<Vec<u64>>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            schedule: Schedule::default(),
            race_check: true,
            max_instructions: Some(DEFAULT_MAX_INSTRUCTIONS),
            blocks: None,
        }
    }
}

/// The instruction limit of [`LaunchOptions::default`]: far above any test launch (the
/// largest runs a few hundred million), low enough that a spin-wait fails in seconds.
pub const DEFAULT_MAX_INSTRUCTIONS: u64 = 20_000_000_000;

/// Counters of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LaunchStats {
    /// Executed instructions, summed over all threads (guarded-off ones included).
    pub instructions: u64,
    /// Blocks executed.
    pub blocks: u64,
    /// Threads executed.
    pub threads: u64,
}

impl Module {
    /// Parses and decodes a PTX module. Errors name the line and the
    /// unsupported or malformed construct.
    pub fn parse(ptx: &str) -> Result<Module, SimError> {
        Ok(Module {
            kernels: parse::parse_module(ptx)?,
        })
    }

    /// Names of the module's `.entry` kernels, in source order.
    pub fn kernel_names(&self) -> Vec<&str> {
        self.kernels.iter().map(|k| k.name.as_str()).collect()
    }

    fn kernel(&self, name: &str) -> Result<&parse::Kernel, SimError> {
        self.kernels
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| SimError::UnknownKernel(name.to_string()))
    }

    /// Declared parameter types of `kernel`, in order.
    pub fn kernel_params(&self, kernel: &str) -> Result<Vec<ParamType>, SimError> {
        Ok(self.kernel(kernel)?.params.iter().map(|p| p.ty).collect())
    }

    /// The PTX text of each instruction of `kernel`, indexed by pc (the `pc` of
    /// [`trace::Issue`] and [`trace::Access`]), with its 1-based source line.
    pub fn instructions(&self, kernel: &str) -> Result<Vec<(u32, String)>, SimError> {
        Ok(self
            .kernel(kernel)?
            .src
            .iter()
            .map(|s| (s.line, s.text.clone()))
            .collect())
    }

    /// Bytes of static shared memory `kernel` declares.
    pub fn static_shared_bytes(&self, kernel: &str) -> Result<usize, SimError> {
        Ok(self.kernel(kernel)?.shared_static)
    }

    /// Runs `kernel` over the grid of `cfg` with arguments `params` against `mem`, with
    /// [`LaunchOptions::default`] and no observer.
    ///
    /// Returns execution counters, or the first error: a parameter mismatch, an
    /// invalid launch shape, a fault (out-of-bounds or misaligned access, read
    /// of uninitialised shared memory, ...) or a deadlock. Memory written before
    /// a fault stays written.
    pub fn launch(
        &self,
        kernel: &str,
        cfg: &LaunchConfig,
        params: &[ParamValue],
        mem: &mut Memory,
    ) -> Result<LaunchStats, SimError> {
        self.launch_with(
            kernel,
            cfg,
            params,
            mem,
            &LaunchOptions::default(),
            &mut NoObserver,
        )
    }

    /// [`Module::launch`] with explicit options, reporting to `observer`.
    pub fn launch_with<O: Observer>(
        &self,
        kernel: &str,
        cfg: &LaunchConfig,
        params: &[ParamValue],
        mem: &mut Memory,
        options: &LaunchOptions,
        observer: &mut O,
    ) -> Result<LaunchStats, SimError> {
        let k = self.kernel(kernel)?;
        if params.len() != k.params.len() {
            return Err(SimError::Params {
                kernel: k.name.clone(),
                msg: format!(
                    "expected {} parameters, got {}",
                    k.params.len(),
                    params.len()
                ),
            });
        }
        let mut buf = vec![0u8; k.param_bytes];
        for (i, (p, v)) in k.params.iter().zip(params).enumerate() {
            let b = v.bytes();
            if b.len() != p.ty.size() {
                return Err(SimError::Params {
                    kernel: k.name.clone(),
                    msg: format!(
                        "parameter {i} `{}` is declared {:?} ({} bytes) but got {v:?} ({} bytes)",
                        p.name,
                        p.ty,
                        p.ty.size(),
                        b.len()
                    ),
                });
            }
            buf[p.offset..p.offset + b.len()].copy_from_slice(&b);
        }
        exec::launch(k, cfg, &buf, mem, options, observer)
    }
}
