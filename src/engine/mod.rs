//! The engine: a worker thread that owns a llama.cpp model and context, and the handle
//! callers use to reach it. Knows nothing of C or Rig.
//!
//! Every request is a submission returning a [`Job`], a receiver of [`Event`]s. Blocking
//! [`Engine::complete`] and [`Engine::stream`] drain a job on the caller's thread.
//!
//! # The map
//! Data flows one way: `api` → `worker` → `chat`/`cache` → `llama`; `data` is read by all
//! and reads nothing but `error`. No file imports a file that imports it back.
//!
//! | folder | job | files |
//! |---|---|---|
//! | `api/` | the caller's side, any thread, no llama.cpp | `handle` ([`Engine`]), `job` ([`Job`]), `callback_gate` (no callback after destroy; BUSY instead of deadlock), `loading` (waiting for a load's outcome), `devices` (the machine's devices; an estimate before a load) |
//! | `data/` | plain data every front end builds and reads | `request`, `lora` (adapters as requests name them), `message` (turns, images, the assistant's reply), `tools`, `sampling` (settings and ranges), `options` and `description` (engine options; what `describe` reports), `usage`, `event`, `logprobs`, `openai` (the OpenAI JSON shapes tools and messages arrive in), `tokens` (token flags, special tokens), `grammar_limits` (the bounds a grammar or schema must keep) |
//! | `worker/` | the one thread that owns model and context | `thread` (the command loop), `protocol` (commands, submissions, shared state, pause gate, load orders), `event_channel`, `model` (loading a model and its context), `offload` (which devices take the layers; falling back to the CPU), `estimate` (a load's memory, planned without loading), `prompt` (request → tokens), `scheduler` (continuous batching, priorities), `sequence` (one admitted request, token by token), `sampler_chain` and `token_choice` (how each token is chosen: chain, argmax, grammar, logprobs), `speculation` (prompt lookup), `embed`, `snapshot`, `lora`, `tokens` (tokenize and detokenize for callers), `cpu_share` (the process's CPU budget: every graph takes a turn), `thread_priority` |
//! | `cache/` | what the context's memory holds | `sequences` (per sequence: tokens, prefix reuse, shifts), `adapter_set` (which LoRA adapters computed a cache), `checkpoint` (state copies of recurrent and hybrid models) |
//! | `chat/` | conversation → prompt text; reply text → events | `common_chat` (llama.cpp's chat layer: Jinja, tool formats, reply parsing, JSON Schema → GBNF), `template` (which template, a request as the model sees it), `generic` (the JSON tool format for templates without one), `reply` (a reply read into content, reasoning and tool calls), `text` (UTF-8 wholeness, stop strings) |
//! | `llama/` | every `extern "C"` and `csrc/` binding | `backend` (process-wide state, logs), `modules` (ggml's CPU code: built in, or the best module this CPU runs), `raw` (pointers llama-cpp-2 keeps private), `threadpool`, `chat_shim`, `memory`, `devices` (ggml's device registry; memory per device), `fit`, `vision/` (mtmd: `enabled` and `disabled` builds) |
//! | top | cross-cutting | `error`, `cancel` (cancel tickets, llama.cpp's abort callback), `fault` (test hooks) |
//!
//! # Where a change goes
//! - A new sampler knob: `data/sampling.rs` (field, default, range) + `worker/sampler_chain.rs`
//!   (its place in the chain) + `ffi/request.rs` (the C field) + `rig/encode.rs` when Rig has it.
//! - A new engine option: `data/options.rs` + `worker/model.rs` (where it takes effect) +
//!   `ffi/options.rs`; what it changes in `describe`: `data/description.rs`.
//! - A new request field: `data/request.rs` (+ `validate`) + wherever it acts (`worker/` for
//!   generation, `chat/` for formatting) + `ffi/request.rs` + `rig/encode.rs`.
//! - A new command for the worker (like reset or embed): `worker/protocol.rs` (`Command`) +
//!   `worker/thread.rs` (serving it) + `api/handle.rs` (the method) + a module of its own in
//!   `worker/` for the work.
//! - A new llama.cpp or `csrc/` call: a function in `llama/`, called from the layer above.
//! - A new chat template behaviour: `chat/template.rs` or `chat/common_chat.rs`.

mod api;
mod cache;
mod cancel;
mod chat;
mod data;
mod error;
pub mod fault;
mod llama;
mod worker;

pub use api::devices::{estimate, list_devices};
pub use api::handle::{Engine, QUEUE_LIMIT};
pub use api::job::{Job, JobCanceller};
pub use chat::template::ARCHITECTURE_TEMPLATES;
pub use data::description::{
    CheckpointUse, ControlVectorInfo, CpuBackend, Description, FitReport, LoraInfo, RpcDevice,
};
pub use data::devices::{DeviceInfo, DeviceType, DeviceUse, Estimate, MemoryUse};
pub use data::event::Event;
pub use data::grammar_limits::{
    MAX_GRAMMAR_NESTING, MAX_GRAMMAR_RULES, MAX_PATTERN_NESTING, MAX_SCHEMA_NESTING,
};
pub use data::logprobs::{Alternative, TokenLogprob};
pub use data::lora::{LoraScale, MAX_LORAS, MAX_LORA_SCALE};
pub use data::message::{AssistantMessage, Image, Message, Role, MEDIA_MARKER};
pub use data::options::{
    parse_devices, parse_rpc_servers, Checkpointing, ContextOverflow, EngineOptions, Fit,
    FlashAttention, KvType, ProgressFn, ThreadPriority, DEFAULT_FIT_MARGIN_MIB,
    DEFAULT_FIT_MIN_CTX, DEFAULT_MAX_CHECKPOINTS, DEFAULT_MAX_CHECKPOINT_BYTES, DEFAULT_N_BATCH,
    DEFAULT_N_CTX, MAX_DEVICES, MAX_N_CTX, MAX_RPC_SERVERS, MAX_SEQ, MAX_THREADS,
};
pub use data::request::{
    Prompt, Request, DEFAULT_DRAFT_MAX, DEFAULT_MAX_TOKENS, MAX_DRAFT, MAX_LOGPROBS,
};
pub use data::sampling::{AdaptiveP, BiasTarget, Dry, LogitBias, Mirostat, Sampling, Xtc};
pub use data::tokens::{SpecialTokens, TokenFlags};
pub use data::tools::{ReasoningMode, Tool, ToolCall, ToolChoice};
pub use data::usage::{FinishReason, Usage};
pub use error::{Error, Result};
pub use llama::backend::{available_cpus, set_log_sink, LogFn, LogLevel};
pub use llama::modules::{set_backend_dir, BACKEND_DIR_ENV};
pub use worker::embed::MAX_EMBED_TOKENS;
