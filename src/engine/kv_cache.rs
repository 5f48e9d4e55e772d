//! What the context's KV cache holds, token by token, and the only code that adds to it or
//! cuts it back. One sequence today; many conversations (one sequence each) grow from here.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

/// The sequence every request uses.
const SEQ: i32 = 0;

/// Exactly the tokens in the KV cache of sequence 0, position by position, and the batch
/// that feeds it.
pub(crate) struct KvCache {
    tokens: Vec<LlamaToken>,
    batch: LlamaBatch<'static>,
}

impl KvCache {
    /// An empty cache fed in batches of at most `n_batch` tokens.
    pub fn new(n_batch: u32) -> Self {
        Self {
            tokens: Vec::new(),
            batch: LlamaBatch::new(n_batch as usize, 1),
        }
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn clear(&mut self, ctx: &mut LlamaContext<'static>) {
        ctx.clear_kv_cache();
        self.tokens.clear();
    }

    /// Keeps the longest cached prefix of `prompt`, leaving at least its last token to be
    /// evaluated (there must be logits to sample from), drops the rest of the cache, and
    /// returns how many tokens are reused.
    pub fn reuse_prefix(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        prompt: &[LlamaToken],
    ) -> usize {
        let common = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let reuse = common.min(prompt.len().saturating_sub(1));
        if reuse < self.tokens.len() {
            if ctx.kv_cache_seq_rm(SEQ, Some(reuse as u32), None).is_ok() {
                self.tokens.truncate(reuse);
            } else {
                self.clear(ctx);
                return 0;
            }
        }
        reuse
    }

    /// Evaluates `tokens` at the next positions and records them; logits are computed for the
    /// last one when `logits_for_last`. On failure the cache is emptied: part of the batch may
    /// be in it and we no longer know exactly what.
    pub fn decode(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        tokens: &[LlamaToken],
        logits_for_last: bool,
    ) -> Result<(), String> {
        self.batch.clear();
        let start = self.tokens.len();
        let last = tokens.len() - 1;
        for (i, token) in tokens.iter().enumerate() {
            self.batch
                .add(
                    *token,
                    (start + i) as i32,
                    &[SEQ],
                    logits_for_last && i == last,
                )
                .map_err(|e| format!("batch add: {e}"))?;
        }
        match ctx.decode(&mut self.batch) {
            Ok(()) => {
                self.tokens.extend_from_slice(tokens);
                Ok(())
            }
            Err(error) => {
                self.clear(ctx);
                Err(format!("llama_decode failed: {error}"))
            }
        }
    }
}
