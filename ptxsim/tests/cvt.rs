//! `cvt` in every direction with every rounding mode, saturation and special values.
mod common;
use common::*;

#[test]
fn float_to_int_rounding_and_saturation() {
    // input: -2.5, -1.5, 2.5, -0.5, 3e9, -3e9, NaN, -1.0, 5e9
    let input = f32_bytes(&[-2.5, -1.5, 2.5, -0.5, 3e9, -3e9, f32::NAN, -1.0, 5e9]);
    let mut body = String::new();
    let mut off = 0;
    for r in ["rni", "rzi", "rmi", "rpi"] {
        for i in 0..4 {
            body += &format!(
                "ld.global.f32 %f1, [%rd1+{}];\ncvt.{r}.s32.f32 %r1, %f1;\nst.global.u32 [%rd0+{off}], %r1;\n",
                i * 4
            );
            off += 4;
        }
    }
    body += r#"
    ld.global.f32 %f1, [%rd1+16]; cvt.rzi.s32.f32 %r1, %f1; st.global.u32 [%rd0+64], %r1;
    ld.global.f32 %f1, [%rd1+20]; cvt.rzi.s32.f32 %r1, %f1; st.global.u32 [%rd0+68], %r1;
    ld.global.f32 %f1, [%rd1+24]; cvt.rni.s32.f32 %r1, %f1; st.global.u32 [%rd0+72], %r1;
    ld.global.f32 %f1, [%rd1+28]; cvt.rzi.u32.f32 %r1, %f1; st.global.u32 [%rd0+76], %r1;
    ld.global.f32 %f1, [%rd1+32]; cvt.rzi.u32.f32 %r1, %f1; st.global.u32 [%rd0+80], %r1;
    cvt.rzi.s64.f64 %rd2, 0d46293E5939A08CEA; st.global.u64 [%rd0+88], %rd2;
    cvt.rni.u16.f32 %h1, 0f43960000; cvt.u32.u16 %r1, %h1; st.global.u32 [%rd0+96], %r1;
    cvt.rni.s16.f32 %h1, 0fC7800000; cvt.s32.s16 %r1, %h1; st.global.u32 [%rd0+100], %r1;
    cvt.rni.s32.f64 %r1, 0dC004000000000000; st.global.u32 [%rd0+104], %r1;
    cvt.rpi.u64.f32 %rd2, 0f4F800000; st.global.u64 [%rd0+112], %rd2;
    "#;
    let out = run(&body, 1, &input);
    let got = u32s(&out);
    let i = |x: i32| x as u32;
    assert_eq!(&got[0..4], &[i(-2), i(-2), 2, 0], "rni");
    assert_eq!(&got[4..8], &[i(-2), i(-1), 2, 0], "rzi");
    assert_eq!(&got[8..12], &[i(-3), i(-2), 2, i(-1)], "rmi");
    assert_eq!(&got[12..16], &[i(-2), i(-1), 3, 0], "rpi");
    assert_eq!(got[16], 0x7fff_ffff, "3e9 saturates");
    assert_eq!(got[17], 0x8000_0000, "-3e9 saturates");
    assert_eq!(got[18], 0, "NaN -> 0");
    assert_eq!(got[19], 0, "-1 -> u32 0");
    assert_eq!(got[20], 0xffff_ffff, "5e9 -> u32 max");
    assert_eq!(u64s(&out)[11], i64::MAX as u64, "1e30 -> s64 max");
    assert_eq!(got[24], 300);
    assert_eq!(got[25], i(-32768), "-65536 -> s16 min");
    assert_eq!(got[26], i(-2), "-2.5 rni -> -2");
    assert_eq!(u64s(&out)[14], 1u64 << 32);
}

#[test]
fn float_to_float_directed_rounding() {
    // f64 1 + 2^-30 and its negation, and 1e300
    let body = r#"
    cvt.rn.f32.f64 %f1, 0d3FF0000004000000; st.global.f32 [%rd0+0], %f1;
    cvt.rz.f32.f64 %f1, 0d3FF0000004000000; st.global.f32 [%rd0+4], %f1;
    cvt.rm.f32.f64 %f1, 0d3FF0000004000000; st.global.f32 [%rd0+8], %f1;
    cvt.rp.f32.f64 %f1, 0d3FF0000004000000; st.global.f32 [%rd0+12], %f1;
    cvt.rn.f32.f64 %f1, 0dBFF0000004000000; st.global.f32 [%rd0+16], %f1;
    cvt.rz.f32.f64 %f1, 0dBFF0000004000000; st.global.f32 [%rd0+20], %f1;
    cvt.rm.f32.f64 %f1, 0dBFF0000004000000; st.global.f32 [%rd0+24], %f1;
    cvt.rp.f32.f64 %f1, 0dBFF0000004000000; st.global.f32 [%rd0+28], %f1;
    cvt.rn.f32.f64 %f1, 0d7E37E43C8800759C; st.global.f32 [%rd0+32], %f1;
    cvt.rz.f32.f64 %f1, 0d7E37E43C8800759C; st.global.f32 [%rd0+36], %f1;
    cvt.rn.f32.f64 %f1, 0d7FF8000000000000; st.global.f32 [%rd0+40], %f1;
    cvt.rn.f32.f64 %f1, 0d3690000000000000; st.global.f32 [%rd0+44], %f1;
    cvt.rp.f32.f64 %f1, 0d0000000000000001; st.global.f32 [%rd0+48], %f1;
    cvt.rni.f32.f32 %f1, 0f40200000; st.global.f32 [%rd0+52], %f1;
    cvt.rmi.f32.f32 %f1, 0fBF000000; st.global.f32 [%rd0+56], %f1;
    cvt.rzi.f64.f64 %fd1, 0dC00C000000000000; st.global.f64 [%rd0+64], %fd1;
    cvt.f64.f32 %fd1, 0f3DCCCCCD; st.global.f64 [%rd0+72], %fd1;
    cvt.ftz.f64.f32 %fd1, 0f00000001; st.global.f64 [%rd0+80], %fd1;
    cvt.rn.sat.f32.f64 %f1, 0d4000000000000000; st.global.f32 [%rd0+88], %f1;
    "#;
    let out = run(body, 1, &[]);
    let got = u32s(&out);
    assert_eq!(
        &got[0..14],
        &[
            0x3f80_0000,
            0x3f80_0000,
            0x3f80_0000,
            0x3f80_0001,
            0xbf80_0000,
            0xbf80_0000,
            0xbf80_0001,
            0xbf80_0000,
            0x7f80_0000,
            0x7f7f_ffff,
            0x7fff_ffff,
            0x0000_0000, // 2^-149 / 2 = 2^-150: tie between 0 and 2^-149 -> even (0)
            0x0000_0001, // tiny positive rounds up to the smallest subnormal
            0x4000_0000, // rni(2.5) = 2
        ]
    );
    assert_eq!(got[14], 0xbf80_0000, "rmi(-0.5) = -1");
    let g64 = u64s(&out);
    assert_eq!(g64[8], (-3.0f64).to_bits(), "rzi(-3.5)");
    assert_eq!(g64[9], (f32::from_bits(0x3dcc_cccd) as f64).to_bits());
    assert_eq!(g64[10], 0, "ftz input");
    assert_eq!(got[22], 0x3f80_0000, "sat clamps to 1");
}

#[test]
fn int_to_float_directed_rounding() {
    let body = r#"
    cvt.rn.f32.u32 %f1, 16777217; st.global.f32 [%rd0+0], %f1;
    cvt.rz.f32.u32 %f1, 16777217; st.global.f32 [%rd0+4], %f1;
    cvt.rp.f32.u32 %f1, 16777217; st.global.f32 [%rd0+8], %f1;
    cvt.rm.f32.u32 %f1, 16777217; st.global.f32 [%rd0+12], %f1;
    cvt.rm.f32.s32 %f1, -16777217; st.global.f32 [%rd0+16], %f1;
    cvt.rp.f32.s32 %f1, -16777217; st.global.f32 [%rd0+20], %f1;
    cvt.rn.f32.u64 %f1, -1; st.global.f32 [%rd0+24], %f1;
    cvt.rn.f32.s64 %f1, -9223372036854775808; st.global.f32 [%rd0+28], %f1;
    cvt.rn.f64.u64 %fd1, -1; st.global.f64 [%rd0+32], %fd1;
    cvt.rz.f64.u64 %fd1, -1; st.global.f64 [%rd0+40], %fd1;
    cvt.rn.f32.s32 %f1, -7; st.global.f32 [%rd0+48], %f1;
    cvt.rn.f16.s32 %h1, 65520; st.global.u16 [%rd0+52], %h1;
    cvt.rz.f16.u32 %h1, 65520; st.global.u16 [%rd0+54], %h1;
    cvt.rn.f64.s32 %fd1, -2147483648; st.global.f64 [%rd0+56], %fd1;
    "#;
    let out = run(body, 1, &[]);
    let got = u32s(&out);
    assert_eq!(
        &got[0..8],
        &[
            0x4b80_0000,
            0x4b80_0000,
            0x4b80_0001,
            0x4b80_0000,
            0xcb80_0001,
            0xcb80_0000,
            0x5f80_0000,
            0xdf00_0000
        ]
    );
    let g64 = u64s(&out);
    assert_eq!(g64[4], 0x43f0_0000_0000_0000, "u64::MAX rn -> 2^64");
    assert_eq!(g64[5], 0x43ef_ffff_ffff_ffff, "u64::MAX rz");
    assert_eq!(got[12], (-7f32).to_bits());
    let g16 = u16s(&out);
    assert_eq!(g16[26], 0x7c00);
    assert_eq!(g16[27], 0x7bff);
    assert_eq!(g64[7], (-2147483648f64).to_bits());
}

#[test]
fn half_conversions() {
    // f32 inputs for cvt.rn.f16.f32 / cvt.rn.bf16.f32
    let inputs: [u32; 12] = [
        0x3f80_1000, // 1 + 2^-11: f16 tie -> 0x3c00
        0x3f80_1001, // just above the tie -> 0x3c01
        0x477f_f000, // 65520 -> inf
        0x477f_efff, // just below -> 0x7bff
        0x3300_0000, // 2^-25: tie between 0 and 2^-24 -> 0
        0x3340_0000, // 3 * 2^-26 -> rounds to 2^-24 (0x0001)
        0x33c0_0000, // 3 * 2^-25: tie between 1 and 2 subnormal ulps -> 0x0002
        0x7fc0_0000, // NaN -> 0x7fff
        0x8000_0000, // -0
        0xff80_0000, // -inf
        0x3f80_8000, // 1 + 2^-8: bf16 tie -> 0x3f80
        0x3f81_8000, // (1 + 2^-7) + 2^-8: bf16 tie -> 0x3f82
    ];
    let mut body = String::new();
    for i in 0..12 {
        body += &format!(
            "ld.global.f32 %f1, [%rd1+{0}];\ncvt.rn.f16.f32 %h1, %f1;\nst.global.u16 [%rd0+{1}], %h1;\ncvt.rn.bf16.f32 %h2, %f1;\nst.global.u16 [%rd0+{2}], %h2;\n",
            4 * i,
            2 * i,
            64 + 2 * i
        );
    }
    body += r#"
    mov.b16 %h3, 0x0001; cvt.f32.f16 %f2, %h3; st.global.f32 [%rd0+128], %f2;
    mov.b16 %h3, 0xFC00; cvt.f32.f16 %f2, %h3; st.global.f32 [%rd0+132], %f2;
    mov.b16 %h3, 0x8000; cvt.f32.f16 %f2, %h3; st.global.f32 [%rd0+136], %f2;
    mov.b16 %h3, 0x3555; cvt.f64.f16 %fd1, %h3; st.global.f64 [%rd0+144], %fd1;
    mov.b16 %h3, 0x3F81; cvt.f32.bf16 %f2, %h3; st.global.f32 [%rd0+152], %f2;
    cvt.rz.f16.f32 %h3, 0f477FF000; st.global.u16 [%rd0+156], %h3;
    cvt.rn.f16.f64 %h3, 0d3FF0020000000001; st.global.u16 [%rd0+158], %h3;
    mov.b16 %h3, 0x4248; cvt.rn.f16.bf16 %h4, %h3; st.global.u16 [%rd0+160], %h4;
    "#;
    let out = run_for("sm_90", &body, 1, &u32_bytes(&inputs));
    let g16 = u16s(&out);
    assert_eq!(
        &g16[0..10],
        &[0x3c00, 0x3c01, 0x7c00, 0x7bff, 0x0000, 0x0001, 0x0002, 0x7fff, 0x8000, 0xfc00]
    );
    // bf16 results for the same inputs (and the two bf16 ties)
    assert_eq!(g16[32], 0x3f80);
    assert_eq!(g16[39], 0x7fff, "NaN");
    assert_eq!(g16[40], 0x8000);
    assert_eq!(g16[41], 0xff80);
    assert_eq!(g16[42], 0x3f80, "bf16 tie down");
    assert_eq!(g16[43], 0x3f82, "bf16 tie up");
    let g32 = u32s(&out);
    assert_eq!(g32[32], 0x3380_0000);
    assert_eq!(g32[33], 0xff80_0000);
    assert_eq!(g32[34], 0x8000_0000);
    assert_eq!(
        u64s(&out)[18],
        half::f16::from_bits(0x3555).to_f64().to_bits()
    );
    assert_eq!(g32[38], 0x3f81_0000);
    assert_eq!(g16[78], 0x7bff, "rz never overflows to inf");
    assert_eq!(g16[79], 0x3c01, "f64 just above the f16 tie rounds up");
    assert_eq!(g16[80], 0x5240, "bf16 3.125*16=50 -> f16");
}

#[test]
fn int_to_int_conversions() {
    let body = r#"
    mov.b16 %h1, 0x0080; cvt.s32.s8 %r1, %h1; st.global.u32 [%rd0+0], %r1;
    mov.b16 %h1, 0x0180; cvt.u32.u8 %r1, %h1; st.global.u32 [%rd0+4], %r1;
    cvt.u16.u32 %h2, 0x12345; cvt.u32.u16 %r1, %h2; st.global.u32 [%rd0+8], %r1;
    cvt.sat.s8.s32 %r1, 300; st.global.u32 [%rd0+12], %r1;
    cvt.sat.u16.s32 %h3, -5; cvt.u32.u16 %r1, %h3; st.global.u32 [%rd0+16], %r1;
    cvt.sat.s32.u32 %r1, -1; st.global.u32 [%rd0+20], %r1;
    cvt.s64.u32 %rd2, -1; st.global.u64 [%rd0+24], %rd2;
    cvt.u32.u64 %r1, 0x123456789; st.global.u32 [%rd0+32], %r1;
    cvt.s16.s32 %h4, -40000; cvt.s32.s16 %r1, %h4; st.global.u32 [%rd0+36], %r1;
    cvt.sat.s32.s64 %r1, -9223372036854775807; st.global.u32 [%rd0+40], %r1;
    cvt.sat.u32.s64 %r1, 4294967296; st.global.u32 [%rd0+44], %r1;
    "#;
    let out = run(body, 1, &[]);
    let g = u32s(&out);
    assert_eq!(g[0], 0xffff_ff80);
    assert_eq!(g[1], 0x80);
    assert_eq!(g[2], 0x2345);
    assert_eq!(g[3], 127);
    assert_eq!(g[4], 0);
    assert_eq!(g[5], 0x7fff_ffff);
    assert_eq!(u64s(&out)[3], 0xffff_ffff);
    assert_eq!(g[8], 0x2345_6789);
    assert_eq!(g[9], (-40000i32 as i16) as i32 as u32);
    assert_eq!(g[10], 0x8000_0000);
    assert_eq!(g[11], 0xffff_ffff);
}
