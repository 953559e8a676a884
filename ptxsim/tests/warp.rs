//! Warp collectives: shfl.sync in all modes, vote.sync, activemask, bar.warp.sync.
mod common;
use common::*;

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
