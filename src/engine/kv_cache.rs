//! What the context's KV cache holds, token by token, and the only code that adds to it, cuts
//! it back or shifts it. One sequence today; many conversations (one sequence each) grow from
//! here.

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

    /// The tokens in the cache, position by position.
    pub fn tokens(&self) -> &[LlamaToken] {
        &self.tokens
    }

    /// How many leading tokens of `prompt` the cache holds.
    pub fn common_prefix(&self, prompt: &[LlamaToken]) -> usize {
        self.tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Keeps only the first `len` tokens. Returns false (and empties the cache) if llama.cpp
    /// cannot cut this cache back.
    pub fn truncate(&mut self, ctx: &mut LlamaContext<'static>, len: usize) -> bool {
        if len >= self.tokens.len() {
            return true;
        }
        if ctx.kv_cache_seq_rm(SEQ, Some(len as u32), None).is_ok() {
            self.tokens.truncate(len);
            true
        } else {
            self.clear(ctx);
            false
        }
    }

    /// Records that the cache now holds `tokens` (after llama.cpp restored a state for them).
    pub fn restored(&mut self, tokens: Vec<LlamaToken>) {
        self.tokens = tokens;
    }

    /// Removes positions `start..end` and moves everything after them down by `end - start`
    /// (llama.cpp re-rotates the moved keys), so the cache holds what it held minus that
    /// range. Only for models whose cache can shift. False (cache emptied) on failure.
    pub fn remove_range(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        start: usize,
        end: usize,
    ) -> bool {
        if start >= end || end > self.tokens.len() {
            return start == end;
        }
        let removed = ctx
            .kv_cache_seq_rm(SEQ, Some(start as u32), Some(end as u32))
            .is_ok();
        let moved = removed
            && ctx
                .kv_cache_seq_add(SEQ, Some(end as u32), None, -((end - start) as i32))
                .is_ok();
        if moved {
            self.tokens.drain(start..end);
            true
        } else {
            self.clear(ctx);
            false
        }
    }

    /// When `prompt` continues the cache's common prefix with a run of tokens the cache holds
    /// further on (the turns after some dropped ones), removes the cached tokens in between
    /// so that run is reused in place. Returns the number of tokens removed.
    pub fn close_gap_for(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        prompt: &[LlamaToken],
    ) -> usize {
        let prefix = self.common_prefix(prompt);
        let rest = &prompt[prefix..];
        // A run this long is a real part of the conversation, not a template token or two.
        let probe = rest.len().min(16);
        if probe < 4 || prefix >= self.tokens.len() {
            return 0;
        }
        let found = (prefix + 1..self.tokens.len().saturating_sub(probe - 1))
            .find(|&at| self.tokens[at..at + probe] == rest[..probe]);
        match found {
            Some(at) if self.remove_range(ctx, prefix, at) => at - prefix,
            _ => 0,
        }
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
