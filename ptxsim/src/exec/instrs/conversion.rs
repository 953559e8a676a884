//! Conversions: `cvt` between integer and float types of every width (saturation, `.ftz`,
//! integer rounding of floats, directed rounding done exactly), and `cvta` between the
//! shared window and generic addresses.

use super::float::ftz32;
use crate::fp::{self, Rnd};
use crate::ir::{Cvta, Slot, Ty};
use crate::parse::SHARED_WINDOW;
/// `cvt.dst.src` of the value `a`.
pub(super) fn cvt(
    dst: Ty,
    src: Ty,
    rnd: Option<Rnd>,
    int_rnd: bool,
    sat: bool,
    ftz: bool,
    a: u64,
) -> u64 {
    let mode = rnd.unwrap_or(Rnd::N);
    let a = if ftz && src == Ty::F32 {
        ftz32(a as u32) as u64
    } else {
        a
    };
    let out = match (dst.fmt(), src.fmt()) {
        (None, None) => {
            let v = src.int().norm(a);
            if sat {
                let d = dst.int();
                let (lo, hi): (i128, i128) = if d.signed {
                    (-(1i128 << (d.bits - 1)), (1i128 << (d.bits - 1)) - 1)
                } else {
                    (0, (1i128 << d.bits) - 1)
                };
                let x = if src.int().signed {
                    v as i64 as i128
                } else {
                    v as i128
                };
                x.clamp(lo, hi) as u64
            } else {
                v
            }
        }
        (Some(df), None) => {
            let v = src.int().norm(a);
            let (neg, mag) = if src.int().signed && (v as i64) < 0 {
                (true, (v as i64).unsigned_abs())
            } else {
                (false, v)
            };
            fp::from_int(neg, mag, mode, df)
        }
        (None, Some(sf)) => {
            let d = dst.int();
            fp::to_int(fp::to_f64(a, sf), mode, d.bits as u32, d.signed)
        }
        (Some(df), Some(sf)) => {
            if int_rnd {
                let x = fp::to_f64(a, sf);
                if x.is_nan() {
                    df.nan()
                } else {
                    fp::from_f64(fp::round_integral(x, mode), df, Rnd::N)
                }
            } else {
                fp::convert(a, sf, df, mode)
            }
        }
    };
    let mut out = dst.int().norm(out);
    if let Some(df) = dst.fmt() {
        if ftz && dst == Ty::F32 {
            out = ftz32(out as u32) as u64;
        }
        if sat {
            let v = fp::to_f64(out, df);
            if v.is_nan() || v <= 0.0 {
                out = 0;
            } else if v >= 1.0 {
                out = fp::from_f64(1.0, df, Rnd::N);
            }
        }
    }
    out
}

/// `cvta`: generic addresses equal global ones; shared addresses map to a high window.
#[inline]
pub(super) fn cvta(r: &mut [u64], kind: Cvta, d: Slot, a: Slot) -> Result<(), String> {
    let x = r[a as usize];
    r[d as usize] = match kind {
        Cvta::Identity => x,
        Cvta::SharedToGeneric => x.wrapping_add(SHARED_WINDOW),
        Cvta::GenericToShared => x.wrapping_sub(SHARED_WINDOW),
        Cvta::LocalToGeneric | Cvta::GenericToLocal => {
            return Err("local memory is not supported".into())
        }
    };
    Ok(())
}
