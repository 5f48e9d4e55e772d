//! llama.cpp samplers that llama-cpp-2 does not wrap: adaptive-p (`llama_sampler_init_adaptive_p`)
//! and `common`'s reasoning budget (through `csrc/chat_shim.cpp`). They are applied to the
//! same candidate arrays the request's chain works on.

use std::ffi::c_int;
use std::ptr::NonNull;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::engine::error::{Error, Result};
use crate::engine::llama::chat_shim::{c_string, call};
use crate::engine::llama::raw::raw_model;

/// An owned `llama_sampler`.
pub(crate) struct RawSampler(NonNull<llama_cpp_sys_2::llama_sampler>);

// Owned by one request's token choice, which only the worker thread touches.
unsafe impl Send for RawSampler {}

impl Drop for RawSampler {
    fn drop(&mut self) {
        unsafe { llama_cpp_sys_2::llama_sampler_free(self.0.as_ptr()) }
    }
}

// The candidate array is handed to llama.cpp as its C struct: same element layout.
const _: () = assert!(
    std::mem::size_of::<LlamaTokenData>()
        == std::mem::size_of::<llama_cpp_sys_2::llama_token_data>()
);

extern "C" {
    fn rl_reasoning_budget_new(
        vocab: *const llama_cpp_sys_2::llama_vocab,
        spec_json: *const std::ffi::c_char,
        err: *mut *mut std::ffi::c_char,
    ) -> *mut llama_cpp_sys_2::llama_sampler;
    fn rl_reasoning_budget_forcing(sampler: *const llama_cpp_sys_2::llama_sampler) -> c_int;
}

impl RawSampler {
    /// Adaptive-p: selects the token, so it ends the chain.
    pub fn adaptive_p(target: f32, decay: f32, seed: u32) -> Result<Self> {
        let raw = unsafe { llama_cpp_sys_2::llama_sampler_init_adaptive_p(target, decay, seed) };
        NonNull::new(raw)
            .map(RawSampler)
            .ok_or_else(|| Error::Internal("llama.cpp made no adaptive-p sampler".into()))
    }

    /// `common`'s reasoning budget: after `start` it counts `budget` tokens, then forces
    /// `forced` one token at a time; an `ends` sequence ends it early.
    pub fn reasoning_budget(
        model: &LlamaModel,
        start: &[i32],
        ends: &[Vec<i32>],
        forced: &[i32],
        budget: i32,
    ) -> Result<Self> {
        let spec = serde_json::json!({
            "start": start, "ends": ends, "forced": forced, "budget": budget,
        });
        let spec = c_string("the reasoning budget", &spec.to_string())?;
        let vocab = unsafe { llama_cpp_sys_2::llama_model_get_vocab(raw_model(model)) };
        call("the reasoning budget", |err| unsafe {
            rl_reasoning_budget_new(vocab, spec.as_ptr(), err)
        })
        .map(RawSampler)
    }

    /// For a reasoning budget: whether the next token is forced.
    pub fn is_forcing(&self) -> bool {
        unsafe { rl_reasoning_budget_forcing(self.0.as_ptr()) != 0 }
    }

    /// Applies the sampler to `candidates` (a selecting sampler sets `selected`; a sampler may
    /// also rewrite logits and probabilities, or drop candidates).
    pub fn apply(&mut self, candidates: &mut LlamaTokenDataArray) {
        let mut c = llama_cpp_sys_2::llama_token_data_array {
            data: candidates.data.as_mut_ptr().cast(),
            size: candidates.data.len(),
            selected: candidates.selected.map_or(-1, |s| s as i64),
            sorted: candidates.sorted,
        };
        unsafe { llama_cpp_sys_2::llama_sampler_apply(self.0.as_ptr(), &mut c) };
        // A sampler may drop candidates (never add): keep what llama.cpp kept.
        candidates.data.truncate(c.size);
        candidates.selected = usize::try_from(c.selected).ok().filter(|&s| s < c.size);
        candidates.sorted = c.sorted;
    }

    pub fn accept(&mut self, token: LlamaToken) {
        unsafe { llama_cpp_sys_2::llama_sampler_accept(self.0.as_ptr(), token.0) }
    }
}
