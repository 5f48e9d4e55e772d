//! The thread that owns llama.cpp.
pub(super) mod cpu_share;
pub(super) mod embed;
pub(super) mod event_channel;
pub(super) mod lora;
pub(super) mod model;
pub(super) mod prompt;
pub(super) mod protocol;
pub(super) mod sampler_chain;
pub(super) mod scheduler;
pub(super) mod sequence;
pub(super) mod snapshot;
pub(super) mod speculation;
pub(super) mod thread;
pub(super) mod thread_priority;
pub(super) mod token_choice;
pub(super) mod tokens;
