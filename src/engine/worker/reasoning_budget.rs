//! A request's reasoning budget: llama.cpp's `common` reasoning-budget sampler (what
//! llama-server's `--reasoning-budget` / `reasoning_budget_tokens` make), built from the
//! template's thinking tags. It counts the tokens after the start tag; when they reach the
//! budget (after a UTF-8 character is whole) it forces the first end tag token by token, and
//! the answer follows. An end tag the model writes itself ends it early; a new start tag arms
//! it again.

use llama_cpp_2::model::LlamaModel;

use crate::engine::chat::template::ThinkingTags;
use crate::engine::error::Result;
use crate::engine::llama::raw_sampler::RawSampler;
use crate::engine::worker::token_choice::prefill_tokens;

/// The budget sampler for `budget` tokens (>= 0), with the template's own text after the last
/// turn already seen (a template that opens the thinking block there starts it counting).
pub(super) fn budget_sampler(
    model: &LlamaModel,
    tags: &ThinkingTags,
    budget: i32,
) -> Result<RawSampler> {
    let ids = |text: &str| -> Vec<i32> {
        model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .into_iter()
            .map(|t| t.0)
            .collect()
    };
    let start = ids(&tags.start);
    let ends: Vec<Vec<i32>> = tags.ends.iter().map(|t| ids(t)).collect();
    let forced = ends.first().cloned().unwrap_or_default();
    let mut sampler = RawSampler::reasoning_budget(model, &start, &ends, &forced, budget)?;
    // The prompt's own tokens after the start tag count against the budget. Once it forces,
    // the rest is not fed: a prompt token would be taken for a forced one (llama.cpp feeds
    // them all, so budget 0 after "<think>\n" ends with the tag never written).
    for token in prefill_tokens(model, &tags.generation_prompt) {
        if sampler.is_forcing() {
            break;
        }
        sampler.accept(token);
    }
    Ok(sampler)
}
