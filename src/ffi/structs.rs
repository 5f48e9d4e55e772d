//! The public structs, their `_init` functions, and the `struct_size` rules: the library
//! never reads or writes past the size the caller gave.

use std::ffi::{c_char, c_void};
use std::mem::{offset_of, size_of};

use super::boundary::{boundary, rigllama_status, Failure};
use crate::engine::{Error, FinishReason, Usage};

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
    /// Threads for generation and prompt evaluation. Default 0 = the CPUs this process may
    /// run on (affinity and cgroup limits included), never more: more threads than cores
    /// makes llama.cpp ~100x slower. Engines do not coordinate; with several engines, set it.
    pub n_threads: i32,
    /// Layers offloaded to a GPU: 0 (default) = CPU only, -1 = all, N = the first N.
    pub n_gpu_layers: i32,
    /// UTF-8 path of a `.gguf` file. Required. Copied before the call returns.
    pub model_path: *const c_char,
    /// NULL (default) = the GGUF's own template if llama.cpp recognises it, else the built-in
    /// template for the model's architecture (see README). A llama.cpp built-in template name
    /// ("gemma", "chatml", "llama3", ...) or template text also works.
    pub chat_template: *const c_char,
    /// Optional load progress callback (see `rigllama_progress_callback`).
    pub on_progress: rigllama_progress_callback,
    /// Passed untouched to `on_progress`.
    pub progress_user_data: *mut c_void,
}

/// Pass as `max_tokens` to generate until the context window is full.
pub const RIGLLAMA_MAX_TOKENS_UNLIMITED: u32 = u32::MAX;
/// Pass as `seed` to use a random seed (reported back in `rigllama_usage.seed`).
pub const RIGLLAMA_SEED_RANDOM: u32 = u32::MAX;

/// One generation request. Initialise with `rigllama_request_init`, then set `prompt` (or
/// `messages_json`). Strings are UTF-8 and copied before the call returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rigllama_request {
    /// `sizeof(rigllama_request)`, set by `rigllama_request_init`.
    pub struct_size: u32,
    /// Most tokens to generate. Default 512; `RIGLLAMA_MAX_TOKENS_UNLIMITED` = until the
    /// context is full; 0 is invalid.
    pub max_tokens: u32,
    /// Default 0.8; 0 = greedy (deterministic). Finite and >= 0.
    pub temperature: f32,
    /// Default 0.95; 0 < top_p <= 1.
    pub top_p: f32,
    /// Default 40; 0 = off.
    pub top_k: i32,
    /// Default 0.05; 0 <= min_p <= 1; 0 = off.
    pub min_p: f32,
    /// Default 1.0 (off); > 0. Applies to the last 64 tokens.
    pub repeat_penalty: f32,
    /// Default `RIGLLAMA_SEED_RANDOM`; any other value is a fixed seed.
    pub seed: u32,
    /// 0 (default) = format turns with the chat template; 1 = send `prompt` verbatim (text
    /// completion: special tokens in it are parsed, BOS is added as the model's vocabulary
    /// says). 1 together with `messages_json` or `system_prompt` is invalid.
    pub raw_prompt: u32,
    /// One user turn. May be NULL when `messages_json` is set.
    pub prompt: *const c_char,
    /// Optional system turn. Invalid together with a system message in `messages_json`.
    pub system_prompt: *const c_char,
    /// Optional conversation: `[{"role":"system|user|assistant","content":"..."}]` (content a
    /// string; only the first turn may be a system turn). `prompt`, if also set, is appended
    /// as the last user turn. The conversation must end with a user turn.
    pub messages_json: *const c_char,
    /// Optional stop strings (`n_stop` of them). A stop string and everything after it are
    /// never emitted. NULL entries or "" are invalid.
    pub stop: *const *const c_char,
    /// Number of entries in `stop`.
    pub n_stop: usize,
}

/// Why generation ended: one of the `RIGLLAMA_FINISH_REASON_*` values.
pub type rigllama_finish_reason = i32;
/// An end-of-turn token or a stop string.
pub const RIGLLAMA_FINISH_REASON_STOP: rigllama_finish_reason = 0;
/// `max_tokens` reached, or the context window is full.
pub const RIGLLAMA_FINISH_REASON_LENGTH: rigllama_finish_reason = 1;
/// The token callback returned non-zero.
pub const RIGLLAMA_FINISH_REASON_CALLBACK: rigllama_finish_reason = 2;

/// What a request cost and why it ended. Written by the library, field by field, only as far
/// as `struct_size` reaches, and only on success.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rigllama_usage {
    /// Set by `rigllama_usage_init`.
    pub struct_size: u32,
    /// Why generation ended.
    pub finish_reason: rigllama_finish_reason,
    /// Tokens in the formatted prompt.
    pub prompt_tokens: u32,
    /// Of those, reused from the KV cache (not evaluated again).
    pub cached_prompt_tokens: u32,
    /// Tokens whose text was delivered.
    pub completion_tokens: u32,
    /// The seed actually used (resolves `RIGLLAMA_SEED_RANDOM`).
    pub seed: u32,
    /// Prompt evaluation time in milliseconds.
    pub prompt_ms: f64,
    /// Milliseconds from the first to the last generated token.
    pub generation_ms: f64,
}

/// A public struct with a `struct_size` first and a v0.1 size below which it is refused.
pub(crate) trait Versioned: Copy {
    const NAME: &'static str;
    /// The size of the struct in v0.1 of the ABI.
    const V0_1_SIZE: usize;
    fn defaults() -> Self;
    /// Writes every field but `struct_size` that ends within `limit` bytes of `dest`.
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize);
}

/// Field-by-field unaligned writes, skipping any field that would end past `limit`.
macro_rules! write_fields {
    ($ty:ty, $value:expr, $dest:expr, $limit:expr, [$($field:ident),* $(,)?]) => {{
        $(
            let offset = offset_of!($ty, $field);
            let field = $value.$field;
            if offset + std::mem::size_of_val(&field) <= $limit {
                unsafe { std::ptr::write_unaligned($dest.add(offset).cast(), field) };
            }
        )*
    }};
}
pub(crate) use write_fields;

impl Versioned for rigllama_engine_options {
    const NAME: &'static str = "rigllama_engine_options";
    const V0_1_SIZE: usize = size_of::<Self>();
    fn defaults() -> Self {
        rigllama_engine_options {
            struct_size: size_of::<Self>() as u32,
            n_ctx: crate::engine::DEFAULT_N_CTX,
            n_batch: crate::engine::DEFAULT_N_BATCH,
            n_threads: 0,
            n_gpu_layers: 0,
            model_path: std::ptr::null(),
            chat_template: std::ptr::null(),
            on_progress: None,
            progress_user_data: std::ptr::null_mut(),
        }
    }
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize) {
        write_fields!(
            Self,
            self,
            dest,
            limit,
            [
                n_ctx,
                n_batch,
                n_threads,
                n_gpu_layers,
                model_path,
                chat_template,
                on_progress,
                progress_user_data
            ]
        );
    }
}

impl Versioned for rigllama_request {
    const NAME: &'static str = "rigllama_request";
    const V0_1_SIZE: usize = size_of::<Self>();
    fn defaults() -> Self {
        let sampling = crate::engine::Sampling::default();
        rigllama_request {
            struct_size: size_of::<Self>() as u32,
            max_tokens: crate::engine::DEFAULT_MAX_TOKENS,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            top_k: sampling.top_k,
            min_p: sampling.min_p,
            repeat_penalty: sampling.repeat_penalty,
            seed: RIGLLAMA_SEED_RANDOM,
            raw_prompt: 0,
            prompt: std::ptr::null(),
            system_prompt: std::ptr::null(),
            messages_json: std::ptr::null(),
            stop: std::ptr::null(),
            n_stop: 0,
        }
    }
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize) {
        write_fields!(
            Self,
            self,
            dest,
            limit,
            [
                max_tokens,
                temperature,
                top_p,
                top_k,
                min_p,
                repeat_penalty,
                seed,
                raw_prompt,
                prompt,
                system_prompt,
                messages_json,
                stop,
                n_stop
            ]
        );
    }
}

impl Versioned for rigllama_usage {
    const NAME: &'static str = "rigllama_usage";
    const V0_1_SIZE: usize = size_of::<Self>();
    fn defaults() -> Self {
        rigllama_usage {
            struct_size: size_of::<Self>() as u32,
            finish_reason: RIGLLAMA_FINISH_REASON_STOP,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            seed: 0,
            prompt_ms: 0.0,
            generation_ms: 0.0,
        }
    }
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize) {
        write_fields!(
            Self,
            self,
            dest,
            limit,
            [
                finish_reason,
                prompt_tokens,
                cached_prompt_tokens,
                completion_tokens,
                seed,
                prompt_ms,
                generation_ms
            ]
        );
    }
}

fn bad_size(message: String) -> Failure {
    Error::invalid(message).into()
}

/// Writes the defaults of `T` into the caller's `struct_size` bytes at `ptr`: zeroes them,
/// writes each default field, then sets `struct_size`.
pub(crate) unsafe fn init_struct<T: Versioned>(
    ptr: *mut T,
    struct_size: usize,
) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    check_declared_size::<T>(struct_size)?;
    let bytes = ptr.cast::<u8>();
    unsafe {
        std::ptr::write_bytes(bytes, 0, struct_size);
        T::defaults().write_fields(bytes, struct_size);
        bytes.cast::<u32>().write_unaligned(struct_size as u32);
    }
    Ok(())
}

fn check_declared_size<T: Versioned>(struct_size: usize) -> Result<(), Failure> {
    if struct_size < T::V0_1_SIZE || struct_size > u32::MAX as usize {
        return Err(bad_size(format!(
            "struct_size {struct_size} is not a valid size for {} (at least {}); pass sizeof the struct",
            T::NAME,
            T::V0_1_SIZE
        )));
    }
    Ok(())
}

/// Reads a caller's input struct: checks `struct_size`, requires unknown trailing bytes to be
/// zero, and copies the known part into a local value.
pub(crate) unsafe fn read_input<T: Versioned>(ptr: *const T) -> Result<T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    let bytes = ptr.cast::<u8>();
    let struct_size = unsafe { bytes.cast::<u32>().read_unaligned() } as usize;
    if struct_size < T::V0_1_SIZE {
        return Err(bad_size(format!(
            "{}.struct_size is {struct_size} but must be at least {}; call {}_init first",
            T::NAME,
            T::V0_1_SIZE,
            T::NAME
        )));
    }
    for offset in size_of::<T>()..struct_size {
        if unsafe { bytes.add(offset).read() } != 0 {
            return Err(bad_size(format!(
                "{} has a non-zero byte at offset {offset}, beyond the fields this library \
                 version knows ({} bytes); it is newer than the library",
                T::NAME,
                size_of::<T>()
            )));
        }
    }
    let mut value = T::defaults();
    // SAFETY: the caller's struct has at least size_of::<T>() readable bytes (struct_size
    // says so); T is plain data (integers, floats, raw pointers, an optional fn pointer).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes, (&mut value as *mut T).cast::<u8>(), size_of::<T>());
    }
    Ok(value)
}

/// Writes a usage report into the caller's struct, whole field by whole field, only as far as
/// its `struct_size` reaches.
pub(crate) unsafe fn write_usage(out: *mut rigllama_usage, usage: &Usage) -> Result<(), Failure> {
    let bytes = out.cast::<u8>();
    let struct_size = unsafe { bytes.cast::<u32>().read_unaligned() } as usize;
    if struct_size < size_of::<u32>() * 2 {
        return Err(bad_size(format!(
            "rigllama_usage.struct_size is {struct_size}; call rigllama_usage_init first"
        )));
    }
    let report = rigllama_usage {
        struct_size: struct_size as u32,
        finish_reason: finish_reason_code(usage.finish_reason),
        prompt_tokens: usage.prompt_tokens,
        cached_prompt_tokens: usage.cached_prompt_tokens,
        completion_tokens: usage.completion_tokens,
        seed: usage.seed,
        prompt_ms: usage.prompt_ms,
        generation_ms: usage.generation_ms,
    };
    unsafe { report.write_fields(bytes, struct_size) };
    Ok(())
}

pub(crate) fn finish_reason_code(reason: FinishReason) -> rigllama_finish_reason {
    match reason {
        FinishReason::Stop => RIGLLAMA_FINISH_REASON_STOP,
        FinishReason::Length => RIGLLAMA_FINISH_REASON_LENGTH,
        FinishReason::Callback => RIGLLAMA_FINISH_REASON_CALLBACK,
    }
}

/// Fills `options` with defaults for `struct_size` bytes (pass `sizeof *options`).
/// Returns `RIGLLAMA_STATUS_INVALID_ARGUMENT` if `struct_size` is smaller than this version's.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_options_init(
    options: *mut rigllama_engine_options,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(options, struct_size) })
}

/// Fills `request` with defaults for `struct_size` bytes (pass `sizeof *request`).
#[no_mangle]
pub unsafe extern "C" fn rigllama_request_init(
    request: *mut rigllama_request,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(request, struct_size) })
}

/// Prepares `usage` to receive a report: sets `struct_size` (pass `sizeof *usage`), zeroes
/// the rest.
#[no_mangle]
pub unsafe extern "C" fn rigllama_usage_init(
    usage: *mut rigllama_usage,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(usage, struct_size) })
}
