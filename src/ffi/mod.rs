//! The C ABI: every `extern "C"` function of `include/rigllama.h`. Each is a panic boundary,
//! NULL and size checks, and a few lines over the Rust API in [`crate::engine`].
//!
//! cbindgen reads this module and nothing else, so the header declares only what is here.
//! It writes what it parses in the order it parses it (constants, then the types, then the
//! functions), so the modules below are declared in the header's reading order: one module
//! per C type; each struct's module holds its `_init`.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // the safety contract is the C header's documentation

// One comment per module: rustfmt sorts adjacent `mod` lines, and this order is the header's.

// rigllama_version
mod version;
// rigllama_status, rigllama_status_str
mod status;
// the panic boundary, rigllama_last_error, the checks on the caller's pointers
mod boundary;
// the other enums
mod enums;
// rigllama_string_free, rigllama_bytes_free
mod memory;
// rigllama_set_log_callback
mod log;
// rigllama_set_backend_dir
mod backend;
// struct_size: the rules every struct below follows
mod versioned;
// rigllama_engine_options, rigllama_engine_options_init
mod options;
// rigllama_request, rigllama_request_init
mod request;
// rigllama_usage, rigllama_usage_init
mod usage;
// rigllama_engine: create, complete, chat, stream, reload, cancel, describe, destroy, ...
mod engine;
// rigllama_event, rigllama_event_init
mod event;
// rigllama_job: submit, poll, usage, cancel, free
mod job;
// rigllama_engine_tokenize, _detokenize, RIGLLAMA_TOKENIZE_*
mod tokens;
// rigllama_engine_embed
mod embed;
// rigllama_engine_add_lora, _set_lora_scale, _remove_lora, _set_control_vector,
// _clear_control_vector
mod lora;
// rigllama_engine_save_snapshot, _load_snapshot
mod snapshot;
// rigllama_list_devices, rigllama_estimate
mod devices;

pub use backend::*;
pub use boundary::*;
pub use devices::*;
pub use embed::*;
pub use engine::*;
pub use enums::*;
pub use event::*;
pub use job::*;
pub use log::*;
pub use lora::*;
pub use memory::*;
pub use options::*;
pub use request::*;
pub use snapshot::*;
pub use status::*;
pub use tokens::*;
pub use usage::*;
pub use version::*;

#[cfg(test)]
mod tests {
    use super::versioned::Versioned;

    #[test]
    fn the_frozen_v0_1_sizes_are_the_v0_1_header_s() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(super::rigllama_engine_options::V0_1_SIZE, 56);
            assert_eq!(super::rigllama_request::V0_1_SIZE, 80);
            assert_eq!(super::rigllama_usage::V0_1_SIZE, 40);
            assert_eq!(super::rigllama_event::V0_1_SIZE, 40);
        }
    }
}
