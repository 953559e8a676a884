//! Integer arithmetic and bit manipulation: `mov`, `not`, `neg`, `abs`, `popc`, `clz`,
//! `brev`, `add`..`shr`, `mul.wide`/`mad.wide`, `mad.lo/hi`, add/sub with carry, `bfe`, `bfi`,
//! `prmt`, and packing/unpacking `mov`s. Every result is normalised to its type (wrapping).

use crate::ir::{IOp, IUn, IntTy, Slot};
use crate::parse::SLOT_CC;

#[inline(always)]
pub(super) fn unary(r: &mut [u64], op: IUn, ty: IntTy, d: Slot, a: Slot) {
    let x = r[a as usize];
    r[d as usize] = match op {
        IUn::Mov => ty.norm(x),
        IUn::Not => ty.norm(!x),
        IUn::CNot => (ty.norm(x) == 0) as u64,
        IUn::Neg => ty.norm(x.wrapping_neg()),
        IUn::Abs => ty.norm((ty.norm(x) as i64).wrapping_abs() as u64),
        IUn::Popc => (x & ty.mask()).count_ones() as u64,
        IUn::Clz => ((x & ty.mask()).leading_zeros() - (64 - ty.bits as u32)) as u64,
        IUn::Brev => (x & ty.mask()).reverse_bits() >> (64 - ty.bits as u32),
    };
}

#[inline(always)]
pub(super) fn binary(r: &mut [u64], op: IOp, ty: IntTy, d: Slot, a: Slot, b: Slot) {
    let x = r[a as usize];
    let y = r[b as usize];
    r[d as usize] = match op {
        IOp::Add => ty.norm(x.wrapping_add(y)),
        IOp::Sub => ty.norm(x.wrapping_sub(y)),
        IOp::MulLo => ty.norm(x.wrapping_mul(y)),
        IOp::And => ty.norm(x & y),
        IOp::Or => ty.norm(x | y),
        IOp::Xor => ty.norm(x ^ y),
        IOp::Shl => {
            let s = y & 0xffff_ffff;
            if s >= ty.bits as u64 {
                0
            } else {
                ty.norm(x << s)
            }
        }
        IOp::Shr => {
            let s = y & 0xffff_ffff;
            let x = ty.norm(x);
            if ty.signed {
                ((x as i64) >> s.min(63)) as u64
            } else if s >= ty.bits as u64 {
                0
            } else {
                x >> s
            }
        }
        IOp::MulHi => {
            let (x, y) = (ty.norm(x), ty.norm(y));
            ty.norm((mul_full(ty, x, y) >> ty.bits) as u64)
        }
        IOp::Div | IOp::Rem => {
            let (x, y) = (ty.norm(x), ty.norm(y));
            let q = if y == 0 {
                if op == IOp::Div {
                    u64::MAX
                } else {
                    x
                }
            } else if ty.signed {
                let (x, y) = (x as i64, y as i64);
                if op == IOp::Div {
                    x.wrapping_div(y) as u64
                } else {
                    x.wrapping_rem(y) as u64
                }
            } else if op == IOp::Div {
                x / y
            } else {
                x % y
            };
            ty.norm(q)
        }
        IOp::Min | IOp::Max => {
            let (x, y) = (ty.norm(x), ty.norm(y));
            let lt = if ty.signed {
                (x as i64) < (y as i64)
            } else {
                x < y
            };
            if lt == (op == IOp::Min) {
                x
            } else {
                y
            }
        }
    };
}

/// The full product of two normalised values of type `ty`.
#[inline(always)]
fn mul_full(ty: IntTy, x: u64, y: u64) -> u128 {
    if ty.signed {
        ((x as i64 as i128) * (y as i64 as i128)) as u128
    } else {
        (x as u128) * (y as u128)
    }
}

/// `mul.wide` / `mad.wide` (`c` is `None` for `mul`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn wide(
    r: &mut [u64],
    signed: bool,
    bits: u8,
    d: Slot,
    a: Slot,
    b: Slot,
    c: Option<Slot>,
) {
    let ity = IntTy { bits, signed };
    let x = ity.norm(r[a as usize]);
    let y = ity.norm(r[b as usize]);
    let p = x.wrapping_mul(y);
    let p = match c {
        Some(c) => p.wrapping_add(r[c as usize]),
        None => p,
    };
    r[d as usize] = IntTy {
        bits: bits * 2,
        signed,
    }
    .norm(p);
}

/// `mad.lo` / `mad.hi`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn mad(r: &mut [u64], hi: bool, ty: IntTy, d: Slot, a: Slot, b: Slot, c: Slot) {
    let (x, y) = (ty.norm(r[a as usize]), ty.norm(r[b as usize]));
    let p = if hi {
        (mul_full(ty, x, y) >> ty.bits) as u64
    } else {
        x.wrapping_mul(y)
    };
    r[d as usize] = ty.norm(p.wrapping_add(r[c as usize]));
}

/// `add.cc`/`addc`/`sub.cc`/`subc`: the carry (borrow for `sub`) lives in the CC slot.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn add_carry(
    r: &mut [u64],
    sub: bool,
    cin: bool,
    cout: bool,
    bits: u8,
    d: Slot,
    a: Slot,
    b: Slot,
) {
    let m = IntTy {
        bits,
        signed: false,
    };
    let x = m.norm(r[a as usize]) as u128;
    let y = m.norm(r[b as usize]) as u128;
    let cf = if cin {
        r[SLOT_CC as usize] as u128 & 1
    } else {
        0
    };
    let full = if sub {
        x.wrapping_sub(y).wrapping_sub(cf)
    } else {
        x + y + cf
    };
    r[d as usize] = m.norm(full as u64);
    if cout {
        r[SLOT_CC as usize] = ((full >> bits) & 1) as u64;
    }
}

/// `bfe`: extract `len` bits at `pos`, sign-extended for signed types.
#[inline]
pub(super) fn bfe(r: &mut [u64], ty: IntTy, d: Slot, a: Slot, b: Slot, c: Slot) {
    let x = ty.norm(r[a as usize]);
    let pos = (r[b as usize] & 0xff) as u32;
    let len = (r[c as usize] & 0xff) as u32;
    let w = ty.bits as u32;
    let sbit = ty.signed && len != 0 && (x >> (pos + len - 1).min(w - 1)) & 1 != 0;
    let mut out = 0u64;
    for i in 0..w {
        let bit = if i < len && pos + i < w {
            (x >> (pos + i)) & 1 != 0
        } else {
            sbit
        };
        out |= (bit as u64) << i;
    }
    r[d as usize] = ty.norm(out);
}

/// `bfi`: insert the low `len` bits of `f` into `a` at `pos`.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn bfi(r: &mut [u64], bits: u8, d: Slot, f: Slot, a: Slot, b: Slot, c: Slot) {
    let fv = r[f as usize];
    let mut out = r[a as usize];
    let pos = (r[b as usize] & 0xff) as u32;
    let len = (r[c as usize] & 0xff) as u32;
    for i in 0..len {
        if pos + i >= bits as u32 {
            break;
        }
        let bit = (fv >> i) & 1;
        out = (out & !(1 << (pos + i))) | (bit << (pos + i));
    }
    r[d as usize] = IntTy {
        bits,
        signed: false,
    }
    .norm(out);
}

/// `prmt.b32` (default mode): pick 4 bytes of `{b, a}` by the nibbles of `c`, optionally
/// replicating the sign bit.
#[inline]
pub(super) fn prmt(r: &mut [u64], d: Slot, a: Slot, b: Slot, c: Slot) {
    let bytes = (r[b as usize] << 32) | (r[a as usize] & 0xffff_ffff);
    let sel_all = r[c as usize];
    let mut out = 0u64;
    for i in 0..4 {
        let sel = (sel_all >> (4 * i)) & 0xf;
        let byte = (bytes >> (8 * (sel & 7))) & 0xff;
        let byte = if sel & 8 == 0 {
            byte
        } else if byte & 0x80 != 0 {
            0xff
        } else {
            0
        };
        out |= byte << (8 * i);
    }
    r[d as usize] = out;
}

/// Packs `n` elements of `bits` width into `d` (`mov.b32 %r, {%h1, %h2}`).
#[inline]
pub(super) fn pack(r: &mut [u64], bits: u8, n: u8, d: Slot, src: [Slot; 4]) {
    let m = IntTy {
        bits,
        signed: false,
    };
    let mut v = 0u64;
    for (i, &s) in src.iter().enumerate().take(n as usize) {
        v |= m.norm(r[s as usize]) << (bits as u32 * i as u32);
    }
    r[d as usize] = v;
}

/// Unpacks `a` into `n` elements of `bits` width.
#[inline]
pub(super) fn unpack(r: &mut [u64], bits: u8, n: u8, dst: [Slot; 4], a: Slot) {
    let m = IntTy {
        bits,
        signed: false,
    };
    let v = r[a as usize];
    for (i, &s) in dst.iter().enumerate().take(n as usize) {
        r[s as usize] = m.norm(v >> (bits as u32 * i as u32));
    }
}
