//! Warp-level instructions and memory requests rebuilt from ptxsim's per-thread trace.
//!
//! ptxsim reports each thread's instructions in its own scheduling order (a thread runs until
//! it waits at a barrier or a warp collective). The `n`-th time lane `l` issues pc `p` belongs to
//! the warp instruction `(warp, p, n)`: the SIMT reading of a warp that diverges and
//! reconverges, where the lanes that take a loop one more time issue its instructions alone.
//! Each warp instruction records how many lanes issued it, and each memory instruction the
//! 32-byte sectors and 128-byte lines its lanes touched (one request per 128 bytes of lanes:
//! 32 lanes of 4-byte accesses, 16 of 8-byte, 8 of 16-byte), or for shared memory the number of
//! bank-conflict passes.

use ptxsim::trace::{Access, AccessKind, Issue, LaunchInfo, MemSpace, Observer};

/// No memory request.
pub const NO_REQUEST: u32 = u32::MAX;

/// One warp instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarpInst {
    /// Its pc.
    pub pc: u32,
    /// Lanes that issued it.
    pub lanes: u32,
    /// Index of its memory request in [`BlockTrace::requests`], or [`NO_REQUEST`].
    pub request: u32,
}

/// The memory accesses of one warp instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Load, store or atomic.
    pub kind: AccessKind,
    /// Global or shared.
    pub space: MemSpace,
    /// Distinct lines touched with the mask of their sectors (global).
    pub lines: Vec<(u64, u8)>,
    /// Lanes that accessed memory.
    pub lanes: u32,
    /// Bytes each lane accessed (the largest).
    pub lane_bytes: u32,
    /// Bytes accessed by all its lanes together.
    pub bytes: u64,
    /// Shared memory: 4-byte words touched (used to count bank conflicts, then cleared).
    words: Vec<u32>,
    /// Shared memory: passes through the banks (1 without conflicts).
    pub shared_passes: u32,
}

impl Request {
    /// Sectors touched.
    pub fn sectors(&self) -> u32 {
        self.lines.iter().map(|(_, m)| m.count_ones()).sum()
    }

    /// Requests in the L1's sense: one per 128 bytes' worth of lanes.
    pub fn requests(&self) -> u32 {
        let per_pass = 128 / self.lane_bytes.clamp(4, 16);
        self.lanes.div_ceil(per_pass).max(1)
    }

    /// L1 tag-lookup passes ("wavefronts"): at least one per request, one per line touched.
    pub fn wavefronts(&self) -> u32 {
        match self.space {
            MemSpace::Shared => self.shared_passes.max(self.requests()),
            _ => (self.lines.len() as u32).max(self.requests()),
        }
    }
}

/// One warp's instructions in issue order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarpTrace {
    /// The warp instructions.
    pub insts: Vec<WarpInst>,
}

/// One block's warps and requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockTrace {
    /// Linear block index.
    pub block: u64,
    /// Its warps.
    pub warps: Vec<WarpTrace>,
    /// Memory requests of its warp instructions.
    pub requests: Vec<Request>,
    /// Thread-level instructions issued.
    pub thread_instructions: u64,
}

/// The observer: pass it to [`ptxsim::Module::launch_with`]; finished blocks accumulate in
/// [`Tracer::blocks`].
#[derive(Debug)]
pub struct Tracer {
    npcs: usize,
    threads: usize,
    gen: u32,
    // Per (thread, pc): (generation, times issued).
    counts: Vec<(u32, u32)>,
    // Per (warp, pc): indices of the warp instructions for its 0th, 1st, ... occurrence.
    occurrences: Vec<Vec<u32>>,
    touched: Vec<usize>,
    current: Vec<u32>,
    block: BlockTrace,
    /// Finished blocks.
    pub blocks: Vec<BlockTrace>,
}

impl Tracer {
    /// A tracer for a kernel of `npcs` instructions.
    pub fn new(npcs: usize) -> Tracer {
        Tracer {
            npcs: npcs.max(1),
            threads: 0,
            gen: 0,
            counts: Vec::new(),
            occurrences: Vec::new(),
            touched: Vec::new(),
            current: Vec::new(),
            block: BlockTrace::default(),
            blocks: Vec::new(),
        }
    }
}

impl Observer for Tracer {
    fn launch(&mut self, info: &LaunchInfo) {
        let threads = (info.block[0] * info.block[1] * info.block[2]) as usize;
        if threads != self.threads {
            self.threads = threads;
            self.counts = vec![(0, 0); threads * self.npcs];
            self.occurrences = vec![Vec::new(); threads.div_ceil(32) * self.npcs];
            self.current = vec![0; threads];
        }
    }

    fn block_begin(&mut self, block: u64) {
        self.gen = self.gen.wrapping_add(1);
        for &i in &self.touched {
            self.occurrences[i].clear();
        }
        self.touched.clear();
        self.block = BlockTrace {
            block,
            warps: vec![WarpTrace::default(); self.threads.div_ceil(32)],
            requests: Vec::new(),
            thread_instructions: 0,
        };
    }

    fn issue(&mut self, e: &Issue) {
        let t = e.thread as usize;
        let pc = e.pc as usize;
        let w = t / 32;
        let c = &mut self.counts[t * self.npcs + pc];
        if c.0 != self.gen {
            *c = (self.gen, 0);
        }
        let n = c.1 as usize;
        c.1 += 1;
        let key = w * self.npcs + pc;
        let occ = &mut self.occurrences[key];
        if occ.is_empty() {
            self.touched.push(key);
        }
        let warp = &mut self.block.warps[w];
        let idx = if n < occ.len() {
            let i = occ[n];
            warp.insts[i as usize].lanes += 1;
            i
        } else {
            let i = warp.insts.len() as u32;
            warp.insts.push(WarpInst {
                pc: e.pc,
                lanes: 1,
                request: NO_REQUEST,
            });
            occ.push(i);
            i
        };
        self.current[t] = idx;
        self.block.thread_instructions += 1;
    }

    fn access(&mut self, e: &Access) {
        if e.space == MemSpace::Param {
            return;
        }
        let t = e.thread as usize;
        let inst = &mut self.block.warps[t / 32].insts[self.current[t] as usize];
        if inst.request == NO_REQUEST {
            inst.request = self.block.requests.len() as u32;
            self.block.requests.push(Request {
                kind: e.kind,
                space: e.space,
                lines: Vec::new(),
                lanes: 0,
                lane_bytes: 0,
                bytes: 0,
                words: Vec::new(),
                shared_passes: 0,
            });
        }
        let r = &mut self.block.requests[inst.request as usize];
        r.lanes += 1;
        r.lane_bytes = r.lane_bytes.max(e.bytes);
        r.bytes += u64::from(e.bytes);
        let bytes = u64::from(e.bytes.max(1));
        match e.space {
            MemSpace::Shared => {
                let first = e.addr / 4;
                let last = (e.addr + bytes - 1) / 4;
                for w in first..=last {
                    r.words.push(w as u32);
                }
            }
            _ => {
                let first = e.addr / 32;
                let last = (e.addr + bytes - 1) / 32;
                for s in first..=last {
                    let line = s / 4;
                    let bit = 1u8 << (s % 4);
                    match r.lines.iter_mut().rev().find(|(l, _)| *l == line) {
                        Some((_, m)) => *m |= bit,
                        None => r.lines.push((line, bit)),
                    }
                }
            }
        }
    }

    fn block_end(&mut self, _block: u64) {
        for r in &mut self.block.requests {
            if r.space == MemSpace::Shared {
                // Passes = the most distinct words any one of the 32 banks must deliver.
                r.words.sort_unstable();
                r.words.dedup();
                let mut per_bank = [0u32; 32];
                for w in &r.words {
                    per_bank[(*w % 32) as usize] += 1;
                }
                r.shared_passes = per_bank.iter().copied().max().unwrap_or(1).max(1);
                r.words = Vec::new();
            }
        }
        self.blocks.push(std::mem::take(&mut self.block));
    }
}
