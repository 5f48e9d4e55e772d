//! Tokenize and detokenize for callers who work with token ids, and the checks that keep a
//! caller's ids inside the vocabulary before llama.cpp sees them.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::engine::data::tokens::TokenFlags;
use crate::engine::error::{Error, Result};
use crate::engine::worker::model::LoadedModel;

impl LoadedModel {
    /// `text` as token ids.
    pub fn tokenize_with(&self, text: &str, flags: TokenFlags) -> Vec<i32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), flags.add_special, flags.parse_special)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// `tokens` as text; bytes that are not whole UTF-8 characters (ids cut in the middle of
    /// one) become U+FFFD. An id outside the vocabulary is refused as `what[index]`.
    pub fn detokenize(&self, tokens: &[i32], flags: TokenFlags, what: &str) -> Result<String> {
        let tokens = checked_tokens(&self.model, tokens, what)?;
        if tokens.is_empty() {
            return Ok(String::new());
        }
        let bytes = self
            .model
            .vocab()
            .detokenize(&tokens, flags.add_special, flags.parse_special);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// `ids` as tokens, each checked against the vocabulary; errors name `what[index]` and the
/// value.
pub(crate) fn checked_tokens(
    model: &LlamaModel,
    ids: &[i32],
    what: &str,
) -> Result<Vec<LlamaToken>> {
    let n_vocab = model.n_vocab();
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            if (0..n_vocab).contains(&id) {
                Ok(LlamaToken(id))
            } else {
                Err(Error::invalid(format!(
                    "{what}[{i}] = {id} is not a token of this model (its ids are 0 to {})",
                    n_vocab - 1
                )))
            }
        })
        .collect()
}
