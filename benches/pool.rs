//! Kernel throughput of `AdaptiveAvgPool2d` on a CUDA device, timed with CUDA events around many
//! launches (criterion's `iter_custom`), after warm-up, rotating over enough input copies that
//! the L2 cache is not what is measured. Each case reports time and effective bandwidth (bytes
//! read once plus bytes written once); a closing table gives that as a percentage of the
//! device-to-device copy bandwidth measured in the same run.
//!
//! `cargo bench --bench pool` (filter with e.g. `-- forward/f16`). Where no CUDA device is
//! present the GPU cases are skipped with a message and only the CPU reference is timed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adaptive_pool::cudarc::driver::{sys, CudaContext, CudaStream};
use adaptive_pool::half::{bf16, f16};
use adaptive_pool::{
    reference, AdaptiveAvgPool2d, BackwardAlgorithm, DeviceTensor, Element, Layout, OutputSize,
    Shape,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Bytes of input copies to rotate through: several times the largest L2 (H100/H200: 50 MiB).
const ROTATION_BYTES: usize = 256 << 20;

/// The cases, from real models (`benches/cases.txt`, shared with `compare_pytorch.py`).
fn cases() -> Vec<(String, [usize; 4], OutputSize)> {
    include_str!("cases.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n: Vec<usize> = f.get(1..7)?.iter().filter_map(|v| v.parse().ok()).collect();
            (n.len() == 6).then(|| {
                (
                    f[0].to_string(),
                    [n[0], n[1], n[2], n[3]],
                    (n[4], n[5]).into(),
                )
            })
        })
        .collect()
}

/// One line of the closing table.
struct Row {
    case: String,
    dtype: &'static str,
    layout: &'static str,
    pass: &'static str,
    micros: f64,
    gbps: f64,
}

fn gpu() -> Option<Arc<CudaStream>> {
    // SAFETY: only tries to open the driver library; nothing in it is called.
    if !unsafe { sys::is_culib_present() } {
        return None;
    }
    if !CudaContext::device_count().is_ok_and(|n| n > 0) {
        return None;
    }
    CudaContext::new(0).ok().map(|ctx| ctx.default_stream())
}

/// Times `iters` calls of `op(i)` between two CUDA events.
fn time_on_stream(stream: &Arc<CudaStream>, iters: u64, mut op: impl FnMut(usize)) -> Duration {
    let ctx = stream.context();
    let start = ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT));
    let end = ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT));
    let (Ok(start), Ok(end)) = (start, end) else {
        return Duration::ZERO;
    };
    if start.record(stream).is_err() {
        return Duration::ZERO;
    }
    for i in 0..iters {
        op(i as usize);
    }
    if end.record(stream).is_err() {
        return Duration::ZERO;
    }
    let ms = start.elapsed_ms(&end).unwrap_or(0.0);
    Duration::from_secs_f64(f64::from(ms) / 1e3)
}

/// Device-to-device copy bandwidth (read + write bytes per second), for the percentages.
fn copy_bandwidth(stream: &Arc<CudaStream>) -> f64 {
    let n = 256usize << 20;
    let (Ok(src), Ok(mut dst)) = (stream.alloc_zeros::<u8>(n), stream.alloc_zeros::<u8>(n)) else {
        return f64::NAN;
    };
    for _ in 0..3 {
        let _ = stream.memcpy_dtod(&src, &mut dst);
    }
    let iters = 20;
    let t = time_on_stream(stream, iters, |_| {
        let _ = stream.memcpy_dtod(&src, &mut dst);
    });
    2.0 * n as f64 * iters as f64 / t.as_secs_f64()
}

fn random<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            T::from_f64(((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
        })
        .collect()
}

fn bench_dtype<T: Element>(c: &mut Criterion, stream: &Arc<CudaStream>, rows: &Mutex<Vec<Row>>) {
    for (name, dims, size) in cases() {
        let name = &name;
        for layout in Layout::ALL {
            let Ok(shape) = Shape::new(&dims) else {
                continue;
            };
            let Ok(out_shape) = size.resolve(&shape) else {
                continue;
            };
            let bytes_in = shape.numel() * std::mem::size_of::<T>();
            let bytes_out = out_shape.numel() * std::mem::size_of::<T>();
            let copies = (ROTATION_BYTES / bytes_in.max(1)).clamp(2, 64);
            let host = random::<T>(shape.numel(), 1);
            let inputs: Vec<DeviceTensor<T>> = (0..copies)
                .filter_map(|_| DeviceTensor::from_host(stream, &host, &dims, layout).ok())
                .collect();
            let Ok(mut output) = DeviceTensor::<T>::zeros(stream, out_shape.dims(), layout) else {
                continue;
            };
            let grads: Vec<DeviceTensor<T>> = (0..copies.min(8))
                .filter_map(|_| {
                    DeviceTensor::from_host(
                        stream,
                        &random::<T>(out_shape.numel(), 2),
                        out_shape.dims(),
                        layout,
                    )
                    .ok()
                })
                .collect();
            let Ok(mut grad_input) = DeviceTensor::<T>::zeros(stream, &dims, layout) else {
                continue;
            };
            let pool = AdaptiveAvgPool2d::new(size);
            let tag = format!("{name}/{}/{}", T::DTYPE, layout.name());
            let moved = (bytes_in + bytes_out) as u64;
            let key = |pass: &'static str| Row {
                case: name.clone(),
                dtype: T::DTYPE.name(),
                layout: layout.name(),
                pass,
                micros: 0.0,
                gbps: 0.0,
            };

            let mut group = c.benchmark_group("forward");
            group.throughput(Throughput::Bytes(moved));
            group.bench_function(BenchmarkId::from_parameter(&tag), |b| {
                b.iter_custom(|iters| {
                    let t = time_on_stream(stream, iters, |i| {
                        let _ = pool.forward_into(stream, &inputs[i % inputs.len()], &mut output);
                    });
                    record(rows, key("forward"), t, iters, moved);
                    t
                })
            });
            group.finish();

            for (pass, algorithm) in [
                ("backward_deterministic", BackwardAlgorithm::Deterministic),
                ("backward_atomic", BackwardAlgorithm::Atomic),
            ] {
                let mut group = c.benchmark_group(pass);
                group.throughput(Throughput::Bytes(moved));
                let pool = pool.with_backward_algorithm(algorithm);
                group.bench_function(BenchmarkId::from_parameter(&tag), |b| {
                    b.iter_custom(|iters| {
                        let t = time_on_stream(stream, iters, |i| {
                            let _ = pool.backward_into(
                                stream,
                                &grads[i % grads.len()],
                                &mut grad_input,
                            );
                        });
                        record(rows, key(pass), t, iters, moved);
                        t
                    })
                });
                group.finish();
            }
        }
    }
}

fn record(rows: &Mutex<Vec<Row>>, mut row: Row, t: Duration, iters: u64, bytes: u64) {
    if iters == 0 || t.is_zero() {
        return;
    }
    let per = t.as_secs_f64() / iters as f64;
    row.micros = per * 1e6;
    row.gbps = bytes as f64 / per / 1e9;
    if let Ok(mut rows) = rows.lock() {
        rows.retain(|r| {
            (r.case.as_str(), r.dtype, r.layout, r.pass)
                != (row.case.as_str(), row.dtype, row.layout, row.pass)
        });
        rows.push(row);
    }
}

fn benches(c: &mut Criterion) {
    let Some(stream) = gpu() else {
        println!("no CUDA device: the GPU benchmarks are skipped; timing the CPU reference only");
        let shape = Shape::new(&[8, 64, 28, 28]).expect("a valid shape");
        let host = random::<f32>(shape.numel(), 3);
        c.bench_function("reference/forward/f32/(8,64,28,28)->7", |b| {
            b.iter(|| reference::forward(&host, &shape, Layout::Nchw, 7))
        });
        return;
    };
    let copy = copy_bandwidth(&stream);
    println!("device-to-device copy bandwidth: {:.1} GB/s", copy / 1e9);
    let rows = Mutex::new(Vec::new());
    bench_dtype::<f32>(c, &stream, &rows);
    bench_dtype::<f16>(c, &stream, &rows);
    bench_dtype::<bf16>(c, &stream, &rows);
    println!(
        "\n{:<50} {:>12} {:>10} {:>8}",
        "case", "time (us)", "GB/s", "% copy"
    );
    let rows = rows.into_inner().unwrap_or_default();
    println!(
        "\n{:<18} {:>5} {:>5} {:<22} {:>10} {:>9} {:>7}",
        "case", "dtype", "lay", "pass", "time (us)", "GB/s", "% copy"
    );
    for r in &rows {
        println!(
            "{:<18} {:>5} {:>5} {:<22} {:>10.2} {:>9.1} {:>6.1}%",
            r.case,
            r.dtype,
            r.layout,
            r.pass,
            r.micros,
            r.gbps,
            100.0 * r.gbps * 1e9 / copy
        );
    }
    // For benches/compare_pytorch.py: one JSON object per line.
    if let Some(path) = std::env::var_os("ADAPTIVE_POOL_BENCH_JSON") {
        let lines: String = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"case\":\"{}\",\"dtype\":\"{}\",\"layout\":\"{}\",\"pass\":\"{}\",\
                     \"us\":{},\"gbps\":{},\"copy_gbps\":{}}}\n",
                    r.case,
                    r.dtype,
                    r.layout,
                    r.pass,
                    r.micros,
                    r.gbps,
                    copy / 1e9
                )
            })
            .collect();
        if let Err(e) = std::fs::write(&path, lines) {
            eprintln!("cannot write {}: {e}", path.to_string_lossy());
        }
    }
}

criterion_group! {
    name = pool;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = benches
}
criterion_main!(pool);
