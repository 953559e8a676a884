//! Loads and stores: state spaces (a generic address is resolved to shared or global memory),
//! alignment, exact bounds, uninitialised shared memory, and the race detector's check of
//! every shared and global access before it takes effect.

use super::super::{Block, Trap};
use crate::exec::{load_le, store_le};
use crate::ir::{IntTy, Slot, Space};
use crate::parse::{SHARED_WINDOW, SHARED_WINDOW_SIZE};
use crate::race::{ATOMIC, READ, WRITE};
use crate::trace::{Access, AccessKind, MemSpace, Observer};
use crate::Memory;

/// The memory an address lands in.
pub(in crate::exec) enum Target {
    /// A device address.
    Global(u64),
    /// An offset into the block's shared memory.
    Shared(u64),
    /// An offset into the parameter buffer.
    Param(u64),
}

/// Resolves an address of state space `space`.
#[inline(always)]
pub(in crate::exec) fn target(space: Space, addr: u64) -> Result<Target, String> {
    Ok(match space {
        Space::Global => Target::Global(addr),
        Space::Shared => Target::Shared(addr),
        Space::Param => Target::Param(addr),
        Space::Generic => {
            if addr.wrapping_sub(SHARED_WINDOW) < SHARED_WINDOW_SIZE {
                Target::Shared(addr - SHARED_WINDOW)
            } else {
                Target::Global(addr)
            }
        }
        Space::Local => return Err("local memory is not supported".into()),
    })
}

impl<O: Observer> Block<'_, O> {
    /// Reports one access to the observer, generic addresses resolved to their space.
    #[cold]
    pub(in crate::exec) fn observe_access(
        &mut self,
        t: usize,
        pc: usize,
        space: Space,
        kind: AccessKind,
        addr: u64,
        bytes: u64,
    ) {
        let (space, addr) = match target(space, addr) {
            Ok(Target::Shared(o)) => (MemSpace::Shared, o),
            Ok(Target::Param(o)) => (MemSpace::Param, o),
            Ok(Target::Global(a)) => (MemSpace::Global, a),
            Err(_) => (MemSpace::Global, addr),
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

    /// The start of `len` bytes of shared memory at offset `addr`, if in bounds.
    #[inline]
    pub(in crate::exec) fn shared_range(&self, addr: u64, len: u64) -> Result<usize, String> {
        match addr.checked_add(len) {
            Some(e) if e <= self.shared.len() as u64 => Ok(addr as usize),
            _ => Err(format!(
                "shared memory access of {len} bytes at shared address 0x{addr:x} is out of bounds (block has {} bytes of shared memory)",
                self.shared.len()
            )),
        }
    }

    /// Bytes `o..o + len` of shared memory must have been written by the block. With the
    /// race detector on, a read of an unwritten byte is remembered rather than reported at
    /// once: the race that usually explains it (a missing barrier) is reported instead if the
    /// detector finds it before the next barrier.
    #[inline]
    pub(in crate::exec) fn check_written(
        &mut self,
        t: usize,
        pc: usize,
        o: usize,
        len: usize,
    ) -> Result<(), String> {
        let Some(i) = self.written[o..o + len].iter().position(|w| !w) else {
            return Ok(());
        };
        let msg = format!(
            "read of uninitialised shared memory at shared address 0x{:x} (no thread of this block wrote it)",
            o + i
        );
        if self.race.is_none() {
            return Err(msg);
        }
        if self.pending.is_none() {
            self.pending = Some(self.fault_at(t, pc, msg));
        }
        Ok(())
    }

    /// `ld{.space}{.v2,.v4}.type`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn ld(
        &mut self,
        t: usize,
        pc: usize,
        mem: &mut Memory,
        space: Space,
        size: u8,
        ty: IntTy,
        n: u8,
        dst: [Slot; 4],
        addr: u64,
        strong: bool,
    ) -> Result<(), Trap> {
        let total = size as u64 * n as u64;
        if O::ENABLED {
            self.observe_access(t, pc, space, AccessKind::Load, addr, total);
        }
        if !addr.is_multiple_of(total) {
            return Err(format!("misaligned {total}-byte load from address 0x{addr:x}").into());
        }
        let kind = if strong { ATOMIC } else { READ };
        let base = t * self.ns;
        let size = size as usize;
        match target(space, addr)? {
            Target::Global(a) => {
                let loc = mem.resolve(a, total)?;
                if let Some(r) = self.race.as_deref_mut() {
                    r.global(t as u32, pc as u32, loc, a, total, kind)
                        .map_err(Trap::Race)?;
                }
                for (i, &d) in dst.iter().enumerate().take(n as usize) {
                    let v = mem.load_at(loc, (i * size) as u64, size);
                    self.regs[base + d as usize] = ty.norm(v);
                }
            }
            Target::Shared(off) => {
                let o = self.shared_range(off, total)?;
                if let Some(r) = self.race.as_deref_mut() {
                    r.shared(t as u32, pc as u32, o, total as usize, kind)
                        .map_err(Trap::Race)?;
                }
                self.check_written(t, pc, o, total as usize)?;
                for (i, &d) in dst.iter().enumerate().take(n as usize) {
                    let p = o + i * size;
                    self.regs[base + d as usize] = ty.norm(load_le(&self.shared[p..p + size]));
                }
            }
            Target::Param(off) => {
                let o = off as usize;
                if off
                    .checked_add(total)
                    .is_none_or(|e| e > self.params.len() as u64)
                {
                    return Err(format!(
                        "parameter read of {total} bytes at param offset 0x{off:x} is out of bounds ({} bytes of parameters)",
                        self.params.len()
                    )
                    .into());
                }
                for (i, &d) in dst.iter().enumerate().take(n as usize) {
                    let p = o + i * size;
                    self.regs[base + d as usize] = ty.norm(load_le(&self.params[p..p + size]));
                }
            }
        }
        Ok(())
    }

    /// `st{.space}{.v2,.v4}.type`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn st(
        &mut self,
        t: usize,
        pc: usize,
        mem: &mut Memory,
        space: Space,
        size: u8,
        n: u8,
        src: [Slot; 4],
        addr: u64,
        strong: bool,
    ) -> Result<(), Trap> {
        let total = size as u64 * n as u64;
        let base = t * self.ns;
        let vals = src.map(|s| self.regs[base + s as usize]);
        if O::ENABLED {
            self.observe_access(t, pc, space, AccessKind::Store, addr, total);
        }
        if !addr.is_multiple_of(total) {
            return Err(format!("misaligned {total}-byte store to address 0x{addr:x}").into());
        }
        let kind = if strong { ATOMIC } else { WRITE };
        let size = size as usize;
        match target(space, addr)? {
            Target::Global(a) => {
                let loc = mem.resolve(a, total)?;
                if let Some(r) = self.race.as_deref_mut() {
                    r.global(t as u32, pc as u32, loc, a, total, kind)
                        .map_err(Trap::Race)?;
                }
                for (i, &v) in vals.iter().enumerate().take(n as usize) {
                    mem.store_at(loc, (i * size) as u64, size, v);
                }
            }
            Target::Shared(off) => {
                let o = self.shared_range(off, total)?;
                if let Some(r) = self.race.as_deref_mut() {
                    r.shared(t as u32, pc as u32, o, total as usize, kind)
                        .map_err(Trap::Race)?;
                }
                for (i, &v) in vals.iter().enumerate().take(n as usize) {
                    let p = o + i * size;
                    store_le(&mut self.shared[p..p + size], v);
                }
                self.written[o..o + total as usize].fill(true);
            }
            Target::Param(_) => {
                return Err(String::from("stores to the parameter space are not supported").into())
            }
        }
        Ok(())
    }
}
