//! rigllama: local GGUF language models through llama.cpp, from Rust and from C.
//!
//! A dedicated worker thread owns the llama.cpp model and context; [`Engine`] is the handle
//! every caller uses. The C ABI (`include/rigllama.h`) is a thin layer over this same API.

pub mod engine;
pub mod ffi;
#[cfg(feature = "rig")]
pub mod rig;

pub use engine::{
    Description, Engine, EngineOptions, Error, Event, FinishReason, Job, JobCanceller, LogLevel,
    Message, Prompt, Request, Result, Role, Sampling, Usage,
};
