//! Warp collectives: shfl.sync in all modes, vote.sync, activemask, bar.warp.sync.
mod common;
use common::*;
use ptxsim::{
    LaunchOptions, Memory, Module, NoObserver, ParamValue, Schedule, SimError, ThreadOrder,
};

fn per_lane(body: &str, threads: u32) -> Vec<u32> {
    let full = format!(
        "mov.u32 %r1, %tid.x;\nmul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd0, %rd2;\n{body}"
    );
    u32s(&run(&full, threads, &[]))
}

#[test]
fn shfl_modes_with_clamp_and_predicate() {
    let g = per_lane(
        r#"
    mov.u32 %r2, %laneid;
    shfl.sync.down.b32 %r3|%p1, %r2, 1, 31, -1;
    selp.u32 %r4, 1000, 0, %p1;
    add.s32 %r3, %r3, %r4;
    st.global.u32 [%rd3], %r3;
    shfl.sync.up.b32 %r5|%p2, %r2, 2, 0, -1;
    selp.u32 %r4, 1000, 0, %p2;
    add.s32 %r5, %r5, %r4;
    st.global.u32 [%rd3+256], %r5;
    shfl.sync.bfly.b32 %r6, %r2, 1, 31, -1;
    st.global.u32 [%rd3+512], %r6;
    shfl.sync.idx.b32 %r7, %r2, 5, 31, -1;
    st.global.u32 [%rd3+768], %r7;
    shfl.sync.idx.b32 %r8, %r2, 3, 0x181f, -1;
    st.global.u32 [%rd3+1024], %r8;
    shfl.sync.down.b32 %r9|%p3, %r2, 2, 0x181f, -1;
    selp.u32 %r4, 1000, 0, %p3;
    add.s32 %r9, %r9, %r4;
    st.global.u32 [%rd3+1280], %r9;
    "#,
        64,
    );
    for t in 0..64usize {
        let lane = (t % 32) as u32;
        let down = if lane < 31 { lane + 1 + 1000 } else { lane };
        assert_eq!(g[t], down, "down lane {t}");
        let up = if lane >= 2 { lane - 2 + 1000 } else { lane };
        assert_eq!(g[64 + t], up, "up lane {t}");
        assert_eq!(g[128 + t], lane ^ 1, "bfly");
        assert_eq!(g[192 + t], 5, "idx");
        assert_eq!(g[256 + t], lane / 8 * 8 + 3, "idx in segments of 8");
        let seg_down = if lane % 8 < 6 { lane + 2 + 1000 } else { lane };
        assert_eq!(g[320 + t], seg_down, "down within segments of 8");
    }
}

#[test]
fn warp_sum_reduction_via_shfl_down() {
    let g = per_lane(
        r#"
    cvt.rn.f32.u32 %f1, %r1;
    mov.b32 %r2, %f1;
    shfl.sync.down.b32 %r3, %r2, 16, 31, -1;  mov.b32 %f2, %r3;  add.f32 %f1, %f1, %f2;  mov.b32 %r2, %f1;
    shfl.sync.down.b32 %r3, %r2, 8, 31, -1;   mov.b32 %f2, %r3;  add.f32 %f1, %f1, %f2;  mov.b32 %r2, %f1;
    shfl.sync.down.b32 %r3, %r2, 4, 31, -1;   mov.b32 %f2, %r3;  add.f32 %f1, %f1, %f2;  mov.b32 %r2, %f1;
    shfl.sync.down.b32 %r3, %r2, 2, 31, -1;   mov.b32 %f2, %r3;  add.f32 %f1, %f1, %f2;  mov.b32 %r2, %f1;
    shfl.sync.down.b32 %r3, %r2, 1, 31, -1;   mov.b32 %f2, %r3;  add.f32 %f1, %f1, %f2;
    st.global.f32 [%rd3], %f1;
    "#,
        96,
    );
    for w in 0..3 {
        let want: u32 = (w * 32..w * 32 + 32).sum();
        assert_eq!(f32::from_bits(g[(w * 32) as usize]), want as f32);
    }
}

#[test]
fn vote_activemask_and_partial_masks() {
    let g = per_lane(
        r#"
    and.b32 %r2, %r1, 1;
    setp.eq.u32 %p1, %r2, 1;
    vote.sync.ballot.b32 %r3, %p1, -1;
    st.global.u32 [%rd3], %r3;
    vote.sync.any.pred %p2, %p1, -1;
    vote.sync.all.pred %p3, %p1, -1;
    selp.u32 %r4, 1, 0, %p2;
    selp.u32 %r5, 2, 0, %p3;
    add.s32 %r4, %r4, %r5;
    st.global.u32 [%rd3+128], %r4;
    activemask.b32 %r6;
    st.global.u32 [%rd3+256], %r6;
    bar.warp.sync -1;
    "#,
        32,
    );
    assert!(g[..32].iter().all(|&x| x == 0xaaaa_aaaa));
    assert!(g[32..64].iter().all(|&x| x == 1));
    assert!(g[64..96].iter().all(|&x| x == 0xffff_ffff));
}

#[test]
fn shfl_subset_of_lanes() {
    // only the even lanes take part, with mask 0x55555555
    let g = per_lane(
        r#"
    and.b32 %r2, %r1, 1;
    setp.ne.u32 %p1, %r2, 0;
    @%p1 bra $SKIP;
    shfl.sync.bfly.b32 %r3, %r1, 2, 31, 0x55555555;
    st.global.u32 [%rd3], %r3;
$SKIP:
    "#,
        32,
    );
    for l in (0..32).step_by(2) {
        assert_eq!(g[l], (l ^ 2) as u32);
    }
}

fn fault_of(body: &str, threads: u32, schedule: Schedule) -> SimError {
    let m = Module::parse(&kernel(body)).unwrap();
    let mut mem = Memory::new();
    let out = mem.alloc(4096);
    let o = LaunchOptions {
        schedule,
        ..LaunchOptions::default()
    };
    match m.launch_with(
        "k",
        &cfg(1, threads),
        &[ParamValue::U64(out), ParamValue::U64(out)],
        &mut mem,
        &o,
        &mut NoObserver,
    ) {
        Ok(_) => panic!("expected an error under {schedule:?}"),
        Err(e) => e,
    }
}

const ORDERS: [Schedule; 3] = [
    Schedule::RunToBlock(ThreadOrder::Ascending),
    Schedule::RunToBlock(ThreadOrder::Descending),
    Schedule::Preemptive {
        quantum: 2,
        seed: 9,
    },
];

/// A full member mask in a partial warp names lanes that do not exist: undefined on
/// hardware, a fault here.
#[test]
fn member_mask_naming_lanes_beyond_the_block() {
    for s in ORDERS {
        let e = fault_of("shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;", 48, s);
        let m = e.to_string();
        assert!(matches!(e, SimError::Fault { .. }), "{m}");
        assert!(m.contains("names lanes 16,17"), "{s:?}: {m}");
        assert!(
            m.contains("do not exist (the block has 48 threads)"),
            "{s:?}: {m}"
        );
    }
    // the mask of the lanes that exist is fine
    let g = per_lane(
        r#"
    mov.u32 %r2, %laneid;
    mov.u32 %r4, %warpid;
    setp.eq.u32 %p1, %r4, 1;
    selp.u32 %r5, 0xffff, -1, %p1;
    shfl.sync.bfly.b32 %r3, %r2, 1, 31, %r5;
    st.global.u32 [%rd3], %r3;
    "#,
        48,
    );
    for (t, &v) in g.iter().enumerate().take(48) {
        assert_eq!(v, (t as u32 % 32) ^ 1);
    }
}

/// A member mask naming a lane that exited, whether it exited before or after the others
/// arrived.
#[test]
fn member_mask_naming_exited_lanes() {
    let body = r#"
    mov.u32 %r1, %tid.x;
    setp.eq.u32 %p1, %r1, 5;
    @%p1 bra $OUT;
    bar.warp.sync -1;
$OUT:
    "#;
    for s in ORDERS {
        let e = fault_of(body, 32, s);
        let m = e.to_string();
        assert!(m.contains("lane 5") || m.contains("lanes 5"), "{s:?}: {m}");
        assert!(m.contains("exited"), "{s:?}: {m}");
        assert!(m.contains("bar.warp.sync"), "{s:?}: {m}");
    }
}

#[test]
fn shuffle_index_outside_member_mask() {
    let e = fault_of(
        r#"
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 4;
    @%p1 bra $OUT;
    shfl.sync.idx.b32 %r2, %r1, 5, 31, 0xf;
$OUT:
    "#,
        32,
        ORDERS[0],
    );
    let m = e.to_string();
    assert!(m.contains("reads lane 5"), "{m}");
    assert!(m.contains("0x0000000f does not include it"), "{m}");
}

/// Lanes may meet at different `shfl.sync` instructions with the same mode and mask (the
/// ISA's condition), each supplying its own operands; different operations are a fault.
#[test]
fn collectives_match_by_operation_not_instruction() {
    let g = per_lane(
        r#"
    mov.u32 %r2, %laneid;
    and.b32 %r4, %r2, 1;
    setp.eq.u32 %p1, %r4, 0;
    @%p1 bra $EVEN;
    add.s32 %r5, %r2, 100;
    shfl.sync.bfly.b32 %r3, %r5, 1, 31, -1;
    bra.uni $DONE;
$EVEN:
    add.s32 %r5, %r2, 200;
    shfl.sync.bfly.b32 %r3, %r5, 1, 31, -1;
$DONE:
    st.global.u32 [%rd3], %r3;
    "#,
        32,
    );
    for l in 0..32u32 {
        let src = l ^ 1;
        let want = src + if src % 2 == 0 { 200 } else { 100 };
        assert_eq!(g[l as usize], want, "lane {l}");
    }
    for s in ORDERS {
        let e = fault_of(
            r#"
    mov.u32 %r2, %laneid;
    setp.lt.u32 %p1, %r2, 16;
    @%p1 bra $LOW;
    vote.sync.any.pred %p2, %p1, -1;
    bra.uni $DONE;
$LOW:
    shfl.sync.bfly.b32 %r3, %r2, 1, 31, -1;
$DONE:
    "#,
            32,
            s,
        );
        assert!(
            e.to_string().contains("wait at different warp collectives"),
            "{s:?}: {e}"
        );
    }
}

/// `barrier.sync` without `.aligned` may be reached at different instructions; `bar.sync`
/// (aligned) may not.
#[test]
fn unaligned_barrier_at_different_instructions() {
    let body = |bar: &str| {
        format!(
            r#"
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 40;
    @%p1 bra $A;
    {bar} 0;
    bra.uni $DONE;
$A:
    {bar} 0;
$DONE:
    "#
        )
    };
    for s in ORDERS {
        let m = Module::parse(&kernel(&body("barrier.sync"))).unwrap();
        let mut mem = Memory::new();
        let out = mem.alloc(16);
        let o = LaunchOptions {
            schedule: s,
            ..LaunchOptions::default()
        };
        m.launch_with(
            "k",
            &cfg(1, 64),
            &[ParamValue::U64(out), ParamValue::U64(out)],
            &mut mem,
            &o,
            &mut NoObserver,
        )
        .unwrap();
        let e = fault_of(&body("bar.sync"), 64, s);
        assert!(e.to_string().contains("divergent barrier"), "{s:?}: {e}");
    }
}
