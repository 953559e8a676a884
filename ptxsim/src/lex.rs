//! Tokenizer for PTX text.

use crate::SimError;

/// A token kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// Identifier, directive (`.reg`), opcode with modifiers (`ld.global.f32`),
    /// register (`%r1`), special register (`%tid.x`) or label (`$L__BB0_2`).
    Ident(&'a str),
    /// Numeric literal as written (`12`, `0x1f`, `0f3F800000`, `9.0`).
    Num(&'a str),
    /// String literal contents (without quotes).
    Str(&'a str),
    /// Single punctuation character.
    Punct(char),
}

/// A token with its 1-based source line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    pub tok: Tok<'a>,
    pub line: u32,
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || matches!(c, b'_' | b'$' | b'%' | b'.')
}

fn ident_cont(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.')
}

/// Splits PTX source into tokens, dropping comments.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, SimError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1u32;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let start = line;
            i += 2;
            loop {
                if i + 1 >= b.len() {
                    return Err(SimError::Parse {
                        line: start,
                        msg: "unterminated /* comment".into(),
                    });
                }
                if b[i] == b'*' && b[i + 1] == b'/' {
                    i += 2;
                    break;
                }
                if b[i] == b'\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if c == b'"' {
            let s = i + 1;
            let mut j = s;
            while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                j += 1;
            }
            if j >= b.len() || b[j] != b'"' {
                return Err(SimError::Parse {
                    line,
                    msg: "unterminated string literal".into(),
                });
            }
            out.push(Token {
                tok: Tok::Str(&src[s..j]),
                line,
            });
            i = j + 1;
        } else if ident_start(c) {
            let s = i;
            i += 1;
            loop {
                if i < b.len() && ident_cont(b[i]) {
                    i += 1;
                } else if i + 2 < b.len()
                    && b[i] == b':'
                    && b[i + 1] == b':'
                    && ident_cont(b[i + 2])
                {
                    // modifiers such as `.L2::128B` or `.L1::no_allocate`
                    i += 2;
                } else {
                    break;
                }
            }
            out.push(Token {
                tok: Tok::Ident(&src[s..i]),
                line,
            });
        } else if c.is_ascii_digit() {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Num(&src[s..i]),
                line,
            });
        } else if b",;:{}[]()+-|!@<>=".contains(&c) {
            out.push(Token {
                tok: Tok::Punct(c as char),
                line,
            });
            i += 1;
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(SimError::Parse {
                line,
                msg: format!("unexpected character `{ch}`"),
            });
        }
    }
    Ok(out)
}

/// A parsed immediate value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Imm {
    /// Integer literal (already negated if written with `-`).
    Int(i128),
    /// `0fXXXXXXXX` single-precision bit pattern.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX` double-precision bit pattern, or a decimal float.
    F64(u64),
}

/// Parses a numeric literal token.
pub(crate) fn parse_num(s: &str, line: u32) -> Result<Imm, SimError> {
    let err = || SimError::Parse {
        line,
        msg: format!("bad numeric literal `{s}`"),
    };
    let lower = s.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("0f") {
        if h.len() == 8 {
            return u32::from_str_radix(h, 16).map(Imm::F32).map_err(|_| err());
        }
        return Err(err());
    }
    if let Some(h) = lower.strip_prefix("0d") {
        if h.len() == 16 {
            return u64::from_str_radix(h, 16).map(Imm::F64).map_err(|_| err());
        }
        return Err(err());
    }
    let t = lower.strip_suffix('u').unwrap_or(&lower);
    if let Some(h) = t.strip_prefix("0x") {
        return u64::from_str_radix(h, 16)
            .map(|v| Imm::Int(v as i128))
            .map_err(|_| err());
    }
    if let Some(h) = t.strip_prefix("0b") {
        return u64::from_str_radix(h, 2)
            .map(|v| Imm::Int(v as i128))
            .map_err(|_| err());
    }
    if t.contains('.') || t.contains('e') {
        return t
            .parse::<f64>()
            .map(|v| Imm::F64(v.to_bits()))
            .map_err(|_| err());
    }
    if t.len() > 1 && t.starts_with('0') {
        return u64::from_str_radix(&t[1..], 8)
            .map(|v| Imm::Int(v as i128))
            .map_err(|_| err());
    }
    t.parse::<u64>()
        .map(|v| Imm::Int(v as i128))
        .map_err(|_| err())
}
