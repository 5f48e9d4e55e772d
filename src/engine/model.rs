//! A loaded model: the llama.cpp model, its context, the chat format and the KV cache, made
//! by [`LoadedModel::load`] on the worker thread and used only there.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaModel, RopeType};
use snapshot_format::Shape;

use super::backend::{self, available_cpus, LogLevel};
use super::cancel::{install_abort_probe, AbortProbe};
use super::error::{Error, Result};
use super::fault;
use super::kv_cache::Sequences;
use super::loading::{LoadOrder, LoadReport};
use super::options::{ContextOverflow, Description};
use super::template::ChatFormat;
use super::worker::WorkerShared;
use llama_cpp_2::llama_batch::LlamaBatch;

pub(crate) struct LoadedModel {
    // Field order is drop order: the contexts must go before the model they point into.
    pub ctx: LlamaContext<'static>,
    /// The embedding context, made on the first embed request (see `embed.rs`).
    pub embed_ctx: Option<LlamaContext<'static>>,
    pub model: Box<LlamaModel>,
    pub format: Option<ChatFormat>,
    /// The context's sequences and what each holds.
    pub seqs: Sequences,
    /// The batch every decode fills.
    pub batch: LlamaBatch<'static>,
    /// Requests served at once.
    pub n_seq: u32,
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_threads: u32,
    pub context_overflow: ContextOverflow,
    /// Whether llama.cpp can shift this model's KV cache in place (it aborts if asked to
    /// when it cannot).
    pub can_shift: bool,
    /// What a snapshot of this engine's cache must match (see `snapshot.rs`).
    pub shape: Shape,
    pub description: Description,
}

impl LoadedModel {
    /// Checks the file, loads the model (reporting progress), and creates its context with
    /// `probe` as llama.cpp's abort callback.
    pub fn load(
        backend: &'static LlamaBackend,
        order: &LoadOrder,
        probe: &AbortProbe,
        shared: &WorkerShared,
    ) -> Result<LoadedModel> {
        let options = &order.options;
        options.validate()?;
        let path = &options.model_path;
        // llama.cpp aborts the process on some malformed files: check the header, metadata
        // and tensor table with bounds first.
        let summary = gguf_check::check_model_file(path)
            .map_err(|e| Error::ModelLoadFailed(e.to_string()))?;
        let fingerprint = fingerprint_of(path, summary.data_offset)?;
        fault::check("check_file")?;

        let reports = order.reports.clone();
        let abort = order.abort.clone();
        let n_gpu_layers = options.n_gpu_layers.unwrap_or(u32::MAX);
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(n_gpu_layers)
            .with_progress_callback(move |fraction| {
                let _ = reports.send(LoadReport::Progress(fraction));
                !abort.load(Ordering::SeqCst)
            });
        let model = LlamaModel::load_from_file(backend, path, &params);
        if order.abort.load(Ordering::SeqCst) || shared.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::Cancelled(format!(
                "loading {} was aborted by the progress callback or by destroy",
                path.display()
            )));
        }
        let model = Box::new(model.map_err(|e| {
            Error::ModelLoadFailed(format!(
                "llama.cpp could not load {} ({e}); is it a complete GGUF model file? \
                 Set a log callback for llama.cpp's reason",
                path.display()
            ))
        })?);
        // After the model exists, so the failure path must free it.
        fault::check("load_model")?;

        let n_ctx_train = model.n_ctx_train();
        let n_ctx = options.n_ctx.min(n_ctx_train.max(1));
        let n_batch = options.n_batch.min(n_ctx);
        let n_threads = options.n_threads.unwrap_or_else(available_cpus);
        let mut ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(n_threads as i32)
            .with_n_threads_batch(n_threads as i32)
            // A full-size sliding-window cache, so prefix reuse, shifts and snapshots work
            // for models with sliding-window layers (Gemma 3) as for any other.
            .with_swa_full(true)
            .with_n_seq_max(sequence_count(options.n_seq))
            // The sequences share the n_ctx cells of one unified cache rather than a fixed
            // slice each.
            .with_kv_unified(options.n_seq > 1);
        if !install_abort_probe(&mut ctx_params, probe) {
            backend::log(
                LogLevel::Warn,
                "llama.cpp abort callback unavailable: cancel waits for the current prompt chunk",
            );
        }
        // SAFETY: the context borrows the boxed model, whose heap address never moves; the
        // struct's field order drops the context first.
        let model_ref: &'static LlamaModel = unsafe { &*(model.as_ref() as *const LlamaModel) };
        let ctx = model_ref.new_context(backend, ctx_params).map_err(|e| {
            Error::ModelLoadFailed(format!(
                "llama.cpp could not create a context of {n_ctx} tokens for {} ({e}); \
                 try a smaller n_ctx",
                path.display()
            ))
        })?;
        // After the context exists, so the failure path must free both, context first.
        fault::check("create_context")?;

        let architecture = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let format = ChatFormat::choose(&model, options.chat_template.as_deref(), &architecture);
        let can_shift = !model.is_recurrent()
            && !model.is_hybrid()
            && !matches!(model.rope_type(), Some(RopeType::MRope | RopeType::IMRope))
            && architecture != "step35";
        let shape = Shape {
            fingerprint,
            model_name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            architecture: architecture.clone(),
            n_layer: model.n_layer(),
            n_embd: model.n_embd().max(0) as u32,
            // F16 K and V, flash attention left to llama.cpp: what this engine creates.
            type_k: 1,
            type_v: 1,
            flash_attention: 0,
            llama_cpp: LLAMA_CPP_VERSION.to_owned(),
        };
        let description = Description {
            model_path: path.to_string_lossy().into_owned(),
            architecture,
            n_ctx,
            n_ctx_train,
            n_batch,
            n_vocab: model.n_vocab().max(0) as u32,
            n_params: model.n_params(),
            n_threads,
            n_gpu_layers: options.n_gpu_layers.map_or(-1, |n| n as i32),
            chat_template: format
                .as_ref()
                .map(|f| f.text().to_owned())
                .unwrap_or_default(),
            chat_template_source: format.as_ref().map_or("none", |f| f.source()),
            chat_template_engine: format.as_ref().map_or("none", |f| f.engine_name()),
            n_embd: model.n_embd_out().max(0) as u32,
            context_overflow: options.context_overflow,
            n_seq: options.n_seq,
            can_shift,
        };
        *shared.description.lock().unwrap_or_else(|p| p.into_inner()) = description.clone();
        Ok(LoadedModel {
            ctx,
            embed_ctx: None,
            model,
            format,
            seqs: Sequences::new(sequence_count(options.n_seq)),
            batch: LlamaBatch::new(n_batch as usize, 1),
            n_seq: options.n_seq,
            n_ctx,
            n_batch,
            n_threads,
            context_overflow: options.context_overflow,
            can_shift,
            shape,
            description,
        })
    }

    /// Empties the KV cache of every sequence.
    pub fn forget_cache(&mut self) {
        self.seqs.clear_all(&mut self.ctx);
    }
}

/// The llama.cpp build whose state format snapshots carry: the sys crate's version pins the
/// llama.cpp sources it compiles.
const LLAMA_CPP_VERSION: &str = "llama-cpp-sys-2 0.1.161";

/// SHA-256 over the file's header, metadata and tensor table (everything before the tensor
/// data): cheap, and it differs for any other model or quantisation.
fn fingerprint_of(
    path: &std::path::Path,
    data_offset: u64,
) -> Result<snapshot_format::Fingerprint> {
    use std::io::Read;
    let mut header = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(data_offset).read_to_end(&mut header))
        .map_err(|e| Error::ModelLoadFailed(format!("cannot read {}: {e}", path.display())))?;
    Ok(snapshot_format::fingerprint(&header))
}

/// Sequences of the context: with n_seq > 1, n_seq for running requests and as many again for
/// paused ones and the caches of conversations that are not running. With n_seq 1, one: the
/// context v0.1 had (a single sequence; a higher-priority request then waits for the running
/// one rather than pausing it).
fn sequence_count(n_seq: u32) -> u32 {
    if n_seq > 1 {
        2 * n_seq
    } else {
        1
    }
}
