//! Floating-point arithmetic: f32, f64, and f16/bf16 (scalar and `x2`). IEEE
//! round-to-nearest-even; f32/f64 NaN results are canonical; `min`/`max` ignore a NaN operand;
//! `.ftz` flushes f32 subnormals; `.sat` clamps to [0, 1].

use crate::fp::{self, Fmt, Rnd};
use crate::ir::{FOp, HalfKind, Slot};

pub(super) const F32_NAN: u32 = 0x7fff_ffff;
const F64_NAN: u64 = 0x7fff_ffff_ffff_ffff;

/// Flushes an f32 subnormal to a zero of the same sign.
#[inline(always)]
pub(super) fn ftz32(x: u32) -> u32 {
    if x & 0x7f80_0000 == 0 {
        x & 0x8000_0000
    } else {
        x
    }
}

/// PTX `min`/`max` on floats: a NaN operand is ignored; -0 < +0.
#[inline]
fn fminmax64(a: f64, b: f64, max: bool) -> Option<f64> {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => None,
        (true, false) => Some(b),
        (false, true) => Some(a),
        _ => {
            let a_lt_b = a < b || (a == b && a.is_sign_negative() && !b.is_sign_negative());
            Some(if a_lt_b != max { a } else { b })
        }
    }
}

/// One f32 operation on bit patterns.
#[inline]
pub(crate) fn f32_op(op: FOp, ftz: bool, sat: bool, a: u32, b: u32, c: u32) -> u32 {
    let (a, b, c) = if ftz {
        (ftz32(a), ftz32(b), ftz32(c))
    } else {
        (a, b, c)
    };
    let fa = f32::from_bits(a);
    let fb = f32::from_bits(b);
    let r = match op {
        FOp::Add => fa + fb,
        FOp::Sub => fa - fb,
        FOp::Mul => fa * fb,
        FOp::Div => fa / fb,
        FOp::Fma => fa.mul_add(fb, f32::from_bits(c)),
        FOp::Sqrt => fa.sqrt(),
        FOp::Rcp => 1.0 / fa,
        FOp::Min | FOp::Max => match fminmax64(fa as f64, fb as f64, op == FOp::Max) {
            Some(v) => v as f32,
            None => f32::from_bits(F32_NAN),
        },
        FOp::Abs => f32::from_bits(a & 0x7fff_ffff),
        FOp::Neg => f32::from_bits(a ^ 0x8000_0000),
    };
    let mut bits = if r.is_nan() && !matches!(op, FOp::Abs | FOp::Neg) {
        F32_NAN
    } else {
        r.to_bits()
    };
    if ftz {
        bits = ftz32(bits);
    }
    if sat {
        let v = f32::from_bits(bits);
        bits = if v.is_nan() || v <= 0.0 {
            0
        } else if v >= 1.0 {
            1f32.to_bits()
        } else {
            bits
        };
    }
    bits
}

/// One f64 operation on bit patterns.
#[inline]
pub(crate) fn f64_op(op: FOp, a: u64, b: u64, c: u64) -> u64 {
    let fa = f64::from_bits(a);
    let fb = f64::from_bits(b);
    let r = match op {
        FOp::Add => fa + fb,
        FOp::Sub => fa - fb,
        FOp::Mul => fa * fb,
        FOp::Div => fa / fb,
        FOp::Fma => fa.mul_add(fb, f64::from_bits(c)),
        FOp::Sqrt => fa.sqrt(),
        FOp::Rcp => 1.0 / fa,
        FOp::Min | FOp::Max => match fminmax64(fa, fb, op == FOp::Max) {
            Some(v) => v,
            None => f64::from_bits(F64_NAN),
        },
        FOp::Abs => return a & !(1 << 63),
        FOp::Neg => return a ^ (1 << 63),
    };
    if r.is_nan() {
        F64_NAN
    } else {
        r.to_bits()
    }
}

/// One lane of a half-precision operation.
pub(crate) fn half_op(op: FOp, fmt: Fmt, ftz: bool, sat: bool, a: u64, b: u64, c: u64) -> u64 {
    let (a, b, c) = if ftz {
        (fmt.ftz(a), fmt.ftz(b), fmt.ftz(c))
    } else {
        (a, b, c)
    };
    let fa = fp::to_f64(a, fmt);
    let fb = fp::to_f64(b, fmt);
    let mut r = match op {
        FOp::Abs => return a & 0x7fff,
        FOp::Neg => return a ^ 0x8000,
        FOp::Add => fp::from_f64(fa + fb, fmt, Rnd::N),
        FOp::Sub => fp::from_f64(fa - fb, fmt, Rnd::N),
        FOp::Mul => fp::from_f64(fa * fb, fmt, Rnd::N),
        FOp::Fma => fp::fma_narrow(fa, fb, fp::to_f64(c, fmt), fmt),
        FOp::Min | FOp::Max => match fminmax64(fa, fb, op == FOp::Max) {
            Some(_) if fa.is_nan() => b,
            Some(_) if fb.is_nan() => a,
            Some(v) => {
                if v.to_bits() == fa.to_bits() {
                    a
                } else {
                    b
                }
            }
            None => fmt.nan(),
        },
        // rejected at decode time
        FOp::Div | FOp::Sqrt | FOp::Rcp => fmt.nan(),
    };
    if fmt.is_nan(r) {
        r = fmt.nan();
    }
    if ftz {
        r = fmt.ftz(r);
    }
    if sat {
        let v = fp::to_f64(r, fmt);
        if v.is_nan() || v <= 0.0 {
            r = 0;
        } else if v >= 1.0 {
            r = fp::from_f64(1.0, fmt, Rnd::N);
        }
    }
    r
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn f32(
    r: &mut [u64],
    op: FOp,
    ftz: bool,
    sat: bool,
    d: Slot,
    a: Slot,
    b: Slot,
    c: Slot,
) {
    r[d as usize] = f32_op(
        op,
        ftz,
        sat,
        r[a as usize] as u32,
        r[b as usize] as u32,
        r[c as usize] as u32,
    ) as u64;
}

#[inline(always)]
pub(super) fn f64(r: &mut [u64], op: FOp, d: Slot, a: Slot, b: Slot, c: Slot) {
    r[d as usize] = f64_op(op, r[a as usize], r[b as usize], r[c as usize]);
}

/// An f16/bf16 operation on one value, or on both halves of a 32-bit pair (`x2`).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn half(
    r: &mut [u64],
    op: FOp,
    kind: HalfKind,
    x2: bool,
    ftz: bool,
    sat: bool,
    d: Slot,
    a: Slot,
    b: Slot,
    c: Slot,
) {
    let fmt = match kind {
        HalfKind::F16 => fp::F16,
        HalfKind::BF16 => fp::BF16,
    };
    let (x, y, z) = (r[a as usize], r[b as usize], r[c as usize]);
    let lo = half_op(op, fmt, ftz, sat, x & 0xffff, y & 0xffff, z & 0xffff);
    r[d as usize] = if x2 {
        let hi = half_op(
            op,
            fmt,
            ftz,
            sat,
            (x >> 16) & 0xffff,
            (y >> 16) & 0xffff,
            (z >> 16) & 0xffff,
        );
        lo | (hi << 16)
    } else {
        lo
    };
}
