//! Schedules: thread orders, preemption, determinism, and that barriers, warp collectives and
//! the observer's events mean the same under every schedule.

use std::collections::BTreeMap;

use ptxsim::trace::{Access, Issue, Observer};
use ptxsim::{
    BlockOrder, LaunchConfig, LaunchOptions, Memory, Module, NoObserver, ParamValue, Schedule,
    SimError, ThreadOrder,
};

const SCHEDULES: [Schedule; 6] = [
    Schedule::RunToBlock(ThreadOrder::Ascending),
    Schedule::RunToBlock(ThreadOrder::Descending),
    Schedule::RunToBlock(ThreadOrder::Shuffled(1)),
    Schedule::Preemptive {
        quantum: 1,
        seed: 1,
    },
    Schedule::Preemptive {
        quantum: 5,
        seed: 2,
    },
    Schedule::Preemptive {
        quantum: 64,
        seed: 3,
    },
];

/// `out[block * ntid + t] = sum of in[] over the block`: per-warp `shfl.sync.down`
/// reductions, warp sums through shared memory and a barrier, a vote, and the block total
/// broadcast through shared memory after a second barrier. Needs a multiple of 32 threads.
const BLOCK_SUM: &str = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry block_sum(.param .u64 p_in, .param .u64 p_out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<24>;
    .reg .b64 %rd<8>;
    .shared .align 4 .b8 warp_sums[128];
    .shared .align 4 .b8 total[4];
    ld.param.u64 %rd1, [p_in];
    ld.param.u64 %rd2, [p_out];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r5, [%rd4];
    shfl.sync.down.b32 %r6, %r5, 16, 31, -1;
    add.s32 %r5, %r5, %r6;
    shfl.sync.down.b32 %r6, %r5, 8, 31, -1;
    add.s32 %r5, %r5, %r6;
    shfl.sync.down.b32 %r6, %r5, 4, 31, -1;
    add.s32 %r5, %r5, %r6;
    shfl.sync.down.b32 %r6, %r5, 2, 31, -1;
    add.s32 %r5, %r5, %r6;
    shfl.sync.down.b32 %r6, %r5, 1, 31, -1;
    add.s32 %r5, %r5, %r6;
    and.b32 %r7, %r1, 31;
    shr.u32 %r8, %r1, 5;
    setp.eq.u32 %p1, %r7, 0;
    vote.sync.ballot.b32 %r19, %p1, -1;
    add.s32 %r5, %r5, %r19;
    sub.s32 %r5, %r5, 1;
    mov.u32 %r9, warp_sums;
    shl.b32 %r10, %r8, 2;
    add.s32 %r11, %r9, %r10;
    @%p1 st.shared.u32 [%r11], %r5;
    bar.sync 0;
    setp.ne.u32 %p2, %r1, 0;
    @%p2 bra $WAIT;
    shr.u32 %r12, %r3, 5;
    mov.u32 %r13, 0;
    mov.u32 %r14, 0;
$SUM:
    shl.b32 %r15, %r14, 2;
    add.s32 %r16, %r9, %r15;
    ld.shared.u32 %r17, [%r16];
    add.s32 %r13, %r13, %r17;
    add.s32 %r14, %r14, 1;
    setp.lt.u32 %p2, %r14, %r12;
    @%p2 bra $SUM;
    st.shared.u32 [total], %r13;
$WAIT:
    bar.sync 0;
    ld.shared.u32 %r18, [total];
    add.s64 %rd5, %rd2, %rd3;
    st.global.u32 [%rd5], %r18;
    ret;
}
"#;

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: 0,
        block_order: BlockOrder::Forward,
    }
}

/// Records every event.
#[derive(Default, Debug)]
struct Recorder {
    issues: Vec<Issue>,
    accesses: Vec<Access>,
    barriers: Vec<(u64, u32)>,
}

impl Observer for Recorder {
    fn issue(&mut self, e: &Issue) {
        self.issues.push(*e);
    }
    fn access(&mut self, e: &Access) {
        self.accesses.push(*e);
    }
    fn barrier(&mut self, block: u64, pc: u32) {
        self.barriers.push((block, pc));
    }
}

fn input(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 2_654_435_761) >> 12).collect()
}

/// Runs `block_sum` over `grid` blocks of `block` threads; returns the output and events.
fn block_sum(
    grid: u32,
    block: u32,
    options: &LaunchOptions,
) -> Result<(Vec<u32>, Recorder), SimError> {
    let m = Module::parse(BLOCK_SUM)?;
    let n = (grid * block) as usize;
    let data = input(n);
    let mut mem = Memory::new();
    let i = mem.alloc(4 * n);
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    mem.write(i, &bytes)?;
    let o = mem.alloc(4 * n);
    mem.write(o, &vec![0xa5; 4 * n])?;
    let mut rec = Recorder::default();
    m.launch_with(
        "block_sum",
        &cfg(grid, block),
        &[ParamValue::U64(i), ParamValue::U64(o)],
        &mut mem,
        options,
        &mut rec,
    )?;
    let out = mem
        .read(o, 4 * n)?
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Ok((out, rec))
}

fn with(schedule: Schedule) -> LaunchOptions {
    LaunchOptions {
        schedule,
        ..LaunchOptions::default()
    }
}

/// Issues per (thread, pc), number of accesses, barrier releases (sorted).
type EventSummary = (BTreeMap<(u32, u32), usize>, usize, Vec<(u64, u32)>);

/// Collectives and barriers give the same results under every schedule, and the observer
/// sees the same events (in a different order): the same issues per thread and pc, the same
/// accesses, the same barrier releases.
#[test]
fn every_schedule_computes_the_same_and_reports_the_same_events() {
    let (grid, block) = (3u32, 96u32);
    let data = input((grid * block) as usize);
    let mut reference: Option<EventSummary> = None;
    for s in SCHEDULES {
        let (out, rec) = block_sum(grid, block, &with(s)).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        for b in 0..grid as usize {
            let want = data[b * block as usize..(b + 1) * block as usize]
                .iter()
                .fold(0u32, |a, &x| a.wrapping_add(x));
            for t in 0..block as usize {
                assert_eq!(
                    out[b * block as usize + t],
                    want,
                    "{s:?} block {b} thread {t}"
                );
            }
        }
        let mut per: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        for i in &rec.issues {
            *per.entry((i.thread + 1000 * i.block as u32, i.pc))
                .or_default() += 1;
        }
        let mut barriers = rec.barriers.clone();
        barriers.sort_unstable();
        let summary = (per, rec.accesses.len(), barriers);
        match &reference {
            None => reference = Some(summary),
            Some(r) => assert!(*r == summary, "{s:?}: events differ"),
        }
    }
}

/// The order a thread order gives: the threads' first issues.
fn first_issues(rec: &Recorder, block: u64) -> Vec<u32> {
    let mut seen = Vec::new();
    for i in rec.issues.iter().filter(|i| i.block == block && i.pc == 0) {
        seen.push(i.thread);
    }
    seen
}

#[test]
fn thread_orders_and_preemption() {
    let asc = block_sum(2, 64, &with(SCHEDULES[0])).unwrap().1;
    assert_eq!(first_issues(&asc, 0), (0..64).collect::<Vec<_>>());
    let desc = block_sum(2, 64, &with(SCHEDULES[1])).unwrap().1;
    assert_eq!(first_issues(&desc, 0), (0..64).rev().collect::<Vec<_>>());
    let shuf = block_sum(2, 64, &with(SCHEDULES[2])).unwrap().1;
    let (s0, s1) = (first_issues(&shuf, 0), first_issues(&shuf, 1));
    assert_ne!(s0, (0..64).collect::<Vec<_>>());
    assert_ne!(s0, s1, "every block draws its own order");
    let mut sorted = s0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..64).collect::<Vec<_>>());
    // run-to-block: a thread issues until it blocks at the first shuffle
    let runs = |rec: &Recorder| {
        rec.issues
            .windows(2)
            .filter(|w| w[0].thread != w[1].thread)
            .count()
    };
    let pre = block_sum(2, 64, &with(SCHEDULES[3])).unwrap().1;
    assert!(
        2 * runs(&pre) > pre.issues.len() && 4 * runs(&asc) < asc.issues.len(),
        "quantum 1 switches threads at most instructions, run-to-block at collectives only: \
         {} vs {} switches in {} issues",
        runs(&pre),
        runs(&asc),
        pre.issues.len()
    );
    // deterministic, and each block's interleaving is its own: running block 1 alone
    // reproduces it
    let again = block_sum(2, 64, &with(SCHEDULES[3])).unwrap().1;
    assert_eq!(pre.issues, again.issues);
    let only1 = LaunchOptions {
        blocks: Some(vec![1]),
        ..with(SCHEDULES[3])
    };
    let alone = block_sum(2, 64, &only1).unwrap().1;
    let in_full: Vec<Issue> = pre
        .issues
        .iter()
        .filter(|i| i.block == 1)
        .copied()
        .collect();
    assert_eq!(alone.issues, in_full);
}

#[test]
fn a_zero_quantum_is_refused() {
    let o = with(Schedule::Preemptive {
        quantum: 0,
        seed: 0,
    });
    let e = block_sum(1, 32, &o).unwrap_err();
    assert!(matches!(e, SimError::Launch { .. }), "{e}");
    assert!(e.to_string().contains("quantum"), "{e}");
}

/// Lanes of one warp interleave under a preemptive schedule (independent thread scheduling):
/// a lane may run ahead of its warp between collectives.
#[test]
fn preemption_interleaves_lanes_of_a_warp() {
    let pre = block_sum(1, 32, &with(SCHEDULES[3])).unwrap().1;
    // by the time lane 0 has issued 5 instructions, many lanes have had turns
    let fifth = pre
        .issues
        .iter()
        .enumerate()
        .filter(|(_, i)| i.thread == 0)
        .nth(4)
        .map(|(k, _)| k)
        .unwrap();
    let before: std::collections::BTreeSet<u32> =
        pre.issues[..fifth].iter().map(|i| i.thread).collect();
    assert!(before.len() > 8, "lanes took turns: {before:?}");
    // and the race detector costs nothing in events
    let off = LaunchOptions {
        race_check: false,
        ..with(SCHEDULES[3])
    };
    let unchecked = block_sum(1, 32, &off).unwrap().1;
    assert_eq!(pre.issues, unchecked.issues);
    assert_eq!(pre.accesses, unchecked.accesses);
}

/// A kernel whose threads spin on a flag that thread 0 of their block sets: under
/// run-to-block, a spinning thread yields after a slice, so thread 0 gets its turn even when
/// it comes last in the order.
#[test]
fn run_to_block_does_not_starve_a_thread() {
    let src = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry flag(.param .u64 p_out)
{
    .reg .pred %p<3>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b8 box[4];
    ld.param.u64 %rd1, [p_out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    setp.eq.u32 %p1, %r1, 0;
    @%p1 st.shared.u32 [box], 0;
    bar.sync 0;
    @%p1 atom.shared.exch.b32 %r2, [box], 42;
$SPIN:
    atom.shared.add.u32 %r3, [box], 0;
    setp.eq.u32 %p2, %r3, 0;
    @%p2 bra $SPIN;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r3;
    ret;
}
"#;
    let m = Module::parse(src).unwrap();
    for s in SCHEDULES {
        let mut mem = Memory::new();
        let o = mem.alloc(4 * 64);
        m.launch_with(
            "flag",
            &cfg(1, 64),
            &[ParamValue::U64(o)],
            &mut mem,
            &with(s),
            &mut NoObserver,
        )
        .unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let out = mem.read(o, 4 * 64).unwrap();
        assert!(
            out.chunks(4)
                .all(|c| u32::from_le_bytes(c.try_into().unwrap()) == 42),
            "{s:?}"
        );
    }
}
