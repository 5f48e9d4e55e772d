//! Every extern "C" binding.
pub(super) mod adaptive_p;
pub(super) mod backend;
pub(super) mod chat_shim;
pub(super) mod fit;
pub(super) mod gguf_tensors;
pub(super) mod grammar;
pub(super) mod memory;
pub(super) mod raw;
pub(super) mod rpc;
pub(super) mod threadpool;
pub(super) mod vision;
