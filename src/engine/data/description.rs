//! What the engine reports about the loaded model and itself (`describe`).

use crate::engine::data::devices::{DeviceUse, MemoryUse};
use crate::engine::data::options::{ContextOverflow, FlashAttention, KvType, ThreadPriority};
use crate::engine::data::tokens::SpecialTokens;

/// Facts about the loaded model and engine, as `describe` reports them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Description {
    pub model_path: String,
    pub architecture: String,
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    pub n_batch: u32,
    pub n_vocab: u32,
    /// The vocabulary's special tokens (those it has).
    pub special_tokens: SpecialTokens,
    pub n_params: u64,
    /// Threads the engine computes with: `n_threads` as asked, capped at the cores this
    /// process may use.
    pub n_threads: u32,
    /// As asked for ("normal" or "low").
    pub thread_priority: ThreadPriority,
    /// Whether the operating system applied `thread_priority` to the engine's threads.
    pub thread_priority_applied: bool,
    pub n_gpu_layers: i32,
    pub chat_template: String,
    pub chat_template_source: &'static str,
    /// "jinja" (the template runs in llama.cpp's Jinja engine, with tools and reasoning),
    /// "built-in" (one of llama.cpp's fixed templates), or "none".
    pub chat_template_engine: &'static str,
    /// Why a Jinja template (the `chat_template` option's, else the GGUF's) could not be
    /// used, in llama.cpp's parser's words; chats then use the built-in template of
    /// `chat_template_source` (or none). Pass `chat_template` to choose one.
    pub chat_template_error: Option<String>,
    /// Embedding width of the model (the length of [`Engine::embed`](crate::Engine::embed)'s
    /// vectors).
    pub n_embd: u32,
    pub context_overflow: ContextOverflow,
    pub n_seq: u32,
    /// Whether the model's KV cache can be shifted in place (else SHIFT evaluates the kept
    /// turns again).
    pub can_shift: bool,
    pub type_k: KvType,
    pub type_v: KvType,
    /// As asked for ("auto", "on", "off").
    pub flash_attention: FlashAttention,
    /// Bytes llama.cpp allocated for the weights, the KV cache, and compute buffers (all
    /// devices).
    pub memory: MemoryUse,
    /// What fitting chose, when it was asked for.
    pub fit: Option<FitReport>,
    /// LoRA adapters applied, in the order they were added.
    pub lora: Vec<LoraInfo>,
    /// The control vector applied, if any.
    pub control_vector: Option<ControlVectorInfo>,
    /// State checkpoints (recurrent and hybrid models): the bounds and what is kept now.
    pub checkpoints: CheckpointUse,
    /// The multimodal projector loaded beside the model (images are accepted), or "".
    pub mmproj_path: String,
    /// The devices of the `rpc_servers`, in their order, with the layers llama.cpp placed on
    /// each; empty without RPC servers.
    pub rpc_devices: Vec<RpcDevice>,
    /// Every device holding part of the model (the CPU first, for what stays in host
    /// memory): the layers placed there and the bytes allocated, by purpose.
    pub devices: Vec<DeviceUse>,
    /// Why the model runs on the CPU although GPU layers were asked for (a GPU backend
    /// found no device, or loading onto the GPU failed): `None` when nothing fell back.
    pub gpu_fallback: Option<String>,
    /// ggml's CPU code in use: which module this CPU runs (a `dynamic-backends` build) or
    /// the code built into the library.
    pub cpu_backend: CpuBackend,
}

/// Which of ggml's CPU backends computes (the process has one).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuBackend {
    /// "built-in" for the CPU code compiled into the library; in a `dynamic-backends` build,
    /// the loaded module's instruction-set level, picked as the best this CPU runs: "x64"
    /// (the baseline, SSE2), "sse42", "sandybridge", "ivybridge", "piledriver", "haswell",
    /// "skylakex", "cannonlake", "cascadelake", "icelake", "cooperlake", "zen4",
    /// "alderlake", "sapphirerapids" on x86-64.
    pub variant: String,
    /// The module file loaded (`.../libggml-cpu-haswell.so`); "" when built in.
    pub module: String,
    /// The instruction sets that code was compiled with ("SSE3", "AVX2", "AVX512", ...) and
    /// its build options ("REPACK", "LLAMAFILE").
    pub features: Vec<String>,
}

/// A device of an RPC server and what the model put on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RpcDevice {
    /// llama.cpp's name for it ("RPC0", ...).
    pub name: String,
    /// The server, as given in `rpc_servers`.
    pub endpoint: String,
    /// The server's device memory when the model was loaded.
    pub memory_total_bytes: u64,
    pub memory_free_bytes: u64,
    /// The model's layers placed on it (llama.cpp's numbering; the output layer is
    /// `n_layer`).
    pub layers: Vec<u32>,
}

/// What the engine's state checkpoints hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointUse {
    /// Whether checkpoints are taken: the model's memory cannot be cut back to a prefix
    /// (recurrent or hybrid) and `max_count` is not 0.
    pub active: bool,
    pub count: u32,
    pub bytes: u64,
    pub max_count: u32,
    pub max_bytes: u64,
}

/// What fitting chose and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FitReport {
    pub n_ctx: u32,
    pub n_gpu_layers: i32,
    pub reason: String,
}

/// An applied control vector.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlVectorInfo {
    pub path: String,
    pub strength: f32,
    /// The layers it is added to, inclusive.
    pub layer_start: i32,
    pub layer_end: i32,
}

/// An applied LoRA adapter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoraInfo {
    pub id: u32,
    pub path: String,
    pub scale: f32,
}
