//! A persistent ggml thread pool for the engine's context. Without one, ggml (built without
//! OpenMP, as here) makes a pool for every graph it computes and joins it after: a thread
//! created and joined for every generated token, which then starts cold instead of polling
//! for the next graph. llama.cpp's own tools (llama-bench, llama-cli) attach a pool the same
//! way.

use std::ptr::NonNull;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2::ggml_threadpool;

use crate::engine::llama::raw::raw_context;

pub(crate) struct ThreadPool(NonNull<ggml_threadpool>);

/// ggml's polling level between graphs (0-100; llama.cpp's default 50 spins ~150 ms after
/// every graph before sleeping).
const POLL: u32 = 0;

// SAFETY: ggml's pool is made for use from whichever thread computes a graph; the engine only
// touches it from its worker.
unsafe impl Send for ThreadPool {}

impl ThreadPool {
    /// A pool of `n_threads` attached to `ctx` for generation and prompt batches, whose
    /// threads sleep as soon as a graph is done (no polling): an idle engine burns no CPU,
    /// and while another engine in the process computes, this one's threads leave it the
    /// cores. `None` when it cannot be made; the context then keeps ggml's per-graph pools,
    /// which work, only slower.
    pub fn attach(
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        n_threads: u32,
    ) -> Option<ThreadPool> {
        let raw = raw_context(ctx, model).ok()?;
        // SAFETY: plain parameter initialisation, then a pool that lives until Drop; the
        // context only borrows it (the field order of LoadedModel drops the context first).
        unsafe {
            let mut params = llama_cpp_sys_2::ggml_threadpool_params_default(n_threads as i32);
            params.poll = POLL;
            let pool = NonNull::new(llama_cpp_sys_2::ggml_threadpool_new(&mut params))?;
            llama_cpp_sys_2::llama_attach_threadpool(raw.as_ptr(), pool.as_ptr(), pool.as_ptr());
            Some(ThreadPool(pool))
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // SAFETY: made by ggml_threadpool_new; the context that used it is already freed.
        unsafe { llama_cpp_sys_2::ggml_threadpool_free(self.0.as_ptr()) }
    }
}
