//! Vector clocks over streams: what has to finish before an operation may start.
//!
//! Every stream numbers its operations 1, 2, 3, ... An operation's clock maps each stream to
//! the number of its last operation that must finish first: the operation itself on its own
//! stream, and on other streams whatever event waits, the legacy default stream's implicit
//! synchronisation, or the host having waited for it, made it depend on. Operation A (stream
//! `s`, number `a`) happens before operation B when `B.clock[s] >= a`; two operations on
//! different streams where neither happens before the other are concurrent.

/// A vector clock: stream id -> operation number, sorted by stream id, zero entries left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clock {
    entries: Vec<(u64, u64)>,
}

impl Clock {
    /// The clock that orders nothing.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// The number of the last operation of `stream` this clock covers (0: none).
    pub fn get(&self, stream: u64) -> u64 {
        match self.entries.binary_search_by_key(&stream, |e| e.0) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Raises the entry of `stream` to at least `seq`.
    pub fn raise(&mut self, stream: u64, seq: u64) {
        if seq == 0 {
            return;
        }
        match self.entries.binary_search_by_key(&stream, |e| e.0) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.max(seq),
            Err(i) => self.entries.insert(i, (stream, seq)),
        }
    }

    /// Raises every entry to at least `other`'s.
    pub fn join(&mut self, other: &Clock) {
        for &(s, n) in &other.entries {
            self.raise(s, n);
        }
    }

    /// Whether this clock covers operation `seq` of `stream`.
    pub fn covers(&self, stream: u64, seq: u64) -> bool {
        self.get(stream) >= seq
    }

    /// (stream, number) pairs.
    pub fn entries(&self) -> &[(u64, u64)] {
        &self.entries
    }

    /// Forgets `stream` (destroyed, and everything it held finished).
    pub fn forget(&mut self, stream: u64) {
        self.entries.retain(|e| e.0 != stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_takes_the_maximum_per_stream() {
        let mut a = Clock::new();
        a.raise(3, 5);
        a.raise(1, 2);
        let mut b = Clock::new();
        b.raise(1, 7);
        b.raise(2, 1);
        a.join(&b);
        assert_eq!(a.entries(), &[(1, 7), (2, 1), (3, 5)]);
        assert!(a.covers(3, 5) && !a.covers(3, 6) && a.covers(9, 0) && !a.covers(9, 1));
        a.forget(2);
        assert_eq!(a.get(2), 0);
    }
}
