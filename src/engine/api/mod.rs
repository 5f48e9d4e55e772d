//! The caller's side: any thread, no llama.cpp.
pub(super) mod callback_gate;
pub(super) mod devices;
pub(super) mod handle;
pub(super) mod job;
pub(super) mod loading;
