//! Kernel throughput of `AdaptiveAvgPool2d` on a CUDA device, timed with CUDA events around many
//! launches (criterion's `iter_custom`), after warm-up, rotating over enough input copies that
//! the L2 cache is not what is measured. Each case reports time and effective bandwidth (bytes
//! read once plus bytes written once); a closing table gives that as a percentage of the
//! device-to-device copy bandwidth measured in the same run.
//!
//! `cargo bench --bench pool` (filter with e.g. `-- forward/f16`). Where no CUDA device is
//! present the GPU cases are skipped with a message and only the CPU reference is timed.
//!
//! `cargo bench --bench pool -- --test` runs every benchmark once, on the smallest case of
//! `benches/cases.txt` only, and checks each result against the reference: a quick proof that
//! every benchmark works (CI runs it on the virtual GPU). Any error (a failed launch, copy or
//! allocation) stops the benchmark with the error, in either mode; nothing failed is timed.

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

/// Bytes copied to measure the device-to-device copy bandwidth (1 MiB in `--test` mode, where
/// the figure is not the point).
const COPY_BYTES: usize = 256 << 20;

/// How far a benchmark's result may be from the f64 reference in `--test` mode: one rounding
/// of an f32 accumulation to the storage type (f16: 2^-11, bf16: 2^-8 relative) with room for
/// the atomic backward's per-contribution roundings: 2^-6 of the values' magnitude (the data
/// lies in [-1, 1)).
const TEST_MODE_TOLERANCE: f64 = 1.0 / 64.0;

/// A benchmark case: name, input dims, output size.
type Case = (String, [usize; 4], OutputSize);

/// The cases, from real models (`benches/cases.txt`, shared with `compare_pytorch.py`); in
/// `--test` mode only the smallest.
fn cases(test_mode: bool) -> Vec<Case> {
    let mut all: Vec<Case> = include_str!("cases.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n: Vec<usize> = f
                .get(1..7)
                .unwrap_or_default()
                .iter()
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|_| stop("reading benches/cases.txt", l))
                })
                .collect();
            if n.len() != 6 {
                stop(
                    "reading benches/cases.txt: want name N C H W out_h out_w",
                    l,
                );
            }
            (
                f[0].to_string(),
                [n[0], n[1], n[2], n[3]],
                (n[4], n[5]).into(),
            )
        })
        .collect();
    if all.is_empty() {
        stop("reading benches/cases.txt", "no cases");
    }
    if test_mode {
        all.sort_by_key(|(_, dims, _)| dims.iter().product::<usize>());
        all.truncate(1);
    }
    all
}

/// Stops the benchmark: a result timed after a failure would be a lie.
fn stop(doing: &str, error: impl std::fmt::Display) -> ! {
    panic!("benches/pool.rs: {doing}: {error}")
}

/// The value, or a stop naming what failed.
fn or_stop<T, E: std::fmt::Display>(result: Result<T, E>, doing: &str) -> T {
    result.unwrap_or_else(|e| stop(doing, e))
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

/// The stream of device 0, or `None` where there is no driver or no device. A device that is
/// present but cannot be used stops the benchmark.
fn gpu() -> Option<Arc<CudaStream>> {
    // SAFETY: only tries to open the driver library; nothing in it is called.
    if !unsafe { sys::is_culib_present() } {
        return None;
    }
    if !CudaContext::device_count().is_ok_and(|n| n > 0) {
        return None;
    }
    Some(or_stop(CudaContext::new(0), "creating a context on device 0").default_stream())
}

/// Times `iters` calls of `op(i)` between two CUDA events; the first error stops the benchmark.
fn time_on_stream<E: std::fmt::Display>(
    stream: &Arc<CudaStream>,
    iters: u64,
    what: &str,
    mut op: impl FnMut(usize) -> Result<(), E>,
) -> Duration {
    let ctx = stream.context();
    let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
    let start = or_stop(ctx.new_event(flags), "creating a timing event");
    let end = or_stop(ctx.new_event(flags), "creating a timing event");
    or_stop(start.record(stream), "recording the start event");
    for i in 0..iters {
        or_stop(op(i as usize), what);
    }
    or_stop(end.record(stream), "recording the end event");
    let ms = or_stop(start.elapsed_ms(&end), what);
    Duration::from_secs_f64(f64::from(ms) / 1e3)
}

/// Device-to-device copy bandwidth (read + write bytes per second), for the percentages.
fn copy_bandwidth(stream: &Arc<CudaStream>, bytes: usize) -> f64 {
    let src = or_stop(
        stream.alloc_zeros::<u8>(bytes),
        "allocating the copy source",
    );
    let mut dst = or_stop(
        stream.alloc_zeros::<u8>(bytes),
        "allocating the copy target",
    );
    for _ in 0..3 {
        or_stop(stream.memcpy_dtod(&src, &mut dst), "warming up the copy");
    }
    let iters = 20;
    let t = time_on_stream(stream, iters, "timing the copy", |_| {
        stream.memcpy_dtod(&src, &mut dst)
    });
    2.0 * bytes as f64 * iters as f64 / t.as_secs_f64()
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

/// Inputs to rotate through: never empty.
struct Rotation<T>(Vec<DeviceTensor<T>>);

impl<T> Rotation<T> {
    fn new(tensors: Vec<DeviceTensor<T>>) -> Self {
        if tensors.is_empty() {
            stop("preparing inputs", "no input copies");
        }
        Rotation(tensors)
    }

    fn get(&self, i: usize) -> &DeviceTensor<T> {
        &self.0[i % self.0.len()]
    }
}

/// In `--test` mode: `got` (downloaded) against the reference `want`.
fn check<T: Element>(what: &str, got: &[T], want: &[T]) {
    if got.len() != want.len() {
        stop(what, format!("{} elements, want {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_f64(), w.to_f64());
        if (g - w).abs() > TEST_MODE_TOLERANCE || g.is_nan() {
            stop(what, format!("element {i} is {g}, the reference says {w}"));
        }
    }
}

fn bench_dtype<T: Element>(
    c: &mut Criterion,
    stream: &Arc<CudaStream>,
    rows: &Mutex<Vec<Row>>,
    test_mode: bool,
) {
    for (name, dims, size) in cases(test_mode) {
        let name = &name;
        for layout in Layout::ALL {
            let shape = or_stop(Shape::new(&dims), name);
            let out_shape = or_stop(size.resolve(&shape), name);
            let bytes_in = shape.numel() * std::mem::size_of::<T>();
            let bytes_out = out_shape.numel() * std::mem::size_of::<T>();
            let copies = if test_mode {
                2
            } else {
                (ROTATION_BYTES / bytes_in.max(1)).clamp(2, 64)
            };
            let host = random::<T>(shape.numel(), 1);
            let upload = |data: &[T], dims: &[usize]| {
                or_stop(
                    DeviceTensor::from_host(stream, data, dims, layout),
                    "copying a benchmark tensor to the device",
                )
            };
            let inputs = Rotation::new((0..copies).map(|_| upload(&host, &dims)).collect());
            let nan = vec![T::from_f64(f64::NAN); out_shape.numel()];
            let mut output = upload(&nan, out_shape.dims());
            let grad_host = random::<T>(out_shape.numel(), 2);
            let grads = Rotation::new(
                (0..copies.min(8))
                    .map(|_| upload(&grad_host, out_shape.dims()))
                    .collect(),
            );
            let mut grad_input = upload(&vec![T::from_f64(f64::NAN); shape.numel()], &dims);
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
                    let what = format!("forward {tag}");
                    let t = time_on_stream(stream, iters, &what, |i| {
                        pool.forward_into(stream, inputs.get(i), &mut output)
                    });
                    record(rows, key("forward"), t, iters, moved);
                    t
                })
            });
            group.finish();
            if test_mode {
                let got = or_stop(output.to_host(stream), "downloading the output");
                let (want, _) = or_stop(reference::forward(&host, &shape, layout, size), name);
                check(&format!("forward {tag}"), &got, &want);
            }

            for (pass, algorithm) in [
                ("backward_deterministic", BackwardAlgorithm::Deterministic),
                ("backward_atomic", BackwardAlgorithm::Atomic),
            ] {
                let mut group = c.benchmark_group(pass);
                group.throughput(Throughput::Bytes(moved));
                let pool = pool.with_backward_algorithm(algorithm);
                group.bench_function(BenchmarkId::from_parameter(&tag), |b| {
                    b.iter_custom(|iters| {
                        let what = format!("{pass} {tag}");
                        let t = time_on_stream(stream, iters, &what, |i| {
                            pool.backward_into(stream, grads.get(i), &mut grad_input)
                        });
                        record(rows, key(pass), t, iters, moved);
                        t
                    })
                });
                group.finish();
                if test_mode {
                    let got = or_stop(grad_input.to_host(stream), "downloading grad_input");
                    let want = or_stop(
                        reference::backward(&grad_host, &out_shape, &shape, layout),
                        name,
                    );
                    check(&format!("{pass} {tag}"), &got, &want);
                }
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
    let mut rows = rows.lock().unwrap_or_else(|e| e.into_inner());
    rows.retain(|r| {
        (r.case.as_str(), r.dtype, r.layout, r.pass)
            != (row.case.as_str(), row.dtype, row.layout, row.pass)
    });
    rows.push(row);
}

fn benches(c: &mut Criterion) {
    let test_mode = std::env::args().any(|a| a == "--test");
    let Some(stream) = gpu() else {
        println!("no CUDA device: the GPU benchmarks are skipped; timing the CPU reference only");
        let shape = or_stop(Shape::new(&[8, 64, 28, 28]), "the CPU case");
        let host = random::<f32>(shape.numel(), 3);
        c.bench_function("reference/forward/f32/(8,64,28,28)->7", |b| {
            b.iter(|| {
                or_stop(
                    reference::forward(&host, &shape, Layout::Nchw, 7),
                    "reference",
                )
            })
        });
        return;
    };
    let copy = copy_bandwidth(&stream, if test_mode { 1 << 20 } else { COPY_BYTES });
    println!("device-to-device copy bandwidth: {:.1} GB/s", copy / 1e9);
    let rows = Mutex::new(Vec::new());
    bench_dtype::<f32>(c, &stream, &rows, test_mode);
    bench_dtype::<f16>(c, &stream, &rows, test_mode);
    bench_dtype::<bf16>(c, &stream, &rows, test_mode);
    let rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    if test_mode {
        println!(
            "\n--test: every benchmark ran once and matched the reference; the times below are \
             single runs, not measurements"
        );
    }
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
        or_stop(
            std::fs::write(&path, lines),
            "writing ADAPTIVE_POOL_BENCH_JSON",
        );
    }
}

criterion_group! {
    name = pool;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = benches
}
criterion_main!(pool);
