//! The public structs, their `_init` functions, and the `struct_size` rules that let them
//! grow: each struct has a frozen v0.1 size; an input struct is read only as far as its
//! `struct_size` reaches (defaults beyond), an output struct written only that far, and new
//! fields are only ever appended.

use std::ffi::{c_char, c_void};
use std::mem::size_of;

use super::boundary::{boundary, Failure};
use super::enums::{
    rigllama_context_overflow, rigllama_finish_reason, rigllama_flash_attention, rigllama_kv_type,
    rigllama_mirostat, rigllama_reasoning, rigllama_status, rigllama_tool_choice,
};
use crate::engine::{Error, Usage};

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
    /// Default 1.0 (off); > 0. Applies to the last `penalty_last_n` tokens (64 by default).
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
    /// string; only the first turn may be a system turn). v0.2: also an assistant turn with
    /// `"tool_calls":[{"id":"...","type":"function","function":{"name":"...","arguments":
    /// "{...}"}}]` (content null or absent) and `{"role":"tool","tool_call_id":"...",
    /// "content":"..."}` (the tool's result). `prompt`, if also set, is appended as the last
    /// user turn. The conversation must end with a user or tool turn.
    pub messages_json: *const c_char,
    /// Optional stop strings (`n_stop` of them). A stop string and everything after it are
    /// never emitted. NULL entries or "" are invalid.
    pub stop: *const *const c_char,
    /// Number of entries in `stop`.
    pub n_stop: usize,
    /// v0.2. Default 0; higher runs first. On an engine with n_seq > 1, a waiting request of
    /// higher priority than a running one takes its place: the running one pauses, its KV
    /// cache kept, and resumes after, losing nothing. Ties: arrival order.
    pub priority: i32,
    /// v0.2. Optional GBNF grammar (llama.cpp's format, start rule `root`) the reply must
    /// match. Invalid GBNF is refused with the parser's reason before decoding. Not with
    /// `json_schema`, nor with tools the model may call.
    pub grammar: *const c_char,
    /// v0.2. Optional JSON Schema: the reply is one JSON value valid against it (through a
    /// grammar made from it). Not with `grammar`, nor with tools the model may call.
    pub json_schema: *const c_char,
    /// v0.2. Optional tools, OpenAI's shape:
    /// `[{"type":"function","function":{"name":"...","description":"...","parameters":{JSON
    /// Schema}}}, ...]`. Rendered by the chat template's own tool format (or the generic JSON
    /// format for templates without one); the calls come back as `tool_calls` in
    /// `rigllama_engine_chat`, TOOL_CALL job events and finish reason TOOL_CALLS.
    pub tools_json: *const c_char,
    /// v0.2. One of `RIGLLAMA_TOOL_CHOICE_*`; default AUTO.
    pub tool_choice: i32,
    /// v0.2. One of `RIGLLAMA_REASONING_*`; default AUTO.
    pub reasoning: i32,
    /// v0.2. Subtracted from the logit of every token seen in the last `penalty_last_n`
    /// tokens (prompt included). Default 0 (off); -2..2.
    pub presence_penalty: f32,
    /// v0.2. Subtracted from a token's logit once per time it was seen in that window.
    /// Default 0 (off); -2..2.
    pub frequency_penalty: f32,
    /// v0.2. The window of `repeat_penalty`, `presence_penalty` and `frequency_penalty`, in
    /// tokens. Default 64 (v0.1's); -1 = the whole context; 0 = penalties off.
    pub penalty_last_n: i32,
    /// v0.2. DRY: penalises tokens that would extend a repetition of earlier text beyond
    /// `dry_allowed_length` tokens by `dry_multiplier * dry_base^(length - allowed)`.
    /// Default 0 (off); finite, >= 0 (0.8 is a common choice).
    pub dry_multiplier: f32,
    /// v0.2. Default 1.75; >= 1.
    pub dry_base: f32,
    /// v0.2. Repetitions up to this many tokens are free. Default 2; >= 0.
    pub dry_allowed_length: i32,
    /// v0.2. Tokens DRY scans for repetitions. Default -1 = the whole context; 0 = off.
    pub dry_penalty_last_n: i32,
    /// v0.2. XTC: with this probability per token, removes every candidate above
    /// `xtc_threshold` except the least likely of them. Default 0 (off); 0..1.
    pub xtc_probability: f32,
    /// v0.2. Default 0.1; 0..1 (above 0.5 nothing is ever removed).
    pub xtc_threshold: f32,
    /// v0.2. Locally typical sampling. Default 1 (off); 0 < typical_p <= 1.
    pub typical_p: f32,
    /// v0.2. Keeps tokens within this many standard deviations of the highest logit.
    /// Default 0 (off); >= 0.
    pub top_n_sigma: f32,
    /// v0.2. One of `RIGLLAMA_MIROSTAT_*`; default OFF.
    pub mirostat: i32,
    /// v0.2. Mirostat's target surprise. Default 5; > 0.
    pub mirostat_tau: f32,
    /// v0.2. Mirostat's learning rate. Default 0.1; 0 < eta <= 1.
    pub mirostat_eta: f32,
    /// v0.2. 0 (default) = none; 1..20 = each generated token's log-probability and this
    /// many most likely alternatives, from the distribution the token was drawn from (at
    /// temperature 0: the model's own, after the bias and penalties). Delivered as
    /// RIGLLAMA_EVENT_KIND_LOGPROBS job events and as `"logprobs":{"content":[...]}` in
    /// `rigllama_engine_chat`'s JSON.
    pub n_logprobs: u32,
    /// v0.2. Optional logit bias as JSON, applied before every other sampler: an object of
    /// token ids, `{"15043": -1.5, "9": 2}` (OpenAI's shape), or an array of pairs whose first
    /// element is a token id or a text (each token of the text, tokenized alone, is biased):
    /// `[[15043, -1.5], ["Paris", false]]`. A bias is a finite number; `false` bans.
    pub logit_bias_json: *const c_char,
    /// v0.2. DRY's sequence breakers (`n_dry_sequence_breakers` non-empty strings): texts that
    /// end a repetition. NULL (default) = llama.cpp's `"\n"`, `":"`, `"\""`, `"*"`.
    pub dry_sequence_breakers: *const *const c_char,
    /// v0.2. Entries in `dry_sequence_breakers`.
    pub n_dry_sequence_breakers: usize,
    /// v0.2. Prompt-lookup speculative decoding: up to this many tokens, guessed from the
    /// conversation's earlier text (what followed the reply's latest tokens where they
    /// occurred before), are evaluated in the same decode as the next token; the ones the
    /// sampler confirms cost no decode of their own, so replies that repeat their prompt
    /// (edits, quotes, extraction) come about twice as fast. Each token is still sampled from
    /// its own position's logits with the same random draws, but those logits come from a
    /// batch, which llama.cpp's CPU kernels round differently from a single token: where two
    /// tokens are nearly tied, the choice can differ from plain decoding's. Only as many
    /// guesses as the reply's record of right ones makes worth their cost are evaluated, so a
    /// reply whose guesses keep failing runs at plain speed. Default 0 (off); at most 64; 8 is
    /// what the bench measures. `rigllama_usage.drafted_tokens` and `accepted_tokens` report
    /// what it did.
    pub draft_max: u32,
}

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
    /// v0.2. Tokens of the oldest turns dropped to make room
    /// (`RIGLLAMA_CONTEXT_OVERFLOW_SHIFT`); 0 otherwise.
    pub dropped_tokens: u32,
    /// v0.2. Tokens guessed by prompt-lookup speculation (`rigllama_request.draft_max`) and
    /// evaluated along with the real ones.
    pub drafted_tokens: u32,
    /// v0.2. Of those, the ones the sampler confirmed: each saved a decode of its own.
    pub accepted_tokens: u32,
    /// v0.2. Of `prompt_tokens`, those standing for images (see `mmproj_path`); they count
    /// in `cached_prompt_tokens` too when reused.
    pub image_tokens: u32,
}

/// A public struct: `struct_size` first, a frozen v0.1 size, defaults, and field-by-field
/// copies bounded by the caller's `struct_size`. Implemented by [`versioned_struct!`] only.
pub(crate) trait Versioned: Copy {
    const NAME: &'static str;
    /// `sizeof` the struct in the v0.1 header: the smallest `struct_size` accepted.
    const V0_1_SIZE: usize;
    fn defaults() -> Self;
    /// Writes every field but `struct_size` that ends within `limit` bytes of `dest`.
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize);
}

/// An input struct: read from the caller field by field.
pub(crate) trait VersionedInput: Versioned {
    /// Copies every field but `struct_size` that ends within `limit` bytes of `src` into
    /// `self` (the others keep their defaults). A field that `limit` cuts in two is an error
    /// naming it.
    unsafe fn read_fields(&mut self, src: *const u8, limit: usize) -> Result<(), String>;
}

/// The v0.1 size: x86_64 and other 64-bit targets, then 32-bit targets (where pointers and
/// `size_t` are 4 bytes; doubles stay at offsets that are multiples of 8 by design).
const fn frozen(size_64: usize, size_32: usize) -> usize {
    if cfg!(target_pointer_width = "64") {
        size_64
    } else {
        size_32
    }
}

/// Declares, once, what the library needs to know of a public struct beyond its definition:
/// its frozen v0.1 size, the last field v0.1 had (a compile-time check that nothing was
/// inserted before it), and each field's default. The defaults form a struct literal, so the
/// compiler insists on every field exactly once; the same list drives bounded reads and
/// writes. `input` structs can also be read from the caller; `output` ones only written.
macro_rules! versioned_struct {
    (@common $ty:ident, $v0_1_size:expr, $v0_1_last:ident, [$($field:ident: $default:expr),* $(,)?]) => {
        impl Versioned for $ty {
            const NAME: &'static str = stringify!($ty);
            const V0_1_SIZE: usize = $v0_1_size;
            fn defaults() -> Self {
                $ty {
                    struct_size: size_of::<Self>() as u32,
                    $($field: $default),*
                }
            }
            unsafe fn write_fields(&self, dest: *mut u8, limit: usize) {
                $(
                    let offset = std::mem::offset_of!($ty, $field);
                    let value = self.$field;
                    if offset + std::mem::size_of_val(&value) <= limit {
                        unsafe { std::ptr::write_unaligned(dest.add(offset).cast(), value) };
                    }
                )*
            }
        }
        // The v0.1 fields end where v0.1's struct did: fields were only appended after them.
        const _: () = {
            let end = std::mem::offset_of!($ty, $v0_1_last) + field_size!($ty, $v0_1_last);
            let align = std::mem::align_of::<$ty>();
            assert!(end.div_ceil(align) * align == $v0_1_size);
        };
    };
    (input $ty:ident { v0_1_size: $v0_1_size:expr, v0_1_last: $v0_1_last:ident, $($field:ident: $default:expr),* $(,)? }) => {
        versioned_struct!(@common $ty, $v0_1_size, $v0_1_last, [$($field: $default),*]);
        impl VersionedInput for $ty {
            unsafe fn read_fields(&mut self, src: *const u8, limit: usize) -> Result<(), String> {
                $(
                    let offset = std::mem::offset_of!($ty, $field);
                    let size = std::mem::size_of_val(&self.$field);
                    if offset + size <= limit {
                        // SAFETY: the caller's struct has `limit` readable bytes; every field
                        // of an input struct is plain data valid for any bit pattern
                        // (integers, floats, raw pointers, optional fn pointers: NULL is None).
                        self.$field = unsafe { std::ptr::read_unaligned(src.add(offset).cast()) };
                    } else if offset < limit {
                        return Err(format!(
                            "{}.struct_size {limit} ends inside field {} (offset {offset}, {size} bytes); \
                             pass sizeof the struct",
                            stringify!($ty),
                            stringify!($field)
                        ));
                    }
                )*
                Ok(())
            }
        }
    };
    (output $ty:ident { v0_1_size: $v0_1_size:expr, v0_1_last: $v0_1_last:ident, $($field:ident: $default:expr),* $(,)? }) => {
        versioned_struct!(@common $ty, $v0_1_size, $v0_1_last, [$($field: $default),*]);
    };
}
pub(crate) use versioned_struct;

/// The size of one field of a struct type, at compile time.
macro_rules! field_size {
    ($ty:ident, $field:ident) => {{
        const fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
            size_of::<F>()
        }
        size_of_field(|value: &$ty| &value.$field)
    }};
}
pub(crate) use field_size;

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
});

versioned_struct!(input rigllama_request {
    v0_1_size: frozen(80, 56),
    v0_1_last: n_stop,
    max_tokens: crate::engine::DEFAULT_MAX_TOKENS,
    temperature: SAMPLING.temperature,
    top_p: SAMPLING.top_p,
    top_k: SAMPLING.top_k,
    min_p: SAMPLING.min_p,
    repeat_penalty: SAMPLING.repeat_penalty,
    seed: RIGLLAMA_SEED_RANDOM,
    raw_prompt: 0,
    prompt: std::ptr::null(),
    system_prompt: std::ptr::null(),
    messages_json: std::ptr::null(),
    stop: std::ptr::null(),
    n_stop: 0,
    priority: 0,
    grammar: std::ptr::null(),
    json_schema: std::ptr::null(),
    tools_json: std::ptr::null(),
    tool_choice: rigllama_tool_choice::Auto as i32,
    reasoning: rigllama_reasoning::Auto as i32,
    presence_penalty: SAMPLING.presence_penalty,
    frequency_penalty: SAMPLING.frequency_penalty,
    penalty_last_n: SAMPLING.penalty_last_n,
    dry_multiplier: SAMPLING.dry.multiplier,
    dry_base: SAMPLING.dry.base,
    dry_allowed_length: SAMPLING.dry.allowed_length,
    dry_penalty_last_n: SAMPLING.dry.penalty_last_n,
    xtc_probability: SAMPLING.xtc.probability,
    xtc_threshold: SAMPLING.xtc.threshold,
    typical_p: SAMPLING.typical_p,
    top_n_sigma: SAMPLING.top_n_sigma,
    mirostat: rigllama_mirostat::Off as i32,
    mirostat_tau: crate::engine::Mirostat::DEFAULT_TAU,
    mirostat_eta: crate::engine::Mirostat::DEFAULT_ETA,
    n_logprobs: 0,
    logit_bias_json: std::ptr::null(),
    dry_sequence_breakers: std::ptr::null(),
    n_dry_sequence_breakers: 0,
    draft_max: crate::engine::DEFAULT_DRAFT_MAX,
});

const SAMPLING: crate::engine::Sampling = crate::engine::Sampling::DEFAULT;

versioned_struct!(output rigllama_usage {
    v0_1_size: frozen(40, 40),
    v0_1_last: generation_ms,
    finish_reason: rigllama_finish_reason::Stop,
    prompt_tokens: 0,
    cached_prompt_tokens: 0,
    completion_tokens: 0,
    seed: 0,
    prompt_ms: 0.0,
    generation_ms: 0.0,
    dropped_tokens: 0,
    drafted_tokens: 0,
    accepted_tokens: 0,
    image_tokens: 0,
});

fn bad_size(message: String) -> Failure {
    Error::invalid(message).into()
}

/// Writes the defaults of `T` into the caller's `struct_size` bytes at `ptr`: zeroes them,
/// writes each default field that fits, then sets `struct_size`.
pub(crate) unsafe fn init_struct<T: Versioned>(
    ptr: *mut T,
    struct_size: usize,
) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    if struct_size < T::V0_1_SIZE || struct_size > u32::MAX as usize {
        return Err(bad_size(format!(
            "struct_size {struct_size} is not a valid size for {} (at least {}); pass sizeof the struct",
            T::NAME,
            T::V0_1_SIZE
        )));
    }
    let bytes = ptr.cast::<u8>();
    unsafe {
        std::ptr::write_bytes(bytes, 0, struct_size);
        T::defaults().write_fields(bytes, struct_size);
        bytes.cast::<u32>().write_unaligned(struct_size as u32);
    }
    Ok(())
}

/// The `struct_size` a caller's struct declares (its first field), read without forming a
/// reference to memory of unknown size.
pub(crate) unsafe fn declared_size<T>(ptr: *const T) -> usize {
    unsafe { ptr.cast::<u32>().read_unaligned() as usize }
}

/// Reads a caller's input struct: a `struct_size` of at least the v0.1 size; fields that fit
/// in it are copied, the rest keep their defaults; bytes beyond the fields this library
/// knows must be zero (a newer program's fields this library cannot honour).
pub(crate) unsafe fn read_input<T: VersionedInput>(ptr: *const T) -> Result<T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    let struct_size = unsafe { declared_size(ptr) };
    if struct_size < T::V0_1_SIZE {
        return Err(bad_size(format!(
            "{}.struct_size is {struct_size} but must be at least {}; call {}_init first",
            T::NAME,
            T::V0_1_SIZE,
            T::NAME
        )));
    }
    let bytes = ptr.cast::<u8>();
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
    unsafe { value.read_fields(bytes, struct_size.min(size_of::<T>())) }.map_err(bad_size)?;
    Ok(value)
}

/// Checks an output struct's `struct_size` (at least `min` bytes) before any work is done,
/// so a bad size does not cost a whole generation. Returns the size.
pub(crate) unsafe fn check_output<T: Versioned>(
    ptr: *const T,
    min: usize,
    what: &str,
) -> Result<usize, Failure> {
    let struct_size = unsafe { declared_size(ptr) };
    if struct_size < min {
        return Err(bad_size(format!(
            "{what}->struct_size is {struct_size} but must be at least {min}; call {}_init first",
            T::NAME
        )));
    }
    Ok(struct_size)
}

/// A usage report needs room for `struct_size` and `finish_reason`; v0.1 took any size from
/// there on and wrote the whole fields that fit.
pub(crate) const MIN_USAGE_SIZE: usize = 2 * size_of::<u32>();

/// Writes a usage report into the caller's struct, whole field by whole field, only as far as
/// its `struct_size` reaches.
pub(crate) unsafe fn write_usage(out: *mut rigllama_usage, usage: &Usage) -> Result<(), Failure> {
    let struct_size = unsafe { check_output(out, MIN_USAGE_SIZE, "out_usage") }?;
    let report = rigllama_usage {
        struct_size: struct_size as u32,
        finish_reason: usage.finish_reason.into(),
        prompt_tokens: usage.prompt_tokens,
        cached_prompt_tokens: usage.cached_prompt_tokens,
        completion_tokens: usage.completion_tokens,
        seed: usage.seed,
        prompt_ms: usage.prompt_ms,
        generation_ms: usage.generation_ms,
        dropped_tokens: usage.dropped_tokens,
        drafted_tokens: usage.drafted_tokens,
        accepted_tokens: usage.accepted_tokens,
        image_tokens: usage.image_tokens,
    };
    unsafe { report.write_fields(out.cast(), struct_size) };
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A struct as it will look once a later version appends fields: `grown_count` and
    /// `grown_scale` come after what "v0.1" had.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    struct rigllama_test_grown {
        struct_size: u32,
        count: u32,
        name: *const c_char,
        grown_count: u32,
        grown_flag: u32,
        grown_scale: f64,
    }

    versioned_struct!(input rigllama_test_grown {
        v0_1_size: frozen(16, 12),
        v0_1_last: name,
        count: 7,
        name: std::ptr::null(),
        grown_count: 42,
        grown_flag: 1,
        grown_scale: 0.5,
    });

    /// A caller's struct of `struct_size` bytes (inside a larger zeroed buffer), with every
    /// field it covers set to a non-default value.
    fn caller_bytes(struct_size: usize) -> Vec<u8> {
        let full = rigllama_test_grown {
            struct_size: struct_size as u32,
            count: 3,
            name: c"x".as_ptr(),
            grown_count: 9,
            grown_flag: 0,
            grown_scale: 2.0,
        };
        let mut bytes = vec![0u8; size_of::<rigllama_test_grown>() + 16];
        unsafe { full.write_fields(bytes.as_mut_ptr(), struct_size) };
        bytes[..4].copy_from_slice(&(struct_size as u32).to_ne_bytes());
        bytes
    }

    fn read(bytes: &[u8]) -> Result<rigllama_test_grown, String> {
        unsafe { read_input(bytes.as_ptr().cast::<rigllama_test_grown>()) }
            .map_err(|f| f.message().to_owned())
    }

    #[test]
    fn a_struct_of_the_v0_1_size_gets_defaults_for_every_appended_field() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let value = read(&caller_bytes(v0_1)).unwrap();
        assert_eq!((value.count, value.name), (3, c"x".as_ptr()));
        assert_eq!(
            (value.grown_count, value.grown_flag, value.grown_scale),
            (42, 1, 0.5)
        );
    }

    #[test]
    fn a_size_between_v0_1_and_current_reads_the_fields_it_covers() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let value = read(&caller_bytes(v0_1 + 4)).unwrap();
        assert_eq!(value.grown_count, 9, "covered: the caller's value");
        assert_eq!((value.grown_flag, value.grown_scale), (1, 0.5), "defaults");
        let value = read(&caller_bytes(v0_1 + 8)).unwrap();
        assert_eq!((value.grown_count, value.grown_flag), (9, 0));
        assert_eq!(value.grown_scale, 0.5);
        let value = read(&caller_bytes(size_of::<rigllama_test_grown>())).unwrap();
        assert_eq!(value.grown_scale, 2.0);
    }

    #[test]
    fn a_size_ending_inside_a_field_is_refused_naming_it() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let error = read(&caller_bytes(v0_1 + 2)).unwrap_err();
        assert!(error.contains("ends inside field grown_count"), "{error}");
    }

    #[test]
    fn sizes_below_v0_1_or_with_unknown_non_zero_bytes_are_refused() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let error = read(&caller_bytes(v0_1 - 4)).unwrap_err();
        assert!(error.contains("must be at least"), "{error}");
        let size = size_of::<rigllama_test_grown>();
        let mut bytes = caller_bytes(size + 8);
        assert!(
            read(&bytes).is_ok(),
            "zero bytes beyond the known fields are fine"
        );
        bytes[size + 3] = 1;
        let error = read(&bytes).unwrap_err();
        assert!(error.contains(&format!("offset {}", size + 3)), "{error}");
    }

    #[test]
    fn init_writes_only_inside_struct_size() {
        let mut bytes = vec![0xAAu8; size_of::<rigllama_test_grown>() + 8];
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        assert!(
            unsafe { init_struct(bytes.as_mut_ptr().cast::<rigllama_test_grown>(), v0_1) }.is_ok()
        );
        assert!(bytes[v0_1..].iter().all(|&b| b == 0xAA));
        let value = read(&bytes[..]).unwrap();
        assert_eq!(value.count, 7);
    }

    #[test]
    fn the_frozen_v0_1_sizes_are_the_v0_1_header_s() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(rigllama_engine_options::V0_1_SIZE, 56);
            assert_eq!(rigllama_request::V0_1_SIZE, 80);
            assert_eq!(rigllama_usage::V0_1_SIZE, 40);
            assert_eq!(crate::ffi::rigllama_event::V0_1_SIZE, 40);
        }
    }
}
