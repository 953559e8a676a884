//! Control flow: `bra` (and the divergence check of a guarded `bra.uni`), `ret`/`exit`, and
//! `bar.sync`'s barrier id (the waiting and release are in `exec/mod.rs`).

/// The barrier id operand of `bar.sync`/`barrier.sync`: 0..15.
#[inline]
pub(super) fn barrier_id(v: u64) -> Result<u32, String> {
    if v >= 16 {
        return Err(format!("barrier id {v} out of range (0..15)"));
    }
    Ok(v as u32)
}
