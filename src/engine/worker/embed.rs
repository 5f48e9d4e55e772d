//! Embeddings: a second context on the same model, made on first use with embeddings on, so
//! the chat KV cache is never disturbed. Vectors are pooled (the model's pooling type, mean
//! when it has none) and L2-normalised. Reranking (rerank.rs) uses the same context.

use std::num::NonZeroU32;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::engine::error::{Error, Result};
use crate::engine::worker::cpu_share::cpu_share;
use crate::engine::worker::model::LoadedModel;

/// Longest text, in tokens, one embedding covers; the embedding context's size.
pub const MAX_EMBED_TOKENS: u32 = 2048;
/// Texts evaluated together in one batch.
const SEQS_PER_BATCH: usize = 8;

impl LoadedModel {
    /// The embedding of each text, in order.
    pub fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if self.pooling() == LlamaPoolingType::Rank {
            return Err(Error::invalid(format!(
                "the model ({}) is a reranker (pooling type rank): it scores a query against \
                 documents with rerank and has no embeddings",
                self.description.architecture
            )));
        }
        let limit = self.pooling_limit();
        let mut tokenized = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            if text.contains('\0') {
                return Err(Error::invalid(format!("text {i} contains a NUL character")));
            }
            let tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
            if tokens.is_empty() {
                return Err(Error::invalid(format!("text {i} has no tokens")));
            }
            if tokens.len() > limit {
                return Err(Error::invalid(format!(
                    "text {i} is {} tokens; an embedding covers at most {limit}",
                    tokens.len()
                )));
            }
            tokenized.push(tokens);
        }
        let vectors = self.pooled_outputs(&tokenized, limit)?;
        Ok(vectors.iter().map(|v| normalized(v)).collect())
    }

    /// Longest input, in tokens, the pooling context takes.
    pub(super) fn pooling_limit(&self) -> usize {
        MAX_EMBED_TOKENS.min(self.description.n_ctx_train.max(1)) as usize
    }

    /// llama.cpp's pooled output for each token sequence (each at most `limit` tokens), in
    /// order: an embedding, or a reranker's class scores.
    pub(super) fn pooled_outputs(
        &mut self,
        tokenized: &[Vec<LlamaToken>],
        limit: usize,
    ) -> Result<Vec<Vec<f32>>> {
        self.ensure_embed_context(limit as u32)?;
        let ctx = self.embed_ctx.as_mut().expect("made above");
        let mut batch = LlamaBatch::new(limit, SEQS_PER_BATCH as i32);
        let mut outputs = Vec::with_capacity(tokenized.len());
        let mut next = 0;
        while next < tokenized.len() {
            // As many inputs as fit one batch (each whole: pooling needs all its tokens).
            let mut group = Vec::new();
            let mut used = 0;
            while next < tokenized.len()
                && group.len() < SEQS_PER_BATCH
                && used + tokenized[next].len() <= limit
            {
                used += tokenized[next].len();
                group.push(next);
                next += 1;
            }
            batch.clear();
            ctx.clear_kv_cache();
            for (seq, &index) in group.iter().enumerate() {
                batch
                    .add_sequence(&tokenized[index], seq as i32, false)
                    .map_err(|e| Error::Internal(format!("pooling batch: {e}")))?;
            }
            // In a turn of the process's CPU share, as generation steps are (see cpu_share).
            // Nothing cancels an embedding, so it waits for its turn however long it takes.
            let turn = cpu_share().take_turn(self.n_threads, &|| false);
            let decoded = ctx.decode(&mut batch);
            drop(turn);
            decoded.map_err(|e| Error::Internal(format!("pooling decode failed: {e}")))?;
            for seq in 0..group.len() {
                let pooled = ctx.embeddings_seq_ith(seq as i32).map_err(|e| {
                    Error::Internal(format!("llama.cpp gave no pooled output: {e}"))
                })?;
                outputs.push(pooled.to_vec());
            }
        }
        Ok(outputs)
    }

    fn ensure_embed_context(&mut self, n_ctx: u32) -> Result<()> {
        if self.embed_ctx.is_some() {
            return Ok(());
        }
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_ctx)
            .with_n_ubatch(n_ctx)
            .with_n_seq_max(SEQS_PER_BATCH as u32)
            // One KV buffer for all sequences: with a buffer per sequence llama.cpp splits a
            // batch into equal slices across them, cutting longer texts apart.
            .with_kv_unified(true)
            .with_n_threads(self.n_threads as i32)
            .with_n_threads_batch(self.n_threads as i32)
            .with_embeddings(true)
            .with_pooling_type(self.pooling());
        // SAFETY: as for the chat context (model.rs): the boxed model outlives this context,
        // which LoadedModel's field order drops first.
        let model: &'static llama_cpp_2::model::LlamaModel =
            unsafe { &*(self.model.as_ref() as *const llama_cpp_2::model::LlamaModel) };
        let backend = crate::engine::llama::backend::backend()?;
        let ctx = model.new_context(backend, params).map_err(|e| {
            Error::Internal(format!(
                "llama.cpp could not create an embedding context of {n_ctx} tokens ({e})"
            ))
        })?;
        self.embed_ctx = Some(ctx);
        Ok(())
    }

    /// The pooling the model declares (rank: a reranker's classification head), or mean
    /// pooling for models that declare none (chat models).
    pub(super) fn pooling(&self) -> LlamaPoolingType {
        let key = format!("{}.pooling_type", self.description.architecture);
        match self
            .model
            .meta_val_str(&key)
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
        {
            Some(kind @ 1..=4) => LlamaPoolingType::from(kind),
            _ => LlamaPoolingType::Mean,
        }
    }
}

fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return vector.to_vec();
    }
    vector
        .iter()
        .map(|x| (f64::from(*x) / norm) as f32)
        .collect()
}
