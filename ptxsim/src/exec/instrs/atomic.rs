//! Atomics: `atom` and `red` on global and shared memory. An atomic is one indivisible
//! read-modify-write of its thread; the scheduler never switches threads inside one.

use super::super::{Block, Trap};
use super::float::{f32_op, f64_op, half_op};
use super::memory::{target, Target};
use crate::exec::{load_le, store_le};
use crate::fp;
use crate::ir::{AOp, FOp, Slot, Space, Ty};
use crate::race::ATOMIC;
use crate::trace::{AccessKind, Observer};
use crate::Memory;

/// The new value of an atomic `op` of type `ty` on old value `old` with operands `b`, `c`.
pub(super) fn atom_op(op: AOp, ty: Ty, old: u64, b: u64, c: u64) -> u64 {
    let it = ty.int();
    match op {
        AOp::Add => match ty {
            // atom.add.f32 flushes subnormal inputs and results (PTX ISA)
            Ty::F32 => f32_op(FOp::Add, true, false, old as u32, b as u32, 0) as u64,
            Ty::F64 => f64_op(FOp::Add, old, b, 0),
            Ty::F16 => half_op(FOp::Add, fp::F16, false, false, old, b & 0xffff, 0),
            Ty::BF16 => half_op(FOp::Add, fp::BF16, false, false, old, b & 0xffff, 0),
            // Packed pairs: each 16-bit half is added on its own (low half at the lower address).
            Ty::F16x2 | Ty::BF16x2 => {
                let fmt = if ty == Ty::F16x2 { fp::F16 } else { fp::BF16 };
                let half = |v: u64, shift: u32| (v >> shift) & 0xffff;
                let lo = half_op(FOp::Add, fmt, false, false, half(old, 0), half(b, 0), 0);
                let hi = half_op(FOp::Add, fmt, false, false, half(old, 16), half(b, 16), 0);
                (lo & 0xffff) | ((hi & 0xffff) << 16)
            }
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

impl<O: Observer> Block<'_, O> {
    /// `atom`/`red`: returns nothing, writes the old value to `d` (for `atom`).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn atom(
        &mut self,
        t: usize,
        pc: usize,
        mem: &mut Memory,
        space: Space,
        op: AOp,
        ty: Ty,
        d: Option<Slot>,
        addr: u64,
        b: Slot,
        c: Slot,
    ) -> Result<(), Trap> {
        let size = (ty.bits() / 8) as u64;
        let base = t * self.ns;
        let (bv, cv) = (self.regs[base + b as usize], self.regs[base + c as usize]);
        if O::ENABLED {
            self.observe_access(t, pc, space, AccessKind::Atomic, addr, size);
        }
        if !addr.is_multiple_of(size) {
            return Err(format!("misaligned {size}-byte atomic at address 0x{addr:x}").into());
        }
        let old = match target(space, addr)? {
            Target::Global(a) => {
                let loc = mem.resolve(a, size)?;
                if let Some(r) = self.race.as_deref_mut() {
                    r.global(t as u32, pc as u32, loc, a, size, ATOMIC)
                        .map_err(Trap::Race)?;
                }
                let old = mem.load_at(loc, 0, size as usize);
                mem.store_at(loc, 0, size as usize, atom_op(op, ty, old, bv, cv));
                old
            }
            Target::Shared(off) => {
                let o = self.shared_range(off, size)?;
                let e = o + size as usize;
                if let Some(r) = self.race.as_deref_mut() {
                    r.shared(t as u32, pc as u32, o, size as usize, ATOMIC)
                        .map_err(Trap::Race)?;
                }
                self.check_written(t, pc, o, size as usize)?;
                let old = load_le(&self.shared[o..e]);
                store_le(&mut self.shared[o..e], atom_op(op, ty, old, bv, cv));
                self.written[o..e].fill(true);
                old
            }
            Target::Param(_) => {
                return Err(String::from("atomics on the parameter space are not supported").into())
            }
        };
        if let Some(d) = d {
            self.regs[base + d as usize] = ty.int().norm(old);
        }
        Ok(())
    }
}
