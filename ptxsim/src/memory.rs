//! Simulated global (device) memory.

use crate::SimError;

/// First device address handed out by [`Memory::alloc`].
const BASE: u64 = 0x1_0000_0000;
/// Unmapped bytes left after every allocation so that overruns fault.
const GAP: u64 = 0x1_0000;
/// Alignment of every allocation.
const ALIGN: u64 = 256;

#[derive(Debug)]
struct Alloc {
    addr: u64,
    data: Vec<u8>,
}

/// Simulated global memory: a set of caller-allocated device buffers.
///
/// Addresses are plain `u64` device addresses (as a kernel sees them through
/// pointer parameters). Every buffer is 256-byte aligned and followed by an
/// unmapped gap, so any access that runs past the end of a buffer (or into
/// freed memory) is reported instead of silently touching a neighbour.
#[derive(Debug)]
pub struct Memory {
    allocs: Vec<Alloc>, // sorted by address (addresses only grow)
    next: u64,
    last: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Memory {
    /// An empty memory with no allocations.
    pub fn new() -> Memory {
        Memory {
            allocs: Vec::new(),
            next: BASE,
            last: 0,
        }
    }

    /// Allocates `bytes` zero-initialised bytes and returns their device address
    /// (nonzero, 256-byte aligned, never adjacent to another allocation).
    pub fn alloc(&mut self, bytes: usize) -> u64 {
        let addr = self.next;
        let len = bytes as u64;
        self.next = (addr + len + GAP).div_ceil(ALIGN) * ALIGN;
        self.allocs.push(Alloc {
            addr,
            data: vec![0; bytes],
        });
        addr
    }

    /// Allocates exactly `bytes` zero-initialised bytes starting `offset` bytes past a 256-byte
    /// boundary, and returns that (deliberately misaligned, for `offset % 16 != 0`) address.
    /// Like every allocation it is followed by an unmapped gap, so a view into a caller's
    /// buffer at an odd offset still faults one byte past its end. Free it by that address.
    pub fn alloc_at_offset(&mut self, bytes: usize, offset: u64) -> u64 {
        let start = self.next + offset;
        self.next = start;
        self.alloc(bytes)
    }

    /// Frees the allocation that starts at `addr`.
    pub fn free(&mut self, addr: u64) -> Result<(), SimError> {
        match self.allocs.binary_search_by_key(&addr, |a| a.addr) {
            Ok(i) => {
                self.allocs.remove(i);
                self.last = 0;
                Ok(())
            }
            Err(_) => Err(SimError::Memory(format!(
                "free of 0x{addr:x}, which is not the start of a live allocation"
            ))),
        }
    }

    /// Copies `data` to device memory at `addr`; the whole range must lie in one allocation.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        let (i, off) = self
            .locate(addr, data.len() as u64)
            .map_err(SimError::Memory)?;
        self.allocs[i].data[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Reads `len` bytes of device memory at `addr`; the whole range must lie in one allocation.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, SimError> {
        let i = self.search(addr).map_err(SimError::Memory)?;
        let off = self.check(i, addr, len as u64).map_err(SimError::Memory)?;
        Ok(self.allocs[i].data[off..off + len].to_vec())
    }

    fn search(&self, addr: u64) -> Result<usize, String> {
        let i = self.allocs.partition_point(|a| a.addr <= addr);
        if i == 0 {
            return Err(format!("address 0x{addr:x} is not inside any allocation"));
        }
        Ok(i - 1)
    }

    fn check(&self, i: usize, addr: u64, len: u64) -> Result<usize, String> {
        let a = &self.allocs[i];
        let off = addr - a.addr;
        let size = a.data.len() as u64;
        if off.checked_add(len).is_some_and(|end| end <= size) {
            Ok(off as usize)
        } else {
            Err(format!(
                "access of {len} bytes at 0x{addr:x} is out of bounds of the allocation 0x{:x}..0x{:x} ({size} bytes)",
                a.addr,
                a.addr + size
            ))
        }
    }

    /// Finds the allocation holding `[addr, addr+len)`; caches the last hit.
    #[inline]
    fn locate(&mut self, addr: u64, len: u64) -> Result<(usize, usize), String> {
        if let Some(a) = self.allocs.get(self.last) {
            let off = addr.wrapping_sub(a.addr);
            if addr >= a.addr
                && off
                    .checked_add(len)
                    .is_some_and(|e| e <= a.data.len() as u64)
            {
                return Ok((self.last, off as usize));
            }
        }
        let i = self.search(addr)?;
        let off = self.check(i, addr, len)?;
        self.last = i;
        Ok((i, off))
    }

    /// Loads a little-endian value of `len` (1, 2, 4 or 8) bytes.
    #[inline]
    pub(crate) fn load(&mut self, addr: u64, len: usize) -> Result<u64, String> {
        let (i, off) = self.locate(addr, len as u64)?;
        Ok(crate::exec::load_le(&self.allocs[i].data[off..off + len]))
    }

    /// Stores the low `len` (1, 2, 4 or 8) bytes of `val`, little-endian.
    #[inline]
    pub(crate) fn store(&mut self, addr: u64, len: usize, val: u64) -> Result<(), String> {
        let (i, off) = self.locate(addr, len as u64)?;
        crate::exec::store_le(&mut self.allocs[i].data[off..off + len], val);
        Ok(())
    }
}
