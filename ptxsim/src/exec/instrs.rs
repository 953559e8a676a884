//! The dispatch: runs one thread until it blocks, exits, faults or is switched out. Each
//! instruction family's semantics live in `instrs/<family>.rs`; this file only decodes the
//! guard, reports to the observer and calls them.

mod atomic;
mod branch;
mod compare;
mod conversion;
mod float;
mod integer;
mod memory;
mod warp;

use super::{Block, Stop, Trap};
use crate::ir::Op;
use crate::trace::{Issue, Observer};
use crate::Memory;

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

impl<O: Observer> Block<'_, O> {
    /// Runs thread `t` from its pc for at most `quantum` instructions (and never past the
    /// launch's instruction limit). Inlined into the block loop: a thread stops at every warp
    /// collective, so the call would cost as much as the instructions between them.
    #[inline(always)]
    pub(super) fn run_thread(
        &mut self,
        t: usize,
        mem: &mut Memory,
        quantum: u64,
    ) -> Result<Stop, Trap> {
        let mut pc = self.pcs[t] as usize;
        let mut count = 0u64;
        let res = self.steps(t, mem, &mut pc, &mut count, quantum.min(self.budget));
        self.pcs[t] = pc as u32;
        self.count += count;
        self.budget -= count;
        res
    }

    /// The interpreter loop. `pc` and the executed-instruction count are kept in locals
    /// (written back to `pc_out`/`count_out` on every way out), so that they live in
    /// registers rather than memory.
    #[inline(always)]
    fn steps(
        &mut self,
        t: usize,
        mem: &mut Memory,
        pc_out: &mut usize,
        count_out: &mut u64,
        quota: u64,
    ) -> Result<Stop, Trap> {
        let k = self.k;
        let code = &k.code;
        let ns = self.ns;
        let base = t * ns;
        let mut pc = *pc_out;
        let mut count = 0u64;
        /// Leaves the loop with `$res`, saving pc and count.
        macro_rules! leave {
            ($res:expr) => {{
                *pc_out = pc;
                *count_out = count;
                return $res;
            }};
        }
        /// Unwraps an instruction's result, or leaves with its error.
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => leave!(Err(Trap::from(e))),
                }
            };
        }
        loop {
            if count == quota {
                if quota == self.budget {
                    leave!(Err(format!(
                        "the launch exceeded its limit of {} executed instructions (a spin-wait or an unbounded loop?)",
                        self.count + self.budget
                    )
                    .into()));
                }
                leave!(Ok(Stop::Yield));
            }
            let Some(inst) = code.get(pc) else {
                leave!(Err(format!(
                    "program counter {pc} ran off the end of the kernel"
                )
                .into()));
            };
            count += 1;
            let executed = inst
                .guard
                .is_none_or(|(g, neg)| (self.regs[base + g as usize] != 0) != neg);
            if O::ENABLED {
                let shown = match inst.op {
                    Op::BraUni { pred, neg, .. } => (self.regs[base + pred as usize] != 0) != neg,
                    _ => executed,
                };
                self.obs.issue(&Issue {
                    block: self.lin,
                    thread: t as u32,
                    pc: pc as u32,
                    executed: shown,
                });
            }
            if !executed {
                pc += 1;
                continue;
            }
            let r = &mut self.regs[base..base + ns];
            match inst.op {
                Op::IUn { op, ty, d, a } => integer::unary(r, op, ty, d, a),
                Op::IBin { op, ty, d, a, b } => integer::binary(r, op, ty, d, a, b),
                Op::Wide {
                    signed,
                    bits,
                    d,
                    a,
                    b,
                    c,
                } => integer::wide(r, signed, bits, d, a, b, c),
                Op::Mad { hi, ty, d, a, b, c } => integer::mad(r, hi, ty, d, a, b, c),
                Op::AddC {
                    sub,
                    cin,
                    cout,
                    bits,
                    d,
                    a,
                    b,
                } => integer::add_carry(r, sub, cin, cout, bits, d, a, b),
                Op::Bfe { ty, d, a, b, c } => integer::bfe(r, ty, d, a, b, c),
                Op::Bfi {
                    bits,
                    d,
                    f,
                    a,
                    b,
                    c,
                } => integer::bfi(r, bits, d, f, a, b, c),
                Op::Prmt { d, a, b, c } => integer::prmt(r, d, a, b, c),
                Op::Pack { bits, n, d, src } => integer::pack(r, bits, n, d, src),
                Op::Unpack { bits, n, dst, a } => integer::unpack(r, bits, n, dst, a),
                Op::Setp {
                    cmp,
                    ty,
                    p,
                    q,
                    a,
                    b,
                    comb,
                } => compare::setp(r, cmp, ty, p, q, a, b, comb),
                Op::Selp { d, a, b, p, pneg } => compare::selp(r, d, a, b, p, pneg),
                Op::F32 {
                    op,
                    ftz,
                    sat,
                    d,
                    a,
                    b,
                    c,
                } => float::f32(r, op, ftz, sat, d, a, b, c),
                Op::F64 { op, d, a, b, c } => float::f64(r, op, d, a, b, c),
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
                } => float::half(r, op, kind, x2, ftz, sat, d, a, b, c),
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
                    r[d as usize] = conversion::cvt(dst, src, rnd, int_rnd, sat, ftz, r[a as usize])
                }
                Op::Cvta { kind, d, a } => tri!(conversion::cvta(r, kind, d, a)),
                Op::Ld {
                    space,
                    size,
                    ty,
                    n,
                    dst,
                    base: ab,
                    off,
                    strong,
                } => {
                    let addr = ab.map_or(0, |s| r[s as usize]).wrapping_add(off as u64);
                    tri!(self.ld(t, pc, mem, space, size, ty, n, dst, addr, strong));
                }
                Op::St {
                    space,
                    size,
                    n,
                    src,
                    base: ab,
                    off,
                    strong,
                } => {
                    let addr = ab.map_or(0, |s| r[s as usize]).wrapping_add(off as u64);
                    tri!(self.st(t, pc, mem, space, size, n, src, addr, strong));
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
                    tri!(self.atom(t, pc, mem, space, op, ty, d, addr, b, c));
                }
                Op::Bra { target, .. } => {
                    pc = target as usize;
                    continue;
                }
                Op::BraUni { target, pred, neg } => {
                    let taken = (r[pred as usize] != 0) != neg;
                    tri!(self.check_uni(t, pc, taken));
                    if taken {
                        match target {
                            Some(target) => {
                                pc = target as usize;
                                continue;
                            }
                            None => leave!(Ok(Stop::Exit)),
                        }
                    }
                }
                Op::Exit { .. } => leave!(Ok(Stop::Exit)),
                Op::Bar { id, .. } => {
                    leave!(Ok(Stop::Bar(tri!(branch::barrier_id(r[id as usize])))))
                }
                Op::Nop => {}
                Op::Shfl { .. } | Op::Vote { .. } | Op::WarpSync { .. } => leave!(Ok(Stop::Warp)),
                Op::Activemask { d } => {
                    let m = self.activemask(t);
                    self.regs[base + d as usize] = m;
                }
            }
            pc += 1;
        }
    }
}
