//! Which devices a model's layers go to, and what happens when a GPU cannot take them.
//!
//! The rule (the README's "GPUs and CPUs"): devices the caller named are a promise: any
//! failure on them fails the load, naming them. Without `devices`, a GPU is a wish: when the
//! library has a GPU backend but no usable device (no driver, no GPU), or the load fails while
//! GPUs are in use (out of device memory, a driver error), the model goes to the CPU, a
//! warning is logged and `describe`'s `gpu_fallback` says why.

use crate::engine::data::options::EngineOptions;
use crate::engine::error::{Error, Result};
use crate::engine::llama::backend::{self, LogLevel};
use crate::engine::llama::devices::{self, GPU_BACKENDS};
use crate::engine::llama::rpc::{self, RpcServers};

pub(crate) struct Offload {
    /// ggml device indices for the model; `None` = llama.cpp's default list (every GPU).
    pub devices: Option<Vec<usize>>,
    /// Why the model is on the CPU although GPU layers were asked for.
    pub fallback: Option<String>,
    /// The caller named the devices.
    explicit: bool,
}

impl Offload {
    /// The devices for `options`: the named ones (then the RPC servers'), else the RPC
    /// servers' alone, else llama.cpp's default (this machine's GPUs).
    pub fn plan(options: &EngineOptions, rpc_servers: Option<&RpcServers>) -> Result<Offload> {
        let remote = rpc_servers.map(RpcServers::device_indices);
        let devices = match (&options.devices, remote) {
            (Some(names), remote) => {
                let mut chosen = devices::choose(names)?;
                chosen.extend(remote.unwrap_or_default());
                Some(chosen)
            }
            (None, Some(remote)) => Some(remote),
            // Another engine's RPC devices are in ggml's registry: keep this model off them.
            (None, None) => rpc::local_devices(),
        };
        let mut offload = Offload {
            devices,
            fallback: None,
            explicit: options.devices.is_some(),
        };
        if offload.wants_gpu(options)
            && options.rpc_servers.is_empty()
            && devices::gpus().is_empty()
        {
            offload.fallback = Some(format!(
                "this library has the {} backend, but it found no device it can use (no driver, \
                 no GPU, or only CPU-type devices; llama.cpp's log says more): the model runs on \
                 the CPU",
                GPU_BACKENDS.join(" and ")
            ));
            backend::log(
                LogLevel::Warn,
                offload.fallback.as_deref().unwrap_or_default(),
            );
            offload.devices = Some(Vec::new());
        }
        Ok(offload)
    }

    /// Whether the load would put layers on a GPU of this machine if it had one: a GPU
    /// backend is built in, layers are asked for, and the caller left the choice to llama.cpp.
    fn wants_gpu(&self, options: &EngineOptions) -> bool {
        !GPU_BACKENDS.is_empty()
            && !self.explicit
            && (options.n_gpu_layers != Some(0) || options.fit.is_some())
    }

    /// The layers to offload: the options' (None = all), 0 once fallen back to the CPU.
    pub fn n_gpu_layers(&self, options: &EngineOptions) -> Option<u32> {
        if self.fallback.is_some() {
            Some(0)
        } else {
            options.n_gpu_layers
        }
    }

    /// After a load on this plan failed with `error`: the plan to try instead (the CPU only),
    /// when GPUs of this machine were in use and the caller did not name them; `None` when
    /// the error stands.
    pub fn fall_back(&self, options: &EngineOptions, error: &Error) -> Option<Offload> {
        let gpus = devices::gpus();
        let on_gpus = self.fallback.is_none()
            && self.wants_gpu(options)
            && options.rpc_servers.is_empty()
            && !gpus.is_empty();
        if !on_gpus || !matches!(error, Error::ModelLoadFailed(_)) {
            return None;
        }
        let names: Vec<String> = gpus.into_iter().map(devices::name_of).collect();
        let why = format!(
            "loading onto {} failed ({error}): the model runs on the CPU instead (name the \
             device in `devices` to make this an error)",
            names.join(", ")
        );
        backend::log(LogLevel::Warn, &why);
        Some(Offload {
            devices: Some(Vec::new()),
            fallback: Some(why),
            explicit: false,
        })
    }

    /// `error` from a load on this plan, naming the devices the caller chose.
    pub fn explain(&self, error: Error) -> Error {
        match (&error, &self.devices) {
            (Error::ModelLoadFailed(why), Some(devices))
                if self.explicit && !devices.is_empty() =>
            {
                let names: Vec<String> = devices.iter().map(|&i| devices::name_of(i)).collect();
                Error::ModelLoadFailed(format!("on the devices {}: {why}", names.join(", ")))
            }
            _ => error,
        }
    }
}
