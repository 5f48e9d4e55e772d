//! A strict validator for GGUF model files, run before llama.cpp opens them.
//!
//! # Why
//!
//! llama.cpp's own GGUF parser rejects most broken files cleanly, but some crafted or
//! corrupted ones make it abort the whole process (`GGML_ASSERT`), and some have hit heap
//! overflows in the past. A process that loads user-supplied model paths cannot recover from
//! an abort, so this crate checks the file first and turns every problem into a one-line
//! reason instead.
//!
//! # What is checked
//!
//! The header, the metadata key/values and the tensor-info table are read with every
//! length and count bounded *before* anything is allocated (see the `MAX_*` constants):
//!
//! - the magic (`GGUF`, little-endian only) and the version (2 or 3);
//! - the tensor and metadata counts, against the limits and against the file size;
//! - every key (non-empty, UTF-8, unique) and value type, string length and array length;
//!   `general.alignment` must be a power-of-two `u32` and `general.architecture` a UTF-8
//!   string;
//! - every tensor's name (non-empty, UTF-8, unique, at most 63 bytes), its dimensions
//!   (1 to 4, each positive, no overflow), its ggml type (known to the vendored llama.cpp,
//!   rows a multiple of the block size) and its data offset (aligned);
//! - that each tensor's data lies inside the file, that no two tensors overlap, and that
//!   they are packed in table order the way llama.cpp requires.
//!
//! The tensor data itself is never read: [`check_gguf_file`] reads only the header region,
//! through a buffered reader. [`check_model_file`] adds the friendly checks for the common
//! ways a model path is wrong (missing, a directory, not a GGUF file at all) and returns a
//! typed [`ModelFileError`].
//!
//! The layout follows `ggml/src/gguf.cpp` (llama.cpp as vendored by llama-cpp-sys-2
//! 0.1.161); the tensor type table mirrors `type_traits` in `ggml/src/ggml.c`. All values
//! are little-endian.
//!
//! The crate depends on `std` only, so the fuzz target (`fuzz/` in the rigllama repository)
//! builds it without building llama.cpp.
//!
//! # Example
//!
//! ```
//! // The smallest valid GGUF file: magic, version 3, no tensors, no metadata.
//! let mut bytes = b"GGUF".to_vec();
//! bytes.extend_from_slice(&3u32.to_le_bytes());
//! bytes.extend_from_slice(&0u64.to_le_bytes()); // tensor count
//! bytes.extend_from_slice(&0u64.to_le_bytes()); // metadata count
//! let summary = gguf_check::check_gguf_bytes(&bytes).unwrap();
//! assert_eq!((summary.version, summary.data_offset), (3, 24));
//!
//! // One byte short: a one-line reason naming the value and its byte offset.
//! let reason = gguf_check::check_gguf_bytes(&bytes[..23]).unwrap_err();
//! assert!(reason.starts_with("truncated: the metadata count at byte 16"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// What a valid GGUF header says (enough for describe/logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufSummary {
    /// The GGUF format version: 2 or 3.
    pub version: u32,
    /// How many tensors the tensor-info table lists.
    pub tensor_count: u64,
    /// How many metadata key/value pairs the file has.
    pub metadata_count: u64,
    /// The `general.architecture` value (e.g. `"gemma3"`), if the file has one.
    pub architecture: Option<String>,
    /// The byte offset of the tensor data section from the start of the file.
    pub data_offset: u64,
}

/// The most tensors a file may declare.
pub const MAX_TENSORS: u64 = 1 << 20;
/// The most metadata key/value pairs a file may declare.
pub const MAX_METADATA_ENTRIES: u64 = 1 << 20;
/// The longest key or string value, in bytes.
pub const MAX_STRING_BYTES: u64 = 1 << 20;
/// The most bytes the whole metadata section (keys and values) may take.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;
/// The most elements of one metadata array.
pub const MAX_ARRAY_ELEMENTS: u64 = 16 << 20;
/// The most dimensions of a tensor (GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;
/// The longest tensor name, in bytes: GGML_MAX_NAME is 64 including the terminating NUL,
/// and llama.cpp rejects longer names.
pub const MAX_TENSOR_NAME_BYTES: u64 = 63;
/// The data alignment when the file has no `general.alignment` key (GGUF_DEFAULT_ALIGNMENT).
pub const DEFAULT_ALIGNMENT: u64 = 32;

const MAGIC: &[u8; 4] = b"GGUF";
/// Where the key/value section starts: magic, version, tensor count, metadata count.
const HEADER_BYTES: u64 = 4 + 4 + 8 + 8;
/// The smallest possible tensor-info record: name length, n_dims, one dim, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;
/// The smallest possible key/value: key length, a 1-byte key, value type, a 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;

const KEY_ALIGNMENT: &str = "general.alignment";
const KEY_ARCHITECTURE: &str = "general.architecture";

/// Checks the GGUF file at `path`; Err is a one-line reason that names the offending value
/// and its byte offset, e.g. "tensor 3 (blk.0.attn_q.weight) data ends at byte 9000000000,
/// past the end of the file (253113024 bytes)".
///
/// Reads only the header region, through a buffered reader; the tensor data is never read.
/// An Err also covers a path that cannot be opened or is not a regular file. For a model
/// path given by a user, [`check_model_file`] gives clearer reasons for those cases.
pub fn check_gguf_file(path: &Path) -> Result<GgufSummary, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let source = Source::new(BufReader::with_capacity(64 * 1024, file), metadata.len());
    parse(source).map(|parsed| parsed.summary)
}

/// Checks a GGUF stored inside a larger file (a game's asset archive): the `size` bytes from
/// byte `offset` of the file at `path` (`size` 0: to the end of the file) must be a whole,
/// valid GGUF, its tensor data included. Err is a one-line reason; a range that does not lie
/// inside the file names the numbers ("offset 100 + size 50 ends at byte 150, past the end of
/// the file (120 bytes)").
pub fn check_gguf_range(path: &Path, offset: u64, size: u64) -> Result<GgufSummary, String> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let len = metadata.len();
    if offset >= len {
        return Err(format!(
            "offset {offset} is at or past the end of the file ({len} bytes)"
        ));
    }
    let size = if size == 0 { len - offset } else { size };
    let end = offset.saturating_add(size);
    if end > len {
        return Err(format!(
            "offset {offset} + size {size} ends at byte {end}, past the end of the file ({len} bytes)"
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("cannot seek to byte {offset}: {e}"))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|e| format!("cannot read at byte {offset}: {e}"))?;
    if &magic != b"GGUF" {
        return Err(format!(
            "the bytes at offset {offset} are not a GGUF (they start {:?}, not \"GGUF\")",
            String::from_utf8_lossy(&magic)
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("cannot seek to byte {offset}: {e}"))?;
    let source = Source::new(BufReader::with_capacity(64 * 1024, file.take(size)), size);
    parse(source)
        .map(|parsed| parsed.summary)
        .map_err(|e| format!("the GGUF at offset {offset} (size {size}): {e}"))
}

/// The same as [`check_gguf_file`] over bytes already in memory (for tests and fuzzing):
/// `bytes` is the whole file.
pub fn check_gguf_bytes(bytes: &[u8]) -> Result<GgufSummary, String> {
    parse(Source::new(bytes, bytes.len() as u64)).map(|parsed| parsed.summary)
}

/// Why [`check_model_file`] rejected a model path. Every variant carries the path, and its
/// [`Display`](fmt::Display) message names it, e.g. "model file not found: /models/x.gguf".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFileError {
    /// Nothing exists at the path.
    NotFound {
        /// The model path as given.
        path: PathBuf,
    },
    /// The path is a directory.
    IsDirectory {
        /// The model path as given.
        path: PathBuf,
    },
    /// The path exists but could not be inspected, opened or read.
    Unreadable {
        /// The model path as given.
        path: PathBuf,
        /// The I/O error's message.
        error: String,
    },
    /// The file is shorter than the 4-byte GGUF magic.
    TooShort {
        /// The model path as given.
        path: PathBuf,
        /// The file's length in bytes.
        len: u64,
    },
    /// The file does not start with the GGUF magic: it is not a GGUF file at all.
    NotGguf {
        /// The model path as given.
        path: PathBuf,
        /// The file's first four bytes.
        magic: [u8; 4],
    },
    /// The file starts like a GGUF file but its header fails [`check_gguf_file`].
    Malformed {
        /// The model path as given.
        path: PathBuf,
        /// The one-line reason from [`check_gguf_file`].
        reason: String,
    },
}

impl ModelFileError {
    /// The model path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ModelFileError::NotFound { path }
            | ModelFileError::IsDirectory { path }
            | ModelFileError::Unreadable { path, .. }
            | ModelFileError::TooShort { path, .. }
            | ModelFileError::NotGguf { path, .. }
            | ModelFileError::Malformed { path, .. } => path,
        }
    }
}

impl fmt::Display for ModelFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path().display();
        match self {
            ModelFileError::NotFound { .. } => write!(f, "model file not found: {path}"),
            ModelFileError::IsDirectory { .. } => {
                write!(f, "model path is a directory, not a .gguf file: {path}")
            }
            ModelFileError::Unreadable { error, .. } => {
                write!(f, "cannot read model file {path}: {error}")
            }
            ModelFileError::TooShort { len, .. } => {
                write!(
                    f,
                    "model file is too short to be GGUF ({len} bytes): {path}"
                )
            }
            ModelFileError::NotGguf { magic, .. } => write!(
                f,
                "not a GGUF file (bad magic {:?}): {path}",
                String::from_utf8_lossy(magic)
            ),
            ModelFileError::Malformed { reason, .. } => {
                write!(f, "malformed GGUF file {path}: {reason}")
            }
        }
    }
}

impl std::error::Error for ModelFileError {}

/// Checks a model path before llama.cpp opens it: first the common ways a path is wrong
/// (missing, a directory, unreadable, too short, not a GGUF file), each with its own
/// [`ModelFileError`] variant, then the whole header with [`check_gguf_file`].
///
/// ```no_run
/// # use std::path::Path;
/// match gguf_check::check_model_file(Path::new("models/tiny.gguf")) {
///     Ok(summary) => println!("{:?}, {} tensors", summary.architecture, summary.tensor_count),
///     // e.g. "model file not found: models/tiny.gguf"
///     Err(e) => eprintln!("{e}"),
/// }
/// ```
pub fn check_model_file(path: &Path) -> Result<GgufSummary, ModelFileError> {
    let path_buf = || path.to_path_buf();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelFileError::NotFound { path: path_buf() })
        }
        Err(e) => {
            return Err(ModelFileError::Unreadable {
                path: path_buf(),
                error: e.to_string(),
            })
        }
    };
    if meta.is_dir() {
        return Err(ModelFileError::IsDirectory { path: path_buf() });
    }
    let mut magic = [0u8; 4];
    match File::open(path).and_then(|mut f| f.read_exact(&mut magic)) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ModelFileError::TooShort {
            path: path_buf(),
            len: meta.len(),
        }),
        Err(e) => Err(ModelFileError::Unreadable {
            path: path_buf(),
            error: e.to_string(),
        }),
        Ok(()) if &magic != MAGIC => Err(ModelFileError::NotGguf {
            path: path_buf(),
            magic,
        }),
        // The magic is right: now the whole header, metadata and tensor table.
        Ok(()) => check_gguf_file(path).map_err(|reason| ModelFileError::Malformed {
            path: path_buf(),
            reason,
        }),
    }
}

/// A metadata value type (enum gguf_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    fn from_raw(raw: u32) -> Option<ValueType> {
        Some(match raw {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// Bytes per value; `None` for strings and arrays (variable size).
    fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The name gguf_type_name gives it.
    fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "str",
            ValueType::Array => "arr",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }
}

/// A tensor type llama.cpp can read: `type_traits[t]` in ggml.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TensorType {
    id: u32,
    name: &'static str,
    /// Elements per block (blck_size).
    block: u64,
    /// Bytes per block (type_size).
    size: u64,
}

/// Every `enum ggml_type` value below GGML_TYPE_COUNT (43) that has type traits, with
/// `blck_size` and `type_size` as ggml computes them (the block structs' `sizeof`).
#[rustfmt::skip]
const TENSOR_TYPES: &[TensorType] = &[
    TensorType { id: 0, name: "f32", block: 1, size: 4 },
    TensorType { id: 1, name: "f16", block: 1, size: 2 },
    TensorType { id: 2, name: "q4_0", block: 32, size: 18 },
    TensorType { id: 3, name: "q4_1", block: 32, size: 20 },
    TensorType { id: 6, name: "q5_0", block: 32, size: 22 },
    TensorType { id: 7, name: "q5_1", block: 32, size: 24 },
    TensorType { id: 8, name: "q8_0", block: 32, size: 34 },
    TensorType { id: 9, name: "q8_1", block: 32, size: 36 },
    TensorType { id: 10, name: "q2_K", block: 256, size: 84 },
    TensorType { id: 11, name: "q3_K", block: 256, size: 110 },
    TensorType { id: 12, name: "q4_K", block: 256, size: 144 },
    TensorType { id: 13, name: "q5_K", block: 256, size: 176 },
    TensorType { id: 14, name: "q6_K", block: 256, size: 210 },
    TensorType { id: 15, name: "q8_K", block: 256, size: 292 },
    TensorType { id: 16, name: "iq2_xxs", block: 256, size: 66 },
    TensorType { id: 17, name: "iq2_xs", block: 256, size: 74 },
    TensorType { id: 18, name: "iq3_xxs", block: 256, size: 98 },
    TensorType { id: 19, name: "iq1_s", block: 256, size: 50 },
    TensorType { id: 20, name: "iq4_nl", block: 32, size: 18 },
    TensorType { id: 21, name: "iq3_s", block: 256, size: 110 },
    TensorType { id: 22, name: "iq2_s", block: 256, size: 82 },
    TensorType { id: 23, name: "iq4_xs", block: 256, size: 136 },
    TensorType { id: 24, name: "i8", block: 1, size: 1 },
    TensorType { id: 25, name: "i16", block: 1, size: 2 },
    TensorType { id: 26, name: "i32", block: 1, size: 4 },
    TensorType { id: 27, name: "i64", block: 1, size: 8 },
    TensorType { id: 28, name: "f64", block: 1, size: 8 },
    TensorType { id: 29, name: "iq1_m", block: 256, size: 56 },
    TensorType { id: 30, name: "bf16", block: 1, size: 2 },
    TensorType { id: 34, name: "tq1_0", block: 256, size: 54 },
    TensorType { id: 35, name: "tq2_0", block: 256, size: 66 },
    TensorType { id: 39, name: "mxfp4", block: 32, size: 17 },
    TensorType { id: 40, name: "nvfp4", block: 64, size: 36 },
    TensorType { id: 41, name: "q1_0", block: 128, size: 18 },
    TensorType { id: 42, name: "q2_0", block: 64, size: 18 },
];

/// Type ids that once existed and that llama.cpp no longer reads (no type traits).
fn removed_tensor_type(id: u32) -> Option<&'static str> {
    match id {
        4 => Some("Q4_2"),
        5 => Some("Q4_3"),
        31 => Some("Q4_0_4_4"),
        32 => Some("Q4_0_4_8"),
        33 => Some("Q4_0_8_8"),
        36 => Some("IQ4_NL_4_4"),
        37 => Some("IQ4_NL_4_8"),
        38 => Some("IQ4_NL_8_8"),
        _ => None,
    }
}

fn tensor_type(id: u32) -> Option<TensorType> {
    TENSOR_TYPES.iter().copied().find(|t| t.id == id)
}

/// One entry of the tensor-info table, after its checks.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct TensorInfo {
    name: String,
    /// The name as shown in messages.
    shown: String,
    ty: TensorType,
    dims: Vec<u64>,
    /// Offset of the data from the start of the data section.
    offset: u64,
    /// ggml_nbytes of the (contiguous) tensor.
    nbytes: u64,
}

/// Everything the parser learned; the tests look at more than the summary.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Parsed {
    summary: GgufSummary,
    alignment: u64,
    tensors: Vec<TensorInfo>,
    file_len: u64,
}

/// A reader that knows its position and the file's length, so every read is checked
/// against the end of the file before it happens.
struct Source<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Source<R> {
    fn new(inner: R, len: u64) -> Self {
        Source { inner, pos: 0, len }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Err unless `n` more bytes exist; `what` names the value, for the message.
    fn ensure(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {} at byte {} needs {n} bytes but the file ends at byte {}",
                what(),
                self.pos,
                self.len
            ));
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], what: &dyn Fn() -> String) -> Result<(), String> {
        self.ensure(buf.len() as u64, what)?;
        self.inner.read_exact(buf).map_err(|e| {
            format!(
                "cannot read {} at byte {} ({} bytes): {e}",
                what(),
                self.pos,
                buf.len()
            )
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.fill(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads `n` bytes; the caller has bounded `n` already (it is at most MAX_STRING_BYTES).
    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>, String> {
        self.ensure(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// Reads past `n` bytes without keeping them.
    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        self.ensure(n, what)?;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| format!("cannot read {} at byte {}: {e}", what(), self.pos))?;
        if copied != n {
            return Err(format!(
                "truncated: {} at byte {} needs {n} bytes but only {copied} could be read",
                what(),
                self.pos
            ));
        }
        self.pos += n;
        Ok(())
    }
}

/// Shows bytes that should have been text, escaping anything unprintable.
fn show_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let mut out: String = bytes[..bytes.len().min(MAX)]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}

/// Shows a key or tensor name in a message: control characters escaped (so the message
/// stays on one line), at most 80 characters.
fn show_text(text: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::new();
    for (n, c) in text.chars().flat_map(char::escape_debug).enumerate() {
        if n == MAX {
            out.push_str("...");
            break;
        }
        out.push(c);
    }
    out
}

fn parse<R: Read>(mut src: Source<R>) -> Result<Parsed, String> {
    if src.len == 0 {
        return Err("the file is empty (0 bytes), not a GGUF model".into());
    }

    // Magic.
    let magic_what = || "the GGUF magic".to_string();
    if src.len < 4 {
        return Err(format!(
            "truncated: the file is only {} bytes, too short for the GGUF magic",
            src.len
        ));
    }
    let mut magic = [0u8; 4];
    src.fill(&mut magic, &magic_what)?;
    if &magic == b"FUGG" {
        return Err(
            "bad magic \"FUGG\" at byte 0: this is a big-endian GGUF file; only little-endian \
             GGUF files are supported"
                .into(),
        );
    }
    if &magic != MAGIC {
        return Err(format!(
            "bad magic \"{}\" at byte 0: expected \"GGUF\", this is not a GGUF model file",
            show_bytes(&magic)
        ));
    }

    // Version.
    let version = src.u32(&|| "the GGUF version".to_string())?;
    if version == 0 {
        return Err("GGUF version 0 at byte 4 is invalid".into());
    }
    if version & 0xFFFF == 0 {
        return Err(format!(
            "GGUF version at byte 4 reads {version} (0x{version:08x}), which is version {} \
             byte-swapped: this is a big-endian GGUF file; only little-endian GGUF files are \
             supported",
            version.swap_bytes()
        ));
    }
    if version == 1 {
        return Err(
            "GGUF version 1 at byte 4 is too old: llama.cpp no longer reads GGUFv1 files; \
             convert the model again with a current llama.cpp"
                .into(),
        );
    }
    if version > 3 {
        return Err(format!(
            "GGUF version {version} at byte 4 is too new: only versions 2 and 3 are supported"
        ));
    }

    // Counts.
    let tensor_count = src.u64(&|| "the tensor count".to_string())?;
    if tensor_count > MAX_TENSORS {
        return Err(format!(
            "tensor count {tensor_count} at byte 8 is absurd (the limit is {MAX_TENSORS})"
        ));
    }
    let metadata_count = src.u64(&|| "the metadata count".to_string())?;
    if metadata_count > MAX_METADATA_ENTRIES {
        return Err(format!(
            "metadata count {metadata_count} at byte 16 is absurd (the limit is \
             {MAX_METADATA_ENTRIES})"
        ));
    }
    let least = tensor_count * MIN_TENSOR_INFO_BYTES + metadata_count * MIN_KV_BYTES;
    if least > src.remaining() {
        return Err(format!(
            "truncated: {tensor_count} tensors (count at byte 8) and {metadata_count} metadata \
             entries (count at byte 16) need at least {least} bytes after byte {HEADER_BYTES}, \
             but the file ends at byte {}",
            src.len
        ));
    }

    // Metadata key/values.
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut architecture = None;
    let mut keys = HashSet::new();
    for index in 0..metadata_count {
        let entry = read_kv(&mut src, index)?;
        if !keys.insert(entry.key.clone()) {
            return Err(format!(
                "metadata entry {index} at byte {}: duplicate key '{}'",
                entry.at,
                show_text(&entry.key)
            ));
        }
        match entry.key.as_str() {
            KEY_ALIGNMENT => match entry.value {
                Value::U32(value) => {
                    if value == 0 || !value.is_power_of_two() {
                        return Err(format!(
                            "{KEY_ALIGNMENT} = {value} (entry {index} at byte {}) is not a \
                             power of two",
                            entry.at
                        ));
                    }
                    alignment = u64::from(value);
                }
                _ => {
                    return Err(format!(
                        "{KEY_ALIGNMENT} (entry {index} at byte {}) has type {}, must be u32",
                        entry.at, entry.type_name
                    ))
                }
            },
            KEY_ARCHITECTURE => match entry.value {
                Value::String(bytes) => match String::from_utf8(bytes) {
                    Ok(name) => architecture = Some(name),
                    Err(e) => {
                        return Err(format!(
                            "{KEY_ARCHITECTURE} (entry {index} at byte {}) is not valid UTF-8: \
                             \"{}\"",
                            entry.at,
                            show_bytes(e.as_bytes())
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "{KEY_ARCHITECTURE} (entry {index} at byte {}) has type {}, must be \
                         str",
                        entry.at, entry.type_name
                    ))
                }
            },
            _ => {}
        }
    }
    drop(keys);

    // Tensor infos.
    let mut tensors: Vec<TensorInfo> = Vec::new();
    let mut names = HashSet::new();
    for index in 0..tensor_count {
        let at = src.pos;
        let info = read_tensor_info(&mut src, index, alignment)?;
        if !names.insert(info.name.clone()) {
            return Err(format!(
                "tensor {index} at byte {at}: duplicate tensor name '{}'",
                info.shown
            ));
        }
        tensors.push(info);
    }
    drop(names);

    // The data section starts at the end of the header, padded to the alignment (gguf.cpp
    // pads only when there is at least one tensor).
    let header_end = src.pos;
    let data_offset = if tensor_count > 0 {
        align_up(header_end, alignment).ok_or_else(|| {
            format!("the header ends at byte {header_end}: padding it to {alignment} overflows")
        })?
    } else {
        header_end
    };
    if data_offset > src.len {
        return Err(format!(
            "the data section starts at byte {data_offset} (header end {header_end} padded to \
             {alignment}), past the end of the file ({} bytes)",
            src.len
        ));
    }

    // Every tensor's bytes lie inside the file.
    for (index, t) in tensors.iter().enumerate() {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.nbytes));
        match end {
            Some(end) if end <= src.len => {}
            Some(end) => {
                return Err(format!(
                    "tensor {index} ({}) data ends at byte {end}, past the end of the file ({} \
                     bytes)",
                    t.shown, src.len
                ))
            }
            None => {
                return Err(format!(
                    "tensor {index} ({}) data at offset {} + {} bytes overflows, past the end \
                     of the file ({} bytes)",
                    t.shown, t.offset, t.nbytes, src.len
                ))
            }
        }
    }

    // No two tensors share bytes.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].offset, i));
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        // In range: checked above against the file length.
        let a_end = a.offset + a.nbytes;
        if a_end > b.offset {
            return Err(format!(
                "tensor {} ({}) at data bytes {}..{} overlaps tensor {} ({}) at data bytes \
                 {}..{} (the data section starts at byte {data_offset})",
                pair[0],
                a.shown,
                a.offset,
                a_end,
                pair[1],
                b.shown,
                b.offset,
                b.offset + b.nbytes
            ));
        }
    }

    // llama.cpp also requires the tensors to be packed in table order, each padded to the
    // alignment (gguf.cpp: "tensor has offset X, expected Y"); say so before it does.
    let mut expected: u64 = 0;
    for (index, t) in tensors.iter().enumerate() {
        if t.offset != expected {
            return Err(format!(
                "tensor {index} ({}) data offset {} is not where llama.cpp expects it ({expected}): \
                 tensors must be stored in table order, each padded to the alignment {alignment}",
                t.shown, t.offset
            ));
        }
        // Both in range (the tensor lies inside the file, the alignment is at most 2^31).
        expected = align_up(t.offset + t.nbytes, alignment).unwrap_or(u64::MAX);
    }

    Ok(Parsed {
        summary: GgufSummary {
            version,
            tensor_count,
            metadata_count,
            architecture,
            data_offset,
        },
        alignment,
        tensors,
        file_len: src.len,
    })
}

fn align_up(value: u64, alignment: u64) -> Option<u64> {
    Some(value.checked_add(alignment - 1)? / alignment * alignment)
}

/// A metadata value, kept only where the validator needs it.
enum Value {
    U32(u32),
    String(Vec<u8>),
    Other,
}

struct Entry {
    key: String,
    /// Byte offset of the entry (its key length).
    at: u64,
    type_name: String,
    value: Value,
}

/// Checks that the metadata section stays within MAX_METADATA_BYTES after `more` bytes.
fn metadata_budget<R>(src: &Source<R>, more: u64, what: &dyn Fn() -> String) -> Result<(), String> {
    let used = (src.pos - HEADER_BYTES).saturating_add(more);
    if used > MAX_METADATA_BYTES {
        return Err(format!(
            "{} at byte {} takes the metadata section past the limit of {MAX_METADATA_BYTES} \
             bytes",
            what(),
            src.pos
        ));
    }
    Ok(())
}

/// Reads a string's length and checks it against `limit` and the file; returns it.
fn string_len<R: Read>(
    src: &mut Source<R>,
    limit: u64,
    what: &dyn Fn() -> String,
) -> Result<u64, String> {
    let at = src.pos;
    let len = src.u64(what)?;
    if len > limit {
        return Err(format!(
            "{} at byte {at}: string length {len} exceeds the limit of {limit} bytes",
            what()
        ));
    }
    if len > src.remaining() {
        return Err(format!(
            "truncated: {} at byte {at}: string length {len} runs past the end of the file \
             ({} bytes)",
            what(),
            src.len
        ));
    }
    Ok(len)
}

fn read_kv<R: Read>(src: &mut Source<R>, index: u64) -> Result<Entry, String> {
    let at = src.pos;
    let key_what = || format!("the key of metadata entry {index}");
    let key_len = string_len(src, MAX_STRING_BYTES, &key_what)?;
    metadata_budget(src, key_len, &key_what)?;
    let key_bytes = src.bytes(key_len, &key_what)?;
    if key_bytes.is_empty() {
        return Err(format!(
            "metadata entry {index} at byte {at} has an empty key"
        ));
    }
    let key = String::from_utf8(key_bytes).map_err(|e| {
        format!(
            "metadata entry {index} at byte {at}: key is not valid UTF-8: \"{}\"",
            show_bytes(e.as_bytes())
        )
    })?;
    let shown = show_text(&key);

    let type_at = src.pos;
    let type_what = || format!("the value type of metadata '{shown}'");
    let raw_type = src.u32(&type_what)?;
    let ty = ValueType::from_raw(raw_type).ok_or_else(|| {
        format!(
            "metadata '{shown}' (entry {index}) has unknown value type {raw_type} at byte \
             {type_at}"
        )
    })?;

    if ty != ValueType::Array {
        let value = read_scalar(src, &key, &shown, ty)?;
        return Ok(Entry {
            key,
            at,
            type_name: ty.name().to_string(),
            value,
        });
    }

    // Array: element type, element count, elements.
    let elem_at = src.pos;
    let raw_elem = src.u32(&|| format!("the array element type of metadata '{shown}'"))?;
    let elem = ValueType::from_raw(raw_elem).ok_or_else(|| {
        format!(
            "metadata '{shown}' (entry {index}) has unknown array element type {raw_elem} at \
             byte {elem_at}"
        )
    })?;
    if elem == ValueType::Array {
        return Err(format!(
            "metadata '{shown}' (entry {index}) at byte {elem_at}: arrays of arrays are not \
             allowed"
        ));
    }
    let count_at = src.pos;
    let count = src.u64(&|| format!("the array length of metadata '{shown}'"))?;
    if count > MAX_ARRAY_ELEMENTS {
        return Err(format!(
            "metadata '{shown}' (entry {index}) at byte {count_at}: array length {count} exceeds \
             the limit of {MAX_ARRAY_ELEMENTS} elements"
        ));
    }
    let elements_what = || format!("the {count} elements of metadata array '{shown}'");
    match elem.fixed_size() {
        Some(size) => {
            // count <= 16M and size <= 8: no overflow.
            let total = count * size;
            if total > src.remaining() {
                return Err(format!(
                    "metadata '{shown}' (entry {index}) at byte {count_at}: array length {count} \
                     of {} ({total} bytes) runs past the end of the file ({} bytes)",
                    elem.name(),
                    src.len
                ));
            }
            metadata_budget(src, total, &elements_what)?;
            src.skip(total, &elements_what)?;
        }
        None => {
            // Strings: each has at least its 8-byte length.
            let least = count * 8;
            if least > src.remaining() {
                return Err(format!(
                    "metadata '{shown}' (entry {index}) at byte {count_at}: array length {count} \
                     of strings (at least {least} bytes) runs past the end of the file ({} \
                     bytes)",
                    src.len
                ));
            }
            for i in 0..count {
                let what = || format!("string {i} of metadata array '{shown}'");
                let len = string_len(src, MAX_STRING_BYTES, &what)?;
                metadata_budget(src, len, &what)?;
                src.skip(len, &what)?;
            }
        }
    }
    Ok(Entry {
        key,
        at,
        type_name: format!("arr[{}]", elem.name()),
        value: Value::Other,
    })
}

fn read_scalar<R: Read>(
    src: &mut Source<R>,
    key: &str,
    shown: &str,
    ty: ValueType,
) -> Result<Value, String> {
    let what = || format!("the {} value of metadata '{shown}'", ty.name());
    match ty {
        ValueType::U32 => Ok(Value::U32(src.u32(&what)?)),
        ValueType::String => {
            let len = string_len(src, MAX_STRING_BYTES, &what)?;
            metadata_budget(src, len, &what)?;
            if key == KEY_ARCHITECTURE {
                Ok(Value::String(src.bytes(len, &what)?))
            } else {
                src.skip(len, &what)?;
                Ok(Value::Other)
            }
        }
        _ => {
            // Scalars other than u32 and str are fixed-size and never needed.
            let size = ty.fixed_size().unwrap_or(0);
            metadata_budget(src, size, &what)?;
            src.skip(size, &what)?;
            Ok(Value::Other)
        }
    }
}

fn read_tensor_info<R: Read>(
    src: &mut Source<R>,
    index: u64,
    alignment: u64,
) -> Result<TensorInfo, String> {
    let at = src.pos;
    let name_what = || format!("the name of tensor {index}");
    let name_len = string_len(src, MAX_STRING_BYTES, &name_what)?;
    if name_len > MAX_TENSOR_NAME_BYTES {
        return Err(format!(
            "tensor {index} at byte {at}: name is {name_len} bytes long, llama.cpp allows at \
             most {MAX_TENSOR_NAME_BYTES}"
        ));
    }
    let name_bytes = src.bytes(name_len, &name_what)?;
    if name_bytes.is_empty() {
        return Err(format!("tensor {index} at byte {at} has an empty name"));
    }
    let name = String::from_utf8(name_bytes).map_err(|e| {
        format!(
            "tensor {index} at byte {at}: name is not valid UTF-8: \"{}\"",
            show_bytes(e.as_bytes())
        )
    })?;
    let shown = show_text(&name);

    let dims_at = src.pos;
    let n_dims = src.u32(&|| format!("n_dims of tensor {index} ({shown})"))?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(format!(
            "tensor {index} ({shown}) has n_dims {n_dims} at byte {dims_at}, must be 1 to \
             {MAX_DIMS}"
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    let mut elements: u64 = 1;
    for d in 0..n_dims {
        let dim_at = src.pos;
        let raw = src.u64(&|| format!("dimension {d} of tensor {index} ({shown})"))?;
        let dim = raw as i64;
        if dim <= 0 {
            return Err(format!(
                "tensor {index} ({shown}) dimension {d} at byte {dim_at} is {dim}, must be > 0"
            ));
        }
        dims.push(raw);
        // ggml counts elements in int64_t.
        elements = elements
            .checked_mul(raw)
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| {
                format!(
                    "tensor {index} ({shown}) shape {dims:?} (dimension {d} at byte {dim_at}): \
                     the element count overflows"
                )
            })?;
    }

    let type_at = src.pos;
    let raw_type = src.u32(&|| format!("the type of tensor {index} ({shown})"))?;
    let ty = match tensor_type(raw_type) {
        Some(ty) => ty,
        None => {
            return Err(match removed_tensor_type(raw_type) {
                Some(old) => format!(
                    "tensor {index} ({shown}) has ggml type {raw_type} ({old}) at byte \
                     {type_at}, which llama.cpp no longer supports"
                ),
                None => format!(
                    "tensor {index} ({shown}) has unknown ggml type {raw_type} at byte {type_at}"
                ),
            })
        }
    };
    if dims[0] % ty.block != 0 {
        return Err(format!(
            "tensor {index} ({shown}) of type {} has {} elements per row (at byte {}), not a \
             multiple of the block size {}",
            ty.name,
            dims[0],
            dims_at + 4,
            ty.block
        ));
    }
    let nbytes = (elements / ty.block).checked_mul(ty.size).ok_or_else(|| {
        format!(
            "tensor {index} ({shown}) of type {} with shape {dims:?} (at byte {}): the size in \
             bytes overflows",
            ty.name,
            dims_at + 4
        )
    })?;

    let offset_at = src.pos;
    let offset = src.u64(&|| format!("the data offset of tensor {index} ({shown})"))?;
    if offset % alignment != 0 {
        return Err(format!(
            "tensor {index} ({shown}) data offset {offset} at byte {offset_at} is not a \
             multiple of the alignment {alignment}"
        ));
    }
    Ok(TensorInfo {
        name,
        shown,
        ty,
        dims,
        offset,
        nbytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_path() -> std::path::PathBuf {
        match std::env::var_os("RIGLLAMA_MODEL") {
            Some(path) => path.into(),
            None => {
                let home = std::env::var_os("HOME").expect("HOME is set");
                Path::new(&home).join(".cache/rigllama/models/gemma3-270m-q4_k_m.gguf")
            }
        }
    }

    fn parse_file(path: &Path) -> Parsed {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        parse(Source::new(BufReader::new(file), len)).unwrap()
    }

    /// llama.cpp requires tensor i's data to start where tensor i-1's padded data ends
    /// (gguf.cpp: "tensor has offset X, expected Y"); with our nbytes the real model must
    /// satisfy that exactly, and the last tensor must end at the end of the file. This is
    /// what shows the type table and the size formula agree with ggml_nbytes.
    fn assert_layout_matches_llama_cpp(parsed: &Parsed) {
        let mut expected = 0u64;
        for t in &parsed.tensors {
            assert_eq!(t.offset, expected, "offset of {}", t.name);
            assert_eq!(t.nbytes, ggml_nbytes(t.ty, &t.dims), "nbytes of {}", t.name);
            expected += align_up(t.nbytes, parsed.alignment).unwrap();
        }
        let last = parsed.tensors.last().unwrap();
        assert_eq!(
            parsed.summary.data_offset + last.offset + last.nbytes,
            parsed.file_len,
            "the last tensor ends at the end of the file"
        );
    }

    /// ggml_nbytes() from ggml.c, with the strides gguf.cpp sets (nb[0] = type_size,
    /// nb[1] = nb[0] * ne[0] / blck_size, nb[j] = nb[j-1] * ne[j-1]).
    fn ggml_nbytes(ty: TensorType, dims: &[u64]) -> u64 {
        let mut ne = [1u64; 4];
        ne[..dims.len()].copy_from_slice(dims);
        let mut nb = [0u64; 4];
        nb[0] = ty.size;
        nb[1] = nb[0] * (ne[0] / ty.block);
        for j in 2..4 {
            nb[j] = nb[j - 1] * ne[j - 1];
        }
        let mut nbytes = if ty.block == 1 {
            ty.size + (ne[0] - 1) * nb[0]
        } else {
            ne[0] * nb[0] / ty.block
        };
        for j in 1..4 {
            nbytes += (ne[j] - 1) * nb[j];
        }
        nbytes
    }

    #[test]
    fn real_model_layout_agrees_with_ggml_nbytes() {
        let path = model_path();
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-model first (or set RIGLLAMA_MODEL)",
            path.display()
        );
        let parsed = parse_file(&path);
        assert_eq!(parsed.summary.version, 3);
        assert_eq!(parsed.alignment, 32);
        assert_eq!(parsed.tensors.len() as u64, parsed.summary.tensor_count);
        assert_layout_matches_llama_cpp(&parsed);
        // Values printed by ggml_nbytes() for this file.
        let embd = parsed
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .unwrap();
        assert_eq!((embd.ty.name, embd.nbytes), ("q8_0", 178_257_920));
        let norm = parsed
            .tensors
            .iter()
            .find(|t| t.name == "output_norm.weight")
            .unwrap();
        assert_eq!((norm.ty.name, norm.nbytes), ("f32", 2560));
    }

    #[test]
    fn second_model_layout_if_present() {
        let path = model_path().with_file_name("gemma3-270m-first12layers.gguf");
        if !path.is_file() {
            eprintln!("{} not present; skipped", path.display());
            return;
        }
        let parsed = parse_file(&path);
        assert_layout_matches_llama_cpp(&parsed);
    }

    #[test]
    fn type_table_is_consistent() {
        let mut seen = HashSet::new();
        for t in TENSOR_TYPES {
            assert!(t.id < 43, "{} is below GGML_TYPE_COUNT", t.name);
            assert!(seen.insert(t.id), "{} listed once", t.name);
            assert!(
                removed_tensor_type(t.id).is_none(),
                "{} not removed",
                t.name
            );
            assert!(t.block > 0 && t.size > 0);
        }
        // Every id below GGML_TYPE_COUNT is either known or removed.
        for id in 0..43 {
            assert!(tensor_type(id).is_some() != removed_tensor_type(id).is_some());
        }
        assert!(tensor_type(43).is_none() && removed_tensor_type(43).is_none());
    }

    #[test]
    fn align_up_works() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(1, 32), Some(32));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(u64::MAX, 32), None);
    }
}
