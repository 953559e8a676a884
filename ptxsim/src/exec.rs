//! The interpreter: runs the blocks of a launch, thread by thread.

use crate::fp::{self, Fmt, Rnd};
use crate::ir::*;
use crate::parse::{
    Kernel, SHARED_WINDOW, SHARED_WINDOW_SIZE, SLOT_CTAID, SLOT_LANEID, SLOT_NCTAID, SLOT_NTID,
    SLOT_NWARPID, SLOT_TID, SLOT_WARPID,
};
use crate::trace::{Access, AccessKind, Issue, LaunchInfo, MemSpace, Observer};
use crate::{BlockOrder, LaunchConfig, LaunchOptions, LaunchStats, Memory, SimError};

/// Reads a little-endian value from 1..=8 bytes.
#[inline(always)]
pub(crate) fn load_le(b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate() {
        v |= (x as u64) << (8 * i);
    }
    v
}

/// Writes the low `b.len()` bytes of `v`, little-endian.
#[inline(always)]
pub(crate) fn store_le(b: &mut [u8], v: u64) {
    for (i, x) in b.iter_mut().enumerate() {
        *x = (v >> (8 * i)) as u8;
    }
}

/// Why a thread stopped running.
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

const F32_NAN: u32 = 0x7fff_ffff;
const F64_NAN: u64 = 0x7fff_ffff_ffff_ffff;

#[inline(always)]
fn ftz32(x: u32) -> u32 {
    if x & 0x7f80_0000 == 0 {
        x & 0x8000_0000
    } else {
        x
    }
}

/// PTX `min`/`max` on floats: a NaN operand is ignored; -0 < +0.
#[inline]
fn fminmax64(a: f64, b: f64, max: bool) -> Option<f64> {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => None,
        (true, false) => Some(b),
        (false, true) => Some(a),
        _ => {
            let a_lt_b = a < b || (a == b && a.is_sign_negative() && !b.is_sign_negative());
            Some(if a_lt_b != max { a } else { b })
        }
    }
}

#[inline]
fn f32_op(op: FOp, ftz: bool, sat: bool, a: u32, b: u32, c: u32) -> u32 {
    let (a, b, c) = if ftz {
        (ftz32(a), ftz32(b), ftz32(c))
    } else {
        (a, b, c)
    };
    let fa = f32::from_bits(a);
    let fb = f32::from_bits(b);
    let r = match op {
        FOp::Add => fa + fb,
        FOp::Sub => fa - fb,
        FOp::Mul => fa * fb,
        FOp::Div => fa / fb,
        FOp::Fma => fa.mul_add(fb, f32::from_bits(c)),
        FOp::Sqrt => fa.sqrt(),
        FOp::Rcp => 1.0 / fa,
        FOp::Min | FOp::Max => match fminmax64(fa as f64, fb as f64, op == FOp::Max) {
            Some(v) => v as f32,
            None => f32::from_bits(F32_NAN),
        },
        FOp::Abs => f32::from_bits(a & 0x7fff_ffff),
        FOp::Neg => f32::from_bits(a ^ 0x8000_0000),
    };
    let mut bits = if r.is_nan() && !matches!(op, FOp::Abs | FOp::Neg) {
        F32_NAN
    } else {
        r.to_bits()
    };
    if ftz {
        bits = ftz32(bits);
    }
    if sat {
        let v = f32::from_bits(bits);
        bits = if v.is_nan() || v <= 0.0 {
            0
        } else if v >= 1.0 {
            1f32.to_bits()
        } else {
            bits
        };
    }
    bits
}

#[inline]
fn f64_op(op: FOp, a: u64, b: u64, c: u64) -> u64 {
    let fa = f64::from_bits(a);
    let fb = f64::from_bits(b);
    let r = match op {
        FOp::Add => fa + fb,
        FOp::Sub => fa - fb,
        FOp::Mul => fa * fb,
        FOp::Div => fa / fb,
        FOp::Fma => fa.mul_add(fb, f64::from_bits(c)),
        FOp::Sqrt => fa.sqrt(),
        FOp::Rcp => 1.0 / fa,
        FOp::Min | FOp::Max => match fminmax64(fa, fb, op == FOp::Max) {
            Some(v) => v,
            None => f64::from_bits(F64_NAN),
        },
        FOp::Abs => return a & !(1 << 63),
        FOp::Neg => return a ^ (1 << 63),
    };
    if r.is_nan() {
        F64_NAN
    } else {
        r.to_bits()
    }
}

/// One lane of a half-precision operation.
fn half_op(op: FOp, fmt: Fmt, ftz: bool, sat: bool, a: u64, b: u64, c: u64) -> u64 {
    let (a, b, c) = if ftz {
        (fmt.ftz(a), fmt.ftz(b), fmt.ftz(c))
    } else {
        (a, b, c)
    };
    let fa = fp::to_f64(a, fmt);
    let fb = fp::to_f64(b, fmt);
    let mut r = match op {
        FOp::Abs => return a & 0x7fff,
        FOp::Neg => return a ^ 0x8000,
        FOp::Add => fp::from_f64(fa + fb, fmt, Rnd::N),
        FOp::Sub => fp::from_f64(fa - fb, fmt, Rnd::N),
        FOp::Mul => fp::from_f64(fa * fb, fmt, Rnd::N),
        FOp::Fma => fp::fma_narrow(fa, fb, fp::to_f64(c, fmt), fmt),
        FOp::Min | FOp::Max => match fminmax64(fa, fb, op == FOp::Max) {
            Some(_) if fa.is_nan() => b,
            Some(_) if fb.is_nan() => a,
            Some(v) => {
                if v.to_bits() == fa.to_bits() {
                    a
                } else {
                    b
                }
            }
            None => fmt.nan(),
        },
        // rejected at decode time
        FOp::Div | FOp::Sqrt | FOp::Rcp => fmt.nan(),
    };
    if fmt.is_nan(r) {
        r = fmt.nan();
    }
    if ftz {
        r = fmt.ftz(r);
    }
    if sat {
        let v = fp::to_f64(r, fmt);
        if v.is_nan() || v <= 0.0 {
            r = 0;
        } else if v >= 1.0 {
            r = fp::from_f64(1.0, fmt, Rnd::N);
        }
    }
    r
}

fn cmp_f(cmp: Cmp, a: f64, b: f64) -> bool {
    let un = a.is_nan() || b.is_nan();
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => !un && a != b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        Cmp::Equ => un || a == b,
        Cmp::Neu => un || a != b,
        Cmp::Ltu => un || a < b,
        Cmp::Leu => un || a <= b,
        Cmp::Gtu => un || a > b,
        Cmp::Geu => un || a >= b,
        Cmp::Num => !un,
        Cmp::Nan => un,
    }
}

#[inline(always)]
fn cmp_i<T: PartialOrd>(cmp: Cmp, a: T, b: T) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        _ => false,
    }
}

fn float_of(bits: u64, ty: Ty) -> f64 {
    match ty.fmt() {
        Some(f) => fp::to_f64(bits, f),
        None => 0.0,
    }
}

fn cvt(dst: Ty, src: Ty, rnd: Option<Rnd>, int_rnd: bool, sat: bool, ftz: bool, a: u64) -> u64 {
    let mode = rnd.unwrap_or(Rnd::N);
    let a = if ftz && src == Ty::F32 {
        ftz32(a as u32) as u64
    } else {
        a
    };
    let out = match (dst.fmt(), src.fmt()) {
        (None, None) => {
            let v = src.int().norm(a);
            if sat {
                let d = dst.int();
                let (lo, hi): (i128, i128) = if d.signed {
                    (-(1i128 << (d.bits - 1)), (1i128 << (d.bits - 1)) - 1)
                } else {
                    (0, (1i128 << d.bits) - 1)
                };
                let x = if src.int().signed {
                    v as i64 as i128
                } else {
                    v as i128
                };
                x.clamp(lo, hi) as u64
            } else {
                v
            }
        }
        (Some(df), None) => {
            let v = src.int().norm(a);
            let (neg, mag) = if src.int().signed && (v as i64) < 0 {
                (true, (v as i64).unsigned_abs())
            } else {
                (false, v)
            };
            fp::from_int(neg, mag, mode, df)
        }
        (None, Some(sf)) => {
            let d = dst.int();
            fp::to_int(fp::to_f64(a, sf), mode, d.bits as u32, d.signed)
        }
        (Some(df), Some(sf)) => {
            if int_rnd {
                let x = fp::to_f64(a, sf);
                if x.is_nan() {
                    df.nan()
                } else {
                    fp::from_f64(fp::round_integral(x, mode), df, Rnd::N)
                }
            } else {
                fp::convert(a, sf, df, mode)
            }
        }
    };
    let mut out = dst.int().norm(out);
    if let Some(df) = dst.fmt() {
        if ftz && dst == Ty::F32 {
            out = ftz32(out as u32) as u64;
        }
        if sat {
            let v = fp::to_f64(out, df);
            if v.is_nan() || v <= 0.0 {
                out = 0;
            } else if v >= 1.0 {
                out = fp::from_f64(1.0, df, Rnd::N);
            }
        }
    }
    out
}

fn prmt(a: u64, b: u64, c: u64) -> u64 {
    let bytes = (b << 32) | (a & 0xffff_ffff);
    let mut out = 0u64;
    for i in 0..4 {
        let sel = (c >> (4 * i)) & 0xf;
        let byte = (bytes >> (8 * (sel & 7))) & 0xff;
        let byte = if sel & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        out |= byte << (8 * i);
    }
    out
}

/// Result of running one thread until it blocks.
enum Stop {
    Exit,
    Bar(u32),
    Warp,
}

struct Block<'k, O: Observer> {
    k: &'k Kernel,
    /// Linear index of the block being run.
    lin: u64,
    obs: &'k mut O,
    /// Instructions the launch may still execute.
    budget: u64,
    ns: usize,
    nthreads: usize,
    regs: Vec<u64>,
    pcs: Vec<u32>,
    state: Vec<State>,
    shared: Vec<u8>,
    written: Vec<bool>,
    params: &'k [u8],
    count: u64,
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
    let lerr = |msg: String| SimError::Launch {
        kernel: k.name.clone(),
        msg,
    };
    if cfg.grid.contains(&0) || cfg.block.contains(&0) {
        return Err(lerr(format!(
            "grid {:?} and block {:?} must be nonzero",
            cfg.grid, cfg.block
        )));
    }
    let nthreads = cfg
        .block
        .iter()
        .fold(1u64, |a, &x| a.saturating_mul(x as u64));
    if nthreads > 1024 {
        return Err(lerr(format!(
            "block {:?} has {nthreads} threads (at most 1024)",
            cfg.block
        )));
    }
    if let Some(r) = k.reqntid {
        if r != cfg.block {
            return Err(lerr(format!(".reqntid {r:?} but block is {:?}", cfg.block)));
        }
    }
    if let Some(m) = k.maxntid {
        let max = m.iter().fold(1u64, |a, &x| a.saturating_mul(x as u64));
        if nthreads > max {
            return Err(lerr(format!(
                ".maxntid {m:?} allows {max} threads but block has {nthreads}"
            )));
        }
    }
    let shared_bytes = k.shared_static + cfg.dynamic_shared_bytes as usize;
    if shared_bytes as u64 >= SHARED_WINDOW_SIZE {
        return Err(lerr(format!("{shared_bytes} bytes of shared memory")));
    }
    let nblocks = cfg
        .grid
        .iter()
        .fold(1u64, |a, &x| a.saturating_mul(x as u64));
    if nblocks > 1 << 32 {
        return Err(lerr(format!(
            "grid {:?} has {nblocks} blocks, more than the simulator runs (2^32)",
            cfg.grid
        )));
    }
    let mut order: Vec<u64> = match &options.blocks {
        Some(list) => {
            if let Some(bad) = list.iter().find(|&&b| b >= nblocks) {
                return Err(lerr(format!(
                    "block {bad} was asked for, but the grid {:?} has {nblocks} blocks",
                    cfg.grid
                )));
            }
            list.clone()
        }
        None => (0..nblocks).collect(),
    };
    match (&options.blocks, cfg.block_order) {
        (Some(_), _) => {}
        (None, BlockOrder::Forward) => {}
        (None, BlockOrder::Reverse) => order.reverse(),
        (None, BlockOrder::Shuffled(seed)) => {
            let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
            let mut next = || {
                // splitmix64
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            for i in (1..order.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
    }
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
    let mut b = Block {
        k,
        lin: 0,
        obs,
        budget: options.max_instructions.unwrap_or(u64::MAX),
        ns,
        nthreads,
        regs: vec![0; ns * nthreads],
        pcs: vec![0; nthreads],
        state: vec![State::Ready; nthreads],
        shared: vec![0; shared_bytes],
        written: vec![false; shared_bytes],
        params,
        count: 0,
    };
    for &lin in &order {
        let gx = cfg.grid[0] as u64;
        let gy = cfg.grid[1] as u64;
        let ctaid = [
            (lin % gx) as u32,
            ((lin / gx) % gy) as u32,
            (lin / (gx * gy)) as u32,
        ];
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
        b.shared.fill(0);
        b.written.fill(false);
        b.lin = lin;
        if O::ENABLED {
            b.obs.block_begin(lin);
        }
        b.run_block(mem, ctaid, cfg.block)?;
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

fn thread_idx(t: usize, block: [u32; 3]) -> [u32; 3] {
    let bx = block[0] as usize;
    let by = block[1] as usize;
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

impl<O: Observer> Block<'_, O> {
    fn fault(&self, t: usize, ctaid: [u32; 3], block: [u32; 3], msg: String) -> SimError {
        let pc = self.pcs[t] as usize;
        let (line, inst) = self
            .k
            .src
            .get(pc)
            .map_or((0, String::new()), |s| (s.line, s.text.clone()));
        SimError::Fault {
            kernel: self.k.name.clone(),
            block: ctaid,
            thread: thread_idx(t, block),
            line,
            inst,
            msg,
        }
    }

    fn deadlock(&self, ctaid: [u32; 3], msg: String) -> SimError {
        SimError::Deadlock {
            kernel: self.k.name.clone(),
            block: ctaid,
            msg,
        }
    }

    fn src_of(&self, pc: u32) -> String {
        self.k.src.get(pc as usize).map_or(String::from("?"), |s| {
            format!("line {} `{}`", s.line, s.text)
        })
    }

    fn run_block(
        &mut self,
        mem: &mut Memory,
        ctaid: [u32; 3],
        block: [u32; 3],
    ) -> Result<(), SimError> {
        loop {
            let mut progressed = false;
            for t in 0..self.nthreads {
                if self.state[t] != State::Ready {
                    continue;
                }
                progressed = true;
                match self.run_thread(t, mem) {
                    Ok(Stop::Exit) => self.state[t] = State::Exited,
                    Ok(Stop::Bar(id)) => self.state[t] = State::Bar(id),
                    Ok(Stop::Warp) => self.state[t] = State::Warp,
                    Err(msg) => return Err(self.fault(t, ctaid, block, msg)),
                }
            }
            if self.resolve_warps(ctaid, block)? {
                continue;
            }
            if progressed {
                continue;
            }
            // Nothing can run and no warp collective can complete: barrier?
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
                return Ok(());
            }
            if !at_warp.is_empty() {
                let mut msg = String::from("warp collective(s) can never complete: ");
                let first = at_warp[0];
                msg += &format!(
                    "threads {} wait at {}",
                    lanes_str(&at_warp),
                    self.src_of(self.pcs[first])
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
                return Err(self.deadlock(ctaid, msg));
            }
            if !exited.is_empty() {
                return Err(self.deadlock(
                    ctaid,
                    format!(
                        "divergent barrier: threads {} wait at {} but threads {} have exited",
                        lanes_str(&at_bar),
                        self.src_of(self.pcs[at_bar[0]]),
                        lanes_str(&exited)
                    ),
                ));
            }
            let first_pc = self.pcs[at_bar[0]];
            let first_id = self.state[at_bar[0]];
            let mut others = Vec::new();
            for &t in &at_bar {
                if self.state[t] != first_id || self.pcs[t] != first_pc {
                    others.push(t);
                }
            }
            if !others.is_empty() {
                let same: Vec<usize> = at_bar
                    .iter()
                    .copied()
                    .filter(|t| !others.contains(t))
                    .collect();
                return Err(self.deadlock(
                    ctaid,
                    format!(
                        "divergent barrier: threads {} wait at {} while threads {} wait at {}",
                        lanes_str(&same),
                        self.src_of(first_pc),
                        lanes_str(&others),
                        self.src_of(self.pcs[others[0]])
                    ),
                ));
            }
            if O::ENABLED {
                self.obs.barrier(self.lin, first_pc);
            }
            for &t in &at_bar {
                self.state[t] = State::Ready;
                self.pcs[t] += 1;
            }
        }
    }

    /// Completes every warp collective whose member lanes have all arrived.
    fn resolve_warps(&mut self, ctaid: [u32; 3], block: [u32; 3]) -> Result<bool, SimError> {
        let mut any = false;
        let nwarps = self.nthreads.div_ceil(32);
        for w in 0..nwarps {
            let lo = w * 32;
            let hi = (lo + 32).min(self.nthreads);
            let exists: u32 = if hi - lo == 32 {
                u32::MAX
            } else {
                (1u32 << (hi - lo)) - 1
            };
            let mut l = lo;
            while l < hi {
                if self.state[l] != State::Warp {
                    l += 1;
                    continue;
                }
                let pc = self.pcs[l];
                let op = self.k.code[pc as usize].op.clone();
                let mask_slot = match op {
                    Op::Shfl { mask, .. } | Op::Vote { mask, .. } => mask,
                    _ => {
                        return Err(self.fault(l, ctaid, block, "internal: bad collective".into()))
                    }
                };
                let mask = self.reg(l, mask_slot) as u32;
                let lane = l - lo;
                if mask & (1 << lane) == 0 {
                    return Err(self.fault(
                        l,
                        ctaid,
                        block,
                        format!("lane {lane} executes a warp collective with member mask 0x{mask:08x} that does not include it"),
                    ));
                }
                let need = mask & exists;
                let mut ready = true;
                for j in 0..(hi - lo) {
                    if need & (1 << j) == 0 {
                        continue;
                    }
                    let t = lo + j;
                    if self.state[t] != State::Warp || self.pcs[t] != pc {
                        ready = false;
                        break;
                    }
                    if self.reg(t, mask_slot) as u32 != mask {
                        return Err(self.fault(
                            t,
                            ctaid,
                            block,
                            format!(
                                "lanes of warp {w} use different member masks (0x{mask:08x} vs 0x{:08x})",
                                self.reg(t, mask_slot) as u32
                            ),
                        ));
                    }
                }
                if !ready {
                    l += 1;
                    continue;
                }
                self.exchange(&op, lo, hi, need);
                for j in 0..(hi - lo) {
                    if need & (1 << j) != 0 {
                        self.state[lo + j] = State::Ready;
                        self.pcs[lo + j] += 1;
                    }
                }
                any = true;
                l += 1;
            }
        }
        Ok(any)
    }

    #[inline(always)]
    fn reg(&self, t: usize, s: Slot) -> u64 {
        self.regs[t * self.ns + s as usize]
    }

    fn set_reg(&mut self, t: usize, s: Slot, v: u64) {
        self.regs[t * self.ns + s as usize] = v;
    }

    fn exchange(&mut self, op: &Op, lo: usize, hi: usize, need: u32) {
        let n = hi - lo;
        match *op {
            Op::Shfl {
                mode,
                d,
                p,
                a,
                b,
                c,
                ..
            } => {
                let vals: Vec<u64> = (0..n).map(|j| self.reg(lo + j, a) & 0xffff_ffff).collect();
                for j in 0..n {
                    if need & (1 << j) == 0 {
                        continue;
                    }
                    let t = lo + j;
                    let bb = self.reg(t, b) as u32;
                    let cc = self.reg(t, c) as u32;
                    let lane = j as u32;
                    let seg_mask = (cc >> 8) & 0x1f;
                    let clamp = cc & 0x1f;
                    let max_lane = (lane & seg_mask) | (clamp & !seg_mask);
                    let min_lane = lane & seg_mask;
                    let (src, ok) = match mode {
                        ShflMode::Up => {
                            let s = lane as i64 - bb as i64;
                            (s, s >= min_lane as i64)
                        }
                        ShflMode::Down => {
                            let s = lane as i64 + bb as i64;
                            (s, s <= max_lane as i64)
                        }
                        ShflMode::Bfly => {
                            let s = (lane ^ bb) as i64;
                            (s, s <= max_lane as i64)
                        }
                        ShflMode::Idx => {
                            let s = (min_lane | (bb & 0x1f & !seg_mask)) as i64;
                            (s, s <= max_lane as i64)
                        }
                    };
                    let src = if ok && src >= 0 && (src as usize) < n && need & (1 << src) != 0 {
                        src as usize
                    } else {
                        j
                    };
                    let v = vals[src];
                    self.set_reg(t, d, v);
                    if let Some(p) = p {
                        self.set_reg(t, p, ok as u64);
                    }
                }
            }
            Op::Vote {
                mode, d, a, aneg, ..
            } => {
                let mut ballot = 0u32;
                for j in 0..n {
                    if need & (1 << j) != 0 && ((self.reg(lo + j, a) != 0) != aneg) {
                        ballot |= 1 << j;
                    }
                }
                let v = match mode {
                    VoteMode::All => (ballot == need) as u64,
                    VoteMode::Any => (ballot != 0) as u64,
                    VoteMode::Uni => (ballot == need || ballot == 0) as u64,
                    VoteMode::Ballot => ballot as u64,
                };
                for j in 0..n {
                    if need & (1 << j) != 0 {
                        self.set_reg(lo + j, d, v);
                    }
                }
            }
            _ => {}
        }
    }

    fn shared_range(&self, addr: u64, len: usize) -> Result<usize, String> {
        let end = addr.checked_add(len as u64);
        match end {
            Some(e) if e <= self.shared.len() as u64 => Ok(addr as usize),
            _ => Err(format!(
                "shared memory access of {len} bytes at shared address 0x{addr:x} is out of bounds (block has {} bytes of shared memory)",
                self.shared.len()
            )),
        }
    }

    #[inline]
    fn load(
        &mut self,
        space: Space,
        addr: u64,
        len: usize,
        mem: &mut Memory,
    ) -> Result<u64, String> {
        match space {
            Space::Global => mem.load(addr, len),
            Space::Generic => {
                if addr.wrapping_sub(SHARED_WINDOW) < SHARED_WINDOW_SIZE {
                    self.load(Space::Shared, addr - SHARED_WINDOW, len, mem)
                } else {
                    mem.load(addr, len)
                }
            }
            Space::Shared => {
                let o = self.shared_range(addr, len)?;
                if let Some(i) = self.written[o..o + len].iter().position(|w| !w) {
                    return Err(format!(
                        "read of uninitialised shared memory at shared address 0x{:x} (no thread of this block wrote it)",
                        o + i
                    ));
                }
                Ok(load_le(&self.shared[o..o + len]))
            }
            Space::Param => {
                let o = addr as usize;
                if addr
                    .checked_add(len as u64)
                    .is_none_or(|e| e > self.params.len() as u64)
                {
                    return Err(format!(
                        "parameter read of {len} bytes at param offset 0x{addr:x} is out of bounds ({} bytes of parameters)",
                        self.params.len()
                    ));
                }
                Ok(load_le(&self.params[o..o + len]))
            }
            Space::Local => Err("local memory is not supported".into()),
        }
    }

    #[inline]
    fn store(
        &mut self,
        space: Space,
        addr: u64,
        len: usize,
        v: u64,
        mem: &mut Memory,
    ) -> Result<(), String> {
        match space {
            Space::Global => mem.store(addr, len, v),
            Space::Generic => {
                if addr.wrapping_sub(SHARED_WINDOW) < SHARED_WINDOW_SIZE {
                    self.store(Space::Shared, addr - SHARED_WINDOW, len, v, mem)
                } else {
                    mem.store(addr, len, v)
                }
            }
            Space::Shared => {
                let o = self.shared_range(addr, len)?;
                store_le(&mut self.shared[o..o + len], v);
                self.written[o..o + len].fill(true);
                Ok(())
            }
            Space::Param => Err("stores to the parameter space are not supported".into()),
            Space::Local => Err("local memory is not supported".into()),
        }
    }

    #[allow(clippy::too_many_lines)]
    fn run_thread(&mut self, t: usize, mem: &mut Memory) -> Result<Stop, String> {
        let k = self.k;
        let code = &k.code;
        let ns = self.ns;
        let mut pc = self.pcs[t] as usize;
        let mut count = 0u64;
        let res = loop {
            let Some(inst) = code.get(pc) else {
                break Err(format!(
                    "program counter {pc} ran off the end of the kernel"
                ));
            };
            count += 1;
            if count > self.budget {
                break Err(format!(
                    "the launch exceeded its limit of {} executed instructions (a spin-wait or an unbounded loop?)",
                    self.count + self.budget
                ));
            }
            let base = t * ns;
            let executed = inst
                .guard
                .is_none_or(|(g, neg)| (self.regs[base + g as usize] != 0) != neg);
            if O::ENABLED {
                self.obs.issue(&Issue {
                    block: self.lin,
                    thread: t as u32,
                    pc: pc as u32,
                    executed,
                });
            }
            if !executed {
                pc += 1;
                continue;
            }
            let r = &mut self.regs[base..base + ns];
            match inst.op {
                Op::IUn { op, ty, d, a } => {
                    let x = r[a as usize];
                    r[d as usize] = match op {
                        IUn::Mov => ty.norm(x),
                        IUn::Not => ty.norm(!x),
                        IUn::CNot => (ty.norm(x) == 0) as u64,
                        IUn::Neg => ty.norm(x.wrapping_neg()),
                        IUn::Abs => ty.norm((ty.norm(x) as i64).wrapping_abs() as u64),
                        IUn::Popc => (x & ty.mask()).count_ones() as u64,
                        IUn::Clz => {
                            ((x & ty.mask()).leading_zeros() - (64 - ty.bits as u32)) as u64
                        }
                        IUn::Brev => (x & ty.mask()).reverse_bits() >> (64 - ty.bits as u32),
                    };
                }
                Op::IBin { op, ty, d, a, b } => {
                    let x = r[a as usize];
                    let y = r[b as usize];
                    r[d as usize] = match op {
                        IOp::Add => ty.norm(x.wrapping_add(y)),
                        IOp::Sub => ty.norm(x.wrapping_sub(y)),
                        IOp::MulLo => ty.norm(x.wrapping_mul(y)),
                        IOp::And => ty.norm(x & y),
                        IOp::Or => ty.norm(x | y),
                        IOp::Xor => ty.norm(x ^ y),
                        IOp::Shl => {
                            let s = y & 0xffff_ffff;
                            if s >= ty.bits as u64 {
                                0
                            } else {
                                ty.norm(x << s)
                            }
                        }
                        IOp::Shr => {
                            let s = y & 0xffff_ffff;
                            let x = ty.norm(x);
                            if ty.signed {
                                ((x as i64) >> s.min(63)) as u64
                            } else if s >= ty.bits as u64 {
                                0
                            } else {
                                x >> s
                            }
                        }
                        IOp::MulHi => {
                            let (x, y) = (ty.norm(x), ty.norm(y));
                            let p = if ty.signed {
                                ((x as i64 as i128) * (y as i64 as i128)) as u128
                            } else {
                                (x as u128) * (y as u128)
                            };
                            ty.norm((p >> ty.bits) as u64)
                        }
                        IOp::Div | IOp::Rem => {
                            let (x, y) = (ty.norm(x), ty.norm(y));
                            let q = if y == 0 {
                                if op == IOp::Div {
                                    u64::MAX
                                } else {
                                    x
                                }
                            } else if ty.signed {
                                let (x, y) = (x as i64, y as i64);
                                if op == IOp::Div {
                                    x.wrapping_div(y) as u64
                                } else {
                                    x.wrapping_rem(y) as u64
                                }
                            } else if op == IOp::Div {
                                x / y
                            } else {
                                x % y
                            };
                            ty.norm(q)
                        }
                        IOp::Min | IOp::Max => {
                            let (x, y) = (ty.norm(x), ty.norm(y));
                            let lt = if ty.signed {
                                (x as i64) < (y as i64)
                            } else {
                                x < y
                            };
                            if lt == (op == IOp::Min) {
                                x
                            } else {
                                y
                            }
                        }
                    };
                }
                Op::Wide {
                    signed,
                    bits,
                    d,
                    a,
                    b,
                    c,
                } => {
                    let ity = IntTy { bits, signed };
                    let x = ity.norm(r[a as usize]);
                    let y = ity.norm(r[b as usize]);
                    let p = x.wrapping_mul(y);
                    let p = match c {
                        Some(c) => p.wrapping_add(r[c as usize]),
                        None => p,
                    };
                    r[d as usize] = IntTy {
                        bits: bits * 2,
                        signed,
                    }
                    .norm(p);
                }
                Op::Mad { hi, ty, d, a, b, c } => {
                    let (x, y) = (ty.norm(r[a as usize]), ty.norm(r[b as usize]));
                    let p = if hi {
                        let p = if ty.signed {
                            ((x as i64 as i128) * (y as i64 as i128)) as u128
                        } else {
                            (x as u128) * (y as u128)
                        };
                        (p >> ty.bits) as u64
                    } else {
                        x.wrapping_mul(y)
                    };
                    r[d as usize] = ty.norm(p.wrapping_add(r[c as usize]));
                }
                Op::AddC {
                    sub,
                    cin,
                    cout,
                    bits,
                    d,
                    a,
                    b,
                } => {
                    let m = IntTy {
                        bits,
                        signed: false,
                    };
                    let x = m.norm(r[a as usize]) as u128;
                    let y = m.norm(r[b as usize]) as u128;
                    let cf = if cin {
                        r[crate::parse::SLOT_CC as usize] as u128 & 1
                    } else {
                        0
                    };
                    let full = if sub {
                        // borrow semantics: CC.CF = borrow
                        x.wrapping_sub(y).wrapping_sub(cf)
                    } else {
                        x + y + cf
                    };
                    r[d as usize] = m.norm(full as u64);
                    if cout {
                        r[crate::parse::SLOT_CC as usize] = ((full >> bits) & 1) as u64;
                    }
                }
                Op::Bfe { ty, d, a, b, c } => {
                    let x = ty.norm(r[a as usize]);
                    let pos = (r[b as usize] & 0xff) as u32;
                    let len = (r[c as usize] & 0xff) as u32;
                    let w = ty.bits as u32;
                    let sbit = if ty.signed {
                        if len == 0 {
                            false
                        } else {
                            let i = (pos + len - 1).min(w - 1);
                            (x >> i) & 1 != 0
                        }
                    } else {
                        false
                    };
                    let mut out = 0u64;
                    for i in 0..w {
                        let bit = if i < len && pos + i < w {
                            (x >> (pos + i)) & 1 != 0
                        } else {
                            sbit
                        };
                        out |= (bit as u64) << i;
                    }
                    r[d as usize] = ty.norm(out);
                }
                Op::Bfi {
                    bits,
                    d,
                    f,
                    a,
                    b,
                    c,
                } => {
                    let fv = r[f as usize];
                    let bv = r[a as usize];
                    let pos = (r[b as usize] & 0xff) as u32;
                    let len = (r[c as usize] & 0xff) as u32;
                    let mut out = bv;
                    for i in 0..len {
                        if pos + i >= bits as u32 {
                            break;
                        }
                        let bit = (fv >> i) & 1;
                        out = (out & !(1 << (pos + i))) | (bit << (pos + i));
                    }
                    r[d as usize] = IntTy {
                        bits,
                        signed: false,
                    }
                    .norm(out);
                }
                Op::Prmt { d, a, b, c } => {
                    r[d as usize] = prmt(r[a as usize], r[b as usize], r[c as usize]);
                }
                Op::Setp {
                    cmp,
                    ty,
                    p,
                    q,
                    a,
                    b,
                    comb,
                } => {
                    let x = r[a as usize];
                    let y = r[b as usize];
                    let v = match ty {
                        Ty::F32 => cmp_f(
                            cmp,
                            f32::from_bits(x as u32) as f64,
                            f32::from_bits(y as u32) as f64,
                        ),
                        Ty::F64 => cmp_f(cmp, f64::from_bits(x), f64::from_bits(y)),
                        Ty::F16 | Ty::BF16 => cmp_f(cmp, float_of(x, ty), float_of(y, ty)),
                        Ty::S(_) => {
                            let it = ty.int();
                            cmp_i(cmp, it.norm(x) as i64, it.norm(y) as i64)
                        }
                        _ => {
                            let it = ty.int();
                            cmp_i(cmp, it.norm(x), it.norm(y))
                        }
                    };
                    match comb {
                        None => {
                            r[p as usize] = v as u64;
                            if let Some(q) = q {
                                r[q as usize] = (!v) as u64;
                            }
                        }
                        Some((bo, c, neg)) => {
                            let cv = (r[c as usize] != 0) != neg;
                            let f = |t: bool| match bo {
                                BoolOp::And => t && cv,
                                BoolOp::Or => t || cv,
                                BoolOp::Xor => t != cv,
                            };
                            r[p as usize] = f(v) as u64;
                            if let Some(q) = q {
                                r[q as usize] = f(!v) as u64;
                            }
                        }
                    }
                }
                Op::Selp { d, a, b, p, pneg } => {
                    r[d as usize] = if (r[p as usize] != 0) != pneg {
                        r[a as usize]
                    } else {
                        r[b as usize]
                    };
                }
                Op::Pack { bits, n, d, src } => {
                    let m = IntTy {
                        bits,
                        signed: false,
                    };
                    let mut v = 0u64;
                    for i in 0..n as usize {
                        v |= m.norm(r[src[i] as usize]) << (bits as u32 * i as u32);
                    }
                    r[d as usize] = v;
                }
                Op::Unpack { bits, n, dst, a } => {
                    let m = IntTy {
                        bits,
                        signed: false,
                    };
                    let v = r[a as usize];
                    for i in 0..n as usize {
                        r[dst[i] as usize] = m.norm(v >> (bits as u32 * i as u32));
                    }
                }
                Op::F32 {
                    op,
                    ftz,
                    sat,
                    d,
                    a,
                    b,
                    c,
                } => {
                    r[d as usize] = f32_op(
                        op,
                        ftz,
                        sat,
                        r[a as usize] as u32,
                        r[b as usize] as u32,
                        r[c as usize] as u32,
                    ) as u64;
                }
                Op::F64 { op, d, a, b, c } => {
                    r[d as usize] = f64_op(op, r[a as usize], r[b as usize], r[c as usize]);
                }
                Op::Half {
                    op,
                    kind,
                    x2,
                    ftz,
                    sat,
                    d,
                    a,
                    b,
                    c,
                } => {
                    let fmt = if kind == HalfKind::F16 {
                        fp::F16
                    } else {
                        fp::BF16
                    };
                    let (x, y, z) = (r[a as usize], r[b as usize], r[c as usize]);
                    let lo = half_op(op, fmt, ftz, sat, x & 0xffff, y & 0xffff, z & 0xffff);
                    r[d as usize] = if x2 {
                        let hi = half_op(
                            op,
                            fmt,
                            ftz,
                            sat,
                            (x >> 16) & 0xffff,
                            (y >> 16) & 0xffff,
                            (z >> 16) & 0xffff,
                        );
                        lo | (hi << 16)
                    } else {
                        lo
                    };
                }
                Op::Cvt {
                    dst,
                    src,
                    rnd,
                    int_rnd,
                    sat,
                    ftz,
                    d,
                    a,
                } => {
                    r[d as usize] = cvt(dst, src, rnd, int_rnd, sat, ftz, r[a as usize]);
                }
                Op::Cvta { kind, d, a } => {
                    let x = r[a as usize];
                    r[d as usize] = match kind {
                        Cvta::Identity => x,
                        Cvta::SharedToGeneric => x.wrapping_add(SHARED_WINDOW),
                        Cvta::GenericToShared => x.wrapping_sub(SHARED_WINDOW),
                        Cvta::LocalToGeneric | Cvta::GenericToLocal => {
                            break Err("local memory is not supported".into())
                        }
                    };
                }
                Op::Ld {
                    space,
                    size,
                    ty,
                    n,
                    dst,
                    base: ab,
                    off,
                } => {
                    let addr = ab.map_or(0, |s| r[s as usize]).wrapping_add(off as u64);
                    let total = size as u64 * n as u64;
                    if O::ENABLED {
                        self.observe_access(t, pc, space, AccessKind::Load, addr, total);
                    }
                    if addr % total != 0 {
                        break Err(format!(
                            "misaligned {total}-byte load from address 0x{addr:x}"
                        ));
                    }
                    for (i, &ds) in dst.iter().enumerate().take(n as usize) {
                        match self.load(space, addr + (i as u64) * size as u64, size as usize, mem)
                        {
                            Ok(v) => self.regs[base + ds as usize] = ty.norm(v),
                            Err(e) => {
                                self.pcs[t] = pc as u32;
                                self.count += count;
                                return Err(e);
                            }
                        }
                    }
                }
                Op::St {
                    space,
                    size,
                    n,
                    src,
                    base: ab,
                    off,
                } => {
                    let addr = ab.map_or(0, |s| r[s as usize]).wrapping_add(off as u64);
                    let total = size as u64 * n as u64;
                    let vals = [
                        r[src[0] as usize],
                        r[src[1] as usize],
                        r[src[2] as usize],
                        r[src[3] as usize],
                    ];
                    if O::ENABLED {
                        self.observe_access(t, pc, space, AccessKind::Store, addr, total);
                    }
                    if addr % total != 0 {
                        break Err(format!(
                            "misaligned {total}-byte store to address 0x{addr:x}"
                        ));
                    }
                    for (i, &v) in vals.iter().enumerate().take(n as usize) {
                        if let Err(e) = self.store(
                            space,
                            addr + (i as u64) * size as u64,
                            size as usize,
                            v,
                            mem,
                        ) {
                            self.pcs[t] = pc as u32;
                            self.count += count;
                            return Err(e);
                        }
                    }
                }
                Op::Atom {
                    space,
                    op,
                    ty,
                    d,
                    base: ab,
                    off,
                    b,
                    c,
                } => {
                    let addr = ab.map_or(0, |s| r[s as usize]).wrapping_add(off as u64);
                    let size = (ty.bits() / 8) as u64;
                    let (bv, cv) = (r[b as usize], r[c as usize]);
                    if O::ENABLED {
                        self.observe_access(t, pc, space, AccessKind::Atomic, addr, size);
                    }
                    if addr % size != 0 {
                        break Err(format!(
                            "misaligned {size}-byte atomic at address 0x{addr:x}"
                        ));
                    }
                    let old = match self.load(space, addr, size as usize, mem) {
                        Ok(v) => v,
                        Err(e) => break Err(e),
                    };
                    let new = atom_op(op, ty, old, bv, cv);
                    if let Err(e) = self.store(space, addr, size as usize, new, mem) {
                        break Err(e);
                    }
                    if let Some(d) = d {
                        self.regs[base + d as usize] = ty.int().norm(old);
                    }
                }
                Op::Bra { target } => {
                    pc = target as usize;
                    continue;
                }
                Op::Exit => break Ok(Stop::Exit),
                Op::Bar { id } => {
                    let id = r[id as usize] as u32;
                    if id >= 16 {
                        break Err(format!("barrier id {id} out of range (0..15)"));
                    }
                    break Ok(Stop::Bar(id));
                }
                Op::Nop => {}
                Op::Shfl { .. } | Op::Vote { .. } => break Ok(Stop::Warp),
                Op::Activemask { d } => {
                    let lo = t / 32 * 32;
                    let hi = (lo + 32).min(self.nthreads);
                    let mut m = 0u64;
                    for j in lo..hi {
                        if self.state[j] != State::Exited {
                            m |= 1 << (j - lo);
                        }
                    }
                    self.regs[base + d as usize] = m;
                }
            }
            pc += 1;
        };
        self.pcs[t] = pc as u32;
        self.count += count;
        self.budget = self.budget.saturating_sub(count);
        res
    }

    /// Reports one access to the observer, generic addresses resolved to their space.
    fn observe_access(
        &mut self,
        t: usize,
        pc: usize,
        space: Space,
        kind: AccessKind,
        addr: u64,
        bytes: u64,
    ) {
        let (space, addr) = match space {
            Space::Global => (MemSpace::Global, addr),
            Space::Shared => (MemSpace::Shared, addr),
            Space::Param => (MemSpace::Param, addr),
            Space::Generic | Space::Local => {
                if addr.wrapping_sub(SHARED_WINDOW) < SHARED_WINDOW_SIZE {
                    (MemSpace::Shared, addr - SHARED_WINDOW)
                } else {
                    (MemSpace::Global, addr)
                }
            }
        };
        self.obs.access(&Access {
            block: self.lin,
            thread: t as u32,
            pc: pc as u32,
            space,
            kind,
            addr,
            bytes: bytes as u32,
        });
    }
}

fn atom_op(op: AOp, ty: Ty, old: u64, b: u64, c: u64) -> u64 {
    let it = ty.int();
    match op {
        AOp::Add => match ty {
            // atom.add.f32 flushes subnormal inputs and results (PTX ISA)
            Ty::F32 => f32_op(FOp::Add, true, false, old as u32, b as u32, 0) as u64,
            Ty::F64 => f64_op(FOp::Add, old, b, 0),
            Ty::F16 => half_op(FOp::Add, fp::F16, false, false, old, b & 0xffff, 0),
            Ty::BF16 => half_op(FOp::Add, fp::BF16, false, false, old, b & 0xffff, 0),
            _ => it.norm(old.wrapping_add(b)),
        },
        AOp::Min | AOp::Max => {
            let (x, y) = (it.norm(old), it.norm(b));
            let lt = if it.signed {
                (x as i64) < (y as i64)
            } else {
                x < y
            };
            if lt == (op == AOp::Min) {
                x
            } else {
                y
            }
        }
        AOp::Inc => {
            let (x, y) = (old & 0xffff_ffff, b & 0xffff_ffff);
            if x >= y {
                0
            } else {
                x + 1
            }
        }
        AOp::Dec => {
            let (x, y) = (old & 0xffff_ffff, b & 0xffff_ffff);
            if x == 0 || x > y {
                y
            } else {
                x - 1
            }
        }
        AOp::And => old & b,
        AOp::Or => old | b,
        AOp::Xor => old ^ b,
        AOp::Exch => b,
        AOp::Cas => {
            if it.norm(old) == it.norm(b) {
                c
            } else {
                old
            }
        }
    }
}
