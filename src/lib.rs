//! rigllama: local GGUF language models through llama.cpp, from Rust and from C.
//!
//! A dedicated worker thread owns the llama.cpp model and context; [`Engine`] is the handle
//! every caller uses. The C ABI ([`ffi`], `include/rigllama.h`) and the Rig adapter
//! ([`rig`]) are thin layers over this same API.

mod engine;
pub mod ffi;
#[cfg(feature = "rig")]
pub mod rig;

pub use engine::{
    available_cpus, estimate, list_devices, parse_devices, parse_rpc_servers, set_backend_dir,
    set_log_sink, AdaptiveP, Alternative, AssistantMessage, BiasTarget, CheckpointUse,
    Checkpointing, ContextOverflow, ControlVectorInfo, CpuBackend, Description, DeviceInfo,
    DeviceType, DeviceUse, Dry, Engine, EngineOptions, Error, Estimate, Event, FinishReason, Fit,
    FitReport, FlashAttention, Image, Job, JobCanceller, KvType, LogFn, LogLevel, LogitBias,
    LoraInfo, LoraScale, MemoryUse, Message, Mirostat, ProgressFn, Prompt, ReasoningMode, Request,
    Result, Role, RpcDevice, Sampling, SpecialTokens, ThreadPriority, TokenFlags, TokenLogprob,
    Tool, ToolCall, ToolChoice, Usage, Xtc, ARCHITECTURE_TEMPLATES, BACKEND_DIR_ENV,
    DEFAULT_DRAFT_MAX, DEFAULT_FIT_MARGIN_MIB, DEFAULT_FIT_MIN_CTX, DEFAULT_MAX_CHECKPOINTS,
    DEFAULT_MAX_CHECKPOINT_BYTES, DEFAULT_MAX_TOKENS, DEFAULT_N_BATCH, DEFAULT_N_CTX, MAX_DEVICES,
    MAX_DRAFT, MAX_EMBED_TOKENS, MAX_GRAMMAR_NESTING, MAX_GRAMMAR_RULES, MAX_LOGPROBS, MAX_LORAS,
    MAX_LORA_SCALE, MAX_N_CTX, MAX_PATTERN_NESTING, MAX_RPC_SERVERS, MAX_SCHEMA_NESTING, MAX_SEQ,
    MAX_THREADS, MEDIA_MARKER, QUEUE_LIMIT,
};

/// Test hooks: the load steps that can be made to fail, and (with the `fault-injection`
/// feature) the switch that fails them and a prompt that panics the worker.
pub use engine::fault;
