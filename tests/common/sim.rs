//! Runs the crate's launch plans on `ptxsim`, the PTX interpreter: the same plans the CUDA path
//! executes (`adaptive_pool::plan`), the same embedded PTX (`adaptive_pool::ptx`), on the CPU.
//!
//! Buffers are allocated at their exact size, each followed by an unmapped gap, so a kernel
//! that touches one element past the end of its input or output faults, aligned or not.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use adaptive_pool::plan::{
    self, BackwardKernel, Buffer, DeviceLimits, ForwardKernel, IndexWidth, KernelArg, LaunchPlan,
    Step,
};
use adaptive_pool::{ptx, BackwardAlgorithm, Element, Layout, Shape};
use ptxsim::{
    BlockOrder, LaunchConfig, LaunchOptions, Memory, Module, NoObserver, ParamValue, Schedule,
    ThreadOrder,
};

/// The device the simulator stands for in the planner: few multiprocessors, so that every
/// grid-stride loop makes several trips even on small test shapes.
pub fn simulated_device(arch: u32) -> DeviceLimits {
    DeviceLimits {
        multiprocessors: 2,
        compute_capability: arch,
    }
}

/// Each embedded PTX module, parsed once per process.
pub fn module(name: &'static str, arch: u32) -> &'static Module {
    static MODULES: OnceLock<Mutex<HashMap<(&'static str, u32), &'static Module>>> =
        OnceLock::new();
    let map = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry((name, arch)).or_insert_with(|| {
        let src =
            ptx::get(name, arch).unwrap_or_else(|| panic!("no PTX for module {name} arch {arch}"));
        let parsed = Module::parse(src)
            .unwrap_or_else(|e| panic!("ptxsim cannot parse {name}.sm{arch}.ptx: {e}"));
        Box::leak(Box::new(parsed))
    })
}

/// Which buffers start one element past a 16-byte boundary (as views into larger buffers
/// can), to exercise the vector kernels' scalar fallback. Checking them separately catches an
/// alignment test that looks at one pointer only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Misalign {
    /// Both buffers 256-byte aligned.
    #[default]
    None,
    /// The buffer read (input, grad_output) misaligned, the one written aligned.
    Src,
    /// The buffer written (output, grad_input) misaligned, the one read aligned.
    Dst,
    /// Both misaligned.
    Both,
}

impl Misalign {
    /// Every placement.
    pub const ALL: [Misalign; 4] = [Misalign::None, Misalign::Src, Misalign::Dst, Misalign::Both];

    /// Byte offsets from a 256-byte boundary of (src, dst) for elements of `size` bytes.
    pub fn offsets(self, size: usize) -> (u64, u64) {
        let e = size as u64;
        match self {
            Misalign::None => (0, 0),
            Misalign::Src => (e, 0),
            Misalign::Dst => (0, e),
            Misalign::Both => (e, e),
        }
    }
}

/// What one simulated plan did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    pub instructions: u64,
    pub launches: u64,
}

/// How a plan is executed: architecture, block order, thread schedule, checks, buffer
/// placement.
#[derive(Clone, Debug)]
pub struct Exec {
    pub arch: u32,
    pub order: BlockOrder,
    pub schedule: Schedule,
    pub race_check: bool,
    pub misalign: Misalign,
}

impl Exec {
    fn options(&self) -> LaunchOptions {
        LaunchOptions {
            schedule: self.schedule,
            race_check: self.race_check,
            ..LaunchOptions::default()
        }
    }
}

/// Executes `plan`: `src` is read, `dst` starts as given and is returned as the kernels left
/// it, with the counters and the names of the kernels launched. Each buffer is allocated at
/// exactly its size (placed as `exec.misalign` says), so an overrun by one element faults.
pub fn run_plan<T: Element>(
    plan: &LaunchPlan,
    exec: &Exec,
    src: &[T],
    dst: Vec<T>,
) -> (Vec<T>, SimStats, Vec<String>) {
    let size = std::mem::size_of::<T>();
    let arch = exec.arch;
    let mut mem = Memory::new();
    let (src_offset, dst_offset) = exec.misalign.offsets(size);
    let src_addr = mem.alloc_at_offset(std::mem::size_of_val(src), src_offset);
    let dst_addr = mem.alloc_at_offset(dst.len() * size, dst_offset);
    mem.write(src_addr, &to_bytes(src)).expect("write src");
    mem.write(dst_addr, &to_bytes(&dst)).expect("write dst");
    let options = exec.options();
    let mut stats = SimStats::default();
    let mut launched = Vec::new();
    for step in &plan.steps {
        match step {
            Step::ZeroDst => mem
                .write(dst_addr, &vec![0u8; dst.len() * size])
                .expect("zero dst"),
            Step::Launch(launch) => {
                let params: Vec<ParamValue> = launch
                    .args
                    .iter()
                    .map(|a| match *a {
                        KernelArg::Pointer(Buffer::Src) => ParamValue::U64(src_addr),
                        KernelArg::Pointer(Buffer::Dst) => ParamValue::U64(dst_addr),
                        KernelArg::U64(v) => ParamValue::U64(v),
                    })
                    .collect();
                let cfg = LaunchConfig {
                    grid: launch.grid,
                    block: launch.block,
                    dynamic_shared_bytes: launch.shared_bytes,
                    block_order: exec.order,
                };
                let run = module(launch.module, arch)
                    .launch_with(
                        &launch.kernel,
                        &cfg,
                        &params,
                        &mut mem,
                        &options,
                        &mut NoObserver,
                    )
                    .unwrap_or_else(|e| {
                        panic!(
                            "{} (compute_{arch}, {:?}, {:?}, {:?}, race check {}): {e}",
                            launch.kernel,
                            exec.order,
                            exec.schedule,
                            exec.misalign,
                            exec.race_check
                        )
                    });
                stats.instructions += run.instructions;
                stats.launches += 1;
                launched.push(launch.kernel.clone());
            }
        }
    }
    let raw = mem.read(dst_addr, dst.len() * size).expect("read dst");
    (from_bytes(&raw), stats, launched)
}

/// Elements as little-endian bytes (f32, f64, f16, bf16 are plain numbers).
pub fn to_bytes<T: Element>(v: &[T]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| to_le_bytes(x.to_f64(), T::DTYPE))
        .collect()
}

/// Little-endian bytes as elements.
pub fn from_bytes<T: Element>(raw: &[u8]) -> Vec<T> {
    raw.chunks_exact(std::mem::size_of::<T>())
        .map(|c| T::from_f64(from_le_bytes(c, T::DTYPE)))
        .collect()
}

fn to_le_bytes(v: f64, dtype: adaptive_pool::DType) -> Vec<u8> {
    use adaptive_pool::half::{bf16, f16};
    use adaptive_pool::DType;
    match dtype {
        DType::F32 => (v as f32).to_le_bytes().to_vec(),
        DType::F64 => v.to_le_bytes().to_vec(),
        DType::F16 => f16::from_f64(v).to_le_bytes().to_vec(),
        DType::Bf16 => bf16::from_f64(v).to_le_bytes().to_vec(),
    }
}

fn from_le_bytes(b: &[u8], dtype: adaptive_pool::DType) -> f64 {
    use adaptive_pool::half::{bf16, f16};
    use adaptive_pool::DType;
    match dtype {
        DType::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        DType::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        DType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
        DType::Bf16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
    }
}

/// The simulator as a test backend for one PTX architecture. By default it runs the kernels
/// the planner selects, blocks in order, threads ascending to each barrier, race check on;
/// the public fields change that: `forward_kernel` / `backward_kernel` force a family, `index`
/// an index width, `schedule` the interleaving of threads, `misalign` the buffer placement.
pub struct Sim {
    pub arch: u32,
    pub order: BlockOrder,
    pub schedule: Schedule,
    pub race_check: bool,
    pub index: IndexWidth,
    pub forward_kernel: Option<ForwardKernel>,
    pub backward_kernel: Option<BackwardKernel>,
    pub misalign: Misalign,
    pub stats: Mutex<SimStats>,
    /// Every kernel this backend launched.
    pub launched: Mutex<BTreeSet<String>>,
}

impl Sim {
    pub fn new(arch: u32, order: BlockOrder) -> Sim {
        Sim {
            arch,
            order,
            schedule: Schedule::RunToBlock(ThreadOrder::Ascending),
            race_check: true,
            index: IndexWidth::Auto,
            forward_kernel: None,
            backward_kernel: None,
            misalign: Misalign::None,
            stats: Mutex::new(SimStats::default()),
            launched: Mutex::new(BTreeSet::new()),
        }
    }

    fn exec(&self) -> Exec {
        Exec {
            arch: self.arch,
            order: self.order,
            schedule: self.schedule,
            race_check: self.race_check,
            misalign: self.misalign,
        }
    }

    fn run<T: Element>(&self, plan: &LaunchPlan, src: &[T], dst: Vec<T>) -> Vec<T> {
        let (out, s, names) = run_plan(plan, &self.exec(), src, dst);
        let mut total = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        total.instructions += s.instructions;
        total.launches += s.launches;
        let mut launched = self.launched.lock().unwrap_or_else(|e| e.into_inner());
        launched.extend(names);
        out
    }

    /// Forward through the public planner.
    pub fn forward<T: Element>(
        &self,
        input: &[T],
        shape: &Shape,
        layout: Layout,
        out_shape: &Shape,
        poisoned: Vec<T>,
    ) -> Vec<T> {
        let device = simulated_device(self.arch);
        let plan = match (self.forward_kernel, self.index) {
            (None, IndexWidth::Auto) => plan::forward(shape, out_shape, layout, T::DTYPE, &device),
            (k, index) => {
                let k = k.unwrap_or_else(|| {
                    plan::select_forward(shape, out_shape, layout, T::DTYPE, &device)
                });
                plan::forward_with_index(k, index, shape, out_shape, layout, T::DTYPE, &device)
                    .unwrap_or_else(|| {
                        panic!("{k:?} {index:?} does not support {shape:?} -> {out_shape:?}")
                    })
            }
        };
        self.run(&plan, input, poisoned)
    }

    /// Backward through the public planner.
    pub fn backward<T: Element>(
        &self,
        grad_output: &[T],
        grad_output_shape: &Shape,
        input_shape: &Shape,
        layout: Layout,
        algorithm: BackwardAlgorithm,
        poisoned: Vec<T>,
    ) -> Vec<T> {
        let device = simulated_device(self.arch);
        let dtype = T::DTYPE;
        let plan = match (self.backward_kernel, self.index) {
            (None, IndexWidth::Auto) => plan::backward(
                grad_output_shape,
                input_shape,
                layout,
                dtype,
                algorithm,
                &device,
            ),
            (k, index) => {
                let k = k.unwrap_or_else(|| {
                    plan::select_backward(algorithm, grad_output_shape, input_shape, layout, dtype)
                });
                let (out, inp) = (grad_output_shape, input_shape);
                plan::backward_with_index(k, index, out, inp, layout, dtype, &device)
                    .unwrap_or_else(|| panic!("{k:?} {index:?} does not support {out:?}"))
            }
        };
        self.run(&plan, grad_output, poisoned)
    }
}

impl super::cases::Backend for Sim {
    fn forward<T: Element>(
        &self,
        input: &[T],
        shape: &Shape,
        layout: Layout,
        out_shape: &Shape,
        poisoned_output: Vec<T>,
    ) -> Vec<T> {
        Sim::forward(self, input, shape, layout, out_shape, poisoned_output)
    }

    fn backward<T: Element>(
        &self,
        grad_output: &[T],
        grad_output_shape: &Shape,
        input_shape: &Shape,
        layout: Layout,
        algorithm: BackwardAlgorithm,
        poisoned_grad_input: Vec<T>,
    ) -> Vec<T> {
        Sim::backward(
            self,
            grad_output,
            grad_output_shape,
            input_shape,
            layout,
            algorithm,
            poisoned_grad_input,
        )
    }
}
