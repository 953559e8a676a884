//! Helpers shared by the hand-written PTX tests.
#![allow(dead_code)]

use ptxsim::{BlockOrder, LaunchConfig, LaunchStats, Memory, Module, ParamValue, SimError};

/// Standard header plus a kernel `k(.param .u64 out, .param .u64 inp)` with
/// plenty of registers; `%rd0` = out, `%rd1` = inp (global addresses).
pub fn kernel(body: &str) -> String {
    kernel_for("sm_75", body)
}

/// Like [`kernel`] for another `.target` (bf16 arithmetic needs sm_80/sm_90).
pub fn kernel_for(target: &str, body: &str) -> String {
    let src = format!(
        r#".version 9.0
.target {target}
.address_size 64

.visible .entry k(
    .param .u64 k_out,
    .param .u64 k_inp
)
{{
    .reg .pred %p<16>;
    .reg .b16 %h<16>;
    .reg .b32 %r<64>;
    .reg .f32 %f<32>;
    .reg .b64 %rd<32>;
    .reg .f64 %fd<16>;

    ld.param.u64 %rd0, [k_out];
    ld.param.u64 %rd1, [k_inp];
    cvta.to.global.u64 %rd0, %rd0;
    cvta.to.global.u64 %rd1, %rd1;
{body}
    ret;
}}
"#
    );
    dump(&src);
    src
}

/// With `PTXSIM_DUMP_DIR` set, writes the PTX there (to check it with ptxas).
pub fn dump(src: &str) {
    if let Ok(dir) = std::env::var("PTXSIM_DUMP_DIR") {
        let mut h = 0u64;
        for b in src.bytes() {
            h = h.wrapping_mul(131).wrapping_add(b as u64);
        }
        let _ = std::fs::write(format!("{dir}/{h:016x}.ptx"), src);
    }
}

pub fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: 0,
        block_order: BlockOrder::Forward,
    }
}

/// Runs `k` from [`kernel`] with `input` bytes; returns the 4096-byte output.
pub fn try_run(
    body: &str,
    c: &LaunchConfig,
    input: &[u8],
) -> Result<(Vec<u8>, LaunchStats), SimError> {
    try_run_src(&kernel(body), c, input)
}

/// Runs kernel `k` of `src` (declared like [`kernel`]'s) with `input` bytes.
pub fn try_run_src(
    src: &str,
    c: &LaunchConfig,
    input: &[u8],
) -> Result<(Vec<u8>, LaunchStats), SimError> {
    let m = Module::parse(src)?;
    let mut mem = Memory::new();
    let out = mem.alloc(4096);
    let inp = mem.alloc(input.len().max(16));
    mem.write(inp, input)?;
    let st = m.launch(
        "k",
        c,
        &[ParamValue::U64(out), ParamValue::U64(inp)],
        &mut mem,
    )?;
    Ok((mem.read(out, 4096)?, st))
}

pub fn run(body: &str, threads: u32, input: &[u8]) -> Vec<u8> {
    match try_run(body, &cfg(1, threads), input) {
        Ok((o, _)) => o,
        Err(e) => panic!("{e}"),
    }
}

pub fn run_for(target: &str, body: &str, threads: u32, input: &[u8]) -> Vec<u8> {
    match try_run_src(&kernel_for(target, body), &cfg(1, threads), input) {
        Ok((o, _)) => o,
        Err(e) => panic!("{e}"),
    }
}

pub fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn u16_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
