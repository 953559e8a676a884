//! Simulated global (device) memory: dense buffers, and sparse buffers whose untouched bytes
//! come from a generator function.

use std::collections::HashMap;
use std::fmt;

use crate::SimError;

/// First device address handed out by [`Memory::alloc`].
const BASE: u64 = 0x1_0000_0000;
/// Unmapped bytes left after every allocation so that overruns fault.
const GAP: u64 = 0x1_0000;
/// Alignment of every allocation.
const ALIGN: u64 = 256;
/// Bytes per materialised page of a sparse allocation (pages are aligned to device addresses,
/// so a naturally aligned access never straddles two).
pub(crate) const SPARSE_PAGE: u64 = 1 << 16;

/// Produces the initial bytes of a sparse allocation: `fill(offset, buf)` writes the bytes at
/// `offset..offset + buf.len()` (offsets from the start of the allocation).
type Fill = Box<dyn Fn(u64, &mut [u8]) + Send + Sync>;

/// The bytes behind one allocation.
enum Backing {
    /// Every byte stored.
    Dense(Vec<u8>),
    /// Pages materialised on the first write; reads of other pages ask the generator.
    Sparse {
        pages: HashMap<u64, Box<[u8]>>,
        fill: Fill,
    },
}

struct Alloc {
    addr: u64,
    len: u64,
    data: Backing,
}

impl Alloc {
    /// Copies `out.len()` bytes at allocation offset `off` into `out` (in bounds).
    fn read_into(&self, off: u64, out: &mut [u8]) {
        match &self.data {
            Backing::Dense(v) => {
                let o = off as usize;
                out.copy_from_slice(&v[o..o + out.len()]);
            }
            Backing::Sparse { pages, fill } => {
                let mut done = 0usize;
                while done < out.len() {
                    let addr = self.addr + off + done as u64;
                    let page = addr / SPARSE_PAGE;
                    let in_page = (addr % SPARSE_PAGE) as usize;
                    let n = (SPARSE_PAGE as usize - in_page).min(out.len() - done);
                    match pages.get(&page) {
                        Some(p) => out[done..done + n].copy_from_slice(&p[in_page..in_page + n]),
                        None => fill(off + done as u64, &mut out[done..done + n]),
                    }
                    done += n;
                }
            }
        }
    }

    /// The materialised page holding device address `addr` of a sparse allocation.
    fn sparse_page<'p>(
        addr: u64,
        base: u64,
        len: u64,
        pages: &'p mut HashMap<u64, Box<[u8]>>,
        fill: &Fill,
    ) -> &'p mut [u8] {
        let page = addr / SPARSE_PAGE;
        let p = pages.entry(page).or_insert_with(|| {
            let mut buf = vec![0u8; SPARSE_PAGE as usize].into_boxed_slice();
            // only the part of the page inside the allocation is generated
            let start = (page * SPARSE_PAGE).max(base);
            let end = ((page + 1) * SPARSE_PAGE).min(base + len);
            let lo = (start - page * SPARSE_PAGE) as usize;
            let hi = (end - page * SPARSE_PAGE) as usize;
            fill(start - base, &mut buf[lo..hi]);
            buf
        });
        p
    }

    /// Copies `data` to allocation offset `off` (in bounds), materialising sparse pages.
    fn write_from(&mut self, off: u64, data: &[u8]) {
        let (addr0, len) = (self.addr, self.len);
        match &mut self.data {
            Backing::Dense(v) => {
                let o = off as usize;
                v[o..o + data.len()].copy_from_slice(data);
            }
            Backing::Sparse { pages, fill } => {
                let mut done = 0usize;
                while done < data.len() {
                    let addr = addr0 + off + done as u64;
                    let in_page = (addr % SPARSE_PAGE) as usize;
                    let n = (SPARSE_PAGE as usize - in_page).min(data.len() - done);
                    let page = Alloc::sparse_page(addr, addr0, len, pages, fill);
                    page[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
                    done += n;
                }
            }
        }
    }
}

/// Where an in-bounds access lies: the allocation's index and the offset into it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    /// Index of the allocation (stable for the length of a launch).
    pub alloc: u32,
    /// Offset of the first byte from the allocation's start.
    pub off: u64,
    /// The allocation's device address.
    pub base: u64,
}

/// Simulated global memory: a set of caller-allocated device buffers.
///
/// Addresses are plain `u64` device addresses (as a kernel sees them through pointer
/// parameters). Every buffer is 256-byte aligned (or deliberately offset, see
/// [`Memory::alloc_at_offset`]) and followed by an unmapped gap, so any access that runs past
/// the end of a buffer (or into freed memory) is reported instead of silently touching a
/// neighbour. Buffers are exactly as long as asked for: there is no slack.
///
/// A buffer is either dense (every byte stored) or sparse ([`Memory::alloc_sparse`]: bytes
/// produced by a function of their offset until written), so a kernel can be run over a
/// virtual input of many gigabytes.
pub struct Memory {
    allocs: Vec<Alloc>, // sorted by address (addresses only grow)
    next: u64,
    last: usize,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for a in &self.allocs {
            let kind = match &a.data {
                Backing::Dense(_) => "dense",
                Backing::Sparse { .. } => "sparse",
            };
            l.entry(&format_args!(
                "0x{:x}..0x{:x} ({kind})",
                a.addr,
                a.addr + a.len
            ));
        }
        l.finish()
    }
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

    fn push(&mut self, addr: u64, len: u64, data: Backing) -> u64 {
        self.next = (addr + len + GAP).div_ceil(ALIGN) * ALIGN;
        self.allocs.push(Alloc { addr, len, data });
        addr
    }

    /// Allocates `bytes` zero-initialised bytes and returns their device address
    /// (nonzero, 256-byte aligned, never adjacent to another allocation).
    pub fn alloc(&mut self, bytes: usize) -> u64 {
        self.push(self.next, bytes as u64, Backing::Dense(vec![0; bytes]))
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

    /// Allocates `bytes` bytes (any size, also far beyond the host's memory) whose contents
    /// are produced on demand: `fill(offset, buf)` must write into `buf` the bytes at
    /// `offset..offset + buf.len()` of the buffer, and must always produce the same bytes for
    /// the same offsets. Reads of bytes never written ask `fill`; a write materialises the
    /// 64 KiB page around it. Bounds are exact and the buffer is followed by an unmapped gap,
    /// as for [`Memory::alloc`]. Fails if the buffer would reach the shared-memory window of
    /// the generic address space (device address `0x7f00_0000_0000_0000`).
    ///
    /// ```
    /// use ptxsim::Memory;
    /// let mut mem = Memory::new();
    /// // 6 GiB of u32s whose value is their index
    /// let n: u64 = 3 << 29;
    /// let a = mem
    ///     .alloc_sparse(4 * n, |off, buf| {
    ///         for (i, b) in buf.iter_mut().enumerate() {
    ///             let byte = off + i as u64;
    ///             *b = ((byte / 4) as u32).to_le_bytes()[(byte % 4) as usize];
    ///         }
    ///     })
    ///     .unwrap();
    /// let last = mem.read(a + 4 * (n - 1), 4).unwrap();
    /// assert_eq!(u32::from_le_bytes(last.try_into().unwrap()), (n - 1) as u32);
    /// assert!(mem.read(a + 4 * n, 1).is_err());
    /// assert_eq!(mem.resident_bytes(), 0);
    /// ```
    pub fn alloc_sparse(
        &mut self,
        bytes: u64,
        fill: impl Fn(u64, &mut [u8]) + Send + Sync + 'static,
    ) -> Result<u64, SimError> {
        let fits = self
            .next
            .checked_add(bytes)
            .and_then(|e| e.checked_add(GAP + ALIGN))
            .is_some_and(|e| e < crate::parse::SHARED_WINDOW);
        if !fits {
            return Err(SimError::Memory(format!(
                "a sparse allocation of {bytes} bytes at 0x{:x} would run into the shared-memory window at 0x{:x}",
                self.next,
                crate::parse::SHARED_WINDOW
            )));
        }
        Ok(self.push(
            self.next,
            bytes,
            Backing::Sparse {
                pages: HashMap::new(),
                fill: Box::new(fill),
            },
        ))
    }

    /// Host bytes held for device data: dense buffers in full, sparse buffers by their
    /// materialised pages.
    pub fn resident_bytes(&self) -> u64 {
        self.allocs
            .iter()
            .map(|a| match &a.data {
                Backing::Dense(v) => v.len() as u64,
                Backing::Sparse { pages, .. } => pages.len() as u64 * SPARSE_PAGE,
            })
            .sum()
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
        let loc = self
            .resolve(addr, data.len() as u64)
            .map_err(SimError::Memory)?;
        self.allocs[loc.alloc as usize].write_from(loc.off, data);
        Ok(())
    }

    /// Reads `len` bytes of device memory at `addr`; the whole range must lie in one allocation.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, SimError> {
        let i = self.search(addr).map_err(SimError::Memory)?;
        let off = self.check(i, addr, len as u64).map_err(SimError::Memory)?;
        let mut out = vec![0u8; len];
        self.allocs[i].read_into(off, &mut out);
        Ok(out)
    }

    fn search(&self, addr: u64) -> Result<usize, String> {
        let i = self.allocs.partition_point(|a| a.addr <= addr);
        if i == 0 {
            return Err(format!("address 0x{addr:x} is not inside any allocation"));
        }
        Ok(i - 1)
    }

    fn check(&self, i: usize, addr: u64, len: u64) -> Result<u64, String> {
        let a = &self.allocs[i];
        let off = addr - a.addr;
        if off.checked_add(len).is_some_and(|end| end <= a.len) {
            Ok(off)
        } else {
            Err(format!(
                "access of {len} bytes at 0x{addr:x} is out of bounds of the allocation 0x{:x}..0x{:x} ({} bytes)",
                a.addr,
                a.addr + a.len,
                a.len
            ))
        }
    }

    /// Finds the allocation holding `[addr, addr+len)`; caches the last hit.
    #[inline(always)]
    pub(crate) fn resolve(&mut self, addr: u64, len: u64) -> Result<Loc, String> {
        if let Some(a) = self.allocs.get(self.last) {
            let off = addr.wrapping_sub(a.addr);
            if addr >= a.addr && off.checked_add(len).is_some_and(|e| e <= a.len) {
                return Ok(Loc {
                    alloc: self.last as u32,
                    off,
                    base: a.addr,
                });
            }
        }
        let i = self.search(addr)?;
        let off = self.check(i, addr, len)?;
        self.last = i;
        Ok(Loc {
            alloc: i as u32,
            off,
            base: self.allocs[i].addr,
        })
    }

    /// Loads a little-endian value of `len` (1, 2, 4 or 8) bytes at `delta` bytes past `loc`
    /// (in bounds: `loc` was resolved for the whole access).
    #[inline(always)]
    pub(crate) fn load_at(&self, loc: Loc, delta: u64, len: usize) -> u64 {
        let a = &self.allocs[loc.alloc as usize];
        let off = loc.off + delta;
        match &a.data {
            Backing::Dense(v) => {
                let o = off as usize;
                crate::exec::load_le(&v[o..o + len])
            }
            Backing::Sparse { .. } => {
                let mut b = [0u8; 8];
                a.read_into(off, &mut b[..len]);
                crate::exec::load_le(&b[..len])
            }
        }
    }

    /// Stores the low `len` (1, 2, 4 or 8) bytes of `val`, little-endian, at `delta` bytes past
    /// `loc` (in bounds).
    #[inline(always)]
    pub(crate) fn store_at(&mut self, loc: Loc, delta: u64, len: usize, val: u64) {
        let a = &mut self.allocs[loc.alloc as usize];
        let off = loc.off + delta;
        match &mut a.data {
            Backing::Dense(v) => {
                let o = off as usize;
                crate::exec::store_le(&mut v[o..o + len], val);
            }
            Backing::Sparse { .. } => {
                let b = val.to_le_bytes();
                a.write_from(off, &b[..len]);
            }
        }
    }
}
