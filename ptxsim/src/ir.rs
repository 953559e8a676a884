//! The decoded instruction form executed by the interpreter.
//!
//! Every operand is a register *slot* index into a thread's `u64` register
//! file. Immediates, special registers (`%tid.x`, ...) and variable addresses
//! are also slots, preloaded before a thread starts, so the interpreter never
//! has to distinguish operand kinds at run time.

use crate::fp::{Fmt, Rnd};

/// A register slot index.
pub(crate) type Slot = u32;

/// An integer-like operand type: width in bits and signedness
/// (bit-size types are unsigned; predicates are 1-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntTy {
    pub bits: u8,
    pub signed: bool,
}

impl IntTy {
    /// Normalises a raw register value to this type: truncates to the width,
    /// then sign- or zero-extends to 64 bits.
    #[inline(always)]
    pub fn norm(self, v: u64) -> u64 {
        let sh = 64 - self.bits as u32;
        if self.signed {
            (((v << sh) as i64) >> sh) as u64
        } else {
            (v << sh) >> sh
        }
    }
    /// The all-ones value of the type's width.
    #[inline(always)]
    pub fn mask(self) -> u64 {
        u64::MAX >> (64 - self.bits as u32)
    }
}

/// Scalar types as written in PTX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Pred,
    B(u8),
    U(u8),
    S(u8),
    F16,
    F16x2,
    BF16,
    BF16x2,
    F32,
    F64,
}

impl Ty {
    pub fn from_suffix(s: &str) -> Option<Ty> {
        Some(match s {
            "pred" => Ty::Pred,
            "b8" => Ty::B(8),
            "b16" => Ty::B(16),
            "b32" => Ty::B(32),
            "b64" => Ty::B(64),
            "u8" => Ty::U(8),
            "u16" => Ty::U(16),
            "u32" => Ty::U(32),
            "u64" => Ty::U(64),
            "s8" => Ty::S(8),
            "s16" => Ty::S(16),
            "s32" => Ty::S(32),
            "s64" => Ty::S(64),
            "f16" => Ty::F16,
            "f16x2" => Ty::F16x2,
            "bf16" => Ty::BF16,
            "bf16x2" => Ty::BF16x2,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            _ => return None,
        })
    }
    /// Size in bits (predicates count as 1).
    pub fn bits(self) -> u32 {
        match self {
            Ty::Pred => 1,
            Ty::B(b) | Ty::U(b) | Ty::S(b) => b as u32,
            Ty::F16 | Ty::BF16 => 16,
            Ty::F16x2 | Ty::BF16x2 | Ty::F32 => 32,
            Ty::F64 => 64,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Ty::F16 | Ty::F16x2 | Ty::BF16 | Ty::BF16x2 | Ty::F32 | Ty::F64
        )
    }
    /// The integer view of the type (floats are viewed as their bit pattern).
    pub fn int(self) -> IntTy {
        match self {
            Ty::S(b) => IntTy {
                bits: b,
                signed: true,
            },
            _ => IntTy {
                bits: self.bits() as u8,
                signed: false,
            },
        }
    }
    /// The float format of a scalar float type.
    pub fn fmt(self) -> Option<Fmt> {
        match self {
            Ty::F16 => Some(crate::fp::F16),
            Ty::BF16 => Some(crate::fp::BF16),
            Ty::F32 => Some(crate::fp::F32),
            Ty::F64 => Some(crate::fp::F64),
            _ => None,
        }
    }
}

/// Binary integer operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IOp {
    Add,
    Sub,
    MulLo,
    MulHi,
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

/// Unary integer operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IUn {
    Not,
    CNot,
    Neg,
    Abs,
    Popc,
    Clz,
    Brev,
    Mov,
}

/// Float operations (binary and unary; `Fma` is ternary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    Fma,
    Sqrt,
    Rcp,
    Abs,
    Neg,
}

/// Comparison operators of `setp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// Predicate combining operators (`setp.*.and`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BoolOp {
    And,
    Or,
    Xor,
}

/// Memory state spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Generic,
    Global,
    Shared,
    Param,
    Local,
}

/// Atomic operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AOp {
    Add,
    Min,
    Max,
    Inc,
    Dec,
    And,
    Or,
    Xor,
    Exch,
    Cas,
}

/// `shfl.sync` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

/// `vote.sync` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

/// `cvta` directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cvta {
    /// generic -> global (identity) or global -> generic (identity)
    Identity,
    /// shared-window address -> generic
    SharedToGeneric,
    /// generic -> shared-window address
    GenericToShared,
    /// local address -> generic
    LocalToGeneric,
    /// generic -> local address
    GenericToLocal,
}

/// Half-precision flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HalfKind {
    F16,
    BF16,
}

/// One decoded operation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `d = norm(a)` and the other unary integer ops.
    IUn {
        op: IUn,
        ty: IntTy,
        d: Slot,
        a: Slot,
    },
    /// Binary integer op with result normalised to `ty`.
    IBin {
        op: IOp,
        ty: IntTy,
        d: Slot,
        a: Slot,
        b: Slot,
    },
    /// `mul.wide` / `mad.wide` (`c` is `None` for mul).
    Wide {
        signed: bool,
        bits: u8,
        d: Slot,
        a: Slot,
        b: Slot,
        c: Option<Slot>,
    },
    /// `mad.lo` / `mad.hi`.
    Mad {
        hi: bool,
        ty: IntTy,
        d: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    /// `add.cc`/`addc`/`sub.cc`/`subc` on 32/64-bit values (carry in `cc` slot).
    AddC {
        sub: bool,
        cin: bool,
        cout: bool,
        bits: u8,
        d: Slot,
        a: Slot,
        b: Slot,
    },
    Bfe {
        ty: IntTy,
        d: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    Bfi {
        bits: u8,
        d: Slot,
        f: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    Prmt {
        d: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    Setp {
        cmp: Cmp,
        ty: Ty,
        p: Slot,
        q: Option<Slot>,
        a: Slot,
        b: Slot,
        comb: Option<(BoolOp, Slot, bool)>,
    },
    Selp {
        d: Slot,
        a: Slot,
        b: Slot,
        p: Slot,
        pneg: bool,
    },
    /// Pack elements of `bits` width into `d` (`mov.b32 %r, {%h1,%h2}`).
    Pack {
        bits: u8,
        n: u8,
        d: Slot,
        src: [Slot; 4],
    },
    /// Unpack `a` into elements of `bits` width.
    Unpack {
        bits: u8,
        n: u8,
        dst: [Slot; 4],
        a: Slot,
    },
    F32 {
        op: FOp,
        ftz: bool,
        sat: bool,
        d: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    F64 {
        op: FOp,
        d: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    Half {
        op: FOp,
        kind: HalfKind,
        x2: bool,
        ftz: bool,
        sat: bool,
        d: Slot,
        a: Slot,
        b: Slot,
        c: Slot,
    },
    Cvt {
        dst: Ty,
        src: Ty,
        rnd: Option<Rnd>,
        int_rnd: bool,
        sat: bool,
        ftz: bool,
        d: Slot,
        a: Slot,
    },
    Cvta {
        kind: Cvta,
        d: Slot,
        a: Slot,
    },
    /// `ld`; `strong` for `.volatile`/`.relaxed`/`.acquire` (a memory-model strong access,
    /// which the race detector treats like an atomic).
    Ld {
        space: Space,
        size: u8,
        ty: IntTy,
        n: u8,
        dst: [Slot; 4],
        base: Option<Slot>,
        off: i64,
        strong: bool,
    },
    /// `st`; `strong` for `.volatile`/`.relaxed`/`.release`.
    St {
        space: Space,
        size: u8,
        n: u8,
        src: [Slot; 4],
        base: Option<Slot>,
        off: i64,
        strong: bool,
    },
    Atom {
        space: Space,
        op: AOp,
        ty: Ty,
        d: Option<Slot>,
        base: Option<Slot>,
        off: i64,
        b: Slot,
        c: Slot,
    },
    /// `bra`; `uni` when the PTX promises the branch does not diverge within a warp.
    Bra {
        target: u32,
        uni: bool,
    },
    /// A guarded `bra.uni` (`target: Some`) or `ret.uni`/`exit.uni` (`None`). The guard
    /// `pred` (negated if `neg`) is evaluated by the instruction itself, so that lanes that
    /// do not take the branch are checked for divergence too.
    BraUni {
        target: Option<u32>,
        pred: Slot,
        neg: bool,
    },
    /// `ret`/`exit`; `uni` as for [`Op::Bra`].
    Exit {
        uni: bool,
    },
    /// `bar.sync`/`barrier.sync`; `aligned` when every thread must reach the same instruction
    /// (`bar.sync` is `barrier.sync.aligned`).
    Bar {
        id: Slot,
        aligned: bool,
    },
    /// `bar.warp.sync mask`.
    WarpSync {
        mask: Slot,
    },
    Nop,
    Shfl {
        mode: ShflMode,
        d: Slot,
        p: Option<Slot>,
        a: Slot,
        b: Slot,
        c: Slot,
        mask: Slot,
    },
    Vote {
        mode: VoteMode,
        d: Slot,
        a: Slot,
        aneg: bool,
        mask: Slot,
    },
    Activemask {
        d: Slot,
    },
}

/// A decoded instruction with its optional guard predicate.
#[derive(Debug, Clone)]
pub(crate) struct Inst {
    /// Guard predicate slot and whether it is negated (`@!%p`).
    pub guard: Option<(Slot, bool)>,
    pub op: Op,
}

/// Source information for one instruction, used only in error messages.
#[derive(Debug, Clone)]
pub(crate) struct SrcInfo {
    pub line: u32,
    pub text: String,
}
