//! The GGUF header validator against the real model, a corpus of malformed files built from
//! a tiny valid GGUF written here, and proptest mutations. Loads no model into llama.cpp.
//!
//! Set RIGLLAMA_GGUF_CORPUS_OUT=DIR to also write every corpus file into DIR (to seed the
//! fuzzer or feed the files to llama.cpp's own parser).

use std::path::{Path, PathBuf};

use gguf_check::{check_gguf_bytes, check_gguf_file, GgufSummary};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// A tiny GGUF writer.

const T_U8: u32 = 0;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_STR: u32 = 8;
const T_ARR: u32 = 9;
const T_U64: u32 = 10;

const GGML_F32: u32 = 0;
const GGML_Q4_0: u32 = 2;

#[derive(Clone, Debug)]
enum Val {
    /// A fixed-size scalar of gguf type `ty`, written as given.
    Scalar { ty: u32, bytes: Vec<u8> },
    /// A string value.
    Str(Vec<u8>),
    /// A string that claims `len` bytes and has none.
    StrClaim(u64),
    /// An array: element type, declared count, the element bytes as written.
    Arr {
        elem: u32,
        count: u64,
        payload: Vec<u8>,
    },
}

fn u32v(v: u32) -> Val {
    Val::Scalar {
        ty: T_U32,
        bytes: v.to_le_bytes().to_vec(),
    }
}

fn f32v(v: f32) -> Val {
    Val::Scalar {
        ty: T_F32,
        bytes: v.to_le_bytes().to_vec(),
    }
}

fn str_array(items: &[&[u8]]) -> Val {
    let mut payload = Vec::new();
    for item in items {
        payload.extend_from_slice(&(item.len() as u64).to_le_bytes());
        payload.extend_from_slice(item);
    }
    Val::Arr {
        elem: T_STR,
        count: items.len() as u64,
        payload,
    }
}

fn i32_array(items: &[i32]) -> Val {
    Val::Arr {
        elem: T_I32,
        count: items.len() as u64,
        payload: items.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

#[derive(Clone, Debug)]
struct Tensor {
    name: Vec<u8>,
    /// `None`: the number of `dims`.
    n_dims: Option<u32>,
    dims: Vec<u64>,
    ty: u32,
    offset: u64,
}

fn tensor(name: &str, dims: &[u64], ty: u32, offset: u64) -> Tensor {
    Tensor {
        name: name.as_bytes().to_vec(),
        n_dims: None,
        dims: dims.to_vec(),
        ty,
        offset,
    }
}

#[derive(Clone, Debug)]
struct Gguf {
    magic: [u8; 4],
    version: u32,
    /// `None`: the number of `tensors` / `kvs`.
    tensor_count: Option<u64>,
    kv_count: Option<u64>,
    kvs: Vec<(Vec<u8>, Val)>,
    tensors: Vec<Tensor>,
    /// The padding the writer puts before the data section.
    pad_to: usize,
    /// Bytes of tensor data after the padding.
    data_len: usize,
}

impl Gguf {
    /// A valid file: six key/values and two F32 tensors, 4x2 and 8 (32 bytes each).
    fn valid() -> Gguf {
        Gguf {
            magic: *b"GGUF",
            version: 3,
            tensor_count: None,
            kv_count: None,
            kvs: vec![
                (b"general.architecture".to_vec(), Val::Str(b"tiny".to_vec())),
                (b"general.alignment".to_vec(), u32v(32)),
                (b"tiny.context_length".to_vec(), u32v(128)),
                (b"tiny.rope.freq_base".to_vec(), f32v(10000.0)),
                (
                    b"tokenizer.ggml.tokens".to_vec(),
                    str_array(&[b"<s>", b"a", b"bc"]),
                ),
                (b"tokenizer.ggml.token_type".to_vec(), i32_array(&[3, 1, 1])),
            ],
            tensors: vec![
                tensor("a.weight", &[4, 2], GGML_F32, 0),
                tensor("b.weight", &[8], GGML_F32, 32),
            ],
            pad_to: 32,
            data_len: 64,
        }
    }

    fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        let n_tensors = self.tensor_count.unwrap_or(self.tensors.len() as u64);
        let n_kv = self.kv_count.unwrap_or(self.kvs.len() as u64);
        out.extend_from_slice(&n_tensors.to_le_bytes());
        out.extend_from_slice(&n_kv.to_le_bytes());
        for (key, val) in &self.kvs {
            out.extend_from_slice(&(key.len() as u64).to_le_bytes());
            out.extend_from_slice(key);
            match val {
                Val::Scalar { ty, bytes } => {
                    out.extend_from_slice(&ty.to_le_bytes());
                    out.extend_from_slice(bytes);
                }
                Val::Str(s) => {
                    out.extend_from_slice(&T_STR.to_le_bytes());
                    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    out.extend_from_slice(s);
                }
                Val::StrClaim(len) => {
                    out.extend_from_slice(&T_STR.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                }
                Val::Arr {
                    elem,
                    count,
                    payload,
                } => {
                    out.extend_from_slice(&T_ARR.to_le_bytes());
                    out.extend_from_slice(&elem.to_le_bytes());
                    out.extend_from_slice(&count.to_le_bytes());
                    out.extend_from_slice(payload);
                }
            }
        }
        for t in &self.tensors {
            out.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
            out.extend_from_slice(&t.name);
            let n_dims = t.n_dims.unwrap_or(t.dims.len() as u32);
            out.extend_from_slice(&n_dims.to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        if !self.tensors.is_empty() {
            while !out.len().is_multiple_of(self.pad_to) {
                out.push(0);
            }
        }
        out.extend((0..self.data_len).map(|i| (i % 251) as u8));
        out
    }

    fn with_kv(mut self, key: &[u8], val: Val) -> Gguf {
        self.kvs.push((key.to_vec(), val));
        self
    }

    fn set_kv(mut self, key: &str, val: Val) -> Gguf {
        let slot = self
            .kvs
            .iter_mut()
            .find(|(k, _)| k == key.as_bytes())
            .expect("key present");
        slot.1 = val;
        self
    }

    fn edit_tensor(mut self, index: usize, edit: impl FnOnce(&mut Tensor)) -> Gguf {
        edit(&mut self.tensors[index]);
        self
    }
}

fn corpus_out(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("RIGLLAMA_GGUF_CORPUS_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.gguf")), bytes).unwrap();
    }
}

#[track_caller]
fn assert_rejected(name: &str, bytes: &[u8], word: &str) -> String {
    corpus_out(name, bytes);
    match check_gguf_bytes(bytes) {
        Ok(summary) => panic!("{name}: accepted ({summary:?}), expected an error with {word:?}"),
        Err(message) => {
            assert!(
                message.contains(word),
                "{name}: message {message:?} does not contain {word:?}"
            );
            assert!(!message.contains('\n'), "{name}: message is one line");
            println!("{name}: {message}");
            message
        }
    }
}

// ---------------------------------------------------------------------------------------
// The real models.

fn model_path() -> PathBuf {
    match std::env::var_os("RIGLLAMA_MODEL") {
        Some(path) => path.into(),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/rigllama/models/gemma3-270m-q4_k_m.gguf")
        }
    }
}

#[test]
fn real_model_passes() {
    let path = model_path();
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-model first (or set RIGLLAMA_MODEL)",
        path.display()
    );
    let summary = check_gguf_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(summary.version, 3);
    assert_eq!(summary.architecture.as_deref(), Some("gemma3"));
    assert!(summary.tensor_count > 0 && summary.metadata_count > 0);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(summary.data_offset > 24 && summary.data_offset < len);
    assert_eq!(summary.data_offset % 32, 0);
    if path.ends_with("gemma3-270m-q4_k_m.gguf") {
        // What llama.cpp's gguf_init_from_file reports for this file.
        assert_eq!(
            summary,
            GgufSummary {
                version: 3,
                tensor_count: 236,
                metadata_count: 33,
                architecture: Some("gemma3".into()),
                data_offset: 6_525_120,
            }
        );
    }
}

#[test]
fn second_real_model_passes_if_present() {
    let path = model_path().with_file_name("gemma3-270m-first12layers.gguf");
    if !path.is_file() {
        eprintln!("{} not present; skipped", path.display());
        return;
    }
    let summary = check_gguf_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(summary.architecture.as_deref(), Some("gemma3"));
}

/// The real model's header region, truncated: every cut inside the header fails cleanly.
#[test]
fn real_model_header_prefixes_fail() {
    let path = model_path();
    if !path.is_file() {
        return; // real_model_passes reports the missing file.
    }
    let summary = check_gguf_file(&path).unwrap();
    let mut header = vec![0u8; summary.data_offset as usize];
    use std::io::Read;
    std::fs::File::open(&path)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    // Every cut in the first 4 KiB, then 300 spread over the rest (each check rereads the
    // prefix, so all 6.5 million would take hours).
    let step = header.len() / 300;
    let cuts = (0..4096)
        .chain((4096..header.len()).step_by(step))
        .chain([header.len() - 1]);
    for cut in cuts {
        assert!(check_gguf_bytes(&header[..cut]).is_err(), "cut at {cut}");
    }
}

// ---------------------------------------------------------------------------------------
// The tiny file, valid and variants.

#[test]
fn tiny_valid_file_passes() {
    let gguf = Gguf::valid();
    let bytes = gguf.bytes();
    corpus_out("valid", &bytes);
    let header_len = gguf.header().len() as u64;
    let summary = check_gguf_bytes(&bytes).unwrap();
    assert_eq!(
        summary,
        GgufSummary {
            version: 3,
            tensor_count: 2,
            metadata_count: 6,
            architecture: Some("tiny".into()),
            data_offset: header_len.div_ceil(32) * 32,
        }
    );
    assert_eq!(summary.data_offset + 64, bytes.len() as u64);
}

#[test]
fn valid_variants_pass() {
    let cases: Vec<(&str, Gguf)> = vec![
        ("version 2", {
            let mut g = Gguf::valid();
            g.version = 2;
            g
        }),
        ("no alignment key (default 32)", {
            let mut g = Gguf::valid();
            g.kvs.retain(|(k, _)| k != b"general.alignment");
            g
        }),
        ("alignment 64", {
            let mut g = Gguf::valid()
                .set_kv("general.alignment", u32v(64))
                .edit_tensor(1, |t| t.offset = 64);
            g.pad_to = 64;
            g.data_len = 96;
            g
        }),
        ("no architecture", {
            let mut g = Gguf::valid();
            g.kvs.retain(|(k, _)| k != b"general.architecture");
            g
        }),
        // Values need not be UTF-8 (byte-level vocabularies); only keys and names must.
        (
            "non-UTF-8 string value",
            Gguf::valid().with_kv(b"tiny.bytes", str_array(&[b"\xff\xfe", b""])),
        ),
        ("empty arrays", {
            Gguf::valid().with_kv(
                b"tiny.empty",
                Val::Arr {
                    elem: T_U64,
                    count: 0,
                    payload: vec![],
                },
            )
        }),
        ("a quantized tensor", {
            let mut g = Gguf::valid().edit_tensor(1, |t| {
                t.dims = vec![64];
                t.ty = GGML_Q4_0; // 2 blocks of 18 bytes
            });
            g.data_len = 32 + 36;
            g
        }),
        ("no tensors, no metadata", {
            let mut g = Gguf::valid();
            g.kvs.clear();
            g.tensors.clear();
            g.data_len = 0;
            g
        }),
    ];
    for (name, gguf) in cases {
        let bytes = gguf.bytes();
        corpus_out(
            &format!("valid-{}", name.replace([' ', '(', ')'], "_")),
            &bytes,
        );
        if let Err(e) = check_gguf_bytes(&bytes) {
            panic!("{name}: rejected: {e}");
        }
    }
    let mut empty = Gguf::valid();
    empty.kvs.clear();
    empty.tensors.clear();
    empty.data_len = 0;
    let summary = check_gguf_bytes(&empty.bytes()).unwrap();
    assert_eq!(summary.data_offset, 24);
    assert_eq!(summary.architecture, None);
}

#[test]
fn every_prefix_of_the_file_is_rejected() {
    let bytes = Gguf::valid().bytes();
    for cut in 0..bytes.len() {
        match check_gguf_bytes(&bytes[..cut]) {
            Ok(summary) => panic!("prefix of {cut} bytes accepted: {summary:?}"),
            Err(message) => assert!(!message.is_empty() && !message.contains('\n')),
        }
    }
    let header_len = Gguf::valid().header().len();
    for cut in 24..header_len {
        let message = check_gguf_bytes(&bytes[..cut]).unwrap_err();
        assert!(
            message.contains("truncated") || message.contains("past the end"),
            "cut {cut}: {message}"
        );
    }
}

#[test]
fn bad_magic_and_not_gguf() {
    let mut g = Gguf::valid();
    g.magic = *b"GGML";
    assert_rejected("bad-magic", &g.bytes(), "magic");
    assert_rejected(
        "html",
        b"<!DOCTYPE html><html><body>Not found</body></html>",
        "magic",
    );
    assert_rejected("empty", b"", "empty");
    assert_rejected("three-bytes", b"GGU", "too short");
}

#[test]
fn versions() {
    let with_version = |v: u32| {
        let mut g = Gguf::valid();
        g.version = v;
        g.bytes()
    };
    let m = assert_rejected("version-1", &with_version(1), "too old");
    assert!(m.contains("version 1"), "{m}");
    assert_rejected("version-0", &with_version(0), "invalid");
    assert_rejected("version-4", &with_version(4), "too new");
    let m = assert_rejected(
        "version-big-endian",
        &with_version(3u32.swap_bytes()),
        "big-endian",
    );
    assert!(m.contains("version 3 byte-swapped"), "{m}");
    let mut g = Gguf::valid();
    g.magic = *b"FUGG";
    assert_rejected("magic-big-endian", &g.bytes(), "big-endian");
}

#[test]
fn absurd_counts() {
    let mut g = Gguf::valid();
    g.tensor_count = Some(u64::MAX);
    let m = assert_rejected("tensor-count-max", &g.bytes(), "tensor count");
    assert!(
        m.contains("18446744073709551615") && m.contains("byte 8"),
        "{m}"
    );

    let mut g = Gguf::valid();
    g.kv_count = Some(u64::MAX);
    let m = assert_rejected("kv-count-max", &g.bytes(), "metadata count");
    assert!(m.contains("byte 16"), "{m}");

    // Within the limits, but the file is far too small for them.
    let mut g = Gguf::valid();
    g.tensor_count = Some(1 << 20);
    assert_rejected("tensor-count-1m", &g.bytes(), "need at least");
    let mut g = Gguf::valid();
    g.kv_count = Some(1000);
    assert_rejected("kv-count-1000", &g.bytes(), "need at least");
    // One more tensor declared than written: runs into the data section and past the end.
    let mut g = Gguf::valid();
    g.tensor_count = Some(3);
    assert!(check_gguf_bytes(&g.bytes()).is_err());
}

#[test]
fn strings() {
    let m = assert_rejected(
        "string-length-max",
        &Gguf::valid()
            .with_kv(b"tiny.huge", Val::StrClaim(u64::MAX))
            .bytes(),
        "string length",
    );
    assert!(m.contains("exceeds the limit"), "{m}");
    // Under the 1 MiB limit but past the end of the file.
    assert_rejected(
        "string-past-end",
        &Gguf::valid()
            .with_kv(b"tiny.long", Val::StrClaim(1 << 19))
            .bytes(),
        "past the end",
    );
    // A key with a huge length.
    let mut bytes = b"GGUF\x03\0\0\0".to_vec();
    bytes.extend_from_slice(&0u64.to_le_bytes()); // tensors
    bytes.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    let m = assert_rejected("key-length-max", &bytes, "string length");
    assert!(
        m.contains("key of metadata entry 0") && m.contains("byte 24"),
        "{m}"
    );
    // A string array element with a huge length.
    let mut payload = Vec::new();
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.push(b'x');
    payload.extend_from_slice(&(2u64 << 20).to_le_bytes());
    assert_rejected(
        "string-array-element-length",
        &Gguf::valid()
            .with_kv(
                b"tiny.strs",
                Val::Arr {
                    elem: T_STR,
                    count: 2,
                    payload,
                },
            )
            .bytes(),
        "string 1 of metadata array",
    );
}

#[test]
fn arrays() {
    let arr = |elem: u32, count: u64| {
        Gguf::valid()
            .with_kv(
                b"tiny.arr",
                Val::Arr {
                    elem,
                    count,
                    payload: vec![0; 16],
                },
            )
            .bytes()
    };
    let m = assert_rejected("array-length-max", &arr(T_U32, u64::MAX), "array length");
    assert!(m.contains("exceeds the limit"), "{m}");
    // count * 8 would overflow u64 without the limit.
    assert_rejected("array-length-2-61", &arr(T_U64, 1 << 61), "array length");
    // Within the element limit, but the bytes are not in the file.
    let m = assert_rejected("array-past-end", &arr(T_U64, 1 << 23), "past the end");
    assert!(m.contains("array length 8388608"), "{m}");
    assert_rejected(
        "string-array-past-end",
        &arr(T_STR, 1 << 20),
        "past the end",
    );
    assert_rejected("array-of-arrays", &arr(T_ARR, 1), "arrays of arrays");
    assert_rejected(
        "array-unknown-element",
        &arr(13, 1),
        "unknown array element type",
    );
}

#[test]
fn metadata_total_limit() {
    // Five 16 Mi-element u8 arrays: each within the limits, 80 MiB together.
    let mut g = Gguf::valid();
    for i in 0..5 {
        g = g.with_kv(
            format!("tiny.blob{i}").as_bytes(),
            Val::Arr {
                elem: T_U8,
                count: 16 << 20,
                payload: vec![0; 16 << 20],
            },
        );
    }
    let bytes = g.bytes();
    let m = check_gguf_bytes(&bytes).unwrap_err();
    assert!(m.contains("past the limit of 67108864 bytes"), "{m}");
    assert!(m.contains("tiny.blob3"), "{m}");
}

#[test]
fn metadata_keys_and_types() {
    assert_rejected(
        "unknown-value-type",
        &Gguf::valid()
            .with_kv(
                b"tiny.odd",
                Val::Scalar {
                    ty: 13,
                    bytes: vec![0; 8],
                },
            )
            .bytes(),
        "unknown value type 13",
    );
    let m = assert_rejected(
        "invalid-utf8-key",
        &Gguf::valid().with_kv(b"gen\xffral.x", u32v(1)).bytes(),
        "UTF-8",
    );
    assert!(m.contains("key"), "{m}");
    let m = assert_rejected(
        "control-chars-in-key",
        &Gguf::valid()
            .with_kv(b"a\nb", u32v(1))
            .with_kv(b"a\nb", u32v(1))
            .bytes(),
        "duplicate key 'a\\nb'",
    );
    assert!(!m.contains('\n'), "{m}");
    assert_rejected(
        "empty-key",
        &Gguf::valid().with_kv(b"", u32v(1)).bytes(),
        "empty key",
    );
    assert_rejected(
        "duplicate-key",
        &Gguf::valid()
            .with_kv(b"tiny.context_length", u32v(1))
            .bytes(),
        "duplicate key",
    );
    assert_rejected(
        "alignment-48",
        &Gguf::valid().set_kv("general.alignment", u32v(48)).bytes(),
        "power of two",
    );
    assert_rejected(
        "alignment-0",
        &Gguf::valid().set_kv("general.alignment", u32v(0)).bytes(),
        "power of two",
    );
    assert_rejected(
        "alignment-u64",
        &Gguf::valid()
            .set_kv(
                "general.alignment",
                Val::Scalar {
                    ty: T_U64,
                    bytes: 32u64.to_le_bytes().to_vec(),
                },
            )
            .bytes(),
        "must be u32",
    );
    assert_rejected(
        "architecture-u32",
        &Gguf::valid()
            .set_kv("general.architecture", u32v(7))
            .bytes(),
        "must be str",
    );
    assert_rejected(
        "architecture-not-utf8",
        &Gguf::valid()
            .set_kv("general.architecture", Val::Str(b"ll\xc3ma".to_vec()))
            .bytes(),
        "UTF-8",
    );
}

#[test]
fn tensor_shapes_and_types() {
    let edit = |f: &dyn Fn(&mut Tensor)| Gguf::valid().edit_tensor(1, f).bytes();
    let m = assert_rejected(
        "n-dims-0",
        &edit(&|t| {
            t.n_dims = Some(0);
            t.dims.clear();
        }),
        "n_dims 0",
    );
    assert!(m.contains("tensor 1 (b.weight)"), "{m}");
    assert_rejected(
        "n-dims-5",
        &edit(&|t| t.dims = vec![8, 1, 1, 1, 1]),
        "n_dims 5",
    );
    assert_rejected(
        "n-dims-max",
        &edit(&|t| t.n_dims = Some(u32::MAX)),
        "n_dims 4294967295",
    );
    assert_rejected("dim-0", &edit(&|t| t.dims = vec![8, 0]), "must be > 0");
    assert_rejected(
        "dim-negative",
        &edit(&|t| t.dims = vec![(-8i64) as u64]),
        "must be > 0",
    );
    let m = assert_rejected(
        "dims-product-overflow",
        &edit(&|t| t.dims = vec![1 << 32, 1 << 32]),
        "overflows",
    );
    assert!(m.contains("element count"), "{m}");
    // Elements fit in i64, bytes do not fit in u64.
    assert_rejected(
        "bytes-overflow",
        &edit(&|t| t.dims = vec![1 << 31, 1 << 31]),
        "size in bytes overflows",
    );
    assert_rejected(
        "unknown-type",
        &edit(&|t| t.ty = 99),
        "unknown ggml type 99",
    );
    assert_rejected("type-count", &edit(&|t| t.ty = 43), "unknown ggml type 43");
    assert_rejected(
        "removed-type-q4-2",
        &edit(&|t| t.ty = 4),
        "no longer supports",
    );
    assert_rejected(
        "removed-type-q4-0-4-4",
        &edit(&|t| t.ty = 31),
        "no longer supports",
    );
    assert_rejected(
        "block-size",
        &edit(&|t| t.ty = GGML_Q4_0),
        "not a multiple of the block size 32",
    );
    assert_rejected(
        "duplicate-tensor-name",
        &edit(&|t| t.name = b"a.weight".to_vec()),
        "duplicate tensor name",
    );
    assert_rejected(
        "invalid-utf8-tensor-name",
        &edit(&|t| t.name = b"b.\xc0weight".to_vec()),
        "UTF-8",
    );
    assert_rejected(
        "empty-tensor-name",
        &edit(&|t| t.name.clear()),
        "empty name",
    );
    assert_rejected(
        "tensor-name-64-bytes",
        &edit(&|t| t.name = vec![b'n'; 64]),
        "at most 63",
    );
}

#[test]
fn tensor_offsets() {
    let edit = |f: &dyn Fn(&mut Tensor)| Gguf::valid().edit_tensor(1, f).bytes();
    let m = assert_rejected(
        "offset-not-aligned",
        &edit(&|t| t.offset = 36),
        "not a multiple of the alignment 32",
    );
    assert!(m.contains("offset 36"), "{m}");
    let m = assert_rejected(
        "data-past-end",
        &edit(&|t| t.offset = 1 << 40),
        "past the end of the file",
    );
    assert!(
        m.starts_with("tensor 1 (b.weight) data ends at byte 10995116"),
        "{m}"
    );
    assert_rejected(
        "offset-overflow",
        &edit(&|t| t.offset = u64::MAX - 31),
        "overflows",
    );
    let m = assert_rejected("overlap", &edit(&|t| t.offset = 0), "overlaps");
    assert!(m.contains("a.weight") && m.contains("b.weight"), "{m}");
    // A partial overlap: a 4x16 tensor (256 bytes) at 0 and b at 32.
    let mut g = Gguf::valid().edit_tensor(0, |t| t.dims = vec![4, 16]);
    g.data_len = 512;
    assert_rejected("overlap-partial", &g.bytes(), "overlaps");
    // Aligned, in the file, no overlap, but not packed the way llama.cpp requires.
    let mut g = Gguf::valid().edit_tensor(1, |t| t.offset = 96);
    g.data_len = 128;
    let m = assert_rejected("gap-between-tensors", &g.bytes(), "expects it (32)");
    assert!(m.starts_with("tensor 1 (b.weight) data offset 96"), "{m}");
    let mut g = Gguf::valid()
        .edit_tensor(0, |t| t.offset = 32)
        .edit_tensor(1, |t| t.offset = 0);
    g.data_len = 64;
    assert_rejected("tensors-out-of-order", &g.bytes(), "table order");
    // The last tensor one byte short.
    let mut g = Gguf::valid();
    g.data_len = 63;
    let m = assert_rejected("last-tensor-short", &g.bytes(), "past the end of the file");
    assert!(m.contains("tensor 1 (b.weight)"), "{m}");
    // An alignment so large the data section would start past the end.
    let g = Gguf::valid()
        .set_kv("general.alignment", u32v(1 << 31))
        .edit_tensor(1, |t| t.offset = 0)
        .edit_tensor(0, |t| t.name = b"zz".to_vec());
    let mut g = g;
    g.tensors.truncate(1);
    assert_rejected("data-section-past-end", &g.bytes(), "data section starts");
}

#[test]
fn file_checks() {
    let dir = std::env::temp_dir().join(format!("rigllama-gguf-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let valid = Gguf::valid().bytes();
    let good = dir.join("good.gguf");
    std::fs::write(&good, &valid).unwrap();
    assert_eq!(
        check_gguf_file(&good).unwrap(),
        check_gguf_bytes(&valid).unwrap()
    );
    let short = dir.join("short.gguf");
    std::fs::write(&short, &valid[..valid.len() - 1]).unwrap();
    assert!(check_gguf_file(&short)
        .unwrap_err()
        .contains("past the end of the file"));
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(check_gguf_file(&empty).unwrap_err().contains("empty"));
    let m = check_gguf_file(&dir.join("missing.gguf")).unwrap_err();
    assert!(
        m.contains("cannot open") && m.contains("missing.gguf"),
        "{m}"
    );
    assert!(check_gguf_file(&dir)
        .unwrap_err()
        .contains("not a regular file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Property tests: nothing panics, every error is one line.

fn check_no_panic(bytes: &[u8]) -> Result<(), TestCaseError> {
    match check_gguf_bytes(bytes) {
        Ok(summary) => {
            prop_assert!(summary.data_offset <= bytes.len() as u64);
            prop_assert!(summary.version == 2 || summary.version == 3);
        }
        Err(message) => {
            prop_assert!(!message.is_empty());
            prop_assert!(!message.contains('\n'), "{}", message);
        }
    }
    Ok(())
}

/// Values that tend to break length arithmetic.
fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(4),
        Just(5),
        Just(31),
        Just(32),
        Just(63),
        Just(64),
        Just(1 << 20),
        Just(1 << 24),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 61),
        Just(i64::MAX as u64),
        Just(1 << 63),
        Just(u64::MAX),
        Just(u64::MAX - 31),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn byte_mutations_of_the_header_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let gguf = Gguf::valid();
        let header_len = gguf.header().len();
        let mut bytes = gguf.bytes();
        for (at, value) in edits {
            bytes[at.index(header_len)] = value;
        }
        check_no_panic(&bytes)?;
    }

    #[test]
    fn byte_mutations_anywhere_with_truncation_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Gguf::valid().bytes();
        let len = bytes.len();
        for (at, value) in edits {
            bytes[at.index(len)] = value;
        }
        bytes.truncate(cut.index(len + 1));
        check_no_panic(&bytes)?;
    }

    #[test]
    fn interesting_u64_writes_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), interesting_u64(), any::<bool>()), 1..4)
    ) {
        let gguf = Gguf::valid();
        let header_len = gguf.header().len();
        let mut bytes = gguf.bytes();
        for (at, value, as_u32) in edits {
            let width = if as_u32 { 4 } else { 8 };
            let at = at.index(header_len - width + 1);
            bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
        check_no_panic(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_no_panic(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_after_a_good_preamble_never_panic(
        version in prop_oneof![Just(2u32), Just(3u32)],
        tensors in 0u64..4,
        kvs in 0u64..4,
        rest in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&tensors.to_le_bytes());
        bytes.extend_from_slice(&kvs.to_le_bytes());
        bytes.extend_from_slice(&rest);
        check_no_panic(&bytes)?;
    }
}
