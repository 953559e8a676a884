//! The observer interface, block subsets, the instruction limit and offset allocations.

use ptxsim::trace::{Access, AccessKind, Issue, LaunchInfo, MemSpace, Observer};
use ptxsim::{BlockOrder, LaunchConfig, LaunchOptions, Memory, Module, ParamValue, SimError};

/// `out[gid] = in[gid] + 1` over u32, one thread per element, guarded by `gid < n`.
const ADD_ONE: &str = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry add_one(.param .u64 src, .param .u64 dst, .param .u32 n)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [src];
    ld.param.u64 %rd2, [dst];
    ld.param.u32 %r1, [n];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mad.lo.s32 %r5, %r3, %r4, %r2;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra DONE;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r6, [%rd4];
    add.s32 %r7, %r6, 1;
    add.s64 %rd5, %rd2, %rd3;
    st.global.u32 [%rd5], %r7;
DONE:
    ret;
}
"#;

/// Spins forever.
const SPIN: &str = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry spin()
{
LOOP:
    bra.uni LOOP;
}
"#;

#[derive(Default)]
struct Recorder {
    launches: Vec<LaunchInfo>,
    blocks: Vec<u64>,
    issues: Vec<Issue>,
    accesses: Vec<Access>,
}

impl Observer for Recorder {
    fn launch(&mut self, info: &LaunchInfo) {
        self.launches.push(info.clone());
    }
    fn block_begin(&mut self, block: u64) {
        self.blocks.push(block);
    }
    fn issue(&mut self, event: &Issue) {
        self.issues.push(*event);
    }
    fn access(&mut self, event: &Access) {
        self.accesses.push(*event);
    }
}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: 0,
        block_order: BlockOrder::Forward,
    }
}

fn setup(n: usize) -> (Memory, u64, u64) {
    let mut mem = Memory::new();
    let src = mem.alloc(4 * n);
    let dst = mem.alloc(4 * n);
    let data: Vec<u8> = (0..n as u32)
        .flat_map(|i| (3 * i + 5).to_le_bytes())
        .collect();
    mem.write(src, &data).unwrap();
    (mem, src, dst)
}

#[test]
fn observer_sees_every_issue_and_access() {
    let module = Module::parse(ADD_ONE).unwrap();
    let n = 50usize; // 2 blocks of 32: 14 threads of the second block are guarded off
    let (mut mem, src, dst) = setup(n);
    let mut rec = Recorder::default();
    let params = [
        ParamValue::U64(src),
        ParamValue::U64(dst),
        ParamValue::U32(n as u32),
    ];
    let opts = LaunchOptions::default();
    let stats = module
        .launch_with("add_one", &cfg(2, 32), &params, &mut mem, &opts, &mut rec)
        .unwrap();
    assert_eq!(rec.launches.len(), 1);
    assert_eq!(rec.launches[0].blocks_run, 2);
    assert_eq!(rec.blocks, vec![0, 1]);
    assert_eq!(rec.issues.len() as u64, stats.instructions);
    let text = module.instructions("add_one").unwrap();
    for a in &rec.accesses {
        let inst = &text[a.pc as usize].1;
        match (a.space, a.kind) {
            (MemSpace::Param, AccessKind::Load) => assert!(inst.starts_with("ld.param"), "{inst}"),
            (MemSpace::Global, AccessKind::Load) => {
                assert!(inst.starts_with("ld.global"), "{inst}");
                assert!(a.addr >= src && a.addr < src + 4 * n as u64);
            }
            (MemSpace::Global, AccessKind::Store) => {
                assert!(inst.starts_with("st.global"), "{inst}");
                assert!(a.addr >= dst && a.addr < dst + 4 * n as u64);
            }
            other => panic!("unexpected access {other:?}"),
        }
        let expected = if inst.starts_with("ld.param.u64") {
            8
        } else {
            4
        };
        assert_eq!(a.bytes, expected, "{inst}");
    }
    let stores: Vec<&Access> = rec
        .accesses
        .iter()
        .filter(|a| a.kind == AccessKind::Store)
        .collect();
    assert_eq!(stores.len(), n);
    // The guarded branch is issued by every thread and executed by the 14 out of range.
    let bra_pc = text.iter().position(|(_, t)| t.contains("bra")).unwrap() as u32;
    let bras: Vec<&Issue> = rec.issues.iter().filter(|i| i.pc == bra_pc).collect();
    assert_eq!(bras.len(), 64);
    assert_eq!(bras.iter().filter(|i| i.executed).count(), 64 - n);
    let out = mem.read(dst, 4 * n).unwrap();
    for (i, w) in out.chunks(4).enumerate() {
        let v = u32::from_le_bytes(w.try_into().unwrap());
        assert_eq!(v, 3 * i as u32 + 6);
    }
}

#[test]
fn a_block_subset_runs_only_those_blocks() {
    let module = Module::parse(ADD_ONE).unwrap();
    let n = 4 * 32;
    let (mut mem, src, dst) = setup(n);
    let poison = vec![0xa5u8; 4 * n];
    mem.write(dst, &poison).unwrap();
    let params = [
        ParamValue::U64(src),
        ParamValue::U64(dst),
        ParamValue::U32(n as u32),
    ];
    let opts = LaunchOptions {
        blocks: Some(vec![2, 0]),
        ..LaunchOptions::default()
    };
    let mut rec = Recorder::default();
    let stats = module
        .launch_with("add_one", &cfg(4, 32), &params, &mut mem, &opts, &mut rec)
        .unwrap();
    assert_eq!(stats.blocks, 2);
    assert_eq!(rec.blocks, vec![2, 0]);
    let out = mem.read(dst, 4 * n).unwrap();
    for (i, w) in out.chunks(4).enumerate() {
        let v = u32::from_le_bytes(w.try_into().unwrap());
        if i / 32 == 0 || i / 32 == 2 {
            assert_eq!(v, 3 * i as u32 + 6, "element {i}");
        } else {
            assert_eq!(v, 0xa5a5_a5a5, "element {i} of a block that did not run");
        }
    }
    let bad = LaunchOptions {
        blocks: Some(vec![4]),
        ..LaunchOptions::default()
    };
    let err = module
        .launch_with("add_one", &cfg(4, 32), &params, &mut mem, &bad, &mut rec)
        .unwrap_err();
    assert!(matches!(err, SimError::Launch { .. }), "{err}");
}

#[test]
fn a_spin_wait_hits_the_instruction_limit() {
    let module = Module::parse(SPIN).unwrap();
    let mut mem = Memory::new();
    let opts = LaunchOptions {
        max_instructions: Some(100_000),
        ..LaunchOptions::default()
    };
    let err = module
        .launch_with(
            "spin",
            &cfg(1, 32),
            &[],
            &mut mem,
            &opts,
            &mut ptxsim::NoObserver,
        )
        .unwrap_err();
    assert!(err.to_string().contains("limit of 100000"), "{err}");
}

#[test]
fn an_offset_allocation_is_exact_and_misaligned() {
    let mut mem = Memory::new();
    let a = mem.alloc_at_offset(12, 4);
    assert_eq!(a % 256, 4);
    mem.write(a, &[1; 12]).unwrap();
    assert!(mem.read(a, 13).is_err(), "one byte past the end must fault");
    assert!(
        mem.read(a - 1, 1).is_err(),
        "the byte before the start must fault"
    );
    let b = mem.alloc(8);
    assert_eq!(b % 256, 0);
    assert!(b > a + 12);
    mem.free(a).unwrap();
}
