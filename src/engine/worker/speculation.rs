//! Prompt-lookup drafting, the guessing half of speculative decoding without a draft model:
//! replies to edit, quote and extract requests repeat long runs of their prompt, so the tokens
//! that followed the latest few tokens' most recent earlier occurrence are a cheap guess at
//! what comes next. The scheduler evaluates the guess in the same decode as the pending token
//! and keeps the prefix the sampler confirms (see `Progress::on_decoded`).
//!
//! llama.cpp's `common` has the same matcher (`common_ngram_simple_draft`) behind its
//! `common_speculative` interface, which needs `common_params` and its own batch type; the
//! scan is a dozen lines, so it lives here, next to the rest of the token bookkeeping.

use crate::engine::llama::vision::is_image_token;
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
    // An image's stand-in tokens are not tokens the model could sample: guesses stop there.
    (end + 1..len.min(end + 1 + max))
        .map(at)
        .take_while(|&t| !is_image_token(t))
        .collect()
}

/// What each guessed row adds to a decode, as a share of a one-token decode: llama-bench's
/// pp1, pp2, pp3, pp5 and pp9 with the default model on 2 cores take 21.8, 24.0, 27.0, 29.6
/// and 41.3 ms, about 1 + 0.1 per extra row (the 262,144-token output layer runs for every
/// row). Fixed rather than measured as the engine runs, so the same request always evaluates
/// the same guesses in the same batches and gets the same reply; on hardware where rows are
/// cheaper (a GPU, a larger model) it only guesses less than it could.
const ROW_COST: f64 = 0.1;

/// How often a request's guesses turn out right, kept per request: a reply that copies its
/// prompt confirms nearly every guess, free prose few. A guess not evaluated (too unlikely to
/// pay) still has its first token checked against the token that comes, so the rate keeps up
/// with the reply.
pub(crate) struct Acceptance {
    /// Smoothed share of guessed tokens confirmed, each counted up to the first wrong one.
    rate: f64,
    /// The first token of this step's guess when it was not evaluated: the next token sampled
    /// is compared with it (the step after makes a new guess).
    shadow: Option<LlamaToken>,
}

impl Default for Acceptance {
    fn default() -> Self {
        // Neutral until measured: enough to try a few guesses.
        Self {
            rate: 0.5,
            shadow: None,
        }
    }
}

/// Tokens a step with `guesses` guesses is expected to produce when each is right with
/// probability `rate` (given the ones before it were): 1 + rate + rate^2 + ...
fn expected_tokens(rate: f64, guesses: usize) -> f64 {
    (0..=guesses).map(|i| rate.powi(i as i32)).sum()
}

impl Acceptance {
    /// Whether a guessed token was confirmed (true) or was the first wrong one (false).
    pub fn observe(&mut self, confirmed: bool) {
        self.rate = 0.9 * self.rate + 0.1 * f64::from(u8::from(confirmed));
    }

    /// Compares a token just chosen with the guess that was not evaluated.
    pub fn observe_shadow(&mut self, token: LlamaToken) {
        if let Some(guessed) = self.shadow.take() {
            self.observe(guessed == token);
        }
    }

    /// How many of `guess` to evaluate: the length with the most tokens expected per unit of
    /// decode cost, and none unless that beats a plain step by a clear margin. A guess not
    /// evaluated becomes the shadow.
    pub fn choose(&mut self, mut guess: Vec<LlamaToken>) -> Vec<LlamaToken> {
        // A few percent: what the cost model may be off by, so a guess never loses more.
        const MARGIN: f64 = 1.03;
        let (mut best, mut best_value) = (0, MARGIN);
        for k in 1..=guess.len() {
            let value = expected_tokens(self.rate, k) / (1.0 + ROW_COST * k as f64);
            if value > best_value {
                (best, best_value) = (k, value);
            }
        }
        if best == 0 {
            self.shadow = guess.first().copied();
            return Vec::new();
        }
        self.shadow = None;
        guess.truncate(best);
        guess
    }
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
        assert_eq!(
            ids(&draft(&history, LlamaToken(8), 100)),
            [9, 10, 11, 12, 3, 4, 7, 8]
        );
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

    fn choose(rate: f64, offered: usize) -> usize {
        let mut acceptance = Acceptance { rate, shadow: None };
        let guess = tokens(&(0..offered as i32).collect::<Vec<_>>());
        let chosen = acceptance.choose(guess).len();
        // A guess not evaluated is kept to be compared with what comes.
        let kept = (chosen == 0 && offered > 0).then_some(LlamaToken(0));
        assert_eq!(acceptance.shadow, kept);
        chosen
    }

    #[test]
    fn guesses_only_as_many_as_pay_for_their_rows() {
        // A reply that copies: all; prose that rarely repeats: none; in between, a few.
        assert_eq!(choose(0.95, 8), 8);
        assert_eq!(choose(0.05, 8), 0);
        assert_eq!(choose(0.1, 8), 0, "1.1 tokens for 1.1 decodes: no gain");
        let middle = choose(0.65, 8);
        assert!((2..=6).contains(&middle), "{middle}");
        assert_eq!(choose(0.95, 3), 3, "never more than offered");
        assert_eq!(choose(0.95, 0), 0);
    }

    #[test]
    fn the_rate_follows_the_guesses_evaluated_or_not() {
        let mut acceptance = Acceptance::default();
        for _ in 0..40 {
            acceptance.observe(false);
        }
        assert!(acceptance.rate < 0.02);
        // Too unlikely to evaluate: its first token is kept as the shadow, and confirmed by the
        // token that comes; so for the next steps' guesses.
        assert!(acceptance.choose(tokens(&[7, 8, 9])).is_empty());
        assert_eq!(acceptance.shadow, Some(LlamaToken(7)));
        for id in [7, 8, 9] {
            acceptance.shadow = Some(LlamaToken(id));
            acceptance.observe_shadow(LlamaToken(id));
        }
        assert!(acceptance.rate > 0.25, "{}", acceptance.rate);
        assert!(acceptance.shadow.is_none());
        // A wrong shadow counts once, then is dropped.
        acceptance.shadow = Some(LlamaToken(1));
        let before = acceptance.rate;
        acceptance.observe_shadow(LlamaToken(5));
        acceptance.observe_shadow(LlamaToken(2));
        assert!((acceptance.rate - 0.9 * before).abs() < 1e-12);
    }
}
