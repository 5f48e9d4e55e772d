//! A loaded model: the llama.cpp model, its context, the chat format and the KV cache, made
//! by [`LoadedModel::load`] on the worker thread and used only there.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaModel, RopeType};
use llama_cpp_2::token::LlamaToken;
use snapshot_format::Shape;

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::cache::checkpoint::Checkpoints;
use crate::engine::cache::sequences::Sequences;
use crate::engine::cancel::{install_abort_probe, AbortProbe};
use crate::engine::chat::template::ChatFormat;
use crate::engine::data::description::{Description, FitReport};
use crate::engine::data::options::{ContextOverflow, EngineOptions, FlashAttention, KvType};
use crate::engine::data::tokens::SpecialTokens;
use crate::engine::error::{Error, Result};
use crate::engine::fault;
use crate::engine::llama::backend::{self, capture_placement, capture_problems, LogLevel};
use crate::engine::llama::devices;
use crate::engine::llama::embedded_model::{load_embedded, EmbeddedLoad};
use crate::engine::llama::fit::fit_to_memory;
use crate::engine::llama::memory::memory_use;
use crate::engine::llama::modules;
use crate::engine::llama::rpc::{self, RpcServers};
use crate::engine::llama::threadpool::ThreadPool;
use crate::engine::llama::vision::Vision;
use crate::engine::worker::cpu_share::cpu_share;
use crate::engine::worker::lora::{Adapters, LoraChange};
use crate::engine::worker::offload::Offload;
use crate::engine::worker::protocol::WorkerShared;
use crate::engine::worker::protocol::{LoadOrder, LoadReport};
use crate::engine::worker::thread_priority;
use llama_cpp_2::llama_batch::LlamaBatch;

pub(crate) struct LoadedModel {
    // Field order is drop order: the contexts must go before the model they point into.
    pub(super) ctx: LlamaContext<'static>,
    /// The embedding context, made on the first embed request (see `embed.rs`).
    pub(super) embed_ctx: Option<LlamaContext<'static>>,
    /// `ctx`'s thread pool: after the contexts, before the model.
    _threads: Option<ThreadPool>,
    /// The multimodal projector (`mmproj_path`): before the model it was loaded for.
    pub(super) vision: Option<Vision>,
    pub(super) model: Box<LlamaModel>,
    /// The RPC servers the model's layers live on: after the model, whose buffers hold the
    /// connections to them.
    _rpc: Option<RpcServers>,
    pub(super) format: Option<ChatFormat>,
    /// The context's sequences and what each holds.
    pub(super) seqs: Sequences,
    /// The batch every decode fills.
    pub(super) batch: LlamaBatch<'static>,
    /// Requests served at once.
    pub(super) n_seq: u32,
    pub(super) n_ctx: u32,
    pub(super) n_batch: u32,
    pub(super) n_threads: u32,
    pub(super) context_overflow: ContextOverflow,
    /// Whether llama.cpp can shift this model's KV cache in place (it aborts if asked to
    /// when it cannot).
    pub(super) can_shift: bool,
    /// Whether a sequence's cache can be cut back to any length (not a recurrent state):
    /// speculation evaluates guesses that may have to be removed again.
    pub(super) can_truncate: bool,
    /// What a snapshot of this engine's cache must match (see `snapshot.rs`).
    pub(super) shape: Shape,
    pub(super) description: Description,
    /// LoRA adapters applied to `ctx`.
    pub(super) adapters: Adapters,
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
        let summary = check_model_file(options)?;
        // The same as for the GGUF on its own: snapshots move between the two.
        let fingerprint = fingerprint_of(path, options.model_offset, summary.data_offset)?;
        fault::check("check_file")?;

        // RPC servers are checked here, before llama.cpp sees them (it aborts on any failure).
        let rpc_servers = if options.rpc_servers.is_empty() {
            None
        } else {
            Some(rpc::attach(&options.rpc_servers)?)
        };
        let mut offload = Offload::plan(options, rpc_servers.as_ref())?;
        let Weights {
            ctx,
            model,
            placement,
            n_ctx,
            n_ctx_train,
            n_batch,
            n_threads,
            fit,
        } = loop {
            match load_weights(backend, order, probe, shared, &summary, &offload) {
                Ok(weights) => break weights,
                Err(error) => match offload.fall_back(options, &error) {
                    Some(on_cpu) => offload = on_cpu,
                    None => return Err(offload.explain(error)),
                },
            }
        };

        let architecture = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let (format, chat_template_error) =
            ChatFormat::choose(&model, options.chat_template.as_deref(), &architecture);
        let can_truncate = !model.is_recurrent() && !model.is_hybrid();
        let can_shift = can_truncate
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
            type_k: llama_cpp_sys_2::ggml_type::from(kv_cache_type(options.type_k)),
            type_v: llama_cpp_sys_2::ggml_type::from(kv_cache_type(options.type_v)),
            // The setting as asked for: 0 auto (as v0.1 had it), 1 off, 2 on.
            flash_attention: options.flash_attention as u32,
            llama_cpp: LLAMA_CPP_VERSION.to_owned(),
        };
        let vision = load_vision(options, &model, n_threads, probe)?;
        // Made once nothing can fail: it publishes its figures to `describe`.
        let checkpoints = Checkpoints::new(
            options.checkpoints,
            !can_truncate,
            !model.is_hybrid(),
            shared.checkpoints.clone(),
        );
        let description = Description {
            model_path: path.to_string_lossy().into_owned(),
            architecture,
            n_ctx,
            n_ctx_train,
            n_batch,
            n_vocab: model.n_vocab().max(0) as u32,
            special_tokens: special_tokens(&model),
            n_params: model.n_params(),
            n_threads,
            thread_priority: options.thread_priority,
            thread_priority_applied: false,
            n_gpu_layers: offload.n_gpu_layers(options).map_or(-1, |n| n as i32),
            chat_template: format
                .as_ref()
                .map(|f| f.text().to_owned())
                .unwrap_or_default(),
            chat_template_source: format.as_ref().map_or("none", |f| f.source()),
            chat_template_engine: format.as_ref().map_or("none", |f| f.engine_name()),
            chat_template_error,
            n_embd: model.n_embd_out().max(0) as u32,
            context_overflow: options.context_overflow,
            n_seq: options.n_seq,
            can_shift,
            type_k: options.type_k,
            type_v: options.type_v,
            flash_attention: options.flash_attention,
            memory: memory_use(&ctx, &model),
            fit,
            lora: Vec::new(),
            control_vector: None,
            checkpoints: checkpoints.usage(),
            mmproj_path: options
                .mmproj_path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            rpc_devices: rpc_servers
                .as_ref()
                .map(|servers| servers.describe(&placement))
                .unwrap_or_default(),
            devices: devices::usage(&ctx, &model, &placement),
            gpu_fallback: offload.fallback.clone(),
            cpu_backend: modules::cpu_backend(),
        };
        // Nothing fails from here on, so an engine whose reload fails keeps its priority. The
        // pool made next, and every thread the worker starts later, inherits it.
        let mut description = description;
        description.thread_priority_applied =
            match thread_priority::apply_to_current_thread(options.thread_priority) {
                Ok(()) => true,
                Err(why) => {
                    backend::log(
                        LogLevel::Warn,
                        &format!(
                            "thread_priority {:?} not applied: {why}",
                            options.thread_priority
                        ),
                    );
                    false
                }
            };
        *shared.description.lock().unwrap_or_else(|p| p.into_inner()) = description.clone();
        let threads = ThreadPool::attach(&ctx, &model, n_threads);
        if threads.is_none() {
            backend::log(
                LogLevel::Warn,
                "no persistent ggml thread pool: every decode makes its own (slower)",
            );
        }
        Ok(LoadedModel {
            ctx,
            embed_ctx: None,
            _threads: threads,
            vision,
            model,
            _rpc: rpc_servers,
            format,
            seqs: Sequences::new(sequence_count(options.n_seq), can_truncate, checkpoints),
            batch: LlamaBatch::new(n_batch as usize, 1),
            n_seq: options.n_seq,
            n_ctx,
            n_batch,
            n_threads,
            context_overflow: options.context_overflow,
            can_shift,
            can_truncate,
            shape,
            description,
            adapters: Adapters::default(),
        })
    }

    /// Adds, rescales or removes a LoRA adapter, and empties the KV cache: it was computed
    /// with the weights as they were.
    pub fn change_lora(&mut self, change: LoraChange, shared: &WorkerShared) -> Result<u32> {
        let id = self.adapters.change(change, &self.model, &mut self.ctx)?;
        self.forget_cache();
        self.description.lora = self.adapters.infos();
        self.description.memory = memory_use(&self.ctx, &self.model);
        *shared.description.lock().unwrap_or_else(|p| p.into_inner()) = self.description.clone();
        Ok(id)
    }

    /// Puts the LoRA adapter set `set` on the context for the next decode.
    pub fn use_adapters(&mut self, set: &AdapterSet) -> Result<()> {
        self.adapters.activate(set, &self.model, &mut self.ctx)
    }

    /// Snapshots record the model, not adapters: refused while any is applied.
    pub fn refuse_snapshot_with_adapters(&self) -> Result<()> {
        if self.description.control_vector.is_some() {
            return Err(Error::invalid(
                "snapshots are not saved or loaded while a control vector is set (the KV cache \
                 depends on it and a snapshot does not record it); clear it first",
            ));
        }
        if self.adapters.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                "snapshots are not saved or loaded while LoRA adapters are applied (the KV \
                 cache depends on them and a snapshot does not record them); remove them first",
            ))
        }
    }

    /// Empties the KV cache of every sequence.
    pub fn forget_cache(&mut self) {
        self.seqs.forget_all(&mut self.ctx);
    }
}

/// The projector named by `mmproj_path`, loaded for `model` (llama.cpp's mtmd).
#[cfg(feature = "mtmd")]
fn load_vision(
    options: &EngineOptions,
    model: &LlamaModel,
    n_threads: u32,
    probe: &AbortProbe,
) -> Result<Option<Vision>> {
    let Some(path) = &options.mmproj_path else {
        return Ok(None);
    };
    let use_gpu = options.n_gpu_layers != Some(0);
    Vision::load(path, model, n_threads, use_gpu, probe).map(Some)
}

/// Built without `mtmd`: options with a projector were refused by `validate`.
#[cfg(not(feature = "mtmd"))]
fn load_vision(
    _options: &EngineOptions,
    _model: &LlamaModel,
    _n_threads: u32,
    _probe: &AbortProbe,
) -> Result<Option<Vision>> {
    Ok(None)
}

/// llama.cpp aborts the process on some malformed files: the header, metadata and tensor
/// table of the options' model (or its range of a pack file) are checked with bounds first,
/// before every load and every estimate.
pub(super) fn check_model_file(options: &EngineOptions) -> Result<gguf_check::GgufSummary> {
    let path = &options.model_path;
    if options.is_embedded() {
        gguf_check::check_gguf_range(path, options.model_offset, options.model_size)
            .map_err(|e| Error::ModelLoadFailed(format!("model {}: {e}", path.display())))
    } else {
        gguf_check::check_model_file(path).map_err(|e| Error::ModelLoadFailed(e.to_string()))
    }
}

/// A model's weights on their devices and its context, as [`load_weights`] made them.
struct Weights {
    // Field order is drop order: the context before the model it points into.
    ctx: LlamaContext<'static>,
    model: Box<LlamaModel>,
    /// llama.cpp's "layer N assigned to device NAME", from its log.
    placement: Vec<(u32, String)>,
    n_ctx: u32,
    n_ctx_train: u32,
    n_batch: u32,
    n_threads: u32,
    fit: Option<FitReport>,
}

/// Loads the weights onto `offload`'s devices (fitting them first when asked) and creates
/// the context: the part of a load that a GPU that cannot start makes fail, and that runs
/// again on the CPU then (see [`Offload::fall_back`]).
fn load_weights(
    backend: &'static LlamaBackend,
    order: &LoadOrder,
    probe: &AbortProbe,
    shared: &WorkerShared,
    summary: &gguf_check::GgufSummary,
    offload: &Offload,
) -> Result<Weights> {
    let options = &order.options;
    let path = &options.model_path;
    let reports = order.reports.clone();
    let abort = order.abort.clone();
    let mut params = LlamaModelParams::default().with_progress_callback(move |fraction| {
        let _ = reports.send(LoadReport::Progress(fraction));
        !abort.load(Ordering::SeqCst)
    });
    let n_gpu_layers = offload.n_gpu_layers(options);
    if options.fit.is_none() || offload.fallback.is_some() {
        params = params.with_n_gpu_layers(n_gpu_layers.unwrap_or(u32::MAX));
    }
    if let Some(devices) = &offload.devices {
        params = params.with_devices(devices).map_err(|e| {
            Error::ModelLoadFailed(format!("cannot choose the model's devices: {e}"))
        })?;
    }
    let mut params = Box::pin(params);
    let fitted = match &options.fit {
        Some(fit) if offload.fallback.is_none() => Some(fit_to_memory(
            path,
            params.as_mut(),
            // n_ctx 0: the fit may choose (it leaves a context the caller set alone).
            context_params(options, 0, options.n_batch),
            fit,
        )?),
        _ => None,
    };
    let (model, placement) = capture_placement(|| {
        if options.needs_raw_load() {
            // mmap needs the data section 32-byte aligned in the file (llama.cpp's CPU tensor
            // alignment); an archive that does not keep it is read into memory instead.
            let use_mmap = (options.model_offset + summary.data_offset).is_multiple_of(32);
            if !use_mmap {
                backend::log(
                    LogLevel::Info,
                    &format!(
                        "the GGUF at offset {} of {} has its data section at byte {}, not a \
                         multiple of 32: read into memory instead of mapped",
                        options.model_offset,
                        path.display(),
                        options.model_offset + summary.data_offset
                    ),
                );
            }
            let reports = order.reports.clone();
            let abort = order.abort.clone();
            let mut progress = move |fraction: f32| {
                let _ = reports.send(LoadReport::Progress(fraction));
                !abort.load(Ordering::SeqCst)
            };
            load_embedded(EmbeddedLoad {
                path,
                offset: options.model_offset,
                n_gpu_layers: n_gpu_layers.map_or(-1, |n| n.min(i32::MAX as u32) as i32),
                use_mmap,
                no_alloc: false,
                repack: options.cpu_repack,
                devices: offload.devices.clone(),
                progress: &mut progress,
            })
        } else {
            LlamaModel::load_from_file(backend, path, &params).map_err(|e| e.to_string())
        }
    });
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
    let mut n_ctx = options.n_ctx.min(n_ctx_train.max(1));
    let fit = fitted.map(|allowed| {
        let chosen = allowed.unwrap_or(n_ctx_train);
        let reason = if chosen >= n_ctx {
            format!(
                "fits: the fit allows {chosen} tokens with the margin left free; n_ctx {n_ctx} \
                 is used"
            )
        } else {
            n_ctx = chosen;
            format!(
                "the context was reduced from {} to {chosen} tokens to leave the margin free",
                options.n_ctx.min(n_ctx_train)
            )
        };
        FitReport {
            n_ctx,
            n_gpu_layers: params.n_gpu_layers(),
            reason,
        }
    });
    let n_batch = options.n_batch.min(n_ctx);
    // Never more threads than the cores: ggml's spinning barriers collapse beyond them.
    let cores = cpu_share().cores();
    let n_threads = options.n_threads.map_or(cores, |n| n.min(cores));
    let mut ctx_params = context_params(options, n_ctx, n_batch)
        .with_n_threads(n_threads as i32)
        .with_n_threads_batch(n_threads as i32);
    if !install_abort_probe(&mut ctx_params, probe) {
        backend::log(
            LogLevel::Warn,
            "llama.cpp abort callback unavailable: cancel waits for the current prompt chunk",
        );
    }
    // SAFETY: the context borrows the boxed model, whose heap address never moves; `Weights`'
    // field order (and `LoadedModel`'s) drops the context first.
    let model_ref: &'static LlamaModel = unsafe { &*(model.as_ref() as *const LlamaModel) };
    let (ctx, problems) = capture_problems(|| model_ref.new_context(backend, ctx_params));
    let ctx = ctx.map_err(|e| {
        let why = problems.last().map_or(String::new(), |p| format!(": {p}"));
        Error::ModelLoadFailed(format!(
            "llama.cpp could not create a context of {n_ctx} tokens for {} with K cache {}, \
             V cache {}, flash attention {:?} ({e}{why}); try a smaller n_ctx, or F16 cache types",
            path.display(),
            options.type_k.name(),
            options.type_v.name(),
            options.flash_attention
        ))
    })?;
    // After the context exists, so the failure path must free both, context first.
    fault::check("create_context")?;
    Ok(Weights {
        ctx,
        model,
        placement,
        n_ctx,
        n_ctx_train,
        n_batch,
        n_threads,
        fit,
    })
}

/// The context settings both the fit (which measures them) and the context use.
pub(super) fn context_params(
    options: &EngineOptions,
    n_ctx: u32,
    n_batch: u32,
) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        // A full-size sliding-window cache, so prefix reuse, shifts and snapshots work
        // for models with sliding-window layers (Gemma 3) as for any other.
        .with_swa_full(true)
        .with_n_seq_max(sequence_count(options.n_seq))
        // The sequences share the n_ctx cells of one unified cache rather than a fixed
        // slice each.
        .with_kv_unified(options.n_seq > 1)
        .with_type_k(kv_cache_type(options.type_k))
        .with_type_v(kv_cache_type(options.type_v))
        .with_flash_attention_policy(match options.flash_attention {
            FlashAttention::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
            FlashAttention::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            FlashAttention::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        })
}

fn kv_cache_type(kv: KvType) -> KvCacheType {
    match kv {
        KvType::F16 => KvCacheType::F16,
        KvType::F32 => KvCacheType::F32,
        KvType::BF16 => KvCacheType::BF16,
        KvType::Q8_0 => KvCacheType::Q8_0,
        KvType::Q4_0 => KvCacheType::Q4_0,
        KvType::Q4_1 => KvCacheType::Q4_1,
        KvType::Q5_0 => KvCacheType::Q5_0,
        KvType::Q5_1 => KvCacheType::Q5_1,
        KvType::Iq4Nl => KvCacheType::IQ4_NL,
    }
}

/// The llama.cpp build whose state format snapshots carry: the sys crate's version pins the
/// llama.cpp sources it compiles.
const LLAMA_CPP_VERSION: &str = "llama-cpp-sys-2 0.1.161";

/// SHA-256 over the file's header, metadata and tensor table (everything before the tensor
/// data): cheap, and it differs for any other model or quantisation.
fn fingerprint_of(
    path: &std::path::Path,
    offset: u64,
    data_offset: u64,
) -> Result<snapshot_format::Fingerprint> {
    use std::io::{Read, Seek, SeekFrom};
    let mut header = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut file| {
            file.seek(SeekFrom::Start(offset))?;
            file.take(data_offset).read_to_end(&mut header)
        })
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

/// The special tokens `model`'s vocabulary has.
fn special_tokens(model: &LlamaModel) -> SpecialTokens {
    let vocab = model.vocab();
    let id = |t: LlamaToken| (t.0 >= 0).then_some(t.0);
    SpecialTokens {
        bos: id(vocab.bos()),
        eos: id(vocab.eos()),
        eot: id(vocab.eot()),
        sep: id(vocab.sep()),
        nl: id(vocab.nl()),
        pad: id(vocab.pad()),
        fim_pre: id(vocab.fim_pre()),
        fim_suf: id(vocab.fim_suf()),
        fim_mid: id(vocab.fim_mid()),
        fim_pad: id(vocab.fim_pad()),
        fim_rep: id(vocab.fim_rep()),
        fim_sep: id(vocab.fim_sep()),
    }
}
