//! Interpreter throughput: a grid-stride sum over a few million floats.
//!
//! Run with `cargo bench -p ptxsim`; prints, for the race detector off, on (the default) and
//! on under a preemptive schedule, the best of three runs as
//! `ptxsim throughput, <options>: N instructions in S s = X M instr/s`.

use std::time::Instant;

use ptxsim::{
    BlockOrder, LaunchConfig, LaunchOptions, Memory, Module, NoObserver, ParamValue, Schedule,
};

const PTX: &str = r#"
.version 9.0
.target sm_80
.address_size 64

.visible .entry gsum(
    .param .u64 p_in,
    .param .u64 p_out,
    .param .u32 p_n
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .f32 %f<4>;
    .reg .b64 %rd<6>;

    ld.param.u64 %rd1, [p_in];
    ld.param.u64 %rd2, [p_out];
    ld.param.u32 %r1, [p_n];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    mov.u32 %r6, %nctaid.x;
    mul.lo.s32 %r6, %r6, %r3;
    mov.f32 %f1, 0f00000000;
    setp.ge.s32 %p1, %r5, %r1;
    @%p1 bra $DONE;
$LOOP:
    mul.wide.s32 %rd3, %r5, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.nc.f32 %f2, [%rd4];
    add.f32 %f1, %f1, %f2;
    add.s32 %r5, %r5, %r6;
    setp.lt.s32 %p1, %r5, %r1;
    @%p1 bra $LOOP;
$DONE:
    cvta.to.global.u64 %rd2, %rd2;
    atom.global.add.f32 %f3, [%rd2], %f1;
    ret;
}
"#;

/// Best of `reps` runs of the launch with `options`: (instructions, seconds).
fn measure(
    module: &Module,
    mem: &mut Memory,
    cfg: &LaunchConfig,
    params: &[ParamValue],
    options: &LaunchOptions,
    reps: usize,
) -> (u64, f64) {
    let mut best = f64::INFINITY;
    let mut instructions = 0;
    for _ in 0..reps {
        let t0 = Instant::now();
        match module.launch_with("gsum", cfg, params, mem, options, &mut NoObserver) {
            Ok(s) => instructions = s.instructions,
            Err(e) => {
                eprintln!("launch failed: {e}");
                std::process::exit(1);
            }
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    (instructions, best)
}

fn main() {
    let n: usize = 4 << 20;
    let module = match Module::parse(PTX) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("parse failed: {e}");
            std::process::exit(1);
        }
    };
    let mut mem = Memory::new();
    let input = mem.alloc(n * 4);
    let data: Vec<u8> = (0..n)
        .flat_map(|i| ((i % 3) as f32).to_le_bytes())
        .collect();
    let out = mem.alloc(4);
    if let Err(e) = mem.write(input, &data) {
        eprintln!("write failed: {e}");
        std::process::exit(1);
    }
    let cfg = LaunchConfig {
        grid: [64, 1, 1],
        block: [256, 1, 1],
        dynamic_shared_bytes: 0,
        block_order: BlockOrder::Forward,
    };
    let params = [
        ParamValue::U64(input),
        ParamValue::U64(out),
        ParamValue::U32(n as u32),
    ];
    let plain = LaunchOptions {
        race_check: false,
        ..LaunchOptions::default()
    };
    let preemptive = LaunchOptions {
        schedule: Schedule::Preemptive {
            quantum: 4,
            seed: 1,
        },
        ..LaunchOptions::default()
    };
    for (name, options) in [
        ("race check off", plain),
        ("default (race check on)", LaunchOptions::default()),
        ("preemptive, quantum 4, race check on", preemptive),
    ] {
        let (instructions, secs) = measure(&module, &mut mem, &cfg, &params, &options, 3);
        println!(
            "ptxsim throughput, {name}: {instructions} instructions in {secs:.3} s = {:.1} M instr/s",
            instructions as f64 / secs / 1e6
        );
    }
}
