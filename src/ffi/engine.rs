//! The engine's C functions: each a few lines over [`crate::engine::Engine`].

use std::ffi::{c_char, c_void, CString};

use super::boundary::{boundary, boundary_void, handle, out_ptr, Failure};
use super::options::{progress_fn, read_options, rigllama_engine_options};
use super::request::{read_request, rigllama_request};
use super::status::rigllama_status;
use super::usage::{check_usage_out, rigllama_usage, write_usage};
use crate::engine::{Engine, Error, ProgressFn};

/// An engine: a worker thread that owns one loaded model and its context.
/// Create with `rigllama_engine_create`, free with `rigllama_engine_destroy`.
pub struct rigllama_engine {
    engine: Engine,
}

impl rigllama_engine {
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Called with each new piece of a streamed reply, on the thread that called
/// `rigllama_engine_stream`, one call at a time, never after stream returned. `piece` is
/// whole UTF-8 characters, NUL-terminated, `piece_len` bytes, valid only during the call.
/// Return 0 to continue; non-zero stops generation (stream returns OK with finish reason
/// `RIGLLAMA_FINISH_REASON_CALLBACK`). The callback may call `rigllama_engine_cancel` and
/// `rigllama_engine_destroy` on its engine; complete, stream and reload of the same engine
/// return `RIGLLAMA_STATUS_BUSY` there. Do not block in it for long.
pub type rigllama_token_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, piece: *const c_char, piece_len: usize) -> i32,
>;

/// Loads the model named by `options` on a new worker thread and returns once it is ready.
/// Fails with MODEL_LOAD_FAILED (the message names the file and cause), INVALID_ARGUMENT, or
/// CANCELLED when the progress callback aborted. `*out_engine` is NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_create(
    options: *const rigllama_engine_options,
    out_engine: *mut *mut rigllama_engine,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_engine = out_ptr(out_engine, "out_engine")?;
        out_engine.write(std::ptr::null_mut());
        let (options, raw) = read_options(options)?;
        let mut progress = progress_fn(raw.on_progress, raw.progress_user_data);
        let engine = Engine::create(options, progress.as_mut().map(|p| p as &mut ProgressFn))?;
        out_engine.write(Box::into_raw(Box::new(rigllama_engine { engine })));
        Ok(())
    })
}

/// Generates the whole reply. `*out_text` receives it (UTF-8, NUL-terminated; free with
/// `rigllama_string_free`), or NULL on failure. `out_usage` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_complete(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    out_text: *mut *mut c_char,
    out_usage: *mut rigllama_usage,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_text = out_ptr(out_text, "out_text")?;
        out_text.write(std::ptr::null_mut());
        let engine = handle(engine, "engine")?.engine().clone();
        let request = read_request(request)?;
        check_usage_out(out_usage)?;
        let (text, usage) = engine.complete(request)?;
        let text =
            CString::new(text).map_err(|_| Error::Internal("reply text contained NUL".into()))?;
        if !out_usage.is_null() {
            write_usage(out_usage, &usage)?;
        }
        out_text.write(text.into_raw());
        Ok(())
    })
}

/// Generates the whole reply and returns it as the assistant's message, OpenAI's shape (free
/// with `rigllama_string_free`):
/// `{"role":"assistant","content":"..."|null,"reasoning_content":"..." (when any),
/// "tool_calls":[{"id":"...","type":"function","function":{"name":"...","arguments":"{...}"}}]
/// (when any)}`. Content is null only when the reply is tool calls alone. Arguments are JSON
/// text, valid against the tool's parameters schema whenever `tool_choice` is REQUIRED.
/// Append the message to `messages_json` (and a tool message per call) for the next turn.
/// `*out_message_json` is NULL on failure; `out_usage` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_chat(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    out_message_json: *mut *mut c_char,
    out_usage: *mut rigllama_usage,
) -> rigllama_status {
    boundary(|| unsafe {
        let out = out_ptr(out_message_json, "out_message_json")?;
        out.write(std::ptr::null_mut());
        let engine = handle(engine, "engine")?.engine().clone();
        let request = read_request(request)?;
        check_usage_out(out_usage)?;
        let (message, usage) = engine.chat(request)?;
        let json = CString::new(message.to_openai_json().to_string())
            .map_err(|_| Error::Internal("reply JSON contained NUL".into()))?;
        if !out_usage.is_null() {
            write_usage(out_usage, &usage)?;
        }
        out.write(json.into_raw());
        Ok(())
    })
}

/// The exact text the model would be given for `request` (chat template applied, tools
/// rendered; the BOS token's text first when the model's tokenizer adds one), without
/// running it; an image shows as the marker `<__media__>` where its tokens go. Free with
/// `rigllama_string_free`; NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_apply_template(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    out_prompt: *mut *mut c_char,
) -> rigllama_status {
    boundary(|| unsafe {
        let out = out_ptr(out_prompt, "out_prompt")?;
        out.write(std::ptr::null_mut());
        let engine = handle(engine, "engine")?.engine().clone();
        let request = read_request(request)?;
        let prompt = engine.apply_template(request)?;
        out.write(
            CString::new(prompt.replace('\0', ""))
                .map_err(|_| Error::Internal("prompt contained NUL".into()))?
                .into_raw(),
        );
        Ok(())
    })
}

/// Generates the reply, calling `on_token` with each new piece on this thread (see
/// `rigllama_token_callback`). Returns when generation ends; CANCELLED if
/// `rigllama_engine_cancel` or destroy stopped it. `out_usage` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_stream(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    on_token: rigllama_token_callback,
    user_data: *mut c_void,
    out_usage: *mut rigllama_usage,
) -> rigllama_status {
    boundary(|| unsafe {
        // A clone: destroy from inside the callback frees the handle, not what we use.
        let engine = handle(engine, "engine")?.engine().clone();
        let on_token = on_token.ok_or_else(|| Failure::null("on_token"))?;
        let request = read_request(request)?;
        check_usage_out(out_usage)?;
        let mut piece = Vec::with_capacity(64);
        let usage = engine.stream(request, |text| {
            piece.clear();
            piece.extend_from_slice(text.as_bytes());
            piece.push(0);
            on_token(user_data, piece.as_ptr().cast(), text.len()) == 0
        })?;
        if !out_usage.is_null() {
            write_usage(out_usage, &usage)?;
        }
        Ok(())
    })
}

/// Swaps the model in place, after the requests submitted before it. The new model is
/// loaded before the old one is released (peak memory is both); if it fails to load, the
/// engine keeps serving the old model and this returns MODEL_LOAD_FAILED with the reason.
/// Not stopped by `rigllama_engine_cancel`.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_reload(
    engine: *mut rigllama_engine,
    options: *const rigllama_engine_options,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        let (options, raw) = read_options(options)?;
        let mut progress = progress_fn(raw.on_progress, raw.progress_user_data);
        engine.reload(options, progress.as_mut().map(|p| p as &mut ProgressFn))?;
        Ok(())
    })
}

/// Cancels every request of this engine submitted before this call (complete, stream or
/// job): they return CANCELLED within one decode step. Returns at once; callable from any
/// thread, including inside a callback. Later requests run normally.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_cancel(engine: *mut rigllama_engine) -> rigllama_status {
    boundary(|| unsafe {
        handle(engine, "engine")?.engine().cancel();
        Ok(())
    })
}

/// Stops the engine's worker between two decode steps and returns once it holds (within one
/// step): every running request keeps its state and KV cache, requests submitted meanwhile
/// wait, and `rigllama_engine_cancel`, `rigllama_job_cancel` and `rigllama_engine_destroy`
/// still work (cancelled requests end with CANCELLED while paused). For moments that need
/// every core: a level load, a cut-scene. Pausing a paused engine is a no-op.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_pause(engine: *mut rigllama_engine) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        engine.pause()?;
        Ok(())
    })
}

/// Lets a paused engine go on: every request continues exactly where it stopped. Resuming an
/// engine that is not paused is a no-op.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_resume(engine: *mut rigllama_engine) -> rigllama_status {
    boundary(|| unsafe {
        handle(engine, "engine")?.engine().resume();
        Ok(())
    })
}

/// Empties the KV cache (after the requests submitted before it), so the next request is
/// evaluated from scratch.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_reset(engine: *mut rigllama_engine) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        engine.reset()?;
        Ok(())
    })
}

/// Formats and tokenizes `request` exactly as complete would, without running it:
/// `*out_tokens` is the prompt size in tokens, an image counting as its tokens (compare with
/// n_ctx to trim history).
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_count_tokens(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    out_tokens: *mut u32,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_tokens = out_ptr(out_tokens, "out_tokens")?;
        let engine = handle(engine, "engine")?.engine().clone();
        let request = read_request(request)?;
        out_tokens.write(engine.count_tokens(request)?);
        Ok(())
    })
}

/// `*out_json` receives a JSON object describing the engine (free with
/// `rigllama_string_free`): model_path, architecture, n_ctx, n_ctx_train, n_batch, n_vocab,
/// n_params, n_threads, n_gpu_layers, chat_template, chat_template_source ("options", "gguf",
/// "built-in for architecture" or "none"), chat_template_engine ("jinja": rendered by
/// llama.cpp's Jinja engine with tools and reasoning; "built-in": one of llama.cpp's fixed
/// templates, tools in the generic JSON format; "none"), n_embd (the length
/// of `rigllama_engine_embed`'s vectors), context_overflow ("fail" or "shift") and can_shift
/// (whether SHIFT moves the kept turns in the cache, else evaluates them again), n_seq;
/// v0.2: type_k and type_v ("f16", "q8_0", ...), flash_attention ("auto", "on", "off"),
/// memory ({"model_bytes","kv_cache_bytes","compute_bytes"}: what llama.cpp allocated),
/// fit (null, or {"n_ctx","n_gpu_layers","reason"}: what fitting chose and why), lora
/// ([{"id","path","scale"}]: the adapters applied), checkpoints ({"active","count","bytes",
/// "max_count","max_bytes"}: the state copies a recurrent or hybrid model keeps now; active is
/// false for other models), mmproj_path (the projector loaded, or "": images are accepted only
/// with one); v0.3: n_threads is the threads used (as asked, capped at the process's cores),
/// thread_priority ("normal" or "low") and thread_priority_applied (whether the system
/// applied it), special_tokens ({"bos","eos","eot","fim_pre",...}: the ids the vocabulary
/// has), chat_template_error (null, or why a Jinja template — the chat_template option's, else
/// the GGUF's — could not be used, in llama.cpp's parser's words; chats then use
/// chat_template_source's template), devices ([{"name","type","layers","memory":
/// {"model_bytes","kv_cache_bytes","compute_bytes"},"memory_total","memory_free"}]: every
/// device holding part of the model, the CPU first — for host memory — with the layers placed
/// there), gpu_fallback (null, or why the model runs on the CPU although GPU layers were asked
/// for: a GPU backend found no device, or loading onto the GPU failed).
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_describe(
    engine: *mut rigllama_engine,
    out_json: *mut *mut c_char,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_json = out_ptr(out_json, "out_json")?;
        out_json.write(std::ptr::null_mut());
        let description = handle(engine, "engine")?.engine().describe();
        let json = serde_json::to_string(&description)
            .map_err(|e| Error::Internal(format!("describe: {e}")))?;
        out_json.write(
            CString::new(json)
                .map_err(|_| Error::Internal("describe: NUL in JSON".into()))?
                .into_raw(),
        );
        Ok(())
    })
}

/// Cancels running and queued requests, stops and joins the worker, and frees the engine.
/// Calls blocked in complete/stream on other threads return CANCELLED; no callback runs after
/// this returns. NULL is a no-op. Allowed inside a stream callback of this engine (that
/// stream returns CANCELLED). Using the engine after, or destroying it twice, is undefined.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_destroy(engine: *mut rigllama_engine) {
    boundary_void(|| unsafe {
        if engine.is_null() {
            return;
        }
        let handle = Box::from_raw(engine);
        handle.engine.shutdown();
    })
}
