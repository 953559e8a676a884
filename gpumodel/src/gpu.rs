//! The modelled GPUs: published parameters, each with its source, and the ones that are not
//! published (latencies under load, sustained bandwidth, launch overhead) as ranges.

/// Execution pipes, in the column order of [`crate::sass_costs::SASS_COSTS`].
pub const PIPES: [&str; 9] = [
    "alu", "fma", "imad", "fp16", "fp64", "xu", "lsu", "cbu", "uniform",
];
/// Number of pipes.
pub const NPIPES: usize = PIPES.len();

/// Which end of the uncertain parameters' ranges to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Every uncertain parameter at its favourable end (high bandwidth, low latency, low
    /// overhead): the low end of the modelled time.
    Fast,
    /// Every uncertain parameter at its middle.
    Nominal,
    /// Every uncertain parameter at its unfavourable end: the high end of the modelled time.
    Slow,
}

/// An uncertain parameter: `(favourable, nominal, unfavourable)` for the time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range(pub f64, pub f64, pub f64);

impl Range {
    /// The value for a scenario.
    pub fn at(self, s: Scenario) -> f64 {
        match s {
            Scenario::Fast => self.0,
            Scenario::Nominal => self.1,
            Scenario::Slow => self.2,
        }
    }
}

/// One GPU's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpu {
    /// Short name (`h100`, `a100`).
    pub name: &'static str,
    /// Long name with the memory configuration.
    pub full_name: &'static str,
    /// Compute capability, `major * 10 + minor`; also the PTX variant the crate loads.
    pub compute_capability: u32,
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// SM clock in GHz (the boost clock; the kernels here are memory-bound and short, so the
    /// GPU runs at or near it).
    pub clock_ghz: f64,
    /// Peak DRAM bandwidth, bytes per second.
    pub dram_bytes_per_s: f64,
    /// Sustained fraction of the peak DRAM bandwidth a streaming kernel reaches.
    pub dram_efficiency: Range,
    /// L2 capacity in bytes.
    pub l2_bytes: u64,
    /// L2 bandwidth (hits), bytes per SM clock for the whole chip.
    pub l2_bytes_per_clock: Range,
    /// L1 data cache capacity per SM left beside the shared memory carve-out, bytes.
    pub l1_bytes: u64,
    /// L1 tag lookups ("wavefronts") per SM clock.
    pub l1_wavefronts_per_clock: f64,
    /// Load-to-use latency of an L1 hit, cycles.
    pub l1_latency: f64,
    /// Load-to-use latency of an L2 hit, cycles.
    pub l2_latency: Range,
    /// Load-to-use latency of a DRAM access (L2 miss), cycles.
    pub dram_latency: Range,
    /// Shared memory (and shuffle) latency, cycles.
    pub shared_latency: f64,
    /// Results per clock per SM of each pipe (lanes), in [`PIPES`] order.
    pub pipe_lanes_per_clock: [f64; NPIPES],
    /// Dependent-issue latency of each pipe, cycles, in [`PIPES`] order.
    pub pipe_latency: [f64; NPIPES],
    /// 32-bit registers per SM.
    pub registers_per_sm: u32,
    /// Register allocation granularity per warp (registers per thread rounded to this).
    pub register_granularity: u32,
    /// Most resident threads per SM.
    pub max_threads_per_sm: u32,
    /// Most resident blocks per SM.
    pub max_blocks_per_sm: u32,
    /// Shared memory per SM available to blocks, bytes.
    pub shared_bytes_per_sm: u32,
    /// Shared memory the driver reserves per block, bytes.
    pub shared_reserved_per_block: u32,
    /// Time from one kernel (or memset) to the next on a stream, launched back to back,
    /// microseconds: the fixed cost every launch adds.
    pub launch_overhead_us: Range,
}

// Per-pipe dependent latencies (cycles): 4 for the fixed-latency integer and FP32 pipes,
// 8 for FP64 (A100) and about 16 for MUFU and conversions, about 25 for shuffles and
// shared memory. Sources: Jia, Maggioni, Smith, Scarpazza, "Dissecting the NVIDIA Volta GPU
// Architecture via Microbenchmarking" (2018) and its Turing and Ampere follow-ups; Luo et al.,
// "Benchmarking and Dissecting the Nvidia Hopper GPU Architecture" (IPDPS 2024).
const PIPE_LATENCY: [f64; NPIPES] = [4.0, 4.0, 4.0, 4.0, 8.0, 16.0, 25.0, 4.0, 2.0];

/// NVIDIA H100 SXM5 80 GB.
///
/// Published: 132 SMs, 128 FP32 / 64 INT32 / 64 FP64 lanes per SM, 16 SFU lanes per SM,
/// 50 MB L2, 256 KB combined L1/shared per SM (up to 228 KB shared), 65536 registers and 2048
/// threads / 32 blocks per SM (NVIDIA H100 Tensor Core GPU Architecture whitepaper, 2022;
/// CUDA C++ Programming Guide, "Compute Capabilities" and "Arithmetic Instructions" tables);
/// 3.35 TB/s HBM3 and a 1.98 GHz maximum boost clock (NVIDIA H100 datasheet).
/// Uncertain, as ranges: sustained DRAM efficiency 0.88-0.93 of peak (BabelStream / STREAM
/// copy and triad results published for H100 SXM reach about 3.0-3.1 TB/s); L2 hit bandwidth;
/// L2 hit latency about 260 cycles and DRAM latency 480-700 cycles (Luo et al. 2024, pointer
/// chasing, unloaded to loaded); launch-to-launch gap 2-4 us for back-to-back kernels.
pub fn h100() -> Gpu {
    Gpu {
        name: "h100",
        full_name: "H100 SXM5 80GB (132 SMs, 1.98 GHz, 3.35 TB/s HBM3, 50 MB L2)",
        compute_capability: 90,
        multiprocessors: 132,
        clock_ghz: 1.98,
        dram_bytes_per_s: 3.35e12,
        dram_efficiency: Range(0.93, 0.90, 0.86),
        l2_bytes: 50 << 20,
        l2_bytes_per_clock: Range(5120.0, 4608.0, 4096.0),
        l1_bytes: 128 << 10,
        l1_wavefronts_per_clock: 1.0,
        l1_latency: 33.0,
        l2_latency: Range(220.0, 260.0, 300.0),
        dram_latency: Range(480.0, 600.0, 720.0),
        shared_latency: 29.0,
        pipe_lanes_per_clock: [64.0, 128.0, 64.0, 128.0, 64.0, 16.0, 32.0, 32.0, 128.0],
        pipe_latency: PIPE_LATENCY,
        registers_per_sm: 65536,
        register_granularity: 8,
        max_threads_per_sm: 2048,
        max_blocks_per_sm: 32,
        shared_bytes_per_sm: 228 << 10,
        shared_reserved_per_block: 1024,
        launch_overhead_us: Range(2.0, 2.5, 3.5),
    }
}

/// NVIDIA A100 SXM4 80 GB.
///
/// Published: 108 SMs, 64 FP32 / 64 INT32 / 32 FP64 lanes per SM, 16 SFU lanes per SM,
/// 40 MB L2 with 5120 bytes/clock of L2 read bandwidth, 192 KB combined L1/shared per SM (up
/// to 164 KB shared), 65536 registers and 2048 threads / 32 blocks per SM, 1.41 GHz boost
/// (NVIDIA A100 Tensor Core GPU Architecture whitepaper, 2020; CUDA C++ Programming Guide);
/// 2039 GB/s HBM2e (A100 80GB datasheet).
/// Uncertain, as ranges: sustained DRAM efficiency 0.88-0.93 of peak (BabelStream copy on A100
/// reaches about 1.8-1.9 TB/s on the 80 GB part); L2 hit latency about 200 cycles and DRAM
/// latency 450-650 cycles (Jia et al. for Ampere; Luo et al. 2024); launch gap 2-4 us.
pub fn a100() -> Gpu {
    Gpu {
        name: "a100",
        full_name: "A100 SXM4 80GB (108 SMs, 1.41 GHz, 2.04 TB/s HBM2e, 40 MB L2)",
        compute_capability: 80,
        multiprocessors: 108,
        clock_ghz: 1.41,
        dram_bytes_per_s: 2.039e12,
        dram_efficiency: Range(0.93, 0.90, 0.86),
        l2_bytes: 40 << 20,
        l2_bytes_per_clock: Range(5120.0, 4608.0, 4096.0),
        l1_bytes: 96 << 10,
        l1_wavefronts_per_clock: 1.0,
        l1_latency: 33.0,
        l2_latency: Range(180.0, 200.0, 240.0),
        dram_latency: Range(450.0, 550.0, 650.0),
        shared_latency: 29.0,
        pipe_lanes_per_clock: [64.0, 64.0, 64.0, 128.0, 32.0, 16.0, 32.0, 32.0, 128.0],
        pipe_latency: PIPE_LATENCY,
        registers_per_sm: 65536,
        register_granularity: 8,
        max_threads_per_sm: 2048,
        max_blocks_per_sm: 32,
        shared_bytes_per_sm: 164 << 10,
        shared_reserved_per_block: 1024,
        launch_overhead_us: Range(2.0, 2.5, 3.5),
    }
}

/// The GPU named `name` (`h100` or `a100`).
pub fn by_name(name: &str) -> Option<Gpu> {
    match name {
        "h100" => Some(h100()),
        "a100" => Some(a100()),
        _ => None,
    }
}

impl Gpu {
    /// Blocks of `threads` threads using `registers` registers per thread and `shared` bytes of
    /// shared memory that one SM keeps resident (at least 0; 0 means the block cannot run).
    pub fn blocks_per_sm(&self, threads: u32, registers: u32, shared: u32) -> u32 {
        let warps = threads.div_ceil(32).max(1);
        let regs = registers.max(1).div_ceil(self.register_granularity) * self.register_granularity;
        // Registers are allocated per warp in units of 256.
        let regs_per_warp = (regs * 32).div_ceil(256) * 256;
        let by_regs = self.registers_per_sm / (regs_per_warp * warps);
        let by_threads = self.max_threads_per_sm / (warps * 32);
        let by_shared = if shared == 0 {
            u32::MAX
        } else {
            self.shared_bytes_per_sm / (shared + self.shared_reserved_per_block)
        };
        by_regs
            .min(by_threads)
            .min(by_shared)
            .min(self.max_blocks_per_sm)
    }
}
