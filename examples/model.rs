//! The performance model's table: every case of `benches/cases.txt`, in every dtype and layout,
//! forward and both backward algorithms, through this crate's launch plans and through PyTorch's
//! algorithms (`gpumodel/pytorch/`), modelled on an H100 or an A100. Every figure is MODELLED
//! (see `gpumodel` and BENCHMARKS.md), never measured.
//!
//! ```sh
//! cargo run --release --example model -- --gpu h100|a100 [--csv] [--case NAME]
//! cargo run --release --example model -- --gpu h100 --sweep   # the planner's crossovers
//! ```
//!
//! Needs ptxas for register counts (`python3 -m pip install --target .ptxas
//! "nvidia-cuda-nvcc==13.0.*"`, which `.ci/ptxas-report.sh` also does) or `GPUMODEL_PTXAS`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use adaptive_pool::plan::{self, Buffer, DeviceLimits, IndexWidth, KernelArg, LaunchPlan, Step};
use adaptive_pool::{ptx, BackwardAlgorithm, DType, Layout, Shape};
use gpumodel::gpu::{self, Gpu};
use gpumodel::model::{memset_time, Bound};
use gpumodel::pytorch::{self, Elem, PtModule};
use gpumodel::sim::{block_scale, estimate, profile, Launch, Sampling, Scale};
use ptxsim::{Memory, Module, ParamValue};

/// Elements per tensor of the reduced problem that is simulated (see `reduced`);
/// `GPUMODEL_REDUCED_ELEMENTS` overrides it (to measure the sampling error).
const REDUCED_ELEMENTS: u64 = 1 << 22;
/// Thread instructions simulated per launch before sampling stops; `GPUMODEL_BUDGET` overrides.
const BUDGET: u64 = 3_000_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Result<T> = std::result::Result<T, String>;

struct Case {
    name: String,
    dims: [u64; 4],
    out: (u64, u64),
}

fn cases() -> Vec<Case> {
    include_str!("../benches/cases.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n: Vec<u64> = f.get(1..7)?.iter().filter_map(|v| v.parse().ok()).collect();
            (n.len() == 6).then(|| Case {
                name: f[0].to_string(),
                dims: [n[0], n[1], n[2], n[3]],
                out: (n[4], n[5]),
            })
        })
        .collect()
}

/// The reduced problem simulated for `dims` -> `out`: fewer images, and for NCHW fewer channels,
/// so that each tensor has at most about REDUCED_ELEMENTS elements. Images (and NCHW planes) are
/// processed alike and independently by every kernel here, so the reduced problem's blocks
/// follow the real one's access patterns; channels-last keeps C unless an image alone is too
/// large, and then keeps a multiple of 256 channels.
fn reduced(dims: [u64; 4], out: (u64, u64), layout: Layout) -> [u64; 4] {
    let [n, c, h, w] = dims;
    let limit = setting("GPUMODEL_REDUCED_ELEMENTS", REDUCED_ELEMENTS);
    let plane = (h * w).max(out.0 * out.1);
    let image = c * plane;
    if n * image <= limit {
        return dims;
    }
    if image <= limit {
        return [(limit / image).max(1), c, h, w];
    }
    let c2 = match layout {
        Layout::Nchw => (limit / plane).max(16).min(c),
        _ => {
            if c <= 256 {
                c
            } else {
                ((limit / plane) / 256 * 256).max(256).min(c)
            }
        }
    };
    [1, c2, h, w]
}

fn elem(d: DType) -> Elem {
    match d {
        DType::F32 => Elem::F32,
        DType::F64 => Elem::F64,
        DType::F16 => Elem::F16,
        _ => Elem::Bf16,
    }
}

/// Parsed modules and ptxas register counts, shared by all rows.
struct Cache {
    modules: HashMap<(String, u32), &'static Module>,
    registers: HashMap<(String, u32), HashMap<String, u32>>,
    ptxas: std::path::PathBuf,
}

impl Cache {
    fn module(&mut self, key: &str, arch: u32, text: &'static str) -> Result<&'static Module> {
        if let Some(m) = self.modules.get(&(key.to_string(), arch)) {
            return Ok(m);
        }
        let m = Module::parse(text).map_err(|e| format!("{key} sm{arch}: {e}"))?;
        let m: &'static Module = Box::leak(Box::new(m));
        self.modules.insert((key.to_string(), arch), m);
        Ok(m)
    }

    fn registers(&mut self, key: &str, arch: u32, text: &str, kernel: &str) -> Result<u32> {
        if !self.registers.contains_key(&(key.to_string(), arch)) {
            let r = gpumodel::ptxas::registers(&self.ptxas, text, arch)?;
            self.registers.insert((key.to_string(), arch), r);
        }
        self.registers[&(key.to_string(), arch)]
            .get(kernel)
            .copied()
            .ok_or_else(|| format!("ptxas reported no registers for {kernel}"))
    }
}

/// Modelled time of a pass: (fast, nominal, slow) microseconds, the bound of its longest
/// launch, its DRAM bytes and a description of its launches.
#[derive(Default)]
struct PassTime {
    us: [f64; 3],
    bound: Option<Bound>,
    longest: f64,
    dram: f64,
}

impl PassTime {
    fn memset(&mut self, gpu: &Gpu, bytes: f64) {
        for (i, s) in scenarios().into_iter().enumerate() {
            self.us[i] += memset_time(gpu, s, bytes);
        }
        self.dram += bytes;
        let t = memset_time(gpu, gpumodel::gpu::Scenario::Nominal, bytes);
        if t > self.longest {
            self.longest = t;
            self.bound = Some(if bytes / (gpu.dram_bytes_per_s * 0.9) * 1e6 > t / 2.0 {
                Bound::Dram
            } else {
                Bound::Launch
            });
        }
    }
}

fn scenarios() -> [gpumodel::gpu::Scenario; 3] {
    use gpumodel::gpu::Scenario::*;
    [Fast, Nominal, Slow]
}

fn fill(mem: &mut Memory, bytes: u64) -> Result<u64> {
    let addr = mem.alloc(bytes as usize);
    // Never all zeros: 0x3c in every byte is a small finite value in every dtype.
    mem.write(addr, &vec![0x3c; bytes as usize])
        .map_err(|e| e.to_string())?;
    Ok(addr)
}

/// One simulated launch, modelled and added to `pass`.
#[allow(clippy::too_many_arguments)]
fn model_launch(
    pass: &mut PassTime,
    gpu: &Gpu,
    module: &Module,
    kernel: &str,
    registers: u32,
    sim: (&[u32; 3], &[u32; 3], u32, Vec<ParamValue>),
    mem: &mut Memory,
    real_blocks: u64,
    work_ratio: f64,
    written_once: Option<(u64, u64)>,
) -> Result<()> {
    let (grid, block, shared, params) = sim;
    let launch = Launch {
        module,
        kernel: kernel.to_string(),
        arch: gpu.compute_capability,
        grid: *grid,
        block: *block,
        dynamic_shared: shared,
        params,
    };
    let sampling = Sampling {
        budget: setting("GPUMODEL_BUDGET", BUDGET),
        max_blocks: 256,
    };
    let p = profile(&launch, mem, sampling)?;
    let scale = block_scale(&p, real_blocks, work_ratio, written_once)
        .map_err(|e| format!("{kernel}: {e}"))?;
    let e = estimate(&p, gpu, registers, real_blocks, scale)?;
    for i in 0..3 {
        pass.us[i] += e.times[i].us;
    }
    pass.dram += e.dram_bytes;
    if e.times[1].us > pass.longest {
        pass.longest = e.times[1].us;
        pass.bound = Some(e.times[1].bound);
    }
    Ok(())
}

fn our_plan(
    input: &Shape,
    output: &Shape,
    layout: Layout,
    dtype: DType,
    pass: &str,
    device: &DeviceLimits,
) -> LaunchPlan {
    match pass {
        "forward" => plan::forward(input, output, layout, dtype, device),
        "backward_deterministic" => plan::backward(
            output,
            input,
            layout,
            dtype,
            BackwardAlgorithm::Deterministic,
            device,
        ),
        _ => plan::backward(
            output,
            input,
            layout,
            dtype,
            BackwardAlgorithm::Atomic,
            device,
        ),
    }
}

fn shape(d: [u64; 4]) -> Result<Shape> {
    Shape::new(&d.map(|v| v as usize)).map_err(|e| e.to_string())
}

/// What a sweep changes in our plan: a forced forward family, and the grid cap in blocks per
/// SM (the planner's `BLOCKS_PER_MULTIPROCESSOR`) for the real launch.
#[derive(Clone, Copy, Default)]
struct Variant {
    forward: Option<plan::ForwardKernel>,
    blocks_per_sm: Option<u32>,
}

/// Our modelled time for one row, and the kernel family's name.
fn ours(
    cache: &mut Cache,
    gpu: &Gpu,
    case: &Case,
    dtype: DType,
    layout: Layout,
    pass: &str,
) -> Result<(PassTime, String)> {
    ours_variant(cache, gpu, case, dtype, layout, pass, Variant::default())
}

#[allow(clippy::too_many_arguments)]
fn ours_variant(
    cache: &mut Cache,
    gpu: &Gpu,
    case: &Case,
    dtype: DType,
    layout: Layout,
    pass: &str,
    variant: Variant,
) -> Result<(PassTime, String)> {
    let device = DeviceLimits {
        multiprocessors: gpu.multiprocessors,
        compute_capability: gpu.compute_capability,
    };
    // The grid cap is blocks per SM times SMs; a device of proportionally more SMs gives the
    // planner's grid for another cap (used for the grid only, never for the selection).
    let grid_device = DeviceLimits {
        multiprocessors: variant.blocks_per_sm.map_or(gpu.multiprocessors, |b| {
            (gpu.multiprocessors * b).div_ceil(plan::BLOCKS_PER_MULTIPROCESSOR)
        }),
        compute_capability: gpu.compute_capability,
    };
    let arch = ptx::select_arch(gpu.compute_capability).ok_or("no PTX for this GPU")?;
    let out4 = [case.dims[0], case.dims[1], case.out.0, case.out.1];
    let (input, output) = (shape(case.dims)?, shape(out4)?);
    let forward_family = variant
        .forward
        .unwrap_or_else(|| plan::select_forward(&input, &output, layout, dtype, &device));
    let kernel_name = match pass {
        "forward" => format!("{forward_family:?}"),
        "backward_deterministic" => format!(
            "{:?}",
            plan::select_backward(
                BackwardAlgorithm::Deterministic,
                &output,
                &input,
                layout,
                dtype
            )
        ),
        _ => format!(
            "{:?}",
            plan::select_backward(BackwardAlgorithm::Atomic, &output, &input, layout, dtype)
        ),
    };
    let real = match pass {
        "forward" => {
            plan::forward_with(forward_family, &input, &output, layout, dtype, &grid_device)
                .ok_or("the family does not support this shape")?
        }
        _ => our_plan(&input, &output, layout, dtype, pass, &grid_device),
    };
    let rdims = reduced(case.dims, case.out, layout);
    let rin = shape(rdims)?;
    let rout = shape([rdims[0], rdims[1], case.out.0, case.out.1])?;
    let work_ratio = (case.dims[0] * case.dims[1]) as f64 / (rdims[0] * rdims[1]) as f64;
    // The reduced problem runs the same kernel family as the real one: its n-th launch stands
    // for the real plan's n-th launch.
    let launches = |p: &LaunchPlan| -> Vec<plan::KernelLaunch> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::Launch(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    };
    let red = match pass {
        // The split kernel's block shape (its window slices) depends on the problem size:
        // the reduced problem keeps the real launch's.
        "forward" if forward_family == plan::ForwardKernel::NhwcSplit => {
            launches(&real).first().and_then(|l| {
                let slices = l.block[1] as usize;
                plan::nhwc_split_with_slices(slices, IndexWidth::Auto, &rin, &rout, dtype, &device)
            })
        }
        "forward" => plan::forward_with(forward_family, &rin, &rout, layout, dtype, &device),
        "backward_deterministic" => plan::backward_with(
            plan::select_backward(
                BackwardAlgorithm::Deterministic,
                &output,
                &input,
                layout,
                dtype,
            ),
            &rout,
            &rin,
            layout,
            dtype,
            &device,
        ),
        _ => plan::backward_with(
            plan::select_backward(BackwardAlgorithm::Atomic, &output, &input, layout, dtype),
            &rout,
            &rin,
            layout,
            dtype,
            &device,
        ),
    }
    .ok_or("the reduced problem has no plan")?;
    let size = dtype.size_bytes() as u64;
    let (src_n, dst_n) = if pass == "forward" {
        (rin.numel(), rout.numel())
    } else {
        (rout.numel(), rin.numel())
    };
    let real_dst = if pass == "forward" {
        output.numel()
    } else {
        input.numel()
    } as f64
        * size as f64;
    let mut mem = Memory::new();
    let src = fill(&mut mem, src_n as u64 * size)?;
    let dst = fill(&mut mem, dst_n as u64 * size)?;
    // A plan of one launch and no fill writes each destination element once with plain
    // stores (the planner's contract; an accumulating plan zero-fills first).
    let written_once = (real.steps.len() == 1).then_some((dst, dst_n as u64 * size));
    let mut t = PassTime::default();
    let reduced_launches = launches(&red);
    let mut next_launch = reduced_launches.iter();
    for step in &real.steps {
        match step {
            Step::ZeroDst => t.memset(gpu, real_dst),
            Step::Launch(l) => {
                let r = next_launch
                    .next()
                    .ok_or("the reduced plan launches fewer kernels than the real one")?;
                // Same kernel as the real launch (its index width), the reduced problem's grid.
                let text = ptx::get(l.module, arch).ok_or("no PTX")?;
                let module = cache.module(l.module, arch, text)?;
                let regs = cache.registers(l.module, arch, text, &l.kernel)?;
                let params: Vec<ParamValue> = r
                    .args
                    .iter()
                    .map(|a| match *a {
                        KernelArg::Pointer(Buffer::Src) => ParamValue::U64(src),
                        KernelArg::Pointer(Buffer::Dst) => ParamValue::U64(dst),
                        KernelArg::U64(v) => ParamValue::U64(v),
                    })
                    .collect();
                let real_blocks = l.grid.iter().map(|&g| u64::from(g)).product();
                model_launch(
                    &mut t,
                    gpu,
                    module,
                    &l.kernel,
                    regs,
                    (&r.grid, &r.block, r.shared_bytes, params),
                    &mut mem,
                    real_blocks,
                    work_ratio,
                    written_once,
                )?;
            }
        }
    }
    Ok((t, kernel_name))
}

/// PyTorch's modelled time for one row.
fn torch(
    cache: &mut Cache,
    gpu: &Gpu,
    case: &Case,
    dtype: DType,
    layout: Layout,
    pass: &str,
) -> Result<PassTime> {
    let e = elem(dtype);
    let nhwc = layout != Layout::Nchw;
    let steps = |d: [u64; 4]| {
        if pass == "forward" {
            pytorch::forward(d, case.out, nhwc, e, gpu.multiprocessors)
        } else {
            pytorch::backward(d, case.out, nhwc, e)
        }
    };
    let real = steps(case.dims);
    let rdims = reduced(case.dims, case.out, layout);
    let red = steps(rdims);
    let work_ratio = (case.dims[0] * case.dims[1]) as f64 / (rdims[0] * rdims[1]) as f64;
    let out_numel = |d: [u64; 4]| d[0] * d[1] * case.out.0 * case.out.1;
    let in_numel = |d: [u64; 4]| d[0] * d[1] * d[2] * d[3];
    let (src_n, dst_n) = if pass == "forward" {
        (in_numel(rdims), out_numel(rdims))
    } else {
        (out_numel(rdims), in_numel(rdims))
    };
    let mut mem = Memory::new();
    let src = fill(&mut mem, src_n * e.size())?;
    let dst = fill(&mut mem, dst_n * e.size())?;
    // A single launch with no fill before it (no zeroed destination to accumulate into, no
    // semaphores of a reduction split across blocks) writes each destination element once with
    // plain stores.
    let written_once = (real.len() == 1).then_some((dst, dst_n * e.size()));
    let mut t = PassTime::default();
    for (rs, ss) in real.iter().zip(&red) {
        match (rs, ss) {
            (pytorch::Step::Memset(bytes), _) => t.memset(gpu, *bytes as f64),
            (pytorch::Step::Launch(l), pytorch::Step::Launch(r)) => {
                let arch = gpu.compute_capability;
                let key = format!("{:?}", l.module);
                let text = pytorch::ptx(l.module, arch);
                let module = cache.module(&key, arch, text)?;
                let regs = cache.registers(&key, arch, text, &l.kernel)?;
                let scratch: Vec<u64> = r
                    .scratch
                    .iter()
                    .map(|&b| {
                        fill(&mut mem, b.max(8)).and_then(|a| {
                            mem.write(a, &vec![0; b.max(8) as usize])
                                .map(|_| a)
                                .map_err(|e| e.to_string())
                        })
                    })
                    .collect::<Result<_>>()?;
                let params: Vec<ParamValue> = r
                    .args
                    .iter()
                    .map(|a| match *a {
                        pytorch::Arg::Src => ParamValue::U64(src),
                        pytorch::Arg::Dst => ParamValue::U64(dst),
                        pytorch::Arg::Scratch(i) => ParamValue::U64(scratch[i]),
                        pytorch::Arg::I32(v) => ParamValue::U32(v as u32),
                        pytorch::Arg::U32(v) => ParamValue::U32(v),
                        pytorch::Arg::I64(v) => ParamValue::U64(v as u64),
                        pytorch::Arg::F32(v) => ParamValue::F32(v),
                        pytorch::Arg::F64(v) => ParamValue::F64(v),
                    })
                    .collect();
                let real_blocks = l.grid.iter().map(|&g| u64::from(g)).product();
                model_launch(
                    &mut t,
                    gpu,
                    module,
                    &l.kernel,
                    regs,
                    (&r.grid, &r.block, r.shared, params),
                    &mut mem,
                    real_blocks,
                    work_ratio,
                    written_once,
                )?;
            }
            _ => return Err("PyTorch's reduced and real problems take different steps".into()),
        }
    }
    let _ = PtModule::ReduceMean;
    Ok(t)
}

/// The copy calibration row: a 1 GiB float4 copy.
fn copy_row(gpu: &Gpu) -> Result<(f64, f64)> {
    let module = Module::parse(gpumodel::COPY_PTX).map_err(|e| e.to_string())?;
    let bytes = 1u64 << 30;
    let n4 = bytes / 16;
    let grid = n4.div_ceil(256);
    let mut mem = Memory::new();
    let src = fill(&mut mem, 256 * 16 * 64)?;
    let dst = fill(&mut mem, 256 * 16 * 64)?;
    let launch = Launch {
        module: &module,
        kernel: "copy_f32x4".into(),
        arch: gpu.compute_capability,
        grid: [grid as u32, 1, 1],
        block: [256, 1, 1],
        dynamic_shared: 0,
        params: vec![
            ParamValue::U64(src),
            ParamValue::U64(dst),
            ParamValue::U64(n4),
        ],
    };
    let p = profile(
        &launch,
        &mut mem,
        Sampling {
            budget: u64::MAX,
            max_blocks: 64,
        },
    )?;
    let e = estimate(&p, gpu, 16, grid, Scale::uniform(1.0))?;
    let us = e.times[1].us;
    Ok((
        us,
        2.0 * bytes as f64 / (us * 1e-6) / gpu.dram_bytes_per_s * 100.0,
    ))
}

/// The crossovers behind the planner's thresholds: forward families forced over a sweep of
/// shapes, and grid caps over the cases of the table.
fn sweeps(cache: &mut Cache, gpu: &Gpu) -> Result<()> {
    use plan::ForwardKernel::*;
    let sms = u64::from(gpu.multiprocessors);
    println!("MODELLED on {}: nominal us per forward", gpu.full_name);
    println!("PLANES_PER_MULTIPROCESSOR: NCHW global pooling, planes per SM -> GlobalWarp vs BlockPerCell");
    for (hw, dtype) in [
        (7, DType::F32),
        (7, DType::F16),
        (14, DType::F32),
        (56, DType::F32),
    ] {
        for per_sm in [1u64, 2, 4, 8, 16, 32, 64] {
            let case = Case {
                name: String::new(),
                dims: [1, per_sm * sms, hw, hw],
                out: (1, 1),
            };
            let mut line = format!("  {hw}x{hw} {:>4} planes/SM {per_sm:>3}:", dtype.name());
            for fam in [GlobalWarp, BlockPerCell] {
                let v = Variant {
                    forward: Some(fam),
                    blocks_per_sm: None,
                };
                let (t, _) = ours_variant(cache, gpu, &case, dtype, Layout::Nchw, "forward", v)?;
                line += &format!(" {fam:?} {:>8.1}", t.us[1]);
            }
            println!("{line}");
        }
    }
    println!("LARGE_WINDOW: (4, 64, 7k, 7k) -> (7, 7), window area k*k");
    for layout in [Layout::Nchw, Layout::Nhwc] {
        for k in [2u64, 4, 6, 8, 10, 12, 16] {
            let case = Case {
                name: String::new(),
                dims: [4, 64, 7 * k, 7 * k],
                out: (7, 7),
            };
            let mut line = format!("  {} area {:>4}:", layout.name(), k * k);
            let fams: &[plan::ForwardKernel] = if layout == Layout::Nchw {
                &[Elementwise, WarpPerCell, BlockPerCell]
            } else {
                &[Elementwise, NhwcVector, BlockPerCell]
            };
            for &fam in fams {
                let v = Variant {
                    forward: Some(fam),
                    blocks_per_sm: None,
                };
                let (t, _) = ours_variant(cache, gpu, &case, DType::F32, layout, "forward", v)?;
                line += &format!(" {fam:?} {:>8.1}", t.us[1]);
            }
            println!("{line}");
        }
    }
    println!("BLOCKS_PER_MULTIPROCESSOR: grid cap per SM, the table's cases below 2^28 input elements, f32 and f16, both layouts, three passes");
    let caps = [2u32, 4, 8, 16, 32];
    let mut logs = vec![0.0f64; caps.len()];
    let mut rows = 0;
    for case in cases()
        .into_iter()
        .filter(|c| c.dims.iter().product::<u64>() < 1 << 28)
    {
        for dtype in [DType::F32, DType::F16] {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                for pass in ["forward", "backward_deterministic", "backward_atomic"] {
                    let mut ts = Vec::new();
                    for &cap in &caps {
                        let v = Variant {
                            forward: None,
                            blocks_per_sm: Some(cap),
                        };
                        ts.push(
                            ours_variant(cache, gpu, &case, dtype, layout, pass, v)?
                                .0
                                .us[1],
                        );
                    }
                    for (i, t) in ts.iter().enumerate() {
                        logs[i] += (t / ts[2]).ln();
                    }
                    rows += 1;
                }
            }
        }
    }
    for (i, cap) in caps.iter().enumerate() {
        println!(
            "  cap {cap:>2} blocks/SM: geometric-mean time {:.3}x of cap 8 over {rows} rows",
            (logs[i] / f64::from(rows)).exp()
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("model: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut gpu_name = "h100".to_string();
    let mut csv = false;
    let mut sweep = false;
    let mut only: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--gpu" => {
                gpu_name = args.get(i + 1).cloned().ok_or("--gpu needs h100 or a100")?;
                i += 1;
            }
            "--csv" => csv = true,
            "--sweep" => sweep = true,
            "--case" => {
                only = Some(args.get(i + 1).cloned().ok_or("--case needs a case name")?);
                i += 1;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: --gpu h100|a100 [--csv] [--case NAME] [--sweep]"
                ))
            }
        }
        i += 1;
    }
    let gpu = gpu::by_name(&gpu_name)
        .ok_or_else(|| format!("unknown GPU {gpu_name:?}: expected h100 or a100"))?;
    if ptx::variants().is_empty() {
        return Err(
            "the crate was built without NVRTC: run `bash .ci/nvrtc.sh` and rebuild".into(),
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ptxas = gpumodel::ptxas::find(root).ok_or(
        "ptxas not found: `python3 -m pip install --target .ptxas \"nvidia-cuda-nvcc==13.0.*\"` (or set GPUMODEL_PTXAS)",
    )?;
    let mut cache = Cache {
        modules: HashMap::new(),
        registers: HashMap::new(),
        ptxas,
    };
    if sweep {
        return sweeps(&mut cache, &gpu);
    }
    let all = cases();
    if let Some(o) = &only {
        if !all.iter().any(|c| &c.name == o) {
            return Err(format!("no case {o:?} in benches/cases.txt"));
        }
    }
    let started = Instant::now();
    let (copy_us, copy_pct) = copy_row(&gpu)?;
    if csv {
        println!("case,pass,dtype,layout,kernel,ours_us,pytorch_us,speedup,dram_pct");
        println!("copy,copy,f32,-,copy_f32x4,{copy_us:.2},{copy_us:.2},1.00,{copy_pct:.1}");
    } else {
        println!(
            "MODELLED (not measured) on {} -- gpumodel, 2026-11-21",
            gpu.full_name
        );
        println!("copy calibration: 1 GiB float4 copy {copy_us:.1} us = {copy_pct:.1}% of peak DRAM bandwidth");
        println!(
            "{:<16} {:<22} {:>4} {:>4} {:<16} {:>22} {:>9} {:>7} {:>6} {:>5} {:>7} {:>7}",
            "case",
            "pass",
            "type",
            "lay",
            "kernel",
            "ours us (fast..slow)",
            "torch us",
            "speedup",
            "dram%",
            "bw%",
            "ours",
            "torch"
        );
    }
    let mut logs: Vec<f64> = Vec::new();
    for case in all
        .iter()
        .filter(|c| only.as_ref().map_or(true, |o| &c.name == o))
    {
        for dtype in [DType::F32, DType::F16, DType::Bf16, DType::F64] {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                for pass in ["forward", "backward_deterministic", "backward_atomic"] {
                    let (o, kernel) =
                        ours(&mut cache, &gpu, case, dtype, layout, pass).map_err(|e| {
                            format!(
                                "{} {pass} {} {}: {e}",
                                case.name,
                                dtype.name(),
                                layout.name()
                            )
                        })?;
                    let p = torch(&mut cache, &gpu, case, dtype, layout, pass).map_err(|e| {
                        format!(
                            "{} {pass} {} {} (PyTorch): {e}",
                            case.name,
                            dtype.name(),
                            layout.name()
                        )
                    })?;
                    let size = dtype.size_bytes() as f64;
                    let min_bytes = (case.dims.iter().product::<u64>()
                        + case.dims[0] * case.dims[1] * case.out.0 * case.out.1)
                        as f64
                        * size;
                    let speedup = p.us[1] / o.us[1];
                    logs.push(speedup.ln());
                    let dram_pct = min_bytes / (o.us[1] * 1e-6) / gpu.dram_bytes_per_s * 100.0;
                    let bytes_pct = o.dram / min_bytes * 100.0;
                    let name = |b: Option<Bound>| b.map_or("-", Bound::name);
                    if csv {
                        println!(
                            "{},{pass},{},{},{kernel},{:.2},{:.2},{speedup:.2},{dram_pct:.1}",
                            case.name,
                            dtype.name(),
                            layout.name(),
                            o.us[1],
                            p.us[1]
                        );
                    } else {
                        println!(
                            "{:<16} {:<22} {:>4} {:>4} {:<16} {:>8.1} ({:>5.1}..{:>6.1}) {:>9.1} {:>6.2}x {:>6.0} {:>5.0} {:>7} {:>7}",
                            case.name,
                            pass,
                            dtype.name(),
                            layout.name(),
                            kernel,
                            o.us[1],
                            o.us[0],
                            o.us[2],
                            p.us[1],
                            speedup,
                            bytes_pct,
                            dram_pct,
                            name(o.bound),
                            name(p.bound)
                        );
                    }
                }
            }
        }
    }
    let geo = (logs.iter().sum::<f64>() / logs.len().max(1) as f64).exp();
    eprintln!(
        "{} rows, geometric mean speed-up {geo:.2}x, {:.0} s",
        logs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
