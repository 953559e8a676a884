//! The interpreter: runs the blocks of a launch, one after another, and the threads of a
//! block as the scheduler ([`crate::sched`]) chooses.
//!
//! This file holds the block-level machinery: thread states, barriers, warp collectives
//! (their synchronisation; the data they exchange is in `instrs/warp.rs`) and the checks of
//! undefined behaviour around them. The instruction semantics are in `instrs.rs` (the one
//! dispatch) and `instrs/` (one file per instruction family); the race detector's shadow
//! state is in [`crate::race`].

mod instrs;

use std::collections::HashMap;

use crate::ir::{Op, Slot};
use crate::parse::{
    Kernel, SHARED_WINDOW_SIZE, SLOT_CTAID, SLOT_LANEID, SLOT_NCTAID, SLOT_NTID, SLOT_NWARPID,
    SLOT_TID, SLOT_WARPID,
};
use crate::race::{Conflict, RaceState};
use crate::sched::{shuffle, Scheduler};
use crate::trace::{LaunchInfo, Observer};
use crate::{
    error::RaceAccess, BlockOrder, LaunchConfig, LaunchOptions, LaunchStats, Memory, Schedule,
    SimError,
};

pub(crate) use instrs::{load_le, store_le};

/// Why a thread is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Can run (from its pc).
    Ready,
    /// Waiting at `bar.sync` with this barrier id (pc is the barrier).
    Bar(u32),
    /// Waiting at a warp collective (`shfl.sync`, `vote.sync`, `bar.warp.sync`) at its pc.
    Warp,
    /// Finished.
    Exited,
}

/// How a thread's run ended without error.
enum Stop {
    Exit,
    Bar(u32),
    Warp,
    /// Switched out by a preemptive schedule.
    Yield,
}

/// How a thread's run ended with an error.
pub(crate) enum Trap {
    /// A fault of the thread at its pc (out of bounds, misaligned, instruction limit, ...).
    Fault(String),
    /// A data race found by the detector.
    Race(Box<Conflict>),
}

impl From<String> for Trap {
    fn from(msg: String) -> Trap {
        Trap::Fault(msg)
    }
}

/// The record of one guarded `.uni` branch in one warp: the direction taken by the k-th
/// execution (and the lane that took it first), and how often each lane has executed it.
#[derive(Default)]
struct UniHistory {
    pub(in crate::exec) taken: Vec<(bool, u8)>,
    pub(in crate::exec) count: [u32; 32],
}

/// One block being run, and the launch-wide state it carries along.
pub(crate) struct Block<'k, O: Observer> {
    k: &'k Kernel,
    /// Linear index of the block being run.
    lin: u64,
    ctaid: [u32; 3],
    grid: [u32; 3],
    dims: [u32; 3],
    obs: &'k mut O,
    /// Instructions the launch may still execute.
    budget: u64,
    ns: usize,
    nthreads: usize,
    regs: Vec<u64>,
    pcs: Vec<u32>,
    state: Vec<State>,
    /// Per warp: lanes waiting at a warp collective, and lanes that have exited.
    waiting: Vec<u32>,
    exited: Vec<u32>,
    shared: Vec<u8>,
    written: Vec<bool>,
    params: &'k [u8],
    count: u64,
    sched: Scheduler,
    race: Option<Box<RaceState>>,
    /// A read of uninitialised shared memory seen while the race detector runs: reported at
    /// the next barrier or the block's end unless a race (its usual cause) is found first.
    pending: Option<SimError>,
    /// Guarded `.uni` branches by (warp, pc).
    uni: HashMap<(u32, u32), UniHistory>,
}

fn launch_error(k: &Kernel, msg: String) -> SimError {
    SimError::Launch {
        kernel: k.name.clone(),
        msg,
    }
}

fn product(v: [u32; 3]) -> u64 {
    v.iter().fold(1u64, |a, &x| a.saturating_mul(x as u64))
}

/// Runs a whole launch.
pub(crate) fn launch<O: Observer>(
    k: &Kernel,
    cfg: &LaunchConfig,
    params: &[u8],
    mem: &mut Memory,
    options: &LaunchOptions,
    obs: &mut O,
) -> Result<LaunchStats, SimError> {
    if cfg.grid.contains(&0) || cfg.block.contains(&0) {
        return Err(launch_error(
            k,
            format!(
                "grid {:?} and block {:?} must be nonzero",
                cfg.grid, cfg.block
            ),
        ));
    }
    let nthreads = product(cfg.block);
    if nthreads > 1024 {
        return Err(launch_error(
            k,
            format!(
                "block {:?} has {nthreads} threads (at most 1024)",
                cfg.block
            ),
        ));
    }
    if let Some(r) = k.reqntid {
        if r != cfg.block {
            return Err(launch_error(
                k,
                format!(".reqntid {r:?} but block is {:?}", cfg.block),
            ));
        }
    }
    if let Some(m) = k.maxntid {
        let max = product(m);
        if nthreads > max {
            return Err(launch_error(
                k,
                format!(".maxntid {m:?} allows {max} threads but block has {nthreads}"),
            ));
        }
    }
    if let Schedule::Preemptive { quantum: 0, .. } = options.schedule {
        return Err(launch_error(
            k,
            "a preemptive schedule needs a quantum of at least 1 instruction".into(),
        ));
    }
    let shared_bytes = k.shared_static + cfg.dynamic_shared_bytes as usize;
    if shared_bytes as u64 >= SHARED_WINDOW_SIZE {
        return Err(launch_error(
            k,
            format!("{shared_bytes} bytes of shared memory"),
        ));
    }
    let nblocks = product(cfg.grid);
    if nblocks > 1 << 32 {
        return Err(launch_error(
            k,
            format!(
                "grid {:?} has {nblocks} blocks, more than the simulator runs (2^32)",
                cfg.grid
            ),
        ));
    }
    let order: Vec<u64> = match &options.blocks {
        Some(list) => {
            if let Some(bad) = list.iter().find(|&&b| b >= nblocks) {
                return Err(launch_error(
                    k,
                    format!(
                        "block {bad} was asked for, but the grid {:?} has {nblocks} blocks",
                        cfg.grid
                    ),
                ));
            }
            list.clone()
        }
        None => {
            let mut all: Vec<u64> = (0..nblocks).collect();
            match cfg.block_order {
                BlockOrder::Forward => {}
                BlockOrder::Reverse => all.reverse(),
                BlockOrder::Shuffled(seed) => shuffle(&mut all, seed),
            }
            all
        }
    };
    let ns = k.nslots;
    let nthreads = nthreads as usize;
    let mut template = vec![0u64; ns];
    for &(s, v) in &k.consts {
        template[s as usize] = v;
    }
    for i in 0..3 {
        template[(SLOT_NTID as usize) + i] = cfg.block[i] as u64;
        template[(SLOT_NCTAID as usize) + i] = cfg.grid[i] as u64;
    }
    template[SLOT_NWARPID as usize] = nthreads.div_ceil(32) as u64;
    if O::ENABLED {
        obs.launch(&LaunchInfo {
            kernel: k.name.clone(),
            grid: cfg.grid,
            block: cfg.block,
            shared_bytes: shared_bytes as u32,
            blocks_run: order.len() as u64,
        });
    }
    let nwarps = nthreads.div_ceil(32);
    let mut b = Block {
        k,
        lin: 0,
        ctaid: [0; 3],
        grid: cfg.grid,
        dims: cfg.block,
        obs,
        budget: options.max_instructions.unwrap_or(u64::MAX),
        ns,
        nthreads,
        regs: vec![0; ns * nthreads],
        pcs: vec![0; nthreads],
        state: vec![State::Ready; nthreads],
        waiting: vec![0; nwarps],
        exited: vec![0; nwarps],
        shared: vec![0; shared_bytes],
        written: vec![false; shared_bytes],
        params,
        count: 0,
        sched: Scheduler::new(options.schedule),
        race: options
            .race_check
            .then(|| Box::new(RaceState::new(nthreads, shared_bytes))),
        pending: None,
        uni: HashMap::new(),
    };
    for &lin in &order {
        let ctaid = thread_idx_u64(lin, cfg.grid);
        for i in 0..3 {
            template[(SLOT_CTAID as usize) + i] = ctaid[i] as u64;
        }
        for t in 0..nthreads {
            let r = &mut b.regs[t * ns..(t + 1) * ns];
            r.copy_from_slice(&template);
            let tid = thread_idx(t, cfg.block);
            for i in 0..3 {
                r[(SLOT_TID as usize) + i] = tid[i] as u64;
            }
            r[SLOT_LANEID as usize] = (t % 32) as u64;
            r[SLOT_WARPID as usize] = (t / 32) as u64;
        }
        b.pcs.fill(0);
        b.state.fill(State::Ready);
        b.waiting.fill(0);
        b.exited.fill(0);
        b.shared.fill(0);
        b.written.fill(false);
        b.uni.clear();
        b.lin = lin;
        b.ctaid = ctaid;
        b.sched.begin_block(lin, nthreads);
        if let Some(r) = b.race.as_deref_mut() {
            r.begin_block(lin);
        }
        if O::ENABLED {
            b.obs.block_begin(lin);
        }
        b.run_block(mem)?;
        if O::ENABLED {
            b.obs.block_end(lin);
        }
    }
    Ok(LaunchStats {
        instructions: b.count,
        blocks: order.len() as u64,
        threads: order.len() as u64 * nthreads as u64,
    })
}

/// Index (x, y, z) of linear index `t` in a box of `dims` (x fastest).
fn thread_idx(t: usize, dims: [u32; 3]) -> [u32; 3] {
    thread_idx_u64(t as u64, dims)
}

fn thread_idx_u64(t: u64, dims: [u32; 3]) -> [u32; 3] {
    let bx = dims[0].max(1) as u64;
    let by = dims[1].max(1) as u64;
    [
        (t % bx) as u32,
        ((t / bx) % by) as u32,
        (t / (bx * by)) as u32,
    ]
}

fn lanes_str(lanes: &[usize]) -> String {
    let v: Vec<String> = lanes.iter().map(|l| l.to_string()).collect();
    v.join(",")
}

fn mask_lanes(mask: u32) -> Vec<usize> {
    lanes_of(mask).collect()
}

/// The lanes set in `mask`, in ascending order (no allocation).
fn lanes_of(mask: u32) -> impl Iterator<Item = usize> {
    let mut m = mask;
    std::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let l = m.trailing_zeros() as usize;
        m &= m - 1;
        Some(l)
    })
}

impl<O: Observer> Block<'_, O> {
    /// A fault of thread `t` at instruction `pc`.
    fn fault_at(&self, t: usize, pc: usize, msg: String) -> SimError {
        let (line, inst) = self.src(pc);
        SimError::Fault {
            kernel: self.k.name.clone(),
            block: self.ctaid,
            thread: thread_idx(t, self.dims),
            line,
            inst,
            msg,
        }
    }

    /// A fault of thread `t` at its current pc.
    fn fault(&self, t: usize, msg: String) -> SimError {
        self.fault_at(t, self.pcs[t] as usize, msg)
    }

    fn src(&self, pc: usize) -> (u32, String) {
        self.k
            .src
            .get(pc)
            .map_or((0, String::new()), |s| (s.line, s.text.clone()))
    }

    fn deadlock(&self, msg: String) -> SimError {
        SimError::Deadlock {
            kernel: self.k.name.clone(),
            block: self.ctaid,
            msg,
        }
    }

    fn src_of(&self, pc: u32) -> String {
        self.k.src.get(pc as usize).map_or(String::from("?"), |s| {
            format!("line {} `{}`", s.line, s.text)
        })
    }

    /// The error for a trap of thread `t`: a race as found; a fault, unless an earlier read
    /// of uninitialised shared memory (the likelier cause) is pending.
    fn trap_error(&mut self, t: usize, trap: Trap) -> SimError {
        match trap {
            Trap::Race(c) => self.race_error(t, &c),
            Trap::Fault(msg) => match self.pending.take() {
                Some(e) => e,
                None => self.fault(t, msg),
            },
        }
    }

    fn race_error(&self, t: usize, c: &Conflict) -> SimError {
        let (line, inst) = self.src(self.pcs[t] as usize);
        let (oline, oinst) = self.src(c.other_pc as usize);
        SimError::Race {
            kernel: self.k.name.clone(),
            space: c.space,
            address: c.addr,
            hazard: c.hazard,
            access: Box::new(RaceAccess {
                block: self.ctaid,
                thread: thread_idx(t, self.dims),
                line,
                inst,
                kind: c.kind,
            }),
            earlier: Box::new(RaceAccess {
                block: thread_idx_u64(c.other_block, self.grid),
                thread: thread_idx(c.other_thread as usize, self.dims),
                line: oline,
                inst: oinst,
                kind: c.other_kind,
            }),
        }
    }

    #[inline(always)]
    fn reg(&self, t: usize, s: Slot) -> u64 {
        self.regs[t * self.ns + s as usize]
    }

    /// Lanes of warp `w` that exist (a partial last warp has fewer than 32).
    fn lanes_present(&self, w: usize) -> u32 {
        let n = (self.nthreads - w * 32).min(32);
        if n == 32 {
            u32::MAX
        } else {
            (1u32 << n) - 1
        }
    }

    fn run_block(&mut self, mem: &mut Memory) -> Result<(), SimError> {
        loop {
            let state = &self.state;
            let Some((t, quantum)) = self.sched.pick(|t| state[t] == State::Ready) else {
                if self.release_barrier()? {
                    continue;
                }
                return match self.pending.take() {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            };
            match self.run_thread(t, mem, quantum) {
                Ok(Stop::Yield) => self.sched.yielded(),
                Ok(Stop::Exit) => {
                    self.sched.stopped();
                    self.state[t] = State::Exited;
                    self.exited[t / 32] |= 1 << (t % 32);
                    self.check_exit_in_collective(t)?;
                }
                Ok(Stop::Bar(id)) => {
                    self.sched.stopped();
                    self.state[t] = State::Bar(id);
                }
                Ok(Stop::Warp) => {
                    self.sched.stopped();
                    self.state[t] = State::Warp;
                    self.waiting[t / 32] |= 1 << (t % 32);
                    self.arrive_at_collective(t)?;
                }
                Err(trap) => return Err(self.trap_error(t, trap)),
            }
        }
    }

    /// The member-mask operand of the warp collective at `pc`.
    fn collective_mask_slot(&self, pc: u32) -> Option<Slot> {
        match self.k.code.get(pc as usize).map(|i| &i.op) {
            Some(Op::Shfl { mask, .. } | Op::Vote { mask, .. } | Op::WarpSync { mask }) => {
                Some(*mask)
            }
            _ => None,
        }
    }

    /// Whether the collectives at `a` and `b` can complete together: the same operation with
    /// the same qualifiers (PTX requires the same qualifiers and member mask, not the same
    /// instruction).
    fn same_collective(&self, a: u32, b: u32) -> bool {
        if a == b {
            return true;
        }
        let op = |pc: u32| self.k.code.get(pc as usize).map(|i| &i.op);
        match (op(a), op(b)) {
            (Some(Op::Shfl { mode: x, .. }), Some(Op::Shfl { mode: y, .. })) => x == y,
            (Some(Op::Vote { mode: x, .. }), Some(Op::Vote { mode: y, .. })) => x == y,
            (Some(Op::WarpSync { .. }), Some(Op::WarpSync { .. })) => true,
            _ => false,
        }
    }

    /// Thread `t` arrived at a warp collective: checks its member mask, and completes the
    /// collective if every member lane has arrived.
    fn arrive_at_collective(&mut self, t: usize) -> Result<(), SimError> {
        let w = t / 32;
        let lo = w * 32;
        let lane = t % 32;
        let pc = self.pcs[t];
        let Some(mask_slot) = self.collective_mask_slot(pc) else {
            return Err(self.fault(t, "internal: not a warp collective".into()));
        };
        let mask = self.reg(t, mask_slot) as u32;
        if mask & (1 << lane) == 0 {
            return Err(self.fault(
                t,
                format!("lane {lane} executes a warp collective with member mask 0x{mask:08x} that does not include it"),
            ));
        }
        let absent = mask & !self.lanes_present(w);
        if absent != 0 {
            return Err(self.fault(
                t,
                format!(
                    "member mask 0x{mask:08x} names lanes {} of warp {w}, which do not exist (the block has {} threads)",
                    lanes_str(&mask_lanes(absent)),
                    self.nthreads
                ),
            ));
        }
        let gone = mask & self.exited[w];
        if gone != 0 {
            return Err(self.fault(
                t,
                format!(
                    "member mask 0x{mask:08x} names lanes {} of warp {w}, which have exited",
                    lanes_str(&mask_lanes(gone))
                ),
            ));
        }
        if mask & !self.waiting[w] != 0 {
            return Ok(());
        }
        // Every member lane waits at a collective: the same one?
        for j in lanes_of(mask) {
            let u = lo + j;
            let upc = self.pcs[u];
            if !self.same_collective(pc, upc) {
                return Err(self.fault(
                    u,
                    format!(
                        "lanes of warp {w} wait at different warp collectives: lane {lane} at {}, lane {j} at {}",
                        self.src_of(pc),
                        self.src_of(upc)
                    ),
                ));
            }
            let umask = self
                .collective_mask_slot(upc)
                .map_or(0, |s| self.reg(u, s) as u32);
            if umask != mask {
                return Err(self.fault(
                    u,
                    format!(
                        "lanes of warp {w} use different member masks (0x{mask:08x} vs 0x{umask:08x})"
                    ),
                ));
            }
        }
        if let Err((u, msg)) = self.exchange(lo, mask) {
            return Err(self.fault(u, msg));
        }
        if let Some(r) = self.race.as_deref_mut() {
            r.warp_sync(lo, mask);
        }
        self.waiting[w] &= !mask;
        for j in lanes_of(mask) {
            let u = lo + j;
            self.state[u] = State::Ready;
            self.pcs[u] += 1;
            self.sched.wake(u);
        }
        Ok(())
    }

    /// Thread `t` exited: a lane of its warp must not be waiting for it at a collective.
    fn check_exit_in_collective(&self, t: usize) -> Result<(), SimError> {
        let w = t / 32;
        let lane = t % 32;
        for j in lanes_of(self.waiting[w]) {
            let u = w * 32 + j;
            let mask = self
                .collective_mask_slot(self.pcs[u])
                .map_or(0, |s| self.reg(u, s) as u32);
            if mask & (1 << lane) != 0 {
                return Err(self.fault(
                    u,
                    format!("member mask 0x{mask:08x} names lane {lane} of warp {w}, which has exited without reaching the collective"),
                ));
            }
        }
        Ok(())
    }

    /// No thread can run: releases a barrier that every thread still running has reached
    /// (threads that exited do not hold a barrier up, as on sm_70 and later). Returns false
    /// when every thread has exited, an error when threads wait and can never be released.
    fn release_barrier(&mut self) -> Result<bool, SimError> {
        let mut at_bar = Vec::new();
        let mut exited = Vec::new();
        let mut at_warp = Vec::new();
        for t in 0..self.nthreads {
            match self.state[t] {
                State::Bar(_) => at_bar.push(t),
                State::Exited => exited.push(t),
                State::Warp => at_warp.push(t),
                State::Ready => {}
            }
        }
        if at_bar.is_empty() && at_warp.is_empty() {
            return Ok(false);
        }
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        if !at_warp.is_empty() {
            let mut msg = String::from("warp collective(s) can never complete: ");
            msg += &format!(
                "threads {} wait at {}",
                lanes_str(&at_warp),
                self.src_of(self.pcs[at_warp[0]])
            );
            if !at_bar.is_empty() {
                msg += &format!(
                    "; threads {} wait at {}",
                    lanes_str(&at_bar),
                    self.src_of(self.pcs[at_bar[0]])
                );
            }
            if !exited.is_empty() {
                msg += &format!("; threads {} have exited", lanes_str(&exited));
            }
            return Err(self.deadlock(msg));
        }
        let first_pc = self.pcs[at_bar[0]];
        let first_id = self.state[at_bar[0]];
        let aligned = |pc: u32| {
            matches!(
                self.k.code.get(pc as usize).map(|i| &i.op),
                Some(Op::Bar { aligned: true, .. })
            )
        };
        let mut others = Vec::new();
        for &t in &at_bar {
            let pc = self.pcs[t];
            if self.state[t] != first_id || (pc != first_pc && (aligned(pc) || aligned(first_pc))) {
                others.push(t);
            }
        }
        if !others.is_empty() {
            let same: Vec<usize> = at_bar
                .iter()
                .copied()
                .filter(|t| !others.contains(t))
                .collect();
            return Err(self.deadlock(format!(
                "divergent barrier: threads {} wait at {} while threads {} wait at {}",
                lanes_str(&same),
                self.src_of(first_pc),
                lanes_str(&others),
                self.src_of(self.pcs[others[0]])
            )));
        }
        if O::ENABLED {
            self.obs.barrier(self.lin, first_pc);
        }
        if let Some(r) = self.race.as_deref_mut() {
            r.barrier();
        }
        for &t in &at_bar {
            self.state[t] = State::Ready;
            self.pcs[t] += 1;
            self.sched.wake(t);
        }
        Ok(true)
    }
}
