//! Parser and decoder: PTX text to [`Kernel`]s of decoded instructions.

use std::collections::HashMap;

use crate::fp::Rnd;
use crate::ir::*;
use crate::lex::{parse_num, tokenize, Imm, Tok, Token};
use crate::{ParamType, SimError};

/// Fixed slots present in every kernel's register file.
pub(crate) const SLOT_TID: Slot = 0; // 0..3
pub(crate) const SLOT_NTID: Slot = 3; // 3..6
pub(crate) const SLOT_CTAID: Slot = 6; // 6..9
pub(crate) const SLOT_NCTAID: Slot = 9; // 9..12
pub(crate) const SLOT_LANEID: Slot = 12;
pub(crate) const SLOT_WARPID: Slot = 13;
pub(crate) const SLOT_NWARPID: Slot = 14;
pub(crate) const SLOT_SINK: Slot = 15;
pub(crate) const SLOT_CC: Slot = 16;
const NUM_FIXED: u32 = 17;

/// A declared kernel parameter.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: String,
    pub ty: ParamType,
    pub offset: usize,
}

/// A decoded `.entry`.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    pub name: String,
    pub params: Vec<Param>,
    pub param_bytes: usize,
    pub code: Vec<Inst>,
    pub src: Vec<SrcInfo>,
    pub nslots: usize,
    /// Constant slots and their values (immediates, variable addresses).
    pub consts: Vec<(Slot, u64)>,
    /// Bytes of static shared memory (dynamic shared memory starts here, aligned).
    pub shared_static: usize,
    /// `.reqntid` if given.
    pub reqntid: Option<[u32; 3]>,
    /// `.maxntid` if given.
    pub maxntid: Option<[u32; 3]>,
}

#[derive(Debug, Clone)]
struct SharedVar {
    name: String,
    align: usize,
    size: usize,
    is_extern: bool,
}

#[derive(Default)]
struct Scope {
    names: HashMap<String, Slot>,
    ranges: HashMap<String, (Slot, u32)>,
}

/// Operand syntax tree.
#[derive(Debug, Clone)]
enum Opd<'a> {
    Name(&'a str, bool),
    Imm(Imm),
    Vec(Vec<Opd<'a>>),
    Mem(Option<&'a str>, i64),
    Pair(&'a str, &'a str),
    Sink,
}

struct Cursor<'a> {
    toks: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.toks.get(self.pos).copied()
    }
    fn line(&self) -> u32 {
        self.peek()
            .or_else(|| self.toks.last().copied())
            .map_or(0, |t| t.line)
    }
    fn next(&mut self) -> Result<Token<'a>, SimError> {
        let t = self.peek().ok_or_else(|| SimError::Parse {
            line: self.line(),
            msg: "unexpected end of input".into(),
        })?;
        self.pos += 1;
        Ok(t)
    }
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, SimError> {
        Err(SimError::Parse {
            line: self.line(),
            msg: msg.into(),
        })
    }
    fn is_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if p == c)
    }
    fn eat_punct(&mut self, c: char) -> bool {
        if self.is_punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, c: char) -> Result<(), SimError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            let found = self.describe();
            self.err(format!("expected `{c}`, found {found}"))
        }
    }
    fn describe(&self) -> String {
        match self.peek() {
            None => "end of input".into(),
            Some(t) => match t.tok {
                Tok::Ident(s) | Tok::Num(s) => format!("`{s}`"),
                Tok::Str(s) => format!("\"{s}\""),
                Tok::Punct(c) => format!("`{c}`"),
            },
        }
    }
    fn ident(&mut self) -> Result<&'a str, SimError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) => {
                self.pos += 1;
                Ok(s)
            }
            _ => {
                let found = self.describe();
                self.err(format!("expected an identifier, found {found}"))
            }
        }
    }
    fn peek_ident(&self) -> Option<&'a str> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) => Some(s),
            _ => None,
        }
    }
    fn uint(&mut self) -> Result<u64, SimError> {
        let t = self.next()?;
        match t.tok {
            Tok::Num(s) => match parse_num(s, t.line)? {
                Imm::Int(v) if (0..=u64::MAX as i128).contains(&v) => Ok(v as u64),
                _ => Err(SimError::Parse {
                    line: t.line,
                    msg: format!("expected an unsigned integer, found `{s}`"),
                }),
            },
            _ => Err(SimError::Parse {
                line: t.line,
                msg: "expected an unsigned integer".into(),
            }),
        }
    }
    /// Skips the remaining tokens of the current source line (and a `;`).
    fn skip_line(&mut self, line: u32) {
        while let Some(t) = self.peek() {
            if t.line != line {
                break;
            }
            self.pos += 1;
            if t.tok == Tok::Punct(';') {
                break;
            }
        }
    }
    fn skip_to_semicolon(&mut self) -> Result<(), SimError> {
        loop {
            if self.next()?.tok == Tok::Punct(';') {
                return Ok(());
            }
        }
    }
}

/// Parses a whole module: returns its kernels.
pub(crate) fn parse_module(src: &str) -> Result<Vec<Kernel>, SimError> {
    let toks = tokenize(src)?;
    let lines: Vec<&str> = src.lines().collect();
    let mut c = Cursor { toks, pos: 0 };
    let mut kernels = Vec::new();
    let mut module_shared: Vec<SharedVar> = Vec::new();
    let mut module_vars: Vec<String> = Vec::new();
    while let Some(t) = c.peek() {
        let line = t.line;
        let word = match t.tok {
            Tok::Ident(s) => s,
            _ => {
                let found = c.describe();
                return c.err(format!("unexpected {found} at module level"));
            }
        };
        match word {
            ".version" | ".target" | ".address_size" | ".file" | ".loc" => c.skip_line(line),
            ".visible" | ".weak" | ".extern" | ".entry" | ".shared" | ".global" | ".const"
            | ".func" => {
                let mut is_extern = false;
                while let Some(w) = c.peek_ident() {
                    match w {
                        ".visible" | ".weak" => c.pos += 1,
                        ".extern" => {
                            is_extern = true;
                            c.pos += 1
                        }
                        _ => break,
                    }
                }
                let line = c.line();
                match c.ident()? {
                    ".entry" => {
                        let k = parse_entry(&mut c, &lines, &module_shared, &module_vars)?;
                        if kernels.iter().any(|x: &Kernel| x.name == k.name) {
                            return Err(SimError::Parse {
                                line,
                                msg: format!("duplicate kernel `{}`", k.name),
                            });
                        }
                        kernels.push(k);
                    }
                    ".shared" => module_shared.push(parse_shared_decl(&mut c, is_extern)?),
                    ".global" | ".const" => {
                        // Declared but unused variables (NVRTC emits some from the CUDA
                        // headers) are accepted; any instruction naming one is rejected.
                        let mut name = None;
                        loop {
                            let t = c.next()?;
                            match t.tok {
                                Tok::Punct(';') => break,
                                Tok::Punct('=') => {
                                    c.skip_to_semicolon()?;
                                    break;
                                }
                                Tok::Ident(w) if !w.starts_with('.') && name.is_none() => {
                                    name = Some(w.to_string())
                                }
                                _ => {}
                            }
                        }
                        match name {
                            Some(n) => module_vars.push(n),
                            None => {
                                return Err(SimError::Parse {
                                    line,
                                    msg: "variable declaration without a name".into(),
                                })
                            }
                        }
                    }
                    ".func" => {
                        return Err(SimError::Unsupported {
                            line,
                            msg: "`.func` (device functions) is not supported".into(),
                        })
                    }
                    w => {
                        return Err(SimError::Unsupported {
                            line,
                            msg: format!("directive `{w}` is not supported here"),
                        })
                    }
                }
            }
            w => {
                return Err(SimError::Unsupported {
                    line,
                    msg: format!("module-level `{w}` is not supported"),
                })
            }
        }
    }
    Ok(kernels)
}

/// Parses `[.align N] .type name[size];` after `.shared`.
fn parse_shared_decl(c: &mut Cursor<'_>, is_extern: bool) -> Result<SharedVar, SimError> {
    let mut align = 0usize;
    let elem;
    loop {
        let w = c.ident()?;
        if w == ".align" {
            align = c.uint()? as usize;
        } else if let Some(ty) = w.strip_prefix('.').and_then(Ty::from_suffix) {
            elem = (ty.bits() as usize / 8).max(1);
            break;
        } else if w == ".extern" {
            return c.err("misplaced `.extern`");
        } else {
            return c.err(format!("unsupported `{w}` in a .shared declaration"));
        }
    }
    let name = c.ident()?.to_string();
    let mut size = elem;
    if c.eat_punct('[') {
        if c.eat_punct(']') {
            if !is_extern {
                return c.err("unsized .shared array must be .extern");
            }
            size = 0;
        } else {
            let n = c.uint()?;
            size = (n as usize)
                .checked_mul(elem)
                .filter(|&b| b < 1 << 32)
                .ok_or_else(|| SimError::Parse {
                    line: c.line(),
                    msg: format!("shared array `{name}` of {n} elements is too large"),
                })?;
            c.expect_punct(']')?;
        }
    }
    if c.is_punct('=') {
        return Err(SimError::Unsupported {
            line: c.line(),
            msg: "initialised .shared variables are not supported".into(),
        });
    }
    c.expect_punct(';')?;
    Ok(SharedVar {
        name,
        align: align.max(elem).max(1),
        size,
        is_extern,
    })
}

fn param_type(ty: Ty) -> Option<ParamType> {
    Some(match ty {
        Ty::B(8) => ParamType::B8,
        Ty::B(16) => ParamType::B16,
        Ty::B(32) => ParamType::B32,
        Ty::B(64) => ParamType::B64,
        Ty::U(8) => ParamType::U8,
        Ty::U(16) => ParamType::U16,
        Ty::U(32) => ParamType::U32,
        Ty::U(64) => ParamType::U64,
        Ty::S(8) => ParamType::S8,
        Ty::S(16) => ParamType::S16,
        Ty::S(32) => ParamType::S32,
        Ty::S(64) => ParamType::S64,
        Ty::F16 => ParamType::F16,
        Ty::BF16 => ParamType::BF16,
        Ty::F32 => ParamType::F32,
        Ty::F64 => ParamType::F64,
        _ => return None,
    })
}

struct Decoder<'a, 'l> {
    lines: &'l [&'l str],
    scopes: Vec<Scope>,
    cur: Vec<usize>,
    deferred: Vec<Pending<'a>>,
    nslots: u32,
    consts: Vec<(Slot, u64)>,
    const_map: HashMap<u64, Slot>,
    params: Vec<Param>,
    shared: HashMap<String, usize>,
    module_vars: Vec<String>,
    labels: HashMap<&'a str, u32>,
    fixups: Vec<(usize, &'a str, u32)>,
    code: Vec<Inst>,
    src: Vec<SrcInfo>,
}

fn parse_entry<'a>(
    c: &mut Cursor<'a>,
    lines: &[&str],
    module_shared: &[SharedVar],
    module_vars: &[String],
) -> Result<Kernel, SimError> {
    let name = c.ident()?.to_string();
    // parameters
    let mut params = Vec::new();
    let mut off = 0usize;
    if c.eat_punct('(') && !c.eat_punct(')') {
        loop {
            let line = c.line();
            let w = c.ident()?;
            if w != ".param" {
                return c.err(format!("expected `.param`, found `{w}`"));
            }
            let mut align = 0usize;
            let mut ty = None;
            while let Some(w) = c.peek_ident() {
                if !w.starts_with('.') {
                    break;
                }
                c.pos += 1;
                match w {
                    ".align" => align = c.uint()? as usize,
                    ".ptr" | ".global" | ".const" | ".shared" | ".local" => {}
                    _ => match Ty::from_suffix(&w[1..]) {
                        Some(t) if ty.is_none() => ty = Some(t),
                        _ => {
                            return Err(SimError::Unsupported {
                                line,
                                msg: format!("parameter attribute `{w}` is not supported"),
                            })
                        }
                    },
                }
            }
            let pname = c.ident()?.to_string();
            if c.is_punct('[') {
                return Err(SimError::Unsupported {
                    line,
                    msg: format!("array (by-value struct) parameter `{pname}` is not supported"),
                });
            }
            let ty = ty.ok_or_else(|| SimError::Parse {
                line,
                msg: format!("parameter `{pname}` has no type"),
            })?;
            let pty = param_type(ty).ok_or_else(|| SimError::Unsupported {
                line,
                msg: format!("parameter type {ty:?} of `{pname}` is not supported"),
            })?;
            let size = pty.size();
            let al = align.max(size);
            off = off.div_ceil(al) * al;
            params.push(Param {
                name: pname,
                ty: pty,
                offset: off,
            });
            off += size;
            if c.eat_punct(')') {
                break;
            }
            c.expect_punct(',')?;
        }
    }
    // performance directives
    let mut reqntid = None;
    let mut maxntid = None;
    while let Some(w) = c.peek_ident() {
        let line = c.line();
        c.pos += 1;
        match w {
            ".maxntid" | ".reqntid" => {
                let mut v = [1u32; 3];
                for (i, slot) in v.iter_mut().enumerate() {
                    if i > 0 && !c.eat_punct(',') {
                        break;
                    }
                    *slot = c.uint()? as u32;
                }
                if w == ".maxntid" {
                    maxntid = Some(v);
                } else {
                    reqntid = Some(v);
                }
            }
            ".minnctapersm" | ".maxnreg" | ".maxnctapersm" | ".pragma" | ".noreturn" => {
                c.skip_line(line)
            }
            _ => {
                return Err(SimError::Unsupported {
                    line,
                    msg: format!("kernel directive `{w}` is not supported"),
                })
            }
        }
    }
    c.expect_punct('{')?;
    let mut d = Decoder {
        lines,
        scopes: Vec::new(),
        cur: Vec::new(),
        deferred: Vec::new(),
        nslots: NUM_FIXED,
        consts: Vec::new(),
        const_map: HashMap::new(),
        params,
        shared: HashMap::new(),
        module_vars: module_vars.to_vec(),
        labels: HashMap::new(),
        fixups: Vec::new(),
        code: Vec::new(),
        src: Vec::new(),
    };
    // shared memory layout: module-level variables, then the kernel's own
    let mut svars: Vec<SharedVar> = module_shared.to_vec();
    d.body(c, &mut svars)?;
    let mut soff = 0usize;
    let mut ext = Vec::new();
    for v in &svars {
        if v.is_extern {
            ext.push(v);
            continue;
        }
        soff = soff.div_ceil(v.align) * v.align;
        d.shared.insert(v.name.clone(), soff);
        soff += v.size;
    }
    let ext_align = ext.iter().map(|v| v.align).max().unwrap_or(1).max(16);
    let dyn_off = soff.div_ceil(ext_align) * ext_align;
    for v in ext {
        d.shared.insert(v.name.clone(), dyn_off);
    }
    d.resolve_deferred()?;
    if !matches!(
        d.code.last().map(|i| &i.op),
        Some(Op::Exit { .. } | Op::Bra { .. })
    ) {
        // falling off the end of a kernel exits
        d.code.push(Inst {
            guard: None,
            op: Op::Exit { uni: false },
        });
        let line = d.src.last().map_or(0, |s| s.line);
        d.src.push(SrcInfo {
            line,
            text: "(end of kernel)".into(),
        });
    }
    for (at, label, line) in std::mem::take(&mut d.fixups) {
        let target = *d.labels.get(label).ok_or_else(|| SimError::Parse {
            line,
            msg: format!("undefined label `{label}`"),
        })?;
        if let Op::Bra { target: t, .. } = &mut d.code[at].op {
            *t = target;
        }
    }
    // The idiom of a compare-and-swap loop (CUDA's own `atomicAdd` on bf16 below sm_90, the
    // programming guide's `atomicAdd` on doubles) seeds the expected value with a plain load:
    // a stale value only makes the CAS retry. A plain scalar load into a register that some
    // `atom.cas` of the same width uses as its expected value counts as strong (atomic) for
    // the race detector.
    let cas_expected: Vec<(Slot, u32)> = d
        .code
        .iter()
        .filter_map(|i| match i.op {
            Op::Atom {
                op: AOp::Cas,
                ty,
                b,
                ..
            } => Some((b, ty.bits() / 8)),
            _ => None,
        })
        .collect();
    for inst in &mut d.code {
        if let Op::Ld {
            n: 1,
            dst,
            size,
            strong,
            ..
        } = &mut inst.op
        {
            if cas_expected.contains(&(dst[0], *size as u32)) {
                *strong = true;
            }
        }
    }
    // A guarded `.uni` branch evaluates its guard itself (see `Op::BraUni`).
    for inst in &mut d.code {
        let Some((pred, neg)) = inst.guard else {
            continue;
        };
        let target = match inst.op {
            Op::Bra { target, uni: true } => Some(target),
            Op::Exit { uni: true } => None,
            _ => continue,
        };
        inst.op = Op::BraUni { target, pred, neg };
        inst.guard = None;
    }
    Ok(Kernel {
        name,
        param_bytes: off,
        params: d.params,
        code: d.code,
        src: d.src,
        nslots: d.nslots as usize,
        consts: d.consts,
        shared_static: dyn_off,
        reqntid,
        maxntid,
    })
}

/// Operands and modifiers of one instruction, kept until the kernel's shared
/// layout is known (operands may name shared variables declared later).
struct Pending<'a> {
    guard: Option<(&'a str, bool)>,
    opcode: &'a str,
    opds: Vec<Opd<'a>>,
    line: u32,
    scope: Vec<usize>,
}

impl<'a> Decoder<'a, '_> {
    fn body(&mut self, c: &mut Cursor<'a>, svars: &mut Vec<SharedVar>) -> Result<(), SimError> {
        // Instructions are collected first, with a snapshot of the scope stack
        // (as indices into `all_scopes`), then decoded once the shared-memory
        // layout is known.
        let mut pending: Vec<Pending<'a>> = Vec::new();
        let mut all_scopes: Vec<Scope> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        all_scopes.push(Scope::default());
        stack.push(0);
        loop {
            let t = c.next()?;
            let line = t.line;
            match t.tok {
                Tok::Punct('{') => {
                    all_scopes.push(Scope::default());
                    stack.push(all_scopes.len() - 1);
                }
                Tok::Punct('}') => {
                    stack.pop();
                    if stack.is_empty() {
                        break;
                    }
                }
                Tok::Punct(';') => {}
                Tok::Punct('@') => {
                    let neg = c.eat_punct('!');
                    let g = c.ident()?;
                    let op = c.ident()?;
                    let opds = parse_operands(c)?;
                    pending.push(Pending {
                        guard: Some((g, neg)),
                        opcode: op,
                        opds,
                        line,
                        scope: stack.clone(),
                    });
                }
                Tok::Ident(w) => {
                    if c.is_punct(':') && !w.starts_with('.') {
                        c.pos += 1;
                        // label: refers to the next instruction
                        pending.push(Pending {
                            guard: None,
                            opcode: "",
                            opds: vec![Opd::Name(w, false)],
                            line,
                            scope: Vec::new(),
                        });
                        continue;
                    }
                    match w {
                        ".reg" => {
                            let idx = stack.last().copied().unwrap_or(0);
                            self.reg_decl(c, &mut all_scopes[idx])?
                        }
                        ".shared" => svars.push(parse_shared_decl(c, false)?),
                        ".extern" => {
                            if c.ident()? != ".shared" {
                                return c.err("only `.extern .shared` is supported in a kernel");
                            }
                            svars.push(parse_shared_decl(c, true)?)
                        }
                        ".pragma" => c.skip_to_semicolon()?,
                        ".loc" | ".file" => c.skip_line(line),
                        ".local" => {
                            return Err(SimError::Unsupported {
                                line,
                                msg: "`.local` variables (local memory) are not supported".into(),
                            })
                        }
                        _ if w.starts_with('.') => {
                            return Err(SimError::Unsupported {
                                line,
                                msg: format!("directive `{w}` is not supported in a kernel body"),
                            })
                        }
                        _ => {
                            let opds = parse_operands(c)?;
                            pending.push(Pending {
                                guard: None,
                                opcode: w,
                                opds,
                                line,
                                scope: stack.clone(),
                            });
                        }
                    }
                }
                _ => {
                    return Err(SimError::Parse {
                        line,
                        msg: "unexpected token in kernel body".into(),
                    })
                }
            }
        }
        self.scopes = all_scopes;
        self.deferred = pending;
        Ok(())
    }
}

fn parse_scalar_opd<'a>(c: &mut Cursor<'a>) -> Result<Opd<'a>, SimError> {
    let t = c.next()?;
    match t.tok {
        Tok::Punct('!') => Ok(Opd::Name(c.ident()?, true)),
        Tok::Punct('-') => {
            let t2 = c.next()?;
            match t2.tok {
                Tok::Num(s) => Ok(Opd::Imm(match parse_num(s, t2.line)? {
                    Imm::Int(v) => Imm::Int(-v),
                    Imm::F32(b) => Imm::F32(b ^ 0x8000_0000),
                    Imm::F64(b) => Imm::F64(b ^ (1 << 63)),
                })),
                _ => c.err("expected a number after `-`"),
            }
        }
        Tok::Num(s) => Ok(Opd::Imm(parse_num(s, t.line)?)),
        Tok::Ident("_") => Ok(Opd::Sink),
        Tok::Ident(a) => {
            if c.eat_punct('|') {
                let b = c.ident()?;
                Ok(Opd::Pair(a, b))
            } else {
                Ok(Opd::Name(a, false))
            }
        }
        _ => Err(SimError::Parse {
            line: t.line,
            msg: "bad operand".into(),
        }),
    }
}

fn parse_int_lit(c: &mut Cursor<'_>) -> Result<i64, SimError> {
    let neg = c.eat_punct('-');
    let t = c.next()?;
    match t.tok {
        Tok::Num(s) => match parse_num(s, t.line)? {
            Imm::Int(v) => {
                let v = if neg { -v } else { v };
                i64::try_from(v).map_err(|_| SimError::Parse {
                    line: t.line,
                    msg: format!("offset `{s}` out of range"),
                })
            }
            _ => c.err("expected an integer offset"),
        },
        _ => c.err("expected an integer offset"),
    }
}

fn parse_operands<'a>(c: &mut Cursor<'a>) -> Result<Vec<Opd<'a>>, SimError> {
    let mut out = Vec::new();
    if c.eat_punct(';') {
        return Ok(out);
    }
    loop {
        if c.eat_punct('{') {
            let mut v = Vec::new();
            loop {
                v.push(parse_scalar_opd(c)?);
                if c.eat_punct('}') {
                    break;
                }
                c.expect_punct(',')?;
            }
            out.push(Opd::Vec(v));
        } else if c.eat_punct('[') {
            let base = match c.peek().map(|t| t.tok) {
                Some(Tok::Ident(s)) => {
                    c.pos += 1;
                    Some(s)
                }
                _ => None,
            };
            let mut off = 0i64;
            if base.is_none() || c.eat_punct('+') || c.is_punct('-') {
                off = parse_int_lit(c)?;
            }
            c.expect_punct(']')?;
            out.push(Opd::Mem(base, off));
        } else {
            out.push(parse_scalar_opd(c)?);
        }
        if c.eat_punct(';') {
            return Ok(out);
        }
        c.expect_punct(',')?;
    }
}

/// Modifier list of an opcode (`ld.global.nc.f32` -> `global`, `nc`, `f32`).
struct Mods<'a> {
    op: &'a str,
    list: Vec<&'a str>,
    line: u32,
}

impl<'a> Mods<'a> {
    fn has(&mut self, m: &str) -> bool {
        if let Some(i) = self.list.iter().position(|x| *x == m) {
            self.list.remove(i);
            true
        } else {
            false
        }
    }
    fn one_of(&mut self, set: &[&str]) -> Option<&'a str> {
        let i = self.list.iter().position(|x| set.contains(x))?;
        Some(self.list.remove(i))
    }
    fn ty(&mut self) -> Option<Ty> {
        let i = self
            .list
            .iter()
            .position(|x| Ty::from_suffix(x).is_some())?;
        Ty::from_suffix(self.list.remove(i))
    }
    fn need_ty(&mut self) -> Result<Ty, SimError> {
        self.ty().ok_or_else(|| SimError::Parse {
            line: self.line,
            msg: format!("`{}` needs a type", self.op),
        })
    }
    fn unsupported<T>(&self, what: &str) -> Result<T, SimError> {
        Err(SimError::Unsupported {
            line: self.line,
            msg: format!("{what} in `{}`", self.op),
        })
    }
    fn finish(&self) -> Result<(), SimError> {
        if let Some(m) = self.list.first() {
            return Err(SimError::Unsupported {
                line: self.line,
                msg: format!("modifier `.{m}` is not supported in `{}`", self.op),
            });
        }
        Ok(())
    }
    /// Optional float rounding: only round-to-nearest-even is supported for arithmetic.
    fn rn_only(&mut self) -> Result<bool, SimError> {
        match self.one_of(&["rn", "rz", "rm", "rp"]) {
            None => Ok(false),
            Some("rn") => Ok(true),
            Some(r) => {
                self.unsupported(&format!("rounding modifier `.{r}` (only .rn is supported)"))
            }
        }
    }
}

/// Base of the generic-address window that maps to shared memory.
pub(crate) const SHARED_WINDOW: u64 = 0x7f00_0000_0000_0000;
/// Size of the shared window.
pub(crate) const SHARED_WINDOW_SIZE: u64 = 1 << 32;

fn special(name: &str) -> Option<Slot> {
    Some(match name {
        "%tid.x" => SLOT_TID,
        "%tid.y" => SLOT_TID + 1,
        "%tid.z" => SLOT_TID + 2,
        "%ntid.x" => SLOT_NTID,
        "%ntid.y" => SLOT_NTID + 1,
        "%ntid.z" => SLOT_NTID + 2,
        "%ctaid.x" => SLOT_CTAID,
        "%ctaid.y" => SLOT_CTAID + 1,
        "%ctaid.z" => SLOT_CTAID + 2,
        "%nctaid.x" => SLOT_NCTAID,
        "%nctaid.y" => SLOT_NCTAID + 1,
        "%nctaid.z" => SLOT_NCTAID + 2,
        "%laneid" => SLOT_LANEID,
        "%warpid" => SLOT_WARPID,
        "%nwarpid" => SLOT_NWARPID,
        _ => return None,
    })
}

fn imm_bits(imm: Imm, ty: Ty) -> u64 {
    match ty {
        Ty::F32 => match imm {
            Imm::Int(v) => (v as f32).to_bits() as u64,
            Imm::F32(b) => b as u64,
            Imm::F64(b) => (f64::from_bits(b) as f32).to_bits() as u64,
        },
        Ty::F64 => match imm {
            Imm::Int(v) => (v as f64).to_bits(),
            Imm::F32(b) => (f32::from_bits(b) as f64).to_bits(),
            Imm::F64(b) => b,
        },
        Ty::F16 | Ty::BF16 => {
            let fmt = ty.fmt().unwrap_or(crate::fp::F16);
            match imm {
                Imm::Int(v) => v as u64 & 0xffff,
                Imm::F32(b) => crate::fp::convert(b as u64, crate::fp::F32, fmt, Rnd::N),
                Imm::F64(b) => crate::fp::convert(b, crate::fp::F64, fmt, Rnd::N),
            }
        }
        Ty::Pred => match imm {
            Imm::Int(v) => (v != 0) as u64,
            Imm::F32(b) => (b != 0) as u64,
            Imm::F64(b) => (b != 0) as u64,
        },
        _ => {
            let raw = match imm {
                Imm::Int(v) => v as u64,
                Imm::F32(b) => b as u64,
                Imm::F64(b) => b,
            };
            ty.int().norm(raw)
        }
    }
}

impl<'a> Decoder<'a, '_> {
    fn reg_decl(&mut self, c: &mut Cursor<'a>, scope: &mut Scope) -> Result<(), SimError> {
        let line = c.line();
        let w = c.ident()?;
        if w.starts_with(".v") {
            return Err(SimError::Unsupported {
                line,
                msg: format!("vector register declarations (`.reg {w}`) are not supported"),
            });
        }
        if w.strip_prefix('.').and_then(Ty::from_suffix).is_none() {
            return Err(SimError::Unsupported {
                line,
                msg: format!("register type `{w}` is not supported"),
            });
        }
        loop {
            let name = c.ident()?;
            if c.eat_punct('<') {
                let n = c.uint()?;
                c.expect_punct('>')?;
                if n > 1 << 20 {
                    return c.err(format!("register range `{name}<{n}>` is too large"));
                }
                let n = n as u32;
                scope.ranges.insert(name.to_string(), (self.nslots, n));
                self.nslots += n;
            } else {
                scope.names.insert(name.to_string(), self.nslots);
                self.nslots += 1;
            }
            if self.nslots > 1 << 20 {
                return c.err("too many registers");
            }
            if c.eat_punct(';') {
                return Ok(());
            }
            c.expect_punct(',')?;
        }
    }

    fn lookup_reg(&self, name: &str) -> Option<Slot> {
        for &si in self.cur.iter().rev() {
            let s = &self.scopes[si];
            if let Some(&slot) = s.names.get(name) {
                return Some(slot);
            }
            let digits = name.len()
                - name
                    .bytes()
                    .rev()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            if digits < name.len() {
                if let Some(&(base, n)) = s.ranges.get(&name[..digits]) {
                    if let Ok(i) = name[digits..].parse::<u32>() {
                        if i < n && (i == 0 || !name[digits..].starts_with('0')) {
                            return Some(base + i);
                        }
                    }
                }
            }
        }
        None
    }

    fn konst(&mut self, v: u64) -> Slot {
        if let Some(&s) = self.const_map.get(&v) {
            return s;
        }
        let s = self.nslots;
        self.nslots += 1;
        self.consts.push((s, v));
        self.const_map.insert(v, s);
        s
    }

    fn check_module_var(&self, name: &str, line: u32) -> Result<(), SimError> {
        if self.module_vars.iter().any(|v| v == name) {
            return Err(SimError::Unsupported {
                line,
                msg: format!(
                    "use of module-level .global/.const variable `{name}` is not supported"
                ),
            });
        }
        Ok(())
    }

    fn var_addr(&self, name: &str) -> Option<(Space, u64)> {
        if let Some(p) = self.params.iter().find(|p| p.name == name) {
            return Some((Space::Param, p.offset as u64));
        }
        self.shared.get(name).map(|&o| (Space::Shared, o as u64))
    }

    fn src(&mut self, o: &Opd<'_>, ty: Ty, line: u32) -> Result<Slot, SimError> {
        match o {
            Opd::Name(n, false) => {
                self.check_module_var(n, line)?;
                if let Some(s) = self.lookup_reg(n) {
                    Ok(s)
                } else if let Some(s) = special(n) {
                    Ok(s)
                } else if let Some((_, a)) = self.var_addr(n) {
                    Ok(self.konst(a))
                } else if n.starts_with('%') {
                    Err(SimError::Unsupported {
                        line,
                        msg: format!("unknown register or special register `{n}`"),
                    })
                } else {
                    Err(SimError::Parse {
                        line,
                        msg: format!("unknown name `{n}`"),
                    })
                }
            }
            Opd::Imm(i) => Ok(self.konst(imm_bits(*i, ty))),
            _ => Err(SimError::Unsupported {
                line,
                msg: format!("operand form {o:?} is not supported here"),
            }),
        }
    }

    /// A source that may be written `!%p` (returns the negation flag).
    fn pred_src(&mut self, o: &Opd<'_>, line: u32) -> Result<(Slot, bool), SimError> {
        match o {
            Opd::Name(n, true) => Ok((self.src(&Opd::Name(n, false), Ty::Pred, line)?, true)),
            _ => Ok((self.src(o, Ty::Pred, line)?, false)),
        }
    }

    fn dst(&self, o: &Opd<'_>, line: u32) -> Result<Slot, SimError> {
        match o {
            Opd::Name(n, false) => self.lookup_reg(n).ok_or_else(|| SimError::Parse {
                line,
                msg: format!("`{n}` is not a declared register"),
            }),
            Opd::Sink => Ok(SLOT_SINK),
            _ => Err(SimError::Unsupported {
                line,
                msg: format!("destination operand {o:?} is not supported"),
            }),
        }
    }

    fn addr(&self, o: &Opd<'_>, space: Space, line: u32) -> Result<(Option<Slot>, i64), SimError> {
        match o {
            Opd::Mem(None, off) => Ok((None, *off)),
            Opd::Mem(Some(n), off) => {
                self.check_module_var(n, line)?;
                if let Some(s) = self.lookup_reg(n) {
                    return Ok((Some(s), *off));
                }
                match self.var_addr(n) {
                    Some((vs, a)) => {
                        let base = match (vs, space) {
                            (Space::Shared, Space::Generic) => a + SHARED_WINDOW,
                            (Space::Shared, Space::Shared) | (Space::Param, Space::Param) => a,
                            _ => {
                                return Err(SimError::Unsupported {
                                    line,
                                    msg: format!(
                                        "variable `{n}` used with the {space:?} state space"
                                    ),
                                })
                            }
                        };
                        Ok((None, (base as i64).wrapping_add(*off)))
                    }
                    None => Err(SimError::Parse {
                        line,
                        msg: format!("unknown address base `{n}`"),
                    }),
                }
            }
            _ => Err(SimError::Parse {
                line,
                msg: format!("expected an address operand `[...]`, found {o:?}"),
            }),
        }
    }

    fn vec_dsts(&self, o: &Opd<'_>, n: usize, line: u32) -> Result<[Slot; 4], SimError> {
        let mut out = [SLOT_SINK; 4];
        match o {
            Opd::Vec(v) if v.len() == n => {
                for (i, e) in v.iter().enumerate() {
                    out[i] = self.dst(e, line)?;
                }
            }
            _ if n == 1 => out[0] = self.dst(o, line)?,
            _ => {
                return Err(SimError::Parse {
                    line,
                    msg: format!("expected a vector of {n} registers"),
                })
            }
        }
        Ok(out)
    }

    fn vec_srcs(
        &mut self,
        o: &Opd<'_>,
        n: usize,
        ty: Ty,
        line: u32,
    ) -> Result<[Slot; 4], SimError> {
        let mut out = [SLOT_SINK; 4];
        match o {
            Opd::Vec(v) if v.len() == n => {
                for (i, e) in v.iter().enumerate() {
                    out[i] = self.src(e, ty, line)?;
                }
            }
            _ if n == 1 => out[0] = self.src(o, ty, line)?,
            _ => {
                return Err(SimError::Parse {
                    line,
                    msg: format!("expected a vector of {n} operands"),
                })
            }
        }
        Ok(out)
    }

    fn resolve_deferred(&mut self) -> Result<(), SimError> {
        let pending = std::mem::take(&mut self.deferred);
        for p in pending {
            if p.opcode.is_empty() {
                if let Some(Opd::Name(l, _)) = p.opds.first() {
                    if self.labels.insert(l, self.code.len() as u32).is_some() {
                        return Err(SimError::Parse {
                            line: p.line,
                            msg: format!("duplicate label `{l}`"),
                        });
                    }
                }
                continue;
            }
            self.cur = p.scope.clone();
            let guard = match p.guard {
                Some((g, neg)) => {
                    let s = self.lookup_reg(g).ok_or_else(|| SimError::Parse {
                        line: p.line,
                        msg: format!("guard `{g}` is not a declared predicate register"),
                    })?;
                    Some((s, neg))
                }
                None => None,
            };
            let op = self.decode(p.opcode, &p.opds, p.line)?;
            if let Some(op) = op {
                self.code.push(Inst { guard, op });
                let text = self
                    .lines
                    .get(p.line as usize - 1)
                    .map_or(String::new(), |l| l.trim().to_string());
                self.src.push(SrcInfo { line: p.line, text });
            }
        }
        Ok(())
    }
}

fn int_ty(ty: Ty, m: &Mods<'_>) -> Result<IntTy, SimError> {
    if ty.is_float() {
        return m.unsupported(&format!("type {ty:?} for an integer operation"));
    }
    Ok(ty.int())
}

fn nops(opds: &[Opd<'_>], n: usize, m: &Mods<'_>) -> Result<(), SimError> {
    if opds.len() != n {
        return Err(SimError::Parse {
            line: m.line,
            msg: format!("`{}` expects {n} operands, found {}", m.op, opds.len()),
        });
    }
    Ok(())
}

fn space_of(s: &str) -> Space {
    match s {
        "global" => Space::Global,
        "shared" => Space::Shared,
        "param" => Space::Param,
        "local" => Space::Local,
        _ => Space::Generic,
    }
}

impl<'a> Decoder<'a, '_> {
    #[allow(clippy::too_many_lines)]
    fn decode(
        &mut self,
        opcode: &'a str,
        o: &[Opd<'a>],
        line: u32,
    ) -> Result<Option<Op>, SimError> {
        let mut parts = opcode.split('.');
        let base = parts.next().unwrap_or("");
        let mut m = Mods {
            op: opcode,
            list: parts.collect(),
            line,
        };
        let op = match base {
            "mov" => {
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 2, &m)?;
                match (&o[0], &o[1]) {
                    (Opd::Vec(v), a) => {
                        let n = v.len();
                        let bits = ty.bits() as usize / n.max(1);
                        if !(2..=4).contains(&n) || bits < 8 {
                            return m.unsupported("unpacking shape");
                        }
                        let dst = self.vec_dsts(&o[0], n, line)?;
                        let a = self.src(a, ty, line)?;
                        Op::Unpack {
                            bits: bits as u8,
                            n: n as u8,
                            dst,
                            a,
                        }
                    }
                    (d, Opd::Vec(v)) => {
                        let n = v.len();
                        let bits = ty.bits() as usize / n.max(1);
                        if !(2..=4).contains(&n) || bits < 8 {
                            return m.unsupported("packing shape");
                        }
                        let ety = Ty::B(bits as u8);
                        let src = self.vec_srcs(&o[1], n, ety, line)?;
                        Op::Pack {
                            bits: bits as u8,
                            n: n as u8,
                            d: self.dst(d, line)?,
                            src,
                        }
                    }
                    (d, a) => Op::IUn {
                        op: IUn::Mov,
                        ty: ty.int(),
                        d: self.dst(d, line)?,
                        a: self.src(a, ty, line)?,
                    },
                }
            }
            "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "mad" | "fma" | "abs"
            | "neg" | "sqrt" | "rcp" | "addc" | "subc" => {
                return self.arith(base, m, o, line).map(Some)
            }
            "and" | "or" | "xor" | "shl" | "shr" => {
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 3, &m)?;
                let it = int_ty(ty, &m)?;
                let bty = if matches!(base, "shl" | "shr") {
                    Ty::U(32)
                } else {
                    ty
                };
                Op::IBin {
                    op: match base {
                        "and" => IOp::And,
                        "or" => IOp::Or,
                        "xor" => IOp::Xor,
                        "shl" => IOp::Shl,
                        _ => IOp::Shr,
                    },
                    ty: it,
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                    b: self.src(&o[2], bty, line)?,
                }
            }
            "not" | "cnot" | "popc" | "clz" | "brev" => {
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 2, &m)?;
                let it = int_ty(ty, &m)?;
                Op::IUn {
                    op: match base {
                        "not" => IUn::Not,
                        "cnot" => IUn::CNot,
                        "popc" => IUn::Popc,
                        "clz" => IUn::Clz,
                        _ => IUn::Brev,
                    },
                    ty: it,
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                }
            }
            "bfe" => {
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 4, &m)?;
                Op::Bfe {
                    ty: int_ty(ty, &m)?,
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                    b: self.src(&o[2], Ty::U(32), line)?,
                    c: self.src(&o[3], Ty::U(32), line)?,
                }
            }
            "bfi" => {
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 5, &m)?;
                Op::Bfi {
                    bits: ty.bits() as u8,
                    d: self.dst(&o[0], line)?,
                    f: self.src(&o[1], ty, line)?,
                    a: self.src(&o[2], ty, line)?,
                    b: self.src(&o[3], Ty::U(32), line)?,
                    c: self.src(&o[4], Ty::U(32), line)?,
                }
            }
            "prmt" => {
                let ty = m.need_ty()?;
                if ty.bits() != 32 {
                    return m.unsupported("prmt type");
                }
                m.finish()?;
                nops(o, 4, &m)?;
                Op::Prmt {
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                    b: self.src(&o[2], ty, line)?,
                    c: self.src(&o[3], ty, line)?,
                }
            }
            "setp" => {
                let cmp = match m.one_of(&[
                    "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu",
                    "ltu", "leu", "gtu", "geu", "num", "nan",
                ]) {
                    Some(c) => c,
                    None => return m.unsupported("missing or unknown comparison"),
                };
                let comb = m.one_of(&["and", "or", "xor"]);
                let ftz = m.has("ftz");
                let ty = m.need_ty()?;
                m.finish()?;
                let _ = ftz; // comparisons of subnormals are exact either way except ftz; see below
                let cmp = match (cmp, ty.is_float()) {
                    ("eq", _) => Cmp::Eq,
                    ("ne", _) => Cmp::Ne,
                    ("lt" | "lo", _) => Cmp::Lt,
                    ("le" | "ls", _) => Cmp::Le,
                    ("gt" | "hi", _) => Cmp::Gt,
                    ("ge" | "hs", _) => Cmp::Ge,
                    ("equ", true) => Cmp::Equ,
                    ("neu", true) => Cmp::Neu,
                    ("ltu", true) => Cmp::Ltu,
                    ("leu", true) => Cmp::Leu,
                    ("gtu", true) => Cmp::Gtu,
                    ("geu", true) => Cmp::Geu,
                    ("num", true) => Cmp::Num,
                    ("nan", true) => Cmp::Nan,
                    (c, _) => return m.unsupported(&format!("comparison `.{c}` for {ty:?}")),
                };
                if ftz {
                    return m.unsupported("`.ftz` on setp");
                }
                let ty = match (cmp, ty) {
                    // lo/ls/hi/hs force unsigned comparison
                    (_, Ty::S(b))
                        if matches!(opcode.split('.').nth(1), Some("lo" | "ls" | "hi" | "hs")) =>
                    {
                        Ty::U(b)
                    }
                    _ => ty,
                };
                if matches!(ty, Ty::F16x2 | Ty::BF16x2) {
                    return m.unsupported("packed setp");
                }
                let (p, q) = match &o.first() {
                    Some(Opd::Pair(a, b)) => (
                        self.dst(&Opd::Name(a, false), line)?,
                        Some(self.dst(&Opd::Name(b, false), line)?),
                    ),
                    Some(x) => (self.dst(x, line)?, None),
                    None => return m.unsupported("missing operands"),
                };
                let comb = match comb {
                    Some(bo) => {
                        nops(o, 4, &m)?;
                        let (c, neg) = self.pred_src(&o[3], line)?;
                        Some((
                            match bo {
                                "and" => BoolOp::And,
                                "or" => BoolOp::Or,
                                _ => BoolOp::Xor,
                            },
                            c,
                            neg,
                        ))
                    }
                    None => {
                        nops(o, 3, &m)?;
                        None
                    }
                };
                Op::Setp {
                    cmp,
                    ty,
                    p,
                    q,
                    a: self.src(&o[1], ty, line)?,
                    b: self.src(&o[2], ty, line)?,
                    comb,
                }
            }
            "selp" => {
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 4, &m)?;
                let (p, pneg) = self.pred_src(&o[3], line)?;
                Op::Selp {
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                    b: self.src(&o[2], ty, line)?,
                    p,
                    pneg,
                }
            }
            "cvt" => {
                let r = m.one_of(&["rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi"]);
                let ftz = m.has("ftz");
                let sat = m.has("sat");
                let dst = m.need_ty()?;
                let src = m.need_ty()?;
                m.finish()?;
                nops(o, 2, &m)?;
                if matches!(dst, Ty::F16x2 | Ty::BF16x2 | Ty::Pred)
                    || matches!(src, Ty::F16x2 | Ty::BF16x2 | Ty::Pred)
                {
                    return m.unsupported(&format!("conversion {src:?} -> {dst:?}"));
                }
                let (rnd, int_rnd) = match r {
                    None => (None, false),
                    Some(s) => (
                        Some(match &s[..2] {
                            "rn" => Rnd::N,
                            "rz" => Rnd::Z,
                            "rm" => Rnd::M,
                            _ => Rnd::P,
                        }),
                        s.len() == 3,
                    ),
                };
                if int_rnd && !src.is_float() {
                    return m.unsupported("integer rounding of an integer source");
                }
                if src.is_float() && !dst.is_float() && !int_rnd {
                    return m
                        .unsupported("float-to-integer conversion without .rni/.rzi/.rmi/.rpi");
                }
                if dst.is_float() && !int_rnd && rnd.is_none() {
                    let narrowing = !src.is_float()
                        || dst.bits() < src.bits()
                        || (dst.bits() == src.bits() && dst != src);
                    if narrowing {
                        return m.unsupported(&format!(
                            "conversion {src:?} -> {dst:?} without a rounding modifier"
                        ));
                    }
                }
                Op::Cvt {
                    dst,
                    src,
                    rnd,
                    int_rnd,
                    sat,
                    ftz,
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], src, line)?,
                }
            }
            "cvta" => {
                let to = m.has("to");
                let sp = m.one_of(&["global", "shared", "local", "const", "param"]);
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 2, &m)?;
                let kind = match (to, sp) {
                    (_, Some("global")) => Cvta::Identity,
                    (true, Some("shared")) => Cvta::GenericToShared,
                    (false, Some("shared")) => Cvta::SharedToGeneric,
                    (true, Some("local")) => Cvta::GenericToLocal,
                    (false, Some("local")) => Cvta::LocalToGeneric,
                    _ => return m.unsupported("state space"),
                };
                Op::Cvta {
                    kind,
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                }
            }
            "ld" | "ldu" | "st" => {
                let is_ld = base != "st";
                let sp = m.one_of(&["global", "shared", "param", "local", "const"]);
                if sp == Some("const") {
                    return m.unsupported("the .const state space");
                }
                let space = sp.map_or(Space::Generic, space_of);
                if is_ld {
                    m.has("nc");
                }
                let strong = matches!(
                    m.one_of(&["weak", "volatile", "relaxed", "acquire", "release", "mmio"]),
                    Some("volatile" | "relaxed" | "acquire" | "release" | "mmio")
                );
                m.one_of(&["cta", "gpu", "sys", "cluster"]);
                m.one_of(&["ca", "cg", "cs", "lu", "cv", "wb", "wt"]);
                m.list
                    .retain(|x| !(x.starts_with("L1::") || x.starts_with("L2::")));
                let n = match m.one_of(&["v2", "v4"]) {
                    Some("v2") => 2,
                    Some(_) => 4,
                    None => 1,
                };
                let ty = m.need_ty()?;
                m.finish()?;
                nops(o, 2, &m)?;
                if matches!(ty, Ty::Pred) {
                    return m.unsupported("predicate type");
                }
                let size = (ty.bits() / 8) as u8;
                if is_ld {
                    let (base, off) = self.addr(&o[1], space, line)?;
                    Op::Ld {
                        space,
                        size,
                        ty: ty.int(),
                        n,
                        dst: self.vec_dsts(&o[0], n as usize, line)?,
                        base,
                        off,
                        strong,
                    }
                } else {
                    let (base, off) = self.addr(&o[0], space, line)?;
                    Op::St {
                        space,
                        size,
                        n,
                        src: self.vec_srcs(&o[1], n as usize, ty, line)?,
                        base,
                        off,
                        strong,
                    }
                }
            }
            "atom" | "red" => {
                let is_red = base == "red";
                let space = m
                    .one_of(&["global", "shared"])
                    .map_or(Space::Generic, space_of);
                m.one_of(&["relaxed", "acquire", "release", "acq_rel"]);
                m.one_of(&["cta", "gpu", "sys", "cluster"]);
                let aop = match m.one_of(&[
                    "add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas",
                ]) {
                    Some("add") => AOp::Add,
                    Some("min") => AOp::Min,
                    Some("max") => AOp::Max,
                    Some("inc") => AOp::Inc,
                    Some("dec") => AOp::Dec,
                    Some("and") => AOp::And,
                    Some("or") => AOp::Or,
                    Some("xor") => AOp::Xor,
                    Some("exch") => AOp::Exch,
                    Some(_) => AOp::Cas,
                    None => return m.unsupported("missing or unknown atomic operation"),
                };
                let noftz = m.has("noftz");
                let ty = m.need_ty()?;
                m.finish()?;
                let ok = match aop {
                    AOp::Add => match ty {
                        Ty::F16 | Ty::BF16 | Ty::F16x2 | Ty::BF16x2 => noftz,
                        Ty::U(32) | Ty::S(32) | Ty::U(64) | Ty::F32 | Ty::F64 => !noftz,
                        _ => false,
                    },
                    AOp::Min | AOp::Max => {
                        matches!(ty, Ty::U(32) | Ty::S(32) | Ty::U(64) | Ty::S(64)) && !noftz
                    }
                    AOp::Inc | AOp::Dec => ty == Ty::U(32) && !noftz,
                    AOp::And | AOp::Or | AOp::Xor => matches!(ty, Ty::B(32) | Ty::B(64)) && !noftz,
                    AOp::Exch => matches!(ty, Ty::B(32) | Ty::B(64)) && !noftz,
                    AOp::Cas => matches!(ty, Ty::B(16) | Ty::B(32) | Ty::B(64)) && !noftz,
                };
                if !ok {
                    return m.unsupported(&format!("atomic {aop:?} on {ty:?}"));
                }
                let nsrc = if aop == AOp::Cas { 2 } else { 1 };
                let first = if is_red { 0 } else { 1 };
                nops(o, first + 1 + nsrc, &m)?;
                let d = if is_red {
                    None
                } else {
                    Some(self.dst(&o[0], line)?)
                };
                let (abase, off) = self.addr(&o[first], space, line)?;
                let b = self.src(&o[first + 1], ty, line)?;
                let c = if nsrc == 2 {
                    self.src(&o[first + 2], ty, line)?
                } else {
                    SLOT_SINK
                };
                Op::Atom {
                    space,
                    op: aop,
                    ty,
                    d,
                    base: abase,
                    off,
                    b,
                    c,
                }
            }
            "bra" => {
                let uni = m.has("uni");
                m.finish()?;
                nops(o, 1, &m)?;
                match &o[0] {
                    Opd::Name(l, false) => {
                        self.fixups.push((self.code.len(), l, line));
                        Op::Bra { target: 0, uni }
                    }
                    _ => return m.unsupported("branch target form"),
                }
            }
            "ret" | "exit" => {
                let uni = m.has("uni");
                m.finish()?;
                nops(o, 0, &m)?;
                Op::Exit { uni }
            }
            "bar" | "barrier" => {
                m.has("cta");
                let warp = m.has("warp");
                let sync = m.has("sync");
                // `bar.sync` is `barrier.sync.aligned`
                let aligned = m.has("aligned") || base == "bar";
                m.finish()?;
                if !sync {
                    return m.unsupported("barrier flavour (only .sync is supported)");
                }
                if warp {
                    nops(o, 1, &m)?;
                    Op::WarpSync {
                        mask: self.src(&o[0], Ty::B(32), line)?,
                    }
                } else {
                    if o.len() == 2 {
                        return m.unsupported("barrier with a thread count");
                    }
                    nops(o, 1, &m)?;
                    Op::Bar {
                        id: self.src(&o[0], Ty::U(32), line)?,
                        aligned,
                    }
                }
            }
            "membar" | "fence" => {
                m.one_of(&["sc", "acq_rel"]);
                m.one_of(&["cta", "gl", "gpu", "sys", "cluster"]);
                m.finish()?;
                nops(o, 0, &m)?;
                Op::Nop
            }
            "shfl" => {
                if !m.has("sync") {
                    return m.unsupported("shfl without .sync");
                }
                let mode = match m.one_of(&["up", "down", "bfly", "idx"]) {
                    Some("up") => ShflMode::Up,
                    Some("down") => ShflMode::Down,
                    Some("bfly") => ShflMode::Bfly,
                    Some(_) => ShflMode::Idx,
                    None => return m.unsupported("missing shfl mode"),
                };
                let ty = m.need_ty()?;
                if ty.bits() != 32 || ty.is_float() && ty != Ty::F32 {
                    return m.unsupported("shfl type");
                }
                m.finish()?;
                nops(o, 5, &m)?;
                let (d, p) = match &o[0] {
                    Opd::Pair(a, b) => (
                        self.dst(&Opd::Name(a, false), line)?,
                        Some(self.dst(&Opd::Name(b, false), line)?),
                    ),
                    x => (self.dst(x, line)?, None),
                };
                Op::Shfl {
                    mode,
                    d,
                    p,
                    a: self.src(&o[1], Ty::B(32), line)?,
                    b: self.src(&o[2], Ty::B(32), line)?,
                    c: self.src(&o[3], Ty::B(32), line)?,
                    mask: self.src(&o[4], Ty::B(32), line)?,
                }
            }
            "vote" => {
                if !m.has("sync") {
                    return m.unsupported("vote without .sync");
                }
                let mode = match m.one_of(&["all", "any", "uni", "ballot"]) {
                    Some("all") => VoteMode::All,
                    Some("any") => VoteMode::Any,
                    Some("uni") => VoteMode::Uni,
                    Some(_) => VoteMode::Ballot,
                    None => return m.unsupported("missing vote mode"),
                };
                let _ = m.need_ty()?;
                m.finish()?;
                nops(o, 3, &m)?;
                let (a, aneg) = self.pred_src(&o[1], line)?;
                Op::Vote {
                    mode,
                    d: self.dst(&o[0], line)?,
                    a,
                    aneg,
                    mask: self.src(&o[2], Ty::B(32), line)?,
                }
            }
            "activemask" => {
                let _ = m.need_ty()?;
                m.finish()?;
                nops(o, 1, &m)?;
                Op::Activemask {
                    d: self.dst(&o[0], line)?,
                }
            }
            _ => {
                return Err(SimError::Unsupported {
                    line,
                    msg: format!("unknown or unsupported opcode `{opcode}`"),
                })
            }
        };
        Ok(Some(op))
    }

    fn arith(
        &mut self,
        base: &str,
        mut m: Mods<'a>,
        o: &[Opd<'a>],
        line: u32,
    ) -> Result<Op, SimError> {
        let lohi = m.one_of(&["lo", "hi", "wide"]);
        let cc = m.has("cc");
        let ty = m.need_ty()?;
        if !ty.is_float() {
            if matches!(base, "addc" | "subc") || cc {
                m.finish()?;
                nops(o, 3, &m)?;
                if !matches!(base, "add" | "sub" | "addc" | "subc") || ty.bits() < 32 {
                    return m.unsupported("carry form");
                }
                return Ok(Op::AddC {
                    sub: base.starts_with("sub"),
                    cin: base.ends_with('c'),
                    cout: cc,
                    bits: ty.bits() as u8,
                    d: self.dst(&o[0], line)?,
                    a: self.src(&o[1], ty, line)?,
                    b: self.src(&o[2], ty, line)?,
                });
            }
            if m.has("sat") {
                return m.unsupported("`.sat` on integer arithmetic");
            }
            m.finish()?;
            let it = int_ty(ty, &m)?;
            if matches!(base, "mul" | "mad") {
                let lohi = lohi.ok_or_else(|| SimError::Parse {
                    line,
                    msg: format!("`{}` needs .lo, .hi or .wide", m.op),
                })?;
                let n = if base == "mad" { 4 } else { 3 };
                nops(o, n, &m)?;
                let d = self.dst(&o[0], line)?;
                let a = self.src(&o[1], ty, line)?;
                let b = self.src(&o[2], ty, line)?;
                if lohi == "wide" {
                    if !matches!(ty.bits(), 16 | 32) {
                        return m.unsupported("wide multiply width");
                    }
                    let wty = match ty {
                        Ty::S(b) => Ty::S(b * 2),
                        _ => Ty::U(ty.bits() as u8 * 2),
                    };
                    let c = if n == 4 {
                        Some(self.src(&o[3], wty, line)?)
                    } else {
                        None
                    };
                    return Ok(Op::Wide {
                        signed: it.signed,
                        bits: it.bits,
                        d,
                        a,
                        b,
                        c,
                    });
                }
                if n == 4 {
                    return Ok(Op::Mad {
                        hi: lohi == "hi",
                        ty: it,
                        d,
                        a,
                        b,
                        c: self.src(&o[3], ty, line)?,
                    });
                }
                return Ok(Op::IBin {
                    op: if lohi == "hi" { IOp::MulHi } else { IOp::MulLo },
                    ty: it,
                    d,
                    a,
                    b,
                });
            }
            if lohi.is_some() {
                return m.unsupported("`.lo/.hi/.wide`");
            }
            return match base {
                "abs" | "neg" => {
                    nops(o, 2, &m)?;
                    Ok(Op::IUn {
                        op: if base == "abs" { IUn::Abs } else { IUn::Neg },
                        ty: it,
                        d: self.dst(&o[0], line)?,
                        a: self.src(&o[1], ty, line)?,
                    })
                }
                "add" | "sub" | "div" | "rem" | "min" | "max" => {
                    nops(o, 3, &m)?;
                    Ok(Op::IBin {
                        op: match base {
                            "add" => IOp::Add,
                            "sub" => IOp::Sub,
                            "div" => IOp::Div,
                            "rem" => IOp::Rem,
                            "min" => IOp::Min,
                            _ => IOp::Max,
                        },
                        ty: it,
                        d: self.dst(&o[0], line)?,
                        a: self.src(&o[1], ty, line)?,
                        b: self.src(&o[2], ty, line)?,
                    })
                }
                _ => m.unsupported(&format!("integer type {ty:?}")),
            };
        }
        // floating point
        if lohi.is_some() || cc {
            return m.unsupported("integer-only modifier on a float type");
        }
        let fop = match base {
            "add" => FOp::Add,
            "sub" => FOp::Sub,
            "mul" => FOp::Mul,
            "div" => FOp::Div,
            "min" => FOp::Min,
            "max" => FOp::Max,
            "mad" | "fma" => FOp::Fma,
            "sqrt" => FOp::Sqrt,
            "rcp" => FOp::Rcp,
            "abs" => FOp::Abs,
            "neg" => FOp::Neg,
            _ => return m.unsupported(&format!("float type {ty:?}")),
        };
        let approx = match fop {
            FOp::Div if ty == Ty::F32 => m.one_of(&["approx", "full"]).is_some(),
            FOp::Rcp | FOp::Sqrt => m.has("approx"),
            _ => false,
        };
        let rn = m.rn_only()?;
        let ftz = m.has("ftz");
        let sat = m.has("sat");
        m.finish()?;
        match fop {
            FOp::Div | FOp::Rcp | FOp::Sqrt
                if !approx && !rn && matches!(ty, Ty::F32 | Ty::F64) =>
            {
                return m.unsupported("missing rounding modifier (.rn)");
            }
            FOp::Fma if !rn => return m.unsupported("missing rounding modifier (.rn)"),
            _ => {}
        }
        let n = match fop {
            FOp::Fma => 4,
            FOp::Sqrt | FOp::Rcp | FOp::Abs | FOp::Neg => 2,
            _ => 3,
        };
        nops(o, n, &m)?;
        let d = self.dst(&o[0], line)?;
        let a = self.src(&o[1], ty, line)?;
        let b = if n >= 3 {
            self.src(&o[2], ty, line)?
        } else {
            SLOT_SINK
        };
        let c = if n >= 4 {
            self.src(&o[3], ty, line)?
        } else {
            SLOT_SINK
        };
        Ok(match ty {
            Ty::F32 => Op::F32 {
                op: fop,
                ftz,
                sat,
                d,
                a,
                b,
                c,
            },
            Ty::F64 => {
                if ftz || sat {
                    return m.unsupported("`.ftz`/`.sat` on f64");
                }
                Op::F64 {
                    op: fop,
                    d,
                    a,
                    b,
                    c,
                }
            }
            Ty::F16 | Ty::F16x2 | Ty::BF16 | Ty::BF16x2 => {
                if matches!(fop, FOp::Div | FOp::Sqrt | FOp::Rcp) {
                    return m.unsupported("half-precision division/sqrt/rcp");
                }
                Op::Half {
                    op: fop,
                    kind: if matches!(ty, Ty::F16 | Ty::F16x2) {
                        HalfKind::F16
                    } else {
                        HalfKind::BF16
                    },
                    x2: matches!(ty, Ty::F16x2 | Ty::BF16x2),
                    ftz,
                    sat,
                    d,
                    a,
                    b,
                    c,
                }
            }
            _ => return m.unsupported(&format!("type {ty:?}")),
        })
    }
}
