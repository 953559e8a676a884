//! Every kernel the crate ships, from the very PTX `build.rs` embedded, executed on ptxsim (the
//! CPU PTX interpreter in this workspace) through the same launch plans the CUDA path uses, and
//! compared with the reference: every PTX architecture, dtype, layout and rank, forward and
//! backward, both index widths, random and edge shapes, and the PyTorch fixtures.
//!
//! Every launch runs with ptxsim's checks on: exact buffer bounds (each buffer is allocated at
//! its size, aligned or one element off, and followed by an unmapped gap), alignment,
//! uninitialised shared memory, barrier and shuffle misuse, the race check, and an instruction
//! limit. Every kernel family runs under two kinds of thread schedule: run-to-block (threads in
//! ascending, descending or shuffled order, each until it blocks) and preemptive (a thread is
//! switched out every few instructions for one chosen by a seeded generator), with forward,
//! reversed and shuffled block orders. Every seed is drawn from the test's printed seed, so
//! `ADAPTIVE_POOL_TEST_SEED` replays a run exactly; a failure names its schedule.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use adaptive_pool::half::{bf16, f16};
use adaptive_pool::plan::{BackwardKernel, ForwardKernel, IndexWidth};
use adaptive_pool::{ptx, reference, window, BackwardAlgorithm, DType, Element, Layout, Shape};
use common::cases::{
    check_backward, check_case_dtype, check_forward, edge_cases, random_cases, Case,
};
use common::golden::{load_all, GoldenCase, GoldenDType, GoldenElement};
use common::sim::{module, Misalign, Sim};
use common::{
    assert_close, backward_scale, forward_scale, kernel_vs_reference, poison, random_data,
    reference_vs_torch, rng, ErrorSummary,
};
use ptxsim::{BlockOrder, LaunchConfig, Memory, Module, ParamValue, Schedule, ThreadOrder};
use rand::rngs::StdRng;
use rand::Rng;

/// Random shapes per (architecture, dtype).
const RANDOM_CASES: usize = 24;

/// Preemption quanta: a thread runs at most this many instructions (a pseudo-random number
/// from 1 up) before the scheduler picks the next one. 1 interleaves at every instruction; 2
/// and 5 also let a load and its add run together while still splitting a load-add-store or a
/// compare-and-swap loop.
const QUANTA: [u32; 3] = [1, 2, 5];

fn archs() -> Vec<u32> {
    let archs = ptx::archs();
    assert!(
        !archs.is_empty(),
        "no PTX was built: these tests need NVRTC at build time (bash .ci/nvrtc.sh)"
    );
    archs
}

/// The two kinds of thread schedule every kernel family runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    RunToBlock,
    Preemptive,
}

/// The `n`th (block order, schedule) of a kind, seeds drawn from `rng`. Run-to-block cycles
/// through ascending, descending and shuffled threads; preemptive through the quanta; both
/// through forward, reversed and shuffled blocks.
fn schedule(kind: Kind, n: usize, rng: &mut StdRng) -> (BlockOrder, Schedule) {
    let blocks = match (n / 3) % 3 {
        0 => BlockOrder::Forward,
        1 => BlockOrder::Reverse,
        _ => BlockOrder::Shuffled(rng.random()),
    };
    let threads = match kind {
        Kind::RunToBlock => Schedule::RunToBlock(match n % 3 {
            0 => ThreadOrder::Ascending,
            1 => ThreadOrder::Descending,
            _ => ThreadOrder::Shuffled(rng.random()),
        }),
        Kind::Preemptive => Schedule::Preemptive {
            quantum: QUANTA[n % QUANTA.len()],
            seed: rng.random(),
        },
    };
    (blocks, threads)
}

/// Runs `f`; if it panics, panics again with `context()` (what the run was: kernel, schedule,
/// placement, index width) in front of the message, so that a failure says what to replay.
fn with_context<R>(context: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{}: {msg}", context())
        }
    }
}

fn describe(sim: &Sim) -> String {
    format!(
        "compute_{} {:?} {:?} {:?} {:?} {:?} {:?}",
        sim.arch,
        sim.forward_kernel,
        sim.backward_kernel,
        sim.index,
        sim.misalign,
        sim.order,
        sim.schedule
    )
}

/// The 16 kernel groups: each forward and backward family in each layout it supports (the
/// labels of [`KernelTable`]).
fn kernel_groups() -> Vec<(String, Layout)> {
    // A 1x1 output of 16 channels is one that every family supports in some layout.
    let out = Shape::new(&[1, 16, 1, 1]).expect("shape");
    let mut groups = Vec::new();
    for layout in Layout::ALL {
        for k in ForwardKernel::ALL {
            if k.supports(&out, layout, DType::F32) {
                groups.push((format!("fwd {k:?}"), layout));
            }
        }
        for k in BackwardKernel::ALL {
            if k.supports(&out, layout, DType::F32) {
                groups.push((format!("bwd {k:?}"), layout));
            }
        }
    }
    assert_eq!(groups.len(), 16, "{groups:?}");
    groups
}

/// Every kernel entry point of the modules that the plans launch (all but `window_table`,
/// which its own test runs) for one architecture and one of `dtypes`.
fn entry_points(arch: u32, dtypes: &[DType]) -> BTreeSet<String> {
    ptx::modules()
        .into_iter()
        .filter(|&m| m != "window_table")
        .flat_map(|m| module(m, arch).kernel_names())
        .filter(|name| dtypes.iter().any(|d| name.contains(&format!("_{d}_"))))
        .map(str::to_string)
        .collect()
}

/// What ran per (kernel group, architecture, dtype, layout): cases, largest error, and which
/// schedules, buffer placements and index widths it ran under.
#[derive(Default)]
struct Coverage {
    cases: usize,
    max_err: f64,
    kinds: BTreeSet<Kind>,
    placements: BTreeSet<Misalign>,
    widths: BTreeSet<&'static str>,
}

type Key = (String, u32, &'static str, &'static str);

#[derive(Default)]
struct KernelTable {
    rows: BTreeMap<Key, Coverage>,
    /// Kernel entry points launched, per architecture.
    launched: BTreeMap<u32, BTreeSet<String>>,
}

fn width_name(w: IndexWidth) -> &'static str {
    match w {
        IndexWidth::Auto => "auto",
        IndexWidth::Idx32 => "idx32",
        IndexWidth::Idx64 => "idx64",
    }
}

impl KernelTable {
    fn key(kernel: String, arch: u32, dtype: DType, layout: Layout) -> Key {
        (kernel, arch, dtype.name(), layout.name())
    }

    /// Cases recorded so far for `key`: the position of the next one in the rotations.
    fn count(&self, key: &Key) -> usize {
        self.rows.get(key).map_or(0, |c| c.cases)
    }

    fn record(&mut self, key: Key, kind: Kind, sim: &Sim, err: f64) {
        let e = self.rows.entry(key).or_default();
        e.cases += 1;
        e.max_err = e.max_err.max(err);
        e.kinds.insert(kind);
        e.placements.insert(sim.misalign);
        e.widths.insert(width_name(sim.index));
        let launched = sim.launched.lock().unwrap_or_else(|e| e.into_inner());
        self.launched
            .entry(sim.arch)
            .or_default()
            .extend(launched.iter().cloned());
    }

    fn print(&self) {
        println!(
            "{:<22} {:>4} {:>5} {:>4} {:>6} {:>11}  schedules / placements / widths",
            "kernel", "arch", "dtype", "lay", "cases", "max error"
        );
        for ((k, arch, dtype, layout), c) in &self.rows {
            println!(
                "{k:<22} {arch:>4} {dtype:>5} {layout:>4} {:>6} {:>11.3e}  {:?} / {:?} / {:?}",
                c.cases, c.max_err, c.kinds, c.placements, c.widths
            );
        }
    }

    /// Every group ran on every architecture and each of `dtypes` under `kinds`, in every
    /// buffer placement and both index widths, and every kernel entry point of those dtypes
    /// was launched.
    fn assert_complete(&self, kinds: &[Kind], dtypes: &[DType]) {
        for arch in archs() {
            for &dtype in dtypes {
                for (label, layout) in kernel_groups() {
                    let key = Self::key(label, arch, dtype, layout);
                    let c = self
                        .rows
                        .get(&key)
                        .unwrap_or_else(|| panic!("{key:?} never ran"));
                    assert!(kinds.iter().all(|k| c.kinds.contains(k)), "{key:?}");
                    assert_eq!(c.placements.len(), Misalign::ALL.len(), "{key:?}");
                    assert_eq!(c.widths.len(), 2, "{key:?}");
                }
            }
            let launched = self.launched.get(&arch).cloned().unwrap_or_default();
            let missing: Vec<_> = entry_points(arch, dtypes)
                .difference(&launched)
                .cloned()
                .collect();
            assert!(
                missing.is_empty(),
                "compute_{arch}: never launched: {missing:?}"
            );
        }
    }
}

/// Thread-items a forced run may take: a warp or a block per output cell is meant for few
/// cells with large windows, and forcing it on 70,000 one-element windows would only spend
/// simulator time on idle lanes.
const FORCED_THREAD_BUDGET: usize = 1 << 17;

fn affordable_forward(kernel: ForwardKernel, out: &Shape) -> bool {
    let per_item = match kernel {
        ForwardKernel::Elementwise | ForwardKernel::NhwcVector | ForwardKernel::NhwcSplit => 1,
        ForwardKernel::GlobalWarp | ForwardKernel::WarpPerCell => 32,
        ForwardKernel::GlobalLanes => 8,
        _ => 256,
    };
    out.numel().saturating_mul(per_item) <= FORCED_THREAD_BUDGET
}

fn algorithm_of(kernel: BackwardKernel) -> BackwardAlgorithm {
    if kernel.is_deterministic() {
        BackwardAlgorithm::Deterministic
    } else {
        BackwardAlgorithm::Atomic
    }
}

/// A Sim for the `n`th case of a kernel group: the schedule of `kind`, and the buffer
/// placement and index width in rotation (all four placements in four cases, both widths in
/// two, every pairing in eight).
fn rotated_sim(arch: u32, kind: Kind, n: usize, rng: &mut StdRng) -> Sim {
    let (order, schedule) = schedule(kind, n, rng);
    let mut sim = Sim::new(arch, order);
    sim.schedule = schedule;
    sim.misalign = Misalign::ALL[n % Misalign::ALL.len()];
    sim.index = if (n + n / 4) % 2 == 0 {
        IndexWidth::Auto
    } else {
        IndexWidth::Idx64
    };
    sim
}

fn run_family_checks<T: Element>(
    arch: u32,
    kind: Kind,
    cases: &[Case],
    rng: &mut StdRng,
    table: &mut KernelTable,
) {
    for case in cases {
        let shape = Shape::new(&case.dims).expect("shape");
        let out = case.output_size.resolve(&shape).expect("output shape");
        for kernel in ForwardKernel::ALL {
            if kernel.supports(&out, case.layout, T::DTYPE) && affordable_forward(kernel, &out) {
                let key = KernelTable::key(format!("fwd {kernel:?}"), arch, T::DTYPE, case.layout);
                let mut sim = rotated_sim(arch, kind, table.count(&key), rng);
                sim.forward_kernel = Some(kernel);
                let err =
                    with_context(|| describe(&sim), || check_forward::<T, _>(&sim, case, rng));
                table.record(key, kind, &sim, err);
            }
        }
        for kernel in BackwardKernel::ALL {
            if kernel.supports(&out, case.layout, T::DTYPE) {
                let key = KernelTable::key(format!("bwd {kernel:?}"), arch, T::DTYPE, case.layout);
                let mut sim = rotated_sim(arch, kind, table.count(&key), rng);
                sim.backward_kernel = Some(kernel);
                let algorithm = algorithm_of(kernel);
                let err = with_context(
                    || describe(&sim),
                    || check_backward::<T, _>(&sim, case, algorithm, rng),
                );
                table.record(key, kind, &sim, err);
            }
        }
    }
}

/// Every kernel family forced on every shape it supports, on every architecture, each of
/// `dtypes` and layout, 3-D and 4-D, against the reference (outputs poisoned first), under
/// schedules of `kind`; buffer placements and index widths rotate, so that every group also
/// runs with input and output misaligned apart and together, and every `_idx64` entry point
/// runs on small shapes.
fn every_kernel_family(kind: Kind, dtypes: &[DType]) {
    let mut rng = rng(&format!("kernel families, {kind:?} schedules, {dtypes:?}"));
    let mut table = KernelTable::default();
    let started = Instant::now();
    for arch in archs() {
        let mut cases = edge_cases();
        cases.extend(random_cases(&mut rng, RANDOM_CASES));
        for dtype in dtypes {
            match dtype {
                DType::F32 => run_family_checks::<f32>(arch, kind, &cases, &mut rng, &mut table),
                DType::F64 => run_family_checks::<f64>(arch, kind, &cases, &mut rng, &mut table),
                DType::F16 => run_family_checks::<f16>(arch, kind, &cases, &mut rng, &mut table),
                DType::Bf16 => run_family_checks::<bf16>(arch, kind, &cases, &mut rng, &mut table),
            }
        }
    }
    table.print();
    let runs: usize = table.rows.values().map(|c| c.cases).sum();
    println!(
        "{runs} forced runs under {kind:?} schedules in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    table.assert_complete(&[kind], dtypes);
}

#[test]
fn every_kernel_family_matches_the_reference_run_to_block() {
    every_kernel_family(Kind::RunToBlock, &DType::ALL);
}

// The preemptive runs cost about three times as much: two tests, so that they run in
// parallel.
#[test]
fn every_kernel_family_matches_the_reference_preemptive_f32_f16() {
    every_kernel_family(Kind::Preemptive, &[DType::F32, DType::F16]);
}

#[test]
fn every_kernel_family_matches_the_reference_preemptive_f64_bf16() {
    every_kernel_family(Kind::Preemptive, &[DType::F64, DType::Bf16]);
}

/// What users get: the planner's own choice, both backward algorithms, schedules of both
/// kinds in rotation.
#[test]
fn selected_kernels_match_the_reference_on_every_architecture() {
    let mut rng = rng("selected");
    for arch in archs() {
        let started = Instant::now();
        let mut stats = common::sim::SimStats::default();
        let mut n = 0;
        for dtype in DType::ALL {
            let mut summary = ErrorSummary::default();
            let mut cases = edge_cases();
            cases.extend(random_cases(&mut rng, RANDOM_CASES));
            for case in &cases {
                for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
                    let kind = [Kind::RunToBlock, Kind::Preemptive][n % 2];
                    let (order, schedule) = schedule(kind, n / 2, &mut rng);
                    n += 1;
                    let mut sim = Sim::new(arch, order);
                    sim.schedule = schedule;
                    with_context(
                        || format!("{} {case:?}", describe(&sim)),
                        || check_case_dtype(&sim, dtype, case, algorithm, &mut rng, &mut summary),
                    );
                    let s = sim.stats.lock().map(|s| *s).unwrap_or_default();
                    stats.instructions += s.instructions;
                    stats.launches += s.launches;
                }
            }
            summary.print(&format!(
                "compute_{arch} {dtype} selected forward + both backwards"
            ));
        }
        println!(
            "compute_{arch}: {} launches, {} instructions in {:.2} s",
            stats.launches,
            stats.instructions,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Guards the vector kernels' alignment test: the 16-byte kernels, the global warp kernel and
/// the element-wise kernel (16-byte loads along wide NCHW window rows) on buffers of which the input alone, the output alone, or both start one element past a
/// 16-byte boundary (views into larger buffers) must fall back to scalar accesses, not fault.
/// A test that looks at one pointer only takes the vector path with the other misaligned and
/// faults on the misaligned 16-byte access.
#[test]
fn vector_kernels_fall_back_when_either_buffer_is_misaligned() {
    let mut rng = rng("misaligned");
    let mut table = KernelTable::default();
    let placements = [Misalign::Src, Misalign::Dst, Misalign::Both];
    for arch in archs() {
        for case in edge_cases() {
            let shape = Shape::new(&case.dims).expect("shape");
            let out = case.output_size.resolve(&shape).expect("output shape");
            for dtype in DType::ALL {
                for misalign in placements {
                    for kernel in [
                        ForwardKernel::NhwcVector,
                        ForwardKernel::NhwcSplit,
                        ForwardKernel::GlobalWarp,
                        ForwardKernel::Elementwise,
                    ] {
                        // The element-wise kernel's 16-byte loads are NCHW only.
                        let vectorised =
                            kernel != ForwardKernel::Elementwise || case.layout == Layout::Nchw;
                        if vectorised
                            && kernel.supports(&out, case.layout, dtype)
                            && affordable_forward(kernel, &out)
                        {
                            let mut sim = Sim::new(arch, BlockOrder::Forward);
                            sim.forward_kernel = Some(kernel);
                            sim.misalign = misalign;
                            let err = with_context(
                                || describe(&sim),
                                || match dtype {
                                    DType::F32 => check_forward::<f32, _>(&sim, &case, &mut rng),
                                    DType::F64 => check_forward::<f64, _>(&sim, &case, &mut rng),
                                    DType::F16 => check_forward::<f16, _>(&sim, &case, &mut rng),
                                    DType::Bf16 => check_forward::<bf16, _>(&sim, &case, &mut rng),
                                },
                            );
                            let key = KernelTable::key(
                                format!("fwd {kernel:?}"),
                                arch,
                                dtype,
                                case.layout,
                            );
                            table.record(key, Kind::RunToBlock, &sim, err);
                        }
                    }
                    let kernel = BackwardKernel::GatherNhwcVector;
                    if kernel.supports(&out, case.layout, dtype) {
                        let mut sim = Sim::new(arch, BlockOrder::Forward);
                        sim.backward_kernel = Some(kernel);
                        sim.misalign = misalign;
                        let a = BackwardAlgorithm::Deterministic;
                        let err = with_context(
                            || describe(&sim),
                            || match dtype {
                                DType::F32 => check_backward::<f32, _>(&sim, &case, a, &mut rng),
                                DType::F64 => check_backward::<f64, _>(&sim, &case, a, &mut rng),
                                DType::F16 => check_backward::<f16, _>(&sim, &case, a, &mut rng),
                                DType::Bf16 => check_backward::<bf16, _>(&sim, &case, a, &mut rng),
                            },
                        );
                        let key =
                            KernelTable::key(format!("bwd {kernel:?}"), arch, dtype, case.layout);
                        table.record(key, Kind::RunToBlock, &sim, err);
                    }
                }
            }
        }
    }
    table.print();
    // Each vector kernel (the NHWC vector and split forwards, the NHWC backward, the global
    // warp, the NCHW element-wise), on every architecture and dtype, with each of the three
    // placements.
    assert_eq!(table.rows.len(), 5 * archs().len() * DType::ALL.len());
    for (key, c) in &table.rows {
        assert_eq!(c.placements.len(), placements.len(), "{key:?}");
    }
}

/// The deterministic backward kernels (and every forward kernel) give bitwise identical
/// results whatever order the blocks run in and however their threads interleave: forward,
/// reversed and shuffled blocks, with threads ascending, descending, shuffled and preempted.
#[test]
fn deterministic_kernels_are_bitwise_reproducible_across_schedules() {
    let mut rng = rng("determinism");
    let runs_of = |rng: &mut StdRng| -> Vec<(BlockOrder, Schedule)> {
        vec![
            (
                BlockOrder::Forward,
                Schedule::RunToBlock(ThreadOrder::Ascending),
            ),
            (
                BlockOrder::Reverse,
                Schedule::RunToBlock(ThreadOrder::Descending),
            ),
            (
                BlockOrder::Shuffled(rng.random()),
                Schedule::RunToBlock(ThreadOrder::Shuffled(rng.random())),
            ),
            (
                BlockOrder::Shuffled(rng.random()),
                Schedule::Preemptive {
                    quantum: 1,
                    seed: rng.random(),
                },
            ),
            (
                BlockOrder::Shuffled(rng.random()),
                Schedule::Preemptive {
                    quantum: 5,
                    seed: rng.random(),
                },
            ),
        ]
    };
    let mut runs = 0usize;
    let arch = *archs().last().expect("an architecture");
    let mut cases = edge_cases();
    cases.extend(random_cases(&mut rng, 16));
    for case in &cases {
        let shape = Shape::new(&case.dims).expect("shape");
        let out = case.output_size.resolve(&shape).expect("output shape");
        let grad: Vec<bf16> = random_data(&mut rng, out.numel());
        let input: Vec<bf16> = random_data(&mut rng, shape.numel());
        for kernel in BackwardKernel::ALL
            .into_iter()
            .filter(|k| k.is_deterministic())
        {
            if !kernel.supports(&out, case.layout, DType::Bf16) {
                continue;
            }
            let schedules = runs_of(&mut rng);
            let results: Vec<Vec<u16>> = schedules
                .iter()
                .map(|&(order, schedule)| {
                    let mut sim = Sim::new(arch, order);
                    sim.backward_kernel = Some(kernel);
                    sim.schedule = schedule;
                    let got = with_context(
                        || describe(&sim),
                        || {
                            sim.backward(
                                &grad,
                                &out,
                                &shape,
                                case.layout,
                                BackwardAlgorithm::Deterministic,
                                poison(shape.numel()),
                            )
                        },
                    );
                    got.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(
                results.iter().all(|r| *r == results[0]),
                "{kernel:?} {case:?}: bits differ between {schedules:?}"
            );
            runs += schedules.len();
        }
        for kernel in ForwardKernel::ALL {
            if !kernel.supports(&out, case.layout, DType::Bf16) || !affordable_forward(kernel, &out)
            {
                continue;
            }
            let schedules = runs_of(&mut rng);
            let results: Vec<Vec<u16>> = schedules
                .iter()
                .map(|&(order, schedule)| {
                    let mut sim = Sim::new(arch, order);
                    sim.forward_kernel = Some(kernel);
                    sim.schedule = schedule;
                    let got = with_context(
                        || describe(&sim),
                        || sim.forward(&input, &shape, case.layout, &out, poison(out.numel())),
                    );
                    got.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(
                results.iter().all(|r| *r == results[0]),
                "{kernel:?} {case:?}: bits differ between {schedules:?}"
            );
            runs += schedules.len();
        }
    }
    println!("{runs} runs over 5 schedules each gave identical bits per kernel and case");
}

fn golden_case<T: Element + GoldenElement>(sim: &Sim, case: &GoldenCase) -> f64 {
    let layout = if case.channels_last {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let input: Vec<T> = case.decode(&case.input).expect("dtype");
    let torch_out: Vec<T> = case.decode(&case.output).expect("dtype");
    let grad_out: Vec<T> = case.decode(&case.grad_output).expect("dtype");
    let torch_grad_in: Vec<T> = case.decode(&case.grad_input).expect("dtype");
    let shape = Shape::new(&case.input_shape).expect("shape");
    let out_shape = Shape::new(&case.output_shape).expect("shape");
    let tol = reference_vs_torch(<T as Element>::DTYPE);

    let out = sim.forward(
        &input,
        &shape,
        layout,
        &out_shape,
        poison(out_shape.numel()),
    );
    let scale = forward_scale(
        &input,
        &shape,
        layout,
        (out_shape.height(), out_shape.width()),
    );
    let e1 = assert_close(
        &format!("{} forward", case.name),
        &out,
        &torch_out,
        &scale,
        tol,
    );
    let grad_in = sim.backward(
        &grad_out,
        &out_shape,
        &shape,
        layout,
        BackwardAlgorithm::Atomic,
        poison(shape.numel()),
    );
    let scale = backward_scale(&grad_out, &out_shape, &shape, layout);
    let e2 = assert_close(
        &format!("{} backward", case.name),
        &grad_in,
        &torch_grad_in,
        &scale,
        tol,
    );
    e1.max(e2)
}

#[test]
fn pytorch_fixtures_on_every_architecture() {
    let cases = load_all();
    for arch in archs() {
        let mut sim = Sim::new(arch, BlockOrder::Reverse);
        sim.schedule = Schedule::RunToBlock(ThreadOrder::Descending);
        let mut summary = ErrorSummary::default();
        for case in &cases {
            let (dtype, err) = match case.dtype {
                GoldenDType::F32 => (DType::F32, golden_case::<f32>(&sim, case)),
                GoldenDType::F64 => (DType::F64, golden_case::<f64>(&sim, case)),
                GoldenDType::F16 => (DType::F16, golden_case::<f16>(&sim, case)),
                GoldenDType::Bf16 => (DType::Bf16, golden_case::<bf16>(&sim, case)),
            };
            summary.record(dtype, err);
            summary.cases += 1;
        }
        summary.print(&format!("compute_{arch} kernels vs PyTorch fixtures"));
    }
}

/// The atomic backward adds in whatever order blocks and threads run: forward, reversed and
/// shuffled block orders, threads run to their barriers or preempted every instruction or two
/// (so that the adds of different threads interleave and bf16's compare-and-swap loops below
/// sm_90 retry), must all agree with the reference (and with each other within tolerance).
fn block_orders_agree<T: Element>(arch: u32, rng: &mut StdRng) -> f64 {
    // Upsampling with overlapping windows: many atomic contributions per grad_input element;
    // and two tall windows overlapping by a column, which the scatter splits over lanes along
    // their rows and over threads taking every Tr-th row (`plan::scatter_split`).
    let mut worst = 0.0f64;
    for (layout, dims, out) in Layout::ALL.into_iter().flat_map(|l| {
        [
            (l, [2, 3, 11, 7], [2, 3, 16, 13]),
            (l, [1, 1, 520, 71], [1, 1, 1, 2]),
        ]
    }) {
        let shape = Shape::new(&dims).expect("shape");
        let out_shape = Shape::new(&out).expect("shape");
        let grad: Vec<T> = random_data(rng, out_shape.numel());
        let want = reference::backward(&grad, &out_shape, &shape, layout).expect("reference");
        let scale = backward_scale(&grad, &out_shape, &shape, layout);
        let tol = kernel_vs_reference(T::DTYPE);
        let mut results = Vec::new();
        for (order, schedule) in [
            (
                BlockOrder::Forward,
                Schedule::RunToBlock(ThreadOrder::Ascending),
            ),
            (
                BlockOrder::Reverse,
                Schedule::RunToBlock(ThreadOrder::Descending),
            ),
            (
                BlockOrder::Shuffled(rng.random()),
                Schedule::Preemptive {
                    quantum: 1,
                    seed: rng.random(),
                },
            ),
            (
                BlockOrder::Shuffled(rng.random()),
                Schedule::Preemptive {
                    quantum: 2,
                    seed: rng.random(),
                },
            ),
        ] {
            let mut sim = Sim::new(arch, order);
            sim.schedule = schedule;
            // The scatter in both layouts (the planner sends channels-last to the gather).
            sim.backward_kernel = Some(BackwardKernel::AtomicScatter);
            let got = sim.backward(
                &grad,
                &out_shape,
                &shape,
                layout,
                BackwardAlgorithm::Atomic,
                poison(shape.numel()),
            );
            worst = worst.max(assert_close(
                &format!("compute_{arch} {:?} {order:?} {schedule:?}", T::DTYPE),
                &got,
                &want,
                &scale,
                tol,
            ));
            results.push(got);
        }
        for other in &results[1..] {
            assert_close("block orders agree", other, &results[0], &scale, tol);
        }
    }
    worst
}

#[test]
fn atomic_backward_agrees_across_schedules() {
    let mut rng = rng("block orders");
    for arch in archs() {
        let errs = [
            block_orders_agree::<f32>(arch, &mut rng),
            block_orders_agree::<f64>(arch, &mut rng),
            block_orders_agree::<f16>(arch, &mut rng),
            block_orders_agree::<bf16>(arch, &mut rng),
        ];
        println!(
            "compute_{arch}: 4 schedules x 2 layouts, largest errors f32/f64/f16/bf16 {errs:?}"
        );
    }
}

/// The CUDA window formula (kernels/common.cuh, through the window_table kernels) and the Rust
/// one (`adaptive_pool::window`) agree for every input and output length up to 64, in both
/// index widths, on every architecture.
#[test]
fn cuda_and_rust_window_formulas_agree() {
    const MAX_LEN: u64 = 64;
    let mut compared = 0usize;
    for arch in archs() {
        let src = ptx::get("window_table", arch).expect("window_table PTX");
        let module = Module::parse(src).expect("parse window_table");
        for kernel in ["window_table_idx32", "window_table_idx64"] {
            for in_len in 1..=MAX_LEN {
                for out_len in 1..=MAX_LEN {
                    let mut mem = Memory::new();
                    let table = mem.alloc(16 * out_len as usize);
                    let cfg = LaunchConfig {
                        grid: [1, 1, 1],
                        block: [32, 1, 1],
                        dynamic_shared_bytes: 0,
                        block_order: BlockOrder::Forward,
                    };
                    let params = [
                        ParamValue::U64(table),
                        ParamValue::U64(in_len),
                        ParamValue::U64(out_len),
                    ];
                    module
                        .launch(kernel, &cfg, &params, &mut mem)
                        .expect("launch");
                    let raw = mem.read(table, 16 * out_len as usize).expect("read");
                    for o in 0..out_len as usize {
                        let word = |k: usize| {
                            let b = &raw[8 * k..8 * k + 8];
                            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                                as usize
                        };
                        let rust = window::window(o, out_len as usize, in_len as usize);
                        assert_eq!(
                            word(2 * o)..word(2 * o + 1),
                            rust,
                            "{kernel} compute_{arch}: in {in_len} out {out_len} cell {o}"
                        );
                        compared += 1;
                    }
                }
            }
        }
    }
    println!("{compared} windows compared between CUDA and Rust");
}

/// A 16-bit float from its bits (f16 or bf16).
fn from_bits<T: Element>(bits: u16) -> T {
    let v = match T::DTYPE {
        DType::F16 => f16::from_bits(bits).to_f64(),
        DType::Bf16 => bf16::from_bits(bits).to_f64(),
        DType::F32 | DType::F64 => unreachable!("16-bit floats only"),
    };
    T::from_f64(v)
}

/// Guards the f32 -> f16/bf16 rounding in the kernels (inline PTX `cvt.rn`, and the hand-written
/// round-to-nearest-even below sm_80): the average of a value `a` and its neighbour one ulp
/// further from zero lands exactly halfway between them. Ties to even rounds it to whichever
/// has an even last mantissa bit: back to `a` when `a` is even, away from zero when `a` is odd.
/// Half the pairs have an odd `a`, so rounding toward zero (`cvt.rz`), which always gives `a`,
/// fails as surely as ties-away (`a`'s neighbour every time). Bitwise equality with the
/// reference (which rounds with `half`) is required.
fn ties_round_to_even<T: Element>(arch: u32) -> (usize, usize) {
    let sim = Sim::new(arch, BlockOrder::Forward);
    // Normal values of magnitude 2^-6 to 2^6 (f16: 0x2400..0x5400, bf16: 0x3c80..0x4280, each
    // exponent field times its mantissa step), through many binades, both signs, both parities.
    let (low, high): (u16, u16) = match T::DTYPE {
        DType::F16 => (0x2400, 0x5400),
        _ => (0x3c80, 0x4280),
    };
    let pairs = 512u16;
    let step = (high - low) / pairs;
    let mut input = Vec::with_capacity(2 * pairs as usize);
    for k in 0..pairs {
        // Step is even: k % 2 alternates the last mantissa bit.
        let bits = low + k * (step & !1) + k % 2;
        let sign = if k % 4 < 2 { 0 } else { 0x8000 };
        input.push(from_bits::<T>(sign | bits));
        input.push(from_bits::<T>(sign | (bits + 1)));
    }
    let pairs = pairs as usize;
    let shape = Shape::new(&[1, 1, 1, 2 * pairs]).expect("shape");
    let out_shape = Shape::new(&[1, 1, 1, pairs]).expect("shape");
    let got = sim.forward(&input, &shape, Layout::Nchw, &out_shape, poison(pairs));
    let (want, _) =
        reference::forward(&input, &shape, Layout::Nchw, (1, pairs)).expect("reference");
    let (mut to_a, mut away) = (0, 0);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let (a, b) = (input[2 * i].to_f64(), input[2 * i + 1].to_f64());
        assert_eq!(
            g.to_f64().to_bits(),
            w.to_f64().to_bits(),
            "{:?} compute_{arch} pair {i}: {a} + {b} averaged to {g:?}, want {w:?}",
            T::DTYPE,
        );
        // Every pair is a tie: the exact average is representable in neither.
        assert_ne!((a + b) / 2.0, w.to_f64(), "pair {i} is no tie");
        if w.to_f64() == a {
            to_a += 1;
        } else {
            assert_eq!(w.to_f64(), b);
            away += 1;
        }
    }
    (to_a, away)
}

#[test]
fn half_precision_ties_round_to_even_on_every_architecture() {
    for arch in archs() {
        let (f16_even, f16_odd) = ties_round_to_even::<f16>(arch);
        let (bf16_even, bf16_odd) = ties_round_to_even::<bf16>(arch);
        // Half the ties each way: toward zero (to an even `a`) and away (from an odd one).
        for n in [f16_even, f16_odd, bf16_even, bf16_odd] {
            assert_eq!(n, 256, "{f16_even} {f16_odd} {bf16_even} {bf16_odd}");
        }
        println!(
            "compute_{arch}: 512 f16 and 512 bf16 ties, half rounded back to an even value, \
             half away from zero from an odd one"
        );
    }
}
