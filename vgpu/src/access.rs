//! Which device bytes an operation reads, writes and updates atomically, and whether two
//! operations conflict: one writes (or updates atomically) bytes the other reads or writes.
//! Two atomic updates of the same bytes do not conflict, nor do two reads.

/// Half-open byte ranges `[start, end)`. Inserting in address order is O(1) (the common case:
/// a kernel's threads walk their buffers); [`RangeSet::normalize`] sorts and merges the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
    sorted: bool,
}

/// Ranges kept before a [`RangeSet`] merges what it has (bounds memory on scattered access).
const MERGE_EVERY: usize = 1 << 14;

impl RangeSet {
    /// An empty set.
    pub fn new() -> RangeSet {
        RangeSet {
            ranges: Vec::new(),
            sorted: true,
        }
    }

    /// Adds `[start, end)`.
    #[inline]
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            if start <= last.1 && end >= last.0 {
                last.0 = last.0.min(start);
                last.1 = last.1.max(end);
                return;
            }
            if start < last.0 {
                self.sorted = false;
            }
        }
        self.ranges.push((start, end));
        if self.ranges.len() >= MERGE_EVERY && self.ranges.len().is_power_of_two() {
            self.normalize();
        }
    }

    /// Sorts and merges overlapping or adjacent ranges.
    pub fn normalize(&mut self) {
        if !self.sorted {
            self.ranges.sort_unstable();
            self.sorted = true;
        }
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(s, e) in &self.ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges (sorted and disjoint after [`RangeSet::normalize`]).
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The first bytes both sets hold, if any. Both must be normalized.
    pub fn overlap(&self, other: &RangeSet) -> Option<(u64, u64)> {
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = (self.ranges[i], other.ranges[j]);
            let start = a.0.max(b.0);
            let end = a.1.min(b.1);
            if start < end {
                return Some((start, end));
            }
            if a.1 <= b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        None
    }

    /// Keeps only the bytes inside `[start, end)`.
    pub fn clip(&mut self, start: u64, end: u64) {
        self.ranges.retain_mut(|r| {
            r.0 = r.0.max(start);
            r.1 = r.1.min(end);
            r.0 < r.1
        });
    }
}

/// How an operation touches device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    Atomic,
}

impl Kind {
    fn verb(self) -> &'static str {
        match self {
            Kind::Read => "reads",
            Kind::Write => "writes",
            Kind::Atomic => "updates atomically",
        }
    }
}

/// The bytes an operation reads, writes and updates atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSet {
    pub reads: RangeSet,
    pub writes: RangeSet,
    pub atomics: RangeSet,
}

/// Two operations touching the same bytes, at least one of them writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// What the first operation does to the bytes.
    pub first: Kind,
    /// What the second operation does to them.
    pub second: Kind,
    /// The first conflicting bytes.
    pub range: (u64, u64),
}

impl Conflict {
    /// "writes ... that the other reads", for a report.
    pub fn describe(&self, first: &str, second: &str) -> String {
        format!(
            "{first} {} bytes 0x{:x}..0x{:x} that {second} {}",
            self.first.verb(),
            self.range.0,
            self.range.1,
            self.second.verb()
        )
    }
}

impl AccessSet {
    /// An empty set.
    pub fn new() -> AccessSet {
        AccessSet {
            reads: RangeSet::new(),
            writes: RangeSet::new(),
            atomics: RangeSet::new(),
        }
    }

    /// Records an access of `len` bytes at `addr`.
    #[inline]
    pub fn add(&mut self, kind: Kind, addr: u64, len: u64) {
        let end = addr.saturating_add(len);
        match kind {
            Kind::Read => self.reads.insert(addr, end),
            Kind::Write => self.writes.insert(addr, end),
            Kind::Atomic => self.atomics.insert(addr, end),
        }
    }

    /// Sorts and merges every range set.
    pub fn normalize(&mut self) {
        self.reads.normalize();
        self.writes.normalize();
        self.atomics.normalize();
    }

    /// Whether nothing is touched.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty() && self.atomics.is_empty()
    }

    /// The first conflict between `self` (the earlier operation) and `later`, if any. Both must
    /// be normalized.
    pub fn conflict(&self, later: &AccessSet) -> Option<Conflict> {
        use Kind::{Atomic, Read, Write};
        let pairs = [
            (Write, &self.writes, Write, &later.writes),
            (Write, &self.writes, Read, &later.reads),
            (Write, &self.writes, Atomic, &later.atomics),
            (Read, &self.reads, Write, &later.writes),
            (Read, &self.reads, Atomic, &later.atomics),
            (Atomic, &self.atomics, Write, &later.writes),
            (Atomic, &self.atomics, Read, &later.reads),
        ];
        pairs.into_iter().find_map(|(first, a, second, b)| {
            a.overlap(b).map(|range| Conflict {
                first,
                second,
                range,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        for &(a, b) in ranges {
            s.insert(a, b);
        }
        s.normalize();
        s
    }

    #[test]
    fn inserts_merge_and_sort() {
        let s = set(&[(10, 20), (20, 30), (0, 5), (4, 8), (40, 50), (45, 46)]);
        assert_eq!(s.ranges(), &[(0, 8), (10, 30), (40, 50)]);
        let mut big = RangeSet::new();
        for i in (0..100_000u64).rev() {
            big.insert(i * 8, i * 8 + 4);
        }
        big.normalize();
        assert_eq!(big.ranges().len(), 100_000);
        assert_eq!(big.ranges()[0], (0, 4));
    }

    #[test]
    fn overlap_finds_the_first_shared_bytes() {
        let a = set(&[(0, 10), (20, 30), (100, 200)]);
        assert_eq!(a.overlap(&set(&[(10, 20), (29, 40)])), Some((29, 30)));
        assert_eq!(a.overlap(&set(&[(10, 20), (30, 100)])), None);
        let mut c = set(&[(0, 10), (20, 30)]);
        c.clip(5, 25);
        assert_eq!(c.ranges(), &[(5, 10), (20, 25)]);
    }

    #[test]
    fn conflicts_need_a_write() {
        let mut reader = AccessSet::new();
        reader.add(Kind::Read, 100, 8);
        let mut other_reader = AccessSet::new();
        other_reader.add(Kind::Read, 100, 8);
        let mut writer = AccessSet::new();
        writer.add(Kind::Write, 104, 8);
        let mut atomic = AccessSet::new();
        atomic.add(Kind::Atomic, 100, 4);
        let mut atomic2 = AccessSet::new();
        atomic2.add(Kind::Atomic, 100, 4);
        for s in [
            &mut reader,
            &mut other_reader,
            &mut writer,
            &mut atomic,
            &mut atomic2,
        ] {
            s.normalize();
        }
        assert_eq!(reader.conflict(&other_reader), None);
        assert_eq!(atomic.conflict(&atomic2), None);
        let c = reader.conflict(&writer).unwrap();
        assert_eq!(
            (c.first, c.second, c.range),
            (Kind::Read, Kind::Write, (104, 108))
        );
        assert!(writer.conflict(&reader).is_some());
        assert!(atomic.conflict(&reader).is_some());
        assert_eq!(
            reader.conflict(&writer).unwrap().describe("A", "B"),
            "A reads bytes 0x68..0x6c that B writes"
        );
    }
}
