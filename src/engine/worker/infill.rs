//! Fill-in-the-middle prompts, laid out as llama-server lays out an `/infill` prompt
//! (`format_prompt_infill` in its tools/server/server-common.cpp), with no extra chunks and
//! no text after the middle marker:
//!
//! `[FIM_REP]myproject\n [FIM_SEP]filename\n [BOS] [FIM_PRE]prefix [FIM_SUF]suffix [FIM_MID]`
//!
//! The repository header comes only when the vocabulary has FIM_REP / FIM_SEP (models trained
//! on repository-level FIM, as Qwen2.5-Coder, expect it; the names are llama-server's own
//! placeholders) and when the context leaves room for it, BOS only where the vocabulary adds
//! one. As there, the prefix keeps at most its last 3/4 of a batch of tokens and the suffix its
//! first 1/4 of a batch less 2, so the whole fits one batch; what is cut is reported as
//! dropped tokens.

use llama_cpp_2::token::LlamaToken;

use crate::engine::error::{Error, Result};
use crate::engine::worker::model::LoadedModel;

/// A fill-in-the-middle prompt.
pub(crate) struct InfillLayout {
    pub tokens: Vec<LlamaToken>,
    /// Tokens of the prefix and suffix cut to fit one batch.
    pub dropped: u32,
}

/// llama-server's `n_predict` default (-1: no limit), which its layout reserves room for.
const SERVER_N_PREDICT: i64 = -1;

impl LoadedModel {
    pub(crate) fn infill_layout(&self, prefix: &str, suffix: &str) -> Result<InfillLayout> {
        let vocab = self.model.vocab();
        let present = |t: LlamaToken| (t.0 >= 0).then_some(t);
        let (Some(pre), Some(suf), Some(mid)) = (
            present(vocab.fim_pre()),
            present(vocab.fim_suf()),
            present(vocab.fim_mid()),
        ) else {
            return Err(Error::invalid(format!(
                "the model ({}) has no fill-in-the-middle tokens (its vocabulary lacks fim_pre, \
                 fim_suf or fim_mid; describe's special_tokens lists what it has): suffix needs \
                 a code model trained for FIM, such as Qwen2.5-Coder or CodeGemma",
                self.description.architecture
            )));
        };
        let tokenize = |text: &str| vocab.tokenize(text.as_bytes(), false, false);
        let mut extra = Vec::new();
        if let Some(rep) = present(vocab.fim_rep()) {
            extra.push(rep);
            extra.extend(tokenize("myproject\n"));
        }
        if let Some(sep) = present(vocab.fim_sep()) {
            extra.push(sep);
            extra.extend(tokenize("filename\n"));
        }
        let mut prefix = tokenize(prefix);
        let mut suffix = tokenize(suffix);
        let n_batch = i64::from(self.description.n_batch);
        let n_ctx = i64::from(self.n_ctx);
        let prefix_take = (prefix.len() as i64).min(3 * (n_batch / 4)) as usize;
        let suffix_take = (suffix.len() as i64).min((n_batch / 4 - 2).max(0)) as usize;
        let extra_take =
            ((n_ctx - n_batch - 2 * SERVER_N_PREDICT).max(0) as usize).min(extra.len());
        let dropped = (prefix.len() - prefix_take) + (suffix.len() - suffix_take);
        prefix.drain(..prefix.len() - prefix_take);
        suffix.truncate(suffix_take);

        let mut tokens = Vec::with_capacity(extra_take + prefix.len() + suffix.len() + 4);
        tokens.extend_from_slice(&extra[extra.len() - extra_take..]);
        if vocab.should_add_bos() {
            tokens.push(vocab.bos());
        }
        tokens.push(pre);
        tokens.extend(prefix);
        tokens.push(suf);
        tokens.extend(suffix);
        tokens.push(mid);
        Ok(InfillLayout {
            tokens,
            dropped: dropped as u32,
        })
    }
}
