//! The C ABI: every `extern "C"` function of `include/rigllama.h`. Each is a panic boundary,
//! NULL and size checks, and a few lines over the Rust API in [`crate::engine`].
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // the safety contract is the C header's documentation

mod boundary;
mod convert;
mod engine;
mod job;
mod structs;

pub use boundary::*;
pub use engine::*;
pub use job::*;
pub use structs::*;
