//! Faults and misuse are reported precisely, never silently ignored or hung on.
mod common;
use common::*;
use ptxsim::{Memory, Module, ParamValue, SimError};

fn fault(body: &str, threads: u32) -> SimError {
    match try_run(body, &cfg(1, threads), &[]) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn out_of_bounds_global_write() {
    let e = fault(
        r#"
    mov.u32 %r1, %tid.x;
    setp.eq.u32 %p1, %r1, 3;
    @%p1 st.global.u32 [%rd0+4096], %r1;
    "#,
        8,
    );
    let msg = e.to_string();
    match &e {
        SimError::Fault {
            kernel,
            block,
            thread,
            line,
            inst,
            msg,
        } => {
            assert_eq!(kernel, "k");
            assert_eq!(*block, [0, 0, 0]);
            assert_eq!(*thread, [3, 0, 0]);
            assert_eq!(*line, 24);
            assert!(inst.contains("st.global.u32 [%rd0+4096]"), "{inst}");
            assert!(msg.contains("out of bounds"), "{msg}");
            assert!(msg.contains("0x100001000"), "{msg}");
        }
        _ => panic!("{e:?}"),
    }
    assert!(msg.contains("thread (3,0,0)"), "{msg}");
}

#[test]
fn out_of_bounds_read_before_the_buffer() {
    let e = fault("ld.global.u32 %r1, [%rd0+-4];", 1);
    assert!(
        e.to_string().contains("not inside any allocation")
            || e.to_string().contains("out of bounds"),
        "{e}"
    );
}

#[test]
fn misaligned_access() {
    let e = fault("st.global.u32 [%rd0+2], 1;", 1);
    assert!(e.to_string().contains("misaligned 4-byte store"), "{e}");
    let e = fault("ld.global.v4.f32 {%f1, %f2, %f3, %f4}, [%rd0+8];", 1);
    assert!(e.to_string().contains("misaligned 16-byte load"), "{e}");
}

/// Since sm_70 exited threads do not hold a barrier up (PTX ISA, `exit`: "if the exiting
/// threads are holding up the barrier, the barrier is released"); the barrier still orders
/// the memory accesses of the threads that reach it.
#[test]
fn barrier_after_some_threads_exited_is_released() {
    let src = r#".version 9.0
.target sm_75
.address_size 64

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .shared .align 4 .b8 sm[64];

    ld.param.u64 %rd0, [k_out];
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 16;
    @%p1 bra $OUT;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, sm;
    add.s32 %r4, %r3, %r2;
    add.s32 %r5, %r1, 7;
    st.shared.u32 [%r4], %r5;
    bar.sync 0;
    add.s32 %r6, %r2, 4;
    and.b32 %r6, %r6, 63;
    add.s32 %r6, %r3, %r6;
    ld.shared.u32 %r7, [%r6];
    cvta.to.global.u64 %rd1, %rd0;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r7;
$OUT:
    ret;
}
"#;
    dump(src);
    let (out, _) = try_run_src(src, &cfg(1, 48), &[]).unwrap();
    let g = u32s(&out);
    for (i, &v) in g.iter().enumerate().take(16) {
        assert_eq!(v, (i as u32 + 1) % 16 + 7, "thread {i}");
    }
}

#[test]
fn divergent_barrier_different_instructions() {
    let e = fault(
        r#"
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 16;
    @%p1 bra $OTHER;
    bar.sync 0;
    bra.uni $OUT;
$OTHER:
    bar.sync 0;
$OUT:
    "#,
        32,
    );
    let s = e.to_string();
    assert!(s.contains("divergent barrier"), "{s}");
    assert!(s.contains("line 25") && s.contains("line 28"), "{s}");
}

#[test]
fn shuffle_with_exited_lanes() {
    let e = fault(
        r#"
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 16;
    @%p1 bra $OUT;
    shfl.sync.down.b32 %r2, %r1, 1, 31, -1;
$OUT:
    "#,
        32,
    );
    let s = e.to_string();
    assert!(matches!(e, SimError::Fault { .. }), "{s}");
    assert!(s.contains("shfl.sync.down.b32"), "{s}");
    assert!(s.contains("member mask 0xffffffff names lane 16"), "{s}");
    assert!(s.contains("exited"), "{s}");
}

#[test]
fn uninitialised_shared_read() {
    let src = r#".version 9.0
.target sm_75
.address_size 64

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
{
    .reg .b32 %r<4>;
    .shared .align 4 .b8 sm[64];

    st.shared.u32 [sm], 1;
    ld.shared.u32 %r1, [sm+4];
    ret;
}
"#;
    dump(src);
    let e = try_run_src(src, &cfg(1, 1), &[]).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("uninitialised shared memory at shared address 0x4"),
        "{s}"
    );
    assert!(s.contains("line 14"), "{s}");
}

#[test]
fn shared_out_of_bounds() {
    let src = r#".version 9.0
.target sm_75
.address_size 64

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
{
    .reg .b32 %r<4>;
    .shared .align 4 .b8 sm[64];

    st.shared.u32 [sm+64], 1;
    ret;
}
"#;
    let e = try_run_src(src, &cfg(1, 1), &[]).unwrap_err();
    assert!(e.to_string().contains("out of bounds"), "{e}");
}

#[test]
fn unknown_opcode_names_it_and_its_line() {
    let src = kernel("    frobnicate.u32 %r1, %r2;");
    let e = Module::parse(&src).unwrap_err();
    match &e {
        SimError::Unsupported { line, msg } => {
            assert_eq!(*line, 21);
            assert!(msg.contains("frobnicate.u32"), "{msg}");
        }
        _ => panic!("{e:?}"),
    }
}

#[test]
fn unsupported_modifiers_and_forms_are_errors() {
    for (body, needle) in [
        ("add.rz.f32 %f1, %f2, %f3;", ".rz"),
        ("ld.global.foo.u32 %r1, [%rd0];", ".foo"),
        (
            "cvt.rzi.f32.f32 %f1, %f2;\nsin.approx.f32 %f1, %f2;",
            "sin.approx.f32",
        ),
        ("atom.global.add.noftz.f32 %f1, [%rd0], %f2;", "atomic"),
        ("cvt.s32.f32 %r1, %f1;", "without .rni"),
        ("cvt.f32.f64 %f1, %fd1;", "without a rounding modifier"),
        ("mul.u32 %r1, %r2, %r3;", ".lo, .hi or .wide"),
        ("ld.const.u32 %r1, [%rd0];", ".const"),
        ("mov.u32 %r1, %clock;", "%clock"),
        ("add.s32 %r1, %r2, %nosuch;", "%nosuch"),
        ("bra $NOWHERE;", "$NOWHERE"),
    ] {
        let e = Module::parse(&kernel(body)).unwrap_err();
        assert!(e.to_string().contains(needle), "{body}: {e}");
    }
    let e =
        Module::parse(".version 9.0\n.target sm_75\n.address_size 64\n.func foo()\n{\nret;\n}\n")
            .unwrap_err();
    assert!(
        e.to_string().contains(".func") && e.to_string().contains("line 4"),
        "{e}"
    );
    let e = Module::parse(&kernel("mov.u32 %r1, 1")).unwrap_err();
    assert!(matches!(e, SimError::Parse { .. }), "{e}");
}

#[test]
fn parameter_mismatches() {
    let m = Module::parse(&kernel("")).unwrap();
    assert_eq!(m.kernel_names(), vec!["k"]);
    assert_eq!(
        m.kernel_params("k").unwrap(),
        vec![ptxsim::ParamType::U64, ptxsim::ParamType::U64]
    );
    let mut mem = Memory::new();
    let e = m
        .launch("k", &cfg(1, 1), &[ParamValue::U64(0)], &mut mem)
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("`k`") && s.contains("expected 2 parameters, got 1"),
        "{s}"
    );
    let e = m
        .launch(
            "k",
            &cfg(1, 1),
            &[ParamValue::U64(0), ParamValue::U32(0)],
            &mut mem,
        )
        .unwrap_err();
    let s = e.to_string();
    assert!(s.contains("parameter 1 `k_inp`"), "{s}");
    let e = m.launch("nope", &cfg(1, 1), &[], &mut mem).unwrap_err();
    assert!(matches!(e, SimError::UnknownKernel(_)));
    let e = m.kernel_params("nope").unwrap_err();
    assert!(e.to_string().contains("nope"));
    let mut c = cfg(1, 1);
    c.block = [1025, 1, 1];
    let e = m
        .launch("k", &c, &[ParamValue::U64(0), ParamValue::U64(0)], &mut mem)
        .unwrap_err();
    assert!(matches!(e, SimError::Launch { .. }), "{e}");
}

#[test]
fn host_memory_api() {
    let mut mem = Memory::new();
    let a = mem.alloc(10);
    let b = mem.alloc(1);
    assert_ne!(a, 0);
    assert_eq!(a % 256, 0);
    assert_eq!(b % 256, 0);
    assert!(b >= a + 10 + 256, "gap between allocations");
    assert_eq!(mem.read(a, 10).unwrap(), vec![0; 10]);
    mem.write(a + 2, &[1, 2, 3]).unwrap();
    assert_eq!(mem.read(a, 5).unwrap(), vec![0, 0, 1, 2, 3]);
    assert!(mem.read(a, 11).is_err());
    assert!(mem.write(a + 9, &[1, 2]).is_err());
    assert!(mem.read(a + 10, 1).is_err());
    mem.free(a).unwrap();
    assert!(mem.free(a).is_err());
    assert!(mem.read(a, 1).is_err());
    assert!(mem.read(0, 1).is_err());
}

#[test]
fn malformed_input_never_panics() {
    let src = include_str!("ptx/pool_kernels.sm80.ptx");
    let bytes = src.as_bytes();
    // every truncation point in steps, and single-byte corruptions
    for cut in (0..bytes.len()).step_by(97) {
        if let Ok(s) = std::str::from_utf8(&bytes[..cut]) {
            let _ = Module::parse(s);
        }
    }
    let mut seed = 12345u32;
    for _ in 0..300 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let pos = (seed as usize >> 4) % bytes.len();
        let mut v = bytes.to_vec();
        v[pos] = b"{}[];,%.@!-+0x9_<>|"[(seed % 19) as usize];
        if let Ok(s) = std::str::from_utf8(&v) {
            let _ = Module::parse(s);
        }
    }
}
