//! Embeddings through the C ABI.

use std::ffi::c_char;

use super::boundary::{boundary, handle, out_ptr, required_str};
use super::engine::rigllama_engine;
use super::status::rigllama_status;
use crate::engine::Error;

/// The pooled (the model's pooling type, mean when it declares none), L2-normalised
/// embedding of `text` (UTF-8, at most 2048 tokens), computed in a separate context: the
/// chat KV cache is untouched. `*out_dims` receives the dimension. With `out_embedding` NULL
/// it returns OK having written only `*out_dims` (so callers can size the buffer); with a
/// `capacity` (in floats) smaller than the dimension, INVALID_ARGUMENT and nothing written
/// but `*out_dims`.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_embed(
    engine: *mut rigllama_engine,
    text: *const c_char,
    out_embedding: *mut f32,
    capacity: usize,
    out_dims: *mut usize,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        let text = required_str(text, "text")?;
        let out_dims = out_ptr(out_dims, "out_dims")?;
        let dims = engine.describe().n_embd as usize;
        out_dims.write(dims);
        if out_embedding.is_null() {
            return Ok(());
        }
        if capacity < dims {
            return Err(Error::invalid(format!(
                "capacity {capacity} is smaller than the embedding's {dims} floats"
            ))
            .into());
        }
        let vector = engine
            .embed(&[text])?
            .pop()
            .ok_or_else(|| Error::Internal("no embedding returned".into()))?;
        out_dims.write(vector.len());
        if vector.len() > capacity {
            return Err(Error::invalid(format!(
                "capacity {capacity} is smaller than the embedding's {} floats",
                vector.len()
            ))
            .into());
        }
        std::ptr::copy_nonoverlapping(vector.as_ptr(), out_embedding, vector.len());
        Ok(())
    })
}
