//! The C ABI: every `extern "C"` function of `include/rigllama.h`. Each is a panic boundary,
//! NULL and size checks, and a few lines over the Rust API in [`crate::engine`].
//!
//! cbindgen reads this module and nothing else, so the header declares only what is here.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // the safety contract is the C header's documentation

mod boundary;
mod embed;
mod engine;
mod enums;
mod job;
mod lora;
mod request;
mod snapshot;
mod versioned;

pub use boundary::*;
pub use embed::*;
pub use engine::*;
pub use enums::*;
pub use job::*;
pub use lora::*;
pub use snapshot::*;
pub use versioned::{
    rigllama_engine_options, rigllama_engine_options_init, rigllama_progress_callback,
    rigllama_request, rigllama_request_init, rigllama_usage, rigllama_usage_init,
    RIGLLAMA_MAX_TOKENS_UNLIMITED, RIGLLAMA_SEED_RANDOM,
};
