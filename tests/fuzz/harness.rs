//! The case loop: a seed (printed, replayable), one generator per case derived from it, a
//! panic caught and reported with the case that caused it, a watchdog for hangs, and a count of
//! the calls made to each entry point.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

/// Calls per entry point that CI must reach (issue #10).
pub const MIN_CALLS_PER_ENTRY_POINT: u64 = 10_000;

/// A case that runs this long is a hang: every case here is small work or an early rejection,
/// so even the slowest (a valid GPU case on the virtual GPU) takes well under a second.
const HANG: Duration = Duration::from_secs(120);

/// One case: what it called (printed if it fails) and the calls it made per entry point.
#[derive(Default)]
pub struct Case {
    trace: Vec<String>,
    calls: BTreeMap<&'static str, u64>,
    /// Calls that succeeded, per entry point (the rest returned an error).
    ok: BTreeMap<&'static str, u64>,
    /// Print each call as it is made (`ADAPTIVE_POOL_FUZZ_TRACE=1`): for a case that takes the
    /// process down (an abort) rather than panicking.
    verbose: bool,
}

impl Case {
    /// Records a call to `entry` with a description of its arguments.
    pub fn call(&mut self, entry: &'static str, args: impl FnOnce() -> String) {
        *self.calls.entry(entry).or_default() += 1;
        if self.trace.len() < 64 || self.verbose {
            let line = format!("{entry}({})", args());
            if self.verbose {
                eprintln!("    {line}");
            }
            if self.trace.len() < 64 {
                self.trace.push(line);
            }
        }
    }

    /// Records that the last call to `entry` succeeded (`ok`) or returned an error.
    pub fn outcome<T, E>(&mut self, entry: &'static str, result: &Result<T, E>) {
        if result.is_ok() {
            *self.ok.entry(entry).or_default() += 1;
        }
    }
}

/// What a fuzz run did.
pub struct Report {
    pub calls: BTreeMap<&'static str, u64>,
    pub ok: BTreeMap<&'static str, u64>,
    pub cases: u64,
    pub elapsed: Duration,
}

impl Report {
    /// Prints the counts and fails unless each entry point listed was called at least
    /// [`MIN_CALLS_PER_ENTRY_POINT`] times (unless the run was shortened on purpose with
    /// `ADAPTIVE_POOL_FUZZ_CASES` or `ADAPTIVE_POOL_FUZZ_CASE`).
    pub fn check(&self, name: &str, entry_points: &[&'static str]) {
        println!(
            "fuzz {name}: {} cases in {:.2} s",
            self.cases,
            self.elapsed.as_secs_f64()
        );
        for (entry, n) in &self.calls {
            match self.ok.get(entry) {
                Some(ok) => println!(
                    "  {entry:<44} {n:>8} calls: {ok:>6} results, {:>6} errors",
                    n - ok
                ),
                None => println!("  {entry:<44} {n:>8} calls"),
            }
        }
        if shortened() {
            return;
        }
        for entry in entry_points {
            let n = self.calls.get(entry).copied().unwrap_or(0);
            assert!(
                n >= MIN_CALLS_PER_ENTRY_POINT,
                "fuzz {name}: {entry} was called {n} times, fewer than {MIN_CALLS_PER_ENTRY_POINT}"
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn shortened() -> bool {
    env_u64("ADAPTIVE_POOL_FUZZ_CASES").is_some() || env_u64("ADAPTIVE_POOL_FUZZ_CASE").is_some()
}

/// The generator of case `index` under `seed`: each case can be replayed alone.
fn case_rng(seed: u64, index: u64) -> StdRng {
    // splitmix64 of the index, so neighbouring cases get unrelated streams.
    let mut z = index.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    StdRng::seed_from_u64(seed ^ z ^ (z >> 31))
}

/// Runs `cases` cases of `one` (`ADAPTIVE_POOL_FUZZ_CASES` overrides the count,
/// `ADAPTIVE_POOL_FUZZ_CASE` runs a single case, `ADAPTIVE_POOL_TEST_SEED` fixes the seed). A
/// panic, from the crate or from a check, is reported with the seed, the case index and the
/// calls the case made, then re-raised. `ADAPTIVE_POOL_FUZZ_TRACE=1` prints every case and call
/// as it starts, for failures that abort the process.
pub fn fuzz(name: &str, cases: u64, mut one: impl FnMut(&mut StdRng, &mut Case)) -> Report {
    let seed = env_u64("ADAPTIVE_POOL_TEST_SEED").unwrap_or_else(rand::random::<u64>);
    println!("fuzz {name}: seed {seed} (replay with ADAPTIVE_POOL_TEST_SEED={seed})");
    let range = match env_u64("ADAPTIVE_POOL_FUZZ_CASE") {
        Some(i) => i..i + 1,
        None => 0..env_u64("ADAPTIVE_POOL_FUZZ_CASES").unwrap_or(cases),
    };
    let current = Arc::new(Mutex::new((0u64, Instant::now())));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (current, done, name) = (current.clone(), done.clone(), name.to_string());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let (index, since) = *current.lock().unwrap_or_else(|e| e.into_inner());
                if since.elapsed() > HANG && !done.load(Ordering::Relaxed) {
                    eprintln!(
                        "fuzz {name}: case {index} has run for {:?}: a hang (replay with \
                         ADAPTIVE_POOL_TEST_SEED={seed} ADAPTIVE_POOL_FUZZ_CASE={index})",
                        since.elapsed()
                    );
                    std::process::exit(1);
                }
            }
        })
    };
    let verbose = std::env::var("ADAPTIVE_POOL_FUZZ_TRACE").is_ok_and(|v| v == "1");
    let start = Instant::now();
    let mut calls: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut ok: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut count = 0;
    for index in range {
        *current.lock().unwrap_or_else(|e| e.into_inner()) = (index, Instant::now());
        let mut rng = case_rng(seed, index);
        let mut case = Case {
            verbose,
            ..Case::default()
        };
        if verbose {
            eprintln!("fuzz {name}: case {index}");
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| one(&mut rng, &mut case)));
        if let Err(panic) = outcome {
            done.store(true, Ordering::Relaxed);
            eprintln!(
                "fuzz {name}: case {index} failed (replay with ADAPTIVE_POOL_TEST_SEED={seed} \
                 ADAPTIVE_POOL_FUZZ_CASE={index}); its calls:"
            );
            for line in &case.trace {
                eprintln!("  {line}");
            }
            resume_unwind(panic);
        }
        for (entry, n) in case.calls {
            *calls.entry(entry).or_default() += n;
        }
        for (entry, n) in case.ok {
            *ok.entry(entry).or_default() += n;
        }
        count += 1;
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    Report {
        calls,
        ok,
        cases: count,
        elapsed: start.elapsed(),
    }
}
