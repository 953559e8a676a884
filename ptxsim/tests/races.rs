//! The race detector on hand-written PTX: every hazard class in shared and global memory,
//! found whichever order the threads run in; barriers, warp synchronisation and atomics
//! ordering (or not) what they should; sub-word accesses kept apart byte by byte.

use ptxsim::trace::MemSpace;
use ptxsim::{
    BlockOrder, Hazard, LaunchConfig, LaunchOptions, Memory, Module, NoObserver, ParamValue,
    Schedule, SimError, ThreadOrder,
};

/// Schedules every check runs under.
const SCHEDULES: [Schedule; 5] = [
    Schedule::RunToBlock(ThreadOrder::Ascending),
    Schedule::RunToBlock(ThreadOrder::Descending),
    Schedule::RunToBlock(ThreadOrder::Shuffled(3)),
    Schedule::Preemptive {
        quantum: 1,
        seed: 5,
    },
    Schedule::Preemptive {
        quantum: 4,
        seed: 6,
    },
];

/// A kernel `k(.param .u64 k_out, .param .u64 k_inp)` with 1 KiB of shared memory `sm`.
/// Before `body`: `%r1` = tid.x, `%r9` = lane, `%r2` = 4 * tid.x, `%r3` = address of `sm`,
/// `%r4` = `sm + 4 * tid.x`, `%rd0` = out, `%rd1` = inp (global), `%rd2` = out + 4 * tid.x.
fn kernel(body: &str) -> String {
    format!(
        r#".version 9.0
.target sm_80
.address_size 64

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
{{
    .reg .pred %p<8>;
    .reg .b16 %h<8>;
    .reg .b32 %r<32>;
    .reg .b64 %rd<16>;
    .shared .align 16 .b8 sm[1024];

    ld.param.u64 %rd0, [k_out];
    ld.param.u64 %rd1, [k_inp];
    cvta.to.global.u64 %rd0, %rd0;
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    and.b32 %r9, %r1, 31;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, sm;
    add.s32 %r4, %r3, %r2;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd2, %rd0, %rd3;
{body}
    ret;
}}
"#
    )
}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: 0,
        block_order: BlockOrder::Forward,
    }
}

/// Runs `body` over `grid` x `block` threads under `schedule`; the output buffer (4 KiB) is
/// returned on success.
fn run(
    body: &str,
    grid: u32,
    block: u32,
    schedule: Schedule,
    race_check: bool,
) -> Result<Vec<u8>, SimError> {
    let m = Module::parse(&kernel(body)).unwrap();
    let mut mem = Memory::new();
    let out = mem.alloc(4096);
    let inp = mem.alloc(4096);
    let data: Vec<u8> = (0..1024u32)
        .flat_map(|i| (i * 7 + 1).to_le_bytes())
        .collect();
    mem.write(inp, &data).unwrap();
    let o = LaunchOptions {
        schedule,
        race_check,
        ..LaunchOptions::default()
    };
    m.launch_with(
        "k",
        &cfg(grid, block),
        &[ParamValue::U64(out), ParamValue::U64(inp)],
        &mut mem,
        &o,
        &mut NoObserver,
    )?;
    mem.read(out, 4096)
}

/// The race of `e`: (space, hazard, thread x of the access, thread x of the earlier one,
/// their blocks' x).
fn race(e: &SimError) -> (MemSpace, Hazard, u32, u32, u32, u32) {
    match e {
        SimError::Race {
            space,
            hazard,
            access,
            earlier,
            ..
        } => (
            *space,
            *hazard,
            access.thread[0],
            earlier.thread[0],
            access.block[0],
            earlier.block[0],
        ),
        _ => panic!("expected a race, got {e}"),
    }
}

fn passes(body: &str, grid: u32, block: u32) {
    for s in SCHEDULES {
        if let Err(e) = run(body, grid, block, s, true) {
            panic!("{s:?}: {e}");
        }
    }
}

/// Thread 0 stores `sm[0]`; thread 33 (another warp) loads it; nothing orders them.
const STORE_THEN_LOAD: &str = r#"
    setp.eq.u32 %p1, %r1, 0;
    @%p1 st.shared.u32 [sm], 5;
    setp.eq.u32 %p2, %r1, 33;
    @%p2 ld.shared.u32 %r5, [sm];
"#;

#[test]
fn shared_read_after_write_and_write_after_read_by_schedule() {
    for s in SCHEDULES {
        let e = run(STORE_THEN_LOAD, 1, 64, s, true).unwrap_err();
        let (space, hazard, a, b, _, _) = race(&e);
        assert_eq!(space, MemSpace::Shared, "{e}");
        let pair = (a.min(b), a.max(b));
        assert_eq!(pair, (0, 33), "{s:?}: {e}");
        // which class depends on which thread ran first, as with racecheck
        let want = if a == 33 {
            Hazard::ReadAfterWrite
        } else {
            Hazard::WriteAfterRead
        };
        assert_eq!(hazard, want, "{s:?}: {e}");
        if s == Schedule::RunToBlock(ThreadOrder::Ascending) {
            assert_eq!(hazard, Hazard::ReadAfterWrite);
            let msg = e.to_string();
            assert!(
                msg.contains("read-after-write hazard at shared memory offset 0x0"),
                "{msg}"
            );
            assert!(
                msg.contains("load by thread (33,0,0) of block (0,0,0)"),
                "{msg}"
            );
            assert!(msg.contains("`@%p2 ld.shared.u32 %r5, [sm];`"), "{msg}");
            assert!(msg.contains("earlier store by thread (0,0,0)"), "{msg}");
            assert!(msg.contains("`@%p1 st.shared.u32 [sm], 5;`"), "{msg}");
        }
        if s == Schedule::RunToBlock(ThreadOrder::Descending) {
            assert_eq!(hazard, Hazard::WriteAfterRead, "{e}");
        }
    }
    // ordered by a barrier: no race in either direction
    passes(
        r#"
    setp.eq.u32 %p1, %r1, 0;
    @%p1 st.shared.u32 [sm], 5;
    bar.sync 0;
    setp.eq.u32 %p2, %r1, 33;
    @%p2 ld.shared.u32 %r5, [sm];
    bar.sync 0;
    @%p1 st.shared.u32 [sm], 6;
    "#,
        1,
        64,
    );
}

#[test]
fn shared_write_after_write() {
    let body = r#"
    setp.eq.u32 %p1, %r1, 0;
    setp.eq.u32 %p2, %r1, 40;
    or.pred %p3, %p1, %p2;
    @%p3 st.shared.u16 [sm+2], %r1;
"#;
    for s in SCHEDULES {
        let e = run(body, 1, 64, s, true).unwrap_err();
        let (_, hazard, a, b, _, _) = race(&e);
        assert_eq!(hazard, Hazard::WriteAfterWrite, "{s:?}: {e}");
        assert_eq!((a.min(b), a.max(b)), (0, 40), "{s:?}: {e}");
        assert!(e.to_string().contains("offset 0x2"), "{e}");
    }
}

#[test]
fn shared_atomics_mix_only_with_atomics() {
    // every thread adds atomically: fine; the sum is read after a barrier
    let ok = r#"
    setp.eq.u32 %p1, %r1, 0;
    @%p1 st.shared.u32 [sm], 0;
    bar.sync 0;
    atom.shared.add.u32 %r5, [sm], 1;
    bar.sync 0;
    ld.shared.u32 %r6, [sm];
    st.global.u32 [%rd2], %r6;
"#;
    for s in SCHEDULES {
        let out = run(ok, 1, 96, s, true).unwrap();
        assert_eq!(
            u32::from_le_bytes(out[..4].try_into().unwrap()),
            96,
            "{s:?}"
        );
    }
    // a plain load while others still add
    let bad = r#"
    setp.eq.u32 %p1, %r1, 0;
    @%p1 st.shared.u32 [sm], 0;
    bar.sync 0;
    atom.shared.add.u32 %r5, [sm], 1;
    setp.eq.u32 %p2, %r1, 50;
    @%p2 ld.shared.u32 %r6, [sm];
"#;
    for s in SCHEDULES {
        let e = run(bad, 1, 96, s, true).unwrap_err();
        let (_, hazard, a, b, _, _) = race(&e);
        assert_eq!(hazard, Hazard::PlainAndAtomic, "{s:?}: {e}");
        assert!(a == 50 || b == 50, "{s:?}: {e}");
        assert_ne!(a, b);
    }
}

/// `bar.warp.sync` with a partial mask orders the lanes it names, and only those.
#[test]
fn partial_warp_sync_orders_its_lanes_only() {
    let synced = r#"
    setp.eq.u32 %p1, %r9, 0;
    @%p1 st.shared.u32 [sm], 5;
    setp.lt.u32 %p2, %r9, 4;
    @!%p2 bra $AFTER;
    bar.warp.sync 15;
$AFTER:
    setp.eq.u32 %p3, %r9, 1;
    @%p3 ld.shared.u32 %r5, [sm];
    @%p3 st.global.u32 [%rd2], %r5;
"#;
    passes(synced, 1, 32);
    let outside = synced.replace("setp.eq.u32 %p3, %r9, 1;", "setp.eq.u32 %p3, %r9, 4;");
    for s in SCHEDULES {
        let e = run(&outside, 1, 32, s, true).unwrap_err();
        let (_, _, a, b, _, _) = race(&e);
        assert_eq!((a.min(b), a.max(b)), (0, 4), "{s:?}: {e}");
    }
}

/// Shuffles and votes synchronise the lanes of their mask, like `__syncwarp`.
#[test]
fn shuffles_and_votes_synchronise_lanes() {
    for collective in [
        "shfl.sync.bfly.b32 %r5, %r1, 1, 31, -1;",
        "vote.sync.ballot.b32 %r5, %p1, -1;",
    ] {
        let body = format!(
            r#"
    setp.eq.u32 %p1, %r9, 0;
    st.shared.u32 [%r4], %r1;
    {collective}
    xor.b32 %r6, %r2, 4;
    add.s32 %r6, %r3, %r6;
    ld.shared.u32 %r7, [%r6];
    st.global.u32 [%rd2], %r7;
"#
        );
        for s in SCHEDULES {
            let out = run(&body, 1, 64, s, true).unwrap();
            for t in 0..64u32 {
                let v = u32::from_le_bytes(out[4 * t as usize..][..4].try_into().unwrap());
                assert_eq!(v, t ^ 1, "{collective} {s:?} thread {t}");
            }
        }
        let unsynced = body.replace(collective, "");
        assert!(run(&unsynced, 1, 64, SCHEDULES[0], true).is_err());
    }
}

#[test]
fn global_writes_of_different_blocks_are_never_ordered() {
    // thread 0 of every block stores out[0]
    let body = r#"
    setp.eq.u32 %p1, %r1, 0;
    @%p1 st.global.u32 [%rd0], %r1;
"#;
    for s in SCHEDULES {
        let e = run(body, 3, 32, s, true).unwrap_err();
        let (space, hazard, a, b, ba, bb) = race(&e);
        assert_eq!(space, MemSpace::Global, "{e}");
        assert_eq!(hazard, Hazard::WriteAfterWrite, "{e}");
        assert_eq!((a, b, ba, bb), (0, 0, 1, 0), "{s:?}: {e}");
        assert!(
            e.to_string()
                .contains("threads of different blocks are never ordered"),
            "{e}"
        );
    }
    assert!(run(body, 3, 32, SCHEDULES[0], false).is_ok(), "check off");
}

#[test]
fn global_accesses_ordered_by_a_barrier_or_read_only() {
    // every thread of every block reads inp[0]; a block's threads exchange through out
    passes(
        r#"
    ld.global.u32 %r5, [%rd1];
    mov.u32 %r6, %ctaid.x;
    setp.eq.u32 %p1, %r6, 0;
    @%p1 st.global.u32 [%rd2], %r5;
    bar.sync 0;
    add.s32 %r7, %r1, 1;
    and.b32 %r7, %r7, 63;
    mul.wide.u32 %rd4, %r7, 4;
    add.s64 %rd5, %rd0, %rd4;
    @%p1 ld.global.u32 %r8, [%rd5];
    bar.sync 0;
    @%p1 st.global.u32 [%rd5], %r8;
"#,
        4,
        64,
    );
    // without the first barrier the exchange is a race within the block
    let e = run(
        r#"
    st.global.u32 [%rd2], %r1;
    add.s32 %r7, %r1, 1;
    and.b32 %r7, %r7, 63;
    mul.wide.u32 %rd4, %r7, 4;
    add.s64 %rd5, %rd0, %rd4;
    ld.global.u32 %r8, [%rd5];
"#,
        1,
        64,
        SCHEDULES[0],
        true,
    )
    .unwrap_err();
    // thread 0 loads out[1] before thread 1 stores it
    let (_, hazard, a, b, _, _) = race(&e);
    assert_eq!(hazard, Hazard::WriteAfterRead, "{e}");
    assert_eq!((a, b), (1, 0), "{e}");
}

#[test]
fn global_atomics_and_strong_loads_across_blocks() {
    // atomics from every block, and volatile or relaxed loads of the same word, are fine
    passes(
        r#"
    atom.global.add.u32 %r5, [%rd0], 1;
    ld.volatile.global.u32 %r6, [%rd0];
    ld.relaxed.gpu.global.u32 %r7, [%rd0];
    red.global.add.u32 [%rd0+4], %r6;
"#,
        3,
        32,
    );
    // a plain load of the counter is not
    for s in SCHEDULES {
        let e = run(
            r#"
    atom.global.add.u32 %r5, [%rd0], 1;
    mov.u32 %r6, %ctaid.x;
    setp.eq.u32 %p1, %r6, 1;
    setp.eq.u32 %p2, %r1, 3;
    and.pred %p3, %p1, %p2;
    @%p3 ld.global.u32 %r7, [%rd0];
"#,
            2,
            32,
            s,
            true,
        )
        .unwrap_err();
        let (space, hazard, a, _, ba, _) = race(&e);
        assert_eq!(space, MemSpace::Global);
        assert_eq!(hazard, Hazard::PlainAndAtomic, "{s:?}: {e}");
        assert_eq!((a, ba), (3, 1), "{s:?}: {e}");
    }
}

/// A plain load that only seeds a compare-and-swap is not a race (the idiom of CUDA's own
/// atomics); a plain load used for something else is.
#[test]
fn a_load_seeding_a_compare_and_swap_is_not_a_race() {
    let cas = r#"
    ld.global.u32 %r5, [%rd0];
$RETRY:
    add.s32 %r6, %r5, 1;
    atom.global.cas.b32 %r7, [%rd0], %r5, %r6;
    setp.ne.u32 %p1, %r7, %r5;
    mov.u32 %r5, %r7;
    @%p1 bra $RETRY;
"#;
    for s in SCHEDULES {
        let out = run(cas, 2, 64, s, true).unwrap();
        assert_eq!(
            u32::from_le_bytes(out[..4].try_into().unwrap()),
            128,
            "{s:?}"
        );
    }
    // a plain load of the counter while other threads still swap it is a race
    let other =
        format!("{cas}\n    ld.global.u32 %r8, [%rd0];\n    st.global.u32 [%rd2+256], %r8;");
    for s in SCHEDULES {
        let e = run(&other, 2, 64, s, true).unwrap_err();
        assert_eq!(race(&e).1, Hazard::PlainAndAtomic, "{s:?}: {e}");
    }
}

/// Sub-word accesses: neighbouring 16-bit and 8-bit elements written by different threads
/// are separate bytes; the same element is a race; a 32-bit load over two halves written by
/// other threads races with both.
#[test]
fn sub_word_accesses_are_kept_byte_by_byte() {
    passes(
        r#"
    mul.wide.u32 %rd4, %r1, 2;
    add.s64 %rd5, %rd0, %rd4;
    cvt.u16.u32 %h1, %r1;
    st.global.u16 [%rd5], %h1;
    cvt.u64.u32 %rd6, %r1;
    add.s64 %rd7, %rd0, %rd6;
    st.global.u8 [%rd7+512], %h1;
    ld.global.u16 %h2, [%rd5];
    st.global.u16 [%rd5], %h2;
"#,
        1,
        64,
    );
    for s in SCHEDULES {
        let e = run(
            r#"
    shr.u32 %r5, %r1, 1;
    mul.wide.u32 %rd4, %r5, 2;
    add.s64 %rd5, %rd0, %rd4;
    cvt.u16.u32 %h1, %r1;
    st.global.u16 [%rd5], %h1;
"#,
            1,
            64,
            s,
            true,
        )
        .unwrap_err();
        let (_, hazard, a, b, _, _) = race(&e);
        assert_eq!(hazard, Hazard::WriteAfterWrite, "{s:?}: {e}");
        assert_eq!(a / 2, b / 2, "{s:?}: {e}");
    }
    // halves written by threads 0 and 1, the word read by thread 2
    let e = run(
        r#"
    setp.lt.u32 %p1, %r1, 2;
    mul.wide.u32 %rd4, %r1, 2;
    add.s64 %rd5, %rd0, %rd4;
    cvt.u16.u32 %h1, %r1;
    @%p1 st.global.u16 [%rd5], %h1;
    setp.eq.u32 %p2, %r1, 2;
    @%p2 ld.global.u32 %r6, [%rd0];
"#,
        1,
        32,
        SCHEDULES[0],
        true,
    )
    .unwrap_err();
    let (_, hazard, a, b, _, _) = race(&e);
    assert_eq!((hazard, a, b), (Hazard::ReadAfterWrite, 2, 0), "{e}");
}

#[test]
fn the_detector_can_be_turned_off() {
    // the writer runs first: the race goes unnoticed without the detector
    let asc = Schedule::RunToBlock(ThreadOrder::Ascending);
    assert!(run(STORE_THEN_LOAD, 1, 64, asc, false).is_ok());
    assert!(run(STORE_THEN_LOAD, 1, 64, asc, true).is_err());
}
