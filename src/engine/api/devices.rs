//! Questions about the machine that need no engine: its devices, and what an engine with
//! some options would take of their memory.

use crate::engine::data::devices::{DeviceInfo, Estimate};
use crate::engine::data::options::EngineOptions;
use crate::engine::error::Result;
use crate::engine::llama::backend::backend;
use crate::engine::llama::devices;
use crate::engine::worker::estimate;

/// Every device this library can use on this machine, before any model is loaded: the CPU,
/// and each GPU or accelerator its backends found. The names are what
/// [`EngineOptions::devices`] takes.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    backend()?;
    Ok(devices::list())
}

/// What [`Engine::create`](crate::Engine::create) with `options` would allocate on each
/// device (weights, KV cache, compute buffers), without loading the weights: a game can pick
/// the largest model tier that fits the player's memory. Within a few percent of what
/// `describe().devices` reports after the real create. Not with `fit` or `rpc_servers`; a
/// multimodal projector's memory is not included.
pub fn estimate(options: &EngineOptions) -> Result<Estimate> {
    estimate::estimate(options)
}
