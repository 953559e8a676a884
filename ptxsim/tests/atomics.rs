//! Atomics and reductions from many threads.
mod common;
use common::*;

#[test]
fn f32_add_from_1024_threads() {
    let body = r#"
    atom.global.add.f32 %f1, [%rd0], 0f3F800000;
    red.global.add.f32 [%rd0+4], 0f3F000000;
    red.relaxed.gpu.global.add.f32 [%rd0+8], 0f3F800000;
    "#;
    let (out, _) = try_run(body, &cfg(4, 256), &[]).unwrap();
    let g = u32s(&out);
    assert_eq!(f32::from_bits(g[0]), 1024.0);
    assert_eq!(f32::from_bits(g[1]), 512.0);
    assert_eq!(f32::from_bits(g[2]), 1024.0);
}

#[test]
fn integer_atomics_return_old_values() {
    let body = r#"
    atom.global.add.u32 %r1, [%rd0+4000], 1;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd0, %rd2;
    st.global.u32 [%rd3], 1;              // every ticket is unique
    mov.u32 %r2, %tid.x;
    atom.global.max.s32 %r3, [%rd0+2048], %r2;
    atom.global.min.u32 %r3, [%rd0+2052], %r2;
    atom.global.inc.u32 %r3, [%rd0+2056], 9;
    atom.global.dec.u32 %r3, [%rd0+2060], 5;
    atom.global.or.b32 %r3, [%rd0+2064], %r2;
    atom.global.xor.b32 %r3, [%rd0+2068], 1;
    atom.global.add.u64 %rd4, [%rd0+2072], 3;
    atom.global.exch.b32 %r3, [%rd0+2080], 77;
    atom.acq_rel.gpu.global.and.b32 %r3, [%rd0+2084], -1;
    atom.global.add.s32 %r3, [%rd0+2088], -2;
    "#;
    let (out, _) = try_run(body, &cfg(1, 256), &[]).unwrap();
    let g = u32s(&out);
    assert!(g[..256].iter().all(|&x| x == 1));
    assert_eq!(g[1000], 256);
    assert_eq!(g[512], 255, "max");
    assert_eq!(g[513], 0, "min");
    assert_eq!(g[514], 256 % 10, "inc wraps at 9 -> 0");
    // dec: 0 -> 5, then 4,3,2,1,0,5,...; 256 decrements from 0
    let mut v = 0u32;
    for _ in 0..256 {
        v = if v == 0 || v > 5 { 5 } else { v - 1 };
    }
    assert_eq!(g[515], v, "dec");
    assert_eq!(g[516], 255, "or");
    assert_eq!(g[517], 0, "xor 256 times");
    assert_eq!(u64s(&out)[259], 768);
    assert_eq!(g[520], 77);
    assert_eq!(g[521], 0);
    assert_eq!(g[522], (-512i32) as u32);
}

#[test]
fn cas_loop_increment() {
    let body = r#"
    ld.global.u32 %r1, [%rd0];
$RETRY:
    add.s32 %r2, %r1, 1;
    atom.global.cas.b32 %r3, [%rd0], %r1, %r2;
    setp.ne.s32 %p1, %r3, %r1;
    mov.u32 %r1, %r3;
    @%p1 bra $RETRY;
    // 64-bit and 16-bit compare-and-swap
    atom.global.cas.b64 %rd2, [%rd0+8], 0, 5;
    mov.b16 %h1, 0;
    mov.b16 %h2, 7;
    atom.global.cas.b16 %h3, [%rd0+16], %h1, %h2;
    "#;
    let (out, _) = try_run(body, &cfg(4, 64), &[]).unwrap();
    assert_eq!(u32s(&out)[0], 256);
    assert_eq!(u64s(&out)[1], 5);
    assert_eq!(u16s(&out)[8], 7);
}

#[test]
fn half_atomics_and_f64() {
    let body = r#"
    mov.b16 %h1, 0x3C00;
    red.global.add.noftz.f16 [%rd0], %h1;
    atom.global.add.noftz.f16 %h2, [%rd0+2], %h1;
    atom.global.add.f64 %fd1, [%rd0+8], 0d3FE0000000000000;
    mov.b16 %h3, 0x3F80;
    red.global.add.noftz.bf16 [%rd0+16], %h3;
    "#;
    let out = {
        let src = kernel_for("sm_90", body);
        try_run_src(&src, &cfg(4, 256), &[]).unwrap().0
    };
    let h = u16s(&out);
    assert_eq!(h[0], 0x6400, "1024.0 in f16");
    assert_eq!(h[1], 0x6400);
    assert_eq!(f64::from_le_bytes(out[8..16].try_into().unwrap()), 512.0);
    // bf16 has 8 significant bits: 1.0 added 1024 times saturates at 256
    assert_eq!(h[8], 0x4380);
}

/// Packed f16x2 / bf16x2 adds: each half is added on its own, and a -0 half leaves its
/// neighbour as it was.
#[test]
fn packed_half_atomics() {
    let body = r#"
    mov.b32 %r1, 0x38003C00;
    red.global.add.noftz.f16x2 [%rd0], %r1;
    mov.b32 %r2, 0x80003F80;
    red.global.add.noftz.bf16x2 [%rd0+4], %r2;
    mov.b32 %r3, 0x3C008000;
    atom.global.add.noftz.f16x2 %r4, [%rd0+8], %r3;
    "#;
    let out = {
        let src = kernel_for("sm_90", body);
        try_run_src(&src, &cfg(4, 256), &[]).unwrap().0
    };
    let h = u16s(&out);
    assert_eq!(h[0], 0x6400, "1.0 x 1024 = 1024.0 in f16");
    assert_eq!(h[1], 0x6000, "0.5 x 1024 = 512.0 in f16");
    // bf16 has 8 significant bits: 1.0 added 1024 times saturates at 256
    assert_eq!(h[2], 0x4380);
    assert_eq!(h[3], 0x0000, "+0 plus -0 stays +0");
    assert_eq!(h[4], 0x0000);
    assert_eq!(h[5], 0x6400);
}

#[test]
fn shared_atomics() {
    let src = r#".version 9.0
.target sm_75
.address_size 64

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
{
    .reg .pred %p<4>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .shared .align 4 .u32 counter;

    ld.param.u64 %rd0, [k_out];
    cvta.to.global.u64 %rd0, %rd0;
    mov.u32 %r1, %tid.x;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra $WAIT;
    st.shared.u32 [counter], 0;
$WAIT:
    bar.sync 0;
    atom.shared.add.u32 %r2, [counter], 2;
    mov.u64 %rd1, counter;
    cvta.shared.u64 %rd2, %rd1;
    atom.add.u32 %r3, [%rd2], 1;
    bar.sync 0;
    @%p1 bra $DONE;
    ld.shared.u32 %r4, [counter];
    st.global.u32 [%rd0], %r4;
$DONE:
    ret;
}
"#;
    dump(src);
    let (out, _) = try_run_src(src, &cfg(1, 128), &[]).unwrap();
    assert_eq!(u32s(&out)[0], 384);
}
