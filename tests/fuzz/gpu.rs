//! The GPU API at random: `DeviceTensor::from_host`, `DeviceTensor::zeros`, `Tensor::new` on
//! views of caller buffers, `to_host`, and the forward and backward in both forms, with the
//! arguments `main.rs` describes plus tensors and streams of mismatched layouts, streams and
//! (where there are two) devices. Most cases are invalid and must be refused before anything
//! is queued; the valid ones are small and compared with the reference. After every case no
//! context may hold an error and every stream must synchronize: no device fault, no sticky
//! error, no race.

use std::sync::Arc;

use adaptive_pool::cudarc::driver::{CudaContext, CudaStream};
use adaptive_pool::half::{bf16, f16};
use adaptive_pool::{
    reference, AdaptiveAvgPool2d, BackwardAlgorithm, DType, DeviceTensor, Element, Layout,
    OutputSize, Shape, Tensor,
};
use rand::rngs::StdRng;
use rand::Rng;

use crate::common::{assert_close, backward_scale, forward_scale, kernel_vs_reference, poison};
use crate::harness::{fuzz, Case};
use crate::oracle::{self, Kind, Violations};
use crate::{gen, CASES};

/// Device allocations at least this large fail on every device (16 TiB), so the API must
/// return the driver's out-of-memory error; between [`gen::SMALL`] elements and this an
/// allocation would be legitimate and slow, and the fuzzer does not ask for it.
const IMPOSSIBLE_DEVICE_BYTES: u128 = 1 << 44;

/// Every device's context and streams: its default stream and two more.
struct Devices {
    contexts: Vec<Arc<CudaContext>>,
    /// `(device index, stream)`.
    streams: Vec<(usize, Arc<CudaStream>)>,
}

impl Devices {
    fn new() -> Devices {
        let count = CudaContext::device_count()
            .expect("device count")
            .clamp(1, 2) as usize;
        let contexts: Vec<_> = (0..count)
            .map(|i| CudaContext::new(i).expect("a CUDA device"))
            .collect();
        let mut streams = Vec::new();
        for (i, ctx) in contexts.iter().enumerate() {
            streams.push((i, ctx.default_stream()));
            for _ in 0..2 {
                streams.push((i, ctx.new_stream().expect("stream")));
            }
        }
        println!("gpu_api: {count} device(s), {} streams", streams.len());
        Devices { contexts, streams }
    }

    /// A stream: usually device 0's, sometimes another device's (where there is one).
    fn stream(&self, rng: &mut StdRng) -> &(usize, Arc<CudaStream>) {
        let other = self.contexts.len() > 1 && rng.random_bool(0.12);
        let candidates: Vec<_> = self
            .streams
            .iter()
            .filter(|(d, _)| (*d != 0) == other)
            .collect();
        candidates[rng.random_range(0..candidates.len())]
    }

    /// After each case: no context holds an error and every stream's work completes.
    fn assert_clean(&self) {
        for (i, ctx) in self.contexts.iter().enumerate() {
            if let Err(e) = ctx.check_err() {
                panic!("device {i}: the context holds an error after the case: {e:?}");
            }
        }
        for (i, s) in &self.streams {
            if let Err(e) = s.synchronize() {
                panic!("device {i}: a stream fails to synchronize after the case: {e:?}");
            }
        }
    }
}

/// The GPU entry points, each called at least once per case.
const ENTRY_POINTS: [&str; 8] = [
    "DeviceTensor::from_host",
    "DeviceTensor::zeros",
    "Tensor::new",
    "DeviceTensor::to_host",
    "AdaptiveAvgPool2d::forward",
    "AdaptiveAvgPool2d::forward_into",
    "AdaptiveAvgPool2d::backward",
    "AdaptiveAvgPool2d::backward_into",
];

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_api() {
    let devices = Devices::new();
    let report = fuzz("gpu_api", CASES, |rng, case| {
        match gen::dtype(rng) {
            DType::F32 => gpu_case::<f32>(&devices, rng, case),
            DType::F64 => gpu_case::<f64>(&devices, rng, case),
            DType::F16 => gpu_case::<f16>(&devices, rng, case),
            DType::Bf16 => gpu_case::<bf16>(&devices, rng, case),
        }
        devices.assert_clean();
    });
    report.check("gpu_api", &ENTRY_POINTS);
}

/// A tensor the case made on purpose (valid by construction), with what it was made from.
struct Made<T: Element> {
    tensor: DeviceTensor<T>,
    host: Vec<T>,
    device: usize,
}

/// Uploads `host` as a tensor of `dims` (valid: the length matches) on `stream`.
fn upload<T: Element>(
    (device, stream): &(usize, Arc<CudaStream>),
    host: Vec<T>,
    dims: &[usize],
    layout: Layout,
) -> Made<T> {
    let tensor = DeviceTensor::from_host(stream, &host, dims, layout)
        .unwrap_or_else(|e| panic!("setting up a {dims:?} tensor: {e}"));
    Made {
        tensor,
        host,
        device: *device,
    }
}

/// Small dims near `want` (the right ones when `right`): changed in rank, batch, channels,
/// height or width otherwise. Always at most [`gen::SMALL`] elements.
fn near_dims(rng: &mut StdRng, want: &[usize], right: bool) -> Vec<usize> {
    let fits = oracle::numel(want).is_some_and(|n| n <= gen::SMALL);
    let mut dims = if fits {
        want.to_vec()
    } else {
        gen::small_input(rng)
    };
    if right && fits {
        return dims;
    }
    let r = dims.len();
    match rng.random_range(0..5) {
        0 if r == 4 => dims = dims[1..].to_vec(),
        0 => dims.insert(0, rng.random_range(1..=2)),
        1 => dims[0] += 1,
        2 if r == 4 => dims[1] += 1,
        3 => dims[r - 2] += 1,
        _ => dims[r - 1] = dims[r - 1].saturating_sub(1).max(1) + 2,
    }
    if oracle::numel(&dims).is_some_and(|n| n <= gen::SMALL) {
        dims
    } else {
        gen::small_input(rng)
    }
}

fn other_layout(rng: &mut StdRng, layout: Layout, keep: f64) -> Layout {
    if rng.random_bool(keep) {
        layout
    } else {
        match layout {
            Layout::Nchw => Layout::Nhwc,
            Layout::Nhwc => Layout::Nchw,
        }
    }
}

/// Whether a result of `dims` may be allocated here: small, or impossibly large (the
/// allocation must fail). `None`: neither, so the call is not made.
fn allocation_fails<T: Element>(dims: &[usize]) -> Option<bool> {
    match oracle::numel(dims) {
        Some(n) if n <= gen::SMALL => Some(false),
        Some(n) if n as u128 * size_of::<T>() as u128 >= IMPOSSIBLE_DEVICE_BYTES => Some(true),
        _ => None,
    }
}

/// The shape checks of a backward from grad_output `go` to an input of `input` (both valid
/// shapes, rank 3 or 4) for `size`.
fn backward_shape_violations(v: &mut Violations, go: &[usize], input: &[usize], size: OutputSize) {
    v.add(Kind::EmptyDimension, oracle::has_empty_non_batch_dim(input));
    let (g4, i4) = (oracle::four(go), oracle::four(input));
    let mismatch = go.len() != input.len() || g4[0] != i4[0] || g4[1] != i4[1];
    v.add(Kind::ShapeMismatch, mismatch);
    if mismatch {
        let mut named = input.to_vec();
        let r = named.len();
        named[r - 2] = g4[2];
        named[r - 1] = g4[3];
        v.add(Kind::Overflow, !oracle::count_fits(&named));
    }
    let expected = oracle::resolve(input, size);
    v.add(Kind::Overflow, !oracle::count_fits(&expected));
    v.add(Kind::ShapeMismatch, go != &expected[..]);
}

fn gpu_case<T: Element>(devices: &Devices, rng: &mut StdRng, case: &mut Case) {
    let layout = gen::layout(rng);
    let on = devices.stream(rng);
    let (on_device, s) = (on.0, &on.1);

    // DeviceTensor::from_host: any dims, a buffer that may be the wrong length.
    let dims = if rng.random_bool(0.5) {
        gen::any_dims(rng)
    } else {
        gen::small_input(rng)
    };
    let len = gen::buffer_len(rng, oracle::numel(&dims));
    let host: Vec<T> = gen::data(rng, len);
    let mut v = Violations::default();
    if let Some(k) = oracle::shape_error(&dims) {
        v.add(k, true);
    }
    v.add(Kind::BufferLength, Some(len) != oracle::numel(&dims));
    case.call("DeviceTensor::from_host", || {
        format!("[{len} x {}], {dims:?}, {layout:?}", T::DTYPE)
    });
    let got = DeviceTensor::from_host(s, &host, &dims, layout);
    case.outcome("DeviceTensor::from_host", &got);
    v.check("DeviceTensor::from_host", &got);
    if let Ok(t) = got {
        assert_eq!(t.dims(), &dims[..]);
        assert_eq!(
            t.storage().is_some(),
            len > 0,
            "only a non-empty tensor holds memory"
        );
        case.call("DeviceTensor::to_host", || format!("{dims:?}"));
        let back = t.to_host(s);
        case.outcome("DeviceTensor::to_host", &back);
        oracle::assert_same("from_host then to_host", &back.expect("to_host"), &host);
    }

    // DeviceTensor::zeros: any dims, small or impossibly large.
    let dims = if rng.random_bool(0.5) {
        gen::any_dims(rng)
    } else {
        gen::small_input(rng)
    };
    let mut v = Violations::default();
    let call = match oracle::shape_error(&dims) {
        Some(k) => {
            v.add(k, true);
            true
        }
        None => allocation_fails::<T>(&dims)
            .inspect(|&fails| v.add(Kind::Cuda, fails))
            .is_some(),
    };
    if call {
        case.call("DeviceTensor::zeros", || format!("{dims:?}, {}", T::DTYPE));
        let got = DeviceTensor::<T>::zeros(s, &dims, layout);
        case.outcome("DeviceTensor::zeros", &got);
        v.check("DeviceTensor::zeros", &got);
        if let Ok(t) = got {
            let zeros = t.to_host(s).expect("to_host");
            assert!(zeros
                .iter()
                .all(|z| z.to_f64() == 0.0 && !z.to_f64().is_sign_negative()));
        }
    }

    // Tensor::new on a view of a caller buffer: any dims, a view of any length at any offset.
    let dims = if rng.random_bool(0.5) {
        gen::any_dims(rng)
    } else {
        gen::small_input(rng)
    };
    let buffer_len = rng.random_range(1..=gen::SMALL + 16);
    let buffer = s.alloc_zeros::<T>(buffer_len).expect("a caller buffer");
    let offset = rng.random_range(0..buffer_len);
    let len = gen::buffer_len(rng, oracle::numel(&dims)).min(buffer_len - offset);
    let mut v = Violations::default();
    if let Some(k) = oracle::shape_error(&dims) {
        v.add(k, true);
    }
    v.add(Kind::BufferLength, Some(len) != oracle::numel(&dims));
    case.call("Tensor::new", || {
        format!(
            "view [{offset}, {}) of {buffer_len}, {dims:?}",
            offset + len
        )
    });
    let got = Tensor::new(buffer.slice(offset..offset + len), &dims, layout);
    case.outcome("Tensor::new", &got);
    v.check("Tensor::new", &got);

    // to_host of a tensor made on any stream of either device.
    let dims = x_dims(rng, None);
    let other = rng.random_bool(0.3);
    let t_on = stream_for(devices, rng, on_device, other);
    let t = upload(
        t_on,
        gen::data::<T>(rng, oracle::numel(&dims).expect("fits")),
        &dims,
        layout,
    );
    case.call("DeviceTensor::to_host", || {
        format!("{dims:?} of device {} on device {on_device}", t.device)
    });
    let got = t.tensor.to_host(s);
    case.outcome("DeviceTensor::to_host", &got);
    let mut v = Violations::default();
    v.add(Kind::ContextMismatch, t.device != on_device);
    v.check("DeviceTensor::to_host", &got);
    if let Ok(back) = got {
        oracle::assert_same("to_host", &back, &t.host);
    }

    // The pooling calls. Each is valid (small, compared with the reference) in a few percent of
    // cases; otherwise its arguments get one fault on purpose (and maybe more by chance).
    forward_case::<T>(devices, rng, case, on, layout);
    forward_into_case::<T>(devices, rng, case, on, layout);
    backward_cases::<T>(devices, rng, case, on, layout);
}

/// The share of pooling calls made valid on purpose: a few hundred launches per entry point in
/// twelve thousand cases.
const VALID: f64 = 0.03;

/// A fault to put into a call's arguments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// A zero H, W or (4-D) C: PyTorch's EmptyDimension.
    EmptyDimension,
    /// An output size whose element count overflows.
    Overflow,
    /// An output no device can hold.
    OutOfMemory,
    /// A tensor of the other device (where there are two; else none of this kind).
    OtherDevice,
    /// A tensor of the wrong shape.
    Shape,
    /// A tensor of the other layout.
    Layout,
    /// Input dims of a rank other than 3 or 4.
    Rank,
}

fn pick(rng: &mut StdRng, faults: &[Fault]) -> Fault {
    faults[rng.random_range(0..faults.len())]
}

/// A small pooling input: H, W and (4-D) C non-zero; with `fault == EmptyDimension` one of them
/// zero instead.
fn x_dims(rng: &mut StdRng, fault: Option<Fault>) -> Vec<usize> {
    let mut dims = gen::small_input(rng);
    if fault == Some(Fault::EmptyDimension) {
        let i = rng.random_range(1..dims.len());
        dims[i] = 0;
    } else if rng.random_bool(0.05) {
        // An empty batch beside huge dimensions: valid, with an empty result.
        dims[0] = 0;
        for d in dims.iter_mut().skip(1) {
            *d = gen::dim(rng).max(1);
        }
    }
    dims
}

/// An output size: small, or for `Overflow` / `OutOfMemory` one that overflows or that no
/// device holds (for an input with a non-zero batch and channels).
fn size_for(rng: &mut StdRng, fault: Option<Fault>) -> OutputSize {
    match fault {
        Some(Fault::Overflow) => {
            let big = [usize::MAX, usize::MAX / 2, 1 << 40, 1 << 62][rng.random_range(0..4)];
            (big, rng.random_range(1..=big.min(1 << 30))).into()
        }
        Some(Fault::OutOfMemory) => (1usize << 22, 1usize << 22).into(),
        _ => gen::output_size(rng, 1.0),
    }
}

/// The stream for a tensor: the call's device, or with `OtherDevice` the other one.
fn stream_for<'a>(
    devices: &'a Devices,
    rng: &mut StdRng,
    call_device: usize,
    other: bool,
) -> &'a (usize, Arc<CudaStream>) {
    let want = if other && devices.contexts.len() > 1 {
        1 - call_device
    } else {
        call_device
    };
    let candidates: Vec<_> = devices.streams.iter().filter(|(d, _)| *d == want).collect();
    candidates[rng.random_range(0..candidates.len())]
}

/// The faults a call can be given on these devices.
fn faults(devices: &Devices, all: &[Fault]) -> Vec<Fault> {
    all.iter()
        .copied()
        .filter(|&f| f != Fault::OtherDevice || devices.contexts.len() > 1)
        .collect()
}

/// A valid case (`None`) with probability [`VALID`], else one of `all` that these devices can
/// produce.
fn maybe_fault(devices: &Devices, rng: &mut StdRng, all: &[Fault]) -> Option<Fault> {
    (!rng.random_bool(VALID)).then(|| pick(rng, &faults(devices, all)))
}

fn forward_case<T: Element>(
    devices: &Devices,
    rng: &mut StdRng,
    case: &mut Case,
    (on_device, s): &(usize, Arc<CudaStream>),
    layout: Layout,
) {
    let on_device = *on_device;
    let fault = maybe_fault(
        devices,
        rng,
        &[
            Fault::EmptyDimension,
            Fault::Overflow,
            Fault::OutOfMemory,
            Fault::OtherDevice,
        ],
    );
    let dims = x_dims(rng, fault);
    let size = size_for(rng, fault);
    let x_on = stream_for(devices, rng, on_device, fault == Some(Fault::OtherDevice));
    let x = upload(
        x_on,
        gen::data::<T>(rng, oracle::numel(&dims).expect("fits")),
        &dims,
        layout,
    );
    let out_dims = oracle::resolve(&dims, size);
    let mut v = Violations::default();
    v.add(Kind::EmptyDimension, oracle::has_empty_non_batch_dim(&dims));
    v.add(Kind::Overflow, !oracle::count_fits(&out_dims));
    v.add(Kind::ContextMismatch, x.device != on_device);
    let call = !v.is_empty()
        || allocation_fails::<T>(&out_dims)
            .inspect(|&fails| v.add(Kind::Cuda, fails))
            .is_some();
    if !call {
        return;
    }
    let pool = AdaptiveAvgPool2d::new(size);
    case.call("AdaptiveAvgPool2d::forward", || {
        format!(
            "{pool}, {dims:?} {layout:?} dev {} on dev {on_device}",
            x.device
        )
    });
    let got = pool.forward(s, &x.tensor);
    case.outcome("AdaptiveAvgPool2d::forward", &got);
    v.check("AdaptiveAvgPool2d::forward", &got);
    if let Ok(y) = got {
        assert_eq!(y.dims(), &out_dims[..]);
        assert_eq!(y.storage().is_some(), !y.dims().contains(&0));
        check_forward(&x, &dims, layout, size, &y.to_host(s).expect("download"));
    }
}

/// The forward's result `got` against the reference of `x`.
fn check_forward<T: Element>(
    x: &Made<T>,
    dims: &[usize],
    layout: Layout,
    size: OutputSize,
    got: &[T],
) {
    let shape = Shape::new(dims).expect("shape");
    let (want, out) = reference::forward(&x.host, &shape, layout, size).expect("reference");
    let scale = forward_scale(&x.host, &shape, layout, (out.height(), out.width()));
    assert_close("forward", got, &want, &scale, kernel_vs_reference(T::DTYPE));
}

fn forward_into_case<T: Element>(
    devices: &Devices,
    rng: &mut StdRng,
    case: &mut Case,
    (on_device, s): &(usize, Arc<CudaStream>),
    layout: Layout,
) {
    let on_device = *on_device;
    let fault = maybe_fault(
        devices,
        rng,
        &[
            Fault::EmptyDimension,
            Fault::Overflow,
            Fault::Shape,
            Fault::Layout,
            Fault::OtherDevice,
        ],
    );
    let dims = x_dims(rng, fault);
    let size = size_for(rng, fault);
    let other = fault == Some(Fault::OtherDevice);
    let x_other = other && rng.random_bool(0.5);
    let x_on = stream_for(devices, rng, on_device, x_other);
    let x = upload(
        x_on,
        gen::data::<T>(rng, oracle::numel(&dims).expect("fits")),
        &dims,
        layout,
    );
    let out_dims = oracle::resolve(&dims, size);
    let y_dims = near_dims(rng, &out_dims, fault != Some(Fault::Shape));
    let y_layout = if fault == Some(Fault::Layout) {
        other_layout(rng, layout, 0.0)
    } else {
        layout
    };
    let y_on = stream_for(devices, rng, on_device, other && !x_other);
    let y_n = oracle::numel(&y_dims).expect("small");
    let mut y = upload(y_on, poison::<T>(y_n), &y_dims, y_layout);
    let mut v = Violations::default();
    v.add(Kind::EmptyDimension, oracle::has_empty_non_batch_dim(&dims));
    v.add(Kind::Overflow, !oracle::count_fits(&out_dims));
    v.add(Kind::ShapeMismatch, y_dims != out_dims);
    v.add(Kind::LayoutMismatch, y_layout != layout);
    v.add(
        Kind::ContextMismatch,
        x.device != on_device || y.device != on_device,
    );
    let pool = AdaptiveAvgPool2d::new(size);
    case.call("AdaptiveAvgPool2d::forward_into", || {
        format!(
            "{pool}, {dims:?} {layout:?} dev {} -> {y_dims:?} {y_layout:?} dev {}, on dev \
             {on_device}",
            x.device, y.device
        )
    });
    let got = pool.forward_into(s, &x.tensor, &mut y.tensor);
    case.outcome("AdaptiveAvgPool2d::forward_into", &got);
    v.check("AdaptiveAvgPool2d::forward_into", &got);
    let after = y.tensor.to_host(&y_on.1).expect("download");
    if got.is_ok() {
        check_forward(&x, &dims, layout, size, &after);
    } else {
        // A refused call leaves the output as it was.
        oracle::assert_same("a refused forward_into's output", &after, &y.host);
    }
}

/// `backward` (a new grad_input) and `backward_into` (a given one), from the same grad_output
/// when it suits both.
fn backward_cases<T: Element>(
    devices: &Devices,
    rng: &mut StdRng,
    case: &mut Case,
    (on_device, s): &(usize, Arc<CudaStream>),
    layout: Layout,
) {
    let on_device = *on_device;

    // backward: input dims of any kind (they are plain numbers), grad_output right or not.
    let fault = maybe_fault(
        devices,
        rng,
        &[
            Fault::Rank,
            Fault::EmptyDimension,
            Fault::Overflow,
            Fault::OutOfMemory,
            Fault::Shape,
            Fault::OtherDevice,
        ],
    );
    let input: Vec<usize> = match fault {
        Some(Fault::Rank) => loop {
            let dims = gen::any_dims(rng);
            if dims.len() != 3 && dims.len() != 4 {
                break dims;
            }
        },
        Some(Fault::Overflow) if rng.random_bool(0.5) => loop {
            // Input dims whose own element count overflows.
            let dims = gen::any_dims(rng);
            if oracle::shape_error(&dims) == Some(Kind::Overflow) {
                break dims;
            }
        },
        Some(Fault::OutOfMemory) => {
            let mut dims = gen::small_input(rng);
            let r = dims.len();
            dims[0] = dims[0].max(1);
            dims[r - 2] = 1 << 22;
            dims[r - 1] = 1 << 22;
            dims
        }
        _ => x_dims(rng, fault),
    };
    let size = match fault {
        Some(Fault::Overflow) => size_for(rng, fault),
        _ => gen::output_size(rng, 1.0),
    };
    let valid_input = oracle::shape_error(&input).is_none();
    let want_go = if valid_input {
        oracle::resolve(&input, size)
    } else {
        gen::small_input(rng)
    };
    let go_dims = near_dims(rng, &want_go, fault != Some(Fault::Shape));
    let go_on = stream_for(devices, rng, on_device, fault == Some(Fault::OtherDevice));
    let go_n = oracle::numel(&go_dims).expect("small");
    let go = upload(go_on, gen::data::<T>(rng, go_n), &go_dims, layout);
    let mut v = Violations::default();
    match oracle::shape_error(&input) {
        Some(k) => v.add(k, true),
        None => backward_shape_violations(&mut v, &go_dims, &input, size),
    }
    v.add(Kind::ContextMismatch, go.device != on_device);
    let call = !v.is_empty()
        || allocation_fails::<T>(&input)
            .inspect(|&fails| v.add(Kind::Cuda, fails))
            .is_some();
    let pool = AdaptiveAvgPool2d::new(size).with_backward_algorithm(if rng.random_bool(0.5) {
        BackwardAlgorithm::Deterministic
    } else {
        BackwardAlgorithm::Atomic
    });
    if call {
        case.call("AdaptiveAvgPool2d::backward", || {
            format!(
                "{pool} {:?}, {go_dims:?} {layout:?} dev {} -> {input:?}, on dev {on_device}",
                pool.backward_algorithm(),
                go.device
            )
        });
        let got = pool.backward(s, &go.tensor, &input);
        case.outcome("AdaptiveAvgPool2d::backward", &got);
        v.check("AdaptiveAvgPool2d::backward", &got);
        if let Ok(gi) = got {
            assert_eq!(gi.dims(), &input[..]);
            assert_eq!(gi.layout(), layout);
            check_backward(
                &go,
                &go_dims,
                &input,
                layout,
                &gi.to_host(s).expect("download"),
            );
        }
    }

    // backward_into: grad_input of the right or another shape, layout, device.
    let fault = maybe_fault(
        devices,
        rng,
        &[
            Fault::EmptyDimension,
            Fault::Overflow,
            Fault::Shape,
            Fault::Layout,
            Fault::OtherDevice,
        ],
    );
    let gi_dims = x_dims(rng, fault);
    let size = size_for(rng, fault);
    let want_go = oracle::resolve(&gi_dims, size);
    let right_go = fault != Some(Fault::Shape) || rng.random_bool(0.5);
    let go_dims = near_dims(rng, &want_go, right_go);
    let gi_dims = if right_go {
        gi_dims
    } else {
        near_dims(rng, &gi_dims, false)
    };
    let other = fault == Some(Fault::OtherDevice);
    let go_other = other && rng.random_bool(0.5);
    let go_on = stream_for(devices, rng, on_device, go_other);
    let go_n = oracle::numel(&go_dims).expect("small");
    let go = upload(go_on, gen::data::<T>(rng, go_n), &go_dims, layout);
    let gi_layout = if fault == Some(Fault::Layout) {
        other_layout(rng, layout, 0.0)
    } else {
        layout
    };
    let gi_on = stream_for(devices, rng, on_device, other && !go_other);
    let gi_n = oracle::numel(&gi_dims).expect("fits");
    let mut gi = upload(gi_on, poison::<T>(gi_n), &gi_dims, gi_layout);
    let mut v = Violations::default();
    backward_shape_violations(&mut v, &go_dims, &gi_dims, size);
    v.add(Kind::LayoutMismatch, gi_layout != layout);
    v.add(
        Kind::ContextMismatch,
        go.device != on_device || gi.device != on_device,
    );
    case.call("AdaptiveAvgPool2d::backward_into", || {
        format!(
            "{pool} {:?}, {go_dims:?} {layout:?} dev {} -> {gi_dims:?} {gi_layout:?} dev {}, on \
             dev {on_device}",
            pool.backward_algorithm(),
            go.device,
            gi.device
        )
    });
    let pool = AdaptiveAvgPool2d::new(size).with_backward_algorithm(pool.backward_algorithm());
    let got = pool.backward_into(s, &go.tensor, &mut gi.tensor);
    case.outcome("AdaptiveAvgPool2d::backward_into", &got);
    v.check("AdaptiveAvgPool2d::backward_into", &got);
    let after = gi.tensor.to_host(&gi_on.1).expect("download");
    if got.is_ok() {
        check_backward(&go, &go_dims, &gi_dims, layout, &after);
    } else {
        oracle::assert_same("a refused backward_into's grad_input", &after, &gi.host);
    }
}

/// A backward's result `got` against the reference of `go`.
fn check_backward<T: Element>(
    go: &Made<T>,
    go_dims: &[usize],
    input: &[usize],
    layout: Layout,
    got: &[T],
) {
    let (go_shape, in_shape) = (
        Shape::new(go_dims).expect("go"),
        Shape::new(input).expect("in"),
    );
    let want = reference::backward(&go.host, &go_shape, &in_shape, layout).expect("reference");
    let scale = backward_scale(&go.host, &go_shape, &in_shape, layout);
    assert_close(
        "backward",
        got,
        &want,
        &scale,
        kernel_vs_reference(T::DTYPE),
    );
}
