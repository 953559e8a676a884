//! The public GPU API on a CUDA device, against the reference: every kernel, dtype, layout and
//! rank, the PyTorch fixtures, threads and streams, views of caller buffers at odd offsets,
//! empty tensors, synchronization, and every error that needs a device to happen. All ignored
//! where there is no GPU (`#[ignore = "needs a CUDA GPU"]`).
//!
//! Which command runs which:
//!
//! ```sh
//! # A GPU runner (a real device), or the virtual GPU in its default configuration
//! # (compute capability 9.0, CUDA 13.0 driver, memory pools, one device):
//! cargo test --release --test gpu -- --include-ignored
//! bash .ci/vgpu.sh cargo test --release --test gpu -- --include-ignored
//!
//! # The whole file on other devices: say which in ADAPTIVE_POOL_GPU_EXPECT, and every test
//! # checks first that the device is that one (so a configuration that did not take fails):
//! VGPU_COMPUTE_CAPABILITY=75 ADAPTIVE_POOL_GPU_EXPECT=cc=75 bash .ci/vgpu.sh cargo test --release --test gpu -- --include-ignored
//! VGPU_COMPUTE_CAPABILITY=80 ADAPTIVE_POOL_GPU_EXPECT=cc=80 bash .ci/vgpu.sh cargo test --release --test gpu -- --include-ignored
//! VGPU_MEMORY_POOLS=0 ADAPTIVE_POOL_GPU_EXPECT=pools=0 bash .ci/vgpu.sh cargo test --release --test gpu -- --include-ignored
//!
//! # The device_config_ tests in the configurations whose error paths they exist for (kernels
//! # cannot run there, so only these tests are selected):
//! VGPU_DRIVER_VERSION=12080 ADAPTIVE_POOL_GPU_EXPECT=driver=12080 bash .ci/vgpu.sh cargo test --release --test gpu device_config_ -- --include-ignored
//! VGPU_COMPUTE_CAPABILITY=70 ADAPTIVE_POOL_GPU_EXPECT=cc=70 bash .ci/vgpu.sh cargo test --release --test gpu device_config_ -- --include-ignored
//! VGPU_DEVICES=2 ADAPTIVE_POOL_GPU_EXPECT=devices=2 bash .ci/vgpu.sh cargo test --release --test gpu -- --include-ignored
//! ```
//!
//! Each `device_config_` test asserts what the device at hand must give (an error on a driver
//! older than the PTX, on a device below the lowest PTX architecture, for tensors of another
//! device; a working call otherwise) and prints which branch it checked; the error branches
//! are reached in the configurations above, whose `ADAPTIVE_POOL_GPU_EXPECT` makes sure the
//! device really is what the branch needs. `ADAPTIVE_POOL_GPU_EXPECT` is a comma-separated list
//! of `cc=<major*10+minor>`, `driver=<cuDriverGetVersion>`, `devices=<count>`, `pools=<0|1>`.

mod common;

use std::sync::Arc;

use adaptive_pool::cudarc::driver::{sys, CudaContext, CudaStream, DevicePtr, DriverError};
use adaptive_pool::half::{bf16, f16};
use adaptive_pool::plan::{self, DeviceLimits};
use adaptive_pool::{
    ptx, reference, AdaptiveAvgPool2d, BackwardAlgorithm, DType, DeviceTensor, Element, Error,
    Layout, Shape, Tensor,
};
use common::cases::{check_case_dtype, edge_cases, random_cases, Backend};
use common::golden::{load_all, GoldenCase, GoldenDType, GoldenElement};
use common::{
    assert_close, backward_scale, forward_scale, kernel_vs_reference, poison, random_data, rng,
    ErrorSummary,
};

/// What `ADAPTIVE_POOL_GPU_EXPECT` says the device is.
#[derive(Default, Debug)]
struct Expected {
    compute_capability: Option<i32>,
    driver: Option<i32>,
    devices: Option<i32>,
    pools: Option<bool>,
}

fn expected() -> Expected {
    let mut e = Expected::default();
    let Ok(spec) = std::env::var("ADAPTIVE_POOL_GPU_EXPECT") else {
        return e;
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .unwrap_or_else(|| panic!("ADAPTIVE_POOL_GPU_EXPECT: `{item}` is not key=value"));
        let number: i32 = value
            .parse()
            .unwrap_or_else(|_| panic!("ADAPTIVE_POOL_GPU_EXPECT: `{item}`: not a number"));
        match key {
            "cc" => e.compute_capability = Some(number),
            "driver" => e.driver = Some(number),
            "devices" => e.devices = Some(number),
            "pools" => e.pools = Some(number != 0),
            _ => {
                panic!("ADAPTIVE_POOL_GPU_EXPECT: unknown key `{key}` (cc, driver, devices, pools)")
            }
        }
    }
    e
}

/// The driver's CUDA version, `1000 * major + 10 * minor`.
fn driver_version() -> i32 {
    let mut version = 0;
    // SAFETY: a live out-pointer; cuDriverGetVersion exists in every binding version and
    // needs no context (the driver library is loaded: a context was created before this).
    let rc = unsafe { sys::cuDriverGetVersion(&mut version) };
    rc.result().expect("cuDriverGetVersion");
    version
}

/// Context 0 of the device, after checking that the device is what `ADAPTIVE_POOL_GPU_EXPECT`
/// says: a test must not pass on a configuration it was not meant for.
fn context() -> Arc<CudaContext> {
    let ctx = CudaContext::new(0).expect("a CUDA device is needed for this test");
    let want = expected();
    let (major, minor) = ctx.compute_capability().expect("compute capability");
    let have = Expected {
        compute_capability: Some(major * 10 + minor),
        driver: Some(driver_version()),
        devices: Some(CudaContext::device_count().expect("device count")),
        pools: Some(ctx.has_async_alloc()),
    };
    let pairs = [
        (
            "cc",
            want.compute_capability.map(|v| v as i64),
            have.compute_capability.map(|v| v as i64),
        ),
        (
            "driver",
            want.driver.map(|v| v as i64),
            have.driver.map(|v| v as i64),
        ),
        (
            "devices",
            want.devices.map(|v| v as i64),
            have.devices.map(|v| v as i64),
        ),
        (
            "pools",
            want.pools.map(i64::from),
            have.pools.map(i64::from),
        ),
    ];
    for (key, want, have) in pairs {
        if let Some(want) = want {
            assert_eq!(
                Some(want),
                have,
                "ADAPTIVE_POOL_GPU_EXPECT says {key}={want}, but the device has {key}={have:?}"
            );
        }
    }
    ctx
}

fn stream() -> Arc<CudaStream> {
    context().default_stream()
}

/// Runs the kernels through the public API, on one stream, into poisoned `_into` outputs.
struct Gpu {
    stream: Arc<CudaStream>,
}

impl Backend for Gpu {
    fn forward<T: Element>(
        &self,
        input: &[T],
        shape: &Shape,
        layout: Layout,
        out_shape: &Shape,
        poisoned_output: Vec<T>,
    ) -> Vec<T> {
        let s = &self.stream;
        let input = DeviceTensor::from_host(s, input, shape.dims(), layout).expect("upload");
        let mut out =
            DeviceTensor::from_host(s, &poisoned_output, out_shape.dims(), layout).expect("upload");
        AdaptiveAvgPool2d::new((out_shape.height(), out_shape.width()))
            .forward_into(s, &input, &mut out)
            .expect("forward_into");
        out.to_host(s).expect("download")
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
        let s = &self.stream;
        let go = DeviceTensor::from_host(s, grad_output, grad_output_shape.dims(), layout)
            .expect("upload");
        let mut gi = DeviceTensor::from_host(s, &poisoned_grad_input, input_shape.dims(), layout)
            .expect("upload");
        AdaptiveAvgPool2d::new((grad_output_shape.height(), grad_output_shape.width()))
            .with_backward_algorithm(algorithm)
            .backward_into(s, &go, &mut gi)
            .expect("backward_into");
        gi.to_host(s).expect("download")
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn every_kernel_dtype_layout_and_rank_matches_the_reference() {
    let gpu = Gpu { stream: stream() };
    let mut rng = rng("gpu");
    let mut cases = edge_cases();
    cases.extend(random_cases(&mut rng, 48));
    let mut summary = ErrorSummary::default();
    for case in &cases {
        for dtype in DType::ALL {
            for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
                check_case_dtype(&gpu, dtype, case, algorithm, &mut rng, &mut summary);
            }
        }
    }
    summary.print("GPU kernels vs reference");
}

fn golden_on_gpu<T: Element + GoldenElement>(s: &Arc<CudaStream>, case: &GoldenCase) -> f64 {
    let layout = if case.channels_last {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let input: Vec<T> = case.decode(&case.input).expect("dtype");
    let torch: Vec<T> = case.decode(&case.output).expect("dtype");
    let pool = AdaptiveAvgPool2d::new(case.output_size);
    let x = DeviceTensor::from_host(s, &input, &case.input_shape, layout).expect("upload");
    let mut out = DeviceTensor::from_host(
        s,
        &poison::<T>(case.output_numel()),
        &case.output_shape,
        layout,
    )
    .expect("upload");
    pool.forward_into(s, &x, &mut out).expect("forward");
    let got = out.to_host(s).expect("download");
    let shape = Shape::new(&case.input_shape).expect("shape");
    let scale = forward_scale(
        &input,
        &shape,
        layout,
        (
            case.output_shape[case.output_shape.len() - 2],
            case.output_shape[case.output_shape.len() - 1],
        ),
    );
    assert_close(
        &case.name,
        &got,
        &torch,
        &scale,
        common::reference_vs_torch(<T as Element>::DTYPE),
    )
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pytorch_fixtures_on_the_gpu() {
    let s = stream();
    let mut summary = ErrorSummary::default();
    for case in load_all() {
        let (dtype, err) = match case.dtype {
            GoldenDType::F32 => (DType::F32, golden_on_gpu::<f32>(&s, &case)),
            GoldenDType::F64 => (DType::F64, golden_on_gpu::<f64>(&s, &case)),
            GoldenDType::F16 => (DType::F16, golden_on_gpu::<f16>(&s, &case)),
            GoldenDType::Bf16 => (DType::Bf16, golden_on_gpu::<bf16>(&s, &case)),
        };
        summary.record(dtype, err);
        summary.cases += 1;
    }
    summary.print("GPU forward vs PyTorch fixtures");
}

/// One module shared by several threads, each with its own stream, all at once.
#[test]
#[ignore = "needs a CUDA GPU"]
fn concurrent_use_from_several_threads_and_streams() {
    let ctx = context();
    let pool = AdaptiveAvgPool2d::new((5, 7));
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let ctx = ctx.clone();
            scope.spawn(move || {
                let s = ctx.new_stream().expect("stream");
                let mut rng = rng(&format!("thread {t}"));
                for round in 0..20 {
                    let layout = if (t + round) % 2 == 0 {
                        Layout::Nchw
                    } else {
                        Layout::Nhwc
                    };
                    let dims = [2, 3 + t as usize, 17, 23];
                    let shape = Shape::new(&dims).expect("shape");
                    let host: Vec<f32> = random_data(&mut rng, shape.numel());
                    let x = DeviceTensor::from_host(&s, &host, &dims, layout).expect("upload");
                    let y = pool.forward(&s, &x).expect("forward");
                    let (want, out_shape) =
                        reference::forward(&host, &shape, layout, (5, 7)).expect("reference");
                    let scale = forward_scale(&host, &shape, layout, (5, 7));
                    assert_close(
                        "concurrent forward",
                        &y.to_host(&s).expect("download"),
                        &want,
                        &scale,
                        kernel_vs_reference(DType::F32),
                    );
                    let gi = pool.backward(&s, &y, &dims).expect("backward");
                    let want_gi = reference::backward(&want, &out_shape, &shape, layout)
                        .expect("reference backward");
                    let gscale = backward_scale(&want, &out_shape, &shape, layout);
                    assert_close(
                        "concurrent backward",
                        &gi.to_host(&s).expect("download"),
                        &want_gi,
                        &gscale,
                        kernel_vs_reference(DType::F32),
                    );
                }
            });
        }
    });
}

/// A value no kernel computes from the test data (which lies in [-2, 2]), exact in every
/// dtype: the caller's elements around a view must still hold it afterwards.
const OUTSIDE: f64 = 768.0;

/// A host buffer of `total` elements holding `inner` at `offset`, `OUTSIDE` elsewhere.
fn embed<T: Element>(total: usize, offset: usize, inner: &[T]) -> Vec<T> {
    let mut v = vec![T::from_f64(OUTSIDE); total];
    v[offset..offset + inner.len()].copy_from_slice(inner);
    v
}

fn assert_untouched<T: Element>(what: &str, buffer: &[T], offset: usize, len: usize) {
    for (i, v) in buffer.iter().enumerate() {
        if i < offset || i >= offset + len {
            assert_eq!(
                v.to_f64(),
                OUTSIDE,
                "{what}: element {i} outside the view [{offset}, {}) was written",
                offset + len
            );
        }
    }
}

/// Views of caller-owned memory at odd element offsets inside larger buffers (so not 16-byte
/// aligned, which the vector kernels must notice), as inputs and as outputs of the forward and
/// both backward algorithms: results match the reference, and nothing outside the views is
/// touched. The shapes reach the NHWC vector kernels, the NCHW warp-per-plane global pooling
/// with 16-byte loads, and the large-window kernels.
#[test]
#[ignore = "needs a CUDA GPU"]
fn views_into_larger_buffers_at_odd_offsets() {
    let s = stream();
    let mut rng = rng("views");
    let multiprocessors = s
        .context()
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .expect("multiprocessor count");
    let (major, minor) = s.context().compute_capability().expect("cc");
    let device = DeviceLimits {
        multiprocessors: multiprocessors as u32,
        compute_capability: (major * 10 + minor) as u32,
    };
    let cases: [(&[usize], (usize, usize), Layout); 5] = [
        (&[2, 8, 7, 5], (3, 2), Layout::Nhwc),
        (&[1, 16, 6, 6], (4, 4), Layout::Nhwc),
        (&[3, 1000, 3, 3], (1, 1), Layout::Nchw),
        (&[1, 3, 70, 90], (2, 3), Layout::Nchw),
        (&[16, 9, 11], (4, 5), Layout::Nchw),
    ];
    for (dims, size, layout) in cases {
        for offset in [1usize, 3, 7] {
            views_case::<f32>(&s, &mut rng, dims, size, layout, offset, &device);
            views_case::<f16>(&s, &mut rng, dims, size, layout, offset, &device);
        }
    }
}

fn views_case<T: Element>(
    s: &Arc<CudaStream>,
    rng: &mut rand::rngs::StdRng,
    dims: &[usize],
    size: (usize, usize),
    layout: Layout,
    offset: usize,
    device: &DeviceLimits,
) {
    let shape = Shape::new(dims).expect("shape");
    let out_shape = adaptive_pool::OutputSize::from(size)
        .resolve(&shape)
        .expect("output shape");
    let (n, m) = (shape.numel(), out_shape.numel());
    let tol = kernel_vs_reference(T::DTYPE);
    let what = format!(
        "{dims:?} -> {size:?} {layout} {} at offset {offset}",
        T::DTYPE
    );
    println!(
        "{what}: forward {:?}",
        plan::select_forward(&shape, &out_shape, layout, T::DTYPE, device)
    );

    // Forward: input view and output view, each inside a larger buffer.
    let host: Vec<T> = random_data(rng, n);
    let in_buf = s
        .clone_htod(&embed(n + 2 * offset + 5, offset, &host))
        .expect("upload");
    let mut out_buf = s
        .clone_htod(&embed(m + offset + 3, offset, &poison::<T>(m)))
        .expect("upload");
    {
        let input = Tensor::new(in_buf.slice(offset..offset + n), dims, layout).expect("view");
        let mut output = Tensor::new(
            out_buf.slice_mut(offset..offset + m),
            out_shape.dims(),
            layout,
        )
        .expect("view");
        AdaptiveAvgPool2d::new(size)
            .forward_into(s, &input, &mut output)
            .expect("forward_into views");
    }
    let got = s.clone_dtoh(&out_buf).expect("download");
    s.synchronize().expect("synchronize");
    assert_untouched(&format!("{what} forward"), &got, offset, m);
    let (want, _) = reference::forward(&host, &shape, layout, size).expect("reference");
    let scale = forward_scale(&host, &shape, layout, size);
    assert_close(&what, &got[offset..offset + m], &want, &scale, tol);

    // Backward, both algorithms: grad_output and grad_input views.
    let grad: Vec<T> = random_data(rng, m);
    let go_buf = s
        .clone_htod(&embed(m + offset + 2, offset, &grad))
        .expect("upload");
    for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
        let mut gi_buf = s
            .clone_htod(&embed(n + offset + 4, offset, &poison::<T>(n)))
            .expect("upload");
        {
            let go = Tensor::new(go_buf.slice(offset..offset + m), out_shape.dims(), layout)
                .expect("view");
            let mut gi =
                Tensor::new(gi_buf.slice_mut(offset..offset + n), dims, layout).expect("view");
            AdaptiveAvgPool2d::new(size)
                .with_backward_algorithm(algorithm)
                .backward_into(s, &go, &mut gi)
                .expect("backward_into views");
        }
        let got = s.clone_dtoh(&gi_buf).expect("download");
        s.synchronize().expect("synchronize");
        let name = format!("{what} backward {algorithm:?}");
        assert_untouched(&name, &got, offset, n);
        let want = reference::backward(&grad, &out_shape, &shape, layout).expect("reference");
        let scale = backward_scale(&grad, &out_shape, &shape, layout);
        assert_close(&name, &got[offset..offset + n], &want, &scale, tol);
    }
}

/// Empty tensors (a zero batch, zero channels of a 3-D tensor, an output size of zero) need no
/// device memory: on a device without memory pools a zero-byte `cuMemAlloc` fails with
/// CUDA_ERROR_INVALID_VALUE, so making them through the driver broke every one of these.
#[test]
#[ignore = "needs a CUDA GPU"]
fn empty_tensors_need_no_device_memory() {
    let ctx = context();
    let s = ctx.default_stream();
    let mut rng = rng("empty tensors");
    println!("memory pools: {}", ctx.has_async_alloc());
    for layout in Layout::ALL {
        // A zero batch and zero 3-D channels: empty input, empty output.
        for dims in [&[0usize, 3, 8, 8][..], &[0, 8, 8]] {
            let x = DeviceTensor::<f32>::zeros(&s, dims, layout).expect("zeros");
            assert!(x.storage().is_none(), "an empty tensor holds no memory");
            let x = DeviceTensor::<f32>::from_host(&s, &[], dims, layout).expect("from_host");
            assert!(x.storage().is_none());
            let pool = AdaptiveAvgPool2d::new(3);
            let y = pool.forward(&s, &x).expect("forward of an empty batch");
            assert_eq!(y.dims()[0], 0);
            assert!(y.to_host(&s).expect("to_host").is_empty());
            let gi = pool
                .backward(&s, &y, dims)
                .expect("backward of an empty batch");
            assert!(gi.to_host(&s).expect("to_host").is_empty());
            let mut out = DeviceTensor::<f32>::zeros(&s, y.dims(), layout).expect("zeros");
            pool.forward_into(&s, &x.view(), &mut out.view_mut())
                .expect("forward_into views of empty tensors");
        }

        // An output size of zero: a non-empty input, an empty output, and a backward that
        // must zero every element of grad_input (poisoned first).
        let dims = [2, 3, 5, 4];
        let host: Vec<f32> = random_data(&mut rng, 120);
        let x = DeviceTensor::from_host(&s, &host, &dims, layout).expect("upload");
        for size in [(0, 3), (2, 0)] {
            let pool = AdaptiveAvgPool2d::new(size);
            let y = pool.forward(&s, &x).expect("forward to an empty output");
            assert!(y.storage().is_none());
            assert!(y.to_host(&s).expect("to_host").is_empty());
            let mut gi =
                DeviceTensor::from_host(&s, &poison::<f32>(120), &dims, layout).expect("upload");
            for algorithm in [BackwardAlgorithm::Deterministic, BackwardAlgorithm::Atomic] {
                pool.with_backward_algorithm(algorithm)
                    .backward_into(&s, &y, &mut gi)
                    .expect("backward from an empty grad_output");
                let got = gi.to_host(&s).expect("download");
                assert!(
                    got.iter().all(|&v| v == 0.0),
                    "{size:?} {algorithm:?}: {got:?}"
                );
            }
            let fresh = pool.backward(&s, &y, &dims).expect("backward");
            assert!(fresh
                .to_host(&s)
                .expect("download")
                .iter()
                .all(|&v| v == 0.0));
        }
    }
    ctx.check_err()
        .expect("no error left behind in the context");
}

/// `to_host` is the call that waits (README): once it returns, the work queued before it on
/// its stream is finished, even when the tensor copied is empty and there is nothing to copy.
/// Here the input is overwritten from another stream, unordered with the forward except through
/// that wait: without it, the write can race the forward's reads (the virtual GPU reports the
/// race; a real GPU computes from the new data).
#[test]
#[ignore = "needs a CUDA GPU"]
fn to_host_waits_for_the_stream_even_for_an_empty_tensor() {
    let ctx = context();
    let (s1, s2) = (
        ctx.new_stream().expect("stream"),
        ctx.new_stream().expect("stream"),
    );
    let mut rng = rng("to_host waits");
    let dims = [2, 4, 9, 9];
    let shape = Shape::new(&dims).expect("shape");
    let host: Vec<f32> = random_data(&mut rng, shape.numel());
    let x = DeviceTensor::from_host(&s1, &host, &dims, Layout::Nchw).expect("upload");
    s1.synchronize().expect("upload done");
    let empty = DeviceTensor::<f32>::zeros(&s1, &[0, 4, 9, 9], Layout::Nchw).expect("zeros");
    let pool = AdaptiveAvgPool2d::new((4, 2));
    let y = pool.forward(&s1, &x).expect("forward");
    assert!(empty.to_host(&s1).expect("to_host").is_empty());

    // Overwrite x on s2 with the driver's own copy (no cudarc event bookkeeping orders it after
    // the forward's reads): ordered only by the wait above.
    let other: Vec<f32> = vec![-7.0; shape.numel()];
    let storage = x.storage().expect("x has memory");
    let (ptr, _sync) = storage.device_ptr(&s2);
    // SAFETY: `ptr` is x's allocation of `shape.numel()` f32 elements, alive until the end of
    // the test; `other` has exactly that many; the driver stages pageable host memory before
    // returning, so `other` may be dropped afterwards.
    unsafe {
        adaptive_pool::cudarc::driver::result::memcpy_htod_async(ptr, &other, s2.cu_stream())
    }
    .expect("overwrite x on s2");
    s2.synchronize()
        .expect("the overwrite on s2 raced the forward on s1: to_host did not wait");
    let (want, _) = reference::forward(&host, &shape, Layout::Nchw, (4, 2)).expect("reference");
    let scale = forward_scale(&host, &shape, Layout::Nchw, (4, 2));
    assert_close(
        "forward, input overwritten after to_host",
        &y.to_host(&s1).expect("download"),
        &want,
        &scale,
        kernel_vs_reference(DType::F32),
    );
    ctx.check_err()
        .expect("no error left behind in the context");
}

/// A thread that has no current context (or another one) looks kernels up in the right
/// context: cuModuleGetFunction works on the calling thread's current context.
#[test]
#[ignore = "needs a CUDA GPU"]
fn kernels_are_looked_up_from_threads_without_the_context() {
    let s = stream();
    let mut rng = rng("lookup thread");
    // Start from nothing looked up. (Other tests share this context and may look the f64
    // kernel up first; with two devices, device_config_tensors_from_another_device_are_rejected
    // checks the same on a context no other test uses.)
    adaptive_pool::release_kernels(s.context());
    // Load module `forward` on this thread with an f32 kernel...
    let dims = [2, 3, 6, 7];
    let shape = Shape::new(&dims).expect("shape");
    let pool = AdaptiveAvgPool2d::new((3, 3));
    let x32 = DeviceTensor::from_host(&s, &random_data::<f32>(&mut rng, 252), &dims, Layout::Nchw)
        .expect("upload");
    pool.forward(&s, &x32).expect("forward f32");
    // ...then, from a fresh thread (no current context), a kernel of the same module not yet
    // looked up: f64, on tensors made here.
    let host: Vec<f64> = random_data(&mut rng, 252);
    let x = DeviceTensor::from_host(&s, &host, &dims, Layout::Nchw).expect("upload");
    let mut y = DeviceTensor::from_host(&s, &poison::<f64>(54), &[2, 3, 3, 3], Layout::Nchw)
        .expect("upload");
    s.synchronize().expect("uploads done");
    std::thread::scope(|scope| {
        scope
            .spawn(|| pool.forward_into(&s, &x, &mut y))
            .join()
            .expect("thread")
            .expect("forward_into from a thread without a current context");
    });
    let (want, _) = reference::forward(&host, &shape, Layout::Nchw, (3, 3)).expect("reference");
    let scale = forward_scale(&host, &shape, Layout::Nchw, (3, 3));
    assert_close(
        "forward from another thread",
        &y.to_host(&s).expect("download"),
        &want,
        &scale,
        kernel_vs_reference(DType::F64),
    );
}

/// Shape errors come before any launch, on the GPU path too, and leave the context usable.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_entry_points_check_shapes_layouts_and_lengths() {
    let s = stream();
    let pool = AdaptiveAvgPool2d::new(2);
    let x = DeviceTensor::from_host(&s, &[1.0f32; 32], &[2, 4, 4], Layout::Nchw).expect("upload");
    let mut wrong = DeviceTensor::<f32>::zeros(&s, &[2, 3, 3], Layout::Nchw).expect("alloc");
    assert!(matches!(
        pool.forward_into(&s, &x, &mut wrong),
        Err(Error::ShapeMismatch { what: "output", .. })
    ));
    let mut other_layout = DeviceTensor::<f32>::zeros(&s, &[2, 2, 2], Layout::Nhwc).expect("alloc");
    assert!(matches!(
        pool.forward_into(&s, &x, &mut other_layout),
        Err(Error::LayoutMismatch { .. })
    ));
    let go = DeviceTensor::from_host(&s, &[1.0f32; 18], &[2, 3, 3], Layout::Nchw).expect("upload");
    assert!(matches!(
        pool.backward(&s, &go, &[2, 4, 4]),
        Err(Error::ShapeMismatch {
            what: "grad_output",
            ..
        })
    ));
    let mut gi = DeviceTensor::<f32>::zeros(&s, &[2, 4, 4], Layout::Nhwc).expect("alloc");
    let go = DeviceTensor::from_host(&s, &[1.0f32; 8], &[2, 2, 2], Layout::Nchw).expect("upload");
    assert!(matches!(
        pool.backward_into(&s, &go, &mut gi),
        Err(Error::LayoutMismatch {
            what: "grad_input",
            ..
        })
    ));
    assert!(matches!(
        DeviceTensor::from_host(&s, &[1.0f32; 5], &[1, 2, 3], Layout::Nchw),
        Err(Error::BufferLength {
            expected: 6,
            got: 5,
            ..
        })
    ));
    let buffer = s.clone_htod(&[1.0f32; 40]).expect("upload");
    assert!(matches!(
        Tensor::new(buffer.slice(1..40), &[1, 2, 4, 5], Layout::Nchw),
        Err(Error::BufferLength {
            expected: 40,
            got: 39,
            ..
        })
    ));
    assert!(matches!(
        pool.backward(&s, &go, &[2, 0, 4]),
        Err(Error::EmptyDimension { dim: 1, .. })
    ));
    assert!(matches!(
        AdaptiveAvgPool2d::new((usize::MAX / 2, 3)).forward(&s, &x),
        Err(Error::ElementCountOverflow { .. })
    ));
    // An output too large for any device is the driver's out-of-memory error, not a crash.
    let err = AdaptiveAvgPool2d::new((1 << 25, 1 << 25))
        .forward(&s, &x)
        .expect_err("a 2^51-element output");
    match &err {
        Error::Cuda { source, .. } => {
            assert_eq!(source.0, sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY, "{err}")
        }
        other => panic!("{other}"),
    }
    s.context()
        .check_err()
        .expect("no error left behind in the context");
    let y = pool.forward(&s, &x).expect("the context still works");
    assert_eq!(y.to_host(&s).expect("download"), vec![1.0f32; 8]);
}

/// The deterministic backward gives identical bits on every run (the GPU schedules blocks
/// differently each time), in every dtype and layout, including overlapping windows.
#[test]
#[ignore = "needs a CUDA GPU"]
fn deterministic_backward_is_bitwise_reproducible() {
    let s = stream();
    let mut rng = rng("gpu determinism");
    let pool = AdaptiveAvgPool2d::new((9, 13));
    for layout in Layout::ALL {
        let dims = [4, 16, 31, 17];
        let grad: Vec<bf16> = random_data(&mut rng, 4 * 16 * 9 * 13);
        let go = DeviceTensor::from_host(&s, &grad, &[4, 16, 9, 13], layout).expect("upload");
        let first: Vec<u16> = pool
            .backward(&s, &go, &dims)
            .and_then(|g| g.to_host(&s))
            .expect("backward")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        for _ in 0..20 {
            let again: Vec<u16> = pool
                .backward(&s, &go, &dims)
                .and_then(|g| g.to_host(&s))
                .expect("backward")
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(again, first, "{layout}: bits differ between runs");
        }
    }
}

/// Forward and backward of a small case: the two calls every device-configuration test makes.
fn small_forward_and_backward(s: &Arc<CudaStream>) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let x = DeviceTensor::from_host(s, &[1.5f32; 2 * 3 * 4 * 4], &[2, 3, 4, 4], Layout::Nchw)?;
    let pool = AdaptiveAvgPool2d::new(2);
    let y = pool.forward(s, &x)?;
    let gi = pool.backward(s, &y, x.dims())?;
    Ok((y.to_host(s)?, gi.to_host(s)?))
}

/// What a device must give for a kernel launch, from its properties alone: the crate checks the
/// compute capability when it first meets a context, then the driver loads the PTX.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Below the lowest architecture built: `Error::UnsupportedDevice`.
    UnsupportedDevice { cc: u32, lowest: u32 },
    /// A driver older than the NVRTC that built the PTX: `Error::PtxTooNew`.
    PtxTooNew { driver: i32, nvrtc: (i32, i32) },
    /// The kernels run.
    Runs,
}

fn outcome(ctx: &CudaContext) -> Outcome {
    let (major, minor) = ctx.compute_capability().expect("cc");
    let cc = (major * 10 + minor) as u32;
    let lowest = ptx::archs().first().copied().expect("the PTX is built");
    let driver = driver_version();
    let nvrtc = ptx::nvrtc_version().expect("the PTX is built");
    if cc < lowest {
        Outcome::UnsupportedDevice { cc, lowest }
    } else if driver < nvrtc.0 * 1000 + nvrtc.1 * 10 {
        Outcome::PtxTooNew { driver, nvrtc }
    } else {
        Outcome::Runs
    }
}

/// Panics unless `result` is what `outcome` says (the error's fields and message included);
/// returns the value when the kernels ran.
fn assert_outcome<T: std::fmt::Debug>(
    what: &str,
    outcome: &Outcome,
    result: Result<T, Error>,
) -> Option<T> {
    match (outcome, result) {
        (Outcome::Runs, Ok(v)) => Some(v),
        (Outcome::UnsupportedDevice { cc, lowest }, Err(e)) => {
            let Error::UnsupportedDevice {
                ordinal: _,
                major,
                minor,
                lowest_major,
                lowest_minor,
            } = &e
            else {
                panic!("{what}: want UnsupportedDevice, got {e:?}");
            };
            assert_eq!(
                (major * 10 + minor, lowest_major * 10 + lowest_minor),
                (*cc, *lowest)
            );
            let message = e.to_string();
            assert!(
                message.contains(&format!("compute capability {}.{}", cc / 10, cc % 10))
                    && message.contains(&format!("at least {}.{}", lowest / 10, lowest % 10)),
                "{what}: {message}"
            );
            None
        }
        (Outcome::PtxTooNew { driver, nvrtc }, Err(e)) => {
            let Error::PtxTooNew {
                driver_major,
                driver_minor,
                nvrtc_major,
                nvrtc_minor,
            } = &e
            else {
                panic!("{what}: want PtxTooNew, got {e:?}");
            };
            assert_eq!(
                (*driver_major, *driver_minor),
                (driver / 1000, driver % 1000 / 10)
            );
            assert_eq!((*nvrtc_major, *nvrtc_minor), *nvrtc);
            let message = e.to_string();
            assert!(
                message.contains(&format!("version {}.{}", driver / 1000, driver % 1000 / 10))
                    && message.contains(&format!("CUDA {}.{} or newer", nvrtc.0, nvrtc.1)),
                "{what}: {message}"
            );
            None
        }
        (want, got) => panic!("{what}: the device says {want:?}, the call gave {got:?}"),
    }
}

/// A driver older than the NVRTC that built the PTX refuses it: `Error::PtxTooNew` naming both
/// versions, from the forward and from the backward alone, and the context stays usable for
/// everything else. On a device that runs the kernels the same calls give the right values.
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_config_ptx_newer_than_the_driver_is_reported() {
    let ctx = context();
    let s = ctx.default_stream();
    let outcome = outcome(&ctx);
    println!("this device: {outcome:?}");
    if let Some((y, gi)) = assert_outcome("forward", &outcome, small_forward_and_backward(&s)) {
        assert_eq!(y, vec![1.5; 2 * 3 * 2 * 2]);
        assert_eq!(gi, vec![1.5 / 4.0; 2 * 3 * 4 * 4]);
    }
    // The backward alone (its own modules) says the same; copies keep working.
    let go = DeviceTensor::from_host(&s, &[1.0f32; 8], &[2, 2, 2], Layout::Nchw).expect("copy");
    let gi = AdaptiveAvgPool2d::new(2)
        .with_backward_algorithm(BackwardAlgorithm::Atomic)
        .backward(&s, &go, &[2, 4, 4])
        .and_then(|gi| gi.to_host(&s));
    if let Some(gi) = assert_outcome("backward", &outcome, gi) {
        assert_eq!(gi, vec![0.25; 32]);
    }
    assert_eq!(go.to_host(&s).expect("copies still work"), vec![1.0; 8]);
    ctx.check_err()
        .expect("no error left behind in the context");
}

/// A device below the lowest architecture the PTX was built for gets
/// `Error::UnsupportedDevice` naming its compute capability and the lowest supported, before
/// anything is loaded; the context stays usable. A device at or above it runs the highest
/// variant not above it.
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_config_device_below_the_lowest_ptx_is_reported() {
    let ctx = context();
    let s = ctx.default_stream();
    let outcome = outcome(&ctx);
    let (major, minor) = ctx.compute_capability().expect("cc");
    println!(
        "this device: {outcome:?}; the PTX variant for it: {:?}",
        ptx::select_arch((major * 10 + minor) as u32)
    );
    if let Some((y, _)) = assert_outcome("forward", &outcome, small_forward_and_backward(&s)) {
        assert_eq!(y, vec![1.5; 2 * 3 * 2 * 2]);
    }
    ctx.check_err()
        .expect("no error left behind in the context");
    // The same error again: the failed first use left nothing half-made behind.
    assert_outcome("forward again", &outcome, small_forward_and_backward(&s));
}

/// Tensors of another device are refused before anything is queued, by every entry point and
/// for every tensor argument (empty tensors too), naming the tensor and both devices; both
/// contexts stay usable, and a thread bound to one device runs kernels of the other. With one
/// device, tensors from two streams of it are accepted.
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_config_tensors_from_another_device_are_rejected() {
    let ctx0 = context();
    let outcome = outcome(&ctx0);
    let devices = CudaContext::device_count().expect("device count");
    let pool = AdaptiveAvgPool2d::new(2);
    let host = [0.5f32; 2 * 4 * 4];
    if devices < 2 {
        println!("{devices} device: checking that two streams of it share tensors");
        let (a, b) = (
            ctx0.new_stream().expect("stream"),
            ctx0.new_stream().expect("stream"),
        );
        let x = DeviceTensor::from_host(&a, &host, &[2, 4, 4], Layout::Nchw).expect("upload");
        let y = pool.forward(&b, &x).and_then(|y| y.to_host(&a));
        if let Some(y) = assert_outcome("a tensor of another stream", &outcome, y) {
            assert_eq!(y, vec![0.5; 8]);
        }
        return;
    }
    println!("{devices} devices: checking ContextMismatch between devices 0 and 1");
    let ctx1 = CudaContext::new(1).expect("device 1");
    let (s0, s1) = (ctx0.default_stream(), ctx1.default_stream());
    let x0 = DeviceTensor::from_host(&s0, &host, &[2, 4, 4], Layout::Nchw).expect("upload");
    let g0 = DeviceTensor::from_host(&s0, &[1.0f32; 8], &[2, 2, 2], Layout::Nchw).expect("g");
    let mut y1 = DeviceTensor::<f32>::zeros(&s1, &[2, 2, 2], Layout::Nchw).expect("zeros");
    let mut gi1 = DeviceTensor::<f32>::zeros(&s1, &[2, 4, 4], Layout::Nchw).expect("zeros");
    let x1 = DeviceTensor::from_host(&s1, &host, &[2, 4, 4], Layout::Nchw).expect("upload");
    let empty0 = DeviceTensor::<f32>::zeros(&s0, &[0, 4, 4], Layout::Nchw).expect("zeros");
    let mismatch = |r: Result<(), Error>, what: &str, expected: usize, got: usize| match r {
        Err(Error::ContextMismatch {
            what: w,
            expected: e,
            got: g,
        }) => {
            assert_eq!((w, e, g), (what, expected, got));
            let message = r.expect_err("checked").to_string();
            assert!(
                message.contains(&format!("{what} lives on CUDA device {got}")),
                "{message}"
            );
        }
        other => panic!("{what}: want ContextMismatch, got {other:?}"),
    };
    mismatch(pool.forward(&s1, &x0).map(drop), "input", 1, 0);
    mismatch(pool.forward(&s1, &empty0).map(drop), "input", 1, 0);
    mismatch(pool.forward_into(&s1, &x0, &mut y1), "input", 1, 0);
    mismatch(pool.forward_into(&s0, &x0, &mut y1), "output", 0, 1);
    mismatch(
        pool.backward(&s1, &g0, &[2, 4, 4]).map(drop),
        "grad_output",
        1,
        0,
    );
    mismatch(pool.backward_into(&s1, &g0, &mut gi1), "grad_output", 1, 0);
    mismatch(pool.backward_into(&s0, &g0, &mut gi1), "grad_input", 0, 1);
    mismatch(x0.to_host(&s1).map(drop), "tensor", 1, 0);
    mismatch(empty0.to_host(&s1).map(drop), "tensor", 1, 0);
    ctx0.check_err().expect("device 0: no error left behind");
    ctx1.check_err().expect("device 1: no error left behind");

    // Each device still works, and a thread whose current context is device 0's runs a kernel
    // of device 1 that was never looked up before (no other test uses device 1): f32 loads the
    // module, f64 is then looked up from the other thread.
    let y = pool.forward(&s1, &x1).and_then(|y| y.to_host(&s1));
    if let Some(y) = assert_outcome("device 1", &outcome, y) {
        assert_eq!(y, vec![0.5; 8]);
    }
    let x64 = DeviceTensor::from_host(&s1, &[0.25f64; 32], &[2, 4, 4], Layout::Nchw).expect("x");
    s1.synchronize().expect("upload");
    let y = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ctx0.bind_to_thread().expect("bind device 0");
                pool.forward(&s1, &x64)
            })
            .join()
            .expect("thread")
    })
    .and_then(|y| y.to_host(&s1));
    if let Some(y) = assert_outcome("device 1 from a thread bound to device 0", &outcome, y) {
        assert_eq!(y, vec![0.25; 8]);
    }
}

/// A driver error while a kernel's memory is being set up (here the out-of-memory of an
/// allocation no device has) names what the crate was doing.
#[test]
#[ignore = "needs a CUDA GPU"]
fn driver_errors_say_what_the_crate_was_doing() {
    let s = stream();
    let err = DeviceTensor::<f64>::zeros(&s, &[1 << 20, 1 << 20, 1 << 10], Layout::Nchw)
        .expect_err("2^50 f64 elements");
    let message = err.to_string();
    assert!(
        message.starts_with("CUDA error while allocating a tensor: CUDA_ERROR_OUT_OF_MEMORY"),
        "{message}"
    );
    assert!(matches!(
        &err,
        Error::Cuda {
            source: DriverError(sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY),
            ..
        }
    ));
    s.context()
        .check_err()
        .expect("an allocation failure is not sticky");
}

/// cudarc frees a `CudaSlice` on its stream without making its context current first, and a
/// legacy default stream is resolved in whatever context is current: dropping a device-0
/// tensor while device 1's context is current queued the free on device 1's stream, unordered
/// with the copy still queued on device 0's (a use-after-free on hardware; a cross-stream race,
/// sticky in both contexts, on the vgpu). With one device there is no other context to be
/// current, and the test says so.
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_config_a_tensor_dropped_under_another_context_is_freed_in_order() {
    let ctx0 = context();
    let devices = CudaContext::device_count().expect("device count");
    if devices < 2 {
        println!("{devices} device: no second context to drop a tensor under");
        return;
    }
    println!("{devices} devices: dropping device-0 tensors while device 1's context is current");
    let ctx1 = CudaContext::new(1).expect("device 1");
    let s0 = ctx0.default_stream();
    let host: Vec<f32> = (0..64).map(|i| i as f32 + 0.5).collect();
    for _ in 0..4 {
        let x0 = DeviceTensor::from_host(&s0, &host, &[1, 8, 8], Layout::Nchw).expect("upload");
        ctx1.bind_to_thread().expect("binding device 1");
        drop(x0);
    }
    ctx0.bind_to_thread().expect("binding device 0");
    s0.synchronize().expect("device 0's stream after the drops");
    ctx0.check_err()
        .expect("no error left in device 0's context");
    ctx1.bind_to_thread().expect("binding device 1");
    ctx1.default_stream()
        .synchronize()
        .expect("device 1's stream after the drops");
    ctx1.check_err()
        .expect("no error left in device 1's context");
}
