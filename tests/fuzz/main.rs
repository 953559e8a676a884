//! Bad input, at random (issue #10): a seeded generator drives every public entry point —
//! `Shape` and `OutputSize`, `reference`, `plan`, and the GPU API — with ranks 0 to 6,
//! dimensions 0, 1 and near overflow, output sizes 0 and far larger than the input, wrong buffer
//! lengths, and (on the GPU) mismatched layouts, streams and devices. Every call must return
//! what an independent model (`oracle.rs`) says: the right result, or an error of a kind the
//! arguments actually violate. Never a panic, a hang, a device fault or a sticky error.
//!
//! ```sh
//! cargo test --release --test fuzz                                        # the CPU entry points
//! bash .ci/vgpu.sh cargo test --release --test fuzz -- --include-ignored  # and the GPU API
//! VGPU_DEVICES=2 bash .ci/vgpu.sh cargo test --release --test fuzz gpu_api -- --include-ignored
//! ```
//!
//! The GPU part (`gpu.rs`, `#[ignore = "needs a CUDA GPU"]`) draws tensors and streams from
//! every device present: with two, tensors of the other device are among its cases.
//!
//! The seed is printed; `ADAPTIVE_POOL_TEST_SEED=<seed>` replays a run, adding
//! `ADAPTIVE_POOL_FUZZ_CASE=<index>` replays the one case a failure names, and
//! `ADAPTIVE_POOL_FUZZ_CASES=<n>` changes the number of cases (each test makes at least 10,000
//! calls to each entry point it covers by default, and checks that it did).

#[path = "../common/mod.rs"]
mod common;
mod gen;
mod gpu;
mod harness;
mod oracle;

use std::collections::HashSet;
use std::sync::OnceLock;

use adaptive_pool::half::{bf16, f16};
use adaptive_pool::plan::{
    self, BackwardKernel, Buffer, DeviceLimits, ForwardKernel, KernelArg, LaunchPlan, Step,
};
use adaptive_pool::{
    ptx, reference, window, AdaptiveAvgPool2d, BackwardAlgorithm, DType, Element, Layout,
    OutputSize, Shape,
};
use rand::rngs::StdRng;
use rand::Rng;

use harness::{fuzz, Case};
use oracle::{Kind, Violations};

/// Cases per test: each makes at least one call to each of its entry points.
const CASES: u64 = 12_000;

/// Host buffers at least this large cannot be allocated on any machine (more than the 128 TiB
/// of a 47-bit user address space), so the reference must refuse them; between [`gen::SMALL`]
/// elements and this the reference would legitimately compute for a long time, and the fuzzer
/// does not ask it to.
const IMPOSSIBLE_HOST_BYTES: u128 = 1 << 48;

/// Dims for which `Shape::new` succeeds: from [`gen::any_dims`] when it produces such within a
/// few tries, otherwise a small valid input.
fn valid_shape_dims(rng: &mut StdRng) -> Vec<usize> {
    for _ in 0..8 {
        let dims = gen::any_dims(rng);
        if oracle::shape_error(&dims).is_none() {
            return dims;
        }
    }
    gen::small_input(rng)
}

fn shape(dims: &[usize]) -> Shape {
    match Shape::new(dims) {
        Ok(s) => s,
        Err(e) => panic!("Shape::new({dims:?}) must succeed here: {e}"),
    }
}

#[test]
fn shape_and_output_size() {
    let report = fuzz("shape_and_output_size", CASES, |rng, case| {
        // Shape::new with any rank and any dims.
        let dims = gen::any_dims(rng);
        case.call("Shape::new", || format!("{dims:?}"));
        let got = Shape::new(&dims);
        case.outcome("Shape::new", &got);
        match (got, oracle::shape_error(&dims)) {
            (Ok(s), None) => check_shape(&s, &dims, rng, case),
            (Err(e), Some(k)) => assert_eq!(oracle::kind(&e), k, "Shape::new({dims:?}): {e}"),
            (Ok(_), Some(k)) => panic!("Shape::new({dims:?}) succeeded; want {k:?}"),
            (Err(e), None) => panic!("Shape::new({dims:?}) failed: {e}"),
        }
        if dims.len() == 4 {
            case.call("Shape::nchw", || format!("{dims:?}"));
            let nchw = Shape::nchw(dims[0], dims[1], dims[2], dims[3]);
            assert_eq!(nchw.ok(), Shape::new(&dims).ok(), "Shape::nchw({dims:?})");
        }

        // OutputSize: its forms, Display, and resolve against a valid shape.
        let size = gen::output_size(rng, 0.5);
        let text = |v: Option<usize>| v.map_or("None".to_string(), |v| v.to_string());
        let want_text = match size {
            OutputSize::Square(s) => s.to_string(),
            OutputSize::Pair(h, w) => format!("({}, {})", text(h), text(w)),
        };
        case.call("OutputSize::fmt", || format!("{size:?}"));
        assert_eq!(size.to_string(), want_text);
        let pool = AdaptiveAvgPool2d::new(size);
        assert_eq!(
            pool.to_string(),
            format!("AdaptiveAvgPool2d(output_size={want_text})")
        );
        let input = if rng.random_bool(0.5) {
            gen::small_input(rng)
        } else {
            valid_shape_dims(rng)
        };
        let want = oracle::resolve(&input, size);
        case.call("OutputSize::resolve", || format!("{size:?}, {input:?}"));
        let got = size.resolve(&shape(&input));
        case.outcome("OutputSize::resolve", &got);
        let mut v = Violations::default();
        v.add(Kind::Overflow, !oracle::count_fits(&want));
        v.check("OutputSize::resolve", &got);
        if let Ok(out) = got {
            assert_eq!(out.dims(), &want[..], "resolve({size:?}) of {input:?}");
        }

        // AdaptiveAvgPool2d::output_shape with any dims: every check PyTorch makes.
        let dims = if rng.random_bool(0.5) {
            gen::any_dims(rng)
        } else {
            input
        };
        case.call("AdaptiveAvgPool2d::output_shape", || {
            format!("{size:?}, {dims:?}")
        });
        let got = pool.output_shape(&dims);
        case.outcome("AdaptiveAvgPool2d::output_shape", &got);
        let mut v = Violations::default();
        match oracle::shape_error(&dims) {
            Some(k) => v.add(k, true),
            None => {
                v.add(Kind::EmptyDimension, oracle::has_empty_non_batch_dim(&dims));
                v.add(
                    Kind::Overflow,
                    !oracle::count_fits(&oracle::resolve(&dims, size)),
                );
            }
        }
        v.check("AdaptiveAvgPool2d::output_shape", &got);
        if let Ok(out) = got {
            assert_eq!(out.dims(), &oracle::resolve(&dims, size)[..]);
        }
    });
    report.check(
        "shape_and_output_size",
        &[
            "Shape::new",
            "OutputSize::fmt",
            "OutputSize::resolve",
            "AdaptiveAvgPool2d::output_shape",
        ],
    );
}

#[test]
fn window_formula() {
    let report = fuzz("window_formula", CASES, |rng, case| {
        let pick = |rng: &mut StdRng| {
            if rng.random_bool(0.5) {
                rng.random_range(0..=20)
            } else {
                gen::dim(rng)
            }
        };
        let (o, out_len, in_len) = (pick(rng), pick(rng), pick(rng));
        case.call("window::window", || format!("{o}, {out_len}, {in_len}"));
        let got = window::window(o, out_len, in_len);
        check_window("window", &got, o, out_len, in_len);
        case.call("window::covering", || format!("{o}, {in_len}, {out_len}"));
        let got = window::covering(o, in_len, out_len);
        check_window("covering", &got, o, in_len, out_len);
    });
    report.check("window_formula", &["window::window", "window::covering"]);
}

/// Cell `o` of `n` over `len`: the exact window inside the input for a cell that exists, an
/// empty range when there are no cells, a range at or past the input's end for a cell past the
/// last.
fn check_window(what: &str, got: &std::ops::Range<usize>, o: usize, n: usize, len: usize) {
    let args = format!("{what}({o}, {n}, {len}) = {got:?}");
    if n == 0 {
        assert!(got.is_empty(), "{args}: no cells, so no window");
    } else if o < n {
        let (start, end) = oracle::window(o, n, len);
        assert_eq!((got.start, got.end), (start, end), "{args}");
        assert!(
            got.end <= len && (len == 0 || got.start < got.end),
            "{args}"
        );
    } else {
        assert!(got.start >= len, "{args}: a cell past the end");
    }
}

/// Every accessor of a shape `Shape::new` accepted, against the dims it was given.
fn check_shape(s: &Shape, dims: &[usize], rng: &mut StdRng, case: &mut Case) {
    let d = oracle::four(dims);
    assert_eq!(s.dims(), dims);
    assert_eq!(s.rank(), dims.len());
    assert_eq!(
        [s.batch(), s.channels(), s.height(), s.width()],
        d,
        "{dims:?}"
    );
    assert_eq!(Some(s.numel()), oracle::numel(dims));
    assert_eq!(format!("{s}"), format!("{dims:?}"));
    assert_eq!(format!("{s:?}"), format!("{dims:?}"));
    if s.numel() > 0 {
        let idx: Vec<usize> = d.iter().map(|&n| rng.random_range(0..n)).collect();
        let layout = gen::layout(rng);
        case.call("Shape::offset", || format!("{dims:?}, {layout:?}, {idx:?}"));
        let got = s.offset(layout, idx[0], idx[1], idx[2], idx[3]);
        // The exact offset, in u128, is below numel and so fits.
        let [_, c, h, w] = d.map(|v| v as u128);
        let [n0, c0, h0, w0] = [idx[0], idx[1], idx[2], idx[3]].map(|v| v as u128);
        let want = match layout {
            Layout::Nchw => ((n0 * c + c0) * h + h0) * w + w0,
            Layout::Nhwc => ((n0 * h + h0) * w + w0) * c + c0,
        };
        assert_eq!(
            got as u128, want,
            "offset of {idx:?} in {dims:?} {layout:?}"
        );
    }
}

#[test]
fn reference_forward() {
    let report = fuzz("reference_forward", CASES, |rng, case| {
        match gen::dtype(rng) {
            DType::F32 => reference_forward_case::<f32>(rng, case),
            DType::F64 => reference_forward_case::<f64>(rng, case),
            DType::F16 => reference_forward_case::<f16>(rng, case),
            DType::Bf16 => reference_forward_case::<bf16>(rng, case),
        }
    });
    report.check("reference_forward", &["reference::forward"]);
}

fn reference_forward_case<T: Element>(rng: &mut StdRng, case: &mut Case) {
    let dims = if rng.random_bool(0.6) {
        gen::small_input(rng)
    } else {
        valid_shape_dims(rng)
    };
    let size = gen::output_size(rng, 0.6);
    let layout = gen::layout(rng);
    let len = gen::buffer_len(rng, oracle::numel(&dims));
    let input: Vec<T> = gen::data(rng, len);
    let out_dims = oracle::resolve(&dims, size);

    let mut v = Violations::default();
    v.add(Kind::EmptyDimension, oracle::has_empty_non_batch_dim(&dims));
    v.add(Kind::BufferLength, Some(len) != oracle::numel(&dims));
    v.add(Kind::Overflow, !oracle::count_fits(&out_dims));
    if v.is_empty() {
        // Only the allocation of the output is left: small (computed and compared) or
        // impossible (refused); anything between is legitimate work too long to wait for.
        let bytes = oracle::product(&out_dims).unwrap_or(u128::MAX) * size_of::<T>() as u128;
        if oracle::numel(&out_dims).is_some_and(|n| n > gen::SMALL) {
            if bytes < IMPOSSIBLE_HOST_BYTES {
                return;
            }
            v.add(Kind::HostAllocation, true);
        }
    }
    case.call("reference::forward", || {
        format!("[{len} x {}], {dims:?}, {layout:?}, {size:?}", T::DTYPE)
    });
    let got = reference::forward(&input, &shape(&dims), layout, size);
    case.outcome("reference::forward", &got);
    v.check("reference::forward", &got);
    if let Ok((out, out_shape)) = got {
        assert_eq!(out_shape.dims(), &out_dims[..]);
        let want = oracle::forward(&input, &dims, layout, &out_dims);
        oracle::assert_same("reference::forward", &out, &want);
    }
}

#[test]
fn reference_backward() {
    let report = fuzz("reference_backward", CASES, |rng, case| {
        match gen::dtype(rng) {
            DType::F32 => reference_backward_case::<f32>(rng, case),
            DType::F64 => reference_backward_case::<f64>(rng, case),
            DType::F16 => reference_backward_case::<f16>(rng, case),
            DType::Bf16 => reference_backward_case::<bf16>(rng, case),
        }
    });
    report.check("reference_backward", &["reference::backward"]);
}

/// Dims of a grad_output for an input of `in_dims`: usually the forward's output shape for
/// some output size, otherwise one with another rank, batch or channel count, or anything.
fn grad_output_dims(rng: &mut StdRng, in_dims: &[usize]) -> Vec<usize> {
    let mut out = oracle::resolve(in_dims, gen::output_size(rng, 0.7));
    match rng.random_range(0..10) {
        0 => out[0] = gen::dim(rng),
        1 if out.len() == 4 => out[1] = gen::dim(rng),
        2 if out.len() == 4 => out = out[1..].to_vec(),
        3 if out.len() == 3 => out.insert(0, rng.random_range(1..=3)),
        4 => out = valid_shape_dims(rng),
        _ => {}
    }
    out
}

fn reference_backward_case<T: Element>(rng: &mut StdRng, case: &mut Case) {
    let in_dims = if rng.random_bool(0.6) {
        gen::small_input(rng)
    } else {
        valid_shape_dims(rng)
    };
    let go_dims = grad_output_dims(rng, &in_dims);
    if oracle::shape_error(&go_dims).is_some() {
        return; // no Shape to pass (Shape::new's own cases are fuzzed above)
    }
    let layout = gen::layout(rng);
    let len = gen::buffer_len(rng, oracle::numel(&go_dims));
    let grad: Vec<T> = gen::data(rng, len);

    let mut v = Violations::default();
    v.add(
        Kind::EmptyDimension,
        oracle::has_empty_non_batch_dim(&in_dims),
    );
    let (gi, go) = (oracle::four(&in_dims), oracle::four(&go_dims));
    let mismatch = in_dims.len() != go_dims.len() || gi[0] != go[0] || gi[1] != go[1];
    v.add(Kind::ShapeMismatch, mismatch);
    if mismatch {
        // The message names the expected shape: the input's with grad_output's H and W.
        let mut expected = in_dims.clone();
        let r = expected.len();
        expected[r - 2] = go[2];
        expected[r - 1] = go[3];
        v.add(Kind::Overflow, !oracle::count_fits(&expected));
    }
    v.add(Kind::BufferLength, Some(len) != oracle::numel(&go_dims));
    if v.is_empty() {
        let bytes = oracle::product(&in_dims).unwrap_or(u128::MAX) * size_of::<T>() as u128;
        if oracle::numel(&in_dims).is_some_and(|n| n > gen::SMALL) {
            if bytes < IMPOSSIBLE_HOST_BYTES {
                return;
            }
            v.add(Kind::HostAllocation, true);
        }
    }
    case.call("reference::backward", || {
        format!(
            "[{len} x {}], {go_dims:?}, {in_dims:?}, {layout:?}",
            T::DTYPE
        )
    });
    let got = reference::backward(&grad, &shape(&go_dims), &shape(&in_dims), layout);
    case.outcome("reference::backward", &got);
    v.check("reference::backward", &got);
    if let Ok(gi) = got {
        let want = oracle::backward(&grad, &go_dims, &in_dims, layout);
        oracle::assert_same("reference::backward", &gi, &want);
    }
}

/// Every `(module, kernel)` the embedded PTX defines, for each architecture.
fn ptx_entries() -> &'static HashSet<(u32, &'static str, String)> {
    static ENTRIES: OnceLock<HashSet<(u32, &'static str, String)>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let mut set = HashSet::new();
        for v in ptx::variants() {
            for line in v.ptx.lines() {
                if let Some(rest) = line.trim().strip_prefix(".visible .entry ") {
                    let name: String = rest.chars().take_while(|&c| c != '(').collect();
                    set.insert((v.arch, v.module, name));
                }
            }
        }
        set
    })
}

fn limits(rng: &mut StdRng) -> DeviceLimits {
    let pick = |rng: &mut StdRng, specials: &[u32]| {
        if rng.random_bool(0.5) {
            specials[rng.random_range(0..specials.len())]
        } else {
            rng.random()
        }
    };
    DeviceLimits {
        multiprocessors: pick(rng, &[0, 1, 2, 80, 132, u32::MAX]),
        compute_capability: pick(rng, &[0, 61, 70, 75, 80, 86, 90, 100, 120, u32::MAX]),
    }
}

#[test]
fn plan() {
    // Every test executable sees the same PTX; without it there is nothing to plan for.
    assert!(
        !ptx::variants().is_empty(),
        "the PTX must be built for this test"
    );
    let report = fuzz("plan", CASES, |rng, case| {
        let device = limits(rng);
        let dtype = gen::dtype(rng);
        let layout = gen::layout(rng);
        // A validated pair (what the GPU API passes) or two arbitrary valid shapes.
        let validated = rng.random_bool(0.7);
        let (input, output) = if validated {
            let mut dims = valid_shape_dims(rng);
            if oracle::has_empty_non_batch_dim(&dims) {
                dims = gen::small_input(rng);
            }
            let out = oracle::resolve(&dims, gen::output_size(rng, 0.5));
            if !oracle::count_fits(&out) {
                return;
            }
            (shape(&dims), shape(&out))
        } else {
            (shape(&valid_shape_dims(rng)), shape(&valid_shape_dims(rng)))
        };
        let what = format!("{input:?} -> {output:?}, {layout:?}, {dtype}, {device:?}");

        case.call("plan::select_forward", || what.clone());
        let chosen = plan::select_forward(&input, &output, layout, dtype, &device);
        case.call("plan::forward", || what.clone());
        let forward = plan::forward(&input, &output, layout, dtype, &device);
        for kernel in ForwardKernel::ALL {
            case.call("plan::forward_with", || format!("{kernel:?}, {what}"));
            let p = plan::forward_with(kernel, &input, &output, layout, dtype, &device);
            assert_eq!(
                p.is_some(),
                kernel.supports(&output, layout, dtype),
                "forward_with({kernel:?}) vs supports, {what}"
            );
            if validated {
                if let Some(p) = p {
                    check_plan(&p, &input, &output, Pass::Forward, dtype, &device, &what);
                }
            }
        }
        for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
            case.call("plan::select_backward", || format!("{algorithm:?}, {what}"));
            let kernel = plan::select_backward(algorithm, &output, &input, layout, dtype);
            case.call("plan::backward", || format!("{algorithm:?}, {what}"));
            let backward = plan::backward(&output, &input, layout, dtype, algorithm, &device);
            if validated {
                assert!(
                    kernel.supports(&output, layout, dtype),
                    "{kernel:?}, {what}"
                );
                // The deterministic algorithm never runs the scatter; the atomic one runs it
                // only where `select_backward` finds it faster.
                if algorithm == BackwardAlgorithm::Deterministic {
                    assert!(kernel.is_deterministic(), "{kernel:?}, {what}");
                }
                let pass = Pass::Backward(kernel == BackwardKernel::AtomicScatter);
                check_plan(&backward, &input, &output, pass, dtype, &device, &what);
            }
        }
        for kernel in BackwardKernel::ALL {
            case.call("plan::backward_with", || format!("{kernel:?}, {what}"));
            let p = plan::backward_with(kernel, &output, &input, layout, dtype, &device);
            assert_eq!(
                p.is_some(),
                kernel.supports(&output, layout, dtype),
                "backward_with({kernel:?}) vs supports, {what}"
            );
            if validated {
                if let Some(p) = p {
                    let pass = Pass::Backward(kernel == BackwardKernel::AtomicScatter);
                    check_plan(&p, &input, &output, pass, dtype, &device, &what);
                }
            }
        }
        if validated {
            assert!(
                chosen.supports(&output, layout, dtype),
                "{chosen:?}, {what}"
            );
            check_plan(
                &forward,
                &input,
                &output,
                Pass::Forward,
                dtype,
                &device,
                &what,
            );
        }
    });
    report.check(
        "plan",
        &[
            "plan::select_forward",
            "plan::forward",
            "plan::forward_with",
            "plan::select_backward",
            "plan::backward",
            "plan::backward_with",
        ],
    );
}

/// Which pass a plan is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    /// A backward; `true` when it zero-fills grad_input first (the atomic scatter).
    Backward(bool),
}

/// The invariants of a plan for the forward `input -> output` or its backward: nothing for an
/// empty destination; a zero-fill alone for a backward from an empty grad_output; otherwise an
/// optional zero-fill (exactly for the atomic scatter) and one launch of a kernel that exists
/// in the PTX of every architecture, with 32-bit indices only where every index fits, a
/// 256-thread block, a grid CUDA accepts and no larger than the device keeps resident, and the
/// crate's argument list.
fn check_plan(
    p: &LaunchPlan,
    input: &Shape,
    output: &Shape,
    pass: Pass,
    dtype: DType,
    device: &DeviceLimits,
    what: &str,
) {
    let (src, dst) = match pass {
        Pass::Forward => (input, output),
        Pass::Backward(_) => (output, input),
    };
    if dst.numel() == 0 {
        assert!(p.steps.is_empty(), "empty destination: {p:?}, {what}");
        return;
    }
    if src.numel() == 0 {
        assert!(
            pass != Pass::Forward,
            "a forward with an empty input, {what}"
        );
        assert_eq!(p.steps, vec![Step::ZeroDst], "empty grad_output, {what}");
        return;
    }
    let launches: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Launch(l) => Some(l),
            Step::ZeroDst => None,
        })
        .collect();
    assert_eq!(launches.len(), 1, "{p:?}, {what}");
    assert_eq!(
        p.steps.first() == Some(&Step::ZeroDst),
        pass == Pass::Backward(true),
        "zero-fill, {p:?}, {what}"
    );
    let l = launches[0];
    let idx32 = oracle_fits_idx32(input, output);
    let suffix = format!(
        "_{}_{}",
        dtype.name(),
        if idx32 { "idx32" } else { "idx64" }
    );
    assert!(
        l.kernel.ends_with(&suffix),
        "{} for {suffix}, {what}",
        l.kernel
    );
    for arch in ptx::archs() {
        assert!(
            ptx_entries().contains(&(arch, l.module, l.kernel.clone())),
            "kernel {} is not in module {} for compute_{arch}, {what}",
            l.kernel,
            l.module
        );
    }
    // 256 threads: in x, or lanes by window slices (the NHWC split kernel).
    assert_eq!(l.block[0] * l.block[1], plan::THREADS_PER_BLOCK, "{what}");
    assert_eq!(l.block[2], 1, "{what}");
    // Grids stop at what the device keeps resident (the kernels loop over the rest), but for
    // the NHWC split kernel's, a block per tile of its items.
    let cap = if l.module == "forward_nhwc_split" {
        output.numel() as u64
    } else {
        u64::from(device.multiprocessors.max(1)) * u64::from(plan::BLOCKS_PER_MULTIPROCESSOR)
    };
    assert!(
        (1..=(1u32 << 31) - 1).contains(&l.grid[0])
            && u64::from(l.grid[0]) <= cap.max(1)
            && l.grid[1] == 1
            && l.grid[2] == 1,
        "grid {:?}, {what}",
        l.grid
    );
    let dims = |s: &Shape| [s.batch(), s.channels(), s.height(), s.width()].map(|v| v as u64);
    let [n, c, h, w] = dims(input);
    let [_, _, oh, ow] = dims(output);
    assert_eq!(
        l.args,
        vec![
            KernelArg::Pointer(Buffer::Src),
            KernelArg::Pointer(Buffer::Dst),
            KernelArg::U64(n),
            KernelArg::U64(c),
            KernelArg::U64(h),
            KernelArg::U64(w),
            KernelArg::U64(oh),
            KernelArg::U64(ow),
        ],
        "{what}"
    );
}

/// Whether 32-bit indices are safe, computed here from the kernels' documented needs: element
/// counts of at most 2^31 and `(o + 1) * in + o` below 2^32 for each of H and W.
fn oracle_fits_idx32(input: &Shape, output: &Shape) -> bool {
    let window = |o: usize, i: usize| (o as u128 + 1) * i as u128 + o as u128 <= u32::MAX as u128;
    input.numel() as u128 <= 1 << 31
        && output.numel() as u128 <= 1 << 31
        && window(output.height(), input.height())
        && window(output.width(), input.width())
}
