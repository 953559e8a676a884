//! What the driver reads from PTX before compiling it: `.version`, `.target`, and each entry's
//! launch bounds (`.maxntid`, `.reqntid`), which `cuLaunchKernel` checks at the call.

/// The architecture a module is written for: `.target sm_90` is `{ sm: 90, suffix: None }`,
/// `sm_90a` has suffix `a` (that exact architecture only), `sm_100f` suffix `f` (the family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub sm: u32,
    pub suffix: Option<char>,
}

impl Target {
    /// Whether a device of compute capability `cc` (major * 10 + minor) runs this PTX: plain
    /// targets run on their architecture and every later one, `a` targets on theirs only, `f`
    /// targets on later minors of the same major.
    pub fn runs_on(&self, cc: u32) -> bool {
        match self.suffix {
            None => self.sm <= cc,
            Some('a') => self.sm == cc,
            Some(_) => self.sm / 10 == cc / 10 && self.sm <= cc,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sm_{}", self.sm)?;
        if let Some(s) = self.suffix {
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Launch bounds of one `.entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBounds {
    pub name: String,
    pub maxntid: Option<[u32; 3]>,
    pub reqntid: Option<[u32; 3]>,
}

/// The header of a PTX module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxHeader {
    pub version: (u32, u32),
    pub target: Target,
    pub entries: Vec<EntryBounds>,
}

impl PtxHeader {
    /// Reads the header. Errors say what is missing or malformed.
    pub fn scan(ptx: &str) -> Result<PtxHeader, String> {
        let toks = tokens(&strip_comments(ptx));
        let mut version = None;
        let mut target = None;
        let mut entries = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            match toks[i].as_str() {
                ".version" => {
                    let v = toks.get(i + 1).map(String::as_str).unwrap_or("");
                    version = Some(parse_version(v)?);
                    i += 2;
                }
                ".target" => {
                    let mut j = i + 1;
                    while j < toks.len() {
                        let t = toks[j].as_str();
                        if let Some(found) = parse_target(t) {
                            target.get_or_insert(found);
                        }
                        if toks.get(j + 1).map(String::as_str) != Some(",") {
                            break;
                        }
                        j += 2;
                    }
                    i = j + 1;
                }
                ".entry" => {
                    let (bounds, next) = entry_bounds(&toks, i + 1)?;
                    entries.push(bounds);
                    i = next;
                }
                _ => i += 1,
            }
        }
        let version = version.ok_or("the PTX has no `.version` directive")?;
        let target = target.ok_or("the PTX has no `.target sm_XX` directive")?;
        Ok(PtxHeader {
            version,
            target,
            entries,
        })
    }

    /// The launch bounds of entry `name`, if it exists.
    pub fn entry(&self, name: &str) -> Option<&EntryBounds> {
        self.entries.iter().find(|e| e.name == name)
    }
}

fn parse_version(v: &str) -> Result<(u32, u32), String> {
    let bad = || format!("malformed `.version {v}`: expected MAJOR.MINOR");
    let (major, minor) = v.split_once('.').ok_or_else(bad)?;
    Ok((
        major.parse().map_err(|_| bad())?,
        minor.parse().map_err(|_| bad())?,
    ))
}

fn parse_target(t: &str) -> Option<Target> {
    let digits = t
        .strip_prefix("sm_")
        .or_else(|| t.strip_prefix("compute_"))?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let sm = digits[..end].parse().ok()?;
    let suffix = digits[end..].chars().next();
    Some(Target { sm, suffix })
}

/// From the token after `.entry`: the name, the parameter list, then performance directives
/// up to the body's `{` (or `;` for a declaration).
fn entry_bounds(toks: &[String], mut i: usize) -> Result<(EntryBounds, usize), String> {
    let name = toks
        .get(i)
        .cloned()
        .ok_or("`.entry` without a name at the end of the PTX")?;
    i += 1;
    if toks.get(i).map(String::as_str) == Some("(") {
        let mut depth = 0usize;
        while i < toks.len() {
            match toks[i].as_str() {
                "(" => depth += 1,
                ")" => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    let mut bounds = EntryBounds {
        name,
        maxntid: None,
        reqntid: None,
    };
    while i < toks.len() && toks[i] != "{" && toks[i] != ";" {
        let directive = toks[i].clone();
        i += 1;
        if directive == ".maxntid" || directive == ".reqntid" {
            let mut dims = [1u32; 3];
            for (k, dim) in dims.iter_mut().enumerate() {
                let Some(n) = toks.get(i).and_then(|t| t.parse::<u32>().ok()) else {
                    return Err(format!(
                        "malformed `{directive}` of `.entry {}`: expected 1 to 3 numbers",
                        bounds.name
                    ));
                };
                *dim = n;
                i += 1;
                if k < 2 && toks.get(i).map(String::as_str) == Some(",") {
                    i += 1;
                } else {
                    break;
                }
            }
            if directive == ".maxntid" {
                bounds.maxntid = Some(dims);
            } else {
                bounds.reqntid = Some(dims);
            }
        }
    }
    Ok((bounds, i))
}

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |n| &r[n..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |n| &r[n + 2..]);
            out.push(' ');
        } else if rest.starts_with('"') {
            // A string (`.file 1 "name"`): copied whole, so a `//` inside it stays.
            let end = rest[1..].find('"').map_or(rest.len(), |n| n + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Words (`.entry`, `sm_90`, `%r1`, `9.0`, names) and single punctuation characters.
fn tokens(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in src.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '$' | '%') {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = r#"
//
// Generated by NVIDIA NVVM Compiler .version 1.0 in a comment
//
.version 9.0
.target sm_80
.address_size 64

	// .globl	fill
.visible .entry fill(
	.param .u64 fill_param_0,
	.param .u32 fill_param_1
)
.maxntid 256, 1, 1
{
	ret;
}
/* .entry hidden() .maxntid 1 */
.visible .entry exact(.param .u64 p) .reqntid 32, 4 .minnctapersm 2
{
	ret;
}
.visible .entry plain()
{
	ret;
}
"#;

    #[test]
    fn reads_version_target_and_bounds() {
        let h = PtxHeader::scan(PTX).unwrap();
        assert_eq!(h.version, (9, 0));
        assert_eq!(
            h.target,
            Target {
                sm: 80,
                suffix: None
            }
        );
        assert_eq!(h.entry("fill").unwrap().maxntid, Some([256, 1, 1]));
        assert_eq!(h.entry("exact").unwrap().reqntid, Some([32, 4, 1]));
        assert_eq!(h.entry("exact").unwrap().maxntid, None);
        assert_eq!(h.entry("plain").unwrap().maxntid, None);
        assert!(h.entry("hidden").is_none());
    }

    #[test]
    fn targets_with_suffixes() {
        let h = PtxHeader::scan(".version 8.8\n.target sm_90a, debug\n").unwrap();
        assert_eq!(h.target.to_string(), "sm_90a");
        assert!(h.target.runs_on(90));
        assert!(!h.target.runs_on(100));
        let f = parse_target("sm_100f").unwrap();
        assert!(f.runs_on(103) && !f.runs_on(120) && !f.runs_on(90));
        let plain = parse_target("sm_75").unwrap();
        assert!(plain.runs_on(75) && plain.runs_on(90) && !plain.runs_on(70));
    }

    #[test]
    fn missing_directives_are_errors() {
        assert!(PtxHeader::scan(".target sm_80")
            .unwrap_err()
            .contains(".version"));
        assert!(PtxHeader::scan(".version 9.0")
            .unwrap_err()
            .contains(".target"));
        assert!(PtxHeader::scan(".version nine\n.target sm_80")
            .unwrap_err()
            .contains("MAJOR.MINOR"));
    }
}
