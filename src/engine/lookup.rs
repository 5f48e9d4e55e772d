//! Prompt-lookup drafting, the guessing half of speculative decoding without a draft model:
//! replies to edit, quote and extract requests repeat long runs of their prompt, so the tokens
//! that followed the latest few tokens' most recent earlier occurrence are a cheap guess at
//! what comes next. The scheduler evaluates the guess in the same decode as the pending token
//! and keeps the prefix the sampler confirms (see `Progress::verify_drafts`).
//!
//! llama.cpp's `common` has the same matcher (`common_ngram_simple_draft`) behind its
//! `common_speculative` interface, which needs `common_params` and its own batch type; the
//! scan is a dozen lines, so it lives here, next to the rest of the token bookkeeping.

use llama_cpp_2::token::LlamaToken;

/// The longest run of latest tokens looked for: a longer match predicts better, and four
/// tokens already single out a place in a prompt of thousands.
const NGRAM_MAX: usize = 4;
/// The shortest: a single token matches almost anywhere and guesses badly, so a guess needs
/// the last two tokens to have been seen together before.
const NGRAM_MIN: usize = 2;

/// Up to `max` tokens guessed to follow `history` (the sequence's evaluated tokens) and
/// `last` (the token about to be evaluated): what followed the most recent earlier place
/// where the longest run (up to [`NGRAM_MAX`]) of the latest tokens occurred. Empty when the
/// latest [`NGRAM_MIN`] tokens never occurred before.
pub(crate) fn draft(history: &[LlamaToken], last: LlamaToken, max: usize) -> Vec<LlamaToken> {
    if max == 0 || history.len() < NGRAM_MIN {
        return Vec::new();
    }
    // The whole sequence is `history` then `last`; `at(i)` reads it without copying.
    let len = history.len() + 1;
    let at = |i: usize| if i == history.len() { last } else { history[i] };
    // `end` is where an earlier occurrence of `last` sits; the match runs back from it.
    let mut best: Option<(usize, usize)> = None; // (length, end)
    for end in (0..history.len()).rev() {
        if history[end] != last {
            continue;
        }
        let mut length = 1;
        while length < NGRAM_MAX && length <= end && at(end - length) == at(len - 1 - length) {
            length += 1;
        }
        if length >= NGRAM_MIN && best.is_none_or(|(b, _)| length > b) {
            best = Some((length, end));
            if length == NGRAM_MAX {
                break; // the most recent of the longest matches
            }
        }
    }
    let Some((_, end)) = best else {
        return Vec::new();
    };
    (end + 1..len.min(end + 1 + max)).map(at).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&id| LlamaToken(id)).collect()
    }

    fn ids(tokens: &[LlamaToken]) -> Vec<i32> {
        tokens.iter().map(|t| t.0).collect()
    }

    #[test]
    fn proposes_what_followed_the_latest_tokens_before() {
        // "... 7 8 9 10 11 ..." earlier; the reply has just produced "7 8".
        let history = tokens(&[1, 2, 7, 8, 9, 10, 11, 12, 3, 4, 7]);
        assert_eq!(ids(&draft(&history, LlamaToken(8), 3)), [9, 10, 11]);
        assert_eq!(ids(&draft(&history, LlamaToken(8), 100)), [9, 10, 11, 12, 3, 4, 7, 8]);
        assert!(draft(&history, LlamaToken(8), 0).is_empty());
    }

    #[test]
    fn needs_two_tokens_seen_together() {
        // 8 occurred before, but after 2, not after 5.
        let history = tokens(&[1, 2, 8, 9, 5]);
        assert!(draft(&history, LlamaToken(8), 4).is_empty());
        assert!(draft(&[], LlamaToken(8), 4).is_empty());
        assert!(draft(&tokens(&[8]), LlamaToken(8), 4).is_empty());
    }

    #[test]
    fn prefers_the_longest_match_then_the_most_recent() {
        // "5 6 7" is followed by 100 (long match, older) and "6 7" by 200 (short, recent).
        let history = tokens(&[5, 6, 7, 100, 1, 6, 7, 200, 2, 5, 6]);
        assert_eq!(ids(&draft(&history, LlamaToken(7), 1)), [100]);
        // Two matches of the same length: the more recent wins.
        let history = tokens(&[6, 7, 100, 6, 7, 200, 9, 6]);
        assert_eq!(ids(&draft(&history, LlamaToken(7), 1)), [200]);
    }

    #[test]
    fn a_repeating_run_guesses_its_continuation() {
        let history = tokens(&[4, 5, 4, 5, 4]);
        assert_eq!(ids(&draft(&history, LlamaToken(5), 3)), [4, 5]);
    }
}
