//! rigllama's snapshot ("save game") container: a llama.cpp KV-cache state of one sequence,
//! wrapped so it can never reach llama.cpp unless it is whole and was made for the same model
//! and the same KV layout.
//!
//! llama.cpp's own session files carry no fingerprint of the model, so a file from another
//! model can crash the process that loads it. This container carries one, plus everything
//! that shapes the cache and a SHA-256 over all of it. [`decode`] checks, in order: the
//! magic, the format version, the checksum, then every field with bounds; [`Shape::check`]
//! then compares the snapshot with the engine and names the first difference. Only after
//! both does the payload go to llama.cpp.
//!
//! Layout (little-endian): magic `RIGLSNAP`, format version (u32), then length-prefixed
//! fields (strings u16 + bytes, the token list u32 + i32s, the payload u64 + bytes), then
//! the SHA-256 of everything before it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use sha2::{Digest, Sha256};

/// The first 8 bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"RIGLSNAP";
/// The container layout this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Longest string field, in bytes.
const MAX_STRING: usize = 4096;

/// A model's fingerprint: SHA-256 over its GGUF header, metadata and tensor table.
pub type Fingerprint = [u8; 32];

/// Everything that must match between a snapshot and the engine that loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The model file's fingerprint.
    pub fingerprint: Fingerprint,
    /// The model's name (file name) for messages.
    pub model_name: String,
    /// `general.architecture`.
    pub architecture: String,
    /// Layers.
    pub n_layer: u32,
    /// Embedding width.
    pub n_embd: u32,
    /// KV cache data types, as llama.cpp's ggml type numbers.
    pub type_k: u32,
    /// See `type_k`.
    pub type_v: u32,
    /// The flash attention setting (it decides how V is laid out).
    pub flash_attention: u32,
    /// The version of the llama.cpp build whose state format the payload uses.
    pub llama_cpp: String,
}

impl Shape {
    /// Whether a snapshot of this shape holding `n_tokens` tokens fits `engine`, whose
    /// context holds `n_ctx` tokens. The error names the first difference.
    pub fn check(&self, n_tokens: usize, engine: &Shape, n_ctx: u32) -> Result<(), String> {
        if self.fingerprint != engine.fingerprint {
            return Err(format!(
                "snapshot is for model {} ({}), this engine has {} ({})",
                self.model_name,
                short_hex(&self.fingerprint),
                engine.model_name,
                short_hex(&engine.fingerprint)
            ));
        }
        let pairs: [(&str, String, String); 7] = [
            (
                "architecture",
                self.architecture.clone(),
                engine.architecture.clone(),
            ),
            (
                "layer count",
                self.n_layer.to_string(),
                engine.n_layer.to_string(),
            ),
            (
                "embedding width",
                self.n_embd.to_string(),
                engine.n_embd.to_string(),
            ),
            (
                "K cache type",
                self.type_k.to_string(),
                engine.type_k.to_string(),
            ),
            (
                "V cache type",
                self.type_v.to_string(),
                engine.type_v.to_string(),
            ),
            (
                "flash attention setting",
                self.flash_attention.to_string(),
                engine.flash_attention.to_string(),
            ),
            (
                "llama.cpp version",
                self.llama_cpp.clone(),
                engine.llama_cpp.clone(),
            ),
        ];
        for (what, theirs, ours) in pairs {
            if theirs != ours {
                return Err(format!(
                    "snapshot has {what} {theirs}, this engine has {ours}"
                ));
            }
        }
        if n_tokens > n_ctx as usize {
            return Err(format!(
                "snapshot holds {n_tokens} tokens but this engine's n_ctx is {n_ctx}"
            ));
        }
        Ok(())
    }
}

fn short_hex(bytes: &[u8]) -> String {
    bytes[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A snapshot's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The rigllama version that wrote it.
    pub library_version: String,
    /// What must match the loading engine.
    pub shape: Shape,
    /// The tokens whose KV cache the payload holds, position by position from 0.
    pub tokens: Vec<i32>,
    /// llama.cpp's state of the sequence.
    pub payload: Vec<u8>,
}

/// Serialises `snapshot` with its checksum.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(snapshot.payload.len() + snapshot.tokens.len() * 4 + 512);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    put_str(&mut out, &snapshot.library_version);
    let shape = &snapshot.shape;
    out.extend_from_slice(&shape.fingerprint);
    put_str(&mut out, &shape.model_name);
    put_str(&mut out, &shape.architecture);
    for value in [
        shape.n_layer,
        shape.n_embd,
        shape.type_k,
        shape.type_v,
        shape.flash_attention,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    put_str(&mut out, &shape.llama_cpp);
    out.extend_from_slice(&(snapshot.tokens.len() as u32).to_le_bytes());
    for token in &snapshot.tokens {
        out.extend_from_slice(&token.to_le_bytes());
    }
    out.extend_from_slice(&(snapshot.payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&snapshot.payload);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    // Longer strings are cut at a character boundary: these are labels, not data.
    let mut end = text.len().min(MAX_STRING);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// Parses and checks a snapshot: magic, format version, checksum, then each field with
/// bounds. The error is one line saying what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a rigllama snapshot (bad magic)".into());
    }
    let mut reader = Reader {
        bytes,
        at: MAGIC.len(),
    };
    let version = reader.u32("format version")?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "snapshot format version {version} is not the one this library reads ({FORMAT_VERSION})"
        ));
    }
    if bytes.len() < MAGIC.len() + 4 + 32 {
        return Err(format!("snapshot is truncated ({} bytes)", bytes.len()));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err("snapshot is damaged or truncated (checksum mismatch)".into());
    }
    let mut reader = Reader {
        bytes: body,
        at: reader.at,
    };
    let library_version = reader.string("library version")?;
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(reader.take(32, "model fingerprint")?);
    let model_name = reader.string("model name")?;
    let architecture = reader.string("architecture")?;
    let n_layer = reader.u32("layer count")?;
    let n_embd = reader.u32("embedding width")?;
    let type_k = reader.u32("K cache type")?;
    let type_v = reader.u32("V cache type")?;
    let flash_attention = reader.u32("flash attention setting")?;
    let llama_cpp = reader.string("llama.cpp version")?;
    let n_tokens = reader.u32("token count")? as usize;
    let token_bytes = reader.take(
        n_tokens
            .checked_mul(4)
            .ok_or("snapshot token count overflows")?,
        "tokens",
    )?;
    let tokens = token_bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let payload_len = reader.u64("payload length")?;
    let payload_len = usize::try_from(payload_len)
        .map_err(|_| format!("snapshot payload length {payload_len} is too large"))?;
    let payload = reader.take(payload_len, "payload")?.to_vec();
    if reader.at != body.len() {
        return Err(format!(
            "snapshot has {} unexpected bytes after the payload",
            body.len() - reader.at
        ));
    }
    Ok(Snapshot {
        library_version,
        shape: Shape {
            fingerprint,
            model_name,
            architecture,
            n_layer,
            n_embd,
            type_k,
            type_v,
            flash_attention,
            llama_cpp,
        },
        tokens,
        payload,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "snapshot is truncated: {what} needs {n} bytes at offset {}, {} remain",
                    self.at,
                    self.bytes.len().saturating_sub(self.at)
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(u64::from_le_bytes(array))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let b = self.take(2, what)?;
        let len = u16::from_le_bytes([b[0], b[1]]) as usize;
        if len > MAX_STRING {
            return Err(format!(
                "snapshot {what} is {len} bytes (at most {MAX_STRING})"
            ));
        }
        let text = self.take(len, what)?;
        String::from_utf8(text.to_vec()).map_err(|_| format!("snapshot {what} is not UTF-8"))
    }
}

/// The fingerprint of a model: SHA-256 over `header`, the bytes of its GGUF file before the
/// tensor data (header, metadata, tensor table).
pub fn fingerprint(header: &[u8]) -> Fingerprint {
    Sha256::digest(header).into()
}
