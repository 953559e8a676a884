//! Control flow: `bra` (and the divergence check of a guarded `bra.uni`), `ret`/`exit`, and
//! `bar.sync`'s barrier id (the waiting and release are in `exec/mod.rs`).

use super::super::Block;
use crate::trace::Observer;

/// The barrier id operand of `bar.sync`/`barrier.sync`: 0..15.
#[inline]
pub(super) fn barrier_id(v: u64) -> Result<u32, String> {
    if v >= 16 {
        return Err(format!("barrier id {v} out of range (0..15)"));
    }
    Ok(v as u32)
}

impl<O: Observer> Block<'_, O> {
    /// Checks that the `n`-th execution of the guarded `.uni` branch at `pc` by thread `t`
    /// goes the way the other lanes' `n`-th executions went.
    #[cold]
    pub(in crate::exec) fn check_uni(
        &mut self,
        t: usize,
        pc: usize,
        taken: bool,
    ) -> Result<(), String> {
        let w = t / 32;
        let lane = t % 32;
        let h = self.uni.entry((w as u32, pc as u32)).or_default();
        let n = h.count[lane] as usize;
        h.count[lane] += 1;
        match h.taken.get(n) {
            Some(&(dir, first)) if dir != taken => {
                let how = |d: bool| if d { "takes" } else { "does not take" };
                Err(format!(
                    "divergent `.uni` branch: lane {lane} {} it, but lane {first} of warp {w} {} it (execution {} of this branch by each lane)",
                    how(taken),
                    how(dir),
                    n + 1
                ))
            }
            Some(_) => Ok(()),
            None => {
                h.taken.push((taken, lane as u8));
                Ok(())
            }
        }
    }
}
