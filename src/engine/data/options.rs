//! How to load a model and size its context.

use std::path::PathBuf;

use crate::engine::error::{Error, Result};

/// Called during model loading with progress in `0.0..=1.0`; returning `false` aborts the load.
pub type ProgressFn<'a> = dyn FnMut(f32) -> bool + 'a;

/// How to load a model and size its context.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    /// Where the GGUF starts inside `model_path`, for a model kept in a larger file (a game's
    /// asset archive); 0 = the file is the GGUF.
    pub model_offset: u64,
    /// The GGUF's length in bytes from `model_offset`; 0 = to the end of the file.
    pub model_size: u64,
    /// Let llama.cpp repack weights on the CPU into the layout its fastest kernels read (its
    /// default; `false` is llama-server's `--no-repack`: slower on this CPU, but the same
    /// arithmetic as an RPC server or a plain CPU backend, so greedy text matches theirs).
    pub cpu_repack: bool,
    /// Context window in tokens, capped to the model's training context.
    pub n_ctx: u32,
    /// Most prompt tokens per decode call.
    pub n_batch: u32,
    /// Threads for generation and prompt evaluation, at most: `None` = the CPUs this process
    /// may use, and never more than those. Engines in one process share the cores: their
    /// graphs take turns, so the threads computing at once never exceed the cores.
    pub n_threads: Option<u32>,
    /// How the engine's threads are scheduled beside the host's.
    pub thread_priority: ThreadPriority,
    /// Layers to offload to a GPU: `None` = all, `Some(0)` = CPU only.
    pub n_gpu_layers: Option<u32>,
    /// A llama.cpp built-in template name or a template string; `None` = the model's own.
    pub chat_template: Option<String>,
    /// What happens when a conversation outgrows the context window.
    pub context_overflow: ContextOverflow,
    /// Requests served at once (1..=[`MAX_SEQ`]), each in its own sequence of the shared
    /// context; more wait. Conversations keep their KV cache between requests.
    pub n_seq: u32,
    /// Data type of the KV cache's keys.
    pub type_k: KvType,
    /// Data type of the KV cache's values; a quantized type needs flash attention.
    pub type_v: KvType,
    pub flash_attention: FlashAttention,
    /// `Some`: llama.cpp's fitting chooses the GPU layers and, if needed, a smaller context
    /// (never above `n_ctx`, never below `min_ctx`) that leaves the margins free.
    pub fit: Option<Fit>,
    /// How many snapshots of a conversation's state a recurrent or hybrid model keeps, so a
    /// later request that shares a prefix does not evaluate it again (see [`Checkpointing`]).
    pub checkpoints: Checkpointing,
    /// A multimodal projector (`mmproj` GGUF) made for this model: images in messages then
    /// reach it. Needs the `mtmd` cargo feature.
    pub mmproj_path: Option<PathBuf>,
    /// llama.cpp RPC servers (`host:port`, see `rpc-server`) whose devices take the offloaded
    /// layers (`n_gpu_layers`), in this order; empty = none. Each is checked (resolved,
    /// connected, protocol version compared) before llama.cpp sees it. Needs the `rpc` cargo
    /// feature. Unauthenticated and unencrypted: private networks only.
    pub rpc_servers: Vec<String>,
    /// The devices that take the offloaded layers, by the names
    /// [`list_devices`](crate::list_devices) reports ("Vulkan0", "CUDA1", ...), in this order
    /// (llama.cpp's `--device`): `None` = llama.cpp's choice (every GPU), `Some(vec![])` = none
    /// (the CPU only). A CPU device's name means the CPU: it adds no offload device. A named
    /// device that does not exist, or cannot take the model, fails the load naming it; with
    /// `None`, a GPU that cannot start leaves the model on the CPU with a warning (see
    /// [`Description::gpu_fallback`](crate::Description::gpu_fallback)).
    pub devices: Option<Vec<String>>,
}

/// State checkpoints for models whose memory cannot be cut back to a prefix (recurrent and
/// hybrid models: Mamba, RWKV, LFM2, ...). Their state is copied at the end of each prompt
/// and each reply; a request whose prompt starts with a checkpoint's tokens resumes from the
/// longest such one instead of evaluating the conversation again. Unused for other models.
/// The least recently used checkpoint goes first when either bound would be passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointing {
    /// Most checkpoints kept, all conversations together; 0 = none.
    pub max_count: u32,
    /// Most bytes of state kept; a checkpoint larger than this alone is not taken.
    pub max_bytes: u64,
}

/// Checkpoints kept by default: 16 turns of two conversations, or more of one.
pub const DEFAULT_MAX_CHECKPOINTS: u32 = 32;
/// Checkpoint bytes kept by default (a 3B Mamba's state is ~170 MB; small models' a few MB).
pub const DEFAULT_MAX_CHECKPOINT_BYTES: u64 = 512 << 20;

impl Default for Checkpointing {
    fn default() -> Self {
        Checkpointing {
            max_count: DEFAULT_MAX_CHECKPOINTS,
            max_bytes: DEFAULT_MAX_CHECKPOINT_BYTES,
        }
    }
}

/// A KV cache data type (llama.cpp's `--cache-type-k/-v` choices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KvType {
    #[default]
    F16,
    F32,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Iq4Nl,
}

impl KvType {
    pub const ALL: [KvType; 9] = [
        KvType::F16,
        KvType::F32,
        KvType::BF16,
        KvType::Q8_0,
        KvType::Q4_0,
        KvType::Q4_1,
        KvType::Q5_0,
        KvType::Q5_1,
        KvType::Iq4Nl,
    ];

    /// llama.cpp's name for it ("f16", "q8_0", ...).
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::BF16 => "bf16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
            KvType::Q4_1 => "q4_1",
            KvType::Q5_0 => "q5_0",
            KvType::Q5_1 => "q5_1",
            KvType::Iq4Nl => "iq4_nl",
        }
    }

    pub fn is_quantized(self) -> bool {
        !matches!(self, KvType::F16 | KvType::F32 | KvType::BF16)
    }
}

impl serde::Serialize for KvType {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// How the engine's threads (its worker and the compute threads it starts) are scheduled
/// beside the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadPriority {
    /// As the host's threads.
    #[default]
    Normal,
    /// Below the host's: the engine uses the cycles the host leaves idle, so a game's frame
    /// loop keeps its frames. On Linux, nice 19 for the worker and every thread it starts
    /// (they inherit it); elsewhere accepted but not applied yet (`describe` says which).
    Low,
}

/// Whether attention uses llama.cpp's fused flash-attention kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttention {
    /// llama.cpp decides per device (on where the backend supports it).
    #[default]
    Auto,
    Off,
    On,
}

/// Fitting the model and context to device memory (llama.cpp's `--fit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    /// The context is never reduced below this many tokens; fitting fails instead.
    pub min_ctx: u32,
    /// MiB to leave free on each device: one value for every device, or one per device (in
    /// llama.cpp's device order; on a CPU-only build the one device is host memory).
    pub margins_mib: Vec<u32>,
}

/// llama.cpp's default margin: 1 GiB per device.
pub const DEFAULT_FIT_MARGIN_MIB: u32 = 1024;
/// llama.cpp's default minimum context for fitting.
pub const DEFAULT_FIT_MIN_CTX: u32 = 4096;

impl Default for Fit {
    fn default() -> Self {
        Self {
            min_ctx: DEFAULT_FIT_MIN_CTX,
            margins_mib: vec![DEFAULT_FIT_MARGIN_MIB],
        }
    }
}

/// The most requests an engine serves at once.
pub const MAX_SEQ: u32 = 64;

/// What happens when a conversation (its prompt, or prompt and reply) outgrows `n_ctx`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextOverflow {
    /// The request fails with [`Error::ContextOverflow`] before decoding, or generation
    /// stops with [`FinishReason::Length`](crate::FinishReason::Length) when the reply fills it.
    #[default]
    Fail,
    /// Keep the system prompt and the latest turns: the oldest exchanges (a user turn and the
    /// replies after it) are dropped whole, before decoding or mid-reply, and the KV cache
    /// of what is kept is shifted rather than evaluated again where the model allows it.
    /// [`Usage::dropped_tokens`](crate::Usage::dropped_tokens) counts what was dropped.
    Shift,
}

pub const DEFAULT_N_CTX: u32 = 4096;
pub const DEFAULT_N_BATCH: u32 = 512;
/// Context windows beyond this are refused up front: llama.cpp would try to allocate them.
pub const MAX_N_CTX: u32 = 1 << 20;
/// Threads beyond this are refused: nothing useful runs with more, and ggml spins.
pub const MAX_THREADS: u32 = 1024;

impl EngineOptions {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            model_offset: 0,
            model_size: 0,
            cpu_repack: true,
            n_ctx: DEFAULT_N_CTX,
            n_batch: DEFAULT_N_BATCH,
            n_threads: None,
            thread_priority: ThreadPriority::Normal,
            n_gpu_layers: Some(0),
            chat_template: None,
            context_overflow: ContextOverflow::Fail,
            n_seq: 1,
            type_k: KvType::F16,
            type_v: KvType::F16,
            flash_attention: FlashAttention::Auto,
            fit: None,
            checkpoints: Checkpointing::default(),
            mmproj_path: None,
            rpc_servers: Vec::new(),
            devices: None,
        }
    }

    /// Whether the GGUF is a range of `model_path` (`model_offset` / `model_size` set).
    pub(crate) fn is_embedded(&self) -> bool {
        self.model_offset != 0 || self.model_size != 0
    }

    /// Whether loading needs llama.cpp's model parameters that llama-cpp-2 does not expose
    /// (a GGUF inside a larger file, no repacking).
    pub(crate) fn needs_raw_load(&self) -> bool {
        self.is_embedded() || !self.cpu_repack
    }

    pub fn validate(&self) -> Result<()> {
        if self.model_path.as_os_str().is_empty() {
            return Err(Error::invalid(
                "model_path is empty; give the path of a .gguf file",
            ));
        }
        if self.needs_raw_load() && self.fit.is_some() {
            return Err(Error::invalid(
                "fit cannot be combined with model_offset / model_size or with cpu_repack off; \
                 give n_ctx and n_gpu_layers instead",
            ));
        }
        if self.model_path.to_str().is_none() {
            return Err(Error::invalid(format!(
                "model_path is not valid UTF-8: {}",
                self.model_path.display()
            )));
        }
        if let Some(path) = &self.mmproj_path {
            if !cfg!(feature = "mtmd") {
                return Err(Error::invalid(
                    "mmproj_path is set, but this library was built without vision: rebuild \
                     rigllama with the cargo feature `mtmd`",
                ));
            }
            if path.to_str().is_none_or(str::is_empty) {
                return Err(Error::invalid(format!(
                    "mmproj_path must be a non-empty UTF-8 path, not {}",
                    path.display()
                )));
            }
        }
        self.validate_rpc()?;
        self.validate_devices()?;
        if self.n_ctx == 0 || self.n_ctx > MAX_N_CTX {
            return Err(Error::invalid(format!(
                "n_ctx {} is out of range (1..={MAX_N_CTX})",
                self.n_ctx
            )));
        }
        if self.n_batch == 0 || self.n_batch > MAX_N_CTX {
            return Err(Error::invalid(format!(
                "n_batch {} is out of range (1..={MAX_N_CTX})",
                self.n_batch
            )));
        }
        if let Some(threads) = self.n_threads {
            if threads == 0 || threads > MAX_THREADS {
                return Err(Error::invalid(format!(
                    "n_threads {threads} is out of range (1..={MAX_THREADS}; None means the CPUs available)"
                )));
            }
        }
        if self.n_seq == 0 || self.n_seq > MAX_SEQ {
            return Err(Error::invalid(format!(
                "n_seq {} is out of range (1..={MAX_SEQ})",
                self.n_seq
            )));
        }
        if self.type_v.is_quantized() && self.flash_attention == FlashAttention::Off {
            return Err(Error::invalid(format!(
                "type_v {} is quantized, and llama.cpp needs flash attention for a quantized V \
                 cache; set flash_attention AUTO or ON, or type_v F16",
                self.type_v.name()
            )));
        }
        if let Some(fit) = &self.fit {
            if fit.min_ctx == 0 || fit.min_ctx > MAX_N_CTX {
                return Err(Error::invalid(format!(
                    "fit_min_ctx {} is out of range (1..={MAX_N_CTX})",
                    fit.min_ctx
                )));
            }
            if fit.margins_mib.is_empty() {
                return Err(Error::invalid(
                    "fit needs at least one margin (one for every device, or one per device)",
                ));
            }
            if !matches!(self.n_gpu_layers, None | Some(0)) {
                return Err(Error::invalid(format!(
                    "n_gpu_layers {} with fit: the fit chooses the GPU layers; leave \
                     n_gpu_layers at 0 or -1",
                    self.n_gpu_layers.unwrap_or(0)
                )));
            }
        }
        if let Some(template) = &self.chat_template {
            if template.is_empty() || template.contains('\0') {
                return Err(Error::invalid(
                    "chat_template must be a non-empty template name or template text without NUL",
                ));
            }
        }
        Ok(())
    }
}

/// The most RPC servers one engine names (ggml's `GGML_RPC_MAX_SERVERS`).
pub const MAX_RPC_SERVERS: usize = 16;

impl EngineOptions {
    fn validate_rpc(&self) -> Result<()> {
        if self.rpc_servers.is_empty() {
            return Ok(());
        }
        if !cfg!(feature = "rpc") {
            return Err(Error::invalid(
                "rpc_servers is set, but this library was built without RPC: rebuild rigllama \
                 with the cargo feature `rpc` (see README, \"Beyond one machine\")",
            ));
        }
        if self.rpc_servers.len() > MAX_RPC_SERVERS {
            return Err(Error::invalid(format!(
                "rpc_servers names {} servers; at most {MAX_RPC_SERVERS}",
                self.rpc_servers.len()
            )));
        }
        for (i, endpoint) in self.rpc_servers.iter().enumerate() {
            check_endpoint(endpoint)?;
            if self.rpc_servers[..i].contains(endpoint) {
                return Err(Error::invalid(format!(
                    "rpc_servers names {endpoint} twice"
                )));
            }
        }
        if self.n_gpu_layers == Some(0) {
            return Err(Error::invalid(
                "rpc_servers is set with n_gpu_layers 0, which places no layer on them: set \
                 n_gpu_layers to the layers to offload (-1 = all)",
            ));
        }
        if self.fit.is_some() {
            return Err(Error::invalid(
                "fit with rpc_servers is not supported yet: set n_gpu_layers instead",
            ));
        }
        if self.needs_raw_load() {
            return Err(Error::invalid(
                "rpc_servers with a model inside a pack file (model_offset / model_size) or with \
                 cpu_repack off is not supported yet: give the GGUF as a file of its own",
            ));
        }
        Ok(())
    }

    fn validate_devices(&self) -> Result<()> {
        match &self.devices {
            Some(names) => check_device_names(names),
            None => Ok(()),
        }
    }
}

/// The most devices `devices` may name.
pub const MAX_DEVICES: usize = 16;

/// Splits `devices` as the C option gives it: a comma-separated list of device names (spaces
/// around entries allowed), or "none" for the CPU only.
pub fn parse_devices(list: &str) -> Result<Vec<String>> {
    if list.trim() == "none" {
        return Ok(Vec::new());
    }
    let names: Vec<String> = list.split(',').map(|name| name.trim().to_owned()).collect();
    check_device_names(&names)?;
    Ok(names)
}

fn check_device_names(names: &[String]) -> Result<()> {
    if names.len() > MAX_DEVICES {
        return Err(Error::invalid(format!(
            "devices names {} devices; at most {MAX_DEVICES}",
            names.len()
        )));
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == ',') {
            return Err(Error::invalid(format!(
                "devices entry {i} ({name:?}) is not a device name; give names as \
                 rigllama_list_devices reports them, comma-separated, or \"none\" for the CPU only"
            )));
        }
        if names[..i].contains(name) {
            return Err(Error::invalid(format!("devices names {name} twice")));
        }
    }
    Ok(())
}

/// Splits a comma-separated `host:port` list (spaces around entries allowed); "" = none.
pub fn parse_rpc_servers(list: &str) -> Result<Vec<String>> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|entry| {
            let entry = entry.trim();
            check_endpoint(entry)?;
            Ok(entry.to_owned())
        })
        .collect()
}

/// `host:port` as llama.cpp's RPC client parses it: the host is everything before the
/// first ':' (so no IPv6 literals), the port a decimal number.
fn check_endpoint(endpoint: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "rpc_servers entry {endpoint:?} is not host:port ({why})"
        )))
    };
    let Some((host, port)) = endpoint.split_once(':') else {
        return bad("no ':'");
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("empty host or a space in it");
    }
    if host.starts_with('[') || port.contains(':') {
        return bad("IPv6 literals are not supported by llama.cpp's RPC client; use a host name");
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => bad("the port must be 1..=65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        EngineOptions::new("/m.gguf").validate().unwrap();
        let mut options = EngineOptions::new("/m.gguf");
        options.n_threads = Some(0);
        assert!(options
            .validate()
            .unwrap_err()
            .to_string()
            .contains("n_threads 0 is out of range"));
    }

    #[test]
    fn rpc_server_lists() {
        assert_eq!(
            parse_rpc_servers(" 127.0.0.1:50052, box:1 ").unwrap(),
            ["127.0.0.1:50052", "box:1"]
        );
        assert!(parse_rpc_servers("").unwrap().is_empty());
        for bad in [
            "host", ":1", "h:0", "h:70000", "h:+1", "[::1]:5", "h:1,", "a b:1",
        ] {
            assert!(parse_rpc_servers(bad).is_err(), "{bad}");
        }
        let mut options = EngineOptions::new("/m.gguf");
        options.rpc_servers = vec!["127.0.0.1:50052".into()];
        options.n_gpu_layers = None;
        let result = options.validate();
        if cfg!(feature = "rpc") {
            result.unwrap();
            options.n_gpu_layers = Some(0);
            assert!(options.validate().is_err());
        } else {
            assert!(result
                .unwrap_err()
                .to_string()
                .contains("built without RPC"));
        }
    }
}
