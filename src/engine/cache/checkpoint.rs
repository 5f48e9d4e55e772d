//! State checkpoints for models whose memory cannot be cut back to a prefix. A recurrent
//! layer (Mamba, RWKV, LFM2's short convolutions, ...) keeps one state per sequence that has
//! absorbed every token so far; llama.cpp can append to it or drop it, never rewind it. So a
//! request that shares only part of what a sequence holds would evaluate everything again.
//! Copies of that state, taken at the end of each prompt and each reply and kept within a
//! count and a byte bound, let it resume from the longest shared prefix instead.
//!
//! A copy holds only the recurrent part (llama.cpp's PARTIAL_ONLY state). For a purely
//! recurrent model that is the whole state, so a checkpoint can be restored into any
//! sequence. A hybrid model's attention layers keep their KV cache beside it, so its
//! checkpoint is only good in a sequence whose cache still holds the checkpoint's tokens.

use std::sync::{Arc, Mutex};

use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::data::description::CheckpointUse;
use crate::engine::data::options::Checkpointing;
use crate::engine::llama::backend::{self, LogLevel};

struct Checkpoint {
    /// The tokens the state has absorbed, position by position.
    tokens: Vec<LlamaToken>,
    /// The LoRA adapters they were evaluated under.
    adapters: AdapterSet,
    /// llama.cpp's partial sequence state.
    state: Vec<u8>,
    last_used: u64,
}

pub(crate) struct Checkpoints {
    limits: Checkpointing,
    /// Checkpoints are taken at all: the memory cannot be cut back and the bound allows one.
    active: bool,
    /// A checkpoint is the whole state (no attention cache beside it).
    self_contained: bool,
    kept: Vec<Checkpoint>,
    clock: u64,
    /// What `describe` reports, updated with every change.
    gauge: Arc<Mutex<CheckpointUse>>,
}

impl Checkpoints {
    pub fn new(
        limits: Checkpointing,
        needed: bool,
        self_contained: bool,
        gauge: Arc<Mutex<CheckpointUse>>,
    ) -> Self {
        let checkpoints = Checkpoints {
            limits,
            active: needed && limits.max_count > 0 && limits.max_bytes > 0,
            self_contained,
            kept: Vec::new(),
            clock: 0,
            gauge,
        };
        checkpoints.publish();
        checkpoints
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The longest checkpoint to resume `prompt` (under `adapters`) from in a sequence
    /// holding `held`: its tokens start `prompt`, number at most `limit`, were evaluated
    /// under the same adapters, and (hybrid) are still in `held`. Its index and length.
    pub fn best(
        &self,
        prompt: &[LlamaToken],
        limit: usize,
        adapters: &AdapterSet,
        held: &[LlamaToken],
    ) -> Option<(usize, usize)> {
        self.kept
            .iter()
            .enumerate()
            .filter(|(_, c)| c.tokens.len() <= limit && prompt.starts_with(&c.tokens))
            .filter(|(_, c)| c.adapters == *adapters)
            .filter(|(_, c)| self.self_contained || held.starts_with(&c.tokens))
            .map(|(i, c)| (i, c.tokens.len()))
            .max_by_key(|&(_, len)| len)
    }

    /// Copies the state of sequence `id`, which has absorbed `tokens` under `adapters`. Drops
    /// the least recently used checkpoints to stay within the bounds; `still_held` says
    /// whether a hybrid checkpoint's tokens are still in some sequence's cache (when not, it
    /// is dropped first: it can never be restored).
    pub fn take(
        &mut self,
        ctx: &LlamaContext<'static>,
        id: i32,
        tokens: &[LlamaToken],
        adapters: &AdapterSet,
        still_held: impl Fn(&[LlamaToken]) -> bool,
    ) {
        if !self.active || tokens.is_empty() {
            return;
        }
        self.clock += 1;
        if let Some(same) = self
            .kept
            .iter_mut()
            .find(|c| c.tokens == tokens && c.adapters == *adapters)
        {
            same.last_used = self.clock;
            return;
        }
        if !self.self_contained {
            self.kept.retain(|c| still_held(&c.tokens));
        }
        let flags = LlamaStateSeqFlags::PARTIAL_ONLY;
        let size = ctx.state_seq_get_size_ext(id, flags);
        if size as u64 > self.limits.max_bytes {
            backend::log(
                LogLevel::Warn,
                &format!(
                    "a state checkpoint of {size} bytes is larger than max_checkpoint_bytes \
                     ({}): not taken, so later turns evaluate the conversation again",
                    self.limits.max_bytes
                ),
            );
            return;
        }
        let mut state = vec![0u8; size];
        // SAFETY: `state` has exactly the size llama.cpp just reported for this sequence.
        let written = unsafe { ctx.state_seq_get_data_ext(state.as_mut_ptr(), id, flags) };
        if written != size {
            backend::log(
                LogLevel::Warn,
                &format!("llama.cpp wrote {written} bytes of a {size}-byte checkpoint: dropped"),
            );
            return;
        }
        self.kept.push(Checkpoint {
            tokens: tokens.to_vec(),
            adapters: adapters.clone(),
            state,
            last_used: self.clock,
        });
        while self.kept.len() > self.limits.max_count as usize
            || self.bytes() > self.limits.max_bytes
        {
            // The new one is the most recent and fits alone: it is never the one dropped.
            let oldest = (0..self.kept.len())
                .min_by_key(|&i| self.kept[i].last_used)
                .expect("over a bound, so not empty");
            self.kept.swap_remove(oldest);
        }
        self.publish();
    }

    /// Restores checkpoint `index` into sequence `id`. Its tokens, or `None` when llama.cpp
    /// refused it (the checkpoint is dropped, and the sequence must be emptied).
    pub fn restore(
        &mut self,
        ctx: &mut LlamaContext<'static>,
        index: usize,
        id: i32,
    ) -> Option<Vec<LlamaToken>> {
        self.clock += 1;
        let checkpoint = &mut self.kept[index];
        // SAFETY: llama.cpp wrote this state for this context.
        let restored = unsafe {
            ctx.state_seq_set_data_ext(&checkpoint.state, id, LlamaStateSeqFlags::PARTIAL_ONLY)
        };
        if restored {
            checkpoint.last_used = self.clock;
            return Some(checkpoint.tokens.clone());
        }
        self.kept.swap_remove(index);
        self.publish();
        None
    }

    /// Drops every checkpoint (the weights changed, or the engine was reset).
    pub fn clear(&mut self) {
        self.kept.clear();
        self.publish();
    }

    /// Bytes of state kept: summed, not counted alongside, so no way of dropping a
    /// checkpoint can leave it stale (a few dozen at most).
    fn bytes(&self) -> u64 {
        self.kept.iter().map(|c| c.state.len() as u64).sum()
    }

    /// The bounds and what is kept now.
    pub fn usage(&self) -> CheckpointUse {
        CheckpointUse {
            active: self.active,
            count: self.kept.len() as u32,
            bytes: self.bytes(),
            max_count: self.limits.max_count,
            max_bytes: self.limits.max_bytes,
        }
    }

    fn publish(&self) {
        *self.gauge.lock().unwrap_or_else(|p| p.into_inner()) = self.usage();
    }
}
