//! Every kernel the crate ships, from the very PTX `build.rs` embedded, executed on ptxsim (the
//! CPU PTX interpreter in this workspace) through the same launch plans the CUDA path uses, and
//! compared with the reference: every PTX architecture, dtype, layout and rank, forward and
//! backward, random and edge shapes, and the PyTorch fixtures.

mod common;

use std::time::Instant;

use adaptive_pool::half::{bf16, f16};
use std::collections::BTreeMap;

use adaptive_pool::plan::{BackwardKernel, ForwardKernel};
use adaptive_pool::{ptx, reference, window, BackwardAlgorithm, DType, Element, Layout, Shape};
use common::cases::{
    check_backward, check_case_dtype, check_forward, edge_cases, random_cases, Case,
};
use common::golden::{load_all, GoldenCase, GoldenDType, GoldenElement};
use common::sim::Sim;
use common::{
    assert_close, backward_scale, forward_scale, kernel_vs_reference, poison, random_data,
    reference_vs_torch, rng, ErrorSummary,
};
use ptxsim::{BlockOrder, LaunchConfig, Memory, Module, ParamValue};
use rand::rngs::StdRng;

/// Random shapes per (architecture, dtype).
const RANDOM_CASES: usize = 24;

fn archs() -> Vec<u32> {
    let archs = ptx::archs();
    assert!(
        !archs.is_empty(),
        "no PTX was built: these tests need NVRTC at build time (bash .ci/nvrtc.sh)"
    );
    archs
}

/// Largest error and case count per (kernel family, architecture, dtype, layout).
#[derive(Default)]
struct KernelTable(BTreeMap<(String, u32, &'static str, &'static str), (usize, f64)>);

impl KernelTable {
    fn record(&mut self, kernel: String, arch: u32, dtype: DType, layout: Layout, err: f64) {
        let e = self
            .0
            .entry((kernel, arch, dtype.name(), layout.name()))
            .or_default();
        e.0 += 1;
        e.1 = e.1.max(err);
    }

    fn print(&self) {
        println!(
            "{:<18} {:>5} {:>5} {:>5} {:>6} {:>12}",
            "kernel", "arch", "dtype", "lay", "cases", "max error"
        );
        for ((k, arch, dtype, layout), (n, err)) in &self.0 {
            println!("{k:<18} {arch:>5} {dtype:>5} {layout:>5} {n:>6} {err:>12.3e}");
        }
    }
}

fn forced_forward(arch: u32, kernel: ForwardKernel) -> Sim {
    let mut sim = Sim::new(arch, BlockOrder::Forward);
    sim.forward_kernel = Some(kernel);
    sim
}

fn forced_backward(arch: u32, kernel: BackwardKernel) -> Sim {
    let mut sim = Sim::new(arch, BlockOrder::Forward);
    sim.backward_kernel = Some(kernel);
    sim
}

fn algorithm_of(kernel: BackwardKernel) -> BackwardAlgorithm {
    if kernel.is_deterministic() {
        BackwardAlgorithm::Deterministic
    } else {
        BackwardAlgorithm::Atomic
    }
}

/// Thread-items a forced run may take: a warp or a block per output cell is meant for few
/// cells with large windows, and forcing it on 70,000 one-element windows would only spend
/// simulator time on idle lanes.
const FORCED_THREAD_BUDGET: usize = 1 << 19;

fn affordable_forward(kernel: ForwardKernel, out: &Shape) -> bool {
    let per_item = match kernel {
        ForwardKernel::Elementwise | ForwardKernel::NhwcVector => 1,
        ForwardKernel::GlobalWarp | ForwardKernel::WarpPerCell => 32,
        _ => 256,
    };
    out.numel().saturating_mul(per_item) <= FORCED_THREAD_BUDGET
}

fn run_family_checks<T: Element>(
    arch: u32,
    cases: &[Case],
    rng: &mut StdRng,
    table: &mut KernelTable,
) {
    for case in cases {
        let shape = Shape::new(&case.dims).expect("shape");
        let out = case.output_size.resolve(&shape).expect("output shape");
        for kernel in ForwardKernel::ALL {
            if kernel.supports(&out, case.layout, T::DTYPE) && affordable_forward(kernel, &out) {
                let err = check_forward::<T, _>(&forced_forward(arch, kernel), case, rng);
                table.record(format!("fwd {kernel:?}"), arch, T::DTYPE, case.layout, err);
            }
        }
        for kernel in BackwardKernel::ALL {
            if kernel.supports(&out, case.layout, T::DTYPE) {
                let sim = forced_backward(arch, kernel);
                let err = check_backward::<T, _>(&sim, case, algorithm_of(kernel), rng);
                table.record(format!("bwd {kernel:?}"), arch, T::DTYPE, case.layout, err);
            }
        }
    }
}

/// Every kernel family, forced on every shape it supports, on every architecture, dtype and
/// layout, 3-D and 4-D, against the reference (outputs poisoned first).
#[test]
fn every_kernel_family_matches_the_reference_on_every_architecture() {
    let mut rng = rng("kernel families");
    let mut table = KernelTable::default();
    let started = Instant::now();
    for arch in archs() {
        let mut cases = edge_cases();
        cases.extend(random_cases(&mut rng, RANDOM_CASES));
        run_family_checks::<f32>(arch, &cases, &mut rng, &mut table);
        run_family_checks::<f64>(arch, &cases, &mut rng, &mut table);
        run_family_checks::<f16>(arch, &cases, &mut rng, &mut table);
        run_family_checks::<bf16>(arch, &cases, &mut rng, &mut table);
    }
    table.print();
    println!("all families in {:.2} s", started.elapsed().as_secs_f64());
    // Every family ran on every architecture in both layouts it supports.
    for arch in archs() {
        for kernel in ForwardKernel::ALL
            .iter()
            .map(|k| format!("fwd {k:?}"))
            .chain(BackwardKernel::ALL.iter().map(|k| format!("bwd {k:?}")))
        {
            assert!(
                table
                    .0
                    .keys()
                    .any(|(k, a, _, _)| *k == kernel && *a == arch),
                "{kernel} never ran on compute_{arch}"
            );
        }
    }
}

/// What users get: the planner's own choice, both backward algorithms.
#[test]
fn selected_kernels_match_the_reference_on_every_architecture() {
    let mut rng = rng("selected");
    for arch in archs() {
        let sim = Sim::new(arch, BlockOrder::Forward);
        let started = Instant::now();
        for dtype in DType::ALL {
            let mut summary = ErrorSummary::default();
            let mut cases = edge_cases();
            cases.extend(random_cases(&mut rng, RANDOM_CASES));
            for case in &cases {
                for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
                    check_case_dtype(&sim, dtype, case, algorithm, &mut rng, &mut summary);
                }
            }
            summary.print(&format!(
                "compute_{arch} {dtype} selected forward + both backwards"
            ));
        }
        let stats = sim.stats.lock().map(|s| *s).unwrap_or_default();
        println!(
            "compute_{arch}: {} launches, {} instructions in {:.2} s",
            stats.launches,
            stats.instructions,
            started.elapsed().as_secs_f64()
        );
    }
}

/// The 16-byte kernels and the global warp kernel on buffers that start off a 16-byte
/// boundary (views into larger buffers): they must fall back to scalar accesses, not fault.
#[test]
fn vector_kernels_handle_misaligned_buffers() {
    let mut rng = rng("misaligned");
    let mut table = KernelTable::default();
    for arch in archs() {
        for case in edge_cases() {
            let shape = Shape::new(&case.dims).expect("shape");
            let out = case.output_size.resolve(&shape).expect("output shape");
            for dtype in DType::ALL {
                for kernel in [ForwardKernel::NhwcVector, ForwardKernel::GlobalWarp] {
                    if kernel.supports(&out, case.layout, dtype) && affordable_forward(kernel, &out)
                    {
                        let mut sim = forced_forward(arch, kernel);
                        sim.misalign = common::sim::Misalign::Both;
                        let err = match dtype {
                            DType::F32 => check_forward::<f32, _>(&sim, &case, &mut rng),
                            DType::F64 => check_forward::<f64, _>(&sim, &case, &mut rng),
                            DType::F16 => check_forward::<f16, _>(&sim, &case, &mut rng),
                            DType::Bf16 => check_forward::<bf16, _>(&sim, &case, &mut rng),
                        };
                        table.record(
                            format!("fwd {kernel:?} misaligned"),
                            arch,
                            dtype,
                            case.layout,
                            err,
                        );
                    }
                }
                let kernel = BackwardKernel::GatherNhwcVector;
                if kernel.supports(&out, case.layout, dtype) {
                    let mut sim = forced_backward(arch, kernel);
                    sim.misalign = common::sim::Misalign::Both;
                    let a = BackwardAlgorithm::Deterministic;
                    let err = match dtype {
                        DType::F32 => check_backward::<f32, _>(&sim, &case, a, &mut rng),
                        DType::F64 => check_backward::<f64, _>(&sim, &case, a, &mut rng),
                        DType::F16 => check_backward::<f16, _>(&sim, &case, a, &mut rng),
                        DType::Bf16 => check_backward::<bf16, _>(&sim, &case, a, &mut rng),
                    };
                    table.record(
                        format!("bwd {kernel:?} misaligned"),
                        arch,
                        dtype,
                        case.layout,
                        err,
                    );
                }
            }
        }
    }
    table.print();
    assert!(!table.0.is_empty());
}

/// The deterministic backward kernels (and every forward kernel) give bitwise identical
/// results whatever order the blocks run in: forward, reversed, and several shuffles.
#[test]
fn deterministic_kernels_are_bitwise_reproducible_across_block_orders() {
    let mut rng = rng("determinism");
    let orders = [
        BlockOrder::Forward,
        BlockOrder::Reverse,
        BlockOrder::Shuffled(1),
        BlockOrder::Shuffled(0x5eed),
        BlockOrder::Shuffled(987_654_321),
    ];
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
            let results: Vec<Vec<u16>> = orders
                .iter()
                .map(|&order| {
                    let mut sim = forced_backward(arch, kernel);
                    sim.order = order;
                    let got = sim.backward(
                        &grad,
                        &out,
                        &shape,
                        case.layout,
                        BackwardAlgorithm::Deterministic,
                        poison(shape.numel()),
                    );
                    got.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(
                results.iter().all(|r| *r == results[0]),
                "{kernel:?} {case:?}: bits differ between block orders"
            );
            runs += orders.len();
        }
        for kernel in ForwardKernel::ALL {
            if !kernel.supports(&out, case.layout, DType::Bf16) || !affordable_forward(kernel, &out)
            {
                continue;
            }
            let results: Vec<Vec<u16>> = orders
                .iter()
                .map(|&order| {
                    let mut sim = forced_forward(arch, kernel);
                    sim.order = order;
                    let got = sim.forward(&input, &shape, case.layout, &out, poison(out.numel()));
                    got.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(
                results.iter().all(|r| *r == results[0]),
                "{kernel:?} {case:?}: bits differ between block orders"
            );
            runs += orders.len();
        }
    }
    println!(
        "{runs} runs over {} block orders gave identical bits per kernel and case",
        orders.len()
    );
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
        let sim = Sim::new(arch, BlockOrder::Reverse);
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

/// The atomic backward adds in whatever order blocks run: forward, reversed and shuffled block
/// orders must all agree with the reference (and with each other within tolerance).
fn block_orders_agree<T: Element>(arch: u32, rng: &mut rand::rngs::StdRng) -> f64 {
    // Upsampling with overlapping windows: many atomic contributions per grad_input element.
    let mut worst = 0.0f64;
    for layout in Layout::ALL {
        let shape = Shape::new(&[2, 3, 11, 7]).expect("shape");
        let out_shape = Shape::new(&[2, 3, 16, 13]).expect("shape");
        let grad: Vec<T> = random_data(rng, out_shape.numel());
        let want = reference::backward(&grad, &out_shape, &shape, layout).expect("reference");
        let scale = backward_scale(&grad, &out_shape, &shape, layout);
        let tol = kernel_vs_reference(T::DTYPE);
        let mut results = Vec::new();
        for order in [
            BlockOrder::Forward,
            BlockOrder::Reverse,
            BlockOrder::Shuffled(7),
            BlockOrder::Shuffled(12345),
        ] {
            let sim = Sim::new(arch, order);
            let got = sim.backward(
                &grad,
                &out_shape,
                &shape,
                layout,
                BackwardAlgorithm::Atomic,
                poison(shape.numel()),
            );
            worst = worst.max(assert_close(
                &format!("compute_{arch} {:?} {order:?}", T::DTYPE),
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
fn atomic_backward_agrees_across_block_orders() {
    let mut rng = rng("block orders");
    for arch in archs() {
        let errs = [
            block_orders_agree::<f32>(arch, &mut rng),
            block_orders_agree::<f64>(arch, &mut rng),
            block_orders_agree::<f16>(arch, &mut rng),
            block_orders_agree::<bf16>(arch, &mut rng),
        ];
        println!(
            "compute_{arch}: 4 block orders x 2 layouts, largest errors f32/f64/f16/bf16 {errs:?}"
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

/// Guards the f32 -> f16/bf16 rounding in the kernels (inline PTX `cvt.rn`, and the hand-written
/// round-to-nearest-even below sm_80): averages of pairs `(a, a + ulp)` land exactly halfway
/// between two representable values, where ties-to-even and ties-away differ. Bitwise equality
/// with the reference (which rounds with `half`) is required.
fn ties_round_to_even<T: Element>(arch: u32) -> usize {
    let sim = Sim::new(arch, BlockOrder::Forward);
    let pairs = 512;
    let mut input = Vec::with_capacity(2 * pairs);
    for k in 0..pairs {
        // a walks through many binades and both signs; next is one ulp above a.
        let a = T::from_f64((1.0 + k as f64 / 64.0) * if k % 2 == 0 { 1.0 } else { -0.25 });
        let bits = a.to_f64();
        let mut next = bits;
        let mut step = bits.abs() * 1e-4;
        while T::from_f64(next).to_f64() == bits {
            next += step * bits.signum();
            step *= 1.5;
        }
        input.push(a);
        input.push(T::from_f64(next));
    }
    let shape = Shape::new(&[1, 1, 1, 2 * pairs]).expect("shape");
    let out_shape = Shape::new(&[1, 1, 1, pairs]).expect("shape");
    let got = sim.forward(&input, &shape, Layout::Nchw, &out_shape, poison(pairs));
    let (want, _) =
        reference::forward(&input, &shape, Layout::Nchw, (1, pairs)).expect("reference");
    let mut ties = 0;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_f64().to_bits(),
            w.to_f64().to_bits(),
            "{:?} compute_{arch} pair {i}: {:?} + {:?} averaged to {g:?}, want {w:?}",
            T::DTYPE,
            input[2 * i],
            input[2 * i + 1]
        );
        let exact = (input[2 * i].to_f64() + input[2 * i + 1].to_f64()) / 2.0;
        if exact != w.to_f64() {
            ties += 1;
        }
    }
    ties
}

#[test]
fn half_precision_ties_round_to_even_on_every_architecture() {
    for arch in archs() {
        let f16_ties = ties_round_to_even::<f16>(arch);
        let bf16_ties = ties_round_to_even::<bf16>(arch);
        assert!(
            f16_ties > 400 && bf16_ties > 400,
            "too few ties: {f16_ties} {bf16_ties}"
        );
        println!("compute_{arch}: {f16_ties} f16 and {bf16_ties} bf16 exact ties rounded to even");
    }
}
