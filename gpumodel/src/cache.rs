//! A sectored, set-associative cache with LRU replacement over 128-byte lines of four 32-byte
//! sectors: the organisation of NVIDIA's L1 and L2 (a miss fetches only the missing sectors).

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

/// The cache.
#[derive(Clone, Debug)]
pub struct Cache {
    sets: u64,
    ways: usize,
    tags: Vec<u64>,
    stamps: Vec<u64>,
    valid: Vec<u8>,
    dirty: Vec<u8>,
    clock: u64,
}

const EMPTY: u64 = u64::MAX;

impl Cache {
    /// A cache of about `bytes` bytes (at least one set) with `ways` ways.
    pub fn new(bytes: u64, ways: usize) -> Cache {
        let ways = ways.max(1);
        let sets = (bytes / LINE / ways as u64).max(1);
        let n = sets as usize * ways;
        Cache {
            sets,
            ways,
            tags: vec![EMPTY; n],
            stamps: vec![0; n],
            valid: vec![0; n],
            dirty: vec![0; n],
            clock: 0,
        }
    }

    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.sets * self.ways as u64 * LINE
    }

    fn set_of(&self, line: u64) -> usize {
        // Hash the line address so that power-of-two strides spread over the sets.
        let h = line ^ (line >> 11) ^ (line >> 23);
        (h % self.sets) as usize * self.ways
    }

    /// Accesses `sectors` (a 4-bit mask) of `line`. A read fills the missing sectors; a write
    /// marks them valid and dirty (write-back, write-allocate, no fetch: the sectors are
    /// written whole); `allocate: false` (a write-through level) only updates a present line.
    pub fn access(&mut self, line: u64, sectors: u8, write: bool, allocate: bool) -> Outcome {
        self.clock += 1;
        let base = self.set_of(line);
        let mut out = Outcome::default();
        let slot = (base..base + self.ways).find(|&i| self.tags[i] == line);
        let i = match slot {
            Some(i) => i,
            None => {
                if !allocate {
                    out.miss_sectors = sectors.count_ones();
                    out.miss_mask = sectors;
                    return out;
                }
                let victim = (base..base + self.ways)
                    .min_by_key(|&i| {
                        if self.tags[i] == EMPTY {
                            0
                        } else {
                            self.stamps[i]
                        }
                    })
                    .unwrap_or(base);
                out.writeback_sectors = self.dirty[victim].count_ones();
                self.tags[victim] = line;
                self.valid[victim] = 0;
                self.dirty[victim] = 0;
                victim
            }
        };
        self.stamps[i] = self.clock;
        let present = self.valid[i] & sectors;
        out.hit_sectors = present.count_ones();
        out.miss_sectors = (sectors & !present).count_ones();
        out.miss_mask = sectors & !present;
        self.valid[i] |= sectors;
        if write {
            self.dirty[i] |= sectors;
        }
        out
    }

    /// Writes every dirty sector back; returns how many there were.
    pub fn flush(&mut self) -> u64 {
        let n = self.dirty.iter().map(|d| u64::from(d.count_ones())).sum();
        self.dirty.fill(0);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_read_hits_and_lru_evicts_the_oldest() {
        let mut c = Cache::new(2 * LINE, 2); // one set of two ways
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
        let mut c = Cache::new(LINE, 1);
        c.access(5, 0b0110, true, true);
        let o = c.access(6, 0b0001, false, true);
        assert_eq!(o.writeback_sectors, 2);
        c.access(6, 0b1000, true, true);
        assert_eq!(c.flush(), 1);
        assert_eq!(c.flush(), 0);
    }
}
