//! The llama.cpp pointers behind llama-cpp-2's wrappers, for the few llama.cpp functions it
//! does not wrap (the chat layer, several LoRA adapters at once, memory use).

use std::ptr::NonNull;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2::llama_context;

use crate::engine::error::{Error, Result};

/// The `llama_model` behind a [`LlamaModel`]: llama-cpp-2 keeps it private, but declares
/// `LlamaModel` `#[repr(transparent)]` over a non-null pointer to it (the version is pinned in
/// Cargo.toml, and a test checks the pointer against the model's own answers).
pub(crate) fn raw_model(model: &LlamaModel) -> *const llama_cpp_sys_2::llama_model {
    unsafe { *(model as *const LlamaModel).cast::<*const llama_cpp_sys_2::llama_model>() }
}

/// The `llama_context` behind a [`LlamaContext`]. llama-cpp-2 0.1.160 keeps it private (and
/// sets only one LoRA adapter at a time). Its `LlamaContext` is that
/// pointer beside an empty `Vec` of backend samplers (this engine never adds any), so
/// exactly one of its words is a heap address; it is confirmed with `llama_get_model`
/// before use, and anything else is refused rather than guessed.
pub(crate) fn raw_context(
    ctx: &LlamaContext<'static>,
    model: &LlamaModel,
) -> Result<NonNull<llama_context>> {
    const WORDS: usize =
        std::mem::size_of::<LlamaContext<'static>>() / std::mem::size_of::<usize>();
    // The layout this relies on; a llama-cpp-2 that changes it fails to compile here.
    const _: () = assert!(WORDS == 4);
    let unavailable = || {
        Error::Internal(
            "the llama.cpp context is unreachable with this llama-cpp-2 build (its layout \
             changed)"
                .into(),
        )
    };
    // SAFETY: reads the struct's own initialised bytes as words (no padding: a pointer and
    // a Vec, all word-sized).
    let words: [usize; WORDS] = unsafe { std::ptr::read((ctx as *const LlamaContext).cast()) };
    let mut heap = words
        .iter()
        .copied()
        .filter(|&w| w > 1 << 16 && w % std::mem::align_of::<usize>() == 0);
    let (Some(candidate), None) = (heap.next(), heap.next()) else {
        return Err(unavailable());
    };
    let raw = candidate as *mut llama_context;
    // SAFETY: `raw` is the only heap address in the wrapper, which holds exactly the context
    // pointer and an empty Vec.
    let owner = unsafe { llama_cpp_sys_2::llama_get_model(raw) };
    if owner != raw_model(model) {
        return Err(unavailable());
    }
    NonNull::new(raw).ok_or_else(unavailable)
}
