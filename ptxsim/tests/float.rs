//! f32/f64/f16/bf16 arithmetic: rounding, NaN, infinities, signed zeros, ftz/sat.
mod common;
use common::*;

#[test]
fn f32_arithmetic_edge_cases() {
    let body = r#"
    add.f32 %f1, 0f3F800000, 0f33800000;   st.global.f32 [%rd0+0], %f1;
    add.f32 %f1, 0f7F800000, 0fFF800000;   st.global.f32 [%rd0+4], %f1;
    mul.f32 %f1, 0f7FC00001, 0f3F800000;   st.global.f32 [%rd0+8], %f1;
    min.f32 %f1, 0f7FC00000, 0f40000000;   st.global.f32 [%rd0+12], %f1;
    max.f32 %f1, 0f80000000, 0f00000000;   st.global.f32 [%rd0+16], %f1;
    min.f32 %f1, 0f00000000, 0f80000000;   st.global.f32 [%rd0+20], %f1;
    fma.rn.f32 %f1, 0f3F800800, 0f3F800800, 0fBF800000; st.global.f32 [%rd0+24], %f1;
    div.rn.f32 %f1, 0f3F800000, 0f40400000; st.global.f32 [%rd0+28], %f1;
    sqrt.rn.f32 %f1, 0f40000000;           st.global.f32 [%rd0+32], %f1;
    rcp.rn.f32 %f1, 0f40400000;            st.global.f32 [%rd0+36], %f1;
    abs.f32 %f1, 0fC0000000;               st.global.f32 [%rd0+40], %f1;
    neg.f32 %f1, 0f00000000;               st.global.f32 [%rd0+44], %f1;
    add.ftz.f32 %f1, 0f00000001, 0f00000000; st.global.f32 [%rd0+48], %f1;
    add.f32 %f1, 0f00000001, 0f00000000;   st.global.f32 [%rd0+52], %f1;
    add.sat.f32 %f1, 0f3F400000, 0f3F000000; st.global.f32 [%rd0+56], %f1;
    mul.sat.f32 %f1, 0fBF800000, 0f3F800000; st.global.f32 [%rd0+60], %f1;
    div.approx.f32 %f1, 0f3F800000, 0f40800000; st.global.f32 [%rd0+64], %f1;
    sub.f32 %f1, 0f3F800000, 0f3F800000;   st.global.f32 [%rd0+68], %f1;
    mul.f32 %f1, 0f80000000, 0f3F800000;   st.global.f32 [%rd0+72], %f1;
    sqrt.rn.f32 %f1, 0fBF800000;           st.global.f32 [%rd0+76], %f1;
    mad.rn.f32 %f1, 0f40000000, 0f40400000, 0f3F800000; st.global.f32 [%rd0+80], %f1;
    max.f32 %f1, 0f7FC00000, 0f7FC00000;   st.global.f32 [%rd0+84], %f1;
    div.full.f32 %f1, 0f3F800000, 0f00000000; st.global.f32 [%rd0+88], %f1;
    mul.f32 %f1, 0f7F7FFFFF, 0f40000000;   st.global.f32 [%rd0+92], %f1;
    "#;
    let got = u32s(&run(body, 1, &[]));
    let want: [u32; 24] = [
        0x3f80_0000, // 1 + 2^-24: tie to even
        0x7fff_ffff, // inf - inf: canonical NaN
        0x7fff_ffff, // NaN payload not propagated
        0x4000_0000, // min(NaN, 2) = 2
        0x0000_0000, // max(-0, +0) = +0
        0x8000_0000, // min(+0, -0) = -0
        0x3a00_0400, // fused: 2^-11 + 2^-24
        0x3eaa_aaab,
        0x3fb5_04f3,
        0x3eaa_aaab,
        0x4000_0000,
        0x8000_0000,
        0x0000_0000, // ftz flushes the subnormal
        0x0000_0001,
        0x3f80_0000, // sat
        0x0000_0000, // sat clamps -1 to +0
        0x3e80_0000,
        0x0000_0000,
        0x8000_0000,
        0x7fff_ffff,
        0x40e0_0000, // 7
        0x7fff_ffff,
        0x7f80_0000,
        0x7f80_0000,
    ];
    assert_eq!(&got[..want.len()], &want[..]);
}

#[test]
fn f64_arithmetic() {
    let body = r#"
    add.f64 %fd1, 0d3FB999999999999A, 0d3FC999999999999A; st.global.f64 [%rd0+0], %fd1;
    div.rn.f64 %fd1, 0d3FF0000000000000, 0d4008000000000000; st.global.f64 [%rd0+8], %fd1;
    sqrt.rn.f64 %fd1, 0d4000000000000000; st.global.f64 [%rd0+16], %fd1;
    min.f64 %fd1, 0d7FF8000000000000, 0d3FF0000000000000; st.global.f64 [%rd0+24], %fd1;
    fma.rn.f64 %fd1, 0d3FF0000000000001, 0d3FF0000000000001, 0dBFF0000000000000; st.global.f64 [%rd0+32], %fd1;
    neg.f64 %fd1, 0d0000000000000000; st.global.f64 [%rd0+40], %fd1;
    rcp.rn.f64 %fd1, 0d4010000000000000; st.global.f64 [%rd0+48], %fd1;
    abs.f64 %fd1, 0dFFF0000000000000; st.global.f64 [%rd0+56], %fd1;
    sub.f64 %fd1, 0d7FF0000000000000, 0d7FF0000000000000; st.global.f64 [%rd0+64], %fd1;
    "#;
    let got = u64s(&run(body, 1, &[]));
    let want: [u64; 9] = [
        (0.1f64 + 0.2).to_bits(),
        (1.0f64 / 3.0).to_bits(),
        2f64.sqrt().to_bits(),
        1f64.to_bits(),
        0x3cc0_0000_0000_0000, // 2^-51 + 2^-104 rounds... exact fused value
        0x8000_0000_0000_0000,
        0.25f64.to_bits(),
        0x7ff0_0000_0000_0000,
        0x7fff_ffff_ffff_ffff,
    ];
    // fused: (1+e)^2 - 1 = 2e + e^2 with e = 2^-52 -> 2^-51 + 2^-104 (exact in f64)
    let e = 2f64.powi(-52);
    let fused = (1.0f64 + e).mul_add(1.0 + e, -1.0);
    assert_eq!(fused, 2f64.powi(-51) + 2f64.powi(-104));
    let mut want = want;
    want[4] = fused.to_bits();
    assert_eq!(&got[..9], &want[..]);
}

#[test]
fn f16_arithmetic_rounding() {
    let body = r#"
    mov.b16 %h1, 0x3C00;
    mov.b16 %h2, 0x1000;
    add.f16 %h3, %h1, %h2;            st.global.u16 [%rd0+0], %h3;
    mov.b16 %h1, 0x3C01;
    add.f16 %h3, %h1, %h2;            st.global.u16 [%rd0+2], %h3;
    mov.b16 %h1, 0x7BFF;
    mov.b16 %h2, 0x4000;
    mul.f16 %h3, %h1, %h2;            st.global.u16 [%rd0+4], %h3;
    mov.b16 %h1, 0x0001;
    add.f16 %h3, %h1, %h1;            st.global.u16 [%rd0+6], %h3;
    mov.b16 %h1, 0x3C01;
    mov.b16 %h2, 0xBC02;
    fma.rn.f16 %h3, %h1, %h1, %h2;    st.global.u16 [%rd0+8], %h3;
    mov.b16 %h1, 0x0000;
    neg.f16 %h3, %h1;                 st.global.u16 [%rd0+10], %h3;
    mov.b16 %h1, 0x7C00;
    mov.b16 %h2, 0xFC00;
    add.f16 %h3, %h1, %h2;            st.global.u16 [%rd0+12], %h3;
    mov.b16 %h1, 0x0001;
    add.ftz.f16 %h3, %h1, %h1;        st.global.u16 [%rd0+14], %h3;
    mov.b32 %r1, 0x40003C00;
    mov.b32 %r2, 0x34003800;
    add.f16x2 %r3, %r1, %r2;          st.global.u32 [%rd0+16], %r3;
    mul.f16x2 %r3, %r1, %r1;          st.global.u32 [%rd0+20], %r3;
    mov.b16 %h1, 0xC000;
    mov.b16 %h2, 0x3C00;
    sub.f16 %h3, %h2, %h1;            st.global.u16 [%rd0+24], %h3;
    "#;
    let got = u16s(&run(body, 1, &[]));
    assert_eq!(got[0], 0x3c00, "1 + 2^-11 ties to even (down)");
    assert_eq!(got[1], 0x3c02, "(1+2^-10) + 2^-11 ties to even (up)");
    assert_eq!(got[2], 0x7c00, "overflow to +inf");
    assert_eq!(got[3], 0x0002, "subnormals are kept");
    assert_eq!(got[4], 0x0010, "fma is fused");
    assert_eq!(got[5], 0x8000, "-0");
    assert_eq!(got[6], 0x7fff, "inf - inf = canonical NaN");
    assert_eq!(got[7], 0x0000, "ftz");
    assert_eq!(
        got[8] as u32 | (got[9] as u32) << 16,
        0x4080_3e00,
        "f16x2 add"
    );
    assert_eq!(
        got[10] as u32 | (got[11] as u32) << 16,
        0x4400_3c00,
        "f16x2 mul"
    );
    assert_eq!(got[12], 0x4200, "1 - (-2) = 3");
}

#[test]
fn bf16_arithmetic_rounding() {
    let body = r#"
    mov.b16 %h1, 0x3F80;
    mov.b16 %h2, 0x3B80;
    fma.rn.bf16 %h3, %h1, %h1, %h2;   st.global.u16 [%rd0+0], %h3;
    mov.b16 %h4, 0x3F81;
    fma.rn.bf16 %h3, %h4, %h1, %h2;   st.global.u16 [%rd0+2], %h3;
    add.rn.bf16 %h3, %h4, %h2;        st.global.u16 [%rd0+4], %h3;
    mul.rn.bf16 %h3, %h4, %h4;        st.global.u16 [%rd0+6], %h3;
    mov.b16 %h5, 0x7F7F;
    add.rn.bf16 %h3, %h5, %h5;        st.global.u16 [%rd0+8], %h3;
    mov.b32 %r1, 0x40003F80;
    add.rn.bf16x2 %r2, %r1, %r1;      st.global.u32 [%rd0+12], %r2;
    "#;
    let got = u16s(&run_for("sm_90", body, 1, &[]));
    assert_eq!(got[0], 0x3f80, "1 + 2^-8 ties to even (down)");
    assert_eq!(got[1], 0x3f82, "(1+2^-7) + 2^-8 ties to even (up)");
    assert_eq!(got[2], 0x3f82);
    // (1+2^-7)^2 = 1 + 2^-6 + 2^-14 -> 1 + 2^-6
    assert_eq!(got[3], 0x3f82);
    assert_eq!(got[4], 0x7f80, "overflow to inf");
    assert_eq!(got[6] as u32 | (got[7] as u32) << 16, 0x4080_4000);
}
