//! Running a launch on ptxsim under the tracer, with block sampling, and turning the trace into
//! a modelled time.
//!
//! # Sampling and scaling
//!
//! Large launches are not simulated whole. The caller runs the kernel on a *reduced problem*
//! (fewer images N, and for NCHW fewer channels C, than the real one: every kernel here treats
//! images, and NCHW planes, alike and independently, so per-plane work and access patterns are
//! those of the real problem), and [`profile`] simulates only the first blocks of that reduced
//! launch, one after another, until an instruction budget is spent. Per-block figures are the
//! sampled blocks' averages times `scale`, the ratio of a real block's work to a simulated
//! block's ([`block_scale`]): `(planes / planes') x (grid' / grid)`, 1 where the grid grows
//! with the problem (a block per plane) and larger where the real grid is capped and blocks
//! loop (grid-stride); for the DRAM and L2 bytes of a launch that writes each destination
//! element once, a real block's average share of the destination over the bytes a sampled
//! block stored there. The error this leaves is stated in BENCHMARKS.md.

use ptxsim::{BlockOrder, LaunchConfig, LaunchOptions, Memory, Module, ParamValue};

use crate::cost::{describe, Instr};
use crate::gpu::{Gpu, Scenario, NPIPES};
use crate::model::{self, BlockCosts, LaunchTime, Replay};
use crate::trace::{BlockTrace, Tracer};

/// One launch to model.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    /// The parsed PTX module.
    pub module: &'a Module,
    /// Kernel name.
    pub kernel: String,
    /// PTX architecture of the module (80, 90).
    pub arch: u32,
    /// Grid of the simulated (reduced) launch.
    pub grid: [u32; 3],
    /// Block shape.
    pub block: [u32; 3],
    /// Dynamic shared memory, bytes.
    pub dynamic_shared: u32,
    /// Arguments (device addresses in the caller's [`Memory`]).
    pub params: Vec<ParamValue>,
}

/// How much to simulate.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    /// Stop starting blocks once this many thread instructions have run.
    pub budget: u64,
    /// Never more blocks than this.
    pub max_blocks: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            budget: 4_000_000,
            max_blocks: 64,
        }
    }
}

/// The traced blocks of a launch.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Static instruction descriptions.
    pub instrs: Vec<Instr>,
    /// The sampled blocks.
    pub blocks: Vec<BlockTrace>,
    /// Blocks in the simulated grid.
    pub grid_blocks: u64,
    /// Threads per block.
    pub threads: u32,
    /// Shared memory per block (static + dynamic), bytes.
    pub shared_bytes: u32,
}

/// Simulates the first blocks of `launch` against `mem` under the tracer.
pub fn profile(launch: &Launch, mem: &mut Memory, sampling: Sampling) -> Result<Profile, String> {
    let texts = launch
        .module
        .instructions(&launch.kernel)
        .map_err(|e| e.to_string())?;
    let instrs = describe(&texts, launch.arch);
    let static_shared = launch
        .module
        .static_shared_bytes(&launch.kernel)
        .map_err(|e| e.to_string())?;
    let cfg = LaunchConfig {
        grid: launch.grid,
        block: launch.block,
        dynamic_shared_bytes: launch.dynamic_shared,
        block_order: BlockOrder::Forward,
    };
    let grid_blocks = launch.grid.iter().map(|&g| u64::from(g)).product::<u64>();
    let mut tracer = Tracer::new(texts.len());
    let mut spent = 0u64;
    let mut b = 0u64;
    while b < grid_blocks && b < sampling.max_blocks.max(1) && (b == 0 || spent < sampling.budget) {
        let options = LaunchOptions {
            race_check: false,
            blocks: Some(vec![b]),
            ..LaunchOptions::default()
        };
        let stats = launch
            .module
            .launch_with(
                &launch.kernel,
                &cfg,
                &launch.params,
                mem,
                &options,
                &mut tracer,
            )
            .map_err(|e| format!("{}: {e}", launch.kernel))?;
        spent += stats.instructions;
        b += 1;
    }
    Ok(Profile {
        instrs,
        blocks: tracer.blocks,
        grid_blocks,
        threads: launch.block.iter().product(),
        shared_bytes: static_shared as u32 + launch.dynamic_shared,
    })
}

/// Bytes the sampled blocks of `p` wrote with plain global stores into `[lo, hi)` (a request
/// counts when one of its lines overlaps the range).
pub fn stored_bytes(p: &Profile, lo: u64, hi: u64) -> u64 {
    use ptxsim::trace::{AccessKind, MemSpace};
    let line = crate::cache::LINE;
    p.blocks
        .iter()
        .flat_map(|b| &b.requests)
        .filter(|r| r.kind == AccessKind::Store && r.space == MemSpace::Global)
        .filter(|r| {
            r.lines
                .iter()
                .any(|&(l, _)| l * line < hi && (l + 1) * line > lo)
        })
        .map(|r| r.bytes)
        .sum()
}

/// How a sampled block stands for a block of the real launch, as multiples of the sampled
/// blocks' average (see [`block_scale`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// For a block's issue cycles and its dependent-latency path: the work of the real blocks
    /// the sampled ones stand for. Per-SM issue and the slowest block's path set a wave's time,
    /// so this follows the first (sampled) blocks, which carry the largest shares.
    pub work: f64,
    /// For a block's DRAM and L2 bytes: the real launch's total over its blocks. Those bandwidths
    /// are shared by the whole device, so a wave's bytes are what its blocks move together.
    pub traffic: f64,
}

impl Scale {
    /// The same factor for work and traffic.
    pub fn uniform(factor: f64) -> Scale {
        Scale {
            work: factor,
            traffic: factor,
        }
    }
}

/// The [`Scale`] of [`estimate`] for a real launch of `real_blocks` blocks on a problem
/// `work_ratio` times the simulated one.
///
/// Work (both fields without `written_once`): the simulated launch's work taken as evenly
/// shared by its blocks, `work_ratio x simulated blocks / real_blocks`. Where a capped grid
/// divides work in ceiling shares the first blocks (the sampled ones) take full shares and the
/// last ones less or nothing: right for the busiest SM and the slowest block, an overstatement
/// of the launch's total bytes (about 1% on the table's global pooling rows, 10% on A100
/// `vgg_head_7` f64 forward, whose grid-stride loop runs once more in the first blocks).
///
/// Traffic with `written_once: Some((address, bytes))`, where the simulated launch writes each
/// element of its destination (`bytes` at `address`) exactly once with plain stores: its blocks'
/// bytes are in proportion to the destination bytes they write, so the sampled blocks' share is
/// what they stored there, and a real block's average is `work_ratio x bytes / real_blocks`.
/// Sampled blocks that stored nothing there are an error: the caller's claim was wrong.
pub fn block_scale(
    p: &Profile,
    real_blocks: u64,
    work_ratio: f64,
    written_once: Option<(u64, u64)>,
) -> Result<Scale, String> {
    let real_blocks = real_blocks.max(1) as f64;
    let work = work_ratio * p.grid_blocks as f64 / real_blocks;
    let Some((address, bytes)) = written_once else {
        return Ok(Scale::uniform(work));
    };
    let stored = stored_bytes(p, address, address + bytes);
    if stored == 0 {
        return Err("the sampled blocks stored nothing into the destination".into());
    }
    let sampled = stored as f64 / p.blocks.len().max(1) as f64;
    Ok(Scale {
        work,
        traffic: work_ratio * bytes as f64 / real_blocks / sampled,
    })
}

/// The modelled result of one launch.
#[derive(Clone, Debug)]
pub struct Estimate {
    /// Time for each scenario: fast, nominal, slow.
    pub times: [LaunchTime; 3],
    /// DRAM bytes of the whole real launch (read + write).
    pub dram_bytes: f64,
    /// Global sectors per request (the L1's 128-byte requests).
    pub sectors_per_request: f64,
    /// The memory replay of the sampled blocks.
    pub replay: Replay,
    /// Per-block costs (nominal scenario), scaled to the real problem.
    pub block: BlockCosts,
}

/// Models the real launch of `real_grid_blocks` blocks whose blocks each do `scale` times the
/// work and traffic of a sampled one, with `registers` registers per thread.
pub fn estimate(
    p: &Profile,
    gpu: &Gpu,
    registers: u32,
    real_grid_blocks: u64,
    scale: Scale,
) -> Result<Estimate, String> {
    let occupancy = gpu.blocks_per_sm(p.threads, registers, p.shared_bytes);
    if occupancy == 0 {
        return Err(format!(
            "a block of {} threads with {registers} registers and {} bytes of shared memory does not fit on an SM of {}",
            p.threads, p.shared_bytes, gpu.name
        ));
    }
    let k = p.blocks.len().max(1) as f64;
    let resident =
        (u64::from(gpu.multiprocessors) * u64::from(occupancy)).min(real_grid_blocks.max(1));
    let l1 = gpu.l1_bytes / u64::from(occupancy);
    let l2 = ((gpu.l2_bytes as f64) * (k / resident as f64).min(1.0)) as u64;
    let replay = model::replay(&p.blocks, l1, l2.max(crate::cache::LINE * 64));
    let mut times = Vec::with_capacity(3);
    let mut nominal = BlockCosts::default();
    for s in [Scenario::Fast, Scenario::Nominal, Scenario::Slow] {
        let issue = model::issue(&p.blocks, &p.instrs, &replay, gpu, s);
        let schedulers = issue.pipe.iter().sum::<f64>() / 4.0;
        let mut pipes = 0.0f64;
        for i in 0..NPIPES {
            pipes = pipes.max(issue.pipe[i] * 32.0 / gpu.pipe_lanes_per_clock[i]);
        }
        let l1 = replay.l1_wavefronts / gpu.l1_wavefronts_per_clock;
        let c = BlockCosts {
            issue_cycles: schedulers.max(pipes).max(l1) / k * scale.work,
            critical_path: issue.critical_path / k * scale.work,
            dram_bytes: (replay.dram_read + replay.dram_write) / k * scale.traffic,
            l2_bytes: replay.l2_sectors * crate::cache::SECTOR as f64 / k * scale.traffic,
        };
        times.push(model::launch_time(gpu, s, &c, real_grid_blocks, occupancy));
        if s == Scenario::Nominal {
            nominal = c;
        }
    }
    let dram_bytes = nominal.dram_bytes * real_grid_blocks as f64;
    let sectors_per_request = if replay.requests > 0.0 {
        replay.sectors / replay.requests
    } else {
        0.0
    };
    let mut it = times.into_iter();
    let (Some(a), Some(b), Some(c)) = (it.next(), it.next(), it.next()) else {
        return Err("no scenario".into());
    };
    Ok(Estimate {
        times: [a, b, c],
        dram_bytes,
        sectors_per_request,
        replay,
        block: nominal,
    })
}
