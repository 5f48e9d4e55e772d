//! What creating an engine would allocate, per device, without loading the weights:
//! llama.cpp's `no_alloc` load (metadata only; every buffer planned, none allocated) and a
//! context on it, measured as [`LoadedModel::load`](super::model::LoadedModel::load)'s
//! `describe` measures a real one. Runs on the caller's thread: nothing is loaded that
//! needs the worker.

use llama_cpp_2::model::LlamaModel;

use crate::engine::data::devices::Estimate;
use crate::engine::data::devices::MemoryUse;
use crate::engine::data::options::EngineOptions;
use crate::engine::error::{Error, Result};
use crate::engine::llama::backend::{self, capture_placement, capture_problems};
use crate::engine::llama::devices;
use crate::engine::llama::embedded_model::{load_embedded, EmbeddedLoad};
use crate::engine::worker::model::{check_model_file, context_params};
use crate::engine::worker::offload::Offload;

pub(crate) fn estimate(options: &EngineOptions) -> Result<Estimate> {
    options.validate()?;
    if !options.rpc_servers.is_empty() || options.fit.is_some() {
        return Err(Error::invalid(
            "estimate does not take rpc_servers or fit yet: estimate with the n_gpu_layers and \
             n_ctx you would create with",
        ));
    }
    let backend = backend::backend()?;
    let path = &options.model_path;
    check_model_file(options)?;
    let offload = Offload::plan(options, None)?;
    let (model, placement) = capture_placement(|| {
        load_embedded(EmbeddedLoad {
            path,
            offset: options.model_offset,
            n_gpu_layers: offload
                .n_gpu_layers(options)
                .map_or(-1, |n| n.min(i32::MAX as u32) as i32),
            use_mmap: false,
            no_alloc: true,
            repack: options.cpu_repack,
            devices: offload.devices.clone(),
            progress: &mut |_| true,
        })
    });
    let model: Box<LlamaModel> = Box::new(model.map_err(|e| {
        Error::ModelLoadFailed(format!(
            "llama.cpp could not read {} ({e}); is it a complete GGUF model file?",
            path.display()
        ))
    })?);
    // SAFETY: the context borrows the boxed model, whose heap address never moves; the
    // context is dropped first (declared after it, dropped in reverse order).
    let model_ref: &'static LlamaModel = unsafe { &*(model.as_ref() as *const LlamaModel) };
    let n_ctx = options.n_ctx.min(model.n_ctx_train().max(1));
    let n_batch = options.n_batch.min(n_ctx);
    let (ctx, problems) = capture_problems(|| {
        model_ref.new_context(backend, context_params(options, n_ctx, n_batch))
    });
    let ctx = ctx.map_err(|e| {
        let why = problems.last().map_or(String::new(), |p| format!(": {p}"));
        Error::ModelLoadFailed(format!(
            "llama.cpp could not plan a context of {n_ctx} tokens for {} ({e}{why})",
            path.display()
        ))
    })?;
    let devices = devices::usage(&ctx, model_ref, &placement);
    let mut total = MemoryUse::default();
    for device in &devices {
        total += device.memory;
    }
    Ok(Estimate {
        n_ctx,
        devices,
        total,
    })
}
