//! What the context's KV cache holds: one [`SeqCache`] per llama.cpp sequence, token by
//! token, and the only code that cuts a sequence back or shifts it. [`Sequences`] picks the
//! sequence a new request goes to (the longest real prefix, else an empty one, else the least
//! recently used) and frees room in the context, which all sequences share. For models whose
//! memory cannot be cut back, it resumes sequences from [`Checkpoints`] instead.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::cache::checkpoint::Checkpoints;

/// Exactly the tokens in the KV cache of one sequence, position by position.
pub(crate) struct SeqCache {
    pub id: i32,
    tokens: Vec<LlamaToken>,
    /// The LoRA adapters the tokens were evaluated under.
    adapters: AdapterSet,
    /// When a request last used it (for least-recently-used eviction).
    pub last_used: u64,
}

impl SeqCache {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The LoRA adapters its tokens were evaluated under.
    pub fn adapters(&self) -> &AdapterSet {
        &self.adapters
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

    pub fn clear(&mut self, ctx: &mut LlamaContext<'static>) {
        if !self.tokens.is_empty() {
            let _ = ctx.kv_cache_seq_rm(self.id, None, None);
            self.tokens.clear();
        }
    }

    /// Records tokens a decode just added at the next positions.
    pub fn extend(&mut self, tokens: &[LlamaToken]) {
        self.tokens.extend_from_slice(tokens);
    }

    /// Keeps only the first `len` tokens. Returns false (and empties the sequence) if
    /// llama.cpp cannot cut it back.
    pub fn truncate(&mut self, ctx: &mut LlamaContext<'static>, len: usize) -> bool {
        if len >= self.tokens.len() {
            return true;
        }
        if ctx.kv_cache_seq_rm(self.id, Some(len as u32), None).is_ok() {
            self.tokens.truncate(len);
            true
        } else {
            self.clear(ctx);
            false
        }
    }

    /// Records that the sequence now holds `tokens`, evaluated under `adapters` (after
    /// llama.cpp restored a state).
    pub fn restored(&mut self, tokens: Vec<LlamaToken>, adapters: AdapterSet) {
        self.tokens = tokens;
        self.adapters = adapters;
    }

    /// Removes positions `start..end` and moves everything after them down by `end - start`
    /// (llama.cpp re-rotates the moved keys). Only for models whose cache can shift. False
    /// (sequence emptied) on failure.
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
            .kv_cache_seq_rm(self.id, Some(start as u32), Some(end as u32))
            .is_ok();
        let moved = removed
            && ctx
                .kv_cache_seq_add(self.id, Some(end as u32), None, -((end - start) as i32))
                .is_ok();
        if moved {
            self.tokens.drain(start..end);
            true
        } else {
            self.clear(ctx);
            false
        }
    }

    /// Where the cache holds, further on than the common prefix, the run of tokens that
    /// `prompt` continues with (the turns after some dropped ones): (its position, its
    /// length).
    fn run_after_gap(&self, prompt: &[LlamaToken]) -> Option<(usize, usize)> {
        let prefix = self.common_prefix(prompt);
        let rest = &prompt[prefix..];
        // A run this long is a real part of the conversation, not a template token or two.
        let probe = rest.len().min(16);
        if probe < 4 || prefix >= self.tokens.len() {
            return None;
        }
        let at = (prefix + 1..self.tokens.len().saturating_sub(probe - 1))
            .find(|&at| self.tokens[at..at + probe] == rest[..probe])?;
        let run = self.tokens[at..]
            .iter()
            .zip(rest)
            .take_while(|(a, b)| a == b)
            .count();
        Some((at, run))
    }

    /// Tokens of `prompt` this cache can serve: its common prefix, plus with `across_gap`
    /// the run after dropped turns that [`SeqCache::close_gap_for`] would move into place.
    pub fn reusable(&self, prompt: &[LlamaToken], across_gap: bool) -> usize {
        let prefix = self.common_prefix(prompt);
        match self.run_after_gap(prompt) {
            Some((_, run)) if across_gap => prefix + run,
            _ => prefix,
        }
    }

    /// When `prompt` continues the common prefix with a run of tokens the cache holds
    /// further on (the turns after some dropped ones), removes the cached tokens in between
    /// so that run is reused in place. Returns the number of tokens removed.
    pub fn close_gap_for(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        prompt: &[LlamaToken],
    ) -> usize {
        let prefix = self.common_prefix(prompt);
        match self.run_after_gap(prompt) {
            Some((at, _)) if self.remove_range(ctx, prefix, at) => at - prefix,
            _ => 0,
        }
    }
}

/// Every sequence of the context. `n_seq` requests run at once; as many sequences again hold
/// paused requests and the caches of conversations that are not running.
pub(crate) struct Sequences {
    pub caches: Vec<SeqCache>,
    clock: u64,
    /// Whether a sequence can be cut back to any prefix (not a recurrent state).
    can_truncate: bool,
    /// State copies of recurrent and hybrid models (inactive for the others).
    pub checkpoints: Checkpoints,
}

impl Sequences {
    pub fn new(count: u32, can_truncate: bool, checkpoints: Checkpoints) -> Self {
        Self {
            caches: (0..count as i32)
                .map(|id| SeqCache {
                    id,
                    tokens: Vec::new(),
                    adapters: AdapterSet::default(),
                    last_used: 0,
                })
                .collect(),
            clock: 0,
            can_truncate,
            checkpoints,
        }
    }

    /// KV cells in use: the sequences share the context's `n_ctx` cells.
    pub fn used(&self) -> usize {
        self.caches.iter().map(SeqCache::len).sum()
    }

    /// Marks sequence `index` as used now.
    pub fn touch(&mut self, index: usize) {
        self.clock += 1;
        self.caches[index].last_used = self.clock;
    }

    /// Tokens of `prompt`, evaluated under `adapters`, sequence `index` can serve (see
    /// [`SeqCache::reusable`]): none when its cache was evaluated under other adapters. When
    /// it cannot be cut back: all it holds if that starts `prompt`, else the longest
    /// checkpoint it can resume from.
    fn reusable(
        &self,
        index: usize,
        prompt: &[LlamaToken],
        adapters: &AdapterSet,
        across_gap: bool,
    ) -> usize {
        let cache = &self.caches[index];
        if cache.adapters != *adapters {
            return 0;
        }
        if self.can_truncate {
            return cache.reusable(prompt, across_gap);
        }
        let live = if prompt.starts_with(cache.tokens()) {
            cache.len()
        } else {
            0
        };
        let resumed = self
            .checkpoints
            .best(prompt, prompt.len(), adapters, cache.tokens())
            .map_or(0, |(_, len)| len);
        live.max(resumed)
    }

    /// Brings sequence `index` to the longest prefix of `prompt` (to be evaluated under
    /// `adapters`) of at most `limit` tokens it can hold: cut back, or (when it cannot be cut
    /// back) kept whole if all of it is such a prefix, else resumed from the longest
    /// checkpoint that is, else emptied. A cache evaluated under other adapters is emptied.
    /// Returns that prefix's length: the tokens `prompt` need not evaluate.
    pub fn rewind(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        index: usize,
        prompt: &[LlamaToken],
        adapters: &AdapterSet,
        limit: usize,
    ) -> usize {
        let cache = &mut self.caches[index];
        if cache.adapters != *adapters {
            cache.clear(ctx);
            cache.adapters = adapters.clone();
        }
        let common = cache.common_prefix(prompt).min(limit);
        if self.can_truncate {
            return if cache.truncate(ctx, common) {
                common
            } else {
                0
            };
        }
        let live = if common == cache.len() { common } else { 0 };
        match self
            .checkpoints
            .best(prompt, limit, adapters, cache.tokens())
        {
            Some((best, len)) if len > live => {
                let Some(tokens) = self.checkpoints.restore(ctx, best, cache.id) else {
                    cache.clear(ctx);
                    return 0;
                };
                let kept = if cache.tokens().starts_with(&tokens) {
                    // The attention cache (hybrid) holds these tokens and more: the state now
                    // stands at `len`, so cutting the rest is allowed.
                    cache.truncate(ctx, len)
                } else {
                    cache.restored(tokens, adapters.clone());
                    true
                };
                if kept {
                    len
                } else {
                    0
                }
            }
            _ => {
                if live == 0 {
                    cache.clear(ctx);
                }
                live
            }
        }
    }

    /// Keeps the longest reusable prefix of `prompt` in sequence `index`, leaving at least
    /// its last token to be evaluated (there must be logits to sample from); see
    /// [`Sequences::rewind`].
    pub fn reuse_prefix(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        index: usize,
        prompt: &[LlamaToken],
        adapters: &AdapterSet,
    ) -> usize {
        self.rewind(ctx, index, prompt, adapters, prompt.len().saturating_sub(1))
    }

    /// Takes a checkpoint of sequence `index` as it stands (recurrent and hybrid models).
    pub fn checkpoint(&mut self, ctx: &LlamaContext<'static>, index: usize) {
        let caches = &self.caches;
        let cache = &caches[index];
        self.checkpoints
            .take(ctx, cache.id, cache.tokens(), &cache.adapters, |tokens| {
                caches.iter().any(|c| c.tokens().starts_with(tokens))
            });
    }

    /// Empties every sequence and drops every checkpoint: what they hold no longer follows
    /// from the model as it is (its adapters changed), or the caller asked for a clean slate.
    pub fn forget_all(&mut self, ctx: &mut LlamaContext<'static>) {
        self.clear_all(ctx);
        self.checkpoints.clear();
    }

    /// The free sequence (not in `busy`) for `prompt`: the one whose cache shares the
    /// longest prefix with it when that prefix is at least half of what the sequence holds
    /// (llama-server's rule: a real part of that conversation, not just the template's first
    /// tokens), else an empty one, else the least recently used. `None` if all are busy.
    /// With `across_gap` (a conversation that lost its oldest turns), the turns kept after
    /// the gap count as shared too. Only caches evaluated under `adapters` share anything.
    pub fn choose(
        &self,
        prompt: &[LlamaToken],
        adapters: &AdapterSet,
        busy: &[usize],
        across_gap: bool,
    ) -> Option<usize> {
        let free = || (0..self.caches.len()).filter(|i| !busy.contains(i));
        let similar = free()
            .map(|i| (i, self.reusable(i, prompt, adapters, across_gap)))
            .filter(|&(i, prefix)| prefix > 0 && prefix * 2 >= self.caches[i].len())
            .max_by_key(|&(i, prefix)| (prefix, std::cmp::Reverse(i)));
        if let Some((i, _)) = similar {
            return Some(i);
        }
        free()
            .find(|&i| self.caches[i].len() == 0)
            .or_else(|| free().min_by_key(|&i| self.caches[i].last_used))
    }

    /// Empties the caches of free sequences (not in `busy`), least recently used first,
    /// until at least `cells` more tokens fit in `n_ctx`. Whether they now fit.
    pub fn make_room(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        cells: usize,
        n_ctx: usize,
        busy: &[usize],
    ) -> bool {
        while self.used() + cells > n_ctx {
            let victim = (0..self.caches.len())
                .filter(|i| !busy.contains(i) && self.caches[*i].len() > 0)
                .min_by_key(|&i| self.caches[i].last_used);
            match victim {
                Some(i) => self.caches[i].clear(ctx),
                None => return false,
            }
        }
        true
    }

    /// Empties sequence `index` before a state is restored into it. When no other sequence
    /// holds anything the whole cache is cleared, which also puts llama.cpp's cell cursor
    /// back at 0: the restored cells then sit where they sit in any fresh engine, and the
    /// next turn's numbers (and near ties of greedy decoding) are the same as there.
    pub fn clear_for_restore(&mut self, ctx: &mut LlamaContext<'static>, index: usize) {
        let others_empty = self
            .caches
            .iter()
            .enumerate()
            .all(|(i, cache)| i == index || cache.len() == 0);
        if others_empty {
            self.clear_all(ctx);
        } else {
            self.caches[index].clear(ctx);
        }
    }

    pub fn clear_all(&mut self, ctx: &mut LlamaContext<'static>) {
        ctx.clear_kv_cache();
        for cache in &mut self.caches {
            cache.tokens.clear();
        }
    }
}
