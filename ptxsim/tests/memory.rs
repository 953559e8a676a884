//! Loads and stores in every state space, vectors, shared memory and barriers.
mod common;
use common::*;
use ptxsim::{
    BlockOrder, Hazard, LaunchConfig, LaunchOptions, Memory, Module, NoObserver, ParamValue,
    SimError,
};

#[test]
fn vectors_offsets_and_sign_extension() {
    let input = u32_bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 0x80]);
    let body = r#"
    ld.global.v4.u32 {%r1, %r2, %r3, %r4}, [%rd1];
    ld.global.nc.v2.u32 {%r5, %r6}, [%rd1+16];
    st.global.v4.u32 [%rd0], {%r4, %r3, %r2, %r1};
    st.global.v2.u32 [%rd0+16], {%r6, %r5};
    add.s64 %rd2, %rd1, 32;
    ld.global.s8 %r7, [%rd2+0];
    st.global.u32 [%rd0+24], %r7;
    ld.global.u8 %r7, [%rd2];
    st.global.u32 [%rd0+28], %r7;
    add.s64 %rd3, %rd0, 36;
    st.global.u32 [%rd3+-4], 99;
    ld.global.v2.u64 {%rd4, %rd5}, [%rd1];
    st.global.v2.u64 [%rd0+48], {%rd5, %rd4};
    ld.global.v4.f32 {%f1, _, %f2, _}, [%rd1];
    st.global.v2.f32 [%rd0+64], {%f1, %f2};
    st.global.v4.f32 [%rd0+80], {%f1, 0f3F800000, %f2, 0f00000000};
    ld.volatile.global.u32 %r8, [%rd1];
    ld.relaxed.gpu.global.u32 %r9, [%rd1+4];
    ld.global.cg.u32 %r10, [%rd1+8];
    ld.u32 %r11, [%rd1+12];
    st.global.cs.u32 [%rd0+96], %r8;
    st.global.wb.u32 [%rd0+100], %r9;
    st.u32 [%rd0+104], %r10;
    st.volatile.global.u32 [%rd0+108], %r11;
    "#;
    let out = run(body, 1, &input);
    let g = u32s(&out);
    assert_eq!(&g[0..8], &[4, 3, 2, 1, 6, 5, 0xffff_ff80, 0x80]);
    assert_eq!(g[8], 99);
    assert_eq!(&g[12..16], &[3, 4, 1, 2]);
    assert_eq!(&g[16..18], &[1, 3]);
    assert_eq!(&g[20..24], &[1, 0x3f80_0000, 3, 0]);
    assert_eq!(&g[24..28], &[1, 2, 3, 4]);
}

#[test]
fn params_by_name_offset_and_address() {
    let body = r#"
    ld.param.u32 %r1, [k_out+4];
    shr.u64 %rd2, %rd0, 32;
    cvt.u32.u64 %r2, %rd2;
    st.global.u32 [%rd0], %r1;
    st.global.u32 [%rd0+4], %r2;
    mov.u64 %rd3, k_inp;
    ld.param.u64 %rd4, [%rd3];
    cvta.to.global.u64 %rd4, %rd4;
    setp.eq.u64 %p1, %rd4, %rd1;
    selp.u32 %r3, 1, 0, %p1;
    st.global.u32 [%rd0+8], %r3;
    "#;
    let g = u32s(&run(body, 1, &[]));
    assert_eq!(g[0], g[1]);
    assert_eq!(g[2], 1);
}

const SHARED_EXCHANGE: &str = r#".version 9.0
.target sm_75
.address_size 64

.extern .shared .align 16 .b8 dyn[];

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
.maxntid 256, 1, 1
{
    .reg .pred %p<4>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<16>;
    .shared .align 4 .b8 sm[1024];

    ld.param.u64 %rd0, [k_out];
    cvta.to.global.u64 %rd0, %rd0;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ntid.x;
    mul.lo.s32 %r3, %r1, 3;
    mul.wide.u32 %rd1, %r1, 4;
    mov.u64 %rd2, sm;
    add.s64 %rd3, %rd2, %rd1;
    st.shared.u32 [%rd3], %r3;
    // the same through a generic address into dynamic shared memory
    mov.u64 %rd4, dyn;
    cvta.shared.u64 %rd5, %rd4;
    add.s64 %rd6, %rd5, %rd1;
    st.u32 [%rd6], %r1;
    bar.sync 0;
    add.s32 %r4, %r1, 1;
    rem.u32 %r4, %r4, %r2;
    mul.wide.u32 %rd7, %r4, 4;
    add.s64 %rd8, %rd2, %rd7;
    ld.shared.u32 %r5, [%rd8];
    add.s64 %rd9, %rd5, %rd7;
    ld.u32 %r6, [%rd9];
    cvta.to.shared.u64 %rd10, %rd9;
    ld.shared.u32 %r7, [%rd10];
    ld.shared.u32 %r8, [sm+4];
    barrier.sync 0;
    add.s64 %rd11, %rd0, %rd1;
    st.global.u32 [%rd11], %r5;
    st.global.u32 [%rd11+1024], %r6;
    st.global.u32 [%rd11+2048], %r7;
    st.global.u32 [%rd11+3072], %r8;
    ret;
}
"#;

/// Every block writes the same output words (with the same values): a write-after-write race
/// between blocks that the detector reports, so the exchange itself is checked with it off.
#[test]
fn shared_memory_exchange_through_bar_sync() {
    dump(SHARED_EXCHANGE);
    let m = Module::parse(SHARED_EXCHANGE).unwrap();
    let mut mem = Memory::new();
    let out = mem.alloc(4096);
    let cfg = LaunchConfig {
        grid: [3, 1, 1],
        block: [200, 1, 1],
        dynamic_shared_bytes: 800,
        block_order: BlockOrder::Forward,
    };
    let params = [ParamValue::U64(out), ParamValue::U64(0)];
    let e = m.launch("k", &cfg, &params, &mut mem).unwrap_err();
    match &e {
        SimError::Race {
            hazard,
            access,
            earlier,
            ..
        } => {
            assert_eq!(*hazard, Hazard::WriteAfterWrite, "{e}");
            assert_eq!(access.block, [1, 0, 0], "{e}");
            assert_eq!(earlier.block, [0, 0, 0], "{e}");
            assert_eq!(access.thread, earlier.thread, "{e}");
        }
        _ => panic!("{e}"),
    }
    let no_race = LaunchOptions {
        race_check: false,
        ..LaunchOptions::default()
    };
    for order in [BlockOrder::Forward, BlockOrder::Shuffled(11)] {
        let mut mem = Memory::new();
        let out = mem.alloc(4096);
        let cfg = LaunchConfig {
            grid: [3, 1, 1],
            block: [200, 1, 1],
            dynamic_shared_bytes: 800,
            block_order: order,
        };
        let st = m
            .launch_with(
                "k",
                &cfg,
                &[ParamValue::U64(out), ParamValue::U64(0)],
                &mut mem,
                &no_race,
                &mut NoObserver,
            )
            .unwrap();
        assert_eq!(st.threads, 600);
        let g = u32s(&mem.read(out, 4096).unwrap());
        for t in 0..200u32 {
            let n = (t + 1) % 200;
            assert_eq!(g[t as usize], n * 3);
            assert_eq!(g[256 + t as usize], n);
            assert_eq!(g[512 + t as usize], n);
            assert_eq!(g[768 + t as usize], 3);
        }
    }
}

#[test]
fn multidimensional_blocks_and_grid() {
    let body = r#"
    mov.u32 %r1, %tid.x;  mov.u32 %r2, %tid.y;  mov.u32 %r3, %tid.z;
    mov.u32 %r4, %ntid.x; mov.u32 %r5, %ntid.y;
    mov.u32 %r6, %ctaid.x; mov.u32 %r7, %ctaid.y; mov.u32 %r8, %nctaid.x;
    mad.lo.s32 %r9, %r3, %r5, %r2;
    mad.lo.s32 %r9, %r9, %r4, %r1;          // linear thread id
    mad.lo.s32 %r10, %r7, %r8, %r6;         // linear block id
    mul.lo.s32 %r11, %r4, %r5;
    mov.u32 %r12, %ntid.z;
    mul.lo.s32 %r11, %r11, %r12;
    mad.lo.s32 %r13, %r10, %r11, %r9;       // global id
    mul.wide.u32 %rd2, %r13, 4;
    add.s64 %rd3, %rd0, %rd2;
    mov.u32 %r14, %laneid;
    mov.u32 %r15, %warpid;
    mad.lo.s32 %r16, %r15, 32, %r14;
    sub.s32 %r17, %r16, %r9;                 // 0 when laneid/warpid agree
    mad.lo.s32 %r18, %r13, 2, %r17;
    st.global.u32 [%rd3], %r18;
    "#;
    let c = LaunchConfig {
        grid: [2, 3, 1],
        block: [4, 3, 5],
        dynamic_shared_bytes: 0,
        block_order: BlockOrder::Reverse,
    };
    let (out, st) = try_run(body, &c, &[]).unwrap();
    assert_eq!(st.blocks, 6);
    assert_eq!(st.threads, 360);
    let g = u32s(&out);
    for (i, v) in g.iter().take(360).enumerate() {
        assert_eq!(*v, 2 * i as u32);
    }
}

#[test]
fn instruction_count_is_exact() {
    // 4 preamble instructions + 3 + ret, per thread; the guarded-off one counts too
    let body = r#"
    mov.u32 %r1, %tid.x;
    setp.eq.u32 %p1, %r1, 100;
    @%p1 st.global.u32 [%rd0], %r1;
    "#;
    let (_, st) = try_run(body, &cfg(2, 64), &[]).unwrap();
    assert_eq!(st.instructions, 2 * 64 * 8);
}
