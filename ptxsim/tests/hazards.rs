//! The mutation corpus (`tests/ptx/hazards.cu`, compiled by NVRTC 13.0 for compute_75/80/90):
//! one kernel per hazard that real hardware punishes and ptxsim once let pass, each with a
//! correct twin. Every bug must be reported (or, for a CAS that never retries, must give a
//! wrong result) under every schedule; every twin must pass under every schedule.

use ptxsim::{
    BlockOrder, Hazard, LaunchConfig, LaunchOptions, Memory, Module, NoObserver, ParamValue,
    Schedule, SimError, ThreadOrder,
};

const ARCHES: [(&str, &str); 3] = [
    ("sm75", include_str!("ptx/hazards.sm75.ptx")),
    ("sm80", include_str!("ptx/hazards.sm80.ptx")),
    ("sm90", include_str!("ptx/hazards.sm90.ptx")),
];

/// Every schedule a kernel is run under: three thread orders that run each thread until it
/// blocks, and three preemptive ones with different quanta and seeds.
const SCHEDULES: [Schedule; 6] = [
    Schedule::RunToBlock(ThreadOrder::Ascending),
    Schedule::RunToBlock(ThreadOrder::Descending),
    Schedule::RunToBlock(ThreadOrder::Shuffled(7)),
    Schedule::Preemptive {
        quantum: 1,
        seed: 1,
    },
    Schedule::Preemptive {
        quantum: 3,
        seed: 2,
    },
    Schedule::Preemptive {
        quantum: 7,
        seed: 3,
    },
];

/// Values a kernel never writes: an unwritten output element shows as this.
const POISON: u32 = 0xdead_beef;

/// A small generator for test data, seeded from the clock (printed, and settable with
/// `PTXSIM_SEED`) so every run sees fresh inputs.
struct Lcg(u64);

impl Lcg {
    fn new(test: &str) -> Lcg {
        let seed = std::env::var("PTXSIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("{test}: PTXSIM_SEED={seed}");
        Lcg(seed)
    }
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
    /// Nonzero floats in [-4, 4), exactly representable halves so that sums are exact.
    fn float(&mut self) -> f32 {
        (self.below(16) as f32 - 8.0) / 2.0 + if self.below(2) == 0 { 0.25 } else { -0.25 }
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

fn options(schedule: Schedule) -> LaunchOptions {
    LaunchOptions {
        schedule,
        ..LaunchOptions::default()
    }
}

fn upload(mem: &mut Memory, words: &[u32]) -> u64 {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let a = mem.alloc(bytes.len());
    mem.write(a, &bytes).unwrap();
    a
}

fn poisoned(mem: &mut Memory, n: usize) -> u64 {
    upload(mem, &vec![POISON; n])
}

fn download(mem: &Memory, addr: u64, n: usize) -> Vec<u32> {
    mem.read(addr, 4 * n)
        .unwrap()
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn floats(words: &[u32]) -> Vec<f32> {
    words.iter().map(|&w| f32::from_bits(w)).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn launch(
    m: &Module,
    kernel: &str,
    c: &LaunchConfig,
    params: &[ParamValue],
    mem: &mut Memory,
    o: &LaunchOptions,
) -> Result<(), SimError> {
    m.launch_with(kernel, c, params, mem, o, &mut NoObserver)
        .map(|_| ())
}

/// Asserts `e` is a race in `space`-memory of one of `hazards`, and returns the two threads
/// (x index) it names.
fn expect_race(e: &SimError, shared: bool, hazards: &[Hazard], what: &str) -> (u32, u32) {
    match e {
        SimError::Race {
            space,
            hazard,
            access,
            earlier,
            ..
        } => {
            assert_eq!(
                *space == ptxsim::trace::MemSpace::Shared,
                shared,
                "{what}: {e}"
            );
            assert!(hazards.contains(hazard), "{what}: {e}");
            assert_ne!(
                (access.block, access.thread),
                (earlier.block, earlier.thread),
                "{what}: {e}"
            );
            assert!(!access.inst.is_empty() && !earlier.inst.is_empty(), "{e}");
            (access.thread[0], earlier.thread[0])
        }
        _ => panic!("{what}: expected a race, got {e}"),
    }
}

fn modules() -> Vec<(&'static str, Module)> {
    ARCHES
        .iter()
        .map(|(a, ptx)| (*a, Module::parse(ptx).unwrap()))
        .collect()
}

/// A missing barrier between a shared store and another warp's load of it is a race, found
/// whichever thread runs first (read-after-write or, if the reader ran first,
/// write-after-read); with the barrier every schedule gives the mirrored input.
#[test]
fn missing_barrier_read_after_write() {
    let mut rng = Lcg::new("missing_barrier_read_after_write");
    let (grid, block) = (2u32, 128u32);
    let n = (grid * block) as usize;
    let input: Vec<f32> = (0..n).map(|_| rng.float()).collect();
    for (arch, m) in modules() {
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let mut mem = Memory::new();
            let inp = upload(&mut mem, &bits(&input));
            let out = poisoned(&mut mem, n);
            let p = [ParamValue::U64(inp), ParamValue::U64(out)];
            let e = launch(
                &m,
                "mirror_no_barrier",
                &cfg(grid, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap_err();
            let (a, b) = expect_race(
                &e,
                true,
                &[Hazard::ReadAfterWrite, Hazard::WriteAfterRead],
                &what,
            );
            assert_eq!(a + b, block - 1, "{what}: mirror threads: {e}");
            let out = poisoned(&mut mem, n);
            let p = [ParamValue::U64(inp), ParamValue::U64(out)];
            launch(&m, "mirror", &cfg(grid, block), &p, &mut mem, &options(s)).unwrap();
            let got = floats(&download(&mem, out, n));
            for (i, g) in got.iter().enumerate() {
                let (b0, t) = (i / block as usize, i % block as usize);
                let want = input[b0 * block as usize + block as usize - 1 - t];
                assert_eq!(*g, want, "{what}: element {i}");
            }
        }
    }
}

/// A shared buffer reused by the next loop iteration without a second barrier: the next
/// round's store races with the mirror thread's load of the previous round.
#[test]
fn missing_barrier_write_after_read() {
    let mut rng = Lcg::new("missing_barrier_write_after_read");
    let (block, rounds) = (96u32, 5usize);
    let input: Vec<f32> = (0..rounds * block as usize).map(|_| rng.float()).collect();
    for (arch, m) in modules() {
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let mut mem = Memory::new();
            let inp = upload(&mut mem, &bits(&input));
            let out = poisoned(&mut mem, block as usize);
            let p = [
                ParamValue::U64(inp),
                ParamValue::U64(out),
                ParamValue::U32(rounds as u32),
            ];
            let e = launch(
                &m,
                "rounds_no_second_barrier",
                &cfg(1, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap_err();
            let (a, b) = expect_race(
                &e,
                true,
                &[Hazard::ReadAfterWrite, Hazard::WriteAfterRead],
                &what,
            );
            assert_eq!(a + b, block - 1, "{what}: {e}");
            let out = poisoned(&mut mem, block as usize);
            let p = [
                ParamValue::U64(inp),
                ParamValue::U64(out),
                ParamValue::U32(rounds as u32),
            ];
            launch(&m, "rounds", &cfg(1, block), &p, &mut mem, &options(s)).unwrap();
            let got = floats(&download(&mem, out, block as usize));
            for (t, g) in got.iter().enumerate() {
                let want: f32 = (0..rounds)
                    .map(|r| input[r * block as usize + block as usize - 1 - t])
                    .sum();
                assert_eq!(*g, want, "{what}: thread {t}");
            }
        }
    }
}

/// A plain read-modify-write in place of an atomic: a race whatever the schedule; with the
/// detector off it passes when threads run to completion one by one (what ptxsim did before)
/// and loses updates under a preemptive schedule, as on hardware. The atomic twin counts
/// exactly under every schedule.
#[test]
fn plain_read_modify_write_instead_of_atomic() {
    let mut rng = Lcg::new("plain_read_modify_write_instead_of_atomic");
    let (n, bins) = (1000usize, 8u32);
    let keys: Vec<u32> = (0..n).map(|_| rng.below(bins)).collect();
    let mut want = vec![0u32; bins as usize];
    for &k in &keys {
        want[k as usize] += 1;
    }
    let c = cfg(n.div_ceil(128) as u32, 128);
    for (arch, m) in modules() {
        let run = |kernel: &str, o: &LaunchOptions| {
            let mut mem = Memory::new();
            let k = upload(&mut mem, &keys);
            let b = upload(&mut mem, &vec![0; bins as usize]);
            let p = [
                ParamValue::U64(k),
                ParamValue::U64(b),
                ParamValue::U32(n as u32),
            ];
            launch(&m, kernel, &c, &p, &mut mem, o).map(|_| download(&mem, b, bins as usize))
        };
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let e = run("histogram_plain", &options(s)).unwrap_err();
            expect_race(
                &e,
                false,
                &[
                    Hazard::ReadAfterWrite,
                    Hazard::WriteAfterRead,
                    Hazard::WriteAfterWrite,
                ],
                &what,
            );
            assert_eq!(run("histogram", &options(s)).unwrap(), want, "{what}");
            let unchecked = LaunchOptions {
                race_check: false,
                ..options(s)
            };
            let got = run("histogram_plain", &unchecked).unwrap();
            let total: u32 = got.iter().sum();
            match s {
                Schedule::RunToBlock(_) => assert_eq!(got, want, "{what}: no interleaving"),
                Schedule::Preemptive { .. } => {
                    assert!(total < n as u32, "{what}: {total} of {n} updates kept")
                }
            }
        }
    }
}

/// A compare-and-swap whose failure is ignored: every CAS succeeds when threads run one by
/// one, so the sum is right; under preemption CASes fail and updates are lost. (Its plain
/// load only seeds the CAS, which is not a race.) The retrying twin is exact everywhere.
#[test]
fn compare_and_swap_without_retry() {
    let mut rng = Lcg::new("compare_and_swap_without_retry");
    let n = 500usize;
    let input: Vec<u32> = (0..n).map(|_| 1 + rng.below(1000)).collect();
    let want: u32 = input.iter().sum();
    let c = cfg(n.div_ceil(64) as u32, 64);
    for (arch, m) in modules() {
        let run = |kernel: &str, s: Schedule| {
            let mut mem = Memory::new();
            let i = upload(&mut mem, &input);
            let t = upload(&mut mem, &[0]);
            let p = [
                ParamValue::U64(i),
                ParamValue::U64(t),
                ParamValue::U32(n as u32),
            ];
            launch(&m, kernel, &c, &p, &mut mem, &options(s)).map(|_| download(&mem, t, 1)[0])
        };
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let once = run("sum_cas_once", s).unwrap();
            match s {
                Schedule::RunToBlock(_) => assert_eq!(once, want, "{what}"),
                Schedule::Preemptive { .. } => assert!(once < want, "{what}: {once} vs {want}"),
            }
            assert_eq!(run("sum_cas", s).unwrap(), want, "{what}");
        }
    }
}

/// One element past the end is a fault, for a buffer at the start of its allocation and for
/// one at an offset (a view into a larger buffer), scalar and 16-byte vector.
#[test]
fn off_by_one_overrun() {
    let mut rng = Lcg::new("off_by_one_overrun");
    let n = 1001usize; // not a multiple of 4: the vector kernel's last vector is partial
    let input: Vec<f32> = (0..n).map(|_| rng.float()).collect();
    let want: Vec<f32> = input.iter().map(|x| 2.0 * x).collect();
    for (arch, m) in modules() {
        for (kernel, twin, offsets, threads) in [
            ("scale_overrun", "scale", [0u64, 4, 12], n + 1),
            ("scale4_overrun", "scale4", [0, 16, 48], n.div_ceil(4)),
        ] {
            for off in offsets {
                for s in [SCHEDULES[0], SCHEDULES[4]] {
                    let what = format!("{arch} {kernel} offset {off} {s:?}");
                    let c = cfg(threads.div_ceil(64) as u32, 64);
                    let mut mem = Memory::new();
                    let i = mem.alloc_at_offset(4 * n, off);
                    mem.write(
                        i,
                        &bits(&input)
                            .iter()
                            .flat_map(|w| w.to_le_bytes())
                            .collect::<Vec<_>>(),
                    )
                    .unwrap();
                    let o = mem.alloc_at_offset(4 * n, off);
                    mem.write(o, &vec![0xef; 4 * n]).unwrap();
                    let p = [
                        ParamValue::U64(i),
                        ParamValue::U64(o),
                        ParamValue::U32(n as u32),
                    ];
                    let e = launch(&m, kernel, &c, &p, &mut mem, &options(s)).unwrap_err();
                    match &e {
                        SimError::Fault { msg, .. } => {
                            assert!(msg.contains("out of bounds"), "{what}: {e}")
                        }
                        _ => panic!("{what}: {e}"),
                    }
                    mem.write(o, &vec![0xef; 4 * n]).unwrap();
                    launch(&m, twin, &c, &p, &mut mem, &options(s)).unwrap();
                    assert_eq!(floats(&download(&mem, o, n)), want, "{what}");
                }
            }
        }
    }
}

/// Lanes that exchange values through shared memory need `__syncwarp()` between the store
/// and the load since Volta: without it the race is found in both directions, with it the
/// lanes are ordered (the warp's vector clocks) and every schedule swaps correctly.
#[test]
fn warp_synchronous_read_without_syncwarp() {
    let mut rng = Lcg::new("warp_synchronous_read_without_syncwarp");
    let (grid, block) = (2u32, 64u32);
    let n = (grid * block) as usize;
    let input: Vec<u32> = (0..n).map(|_| rng.next()).collect();
    for (arch, m) in modules() {
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let mut mem = Memory::new();
            let i = upload(&mut mem, &input);
            let o = poisoned(&mut mem, n);
            let p = [ParamValue::U64(i), ParamValue::U64(o)];
            let e = launch(
                &m,
                "swap_no_syncwarp",
                &cfg(grid, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap_err();
            let (a, b) = expect_race(
                &e,
                true,
                &[Hazard::ReadAfterWrite, Hazard::WriteAfterRead],
                &what,
            );
            assert_eq!(a ^ 1, b, "{what}: neighbouring lanes: {e}");
            let o = poisoned(&mut mem, n);
            let p = [ParamValue::U64(i), ParamValue::U64(o)];
            launch(
                &m,
                "swap_syncwarp",
                &cfg(grid, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap();
            let got = download(&mem, o, n);
            for (k, g) in got.iter().enumerate() {
                assert_eq!(*g, input[k ^ 1], "{what}: element {k}");
            }
        }
    }
}

/// A shuffle that reads a lane outside its member mask gets an undefined value on hardware:
/// a fault here. The twin shuffles within the half-warp.
#[test]
fn shuffle_outside_member_mask() {
    let mut rng = Lcg::new("shuffle_outside_member_mask");
    let block = 64u32;
    let input: Vec<u32> = (0..block).map(|_| rng.below(1 << 20)).collect();
    for (arch, m) in modules() {
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let mut mem = Memory::new();
            let i = upload(&mut mem, &input);
            let o = poisoned(&mut mem, block as usize);
            let p = [ParamValue::U64(i), ParamValue::U64(o)];
            let e = launch(
                &m,
                "half_warp_sum_outside_mask",
                &cfg(1, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap_err();
            match &e {
                SimError::Fault { msg, inst, .. } => {
                    assert!(msg.contains("does not include it"), "{what}: {e}");
                    assert!(inst.contains("shfl.sync.bfly"), "{what}: {e}");
                }
                _ => panic!("{what}: {e}"),
            }
            launch(
                &m,
                "half_warp_sum",
                &cfg(1, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap();
            let got = download(&mem, o, block as usize);
            for (t, g) in got.iter().enumerate() {
                let w = t / 32 * 32;
                let want = if t % 32 < 16 {
                    input[w..w + 16].iter().sum()
                } else {
                    input[t]
                };
                assert_eq!(*g, want, "{what}: thread {t}");
            }
        }
    }
}

/// `bra.uni` promises that the lanes of a warp agree on the branch; NVRTC emits it only
/// unguarded, so the divergent one is hand-written. The twin's predicate is uniform.
const UNI: &str = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry uni(.param .u64 out, .param .u32 lane_dependent)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [lane_dependent];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    and.b32 %r4, %r2, %r1;
    add.s32 %r4, %r4, %r3;
    and.b32 %r4, %r4, 1;
    setp.eq.u32 %p1, %r4, 0;
    mov.u32 %r5, 10;
    @%p1 bra.uni EVEN;
    mov.u32 %r5, 20;
EVEN:
    cvta.to.global.u64 %rd1, %rd1;
    mul.wide.u32 %rd2, %r2, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r5;
    ret;
}
"#;

#[test]
fn divergent_uni_branch() {
    let m = Module::parse(UNI).unwrap();
    for s in SCHEDULES {
        let mut mem = Memory::new();
        let o = poisoned(&mut mem, 64);
        let e = launch(
            &m,
            "uni",
            &cfg(1, 64),
            &[ParamValue::U64(o), ParamValue::U32(1)],
            &mut mem,
            &options(s),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("divergent `.uni` branch"),
            "{s:?}: {e}"
        );
        launch(
            &m,
            "uni",
            &cfg(1, 64),
            &[ParamValue::U64(o), ParamValue::U32(0)],
            &mut mem,
            &options(s),
        )
        .unwrap();
        assert_eq!(download(&mem, o, 64), vec![10; 64], "{s:?}");
    }
}

/// A grid-wide barrier built by spinning on an atomic counter never finishes (blocks run one
/// after another): the instruction limit stops it with a fault naming the spinning thread.
/// The twin spins only on a thread of its own block, which gets its turn under every
/// schedule.
#[test]
fn spin_wait_hits_the_instruction_limit() {
    let mut rng = Lcg::new("spin_wait_hits_the_instruction_limit");
    let (grid, block) = (3u32, 64u32);
    let input: Vec<u32> = (0..grid).map(|_| rng.below(1 << 30)).collect();
    for (arch, m) in modules() {
        for s in SCHEDULES {
            let what = format!("{arch} {s:?}");
            let mut mem = Memory::new();
            let arrived = upload(&mut mem, &[0]);
            let o = poisoned(&mut mem, (grid * block) as usize);
            let limited = LaunchOptions {
                max_instructions: Some(1_000_000),
                ..options(s)
            };
            let e = launch(
                &m,
                "grid_barrier_spin",
                &cfg(grid, block),
                &[ParamValue::U64(arrived), ParamValue::U64(o)],
                &mut mem,
                &limited,
            )
            .unwrap_err();
            match &e {
                SimError::Fault {
                    kernel,
                    block,
                    thread,
                    msg,
                    ..
                } => {
                    assert_eq!(kernel, "grid_barrier_spin");
                    assert_eq!(*block, [0, 0, 0], "{what}: {e}");
                    assert_eq!(*thread, [0, 0, 0], "{what}: {e}");
                    assert!(msg.contains("limit of 1000000"), "{what}: {e}");
                }
                _ => panic!("{what}: {e}"),
            }
            let i = upload(&mut mem, &input);
            let p = [ParamValue::U64(i), ParamValue::U64(o)];
            launch(
                &m,
                "block_flag_spin",
                &cfg(grid, block),
                &p,
                &mut mem,
                &options(s),
            )
            .unwrap();
            let got = download(&mem, o, (grid * block) as usize);
            for (k, g) in got.iter().enumerate() {
                assert_eq!(*g, input[k / block as usize], "{what}: element {k}");
            }
        }
    }
}
