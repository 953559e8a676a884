//! A sectored, fully associative cache with LRU replacement over 128-byte lines of four
//! 32-byte sectors: the organisation of NVIDIA's L1 and L2 (a miss fetches only the missing
//! sectors). Fully associative because the caches modelled are slices of a large, highly
//! associative L2 (or an L1 shared by a few blocks): a set-associative slice of a few dozen sets
//! would turn the power-of-two strides of image rows into conflict misses the real cache does
//! not have.

use std::collections::HashMap;

/// Bytes per line.
pub const LINE: u64 = 128;
/// Bytes per sector.
pub const SECTOR: u64 = 32;

/// What one access did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sectors that were present.
    pub hit_sectors: u32,
    /// Sectors that were not (fetched from the next level for a read).
    pub miss_sectors: u32,
    /// Dirty sectors written back to the next level by an eviction this access caused.
    pub writeback_sectors: u32,
    /// The missing sectors as a mask.
    pub miss_mask: u8,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    line: u64,
    valid: u8,
    dirty: u8,
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

/// The cache.
#[derive(Clone, Debug)]
pub struct Cache {
    capacity: usize,
    map: HashMap<u64, u32>,
    entries: Vec<Entry>,
    // Most recently used first.
    head: u32,
    tail: u32,
}

impl Cache {
    /// A cache of `bytes` bytes (at least one line).
    pub fn new(bytes: u64) -> Cache {
        let capacity = (bytes / LINE).max(1) as usize;
        Cache {
            capacity,
            map: HashMap::with_capacity(capacity.min(1 << 20)),
            entries: Vec::with_capacity(capacity.min(1 << 20)),
            head: NIL,
            tail: NIL,
        }
    }

    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.capacity as u64 * LINE
    }

    fn unlink(&mut self, i: u32) {
        let Entry { prev, next, .. } = self.entries[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.entries[i as usize].prev = NIL;
        self.entries[i as usize].next = self.head;
        if self.head != NIL {
            self.entries[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Accesses `sectors` (a 4-bit mask) of `line`. A read fills the missing sectors; a write
    /// marks them valid and dirty (write-back, write-allocate, no fetch: the sectors are
    /// written whole); `allocate: false` (a write-through level) only updates a present line.
    pub fn access(&mut self, line: u64, sectors: u8, write: bool, allocate: bool) -> Outcome {
        let mut out = Outcome::default();
        let i = match self.map.get(&line) {
            Some(&i) => {
                self.unlink(i);
                i
            }
            None => {
                if !allocate {
                    out.miss_sectors = sectors.count_ones();
                    out.miss_mask = sectors;
                    return out;
                }
                let fresh = Entry {
                    line,
                    valid: 0,
                    dirty: 0,
                    prev: NIL,
                    next: NIL,
                };
                if self.entries.len() < self.capacity {
                    self.entries.push(fresh);
                    (self.entries.len() - 1) as u32
                } else {
                    let victim = self.tail;
                    self.unlink(victim);
                    let old = self.entries[victim as usize];
                    out.writeback_sectors = old.dirty.count_ones();
                    self.map.remove(&old.line);
                    self.entries[victim as usize] = fresh;
                    victim
                }
            }
        };
        self.map.insert(line, i);
        self.push_front(i);
        let e = &mut self.entries[i as usize];
        let present = e.valid & sectors;
        out.hit_sectors = present.count_ones();
        out.miss_sectors = (sectors & !present).count_ones();
        out.miss_mask = sectors & !present;
        e.valid |= sectors;
        if write {
            e.dirty |= sectors;
        }
        out
    }

    /// Writes every dirty sector back; returns how many there were.
    pub fn flush(&mut self) -> u64 {
        let mut n = 0;
        for e in &mut self.entries {
            n += u64::from(e.dirty.count_ones());
            e.dirty = 0;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_read_hits_and_lru_evicts_the_oldest() {
        let mut c = Cache::new(2 * LINE); // two lines
        assert_eq!(c.access(1, 0b1111, false, true).miss_sectors, 4);
        assert_eq!(c.access(1, 0b0011, false, true).hit_sectors, 2);
        c.access(2, 0b0001, false, true);
        c.access(1, 0b0001, false, true); // 1 is now the most recent
        c.access(3, 0b0001, false, true); // evicts 2
        assert_eq!(c.access(1, 0b0001, false, true).hit_sectors, 1);
        assert_eq!(c.access(2, 0b0001, false, true).miss_sectors, 1);
    }

    #[test]
    fn dirty_sectors_are_written_back_once() {
        let mut c = Cache::new(LINE);
        c.access(5, 0b0110, true, true);
        let o = c.access(6, 0b0001, false, true);
        assert_eq!(o.writeback_sectors, 2);
        c.access(6, 0b1000, true, true);
        assert_eq!(c.flush(), 1);
        assert_eq!(c.flush(), 0);
    }
}
