//! The scheduler: which thread of a block runs next, and for how long.
//!
//! The interpreter runs one thread at a time. [`Schedule::RunToBlock`] lets each thread run
//! until it blocks (a barrier, a warp collective, its exit), taking threads round-robin in a
//! fixed order (ascending, descending or a seeded shuffle, drawn afresh for every block). A
//! thread that runs [`RUN_TO_BLOCK_SLICE`] instructions without blocking is switched out all
//! the same: since Volta every thread of a block makes progress on its own, so a thread that
//! spins on a flag another thread of its block will set must not starve that thread.
//! [`Schedule::Preemptive`] switches threads after a pseudo-random number of instructions
//! from 1 to `quantum`, choosing the next one pseudo-randomly among those that can run, so that the instructions of different
//! threads (also lanes of one warp, which since Volta may interleave arbitrarily) interleave
//! at fine grain.
//!
//! Both schedules are deterministic: the same launch, options and seed run the same way. The
//! random stream of a block depends only on the seed and the block's index, so running a
//! subset of the blocks reproduces each block's interleaving exactly.

use crate::{Schedule, ThreadOrder};

/// The splitmix64 generator: small, fast, good enough to pick threads.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Shuffles `v` in place (Fisher-Yates) with the stream of `seed`.
pub(crate) fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = SplitMix::new(seed);
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The most instructions a thread runs without blocking under [`Schedule::RunToBlock`]
/// before the next thread in order gets a turn.
pub(crate) const RUN_TO_BLOCK_SLICE: u64 = 10_000;

/// A seed for block `block` derived from the launch's `seed`.
fn block_seed(seed: u64, block: u64) -> u64 {
    let mut m = SplitMix::new(seed ^ block.wrapping_mul(0xd1b5_4a32_d192_ed03));
    m.next_u64()
}

enum Mode {
    RunToBlock {
        order: ThreadOrder,
        threads: Vec<u32>,
        cursor: usize,
    },
    Preemptive {
        quantum: u64,
        seed: u64,
        rng: SplitMix,
        /// Threads that can run, in no particular order.
        ready: Vec<u32>,
        /// Index in `ready` of the thread picked last.
        picked: usize,
    },
}

/// Chooses the next thread of a block to run.
pub(crate) struct Scheduler {
    mode: Mode,
}

impl Scheduler {
    pub fn new(schedule: Schedule) -> Scheduler {
        let mode = match schedule {
            Schedule::RunToBlock(order) => Mode::RunToBlock {
                order,
                threads: Vec::new(),
                cursor: 0,
            },
            Schedule::Preemptive { quantum, seed } => Mode::Preemptive {
                quantum: quantum.max(1) as u64,
                seed,
                rng: SplitMix::new(seed),
                ready: Vec::new(),
                picked: 0,
            },
        };
        Scheduler { mode }
    }

    /// A block of `nthreads` threads, all ready, starts.
    pub fn begin_block(&mut self, block: u64, nthreads: usize) {
        match &mut self.mode {
            Mode::RunToBlock {
                order,
                threads,
                cursor,
            } => {
                threads.clear();
                threads.extend(0..nthreads as u32);
                match *order {
                    ThreadOrder::Ascending => {}
                    ThreadOrder::Descending => threads.reverse(),
                    ThreadOrder::Shuffled(seed) => shuffle(threads, block_seed(seed, block)),
                }
                *cursor = 0;
            }
            Mode::Preemptive {
                seed, rng, ready, ..
            } => {
                *rng = SplitMix::new(block_seed(*seed, block));
                ready.clear();
                ready.extend(0..nthreads as u32);
            }
        }
    }

    /// The next thread to run and the most instructions it may run before it is switched
    /// out, or `None` when no thread can run. `is_ready(t)` tells whether thread `t` can run.
    #[inline]
    pub fn pick(&mut self, is_ready: impl Fn(usize) -> bool) -> Option<(usize, u64)> {
        match &mut self.mode {
            Mode::RunToBlock {
                threads, cursor, ..
            } => {
                let start = (*cursor).min(threads.len());
                let (after, before) = (&threads[start..], &threads[..start]);
                let found = after
                    .iter()
                    .position(|&t| is_ready(t as usize))
                    .map(|k| start + k)
                    .or_else(|| before.iter().position(|&t| is_ready(t as usize)));
                found.map(|i| {
                    *cursor = i;
                    (threads[i] as usize, RUN_TO_BLOCK_SLICE)
                })
            }
            Mode::Preemptive {
                quantum,
                rng,
                ready,
                picked,
                ..
            } => {
                if ready.is_empty() {
                    return None;
                }
                // one draw: the thread from the high half, the length of its turn from the
                // low half (a random share of the quantum: with a fixed one, threads that
                // started together would be switched at the same instructions forever)
                let r = rng.next_u64();
                *picked = (((r >> 32) * ready.len() as u64) >> 32) as usize;
                let run = 1 + (((r & 0xffff_ffff) * *quantum) >> 32);
                Some((ready[*picked] as usize, run))
            }
        }
    }

    /// The thread last picked has stopped (blocked or exited): it cannot run until
    /// [`Scheduler::wake`].
    #[inline]
    pub fn stopped(&mut self) {
        if let Mode::Preemptive { ready, picked, .. } = &mut self.mode {
            if *picked < ready.len() {
                ready.swap_remove(*picked);
            }
        }
    }

    /// The thread last picked used up its quantum and can still run.
    #[inline]
    pub fn yielded(&mut self) {
        if let Mode::RunToBlock {
            threads, cursor, ..
        } = &mut self.mode
        {
            *cursor = (*cursor + 1) % threads.len().max(1);
        }
    }

    /// Thread `t` can run again (a warp collective completed, a barrier released).
    #[inline]
    pub fn wake(&mut self, t: usize) {
        if let Mode::Preemptive { ready, .. } = &mut self.mode {
            ready.push(t as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_order(schedule: Schedule, n: usize, block: u64) -> Vec<usize> {
        let mut s = Scheduler::new(schedule);
        s.begin_block(block, n);
        let mut done = vec![false; n];
        let mut out = Vec::new();
        while let Some((t, _)) = s.pick(|t| !done[t]) {
            out.push(t);
            done[t] = true;
            s.stopped();
        }
        out
    }

    #[test]
    fn orders_are_permutations() {
        let asc = run_order(Schedule::RunToBlock(ThreadOrder::Ascending), 40, 0);
        assert_eq!(asc, (0..40).collect::<Vec<_>>());
        let desc = run_order(Schedule::RunToBlock(ThreadOrder::Descending), 40, 0);
        assert_eq!(desc, (0..40).rev().collect::<Vec<_>>());
        for sched in [
            Schedule::RunToBlock(ThreadOrder::Shuffled(7)),
            Schedule::Preemptive {
                quantum: 3,
                seed: 7,
            },
        ] {
            let mut s = run_order(sched, 40, 5);
            assert_ne!(s, asc, "{sched:?}");
            assert_eq!(s, run_order(sched, 40, 5), "deterministic");
            assert_ne!(s, run_order(sched, 40, 6), "differs by block");
            s.sort_unstable();
            assert_eq!(s, asc);
        }
    }
}
