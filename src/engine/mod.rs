//! The engine: a worker thread that owns a llama.cpp model and context, and the handle
//! callers use to reach it. Knows nothing of C or Rig.
//!
//! Every request is a submission returning a [`Job`], a receiver of [`Event`]s. Blocking
//! [`Engine::complete`] and [`Engine::stream`] drain a job on the caller's thread.
//!
//! Where things live:
//! - the caller's side: `handle` ([`Engine`]), `job` ([`Job`]), `callback_gate` (no callback
//!   after destroy, BUSY instead of deadlock), `events` (the event channel), `loading` (the
//!   load protocol);
//! - the worker's side: `worker` (the command loop), `model` (loading a model and its
//!   context), `prompt` (template and tokenizer), `kv_cache` (what the cache holds, prefix
//!   reuse and shifts, per sequence), `scheduler` (continuous batching, priorities),
//!   `generate` (one request's state, token by token), `sampler` (sampling settings and
//!   the sampler chain), `logprobs` (per-token log-probabilities), `chat` (llama.cpp's chat layer: Jinja templates, tool formats, reply
//!   parsing), `template` (which template, and a request as the model sees it), `generic`
//!   (the JSON tool format for templates without one), `reply` (reading a reply into
//!   content, reasoning and tool calls), `snapshot` (save games), `checkpoint` (state copies of
//!   recurrent and hybrid models, for prefix reuse), `embed` (embeddings), `vision` (images, through a
//!   multimodal projector), `lora` (LoRA adapters), `raw`
//!   (llama.cpp pointers llama-cpp-2 keeps private), `text`
//!   (UTF-8 wholeness and stop strings), `cancel` (cancel tickets and llama.cpp's abort
//!   callback), `threadpool` (the context's persistent ggml thread pool), `backend` (process-wide llama.cpp state and logs);
//! - plain data: `options`, `request`, `tools`, `usage`, `error`.

mod backend;
mod callback_gate;
mod cancel;
mod chat;
mod checkpoint;
mod embed;
mod error;
mod events;
pub mod fault;
mod generate;
mod generic;
mod handle;
mod job;
mod kv_cache;
mod loading;
mod logprobs;
mod lookup;
mod lora;
mod model;
mod options;
mod prompt;
mod raw;
mod reply;
mod request;
mod sampler;
mod scheduler;
mod snapshot;
mod template;
mod text;
mod threadpool;
mod tools;
mod usage;
mod vision;
mod worker;

pub use backend::{available_cpus, set_log_sink, LogFn, LogLevel};
pub use embed::MAX_EMBED_TOKENS;
pub use error::{Error, Result};
pub use events::Event;
pub use handle::{Engine, QUEUE_LIMIT};
pub use job::{Job, JobCanceller};
pub use logprobs::{Alternative, TokenLogprob};
pub use lora::{MAX_LORAS, MAX_LORA_SCALE};
pub use options::{
    CheckpointUse, Checkpointing, ContextOverflow, Description, EngineOptions, Fit, FitReport,
    FlashAttention, KvType, LoraInfo, MemoryUse, ProgressFn, DEFAULT_FIT_MARGIN_MIB,
    DEFAULT_FIT_MIN_CTX, DEFAULT_MAX_CHECKPOINTS, DEFAULT_MAX_CHECKPOINT_BYTES, DEFAULT_N_BATCH,
    DEFAULT_N_CTX, MAX_N_CTX, MAX_SEQ, MAX_THREADS,
};
pub use request::{
    BiasTarget, Dry, Image, LogitBias, Message, Mirostat, Prompt, ReasoningMode, Request, Role,
    Sampling, Tool, ToolCall, ToolChoice, Xtc, DEFAULT_DRAFT_MAX, DEFAULT_MAX_TOKENS, MAX_DRAFT,
    MAX_LOGPROBS, MEDIA_MARKER,
};
pub use template::ARCHITECTURE_TEMPLATES;
pub use tools::AssistantMessage;
pub use usage::{FinishReason, Usage};
