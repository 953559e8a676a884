//! Integer arithmetic, logic, shifts and bit operations.
mod common;
use common::*;

#[test]
fn integer_32bit_edge_cases() {
    let body = r#"
    mov.u32 %r1, -1;
    mov.u32 %r3, -2147483648;
    add.u32 %r2, %r1, 1;            st.global.u32 [%rd0+0], %r2;
    sub.s32 %r2, %r3, 1;            st.global.u32 [%rd0+4], %r2;
    mul.lo.s32 %r2, %r3, 2;         st.global.u32 [%rd0+8], %r2;
    mul.hi.s32 %r2, %r1, %r1;       st.global.u32 [%rd0+12], %r2;
    mul.hi.u32 %r2, %r1, %r1;       st.global.u32 [%rd0+16], %r2;
    mov.u32 %r4, -7;
    div.s32 %r2, %r4, 2;            st.global.u32 [%rd0+20], %r2;
    rem.s32 %r2, %r4, 2;            st.global.u32 [%rd0+24], %r2;
    div.s32 %r2, 7, -2;             st.global.u32 [%rd0+28], %r2;
    rem.s32 %r2, 7, -2;             st.global.u32 [%rd0+32], %r2;
    mov.u32 %r5, 0;
    div.u32 %r2, 5, %r5;            st.global.u32 [%rd0+36], %r2;
    div.s32 %r2, %r3, -1;           st.global.u32 [%rd0+40], %r2;
    rem.s32 %r2, %r3, -1;           st.global.u32 [%rd0+44], %r2;
    min.s32 %r2, %r1, 1;            st.global.u32 [%rd0+48], %r2;
    min.u32 %r2, %r1, 1;            st.global.u32 [%rd0+52], %r2;
    max.s32 %r2, %r1, 1;            st.global.u32 [%rd0+56], %r2;
    abs.s32 %r2, -5;                st.global.u32 [%rd0+60], %r2;
    abs.s32 %r2, %r3;               st.global.u32 [%rd0+64], %r2;
    neg.s32 %r2, 5;                 st.global.u32 [%rd0+68], %r2;
    mov.u32 %r6, 1;
    shl.b32 %r2, %r6, 31;           st.global.u32 [%rd0+72], %r2;
    shl.b32 %r2, %r6, 32;           st.global.u32 [%rd0+76], %r2;
    shr.u32 %r2, %r3, 40;           st.global.u32 [%rd0+80], %r2;
    shr.s32 %r2, %r3, 40;           st.global.u32 [%rd0+84], %r2;
    shr.s32 %r2, %r3, 4;            st.global.u32 [%rd0+88], %r2;
    mov.u32 %r7, 0xf0f0;
    and.b32 %r2, %r7, 0xff00;       st.global.u32 [%rd0+92], %r2;
    or.b32 %r2, %r7, 0xff00;        st.global.u32 [%rd0+96], %r2;
    xor.b32 %r2, %r7, 0xff00;       st.global.u32 [%rd0+100], %r2;
    not.b32 %r2, %r5;               st.global.u32 [%rd0+104], %r2;
    popc.b32 %r2, %r7;              st.global.u32 [%rd0+108], %r2;
    clz.b32 %r2, %r6;               st.global.u32 [%rd0+112], %r2;
    clz.b32 %r2, %r5;               st.global.u32 [%rd0+116], %r2;
    brev.b32 %r2, %r6;              st.global.u32 [%rd0+120], %r2;
    bfe.u32 %r2, 0xabcd1234, 8, 8;  st.global.u32 [%rd0+124], %r2;
    bfe.s32 %r2, 0xf000, 12, 4;     st.global.u32 [%rd0+128], %r2;
    prmt.b32 %r2, 0x33221100, 0x77665544, 0x4321; st.global.u32 [%rd0+132], %r2;
    cnot.b32 %r2, %r5;              st.global.u32 [%rd0+136], %r2;
    mad.lo.s32 %r2, 3, 4, 5;        st.global.u32 [%rd0+140], %r2;
    bfi.b32 %r2, 0xff, 0, 4, 4;     st.global.u32 [%rd0+144], %r2;
    mov.u16 %h1, 0xffff;
    add.u16 %h2, %h1, 2;
    cvt.u32.u16 %r2, %h2;           st.global.u32 [%rd0+148], %r2;
    rem.u32 %r2, 5, %r5;            st.global.u32 [%rd0+152], %r2;
    shr.u32 %r2, %r3, 31;           st.global.u32 [%rd0+156], %r2;
    mul.lo.u32 %r2, 65536, 65536;   st.global.u32 [%rd0+160], %r2;
    sub.u32 %r2, 0, 1;              st.global.u32 [%rd0+164], %r2;
    "#;
    let got = u32s(&run(body, 1, &[]));
    let want: [u32; 42] = [
        0,
        0x7fff_ffff,
        0,
        0,
        0xffff_fffe,
        (-3i32) as u32,
        (-1i32) as u32,
        (-3i32) as u32,
        1,
        0xffff_ffff,
        0x8000_0000,
        0,
        (-1i32) as u32,
        1,
        1,
        5,
        0x8000_0000,
        (-5i32) as u32,
        0x8000_0000,
        0,
        0,
        0xffff_ffff,
        0xf800_0000,
        0xf000,
        0xfff0,
        0x0ff0,
        0xffff_ffff,
        8,
        31,
        32,
        0x8000_0000,
        0x12,
        0xffff_ffff,
        0x4433_2211,
        1,
        17,
        0xf0,
        1,
        5,
        1,
        0,
        0xffff_ffff,
    ];
    assert_eq!(&got[..want.len()], &want[..]);
}

#[test]
fn integer_64bit_and_wide() {
    let body = r#"
    mov.u32 %r1, -1;
    mul.wide.s32 %rd2, %r1, 3;              st.global.u64 [%rd0+0], %rd2;
    mul.wide.u32 %rd2, %r1, %r1;            st.global.u64 [%rd0+8], %rd2;
    mov.u64 %rd3, -9223372036854775808;
    div.s64 %rd2, %rd3, -1;                 st.global.u64 [%rd0+16], %rd2;
    add.s64 %rd2, 9223372036854775807, 1;   st.global.u64 [%rd0+24], %rd2;
    mov.u64 %rd4, 1;
    shl.b64 %rd2, %rd4, 63;                 st.global.u64 [%rd0+32], %rd2;
    shl.b64 %rd2, %rd4, 64;                 st.global.u64 [%rd0+40], %rd2;
    mul.hi.u64 %rd2, -1, 2;                 st.global.u64 [%rd0+48], %rd2;
    mad.wide.s32 %rd2, -2, 3, 10;           st.global.u64 [%rd0+56], %rd2;
    cvt.s64.s32 %rd2, -5;                   st.global.u64 [%rd0+64], %rd2;
    mov.u32 %r2, -5;
    cvt.u64.u32 %rd2, %r2;                  st.global.u64 [%rd0+72], %rd2;
    add.cc.u32 %r3, %r1, 1;
    addc.u32 %r4, 0, 0;
    mov.b64 %rd2, {%r3, %r4};               st.global.u64 [%rd0+80], %rd2;
    rem.s64 %rd2, -7, 3;                    st.global.u64 [%rd0+88], %rd2;
    div.u64 %rd2, -1, 0;                    st.global.u64 [%rd0+96], %rd2;
    shr.s64 %rd2, %rd3, 100;                st.global.u64 [%rd0+104], %rd2;
    mov.b64 {%r5, %r6}, %rd3;
    st.global.u32 [%rd0+112], %r5;
    st.global.u32 [%rd0+116], %r6;
    min.s64 %rd2, %rd3, 0;                  st.global.u64 [%rd0+120], %rd2;
    max.u64 %rd2, %rd3, 0;                  st.global.u64 [%rd0+128], %rd2;
    "#;
    let got = u64s(&run(body, 1, &[]));
    let want: [u64; 17] = [
        (-3i64) as u64,
        0xffff_fffe_0000_0001,
        0x8000_0000_0000_0000,
        0x8000_0000_0000_0000,
        0x8000_0000_0000_0000,
        0,
        1,
        4,
        (-5i64) as u64,
        0xffff_fffb,
        0x1_0000_0000,
        (-1i64) as u64,
        u64::MAX,
        u64::MAX,
        0x8000_0000_0000_0000, // {lo=0, hi=0x80000000}
        0x8000_0000_0000_0000,
        0x8000_0000_0000_0000,
    ];
    assert_eq!(&got[..want.len()], &want[..]);
}

#[test]
fn setp_selp_and_predicates() {
    let body = r#"
    mov.u32 %r1, -1;
    setp.lt.s32 %p1, %r1, 0;     selp.u32 %r2, 1, 0, %p1;  st.global.u32 [%rd0+0], %r2;
    setp.lt.u32 %p1, %r1, 0;     selp.u32 %r2, 1, 0, %p1;  st.global.u32 [%rd0+4], %r2;
    setp.hi.u32 %p1, %r1, 5;     selp.u32 %r2, 1, 0, %p1;  st.global.u32 [%rd0+8], %r2;
    setp.ls.u32 %p1, 5, 5;       selp.u32 %r2, 1, 0, %p1;  st.global.u32 [%rd0+12], %r2;
    setp.ne.s32 %p1|%p2, 3, 4;   selp.u32 %r2, 1, 0, %p2;  st.global.u32 [%rd0+16], %r2;
    setp.eq.s32 %p3, 1, 1;
    setp.gt.and.s32 %p4, 1, 2, %p3;  selp.u32 %r2, 1, 0, %p4;  st.global.u32 [%rd0+20], %r2;
    setp.gt.or.s32 %p4, 1, 2, %p3;   selp.u32 %r2, 1, 0, %p4;  st.global.u32 [%rd0+24], %r2;
    setp.gt.and.s32 %p4, 3, 2, !%p3; selp.u32 %r2, 1, 0, %p4;  st.global.u32 [%rd0+28], %r2;
    and.pred %p5, %p3, %p1;      selp.u32 %r2, 1, 0, %p5;  st.global.u32 [%rd0+32], %r2;
    not.pred %p5, %p3;           selp.u32 %r2, 1, 0, %p5;  st.global.u32 [%rd0+36], %r2;
    @%p3 mov.u32 %r3, 7;
    @!%p3 mov.u32 %r3, 9;
    st.global.u32 [%rd0+40], %r3;
    setp.ge.s64 %p6, -1, 0;      selp.u32 %r2, 1, 0, %p6;  st.global.u32 [%rd0+44], %r2;
    setp.ne.s16 %p6, 1, 2;       selp.b16 %h1, 1, 0, %p6;  cvt.u32.u16 %r2, %h1; st.global.u32 [%rd0+48], %r2;
    "#;
    let got = u32s(&run(body, 1, &[]));
    assert_eq!(&got[..13], &[1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 7, 0, 1]);
}
