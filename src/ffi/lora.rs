//! LoRA adapters and control vectors through the C ABI.

use std::ffi::c_char;
use std::path::PathBuf;

use super::boundary::{boundary, handle, out_ptr, required_str};
use super::engine::rigllama_engine;
use super::status::rigllama_status;

/// Loads the LoRA adapter GGUF at `path` (UTF-8; made for this engine's model) and applies it
/// at `scale` (0 = no effect, 1 = as trained; finite, within ±100), beside any adapters
/// already applied. `*out_lora_id` receives its id for `rigllama_engine_set_lora_scale` and
/// `rigllama_engine_remove_lora`. Runs after the requests submitted before it and empties the
/// KV cache (it was computed with other weights). An adapter for another architecture or
/// with other tensor shapes, or a file that is not an adapter, is refused with
/// INVALID_ARGUMENT and the reason; the engine keeps serving. Adapters are dropped by
/// `rigllama_engine_reload`; snapshots are refused while any is applied; embeddings use the
/// base model. Called from inside one of this engine's callbacks, the three LoRA functions
/// return BUSY (they wait for the running requests).
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_add_lora(
    engine: *mut rigllama_engine,
    path: *const c_char,
    scale: f32,
    out_lora_id: *mut u32,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        let path = PathBuf::from(required_str(path, "path")?);
        let out_lora_id = out_ptr(out_lora_id, "out_lora_id")?;
        out_lora_id.write(engine.add_lora(path, scale)?);
        Ok(())
    })
}

/// Sets the scale of adapter `lora_id` (finite, within ±100; 0 = no effect). Empties the KV
/// cache. An unknown id → INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_set_lora_scale(
    engine: *mut rigllama_engine,
    lora_id: u32,
    scale: f32,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        engine.set_lora_scale(lora_id, scale)?;
        Ok(())
    })
}

/// Removes adapter `lora_id` and frees it. Empties the KV cache. An unknown id →
/// INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_remove_lora(
    engine: *mut rigllama_engine,
    lora_id: u32,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        engine.remove_lora(lora_id)?;
        Ok(())
    })
}

/// Adds the control vector at `path` (UTF-8; a GGUF of `direction.N` tensors made for this
/// engine's model, as llama.cpp's `cvector-generator` writes) times `strength` (finite,
/// within ±100; 0 = no effect) to the output of layers `layer_start`..`layer_end` inclusive
/// (1-based; 0, 0 = every layer), replacing any control vector set before (llama.cpp's
/// `llama_set_adapter_cvec`, llama-server's `--control-vector-scaled`). Runs after the
/// requests submitted before it and empties the KV cache. A file that is not a control
/// vector, one for a model of another width, or a layer range outside the model is refused
/// with INVALID_ARGUMENT and the reason; the engine keeps serving. `describe` reports it
/// (`control_vector`); a reload drops it; snapshots are refused while it is set. BUSY from
/// inside one of this engine's callbacks.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_set_control_vector(
    engine: *mut rigllama_engine,
    path: *const c_char,
    strength: f32,
    layer_start: i32,
    layer_end: i32,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        let path = PathBuf::from(required_str(path, "path")?);
        engine.set_control_vector(path, strength, layer_start, layer_end)?;
        Ok(())
    })
}

/// Removes the control vector, if one is set. Empties the KV cache.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_clear_control_vector(
    engine: *mut rigllama_engine,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        engine.clear_control_vector()?;
        Ok(())
    })
}
