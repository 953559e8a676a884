//! The cases people meet first, on the GPU when there is one that can run the kernels, otherwise
//! on ptxsim (the CPU PTX simulator running the very same kernels): with no device, a driver
//! older than the PTX (`Error::PtxTooNew`) or a device below its lowest architecture
//! (`Error::UnsupportedDevice`), the demo says so and falls back. Prints each shape and the
//! largest difference from the f64 reference.
//!
//! `cargo run --release --example demo`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use adaptive_pool::cudarc::driver::{CudaContext, CudaStream};
use adaptive_pool::{reference, AdaptiveAvgPool2d, DeviceTensor, Error, Layout, OutputSize, Shape};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where the kernels run.
enum Runner {
    Gpu(Arc<CudaStream>, String),
    /// The simulator, and why not the GPU (`None`: there is none).
    Simulator(common::sim::Sim, Option<String>),
}

/// Whether an error from the GPU's first launch means this device cannot run the crate's
/// kernels at all (a driver older than the PTX, a device below its lowest architecture), so
/// that the simulator should run them instead. Any other error is a real failure.
fn cannot_run_kernels(e: &Error) -> bool {
    matches!(e, Error::PtxTooNew { .. } | Error::UnsupportedDevice { .. })
}

impl Runner {
    /// The GPU if there is one that runs the kernels (checked with a tiny forward), otherwise
    /// the simulator, with the reason.
    fn detect() -> Result<Runner, Error> {
        let arch = adaptive_pool::ptx::archs().last().copied().unwrap_or(90);
        let simulator = |why: Option<String>| {
            Runner::Simulator(
                common::sim::Sim::new(arch, ptxsim::BlockOrder::Forward),
                why,
            )
        };
        // SAFETY: only tries to open the driver library; nothing in it is called.
        let driver = unsafe { adaptive_pool::cudarc::driver::sys::is_culib_present() };
        if !driver || !CudaContext::device_count().is_ok_and(|n| n > 0) {
            return Ok(simulator(None));
        }
        let Ok(ctx) = CudaContext::new(0) else {
            return Ok(simulator(None));
        };
        let name = ctx.name().unwrap_or_else(|_| "CUDA device 0".into());
        let stream = ctx.default_stream();
        let probe = DeviceTensor::from_host(&stream, &[1.0f32; 4], &[1, 2, 2], Layout::Nchw)
            .and_then(|x| AdaptiveAvgPool2d::new(1).forward(&stream, &x))
            .and_then(|y| y.to_host(&stream));
        match probe {
            Ok(_) => Ok(Runner::Gpu(stream, name)),
            Err(e) if cannot_run_kernels(&e) => Ok(simulator(Some(format!("{name}: {e}")))),
            Err(e) => Err(e),
        }
    }

    fn forward(&self, input: &[f32], shape: &Shape, size: OutputSize) -> Result<Vec<f32>, String> {
        let out_shape = size.resolve(shape).map_err(|e| e.to_string())?;
        match self {
            Runner::Gpu(s, _) => {
                let x = DeviceTensor::from_host(s, input, shape.dims(), Layout::Nchw)
                    .map_err(|e| e.to_string())?;
                let y = AdaptiveAvgPool2d::new(size)
                    .forward(s, &x)
                    .map_err(|e| e.to_string())?;
                y.to_host(s).map_err(|e| e.to_string())
            }
            Runner::Simulator(sim, _) => Ok(sim.forward(
                input,
                shape,
                Layout::Nchw,
                &out_shape,
                vec![f32::NAN; out_shape.numel()],
            )),
        }
    }

    fn backward(
        &self,
        grad: &[f32],
        grad_shape: &Shape,
        input_shape: &Shape,
        size: OutputSize,
    ) -> Result<Vec<f32>, String> {
        match self {
            Runner::Gpu(s, _) => {
                let g = DeviceTensor::from_host(s, grad, grad_shape.dims(), Layout::Nchw)
                    .map_err(|e| e.to_string())?;
                let gi = AdaptiveAvgPool2d::new(size)
                    .backward(s, &g, input_shape.dims())
                    .map_err(|e| e.to_string())?;
                gi.to_host(s).map_err(|e| e.to_string())
            }
            Runner::Simulator(sim, _) => Ok(sim.backward(
                grad,
                grad_shape,
                input_shape,
                Layout::Nchw,
                adaptive_pool::BackwardAlgorithm::Atomic,
                vec![f32::NAN; input_shape.numel()],
            )),
        }
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_nan() || y.is_nan() {
                f64::INFINITY
            } else {
                (f64::from(*x) - f64::from(*y)).abs()
            }
        })
        .fold(0.0, f64::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = Runner::detect()?;
    match &runner {
        Runner::Gpu(_, name) => println!("adaptive-pool demo on {name}\n"),
        Runner::Simulator(sim, why) => {
            if let Some(reason) = adaptive_pool::ptx::not_built_reason() {
                println!("The kernels were not built, so nothing can run: {reason}");
                return Ok(());
            }
            match why {
                None => println!("No CUDA device found."),
                Some(why) => println!(
                    "A CUDA device was found but cannot run the crate's kernels: {why}.\n\
                     Falling back to the simulator."
                ),
            }
            println!(
                "Running the crate's real kernels (the PTX NVRTC built for compute_{}) on \
                 ptxsim, the CPU PTX simulator in this repository: slow, but the same \
                 instructions a GPU would execute.\n",
                sim.arch
            )
        }
    }

    let cases: Vec<(&str, Vec<usize>, OutputSize)> = vec![
        ("32x32 feature map to 1x1", vec![1, 64, 32, 32], 1.into()),
        ("16x16 feature map to 1x1", vec![1, 128, 16, 16], 1.into()),
        ("8x8 feature map to 1x1", vec![1, 256, 8, 8], 1.into()),
        (
            "PyTorch docs: (1,64,8,9) to (5,7)",
            vec![1, 64, 8, 9],
            (5, 7).into(),
        ),
        (
            "PyTorch docs: (1,64,10,9) to 7",
            vec![1, 64, 10, 9],
            7.into(),
        ),
        (
            "PyTorch docs: (1,64,10,9) to (None,7)",
            vec![1, 64, 10, 9],
            (None, Some(7)).into(),
        ),
        (
            "(2,128,32,32) to (4,4)",
            vec![2, 128, 32, 32],
            (4, 4).into(),
        ),
        (
            "(2,64,10,20) to (1,7), non-divisible",
            vec![2, 64, 10, 20],
            (1, 7).into(),
        ),
        (
            "global average pooling head (4,256,4,4)",
            vec![4, 256, 4, 4],
            1.into(),
        ),
    ];

    let mut rng = StdRng::seed_from_u64(2024);
    let start_all = Instant::now();
    let mut worst = 0.0f64;
    for (title, dims, size) in &cases {
        let shape = Shape::new(dims)?;
        let input: Vec<f32> = (0..shape.numel())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let pool = AdaptiveAvgPool2d::new(*size);
        let t = Instant::now();
        let out = runner.forward(&input, &shape, *size)?;
        let (want, out_shape) = reference::forward(&input, &shape, Layout::Nchw, *size)?;
        let fwd = max_diff(&out, &want);
        let grad: Vec<f32> = (0..out_shape.numel())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let grad_in = runner.backward(&grad, &out_shape, &shape, *size)?;
        let want_in = reference::backward(&grad, &out_shape, &shape, Layout::Nchw)?;
        let bwd = max_diff(&grad_in, &want_in);
        worst = worst.max(fwd).max(bwd);
        println!(
            "{title}\n  {pool}: {:?} -> {:?}",
            shape.dims(),
            out_shape.dims()
        );
        println!(
            "  largest difference from the f64 reference: forward {fwd:.2e}, backward {bwd:.2e} \
             ({:.1} ms)",
            t.elapsed().as_secs_f64() * 1e3
        );
        if *title == "global average pooling head (4,256,4,4)" {
            // A linear classifier on the pooled features: (4, 256) -> (4, 10).
            let weights: Vec<f32> = (0..256 * 10).map(|_| rng.random_range(-0.1..0.1)).collect();
            let classes: Vec<usize> = out
                .chunks(256)
                .map(|features| {
                    let logits: Vec<f32> = (0..10)
                        .map(|k| {
                            features
                                .iter()
                                .zip(&weights[k * 256..])
                                .map(|(f, w)| f * w)
                                .sum()
                        })
                        .collect();
                    (0..10).fold(0, |best, k| if logits[k] > logits[best] { k } else { best })
                })
                .collect();
            println!("  classifier head: features (4, 256) -> logits (4, 10), predicted classes {classes:?}");
        }
    }
    let elapsed = start_all.elapsed().as_secs_f64();
    match &runner {
        Runner::Gpu(..) => println!("\nall cases in {elapsed:.3} s"),
        Runner::Simulator(sim, _) => {
            let stats = sim.stats.lock().map(|s| *s).unwrap_or_default();
            println!(
                "\nall cases on the simulator in {elapsed:.2} s: {} kernel launches, {} PTX \
                 instructions executed",
                stats.launches, stats.instructions
            );
        }
    }
    if worst > 1e-4 {
        return Err(format!("largest difference {worst:e} exceeds 1e-4").into());
    }
    Ok(())
}
