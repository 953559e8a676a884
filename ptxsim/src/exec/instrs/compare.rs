//! Comparison and selection: `setp` (integer and float, with a combining predicate) and
//! `selp`.

use crate::fp;
use crate::ir::{BoolOp, Cmp, Slot, Ty};

fn cmp_f(cmp: Cmp, a: f64, b: f64) -> bool {
    let un = a.is_nan() || b.is_nan();
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => !un && a != b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        Cmp::Equ => un || a == b,
        Cmp::Neu => un || a != b,
        Cmp::Ltu => un || a < b,
        Cmp::Leu => un || a <= b,
        Cmp::Gtu => un || a > b,
        Cmp::Geu => un || a >= b,
        Cmp::Num => !un,
        Cmp::Nan => un,
    }
}

#[inline(always)]
fn cmp_i<T: PartialOrd>(cmp: Cmp, a: T, b: T) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        _ => false,
    }
}

fn float_of(bits: u64, ty: Ty) -> f64 {
    match ty.fmt() {
        Some(f) => fp::to_f64(bits, f),
        None => 0.0,
    }
}

/// `setp.cmp.ty p|q, a, b{, .bop c}`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn setp(
    r: &mut [u64],
    cmp: Cmp,
    ty: Ty,
    p: Slot,
    q: Option<Slot>,
    a: Slot,
    b: Slot,
    comb: Option<(BoolOp, Slot, bool)>,
) {
    let x = r[a as usize];
    let y = r[b as usize];
    let v = match ty {
        Ty::F32 => cmp_f(
            cmp,
            f32::from_bits(x as u32) as f64,
            f32::from_bits(y as u32) as f64,
        ),
        Ty::F64 => cmp_f(cmp, f64::from_bits(x), f64::from_bits(y)),
        Ty::F16 | Ty::BF16 => cmp_f(cmp, float_of(x, ty), float_of(y, ty)),
        Ty::S(_) => {
            let it = ty.int();
            cmp_i(cmp, it.norm(x) as i64, it.norm(y) as i64)
        }
        _ => {
            let it = ty.int();
            cmp_i(cmp, it.norm(x), it.norm(y))
        }
    };
    let f = |t: bool| match comb {
        None => t,
        Some((bo, c, neg)) => {
            let cv = (r[c as usize] != 0) != neg;
            match bo {
                BoolOp::And => t && cv,
                BoolOp::Or => t || cv,
                BoolOp::Xor => t != cv,
            }
        }
    };
    let (pv, qv) = (f(v), f(!v));
    r[p as usize] = pv as u64;
    if let Some(q) = q {
        r[q as usize] = qv as u64;
    }
}

/// `selp d, a, b, p`.
#[inline(always)]
pub(super) fn selp(r: &mut [u64], d: Slot, a: Slot, b: Slot, p: Slot, pneg: bool) {
    r[d as usize] = if (r[p as usize] != 0) != pneg {
        r[a as usize]
    } else {
        r[b as usize]
    };
}
