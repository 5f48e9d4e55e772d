//! Plain data every front end builds and reads.
pub(super) mod description;
pub(super) mod devices;
pub(super) mod event;
pub(super) mod grammar_limits;
pub(super) mod logprobs;
pub(super) mod lora;
pub(super) mod message;
pub(super) mod openai;
pub(super) mod options;
pub(super) mod request;
pub(super) mod sampling;
pub(super) mod tokens;
pub(super) mod tools;
pub(super) mod usage;
