//! The race detector: shadow state for shared and global memory, kept apart from the
//! instruction semantics (which call [`RaceState::shared`] and [`RaceState::global`] before an
//! access takes effect).
//!
//! # Ordering
//!
//! Two accesses are *ordered* when one happens before the other by:
//! * program order (the same thread);
//! * a barrier (`bar.sync`/`barrier.sync`) of their block released between them. Every release
//!   starts a new *epoch*; epochs are numbered across the whole launch, and every block starts
//!   with a new one, so an access's epoch also tells which block made it;
//! * for shared memory only, a warp synchronisation between two lanes of one warp
//!   (`bar.warp.sync`, and the `.sync` shuffles and votes, which synchronise the lanes of their
//!   member mask): each thread keeps a vector clock over the lanes of its warp, joined at
//!   every warp synchronisation it takes part in.
//!
//! Threads of different blocks are never ordered: fences and atomics do not make an ordering
//! between blocks here (a kernel that hands data from block to block through a fence and an
//! atomic flag is reported). Within a block, global memory is ordered by barriers only.
//!
//! A *conflict* is two accesses to one byte by different threads where at least one is a plain
//! store, or one is plain and the other atomic. `.volatile`/`.relaxed`/`.acquire`/`.release`
//! loads and stores count as atomic (the PTX memory model calls them strong), so a strong load
//! conflicts with a plain load of another thread in the same epoch too.
//!
//! # Shadow state
//!
//! Detection depends only on the ordering, never on the order threads happened to run in: the
//! shadow state records, per byte, enough past accesses to find any earlier access that
//! conflicts with a new one and is unordered with it (the FastTrack scheme: one last write,
//! and the reads since it, kept as a single access while they are ordered and as a set once
//! they are concurrent).
//!
//! * Shared memory, per byte: the last plain store, the plain loads since, and the atomics
//!   since, each with its epoch, thread, warp clock and instruction; a set of concurrent
//!   accesses spills to a side table that is emptied at every barrier.
//! * Global memory, per byte (24 bytes of shadow per 4 aligned bytes while they are accessed
//!   together, per byte once a 1- or 2-byte access splits them; allocated per touched 4 KiB
//!   page for the length of a launch): the latest epoch's access with the access kinds its thread made, one
//!   other thread's access in that epoch, and a summary of the accesses of earlier epochs
//!   since the last plain store (the first of them, and the union of their kinds). Because a
//!   race stops the launch, the accesses this summarises are pairwise free of conflict, which
//!   is what makes a first access and a union of kinds enough: a later access conflicts with
//!   one of them exactly when it conflicts with the union and the first came from an earlier
//!   block.

use std::collections::HashMap;

use crate::error::Hazard;
use crate::memory::Loc;
use crate::trace::{AccessKind, MemSpace};

/// Access kinds, as bits so that one thread's accesses in an epoch can be merged.
pub(crate) const READ: u8 = 1;
/// A plain store.
pub(crate) const WRITE: u8 = 2;
/// An atomic, or a strong (`.volatile`, `.relaxed`, ...) load or store.
pub(crate) const ATOMIC: u8 = 4;

/// The kinds an access of kind `k` conflicts with (when unordered and by another thread).
#[inline(always)]
fn conflicts_with(k: u8) -> u8 {
    match k {
        READ => WRITE | ATOMIC,
        ATOMIC => READ | WRITE,
        _ => READ | WRITE | ATOMIC,
    }
}

/// The access kind shown in a report for kind bits `k` (one bit).
fn access_kind(k: u8) -> AccessKind {
    match k {
        READ => AccessKind::Load,
        WRITE => AccessKind::Store,
        _ => AccessKind::Atomic,
    }
}

/// The hazard between an earlier access with kinds `earlier` and a new one of kind `now`,
/// and the earlier kind it names.
fn classify(earlier: u8, now: u8) -> (Hazard, u8) {
    let c = earlier & conflicts_with(now);
    let e = if c & WRITE != 0 {
        WRITE
    } else if c & READ != 0 {
        READ
    } else {
        ATOMIC
    };
    let h = if e == ATOMIC || now == ATOMIC {
        Hazard::PlainAndAtomic
    } else if e == WRITE && now == WRITE {
        Hazard::WriteAfterWrite
    } else if e == WRITE {
        Hazard::ReadAfterWrite
    } else {
        Hazard::WriteAfterRead
    };
    (h, e)
}

/// A race found by the detector, in the detector's terms; the interpreter turns it into a
/// [`crate::SimError::Race`] with source lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub space: MemSpace,
    /// First conflicting byte: device address or shared offset.
    pub addr: u64,
    pub hazard: Hazard,
    /// Kind of the new access.
    pub kind: AccessKind,
    /// The earlier access: its block (linear), thread (linear), instruction and kind.
    pub other_block: u64,
    pub other_thread: u32,
    pub other_pc: u32,
    pub other_kind: AccessKind,
}

/// The access being checked.
#[derive(Clone, Copy)]
struct Now {
    g: u32,
    b0: u32,
    tid: u32,
    pc: u32,
    kind: u8,
}

// ---------------------------------------------------------------------------------------------
// Global memory
// ---------------------------------------------------------------------------------------------

/// Bits of an instruction index kept in the global shadow; larger indices are saturated (the
/// report then names the last representable instruction).
const PC_BITS: u32 = 18;
const PC_MAX: u32 = (1 << PC_BITS) - 1;

/// A packed access record: epoch (32 bits, 0 = none), thread (10), instruction (18), kinds (3).
#[inline(always)]
fn rec(g: u32, tid: u32, pc: u32, kinds: u8) -> u64 {
    g as u64 | (tid as u64) << 32 | (pc.min(PC_MAX) as u64) << 42 | (kinds as u64) << 60
}
#[inline(always)]
fn rec_g(r: u64) -> u32 {
    r as u32
}
#[inline(always)]
fn rec_tid(r: u64) -> u32 {
    ((r >> 32) & 0x3ff) as u32
}
#[inline(always)]
fn rec_pc(r: u64) -> u32 {
    ((r >> 42) & PC_MAX as u64) as u32
}
#[inline(always)]
fn rec_kinds(r: u64) -> u8 {
    (r >> 60) as u8 & 7
}

/// The other thread of the latest epoch: valid bit, thread (10), instruction (18). Its kind
/// is the latest record's: two threads' accesses in one epoch never conflict (or the launch
/// would have stopped), and only reads with reads, or atomics with atomics, do not conflict.
#[inline(always)]
fn other(tid: u32, pc: u32) -> u32 {
    1 << 31 | tid << 18 | pc.min(PC_MAX)
}

/// Shadow of one byte of global memory.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct GCell {
    /// The latest epoch's access (kinds merged for one thread).
    latest: u64,
    /// The first access of an earlier epoch since the last plain store (or that store).
    first: u64,
    /// Another thread's access in the latest epoch (see [`other`]).
    other: u32,
    /// Union of the kinds of all accesses of earlier epochs since the last plain store.
    kinds: u8,
}

/// What the check of one byte found.
struct Found {
    rec: u64,
    kinds: u8,
}

impl GCell {
    /// Checks access `x` against this byte's history, then records it.
    #[inline(always)]
    fn access(&mut self, x: Now) -> Result<(), Found> {
        let c = conflicts_with(x.kind);
        if self.first != 0 && rec_g(self.first) < x.b0 && self.kinds & c != 0 {
            return Err(Found {
                rec: self.first,
                kinds: self.kinds,
            });
        }
        let l = self.latest;
        let lg = rec_g(l);
        if l != 0 {
            let lk = rec_kinds(l);
            if lg == x.g {
                if rec_tid(l) != x.tid {
                    if lk & c != 0 {
                        return Err(Found { rec: l, kinds: lk });
                    }
                } else if self.other != 0 && lk & c != 0 {
                    let o = self.other;
                    let orec = rec(lg, (o >> 18) & 0x3ff, o & PC_MAX, lk);
                    return Err(Found {
                        rec: orec,
                        kinds: lk,
                    });
                }
            } else if lg < x.b0 && lk & c != 0 {
                return Err(Found { rec: l, kinds: lk });
            }
        }
        if x.kind == WRITE {
            *self = GCell {
                latest: rec(x.g, x.tid, x.pc, WRITE),
                ..GCell::default()
            };
        } else if l == 0 {
            self.latest = rec(x.g, x.tid, x.pc, x.kind);
        } else if lg == x.g {
            if rec_tid(l) == x.tid {
                if rec_kinds(l) & x.kind == 0 {
                    self.latest = rec(x.g, x.tid, x.pc, rec_kinds(l) | x.kind);
                }
            } else {
                self.other = other(rec_tid(l), rec_pc(l));
                self.latest = rec(x.g, x.tid, x.pc, x.kind);
            }
        } else {
            if self.first == 0 {
                self.first = l;
            }
            self.kinds |= rec_kinds(l);
            self.latest = rec(x.g, x.tid, x.pc, x.kind);
            self.other = 0;
        }
        Ok(())
    }
}

/// A [`GCell`] as stored: three words, so that fresh pages come zeroed from the allocator.
type Stored = [u64; 3];

/// The latest word of a granule whose bytes have separate histories; the first word then
/// indexes [`RaceState::splits`].
const SPLIT: u64 = u64::MAX;

impl GCell {
    #[inline(always)]
    fn load(s: &Stored) -> GCell {
        GCell {
            latest: s[0],
            first: s[1],
            other: s[2] as u32,
            kinds: (s[2] >> 32) as u8,
        }
    }

    #[inline(always)]
    fn store(self) -> Stored {
        [
            self.latest,
            self.first,
            self.other as u64 | (self.kinds as u64) << 32,
        ]
    }
}

/// Bytes of a granule: one shadow cell describes 4 aligned bytes while they share one
/// history (any access of 4 bytes or more keeps them together); an access of 1 or 2 bytes
/// splits the granule into 4 cells of its own.
const GRANULE: usize = 4;
/// log2 of the bytes covered by one shadow page.
const GPAGE_SHIFT: u32 = 12;
const GPAGE: usize = 1 << GPAGE_SHIFT;
/// Pages of an allocation indexed directly; pages beyond (huge sparse buffers) are hashed.
const FLAT_PAGES: u64 = 1 << 16;

/// The shadow pages of one allocation, by page index from the allocation's first page.
#[derive(Default)]
struct AllocShadow {
    flat: Vec<Option<Box<[Stored]>>>,
    far: HashMap<u64, Box<[Stored]>>,
}

impl AllocShadow {
    fn page(&mut self, idx: u64) -> &mut [Stored] {
        let fresh = || vec![[0u64; 3]; GPAGE / GRANULE].into_boxed_slice();
        if idx < FLAT_PAGES {
            let i = idx as usize;
            if i >= self.flat.len() {
                self.flat.resize_with(i + 1, || None);
            }
            self.flat[i].get_or_insert_with(fresh)
        } else {
            self.far.entry(idx).or_insert_with(fresh)
        }
    }
}

/// Checks and records access `x` to bytes `lo..hi` of the granule `s`: the whole granule at
/// once, or byte by byte if it is split (and joined again when its bytes agree again). An
/// error gives the byte's index in the granule.
#[inline]
fn access_granule(
    s: &mut Stored,
    splits: &mut [[Stored; GRANULE]],
    lo: usize,
    hi: usize,
    x: Now,
) -> Result<(), (usize, Found)> {
    if s[0] != SPLIT {
        let mut c = GCell::load(s);
        c.access(x).map_err(|f| (lo, f))?;
        *s = c.store();
        return Ok(());
    }
    let Some(bytes) = splits.get_mut(s[1] as usize) else {
        return Ok(());
    };
    for (j, b) in bytes.iter_mut().enumerate().take(hi).skip(lo) {
        let mut c = GCell::load(b);
        c.access(x).map_err(|f| (j, f))?;
        *b = c.store();
    }
    if bytes.iter().all(|b| *b == bytes[0]) {
        *s = bytes[0];
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------------------------

/// One shared-memory access: epoch (0 = none), thread, kind, the thread's own warp clock at
/// the access, instruction. As the head of a set in [`SCell`], `kind == MANY` marks a set
/// held in the side table at index `pc`.
#[derive(Clone, Copy, Default, Debug)]
struct SRec {
    g: u32,
    tid: u16,
    kind: u8,
    clk: u32,
    pc: u32,
}

const MANY: u8 = 0x80;

/// Shadow of one byte of shared memory: the last plain store, the plain loads since it and
/// the atomics since it (each a single access or a set).
#[derive(Clone, Copy, Default, Debug)]
struct SCell {
    write: SRec,
    reads: SRec,
    atomics: SRec,
}

// ---------------------------------------------------------------------------------------------
// The detector
// ---------------------------------------------------------------------------------------------

/// The race detector's state for one launch.
pub(crate) struct RaceState {
    /// The current epoch (0 is "no access").
    g: u32,
    /// The first epoch of the block being run.
    b0: u32,
    /// First epoch and linear index of every block run so far, in order.
    blocks: Vec<(u32, u64)>,
    /// Per thread, its vector clock over the lanes of its warp (32 entries), valid for the
    /// warps whose entry in `warp_block` is the current block's first epoch; the clocks of
    /// any other warp are implicitly fresh (1 for the thread's own lane, 0 for the others).
    clocks: Vec<u32>,
    warp_block: Vec<u32>,
    shared: Vec<SCell>,
    /// Sets of concurrent shared accesses of the current epoch.
    side: Vec<Vec<SRec>>,
    /// Global shadow pages, by allocation index.
    global: Vec<AllocShadow>,
    /// The byte cells of split granules.
    splits: Vec<[Stored; GRANULE]>,
    nthreads: usize,
}

impl RaceState {
    pub fn new(nthreads: usize, shared_bytes: usize) -> RaceState {
        RaceState {
            g: 0,
            b0: 0,
            blocks: Vec::new(),
            clocks: vec![0; nthreads * 32],
            warp_block: vec![0; nthreads.div_ceil(32)],
            shared: vec![SCell::default(); shared_bytes],
            side: Vec::new(),
            global: Vec::new(),
            splits: Vec::new(),
            nthreads,
        }
    }

    /// A new epoch; on the (theoretical) wrap of the counter all history is forgotten, which
    /// can only hide races, never invent one.
    fn next_epoch(&mut self) {
        if self.g == u32::MAX - 1 {
            self.g = 0;
            self.blocks.clear();
            self.global.clear();
            self.splits.clear();
            self.shared.fill(SCell::default());
        }
        self.g += 1;
        self.side.clear();
    }

    /// A block starts: new epoch, fresh warp clocks.
    pub fn begin_block(&mut self, lin: u64) {
        self.next_epoch();
        self.b0 = self.g;
        self.blocks.push((self.g, lin));
    }

    /// What thread `t` knows of lane `lane`'s clock.
    #[inline(always)]
    fn clock(&self, t: usize, lane: usize) -> u32 {
        if self.warp_block[t / 32] == self.b0 {
            self.clocks[t * 32 + lane]
        } else {
            (lane == t % 32) as u32
        }
    }

    /// A barrier of the current block was released.
    pub fn barrier(&mut self) {
        self.next_epoch();
    }

    /// The lanes `mask` of the warp whose first thread is `lo` synchronised. Warp clocks
    /// order shared memory only: without shared memory (`shared_bytes == 0`) nothing is kept.
    pub fn warp_sync(&mut self, lo: usize, mask: u32) {
        if self.shared.is_empty() {
            return;
        }
        let w = lo / 32;
        if self.warp_block[w] != self.b0 {
            self.warp_block[w] = self.b0;
            for t in lo..(lo + 32).min(self.nthreads) {
                let c = &mut self.clocks[t * 32..t * 32 + 32];
                c.fill(0);
                c[t % 32] = 1;
            }
        }
        let mut join = [0u32; 32];
        for l in 0..32 {
            if mask & (1 << l) != 0 {
                let c = &self.clocks[(lo + l) * 32..(lo + l) * 32 + 32];
                for (j, v) in join.iter_mut().zip(c) {
                    *j = (*j).max(*v);
                }
            }
        }
        for l in 0..32 {
            if mask & (1 << l) != 0 {
                let c = &mut self.clocks[(lo + l) * 32..(lo + l) * 32 + 32];
                c.copy_from_slice(&join);
                c[l] += 1;
            }
        }
    }

    fn block_of(&self, g: u32) -> u64 {
        let i = self.blocks.partition_point(|&(b0, _)| b0 <= g);
        self.blocks.get(i.wrapping_sub(1)).map_or(0, |b| b.1)
    }

    /// Checks a global access of `len` bytes at `addr` (in bounds of the allocation `loc`)
    /// by thread `tid` at instruction `pc`, of kind `kind`, then records it.
    #[inline]
    pub fn global(
        &mut self,
        tid: u32,
        pc: u32,
        loc: Loc,
        addr: u64,
        len: u64,
        kind: u8,
    ) -> Result<(), Box<Conflict>> {
        let x = Now {
            g: self.g,
            b0: self.b0,
            tid,
            pc,
            kind,
        };
        let a = loc.alloc as usize;
        if a >= self.global.len() {
            self.global.resize_with(a + 1, AllocShadow::default);
        }
        let idx = (addr >> GPAGE_SHIFT) - (loc.base >> GPAGE_SHIFT);
        let splits = &mut self.splits;
        let page = self.global[a].page(idx);
        let at = (addr as usize & (GPAGE - 1)) / GRANULE;
        let len = len as usize;
        // accesses are naturally aligned and at most 16 bytes: never across a page
        let res = if len >= GRANULE {
            let cells = &mut page[at..at + len / GRANULE];
            if cells[0][0] != SPLIT && cells.iter().all(|c| *c == cells[0]) {
                // the common case: all granules share one history
                let mut c = GCell::load(&cells[0]);
                let r = c.access(x).map_err(|f| (0, f));
                if r.is_ok() {
                    cells.fill(c.store());
                }
                r
            } else {
                let mut r = Ok(());
                for (k, s) in cells.iter_mut().enumerate() {
                    if let Err((j, f)) = access_granule(s, splits, 0, GRANULE, x) {
                        r = Err(((k * GRANULE + j) as u64, f));
                        break;
                    }
                }
                r
            }
        } else {
            let s = &mut page[at];
            if s[0] != SPLIT {
                splits.push([*s; GRANULE]);
                *s = [SPLIT, (splits.len() - 1) as u64, 0];
            }
            let lo = addr as usize % GRANULE;
            access_granule(s, splits, lo, lo + len, x).map_err(|(j, f)| ((j - lo) as u64, f))
        };
        res.map_err(|(i, f)| {
            let (hazard, e) = classify(f.kinds, kind);
            Box::new(Conflict {
                space: MemSpace::Global,
                addr: addr + i,
                hazard,
                kind: access_kind(kind),
                other_block: self.block_of(rec_g(f.rec)),
                other_thread: rec_tid(f.rec),
                other_pc: rec_pc(f.rec),
                other_kind: access_kind(e),
            })
        })
    }

    /// Whether the shared access `r` happens before the current point of thread `tid`.
    #[inline(always)]
    fn ordered(&self, r: &SRec, tid: u32) -> bool {
        if r.g != self.g || r.tid as u32 == tid {
            return true;
        }
        let rt = r.tid as usize;
        let t = tid as usize;
        rt / 32 == t / 32 && r.clk <= self.clock(t, rt % 32)
    }

    /// The first access of set `s` (a single access or a side-table set) unordered with
    /// thread `tid`.
    fn unordered_in(&self, s: &SRec, tid: u32) -> Option<SRec> {
        if s.g != self.g {
            return None;
        }
        if s.kind & MANY != 0 {
            self.side
                .get(s.pc as usize)
                .and_then(|v| v.iter().find(|r| !self.ordered(r, tid)).copied())
        } else if !self.ordered(s, tid) {
            Some(*s)
        } else {
            None
        }
    }

    /// Adds access `x` to set `s`.
    fn add(&mut self, s: &mut SRec, x: SRec) {
        if s.g != self.g {
            *s = x;
        } else if s.kind & MANY != 0 {
            if let Some(v) = self.side.get_mut(s.pc as usize) {
                match v.last_mut() {
                    Some(last) if last.tid == x.tid => *last = x,
                    _ => v.push(x),
                }
            }
        } else if self.ordered(s, x.tid as u32) {
            *s = x;
        } else {
            self.side.push(vec![*s, x]);
            *s = SRec {
                g: self.g,
                kind: MANY,
                pc: (self.side.len() - 1) as u32,
                ..SRec::default()
            };
        }
    }

    /// Checks a shared access of `len` bytes at offset `off` (in bounds) by thread `tid` at
    /// instruction `pc`, of kind `kind`, then records it.
    pub fn shared(
        &mut self,
        tid: u32,
        pc: u32,
        off: usize,
        len: usize,
        kind: u8,
    ) -> Result<(), Box<Conflict>> {
        let x = SRec {
            g: self.g,
            tid: tid as u16,
            kind,
            clk: self.clock(tid as usize, tid as usize % 32),
            pc,
        };
        for i in off..off + len {
            let mut cell = self.shared[i];
            let mut found = None;
            if cell.write.g == self.g && !self.ordered(&cell.write, tid) {
                found = Some(cell.write);
            }
            if found.is_none() && kind != ATOMIC {
                found = self.unordered_in(&cell.atomics, tid);
            }
            if found.is_none() && kind != READ {
                found = self.unordered_in(&cell.reads, tid);
            }
            if let Some(r) = found {
                let (hazard, e) = classify(r.kind, kind);
                return Err(Box::new(Conflict {
                    space: MemSpace::Shared,
                    addr: i as u64,
                    hazard,
                    kind: access_kind(kind),
                    other_block: self.block_of(r.g),
                    other_thread: r.tid as u32,
                    other_pc: r.pc,
                    other_kind: access_kind(e),
                }));
            }
            match kind {
                WRITE => {
                    cell = SCell {
                        write: x,
                        ..SCell::default()
                    }
                }
                READ => {
                    let mut s = cell.reads;
                    self.add(&mut s, x);
                    cell.reads = s;
                }
                _ => {
                    let mut s = cell.atomics;
                    self.add(&mut s, x);
                    cell.atomics = s;
                }
            }
            self.shared[i] = cell;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(g: u32, b0: u32, tid: u32, kind: u8) -> Now {
        Now {
            g,
            b0,
            tid,
            pc: tid + 100,
            kind,
        }
    }

    #[test]
    fn records_round_trip() {
        let r = rec(0xdead_beef, 1023, 5000, READ | ATOMIC);
        assert_eq!(rec_g(r), 0xdead_beef);
        assert_eq!(rec_tid(r), 1023);
        assert_eq!(rec_pc(r), 5000);
        assert_eq!(rec_kinds(r), READ | ATOMIC);
        assert_eq!(rec_pc(rec(1, 0, u32::MAX, WRITE)), PC_MAX);
    }

    #[test]
    fn global_reads_never_conflict_but_a_later_write_does() {
        let mut c = GCell::default();
        // block 1 (epochs 1..), block 2 (epochs 3..)
        assert!(c.access(now(1, 1, 0, READ)).is_ok());
        assert!(c.access(now(1, 1, 5, READ)).is_ok());
        assert!(c.access(now(3, 3, 7, READ)).is_ok());
        let f = c.access(now(4, 3, 7, WRITE)).err().map(|f| rec_tid(f.rec));
        assert_eq!(f, Some(5), "the latest reader of the earlier block");
    }

    #[test]
    fn global_same_block_barrier_orders() {
        let mut c = GCell::default();
        assert!(c.access(now(1, 1, 0, WRITE)).is_ok());
        assert!(c.access(now(2, 1, 3, READ)).is_ok());
        assert!(c.access(now(2, 1, 4, READ)).is_ok());
        assert!(c.access(now(3, 1, 5, WRITE)).is_ok());
        // same epoch, other thread
        let f = c.access(now(3, 1, 6, READ)).err().map(|f| rec_tid(f.rec));
        assert_eq!(f, Some(5));
    }

    #[test]
    fn global_atomics_mix_only_with_atomics() {
        let mut c = GCell::default();
        assert!(c.access(now(1, 1, 0, ATOMIC)).is_ok());
        assert!(c.access(now(1, 1, 1, ATOMIC)).is_ok());
        assert!(c.access(now(2, 2, 9, ATOMIC)).is_ok());
        // a plain read in a later block conflicts with the atomics of the earlier one
        let f = c.access(now(2, 2, 9, READ)).err().map(|f| rec_tid(f.rec));
        assert_eq!(f, Some(1));
        let mut c = GCell::default();
        assert!(c.access(now(1, 1, 9, ATOMIC)).is_ok());
        // the same thread may read what it wrote atomically...
        assert!(c.access(now(1, 1, 9, READ)).is_ok());
        // ...but no other thread of its epoch
        let f = c.access(now(1, 1, 1, READ)).err().map(|f| rec_tid(f.rec));
        assert_eq!(f, Some(9));
        // after a barrier, it may
        assert!(c.access(now(2, 1, 1, READ)).is_ok());
    }

    #[test]
    fn global_other_thread_of_the_epoch_is_kept() {
        let mut c = GCell::default();
        assert!(c.access(now(1, 1, 0, READ)).is_ok());
        assert!(c.access(now(1, 1, 1, READ)).is_ok());
        // thread 1 (the latest) writes: conflicts with thread 0's read
        let f = c.access(now(1, 1, 1, WRITE)).err().map(|f| rec_tid(f.rec));
        assert_eq!(f, Some(0));
    }

    #[test]
    fn shared_warp_sync_orders_lanes() {
        let mut s = RaceState::new(64, 16);
        s.begin_block(0);
        assert!(s.shared(0, 1, 0, 4, WRITE).is_ok());
        let e = s.shared(1, 2, 0, 4, READ).unwrap_err();
        assert_eq!(e.hazard, Hazard::ReadAfterWrite);
        assert_eq!(e.other_thread, 0);
        let mut s = RaceState::new(64, 16);
        s.begin_block(0);
        assert!(s.shared(0, 1, 0, 4, WRITE).is_ok());
        s.warp_sync(0, 0x3);
        assert!(s.shared(1, 2, 0, 4, READ).is_ok());
        // lane 2 took no part in the synchronisation
        assert!(s.shared(2, 2, 0, 4, READ).is_err());
        // a thread of another warp is ordered only by a barrier
        assert!(s.shared(40, 2, 0, 4, READ).is_err());
        s.barrier();
        assert!(s.shared(40, 2, 0, 4, WRITE).is_ok());
    }

    #[test]
    fn shared_concurrent_reads_then_a_write() {
        let mut s = RaceState::new(64, 4);
        s.begin_block(0);
        for t in [40, 0, 1] {
            assert!(s.shared(t, 1, 0, 4, READ).is_ok());
        }
        s.warp_sync(0, u32::MAX);
        // lanes 0 and 1 are ordered before lane 5 now, thread 40 is not
        let e = s.shared(5, 3, 0, 4, WRITE).unwrap_err();
        assert_eq!(e.hazard, Hazard::WriteAfterRead);
        assert_eq!(e.other_thread, 40);
    }
}
