//! Embeddings and reranking through the C ABI.

use std::ffi::c_char;

use super::boundary::{array, boundary, handle, out_ptr, required_str};
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

/// Scores how well each of `documents` (`n_documents` UTF-8 strings) answers `query`, with a
/// reranker model (one whose GGUF declares pooling type rank: a classification head, as
/// bge-reranker's): `out_scores[i]` receives document i's score (higher is better;
/// unnormalised, as llama-server's /rerank returns it). Query and document are joined as
/// llama-server joins them for that model (its `rerank` template, else `[BOS] query [EOS]
/// [SEP] document [EOS]` as the vocabulary adds each). Computed in the embedding context: the
/// chat KV cache is untouched. A model that is not a reranker, an empty query or document, or a
/// pair over 2048 tokens: INVALID_ARGUMENT naming it, nothing written. `n_documents` 0: OK,
/// nothing written (`documents` and `out_scores` may then be NULL); at most 65,536.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_rerank(
    engine: *mut rigllama_engine,
    query: *const c_char,
    documents: *const *const c_char,
    n_documents: usize,
    out_scores: *mut f32,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        let query = required_str(query, "query")?;
        let documents = array(documents, n_documents, "documents")?
            .iter()
            .enumerate()
            .map(|(i, &d)| required_str(d, &format!("documents[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if documents.is_empty() {
            return Ok(());
        }
        let out_scores = out_ptr(out_scores, "out_scores")?;
        let scores = engine.rerank(&query, &documents)?;
        if scores.len() != documents.len() {
            return Err(Error::Internal(format!(
                "{} scores for {} documents",
                scores.len(),
                documents.len()
            ))
            .into());
        }
        std::ptr::copy_nonoverlapping(scores.as_ptr(), out_scores.as_ptr(), scores.len());
        Ok(())
    })
}
