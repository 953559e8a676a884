//! Golden fixtures recorded from real PyTorch (CPU) for `adaptive_avg_pool2d`
//! forward and backward. See `tests/golden/README.md` for the file format and
//! how to regenerate `tests/golden/fixtures.bin`.
//!
//! This is test-support code: a malformed fixture file makes [`load_all`]
//! panic with a message saying what is wrong and where.
#![allow(dead_code)]

/// The raw fixture file, embedded at compile time.
pub static FIXTURES: &[u8] = include_bytes!("../golden/fixtures.bin");

const MAGIC: &[u8; 8] = b"APGOLD01";

/// Element type of a golden case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoldenDType {
    F32,
    F64,
    F16,
    Bf16,
}

impl GoldenDType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            GoldenDType::F32 => 4,
            GoldenDType::F64 => 8,
            GoldenDType::F16 | GoldenDType::Bf16 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(GoldenDType::F32),
            1 => Some(GoldenDType::F64),
            2 => Some(GoldenDType::F16),
            3 => Some(GoldenDType::Bf16),
            _ => None,
        }
    }
}

/// One recorded PyTorch call: input, output, a random grad_output and the
/// resulting grad_input. All four arrays are raw little-endian elements in
/// physical memory order: NCHW / CHW when `channels_last` is false, NHWC / HWC
/// when it is true.
#[derive(Clone, Debug)]
pub struct GoldenCase {
    pub name: String,
    pub dtype: GoldenDType,
    pub channels_last: bool,
    /// Logical input shape in PyTorch order: `[N, C, H, W]` or `[C, H, W]`.
    pub input_shape: Vec<usize>,
    /// `output_size` as passed to PyTorch; `None` keeps that input dimension.
    pub output_size: (Option<usize>, Option<usize>),
    /// Logical output shape as PyTorch returned it (same rank as the input).
    pub output_shape: Vec<usize>,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    pub grad_output: Vec<u8>,
    pub grad_input: Vec<u8>,
}

/// Element types a golden array can be decoded into.
pub trait GoldenElement: Copy {
    const DTYPE: GoldenDType;
    /// Decode one element from the first `DTYPE.size_in_bytes()` bytes
    /// (little-endian). Panics if `bytes` is shorter than that.
    fn from_le(bytes: &[u8]) -> Self;
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    assert!(
        bytes.len() >= N,
        "golden element needs {N} bytes, got {}",
        bytes.len()
    );
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl GoldenElement for f32 {
    const DTYPE: GoldenDType = GoldenDType::F32;
    fn from_le(bytes: &[u8]) -> Self {
        f32::from_le_bytes(le_array(bytes))
    }
}

impl GoldenElement for f64 {
    const DTYPE: GoldenDType = GoldenDType::F64;
    fn from_le(bytes: &[u8]) -> Self {
        f64::from_le_bytes(le_array(bytes))
    }
}

impl GoldenElement for half::f16 {
    const DTYPE: GoldenDType = GoldenDType::F16;
    fn from_le(bytes: &[u8]) -> Self {
        half::f16::from_le_bytes(le_array(bytes))
    }
}

impl GoldenElement for half::bf16 {
    const DTYPE: GoldenDType = GoldenDType::Bf16;
    fn from_le(bytes: &[u8]) -> Self {
        half::bf16::from_le_bytes(le_array(bytes))
    }
}

impl GoldenCase {
    /// Decode one of the raw arrays (`self.input`, `self.output`, ...) into
    /// values of type `T`. Returns `None` if `T` does not match `self.dtype`
    /// or the byte length is not a multiple of the element size.
    pub fn decode<T: GoldenElement>(&self, raw: &[u8]) -> Option<Vec<T>> {
        if T::DTYPE != self.dtype {
            return None;
        }
        let chunks = raw.chunks_exact(self.dtype.size_in_bytes());
        if !chunks.remainder().is_empty() {
            return None;
        }
        Some(chunks.map(T::from_le).collect())
    }

    /// Number of input elements (product of `input_shape`).
    pub fn input_numel(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Number of output elements (product of `output_shape`).
    pub fn output_numel(&self) -> usize {
        self.output_shape.iter().product()
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> &'a [u8] {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                s
            }
            None => panic!(
                "golden fixtures truncated: need {n} bytes for {what} at offset {}, file has {} bytes",
                self.pos,
                self.data.len()
            ),
        }
    }
    fn u8(&mut self, what: &str) -> u8 {
        self.take(1, what)[0]
    }
    fn u16(&mut self, what: &str) -> u16 {
        u16::from_le_bytes(le_array(self.take(2, what)))
    }
    fn u32(&mut self, what: &str) -> u32 {
        u32::from_le_bytes(le_array(self.take(4, what)))
    }
    fn u64(&mut self, what: &str) -> u64 {
        u64::from_le_bytes(le_array(self.take(8, what)))
    }
    fn i64(&mut self, what: &str) -> i64 {
        i64::from_le_bytes(le_array(self.take(8, what)))
    }
    fn usize(&mut self, what: &str) -> usize {
        let v = self.u64(what);
        usize::try_from(v)
            .unwrap_or_else(|_| panic!("golden fixtures: {what} = {v} does not fit in usize"))
    }
}

fn parse_case(r: &mut Reader<'_>, index: usize) -> GoldenCase {
    let name_len = r.u16("name length") as usize;
    let name = String::from_utf8(r.take(name_len, "name").to_vec())
        .unwrap_or_else(|e| panic!("golden case #{index}: name is not UTF-8: {e}"));
    let ctx = format!("golden case #{index} ({name})");

    let dtype_code = r.u8("dtype");
    let dtype = GoldenDType::from_code(dtype_code)
        .unwrap_or_else(|| panic!("{ctx}: unknown dtype code {dtype_code}"));
    let channels_last = match r.u8("layout") {
        0 => false,
        1 => true,
        other => panic!("{ctx}: unknown layout code {other}"),
    };
    let rank = r.u8("rank") as usize;
    assert!(
        rank == 3 || rank == 4,
        "{ctx}: rank must be 3 or 4, got {rank}"
    );
    let input_shape: Vec<usize> = (0..rank).map(|_| r.usize("input dim")).collect();
    let mut os = [None, None];
    for slot in &mut os {
        let v = r.i64("output_size");
        *slot = match v {
            -1 => None,
            v if v >= 0 => Some(
                usize::try_from(v)
                    .unwrap_or_else(|_| panic!("{ctx}: output_size {v} does not fit in usize")),
            ),
            v => panic!("{ctx}: invalid output_size entry {v}"),
        };
    }
    let output_shape: Vec<usize> = (0..rank).map(|_| r.usize("output dim")).collect();

    let elem = dtype.size_in_bytes();
    let mut array = |what: &str, expected: usize| -> Vec<u8> {
        let count = r.usize(what);
        assert_eq!(
            count, expected,
            "{ctx}: {what} has {count} elements, shape says {expected}"
        );
        let bytes = count
            .checked_mul(elem)
            .unwrap_or_else(|| panic!("{ctx}: {what} byte length overflows"));
        r.take(bytes, what).to_vec()
    };
    let in_numel: usize = input_shape.iter().product();
    let out_numel: usize = output_shape.iter().product();
    let input = array("input", in_numel);
    let output = array("output", out_numel);
    let grad_output = array("grad_output", out_numel);
    let grad_input = array("grad_input", in_numel);

    GoldenCase {
        name,
        dtype,
        channels_last,
        input_shape,
        output_size: (os[0], os[1]),
        output_shape,
        input,
        output,
        grad_output,
        grad_input,
    }
}

/// Parse [`FIXTURES`] into cases. Panics with a clear message if the file is
/// malformed (bad magic, truncation, unknown codes, inconsistent lengths).
pub fn load_all() -> Vec<GoldenCase> {
    parse(FIXTURES)
}

/// Parse a fixture file given as bytes (see [`load_all`]).
pub fn parse(data: &[u8]) -> Vec<GoldenCase> {
    let mut r = Reader { data, pos: 0 };
    let magic = r.take(MAGIC.len(), "magic");
    assert!(
        magic == MAGIC,
        "golden fixtures: bad magic {magic:?}, expected {:?} (regenerate with tests/golden/gen_golden.py)",
        String::from_utf8_lossy(MAGIC)
    );
    let count = r.u32("case count") as usize;
    let cases: Vec<GoldenCase> = (0..count).map(|i| parse_case(&mut r, i)).collect();
    assert!(
        r.pos == data.len(),
        "golden fixtures: {} trailing bytes after {count} cases",
        data.len() - r.pos
    );
    cases
}
