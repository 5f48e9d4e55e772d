//! `rigllama_engine_options`: how to load a model, its defaults and `_init`, and its
//! conversion (validated and copied) to the engine's [`EngineOptions`].

use std::ffi::{c_char, c_void};
use std::path::PathBuf;

use super::boundary::{array, boundary, optional_str, required_str, Failure};
use super::enums::{
    rigllama_context_overflow, rigllama_flash_attention, rigllama_kv_type, rigllama_thread_priority,
};
use super::status::rigllama_status;
use super::versioned::{frozen, init_struct, read_input, versioned_struct};
use crate::engine::{
    Checkpointing, ContextOverflow, EngineOptions, Error, Fit, FlashAttention, KvType,
    ThreadPriority,
};

/// Load progress, called on the thread that called `rigllama_engine_create` or
/// `rigllama_engine_reload`, with `progress` from 0.0 to 1.0. Return 0 to continue; non-zero
/// aborts the load, which then returns `RIGLLAMA_STATUS_CANCELLED`.
pub type rigllama_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, progress: f32) -> i32>;

/// How to load a model. Initialise with `rigllama_engine_options_init`, then set
/// `model_path` and whatever else differs from the defaults.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rigllama_engine_options {
    /// `sizeof(rigllama_engine_options)`, set by `rigllama_engine_options_init`.
    pub struct_size: u32,
    /// Context window in tokens. Default 4096, capped to the model's training context.
    pub n_ctx: u32,
    /// Most prompt tokens per decode call. Default 512.
    pub n_batch: u32,
    /// Threads for generation and prompt evaluation, at most. Default 0 = the CPUs this
    /// process may run on (affinity and cgroup limits included); a larger value is capped to
    /// those: more threads than cores makes llama.cpp ~100x slower. Engines in one process
    /// share the cores: their computations take turns (in order of asking), so the threads
    /// computing at once never exceed the cores, however many engines there are.
    pub n_threads: i32,
    /// Layers offloaded to a GPU: 0 (default) = CPU only, -1 = all, N = the first N.
    pub n_gpu_layers: i32,
    /// UTF-8 path of a `.gguf` file. Required. Copied before the call returns.
    pub model_path: *const c_char,
    /// NULL (default) = the GGUF's own template (Jinja, rendered by llama.cpp's Jinja engine
    /// with tools and the thinking switch), else the built-in template for the model's
    /// architecture (see README). Jinja template text, or a llama.cpp built-in template name
    /// ("gemma", "chatml", "llama3", ...), also works.
    pub chat_template: *const c_char,
    /// Optional load progress callback (see `rigllama_progress_callback`).
    pub on_progress: rigllama_progress_callback,
    /// Passed untouched to `on_progress`.
    pub progress_user_data: *mut c_void,
    /// v0.2. What happens when a conversation outgrows `n_ctx`: one of the
    /// `RIGLLAMA_CONTEXT_OVERFLOW_*` values. Default `RIGLLAMA_CONTEXT_OVERFLOW_FAIL`.
    pub context_overflow: i32,
    /// v0.2. Requests served at once, 1..64; default 1. Each runs in its own sequence of the
    /// context (which they share: n_ctx cells in all) and all advance together, one decode
    /// per step; more wait, in priority order. A conversation keeps its KV cache after its
    /// request ends, so its next turn reuses it.
    pub n_seq: u32,
    /// v0.2. Data type of the KV cache's keys: one of `RIGLLAMA_KV_TYPE_*`; default F16.
    pub type_k: i32,
    /// v0.2. Data type of the KV cache's values: one of `RIGLLAMA_KV_TYPE_*`; default F16. A
    /// quantized type needs `flash_attention` AUTO or ON.
    pub type_v: i32,
    /// v0.2. One of `RIGLLAMA_FLASH_ATTENTION_*`; default AUTO.
    pub flash_attention: i32,
    /// v0.2. 0 (default) = off; 1 = llama.cpp's fitting chooses the GPU layers (leave
    /// `n_gpu_layers` at 0 or -1) and, if the model and context would not leave the margins
    /// free, a smaller context: never above `n_ctx`, never below `fit_min_ctx` (else create
    /// fails with MODEL_LOAD_FAILED saying so). `rigllama_engine_describe` reports the choice
    /// and why under "fit".
    pub fit: u32,
    /// v0.2. The smallest context the fit may choose, in tokens; default 4096; >= 1.
    pub fit_min_ctx: u32,
    /// v0.2. MiB to leave free per device when fitting (`n_fit_margins_mib` values: one for
    /// every device, or one per device in llama.cpp's order; on a CPU-only build the one
    /// device is host memory). NULL (default) = 1024 MiB for every device.
    pub fit_margins_mib: *const u32,
    /// v0.2. Entries in `fit_margins_mib`.
    pub n_fit_margins_mib: usize,
    /// v0.2. State checkpoints, for recurrent and hybrid models (Mamba, RWKV, LFM2, ...),
    /// whose state cannot be cut back to a prefix: copies of it are taken at the end of each
    /// prompt and each reply, so that a request sharing a prefix with one (the next turn, a
    /// regenerated reply, another conversation coming back) resumes from the longest instead
    /// of evaluating everything again. Least recently used go first. Other models ignore both
    /// fields; `rigllama_engine_describe` reports what is kept under "checkpoints".
    /// This one: most bytes the copies may hold together; default 512 MiB. A model whose state
    /// alone is larger takes none (a warning is logged).
    pub max_checkpoint_bytes: u64,
    /// v0.2. Most state checkpoints kept (see `max_checkpoint_bytes`); default 32; 0 = none.
    pub max_checkpoints: u32,
    /// v0.2. UTF-8 path of a multimodal projector (`mmproj` GGUF) made for this model, or
    /// NULL (default). Loaded with the model (create fails with MODEL_LOAD_FAILED saying why
    /// if it cannot be) and swapped with it by `rigllama_engine_reload`; images in
    /// `messages_json` then reach the model. A library built without the `mtmd` cargo
    /// feature refuses a non-NULL path with INVALID_ARGUMENT.
    pub mmproj_path: *const c_char,
    /// v0.3. One of `RIGLLAMA_THREAD_PRIORITY_*`; default NORMAL. LOW lets a game keep its
    /// frame rate: the engine's threads yield to the host's (see README, "Games").
    pub thread_priority: i32,
    /// v0.3. llama.cpp RPC servers whose devices take the offloaded layers, as a
    /// comma-separated UTF-8 list of `host:port` (llama.cpp's `rpc-server`), or NULL (default)
    /// for none. Set `n_gpu_layers` (-1 = all) to put layers on them. Each server is resolved,
    /// connected to (5 s timeout) and asked for its protocol version before llama.cpp sees
    /// it: an unreachable server, a closed port, a listener that is not an rpc-server, or one
    /// of another protocol version fails create (or reload, which keeps the old model) with
    /// MODEL_LOAD_FAILED naming the server and the cause. A server lost AFTER the model
    /// loaded (killed, network down mid-request) cannot be survived: llama.cpp ends the
    /// process with abort(); rigllama first writes llama.cpp's message to stderr and to the
    /// log callback (ERROR, starting "rigllama: llama.cpp is aborting the process: "); a host
    /// that does not ignore SIGPIPE may die of SIGPIPE first, without a message. No
    /// authentication or encryption: private networks only. A library built without the
    /// `rpc` cargo feature refuses a non-NULL value with INVALID_ARGUMENT.
    pub rpc_servers: *const c_char,
    /// v0.3. Where the GGUF starts inside the file at `model_path`, for a model kept in a
    /// larger file (a game's asset archive); 0 (default) = the file is the GGUF. The range is
    /// checked before llama.cpp reads a byte (past the end, not a GGUF at the offset, a size
    /// that cuts the tensor data: MODEL_LOAD_FAILED naming the numbers). The file is mapped when
    /// `model_offset` plus the GGUF's data offset is a multiple of 32 (a GGUF stored at a
    /// 32-byte-aligned offset keeps that), else read into memory. Not with `fit` or
    /// `rpc_servers`.
    pub model_offset: u64,
    /// v0.3. The GGUF's length in bytes from `model_offset`; 0 (default) = to the end of the
    /// file.
    pub model_size: u64,
    /// v0.3. 1 = llama.cpp's `--no-repack`: CPU weights are not repacked for its fastest
    /// kernels (slower, but the same arithmetic as an RPC server or a plain CPU backend, so
    /// greedy text matches theirs); 0 (default) = repacked, as llama.cpp does. Not with `fit`
    /// or `rpc_servers`.
    pub no_repack: i32,
    /// v0.3. The devices that take the offloaded layers (llama.cpp's `--device`): a
    /// comma-separated UTF-8 list of names as `rigllama_list_devices` reports them
    /// ("Vulkan0", "CUDA0,CUDA1"), in that order; "none" = the CPU only; NULL (default) =
    /// llama.cpp's choice (every GPU). A CPU device's name means the CPU. A named device that
    /// does not exist fails create with INVALID_ARGUMENT naming it and the devices there are;
    /// one that cannot take the model (out of its memory, its driver fails) fails with
    /// MODEL_LOAD_FAILED naming it and the cause. With NULL, a GPU that cannot start (no
    /// driver, no device, out of device memory while loading) leaves the model on the CPU: a
    /// warning is logged and `describe`'s `gpu_fallback` says why.
    pub devices: *const c_char,
}

/// Fills `options` with defaults for `struct_size` bytes (pass `sizeof *options`): whole
/// fields that fit get their defaults, other bytes are zeroed. Returns
/// `RIGLLAMA_STATUS_INVALID_ARGUMENT` if `struct_size` is smaller than the v0.1 size.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_options_init(
    options: *mut rigllama_engine_options,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(options, struct_size) })
}

versioned_struct!(input rigllama_engine_options {
    v0_1_size: frozen(56, 36),
    v0_1_last: progress_user_data,
    n_ctx: crate::engine::DEFAULT_N_CTX,
    n_batch: crate::engine::DEFAULT_N_BATCH,
    n_threads: 0,
    n_gpu_layers: 0,
    model_path: std::ptr::null(),
    chat_template: std::ptr::null(),
    on_progress: None,
    progress_user_data: std::ptr::null_mut(),
    context_overflow: rigllama_context_overflow::Fail as i32,
    n_seq: 1,
    type_k: rigllama_kv_type::F16 as i32,
    type_v: rigllama_kv_type::F16 as i32,
    flash_attention: rigllama_flash_attention::Auto as i32,
    fit: 0,
    fit_min_ctx: crate::engine::DEFAULT_FIT_MIN_CTX,
    fit_margins_mib: std::ptr::null(),
    n_fit_margins_mib: 0,
    max_checkpoint_bytes: crate::engine::DEFAULT_MAX_CHECKPOINT_BYTES,
    max_checkpoints: crate::engine::DEFAULT_MAX_CHECKPOINTS,
    mmproj_path: std::ptr::null(),
    thread_priority: rigllama_thread_priority::Normal as i32,
    rpc_servers: std::ptr::null(),
    model_offset: 0,
    model_size: 0,
    no_repack: 0,
    devices: std::ptr::null(),
});

pub(crate) unsafe fn read_options(
    options: *const rigllama_engine_options,
) -> Result<(EngineOptions, rigllama_engine_options), Failure> {
    let raw = unsafe { read_input(options) }?;
    let model_path = unsafe { required_str(raw.model_path, "options->model_path") }?;
    let chat_template = unsafe { optional_str(raw.chat_template, "options->chat_template") }?;
    let mmproj_path = unsafe { optional_str(raw.mmproj_path, "options->mmproj_path") }?;
    let rpc_servers = unsafe { optional_str(raw.rpc_servers, "options->rpc_servers") }?;
    let devices = unsafe { optional_str(raw.devices, "options->devices") }?;
    if raw.n_threads < 0 {
        return Err(Error::invalid(format!(
            "n_threads {} is negative; use 0 for the CPUs available",
            raw.n_threads
        ))
        .into());
    }
    if raw.n_threads > crate::engine::MAX_THREADS as i32 {
        return Err(Error::invalid(format!(
            "n_threads {} is out of range (0 = the CPUs available, or 1..={})",
            raw.n_threads,
            crate::engine::MAX_THREADS
        ))
        .into());
    }
    if raw.n_gpu_layers < -1 {
        return Err(Error::invalid(format!(
            "n_gpu_layers {} is invalid; use -1 (all), 0 (CPU only) or a layer count",
            raw.n_gpu_layers
        ))
        .into());
    }
    let options = EngineOptions {
        model_offset: raw.model_offset,
        model_size: raw.model_size,
        cpu_repack: match raw.no_repack {
            0 => true,
            1 => false,
            other => {
                return Err(Error::invalid(format!("no_repack {other} must be 0 or 1")).into())
            }
        },
        model_path: PathBuf::from(model_path),
        n_ctx: raw.n_ctx,
        n_batch: raw.n_batch,
        n_threads: (raw.n_threads > 0).then_some(raw.n_threads as u32),
        n_gpu_layers: (raw.n_gpu_layers >= 0).then_some(raw.n_gpu_layers as u32),
        chat_template,
        context_overflow: match rigllama_context_overflow::from_repr(raw.context_overflow) {
            Some(rigllama_context_overflow::Fail) => ContextOverflow::Fail,
            Some(rigllama_context_overflow::Shift) => ContextOverflow::Shift,
            None => {
                return Err(Error::invalid(format!(
                "context_overflow {} is not a RIGLLAMA_CONTEXT_OVERFLOW_* value (0 FAIL, 1 SHIFT)",
                raw.context_overflow
            ))
                .into())
            }
        },
        n_seq: raw.n_seq,
        type_k: kv_type(raw.type_k, "type_k")?,
        type_v: kv_type(raw.type_v, "type_v")?,
        flash_attention: match rigllama_flash_attention::from_repr(raw.flash_attention) {
            Some(rigllama_flash_attention::Auto) => FlashAttention::Auto,
            Some(rigllama_flash_attention::Off) => FlashAttention::Off,
            Some(rigllama_flash_attention::On) => FlashAttention::On,
            None => {
                return Err(Error::invalid(format!(
                    "flash_attention {} is not a RIGLLAMA_FLASH_ATTENTION_* value (0 AUTO, 1 OFF, 2 ON)",
                    raw.flash_attention
                ))
                .into())
            }
        },
        fit: match raw.fit {
            0 => None,
            1 => Some(Fit {
                min_ctx: raw.fit_min_ctx,
                margins_mib: match unsafe {
                    array(raw.fit_margins_mib, raw.n_fit_margins_mib, "options->fit_margins_mib")
                }? {
                    [] => vec![crate::engine::DEFAULT_FIT_MARGIN_MIB],
                    margins => margins.to_vec(),
                },
            }),
            other => return Err(Error::invalid(format!("fit {other} must be 0 or 1")).into()),
        },
        checkpoints: Checkpointing {
            max_count: raw.max_checkpoints,
            max_bytes: raw.max_checkpoint_bytes,
        },
        mmproj_path: mmproj_path.map(PathBuf::from),
        thread_priority: match rigllama_thread_priority::from_repr(raw.thread_priority) {
            Some(rigllama_thread_priority::Normal) => ThreadPriority::Normal,
            Some(rigllama_thread_priority::Low) => ThreadPriority::Low,
            None => {
                return Err(Error::invalid(format!(
                    "thread_priority {} is not a RIGLLAMA_THREAD_PRIORITY_* value (0 NORMAL, 1 LOW)",
                    raw.thread_priority
                ))
                .into())
            }
        },
        rpc_servers: match rpc_servers {
            Some(list) => crate::engine::parse_rpc_servers(&list)?,
            None => Vec::new(),
        },
        devices: devices
            .map(|list| crate::engine::parse_devices(&list))
            .transpose()?,
    };
    options.validate()?;
    Ok((options, raw))
}

fn kv_type(value: i32, field: &str) -> Result<KvType, Failure> {
    Ok(match rigllama_kv_type::from_repr(value) {
        Some(rigllama_kv_type::F16) => KvType::F16,
        Some(rigllama_kv_type::F32) => KvType::F32,
        Some(rigllama_kv_type::Bf16) => KvType::BF16,
        Some(rigllama_kv_type::Q8_0) => KvType::Q8_0,
        Some(rigllama_kv_type::Q4_0) => KvType::Q4_0,
        Some(rigllama_kv_type::Q4_1) => KvType::Q4_1,
        Some(rigllama_kv_type::Q5_0) => KvType::Q5_0,
        Some(rigllama_kv_type::Q5_1) => KvType::Q5_1,
        Some(rigllama_kv_type::Iq4Nl) => KvType::Iq4Nl,
        None => {
            return Err(Error::invalid(format!(
                "{field} {value} is not a RIGLLAMA_KV_TYPE_* value (0..8)"
            ))
            .into())
        }
    })
}

/// Wraps a C progress callback; it runs on the calling thread only.
pub(crate) fn progress_fn(
    callback: rigllama_progress_callback,
    user_data: *mut c_void,
) -> Option<impl FnMut(f32) -> bool> {
    callback.map(|callback| move |progress| unsafe { callback(user_data, progress) } == 0)
}
