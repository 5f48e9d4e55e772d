//! A persistent ggml thread pool for the engine's context. Without one, ggml (built without
//! OpenMP, as here) makes a pool for every graph it computes and joins it after: a thread
//! created and joined for every generated token, which then starts cold instead of polling
//! for the next graph. llama.cpp's own tools (llama-bench, llama-cli) attach a pool the same
//! way.

use std::ptr::NonNull;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2::{ggml_threadpool, ggml_threadpool_params};

use crate::engine::llama::modules::cpu_registry;
use crate::engine::llama::raw::raw_context;

type NewFn = unsafe extern "C" fn(*mut ggml_threadpool_params) -> *mut ggml_threadpool;
type FreeFn = unsafe extern "C" fn(*mut ggml_threadpool);

/// The pool and the function that frees it, both from the CPU backend in use.
pub(crate) struct ThreadPool {
    pool: NonNull<ggml_threadpool>,
    free: FreeFn,
}

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
        let (new, free) = pool_functions()?;
        // SAFETY: plain parameter initialisation, then a pool that lives until Drop; the
        // context only borrows it (the field order of LoadedModel drops the context first).
        unsafe {
            let mut params = llama_cpp_sys_2::ggml_threadpool_params_default(n_threads as i32);
            params.poll = POLL;
            let pool = NonNull::new(new(&mut params))?;
            llama_cpp_sys_2::llama_attach_threadpool(raw.as_ptr(), pool.as_ptr(), pool.as_ptr());
            Some(ThreadPool { pool, free })
        }
    }
}

/// `ggml_threadpool_new` and `_free` live in ggml's CPU backend. In a `dynamic-backends`
/// build that is a module loaded at run time, not linked, so they are asked of its registry
/// (as llama.cpp's common library does); the static build answers the same way.
fn pool_functions() -> Option<(NewFn, FreeFn)> {
    let reg = cpu_registry()?;
    // SAFETY: a registered backend; the names are C string literals.
    let (new, free) = unsafe {
        (
            llama_cpp_sys_2::ggml_backend_reg_get_proc_address(
                reg,
                c"ggml_threadpool_new".as_ptr(),
            ),
            llama_cpp_sys_2::ggml_backend_reg_get_proc_address(
                reg,
                c"ggml_threadpool_free".as_ptr(),
            ),
        )
    };
    if new.is_null() || free.is_null() {
        return None;
    }
    // SAFETY: the CPU backend's ggml_threadpool_new and ggml_threadpool_free (ggml-cpu.h).
    unsafe {
        Some((
            std::mem::transmute::<*mut std::ffi::c_void, NewFn>(new),
            std::mem::transmute::<*mut std::ffi::c_void, FreeFn>(free),
        ))
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // SAFETY: made by the same backend's ggml_threadpool_new; the context that used it is
        // already freed.
        unsafe { (self.free)(self.pool.as_ptr()) }
    }
}
