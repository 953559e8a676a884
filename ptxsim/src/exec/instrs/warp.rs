//! Warp collectives: the data `shfl.sync` and `vote.sync` exchange once every lane of the
//! member mask has arrived (the synchronisation itself is in `exec/mod.rs`), and
//! `activemask`.
//!
//! Lanes of one collective may wait at different instructions (PTX asks for the same
//! operation, qualifiers and member mask, not the same instruction), so each lane's operands
//! are read from its own instruction.

use super::super::{Block, State};
use crate::ir::{Op, ShflMode, VoteMode};
use crate::trace::Observer;

/// Source lane of `shfl.sync` for `lane`, and whether it is in range (the PTX ISA's `pval`):
/// `b` is the lane offset or index, `c` packs the segment mask (bits 8..12) and the clamp
/// value (bits 0..4).
fn shfl_source(mode: ShflMode, lane: u32, b: u32, c: u32) -> (i64, bool) {
    let seg_mask = (c >> 8) & 0x1f;
    let clamp = c & 0x1f;
    let max_lane = (lane & seg_mask) | (clamp & !seg_mask);
    let min_lane = lane & seg_mask;
    match mode {
        ShflMode::Up => {
            let s = lane as i64 - b as i64;
            (s, s >= min_lane as i64)
        }
        ShflMode::Down => {
            let s = lane as i64 + b as i64;
            (s, s <= max_lane as i64)
        }
        ShflMode::Bfly => {
            let s = (lane ^ b) as i64;
            (s, s <= max_lane as i64)
        }
        ShflMode::Idx => {
            let s = (min_lane | (b & 0x1f & !seg_mask)) as i64;
            (s, s <= max_lane as i64)
        }
    }
}

impl<O: Observer> Block<'_, O> {
    /// Performs the collective every lane of `mask` in the warp starting at thread `lo` waits
    /// at. An error names the thread whose operation is undefined (a shuffle reading a lane
    /// outside the member mask).
    pub(in crate::exec) fn exchange(
        &mut self,
        lo: usize,
        mask: u32,
    ) -> Result<(), (usize, String)> {
        let k = self.k;
        let ns = self.ns;
        let op_of = |pc: u32| k.code.get(pc as usize).map(|i| &i.op);
        // every lane's source operand first, then the results: a lane's destination may be
        // another lane's source
        let mut vals = [0u64; 32];
        let mut ballot = 0u32;
        let mut m = mask;
        while m != 0 {
            let j = m.trailing_zeros() as usize;
            m &= m - 1;
            let r = &self.regs[(lo + j) * ns..];
            match op_of(self.pcs[lo + j]) {
                Some(&Op::Shfl { a, .. }) => vals[j] = r[a as usize] & 0xffff_ffff,
                Some(&Op::Vote { a, aneg, .. }) if (r[a as usize] != 0) != aneg => ballot |= 1 << j,
                _ => {}
            }
        }
        let mut m = mask;
        while m != 0 {
            let j = m.trailing_zeros() as usize;
            m &= m - 1;
            let t = lo + j;
            let op = op_of(self.pcs[t]);
            let r = &mut self.regs[t * ns..(t + 1) * ns];
            match op {
                Some(&Op::Shfl {
                    mode, d, p, b, c, ..
                }) => {
                    let (bb, cc) = (r[b as usize] as u32, r[c as usize] as u32);
                    let (src, ok) = shfl_source(mode, j as u32, bb, cc);
                    let v = if ok {
                        if !(0..32).contains(&src) || mask & (1 << src) == 0 {
                            return Err((
                                t,
                                format!(
                                    "lane {j} reads lane {src} with a shuffle whose member mask 0x{mask:08x} does not include it (the value is undefined on hardware)"
                                ),
                            ));
                        }
                        vals[src as usize]
                    } else {
                        vals[j]
                    };
                    r[d as usize] = v;
                    if let Some(p) = p {
                        r[p as usize] = ok as u64;
                    }
                }
                Some(&Op::Vote { mode, d, .. }) => {
                    r[d as usize] = match mode {
                        VoteMode::All => (ballot == mask) as u64,
                        VoteMode::Any => (ballot != 0) as u64,
                        VoteMode::Uni => (ballot == mask || ballot == 0) as u64,
                        VoteMode::Ballot => ballot as u64,
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `activemask`: the lanes of the warp that have not exited.
    pub(in crate::exec) fn activemask(&self, t: usize) -> u64 {
        let lo = t / 32 * 32;
        let hi = (lo + 32).min(self.nthreads);
        let mut m = 0u64;
        for j in lo..hi {
            if self.state[j] != State::Exited {
                m |= 1 << (j - lo);
            }
        }
        m
    }
}
