//! Every extern "C" binding.
pub(super) mod backend;
pub(super) mod chat_shim;
pub(super) mod devices;
pub(super) mod embedded_model;
pub(super) mod fit;
pub(super) mod gguf_tensors;
pub(super) mod grammar;
pub(super) mod memory;
pub(super) mod modules;
pub(super) mod raw;
pub(super) mod raw_sampler;
pub(super) mod rpc;
pub(super) mod threadpool;
pub(super) mod vision;
