//! `rigllama_usage`: what a request cost and why it ended, its `_init`, and the one place a
//! usage report is checked and written.

use std::mem::size_of;

use super::boundary::{boundary, Failure};
use super::enums::rigllama_finish_reason;
use super::status::rigllama_status;
use super::versioned::{check_output, frozen, init_struct, versioned_struct, Versioned};
use crate::engine::Usage;

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
    /// (`RIGLLAMA_CONTEXT_OVERFLOW_SHIFT`); v0.3: with `rigllama_request.suffix`, the prefix
    /// and suffix tokens cut to fit one batch; 0 otherwise.
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

/// Prepares `usage` to receive a report: sets `struct_size` (pass `sizeof *usage`), zeroes
/// the rest.
#[no_mangle]
pub unsafe extern "C" fn rigllama_usage_init(
    usage: *mut rigllama_usage,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(usage, struct_size) })
}

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

/// A usage report needs room for `struct_size` and `finish_reason`; v0.1 took any size from
/// there on and wrote the whole fields that fit.
const MIN_USAGE_SIZE: usize = 2 * size_of::<u32>();

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

/// Checks an optional usage struct before any work is done.
pub(crate) unsafe fn check_usage_out(usage: *mut rigllama_usage) -> Result<(), Failure> {
    if !usage.is_null() {
        unsafe { check_output(usage, MIN_USAGE_SIZE, "out_usage") }?;
    }
    Ok(())
}
