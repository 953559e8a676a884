//! Runs the crate's launch plans on `ptxsim`, the PTX interpreter: the same plans the CUDA path
//! executes (`adaptive_pool::plan`), the same embedded PTX (`adaptive_pool::ptx`), on the CPU.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use adaptive_pool::plan::{
    self, BackwardKernel, Buffer, DeviceLimits, ForwardKernel, KernelArg, LaunchPlan, Step,
};
use adaptive_pool::{ptx, BackwardAlgorithm, Element, Layout, Shape};
use ptxsim::{BlockOrder, LaunchConfig, Memory, Module, ParamValue};

/// The device the simulator stands for in the planner: few multiprocessors, so that every
/// grid-stride loop makes several trips even on small test shapes.
pub fn simulated_device(arch: u32) -> DeviceLimits {
    DeviceLimits {
        multiprocessors: 2,
        compute_capability: arch,
    }
}

/// Each embedded PTX module, parsed once per process.
fn module(name: &'static str, arch: u32) -> &'static Module {
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

/// What one simulated plan did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    pub instructions: u64,
    pub launches: u64,
}

/// Executes `plan` for PTX architecture `arch`: `src` is read, `dst` starts as given and is
/// returned as the kernels left it. With `misalign`, both buffers start one element past a
/// 16-byte boundary (as views into larger buffers can), to exercise the vector kernels' scalar
/// fallback.
pub fn run_plan<T: Element>(
    plan: &LaunchPlan,
    arch: u32,
    order: BlockOrder,
    misalign: bool,
    src: &[T],
    dst: Vec<T>,
) -> (Vec<T>, SimStats) {
    let bytes = |v: &[T]| -> Vec<u8> {
        // Elements are plain little-endian numbers (f32, f64, f16, bf16): copy their bytes.
        v.iter()
            .flat_map(|x| to_le_bytes(x.to_f64(), T::DTYPE))
            .collect()
    };
    let mut mem = Memory::new();
    let size = std::mem::size_of::<T>();
    let offset = if misalign { size as u64 } else { 0 };
    let src_addr = mem.alloc(std::mem::size_of_val(src) + size) + offset;
    let dst_addr = mem.alloc(dst.len() * size + size) + offset;
    mem.write(src_addr, &bytes(src)).expect("write src");
    mem.write(dst_addr, &bytes(&dst)).expect("write dst");
    let mut stats = SimStats::default();
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
                    block_order: order,
                };
                let run = module(launch.module, arch)
                    .launch(&launch.kernel, &cfg, &params, &mut mem)
                    .unwrap_or_else(|e| panic!("{} (compute_{arch}): {e}", launch.kernel));
                stats.instructions += run.instructions;
                stats.launches += 1;
            }
        }
    }
    let raw = mem.read(dst_addr, dst.len() * size).expect("read dst");
    let out = raw
        .chunks_exact(size)
        .map(|c| T::from_f64(from_le_bytes(c, T::DTYPE)))
        .collect();
    (out, stats)
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

/// The simulator as a test backend for one PTX architecture and block order. By default it
/// runs the kernels the planner selects; `forward_kernel` / `backward_kernel` force a family.
pub struct Sim {
    pub arch: u32,
    pub order: BlockOrder,
    pub forward_kernel: Option<ForwardKernel>,
    pub backward_kernel: Option<BackwardKernel>,
    pub misalign: bool,
    pub stats: Mutex<SimStats>,
}

impl Sim {
    pub fn new(arch: u32, order: BlockOrder) -> Sim {
        Sim {
            arch,
            order,
            forward_kernel: None,
            backward_kernel: None,
            misalign: false,
            stats: Mutex::new(SimStats::default()),
        }
    }

    fn add(&self, s: SimStats) {
        let mut total = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        total.instructions += s.instructions;
        total.launches += s.launches;
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
        let plan = match self.forward_kernel {
            None => plan::forward(shape, out_shape, layout, T::DTYPE, &device),
            Some(k) => plan::forward_with(k, shape, out_shape, layout, T::DTYPE, &device)
                .unwrap_or_else(|| panic!("{k:?} does not support {shape:?} -> {out_shape:?}")),
        };
        let (out, stats) = run_plan(&plan, self.arch, self.order, self.misalign, input, poisoned);
        self.add(stats);
        out
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
        let plan = match self.backward_kernel {
            None => plan::backward(
                grad_output_shape,
                input_shape,
                layout,
                T::DTYPE,
                algorithm,
                &device,
            ),
            Some(k) => {
                plan::backward_with(k, grad_output_shape, input_shape, layout, T::DTYPE, &device)
                    .unwrap_or_else(|| panic!("{k:?} does not support {grad_output_shape:?}"))
            }
        };
        let (out, stats) = run_plan(
            &plan,
            self.arch,
            self.order,
            self.misalign,
            grad_output,
            poisoned,
        );
        self.add(stats);
        out
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
