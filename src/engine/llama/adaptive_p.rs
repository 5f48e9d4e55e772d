//! llama.cpp's adaptive-p sampler (`llama_sampler_init_adaptive_p`), which llama-cpp-2 does not
//! wrap. Like `dist` it selects the token, so it ends the chain; it is applied to the same
//! candidate arrays the chain works on.

use std::ptr::NonNull;

use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::engine::error::{Error, Result};

pub(crate) struct AdaptivePSampler(NonNull<llama_cpp_sys_2::llama_sampler>);

// Owned by one request's token choice, which only the worker thread touches.
unsafe impl Send for AdaptivePSampler {}

impl Drop for AdaptivePSampler {
    fn drop(&mut self) {
        unsafe { llama_cpp_sys_2::llama_sampler_free(self.0.as_ptr()) }
    }
}

// The candidate array is handed to llama.cpp as its C struct: same element layout.
const _: () = assert!(
    std::mem::size_of::<LlamaTokenData>()
        == std::mem::size_of::<llama_cpp_sys_2::llama_token_data>()
);

impl AdaptivePSampler {
    pub fn new(target: f32, decay: f32, seed: u32) -> Result<Self> {
        let raw = unsafe { llama_cpp_sys_2::llama_sampler_init_adaptive_p(target, decay, seed) };
        NonNull::new(raw)
            .map(AdaptivePSampler)
            .ok_or_else(|| Error::Internal("llama.cpp made no adaptive-p sampler".into()))
    }

    /// Selects a token among `candidates` (sets `selected`; llama.cpp may also rewrite the
    /// candidates' probabilities).
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
