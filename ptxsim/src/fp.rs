//! Exact floating-point rounding helpers.
//!
//! Conversions with directed rounding (`.rz`, `.rm`, `.rp`) and conversions to
//! `f16`/`bf16` are done by one integer-arithmetic routine, [`round_to`],
//! that rounds an exact value `(-1)^neg * mant * 2^exp` to any binary format.
//! Nothing here relies on the host's floating-point rounding mode.

/// A rounding mode for a floating-point result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rnd {
    /// Round to nearest, ties to even.
    N,
    /// Round toward zero.
    Z,
    /// Round toward minus infinity.
    M,
    /// Round toward plus infinity.
    P,
}

/// A binary floating-point format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fmt {
    exp_bits: u32,
    frac_bits: u32,
}

pub(crate) const F16: Fmt = Fmt {
    exp_bits: 5,
    frac_bits: 10,
};
pub(crate) const BF16: Fmt = Fmt {
    exp_bits: 8,
    frac_bits: 7,
};
pub(crate) const F32: Fmt = Fmt {
    exp_bits: 8,
    frac_bits: 23,
};
pub(crate) const F64: Fmt = Fmt {
    exp_bits: 11,
    frac_bits: 52,
};

impl Fmt {
    fn sign_bit(self) -> u64 {
        1u64 << (self.exp_bits + self.frac_bits)
    }
    /// Bits of +infinity.
    pub(crate) fn inf(self) -> u64 {
        ((1u64 << self.exp_bits) - 1) << self.frac_bits
    }
    /// Bits of the largest finite value.
    fn max_finite(self) -> u64 {
        self.inf() - 1
    }
    /// The canonical NaN (all exponent and fraction bits set, sign clear).
    pub(crate) fn nan(self) -> u64 {
        self.inf() | ((1u64 << self.frac_bits) - 1)
    }
    /// Whether `bits` encodes a NaN in this format.
    pub(crate) fn is_nan(self, bits: u64) -> bool {
        let mag = bits & (self.sign_bit() - 1);
        mag > self.inf()
    }
    /// Whether `bits` encodes a subnormal (nonzero, zero exponent).
    pub(crate) fn is_subnormal(self, bits: u64) -> bool {
        let mag = bits & (self.sign_bit() - 1);
        mag != 0 && mag < (1u64 << self.frac_bits)
    }
    /// Sign-preserving flush of subnormals to zero.
    pub(crate) fn ftz(self, bits: u64) -> u64 {
        if self.is_subnormal(bits) {
            bits & self.sign_bit()
        } else {
            bits
        }
    }
    /// Decomposes finite `bits` into `(neg, mant, exp)` with value `mant * 2^exp`.
    fn decompose(self, bits: u64) -> (bool, u128, i32) {
        let neg = bits & self.sign_bit() != 0;
        let e = ((bits >> self.frac_bits) & ((1u64 << self.exp_bits) - 1)) as i32;
        let f = bits & ((1u64 << self.frac_bits) - 1);
        let bias = (1i32 << (self.exp_bits - 1)) - 1;
        let shift = bias + self.frac_bits as i32;
        if e == 0 {
            (neg, f as u128, 1 - shift)
        } else {
            (neg, (f | (1u64 << self.frac_bits)) as u128, e - shift)
        }
    }
}

/// Rounds the exact value `(-1)^neg * mant * 2^exp` to `fmt` with mode `mode`.
pub(crate) fn round_to(neg: bool, mant: u128, exp: i32, mode: Rnd, fmt: Fmt) -> u64 {
    let sign = if neg { fmt.sign_bit() } else { 0 };
    if mant == 0 {
        return sign;
    }
    let p = fmt.frac_bits as i32 + 1;
    let bias = (1i32 << (fmt.exp_bits - 1)) - 1;
    let emin = 1 - bias;
    let n = 128 - mant.leading_zeros() as i32;
    let top = exp + n - 1; // exponent of the leading bit
    let mut q = if top >= emin {
        top - (p - 1)
    } else {
        emin - (p - 1)
    };
    let (mut m, half, sticky) = if exp >= q {
        (mant << (exp - q) as u32, false, false)
    } else {
        let s = q - exp;
        if s > 128 {
            (0u128, false, true)
        } else if s == 128 {
            (0u128, mant >> 127 != 0, mant & !(1u128 << 127) != 0)
        } else {
            let half = (mant >> (s - 1)) & 1 != 0;
            let sticky = mant & ((1u128 << (s - 1)) - 1) != 0;
            (mant >> s, half, sticky)
        }
    };
    let inexact = half || sticky;
    let up = match mode {
        Rnd::N => half && (sticky || m & 1 != 0),
        Rnd::Z => false,
        Rnd::M => neg && inexact,
        Rnd::P => !neg && inexact,
    };
    if up {
        m += 1;
        if m == 1u128 << p {
            m >>= 1;
            q += 1;
        }
    }
    if m == 0 {
        return sign;
    }
    let max_biased = (1i32 << fmt.exp_bits) - 1;
    if m >= 1u128 << (p - 1) {
        let biased = q + (p - 1) + bias;
        if biased >= max_biased {
            let to_inf = match mode {
                Rnd::N => true,
                Rnd::Z => false,
                Rnd::M => neg,
                Rnd::P => !neg,
            };
            return sign | if to_inf { fmt.inf() } else { fmt.max_finite() };
        }
        sign | ((biased as u64) << fmt.frac_bits) | (m as u64 & ((1u64 << fmt.frac_bits) - 1))
    } else {
        sign | m as u64
    }
}

/// Converts float bits between formats. NaN becomes the destination's
/// canonical NaN (sign kept when widening); infinities and zeros keep their sign.
pub(crate) fn convert(bits: u64, from: Fmt, to: Fmt, mode: Rnd) -> u64 {
    let neg = bits & from.sign_bit() != 0;
    let sign = if neg { to.sign_bit() } else { 0 };
    if from.is_nan(bits) {
        return to.nan();
    }
    if bits & (from.sign_bit() - 1) == from.inf() {
        return sign | to.inf();
    }
    let (neg, m, e) = from.decompose(bits);
    round_to(neg, m, e, mode, to)
}

/// Converts an integer (given as sign and magnitude) to float bits.
pub(crate) fn from_int(neg: bool, mag: u64, mode: Rnd, to: Fmt) -> u64 {
    round_to(neg, mag as u128, 0, mode, to)
}

/// Rounding used for float-to-integer and round-to-integral operations.
pub(crate) fn round_integral(x: f64, mode: Rnd) -> f64 {
    match mode {
        Rnd::N => x.round_ties_even(),
        Rnd::Z => x.trunc(),
        Rnd::M => x.floor(),
        Rnd::P => x.ceil(),
    }
}

/// Float (given as an exact `f64`) to integer of `bits` width, with PTX's
/// saturation: NaN gives 0, out-of-range values clamp to the type's range.
pub(crate) fn to_int(x: f64, mode: Rnd, bits: u32, signed: bool) -> u64 {
    if x.is_nan() {
        return 0;
    }
    let r = round_integral(x, mode);
    if signed {
        let lim = 2f64.powi(bits as i32 - 1);
        if r >= lim {
            (lim as i128 - 1) as u64
        } else if r < -lim {
            (-(lim as i128)) as u64
        } else {
            (r as i64) as u64
        }
    } else {
        let lim = 2f64.powi(bits as i32);
        if r >= lim {
            (lim as u128 - 1) as u64
        } else if r <= 0.0 {
            0
        } else {
            r as u64
        }
    }
}

/// Exact value of float bits in `fmt` (f16/bf16/f32/f64) as an `f64`.
pub(crate) fn to_f64(bits: u64, fmt: Fmt) -> f64 {
    if fmt == F64 {
        f64::from_bits(bits)
    } else if fmt == F32 {
        f32::from_bits(bits as u32) as f64
    } else if fmt == F16 {
        half::f16::from_bits(bits as u16).to_f64()
    } else {
        half::bf16::from_bits(bits as u16).to_f64()
    }
}

/// Rounds an `f64` to `fmt` (round to nearest even), NaN to canonical NaN.
pub(crate) fn from_f64(x: f64, fmt: Fmt, mode: Rnd) -> u64 {
    convert(x.to_bits(), F64, fmt, mode)
}

/// `a * b + c` for narrow formats (f16, bf16), rounded once to `fmt`.
///
/// The product of two narrow values is exact in `f64`; the sum is computed in
/// `f64` with round-to-odd (via an exact error term), which makes the final
/// rounding to the narrow format correct.
pub(crate) fn fma_narrow(a: f64, b: f64, c: f64, fmt: Fmt) -> u64 {
    let p = a * b; // exact: at most 2*11 significant bits
    let s = p + c;
    if !s.is_finite() {
        return from_f64(s, fmt, Rnd::N);
    }
    // Knuth's TwoSum: err is the exact rounding error of s.
    let bp = s - p;
    let err = (p - (s - bp)) + (c - bp);
    let mut s = s;
    if err != 0.0 && s.to_bits() & 1 == 0 {
        // Round to odd: move one ulp toward the exact value.
        let bits = s.to_bits();
        let toward_up = (err > 0.0) == (s >= 0.0);
        s = f64::from_bits(if toward_up { bits + 1 } else { bits - 1 });
    }
    from_f64(s, fmt, Rnd::N)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_matches_half() {
        for bits in (0u32..=0xffff_ffff).step_by(9973) {
            let x = f32::from_bits(bits);
            if x.is_nan() {
                continue;
            }
            let ours = convert(bits as u64, F32, F16, Rnd::N) as u16;
            assert_eq!(ours, half::f16::from_f32(x).to_bits(), "{x:e}");
            let ours = convert(bits as u64, F32, BF16, Rnd::N) as u16;
            assert_eq!(ours, half::bf16::from_f32(x).to_bits(), "{x:e}");
        }
    }

    #[test]
    fn f64_to_f32_matches_as() {
        for i in 0..200_000u64 {
            let bits = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let x = f64::from_bits(bits);
            if x.is_nan() {
                continue;
            }
            assert_eq!(
                convert(bits, F64, F32, Rnd::N) as u32,
                (x as f32).to_bits(),
                "{x:e}"
            );
            let z = convert(bits, F64, F32, Rnd::Z) as u32;
            let zf = f32::from_bits(z) as f64;
            assert!(zf.abs() <= x.abs());
            let m = f32::from_bits(convert(bits, F64, F32, Rnd::M) as u32) as f64;
            let pp = f32::from_bits(convert(bits, F64, F32, Rnd::P) as u32) as f64;
            assert!(m <= x && x <= pp, "{x:e} {m:e} {pp:e}");
        }
    }

    #[test]
    fn int_to_float() {
        assert_eq!(
            from_int(false, u64::MAX, Rnd::N, F32) as u32,
            (u64::MAX as f32).to_bits()
        );
        assert_eq!(
            from_int(false, 16_777_217, Rnd::Z, F32) as u32,
            16_777_216f32.to_bits()
        );
        assert_eq!(
            from_int(false, 16_777_217, Rnd::P, F32) as u32,
            16_777_218f32.to_bits()
        );
        assert_eq!(
            from_int(true, 16_777_217, Rnd::M, F32) as u32,
            (-16_777_218f32).to_bits()
        );
        assert_eq!(from_int(false, 65520, Rnd::N, F16), 0x7c00);
        assert_eq!(from_int(false, 65520, Rnd::Z, F16), 0x7bff);
    }

    #[test]
    fn fma_narrow_is_exact() {
        // 1 + 2^-11 is a tie in f16; adding a tiny product must round up.
        let t = 2f64.powi(-30);
        let r = fma_narrow(t, 1.0, 1.0 + 2f64.powi(-11), F16);
        assert_eq!(r, 0x3c01);
        let r = fma_narrow(0.0, 1.0, 1.0 + 2f64.powi(-11), F16);
        assert_eq!(r, 0x3c00);
    }
}
