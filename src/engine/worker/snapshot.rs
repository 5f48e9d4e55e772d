//! Save games: the KV cache of a conversation's prefix as a self-checking blob
//! (`snapshot_format`), and putting one back so the next turn evaluates only what is new.
//! Snapshots hold the base model's state: they are refused while LoRA adapters are loaded
//! (`LoadedModel::refuse_snapshot_with_adapters`), so every cache they touch is adapter-free.

use llama_cpp_2::context::session::LlamaStateSeqFlags;

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::data::request::Request;
use crate::engine::error::{Error, Result};
use crate::engine::worker::model::LoadedModel;

impl LoadedModel {
    /// The cache of the longest cached prefix of `request`'s formatted prompt, as a blob.
    /// The cache is cut back to that prefix first (what the request itself would reuse).
    pub fn save_snapshot(&mut self, request: &Request) -> Result<Vec<u8>> {
        let tokens = self.tokenize(request)?;
        let (index, prefix) = (0..self.seqs.caches.len())
            .map(|i| (i, self.seqs.caches[i].common_prefix(&tokens)))
            .max_by_key(|&(_, prefix)| prefix)
            .unwrap_or((0, 0));
        if prefix == 0 {
            return Err(Error::invalid(
                "nothing of this request's prompt is in the KV cache; run the conversation \
                 (or its last turn) first, then save",
            ));
        }
        if tokens[..prefix]
            .iter()
            .any(|&t| crate::engine::llama::vision::is_image_token(t))
        {
            return Err(Error::invalid(
                "conversations with images are not saved as snapshots (a snapshot holds \
                 tokens, and an image is not one); save before the first image",
            ));
        }
        // A recurrent model's sequence may only resume from a shorter checkpoint.
        let prefix = self.seqs.rewind(
            &mut self.ctx,
            index,
            &tokens,
            &AdapterSet::default(),
            prefix,
        );
        if prefix == 0 {
            return Err(Error::invalid(
                "this model's state cannot be cut back to the request's prompt and no \
                 checkpoint of it is kept; save right after the request runs",
            ));
        }
        let seq = &self.seqs.caches[index];
        let flags = LlamaStateSeqFlags::empty();
        let size = self.ctx.state_seq_get_size_ext(seq.id, flags);
        let mut payload = vec![0u8; size];
        // SAFETY: `payload` has exactly the size llama.cpp just reported for this sequence.
        let written = unsafe {
            self.ctx
                .state_seq_get_data_ext(payload.as_mut_ptr(), seq.id, flags)
        };
        if written != size {
            return Err(Error::Internal(format!(
                "llama.cpp wrote {written} bytes of sequence state, {size} expected"
            )));
        }
        // Put the saved state back: llama.cpp lays restored cells out afresh, and near-tie
        // rounding can differ from a cache built turn by turn. Reloaded, this engine is in
        // exactly the state every engine that loads the snapshot will be in.
        let id = seq.id;
        self.seqs.clear_for_restore(&mut self.ctx, index);
        // SAFETY: llama.cpp wrote this state for this context a moment ago.
        let restored = unsafe {
            self.ctx
                .state_seq_set_data_ext(&payload, id, LlamaStateSeqFlags::empty())
        };
        if !restored {
            return Err(Error::Internal(
                "llama.cpp could not restore the state it had just saved".into(),
            ));
        }
        let tokens = tokens[..prefix].to_vec();
        self.seqs.caches[index].restored(tokens.clone(), AdapterSet::default());
        Ok(snapshot_format::encode(&snapshot_format::Snapshot {
            library_version: env!("CARGO_PKG_VERSION").to_owned(),
            shape: self.shape.clone(),
            tokens: tokens.iter().map(|t| t.0).collect(),
            payload,
        }))
    }

    /// Checks `bytes` whole (checksum, format, model, KV layout, size) before llama.cpp sees
    /// any of it, then restores it as the engine's cache. Returns the tokens restored.
    pub fn load_snapshot(&mut self, bytes: &[u8]) -> Result<usize> {
        let snapshot = snapshot_format::decode(bytes).map_err(Error::InvalidArgument)?;
        snapshot
            .shape
            .check(snapshot.tokens.len(), &self.shape, self.n_ctx)
            .map_err(Error::InvalidArgument)?;
        let n_vocab = self.model.n_vocab();
        if let Some(bad) = snapshot.tokens.iter().find(|&&t| t < 0 || t >= n_vocab) {
            return Err(Error::invalid(format!(
                "snapshot holds token {bad}, outside this model's vocabulary of {n_vocab}"
            )));
        }
        let tokens = snapshot
            .tokens
            .iter()
            .map(|&t| llama_cpp_2::token::LlamaToken(t))
            .collect::<Vec<_>>();
        // The sequence a request with this prompt would go to, emptied, and room made.
        let index = self
            .seqs
            .choose(&tokens, &AdapterSet::default(), &[], false)
            .unwrap_or(0);
        self.seqs.clear_for_restore(&mut self.ctx, index);
        if !self
            .seqs
            .make_room(&mut self.ctx, tokens.len(), self.n_ctx as usize, &[index])
        {
            return Err(Error::invalid(format!(
                "snapshot holds {} tokens but this engine's n_ctx is {}",
                tokens.len(),
                self.n_ctx
            )));
        }
        let id = self.seqs.caches[index].id;
        // SAFETY: the payload is exactly what llama.cpp wrote for a model with this
        // fingerprint and KV layout (checksummed), and llama.cpp checks its sizes as it reads.
        let restored = unsafe {
            self.ctx
                .state_seq_set_data_ext(&snapshot.payload, id, LlamaStateSeqFlags::empty())
        };
        if !restored {
            self.seqs.caches[index].clear(&mut self.ctx);
            return Err(Error::invalid(
                "llama.cpp refused the snapshot's cache state (it does not fit this context)",
            ));
        }
        let n = tokens.len();
        self.seqs.caches[index].restored(tokens, AdapterSet::default());
        self.seqs.touch(index);
        // A recurrent model can come back to this state only from a copy of it.
        self.seqs.checkpoint(&self.ctx, index);
        Ok(n)
    }
}
