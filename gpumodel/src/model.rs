//! From traced blocks to time: the memory replay through L1 and L2, the per-warp dependency
//! timeline, occupancy and waves, and the bounds.
//!
//! For one launch:
//!
//! 1. **Issue.** Each warp instruction costs its SASS instructions per pipe
//!    ([`crate::cost`]). Per SM and block, the issue time is the largest of: SASS instructions
//!    over the 4 schedulers (one per cycle each), each pipe's warp instructions times 32 over its
//!    lanes per cycle, and L1 wavefronts (one per cycle).
//! 2. **Memory.** The sampled blocks' requests are replayed in a round-robin interleaving of all
//!    their warps, one warp instruction each per step (the blocks run concurrently, as the
//!    resident blocks of a wave do), through an L1 per block (the SM's L1 shared by the blocks
//!    resident with it: capacity / occupancy) and one L2 (the sampled blocks' share of the
//!    chip's L2: capacity x sampled / resident blocks). Loads allocate in L1 and L2 and fetch
//!    missing sectors from DRAM; stores write through L1 and allocate dirty sectors in L2;
//!    atomics read-modify-write in L2 (a missing sector is read from DRAM first). Dirty sectors
//!    are written to DRAM on eviction and at the end. The level each load hit is kept.
//! 3. **Latency.** Per warp, a timeline: an instruction issues when the registers it reads are
//!    ready and the warp's previous instruction has issued; its result is ready after the
//!    pipe's latency (a chain through its SASS instructions) or, for a load, the latency of the
//!    level it hit. `bar.sync` waits for the block's slowest warp. The block's critical path is
//!    its slowest warp: with unlimited bandwidth a wave cannot be faster (the loads a warp has
//!    in flight at once are its independent loads: Little's law per warp).
//! 4. **Waves.** Occupancy from registers (ptxas), shared memory and block size; the grid runs in
//!    waves of `SMs x occupancy` blocks. A wave takes the largest of the issue time of its
//!    blocks on one SM, the critical path, its DRAM bytes over the sustained DRAM bandwidth and
//!    its L2 traffic over the L2 bandwidth.
//! 5. **Launch.** Time = launch overhead + the waves; a memset is the overhead plus its bytes
//!    at the sustained DRAM bandwidth.
//!
//! Per-block figures come from the sampled blocks (their average) times `scale`: the ratio of a
//! real block's work to a simulated one's (see [`crate::sim`]).

use ptxsim::trace::{AccessKind, MemSpace};

use crate::cache::{Cache, SECTOR};
use crate::cost::{Instr, Kind};
use crate::gpu::{Gpu, Scenario, NPIPES};
use crate::trace::{BlockTrace, NO_REQUEST};

/// Where a load was served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// L1 (or shared memory).
    L1,
    /// L2.
    L2,
    /// DRAM.
    Dram,
}

/// What the memory replay found, for the sampled blocks together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// L1 wavefronts (global and shared).
    pub l1_wavefronts: f64,
    /// Sectors requested from L2 (L1 load misses, stores, atomics).
    pub l2_sectors: f64,
    /// Bytes read from DRAM.
    pub dram_read: f64,
    /// Bytes written to DRAM.
    pub dram_write: f64,
    /// Global memory requests (in the L1's 128-byte sense) and the sectors they touched.
    pub requests: f64,
    /// Sectors of those requests.
    pub sectors: f64,
    /// Per block, per request: the level it was served from.
    levels: Vec<Vec<Level>>,
}

/// Replays the requests of `blocks` (run concurrently) through L1s of `l1_bytes` each and an L2
/// of `l2_bytes`.
pub fn replay(blocks: &[BlockTrace], l1_bytes: u64, l2_bytes: u64) -> Replay {
    let mut out = Replay::default();
    let mut l1s: Vec<Cache> = blocks.iter().map(|_| Cache::new(l1_bytes)).collect();
    let mut l2 = Cache::new(l2_bytes);
    out.levels = blocks
        .iter()
        .map(|b| vec![Level::L1; b.requests.len()])
        .collect();
    let longest = blocks
        .iter()
        .flat_map(|b| b.warps.iter().map(|w| w.insts.len()))
        .max()
        .unwrap_or(0);
    let sector = SECTOR as f64;
    for step in 0..longest {
        for (bi, b) in blocks.iter().enumerate() {
            for w in &b.warps {
                let Some(inst) = w.insts.get(step) else {
                    continue;
                };
                if inst.request == NO_REQUEST {
                    continue;
                }
                let r = &b.requests[inst.request as usize];
                out.l1_wavefronts += f64::from(r.wavefronts());
                if r.space != MemSpace::Global {
                    continue;
                }
                out.requests += f64::from(r.requests());
                out.sectors += f64::from(r.sectors());
                let mut level = Level::L1;
                for &(line, mask) in &r.lines {
                    match r.kind {
                        AccessKind::Load => {
                            let o1 = l1s[bi].access(line, mask, false, true);
                            if o1.miss_mask != 0 {
                                level = level.max(Level::L2);
                                out.l2_sectors += f64::from(o1.miss_sectors);
                                let o2 = l2.access(line, o1.miss_mask, false, true);
                                out.dram_read += f64::from(o2.miss_sectors) * sector;
                                out.dram_write += f64::from(o2.writeback_sectors) * sector;
                                if o2.miss_sectors > 0 {
                                    level = Level::Dram;
                                }
                            }
                        }
                        AccessKind::Store | AccessKind::Atomic => {
                            // Write-through L1: a present line is updated, nothing allocated.
                            l1s[bi].access(line, mask, false, false);
                            out.l2_sectors += f64::from(mask.count_ones());
                            let o2 = l2.access(line, mask, true, true);
                            out.dram_write += f64::from(o2.writeback_sectors) * sector;
                            level = level.max(Level::L2);
                            if r.kind == AccessKind::Atomic && o2.miss_sectors > 0 {
                                out.dram_read += f64::from(o2.miss_sectors) * sector;
                                level = Level::Dram;
                            }
                        }
                    }
                }
                out.levels[bi][inst.request as usize] = level;
            }
        }
    }
    out.dram_write += l2.flush() as f64 * sector;
    out
}

/// Issue and latency figures of the sampled blocks (totals over them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Issue {
    /// Warp instructions per pipe (SASS instructions, counted once per warp).
    pub pipe: [f64; NPIPES],
    /// PTX warp instructions.
    pub warp_instructions: f64,
    /// Sum over blocks of the block's critical path, cycles.
    pub critical_path: f64,
}

/// Counts issue per pipe and runs the dependency timeline of every warp.
pub fn issue(
    blocks: &[BlockTrace],
    instrs: &[Instr],
    replay: &Replay,
    gpu: &Gpu,
    s: Scenario,
) -> Issue {
    let mut out = Issue::default();
    let nregs = instrs
        .iter()
        .flat_map(|i| i.dsts.iter().chain(&i.srcs))
        .map(|&r| r as usize + 1)
        .max()
        .unwrap_or(0);
    let compute_latency: Vec<f64> = instrs
        .iter()
        .map(|i| {
            i.cost
                .iter()
                .zip(&gpu.pipe_latency)
                .map(|(c, l)| f64::from(*c) * l)
                .sum::<f64>()
        })
        .collect();
    let dram = gpu.dram_latency.at(s);
    let l2 = gpu.l2_latency.at(s);
    for (bi, b) in blocks.iter().enumerate() {
        for w in &b.warps {
            out.warp_instructions += w.insts.len() as f64;
            for inst in &w.insts {
                for (p, c) in instrs[inst.pc as usize].cost.iter().enumerate() {
                    out.pipe[p] += f64::from(*c);
                }
            }
        }
        // Timelines, barrier by barrier.
        let nw = b.warps.len();
        let mut t = vec![0.0f64; nw];
        let mut cursor = vec![0usize; nw];
        let mut ready = vec![vec![0.0f64; nregs]; nw];
        loop {
            let mut at_barrier = vec![false; nw];
            for wi in 0..nw {
                let insts = &b.warps[wi].insts;
                while cursor[wi] < insts.len() {
                    let inst = insts[cursor[wi]];
                    cursor[wi] += 1;
                    let d = &instrs[inst.pc as usize];
                    let mut start = t[wi];
                    for &r in &d.srcs {
                        start = start.max(ready[wi][r as usize]);
                    }
                    let latency = match d.kind {
                        Kind::Load if d.param => 0.0,
                        Kind::Load | Kind::Atomic if inst.request != NO_REQUEST => {
                            let req = &b.requests[inst.request as usize];
                            if req.space == MemSpace::Shared {
                                gpu.shared_latency
                            } else {
                                match replay.levels[bi][inst.request as usize] {
                                    Level::L1 => gpu.l1_latency,
                                    Level::L2 => l2,
                                    Level::Dram => dram,
                                }
                            }
                        }
                        Kind::Shuffle => gpu.shared_latency,
                        _ => compute_latency[inst.pc as usize],
                    };
                    t[wi] = start + f64::from(d.sass()).max(1.0);
                    for &r in &d.dsts {
                        ready[wi][r as usize] = start + latency;
                    }
                    if d.kind == Kind::Barrier {
                        at_barrier[wi] = true;
                        break;
                    }
                }
            }
            if !at_barrier.iter().any(|&a| a) {
                break;
            }
            let release = (0..nw)
                .filter(|&w| at_barrier[w])
                .map(|w| t[w])
                .fold(0.0, f64::max);
            for w in 0..nw {
                if at_barrier[w] {
                    t[w] = release;
                }
            }
        }
        out.critical_path += t.iter().copied().fold(0.0, f64::max);
    }
    out
}

/// Per-block costs of a launch on the real problem.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockCosts {
    /// Issue cycles of one block on one SM (largest of schedulers, pipes, L1).
    pub issue_cycles: f64,
    /// Critical path of one block, cycles.
    pub critical_path: f64,
    /// DRAM bytes (read + write) of one block.
    pub dram_bytes: f64,
    /// L2 bytes of one block.
    pub l2_bytes: f64,
}

/// Which bound set a launch's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Instruction issue (a pipe, the schedulers or L1 wavefronts).
    Issue,
    /// Dependent latency: too little in flight.
    Latency,
    /// DRAM bandwidth.
    Dram,
    /// L2 bandwidth.
    L2,
    /// Launch overhead (the kernel itself is shorter).
    Launch,
}

impl Bound {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Issue => "issue",
            Bound::Latency => "latency",
            Bound::Dram => "dram",
            Bound::L2 => "l2",
            Bound::Launch => "launch",
        }
    }
}

/// The modelled time of one launch.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchTime {
    /// Microseconds, launch overhead included.
    pub us: f64,
    /// The bound that set the (largest) wave.
    pub bound: Bound,
    /// Blocks resident per SM.
    pub occupancy: u32,
    /// Waves.
    pub waves: u64,
}

/// Time of a launch of `grid_blocks` blocks with per-block costs `c` on `gpu`.
pub fn launch_time(
    gpu: &Gpu,
    s: Scenario,
    c: &BlockCosts,
    grid_blocks: u64,
    occupancy: u32,
) -> LaunchTime {
    let occ = u64::from(occupancy.max(1));
    let sms = u64::from(gpu.multiprocessors);
    let per_wave = sms * occ;
    let dram_per_cycle = gpu.dram_bytes_per_s * gpu.dram_efficiency.at(s) / (gpu.clock_ghz * 1e9);
    let l2_per_cycle = gpu.l2_bytes_per_clock.at(s);
    // A wave's issue time is that of its busiest SM (`resident_per_sm` blocks); its DRAM and L2
    // bytes are those of the blocks it really runs (`blocks`), which share the device-wide
    // bandwidths: a last wave of 128 blocks on 108 SMs moves 128 blocks' bytes, not 216.
    let wave = |resident_per_sm: u64, blocks: u64| -> (f64, Bound) {
        let blocks = blocks as f64;
        let terms = [
            (resident_per_sm as f64 * c.issue_cycles, Bound::Issue),
            (c.critical_path, Bound::Latency),
            (blocks * c.dram_bytes / dram_per_cycle, Bound::Dram),
            (blocks * c.l2_bytes / l2_per_cycle, Bound::L2),
        ];
        terms
            .into_iter()
            .fold((0.0, Bound::Launch), |a, b| if b.0 > a.0 { b } else { a })
    };
    let full = grid_blocks / per_wave;
    let rest = grid_blocks % per_wave;
    let mut cycles = 0.0;
    let mut bound = Bound::Launch;
    let mut worst = 0.0;
    if full > 0 {
        let (t, b) = wave(occ, per_wave);
        cycles += full as f64 * t;
        worst = t;
        bound = b;
    }
    if rest > 0 {
        let (t, b) = wave(rest.div_ceil(sms), rest);
        cycles += t;
        if t > worst {
            bound = b;
        }
    }
    let kernel_us = cycles / (gpu.clock_ghz * 1e3);
    let overhead = gpu.launch_overhead_us.at(s);
    LaunchTime {
        us: overhead + kernel_us,
        bound: if kernel_us < overhead {
            Bound::Launch
        } else {
            bound
        },
        occupancy,
        waves: full + u64::from(rest > 0),
    }
}

/// Time of a memset of `bytes` bytes (launch overhead plus the bytes at the sustained DRAM
/// bandwidth).
pub fn memset_time(gpu: &Gpu, s: Scenario, bytes: f64) -> f64 {
    gpu.launch_overhead_us.at(s) + bytes / (gpu.dram_bytes_per_s * gpu.dram_efficiency.at(s)) * 1e6
}
