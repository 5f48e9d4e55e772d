//! What llama.cpp allocated, by purpose (`csrc/memory_shim.cpp`).

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;

use crate::engine::data::devices::MemoryUse;
use crate::engine::llama::raw::raw_context;

extern "C" {
    fn rl_memory_use(
        ctx: *const llama_cpp_sys_2::llama_context,
        model: *mut u64,
        context: *mut u64,
        compute: *mut u64,
    );
}

/// What llama.cpp allocated for the weights, the KV cache and compute buffers.
pub(crate) fn memory_use(ctx: &LlamaContext<'static>, model: &LlamaModel) -> MemoryUse {
    let Ok(raw) = raw_context(ctx, model) else {
        return MemoryUse::default();
    };
    let mut memory = MemoryUse::default();
    // SAFETY: a live context; the shim only reads it and catches every exception.
    unsafe {
        rl_memory_use(
            raw.as_ptr(),
            &mut memory.model_bytes,
            &mut memory.kv_cache_bytes,
            &mut memory.compute_bytes,
        )
    };
    memory
}
