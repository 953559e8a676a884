//! Runs kernels compiled by NVRTC 13.0 (fixtures in `tests/ptx/`, generated from
//! `tests/ptx/pool_kernels.cu` for compute_75/80/90) and checks their results
//! against host reference computations, bit for bit.

use half::{bf16, f16};
use ptxsim::{BlockOrder, LaunchConfig, Memory, Module, ParamValue, SimError};

const ARCHES: [(&str, &str); 3] = [
    ("sm75", include_str!("ptx/pool_kernels.sm75.ptx")),
    ("sm80", include_str!("ptx/pool_kernels.sm80.ptx")),
    ("sm90", include_str!("ptx/pool_kernels.sm90.ptx")),
];

fn cfg(grid: u32, block: u32, order: BlockOrder) -> LaunchConfig {
    LaunchConfig {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: 0,
        block_order: order,
    }
}

fn upload<T: Copy>(mem: &mut Memory, data: &[T], to_bytes: impl Fn(T) -> Vec<u8>) -> u64 {
    let bytes: Vec<u8> = data.iter().flat_map(|&x| to_bytes(x)).collect();
    let a = mem.alloc(bytes.len());
    mem.write(a, &bytes).unwrap();
    a
}

fn download<T>(
    mem: &Memory,
    addr: u64,
    n: usize,
    size: usize,
    from: impl Fn(&[u8]) -> T,
) -> Vec<T> {
    mem.read(addr, n * size)
        .unwrap()
        .chunks(size)
        .map(from)
        .collect()
}

fn start(a: i64, b: i64, c: i64) -> i64 {
    (a / b) * c + ((a % b) * c) / b
}
fn end(a: i64, b: i64, c: i64) -> i64 {
    1 + ((a + 1) * c - 1) / b
}

/// Host reference of the forward kernels: sum in the kernel's accumulator type `F` (`f32` or
/// `f64`, row-major order), divide by the count.
fn fwd_ref<F>(inp: &[F], nc: usize, ih: usize, iw: usize, oh: usize, ow: usize) -> Vec<F>
where
    F: Copy + Default + std::ops::AddAssign + std::ops::Div<Output = F> + From<u16>,
{
    let mut out = Vec::new();
    for p in 0..nc {
        for oy in 0..oh {
            for ox in 0..ow {
                let (y0, y1) = (
                    start(oy as i64, oh as i64, ih as i64),
                    end(oy as i64, oh as i64, ih as i64),
                );
                let (x0, x1) = (
                    start(ox as i64, ow as i64, iw as i64),
                    end(ox as i64, ow as i64, iw as i64),
                );
                let mut s = F::default();
                for y in y0..y1 {
                    for x in x0..x1 {
                        s += inp[(p * ih + y as usize) * iw + x as usize];
                    }
                }
                let area = u16::try_from((y1 - y0) * (x1 - x0)).expect("test windows are small");
                out.push(s / F::from(area));
            }
        }
    }
    out
}

fn pseudo(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn fwd_params(
    i: u64,
    o: u64,
    nc: usize,
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
) -> Vec<ParamValue> {
    vec![
        ParamValue::U64(i),
        ParamValue::U64(o),
        ParamValue::U64(nc as u64),
        ParamValue::U32(ih as u32),
        ParamValue::U32(iw as u32),
        ParamValue::U32(oh as u32),
        ParamValue::U32(ow as u32),
    ]
}

#[test]
fn forward_f32_grid_stride_average() {
    let (nc, ih, iw, oh, ow) = (3, 7, 9, 3, 4);
    let inp = pseudo(nc * ih * iw, 1);
    let want = fwd_ref(&inp, nc, ih, iw, oh, ow);
    for (arch, ptx) in ARCHES {
        let m = Module::parse(ptx).unwrap();
        for order in [
            BlockOrder::Forward,
            BlockOrder::Reverse,
            BlockOrder::Shuffled(7),
        ] {
            let mut mem = Memory::new();
            let i = upload(&mut mem, &inp, |x: f32| x.to_le_bytes().to_vec());
            let o = mem.alloc(want.len() * 4);
            // 2 blocks of 8 threads: fewer threads than outputs, so the loop strides
            let st = m
                .launch(
                    "fwd_f32",
                    &cfg(2, 8, order),
                    &fwd_params(i, o, nc, ih, iw, oh, ow),
                    &mut mem,
                )
                .unwrap();
            assert_eq!(st.blocks, 2);
            assert_eq!(st.threads, 16);
            assert!(st.instructions > 1000);
            let got = download(&mem, o, want.len(), 4, |b| {
                f32::from_le_bytes(b.try_into().unwrap())
            });
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.to_bits(), w.to_bits(), "{arch}");
            }
        }
    }
}

#[test]
fn forward_f16_bf16_f64() {
    let (nc, ih, iw, oh, ow) = (2, 5, 6, 4, 4);
    let raw = pseudo(nc * ih * iw, 9);
    let h: Vec<f16> = raw.iter().map(|&x| f16::from_f32(x)).collect();
    let b: Vec<bf16> = raw.iter().map(|&x| bf16::from_f32(x)).collect();
    let d: Vec<f64> = raw.iter().map(|&x| x as f64 * 1.1).collect();
    let want_h: Vec<f16> = fwd_ref(
        &h.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        nc,
        ih,
        iw,
        oh,
        ow,
    )
    .into_iter()
    .map(f16::from_f32)
    .collect();
    let want_b: Vec<bf16> = fwd_ref(
        &b.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        nc,
        ih,
        iw,
        oh,
        ow,
    )
    .into_iter()
    .map(bf16::from_f32)
    .collect();
    let want_d: Vec<f64> = fwd_ref(&d, nc, ih, iw, oh, ow);
    let n = nc * oh * ow;
    for (arch, ptx) in ARCHES {
        let m = Module::parse(ptx).unwrap();
        let mut mem = Memory::new();
        let ih_ = upload(&mut mem, &h, |x: f16| x.to_le_bytes().to_vec());
        let oh_ = mem.alloc(n * 2);
        m.launch(
            "fwd_f16",
            &cfg(1, 64, BlockOrder::Forward),
            &fwd_params(ih_, oh_, nc, ih, iw, oh, ow),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, oh_, n, 2, |b| f16::from_le_bytes([b[0], b[1]]));
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want_h.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{arch}"
        );

        let ib = upload(&mut mem, &b, |x: bf16| x.to_le_bytes().to_vec());
        let ob = mem.alloc(n * 2);
        m.launch(
            "fwd_bf16",
            &cfg(3, 5, BlockOrder::Shuffled(3)),
            &fwd_params(ib, ob, nc, ih, iw, oh, ow),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, ob, n, 2, |b| bf16::from_le_bytes([b[0], b[1]]));
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want_b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{arch}"
        );

        let id = upload(&mut mem, &d, |x: f64| x.to_le_bytes().to_vec());
        let od = mem.alloc(n * 8);
        m.launch(
            "fwd_f64",
            &cfg(2, 32, BlockOrder::Reverse),
            &fwd_params(id, od, nc, ih, iw, oh, ow),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, od, n, 8, |b| {
            f64::from_le_bytes(b.try_into().unwrap())
        });
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want_d.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{arch}"
        );
    }
}

fn atomic_params(g: u64, gi: u64, n: usize, ih: usize) -> Vec<ParamValue> {
    vec![
        ParamValue::U64(g),
        ParamValue::U64(gi),
        ParamValue::U32(n as u32),
        ParamValue::U32(ih as u32),
    ]
}

#[test]
fn atomic_adds_f16_bf16_f32_f64() {
    // 1024 threads add 1.0 into 4 slots: 256 each (exact in every type).
    let n = 1024;
    for (arch, ptx) in ARCHES {
        let m = Module::parse(ptx).unwrap();
        let mut mem = Memory::new();
        let g = upload(&mut mem, &vec![f16::ONE; n], |x: f16| {
            x.to_le_bytes().to_vec()
        });
        let gi = mem.alloc(8);
        m.launch(
            "bwd_atomic_f16",
            &cfg(4, 256, BlockOrder::Forward),
            &atomic_params(g, gi, n, 4),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, gi, 4, 2, |b| {
            f16::from_le_bytes([b[0], b[1]]).to_f32()
        });
        assert_eq!(got, vec![256.0; 4], "{arch} f16");

        let g = upload(&mut mem, &vec![bf16::ONE; n], |x: bf16| {
            x.to_le_bytes().to_vec()
        });
        let gi = mem.alloc(8);
        m.launch(
            "bwd_atomic_bf16",
            &cfg(4, 256, BlockOrder::Forward),
            &atomic_params(g, gi, n, 4),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, gi, 4, 2, |b| {
            bf16::from_le_bytes([b[0], b[1]]).to_f32()
        });
        assert_eq!(got, vec![256.0; 4], "{arch} bf16");

        let g = upload(&mut mem, &vec![1f32; n], |x: f32| x.to_le_bytes().to_vec());
        let gi = mem.alloc(4);
        m.launch(
            "bwd_atomic_f32",
            &cfg(4, 256, BlockOrder::Forward),
            &atomic_params(g, gi, n, 1),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, gi, 1, 4, |b| {
            f32::from_le_bytes(b.try_into().unwrap())
        });
        assert_eq!(got, vec![1024.0], "{arch} f32");

        let g = upload(&mut mem, &vec![0.5f64; n], |x: f64| {
            x.to_le_bytes().to_vec()
        });
        let gi = mem.alloc(16);
        m.launch(
            "bwd_atomic_f64",
            &cfg(8, 128, BlockOrder::Shuffled(1)),
            &atomic_params(g, gi, n, 2),
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, gi, 2, 8, |b| {
            f64::from_le_bytes(b.try_into().unwrap())
        });
        assert_eq!(got, vec![256.0; 2], "{arch} f64");
    }
}

#[test]
fn bf16_cas_loop() {
    // Every thread adds its value through an atom.global.cas.b16 loop.
    let n = 200;
    let vals: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    // Sequential reference in thread order (blocks forward, threads in order).
    let mut acc = bf16::ZERO;
    for &v in &vals {
        acc = bf16::from_f32(acc.to_f32() + v);
    }
    for (arch, ptx) in ARCHES {
        let m = Module::parse(ptx).unwrap();
        let mut mem = Memory::new();
        let g = upload(&mut mem, &vals, |x: f32| x.to_le_bytes().to_vec());
        let gi = mem.alloc(2);
        let params = [
            ParamValue::U64(g),
            ParamValue::U64(gi),
            ParamValue::U32(n as u32),
        ];
        m.launch(
            "bwd_cas_bf16",
            &cfg(4, 64, BlockOrder::Forward),
            &params,
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, gi, 1, 2, |b| bf16::from_le_bytes([b[0], b[1]]));
        assert_eq!(got[0].to_bits(), acc.to_bits(), "{arch}");
    }
}

#[test]
fn warp_shuffle_and_block_reductions() {
    let n = 300usize;
    let vals: Vec<f32> = (0..n).map(|i| (i % 13) as f32).collect();
    let total: f32 = vals.iter().sum();
    for (arch, ptx) in ARCHES {
        let m = Module::parse(ptx).unwrap();
        let mut mem = Memory::new();
        let inp = upload(&mut mem, &vals, |x: f32| x.to_le_bytes().to_vec());
        let out = mem.alloc(4);
        let params = [
            ParamValue::U64(inp),
            ParamValue::U64(out),
            ParamValue::U32(n as u32),
        ];
        m.launch(
            "warp_sum",
            &cfg(3, 128, BlockOrder::Shuffled(5)),
            &params,
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, out, 1, 4, |b| {
            f32::from_le_bytes(b.try_into().unwrap())
        });
        assert_eq!(got[0], total, "{arch} warp_sum");

        let out = mem.alloc(8);
        let params = [
            ParamValue::U64(inp),
            ParamValue::U64(out),
            ParamValue::U32(n as u32),
        ];
        m.launch(
            "block_sum",
            &cfg(2, 256, BlockOrder::Forward),
            &params,
            &mut mem,
        )
        .unwrap();
        let got = download(&mem, out, 2, 4, |b| {
            f32::from_le_bytes(b.try_into().unwrap())
        });
        assert_eq!(got[0], vals[..256].iter().sum::<f32>(), "{arch} block_sum");
        assert_eq!(got[1], vals[256..].iter().sum::<f32>(), "{arch} block_sum");

        let dv: Vec<f64> = vals.iter().map(|&x| x as f64).collect();
        let inp_d = upload(&mut mem, &dv, |x: f64| x.to_le_bytes().to_vec());
        let out = mem.alloc(5 * 8);
        let params = [
            ParamValue::U64(inp_d),
            ParamValue::U64(out),
            ParamValue::U32(n as u32),
        ];
        let mut c = cfg(5, 64, BlockOrder::Reverse);
        c.dynamic_shared_bytes = 64 * 8;
        m.launch("dyn_sum", &c, &params, &mut mem).unwrap();
        let got = download(&mem, out, 5, 8, |b| {
            f64::from_le_bytes(b.try_into().unwrap())
        });
        for (blk, g) in got.iter().enumerate() {
            let w: f64 = dv[blk * 64..((blk + 1) * 64).min(n)].iter().sum();
            assert_eq!(*g, w, "{arch} dyn_sum block {blk}");
        }
        // too little dynamic shared memory is caught
        c.dynamic_shared_bytes = 8;
        let e = m.launch("dyn_sum", &c, &params, &mut mem).unwrap_err();
        assert!(matches!(e, SimError::Fault { .. }), "{e}");
    }
}

#[test]
fn vector_loads_and_half2() {
    let n = 40usize;
    let v: Vec<f32> = (0..4 * n).map(|i| i as f32 + 0.5).collect();
    let h: Vec<f16> = (0..2 * n)
        .map(|i| f16::from_f32(i as f32 * 0.37 - 3.0))
        .collect();
    for (arch, ptx) in ARCHES {
        let m = Module::parse(ptx).unwrap();
        let mut mem = Memory::new();
        let i = upload(&mut mem, &v, |x: f32| x.to_le_bytes().to_vec());
        let o = mem.alloc(16 * n);
        let params = [
            ParamValue::U64(i),
            ParamValue::U64(o),
            ParamValue::U32(n as u32),
        ];
        m.launch("vec4", &cfg(2, 32, BlockOrder::Forward), &params, &mut mem)
            .unwrap();
        let got = download(&mem, o, 4 * n, 4, |b| {
            f32::from_le_bytes(b.try_into().unwrap())
        });
        for k in 0..n {
            let x = &v[4 * k..4 * k + 4];
            let want = [x[0] * 2.0, x[1] + 1.0, x[2].sqrt(), 1.0 / x[3]];
            assert_eq!(&got[4 * k..4 * k + 4], &want, "{arch} vec4");
        }
        let i = upload(&mut mem, &h, |x: f16| x.to_le_bytes().to_vec());
        let o = mem.alloc(4 * n);
        let params = [
            ParamValue::U64(i),
            ParamValue::U64(o),
            ParamValue::U32(n as u32),
        ];
        m.launch("h2", &cfg(1, 64, BlockOrder::Forward), &params, &mut mem)
            .unwrap();
        let got = download(&mem, o, 2 * n, 2, |b| f16::from_le_bytes([b[0], b[1]]));
        for (k, x) in h.iter().enumerate() {
            let sq = f16::from_f32(x.to_f32() * x.to_f32());
            let want = f16::from_f64(x.to_f64() + sq.to_f64());
            assert_eq!(got[k].to_bits(), want.to_bits(), "{arch} h2 {k}");
        }
    }
}
