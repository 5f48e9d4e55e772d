//! How a request chooses each token from the logits: the argmax for plain greedy, the
//! sampler chain otherwise, the grammar when the reply is constrained, and the
//! log-probabilities of the distribution the token was drawn from.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::engine::chat::template::GrammarPlan;
use crate::engine::data::logprobs::{Alternative, TokenLogprob};
use crate::engine::data::sampling::Sampling;
use crate::engine::error::{Error, Result};
use crate::engine::llama::raw_sampler::RawSampler;
use crate::engine::worker::sampler_chain::top_k_array;

/// One request's token choice: its sampler chain, its grammar, and whether it wants
/// log-probabilities.
pub(super) struct TokenChoice {
    sampler: LlamaSampler,
    /// Adaptive-p, which makes the draw after the chain when the request asked for it.
    adaptive: Option<RawSampler>,
    /// The reasoning budget, which forces the end of the thinking block once it is spent.
    budget: Option<RawSampler>,
    /// The grammar the reply must match (a request's GBNF or JSON Schema, or the template's
    /// tool-call format).
    grammar: Option<LlamaSampler>,
    /// Temperature 0 with nothing else in the chain: the token is the argmax of the logits.
    greedy: bool,
    /// Alternatives per token when the request asked for log-probabilities (0: none).
    n_logprobs: usize,
    sampling: Sampling,
}

impl TokenChoice {
    /// `sampler` is the request's chain (with the prompt's history already accepted).
    pub fn new(
        sampler: LlamaSampler,
        adaptive: Option<RawSampler>,
        budget: Option<RawSampler>,
        grammar: Option<LlamaSampler>,
        sampling: &Sampling,
        n_logprobs: usize,
    ) -> Self {
        TokenChoice {
            sampler,
            adaptive,
            budget,
            grammar,
            greedy: sampling.is_plain_greedy(),
            n_logprobs,
            sampling: sampling.clone(),
        }
    }

    /// The next token from the logits at `logits_at`, and its log-probabilities when asked
    /// for; the chain and the grammar have accepted it.
    pub fn choose(
        &mut self,
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        logits_at: i32,
    ) -> Result<(LlamaToken, Option<TokenLogprob>)> {
        if self.budget.as_ref().is_some_and(RawSampler::is_forcing) {
            return self.forced_by_budget(ctx, model, logits_at);
        }
        let chosen = self.choose_freely(ctx, model, logits_at)?;
        if let Some(budget) = &mut self.budget {
            budget.accept(chosen.0);
        }
        Ok(chosen)
    }

    /// The next token of the end tag the spent reasoning budget writes. The chain sees it as
    /// chosen; the grammar does not (llama.cpp's common sampler keeps a lazy grammar out of
    /// the thinking block too).
    fn forced_by_budget(
        &mut self,
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        logits_at: i32,
    ) -> Result<(LlamaToken, Option<TokenLogprob>)> {
        let mut all = ctx.token_data_array_ith(logits_at);
        let budget = self.budget.as_mut().expect("checked by the caller");
        budget.apply(&mut all);
        let token = all
            .data
            .iter()
            .find(|d| d.logit().is_finite())
            .map(LlamaTokenData::id)
            .ok_or_else(|| Error::Internal("the reasoning budget forced no token".into()))?;
        budget.accept(token);
        if !self.greedy {
            self.accept(token);
        }
        Ok((
            token,
            self.logprobs_of_logits(ctx.get_logits_ith(logits_at), token, model),
        ))
    }

    fn choose_freely(
        &mut self,
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        logits_at: i32,
    ) -> Result<(LlamaToken, Option<TokenLogprob>)> {
        if self.grammar.is_some() {
            self.sample_constrained(ctx, model, logits_at)
        } else if self.greedy {
            // What llama.cpp's greedy sampler picks (the first highest logit), without building
            // and sorting a candidate array over the whole vocabulary for every token.
            let logits = ctx.get_logits_ith(logits_at);
            let token = argmax(logits);
            Ok((token, self.logprobs_of_logits(logits, token, model)))
        } else {
            // What llama.cpp's `llama_sampler_sample` does (apply the chain, accept the token),
            // keeping the candidates the token was drawn from.
            let mut candidates = self.candidates(ctx, logits_at);
            self.draw(&mut candidates);
            let token = candidates
                .selected_token()
                .ok_or_else(|| Error::Internal("the sampler chain selected no token".into()))?;
            self.accept(token);
            Ok((
                token,
                self.logprobs_of_candidates(&candidates, token, model),
            ))
        }
    }

    /// The candidates the sampler chain starts from: when its first sampler is top-k (nothing
    /// changes the logits before it), the `k` best already sorted, which it leaves as they
    /// are; else the whole vocabulary.
    fn candidates(&self, ctx: &LlamaContext<'static>, logits_at: i32) -> LlamaTokenDataArray {
        let logits = ctx.get_logits_ith(logits_at);
        match self.sampling.draw_window() {
            Some(k) if k < logits.len() => top_k_array(logits, k),
            _ => ctx.token_data_array_ith(logits_at),
        }
    }

    /// Greedy's distribution: the model's own, a softmax over all of `logits`.
    fn logprobs_of_logits(
        &self,
        logits: &[f32],
        token: LlamaToken,
        model: &LlamaModel,
    ) -> Option<TokenLogprob> {
        (self.n_logprobs > 0).then(|| {
            logprobs_of(
                logits.iter().enumerate().map(|(i, &l)| (i as i32, l)),
                token,
                self.n_logprobs,
                model,
            )
        })
    }

    /// The distribution a chain drew from: its candidates' logits after its filters and
    /// temperature (a greedy chain: after the bias and penalties).
    fn logprobs_of_candidates(
        &self,
        candidates: &LlamaTokenDataArray,
        token: LlamaToken,
        model: &LlamaModel,
    ) -> Option<TokenLogprob> {
        (self.n_logprobs > 0).then(|| {
            logprobs_of(
                candidates.data.iter().map(|d| (d.id().0, d.logit())),
                token,
                self.n_logprobs,
                model,
            )
        })
    }

    /// The candidates the grammar allows, enough of them to choose exactly as over the whole
    /// vocabulary: checking every token against the grammar is the slow part (all 262,144
    /// here), so the highest logits are checked first. Greedy needs the best allowed token,
    /// top-k sampling (when nothing reorders the logits first) the best `top_k` allowed ones; both
    /// are among the highest logits when that many of those are allowed. Otherwise, or when
    /// too few are, every token is checked.
    fn allowed_candidates(
        grammar: &mut LlamaSampler,
        greedy: bool,
        s: &Sampling,
        ctx: &LlamaContext<'static>,
        logits: &[f32],
        logits_at: i32,
    ) -> LlamaTokenDataArray {
        const FIRST_LOOK: usize = 1024;
        let needed = if greedy {
            1
        } else {
            s.draw_window().unwrap_or(usize::MAX)
        };
        if needed <= FIRST_LOOK && logits.len() > FIRST_LOOK {
            let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
            ids.select_nth_unstable_by(FIRST_LOOK, |a, b| {
                logits[*b as usize].total_cmp(&logits[*a as usize])
            });
            ids.truncate(FIRST_LOOK);
            let mut top = LlamaTokenDataArray::new(
                ids.iter()
                    .map(|&id| LlamaTokenData::new(LlamaToken(id as i32), logits[id as usize], 0.0))
                    .collect(),
                false,
            );
            grammar.apply(&mut top);
            top.data.retain(|d| d.logit().is_finite());
            if top.data.len() >= needed {
                // The vocabulary order, so ties break as over the whole array.
                top.data.sort_unstable_by_key(|d| d.id().0);
                return top;
            }
        }
        let mut all = ctx.token_data_array_ith(logits_at);
        grammar.apply(&mut all);
        all.data.retain(|d| d.logit().is_finite());
        all
    }

    /// Applies the chain to `candidates`, then adaptive-p's draw when it is on.
    fn draw(&mut self, candidates: &mut LlamaTokenDataArray) {
        self.sampler.apply(candidates);
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.apply(candidates);
        }
    }

    fn accept(&mut self, token: LlamaToken) {
        self.sampler.accept(token);
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.accept(token);
        }
    }

    /// The next token under the grammar, the way llama.cpp's common sampler does it: the
    /// unconstrained choice when the grammar allows it (cheap: one candidate checked), else
    /// the choice among the candidates the grammar allows. The grammar only ever accepts
    /// tokens it allowed, and never an end-of-generation token (llama.cpp aborts the process
    /// when a grammar that is not complete is given one), so no model output can crash it.
    fn sample_constrained(
        &mut self,
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        logits_at: i32,
    ) -> Result<(LlamaToken, Option<TokenLogprob>)> {
        let logits = ctx.get_logits_ith(logits_at);
        let mut free_choice = None;
        let first = if self.greedy {
            argmax(logits)
        } else {
            let mut all = self.candidates(ctx, logits_at);
            self.draw(&mut all);
            let token = all
                .selected_token()
                .ok_or_else(|| Error::Internal("the sampler chain selected no token".into()))?;
            free_choice = Some(all);
            token
        };
        let grammar = self
            .grammar
            .as_mut()
            .expect("constrained without a grammar");
        let mut single = LlamaTokenDataArray::new(
            vec![LlamaTokenData::new(first, logits[first.0 as usize], 0.0)],
            false,
        );
        grammar.apply(&mut single);
        let (token, logprob) = if single.data[0].logit().is_finite() {
            let logprob = match &free_choice {
                Some(all) => self.logprobs_of_candidates(all, first, model),
                None => self.logprobs_of_logits(logits, first, model),
            };
            (first, logprob)
        } else {
            let mut allowed = Self::allowed_candidates(
                grammar,
                self.greedy,
                &self.sampling,
                ctx,
                logits,
                logits_at,
            );
            if allowed.data.is_empty() {
                return Err(Error::invalid(
                    "the grammar allows no token at this point of the reply (it may need \
                     characters this model's vocabulary cannot produce)",
                ));
            }
            if self.greedy {
                let best = allowed
                    .data
                    .iter()
                    .fold(None::<&LlamaTokenData>, |best, d| match best {
                        Some(b) if b.logit() >= d.logit() => Some(b),
                        _ => Some(d),
                    })
                    .expect("non-empty");
                let token = best.id();
                (token, self.logprobs_of_candidates(&allowed, token, model))
            } else {
                allowed.selected = None;
                allowed.sorted = false;
                self.draw(&mut allowed);
                let token = allowed.selected_token().ok_or_else(|| {
                    Error::Internal("the sampler chain selected no allowed token".into())
                })?;
                (token, self.logprobs_of_candidates(&allowed, token, model))
            }
        };
        if !self.greedy {
            self.accept(token);
        }
        let grammar = self.grammar.as_mut().expect("checked above");
        if !model.vocab().is_eog(token) {
            grammar.try_accept(token).map_err(|e| {
                Error::Internal(format!("the grammar refused a token it allowed ({e})"))
            })?;
        }
        Ok((token, logprob))
    }
}

/// The grammar sampler of a plan, with the text the template already put in the prompt
/// accepted (the template's grammars start with it; a request's own grammar has none).
pub(super) fn grammar_sampler(model: &LlamaModel, plan: &GrammarPlan) -> Result<LlamaSampler> {
    let refused = |why: String| Error::invalid(format!("the grammar cannot be used: {why}"));
    // Parsed here first: llama.cpp's loader prints its reason to stderr and keeps it.
    crate::engine::llama::grammar::check_grammar_on_worker(&plan.gbnf)?;
    let mut sampler = if plan.lazy {
        let tokens: Vec<LlamaToken> = plan.trigger_tokens.iter().map(|&t| LlamaToken(t)).collect();
        LlamaSampler::grammar_lazy_patterns(
            model,
            &plan.gbnf,
            "root",
            &plan.trigger_patterns,
            &tokens,
        )
    } else {
        LlamaSampler::grammar(model, &plan.gbnf, "root")
    }
    .map_err(|e| {
        refused(format!(
            "{e} (left recursion, or a rule that matches nothing?)"
        ))
    })?;
    for token in prefill_tokens(model, &plan.prefill) {
        sampler.try_accept(token).map_err(|e| {
            refused(format!(
                "it does not accept the template's reply prefix ({e})"
            ))
        })?;
    }
    Ok(sampler)
}

/// The tokens of the text the template already put after the last turn, as llama.cpp's common
/// sampler feeds them to its grammar and reasoning budget.
pub(super) fn prefill_tokens(model: &LlamaModel, prefill: &str) -> Vec<LlamaToken> {
    let vocab = model.vocab();
    let mut out = Vec::new();
    for (i, token) in vocab
        .tokenize(prefill.as_bytes(), false, true)
        .into_iter()
        .enumerate()
    {
        let mut piece = Vec::new();
        vocab.token_to_piece_into(token, &mut piece, true, None);
        // Some tokenizers put a space before the first special token (llama.cpp skips it).
        if i == 0
            && piece.first().is_some_and(u8::is_ascii_whitespace)
            && !prefill.starts_with(|c: char| c.is_ascii_whitespace())
        {
            continue;
        }
        out.push(token);
    }
    out
}

/// The index of the first highest value (llama.cpp's greedy sampler keeps the first of ties;
/// NaN never wins). Sixteen running maxima, one per lane, so the compiler vectorises the scan
/// of the 262,144 logits: 3x faster than one running maximum (~0.2 ms a token here, about 1%
/// of generation).
fn argmax(logits: &[f32]) -> LlamaToken {
    const LANES: usize = 16;
    let mut lane_max = [f32::NEG_INFINITY; LANES];
    let mut lane_chunk = [0u32; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for i in 0..LANES {
            // Strictly greater: each lane keeps the first of its ties.
            if chunk[i] > lane_max[i] {
                lane_max[i] = chunk[i];
                lane_chunk[i] = c as u32;
            }
        }
    }
    let (mut best, mut best_logit) = (0usize, f32::NEG_INFINITY);
    for i in 0..LANES {
        let index = lane_chunk[i] as usize * LANES + i;
        let tie = lane_max[i] == best_logit && best_logit > f32::NEG_INFINITY && index < best;
        if lane_max[i] > best_logit || tie {
            (best, best_logit) = (index, lane_max[i]);
        }
    }
    let base = logits.len() - rest.len();
    for (j, &logit) in rest.iter().enumerate() {
        if logit > best_logit {
            (best, best_logit) = (base + j, logit);
        }
    }
    LlamaToken(best as i32)
}

/// The log-probabilities of `chosen` and the `n` most likely of `candidates` (id, logit):
/// a log-softmax over the finite logits, which is the distribution a seeded draw samples
/// from after the chain's filters and temperature (and, for greedy, the model's own).
pub(crate) fn logprobs_of(
    candidates: impl Iterator<Item = (i32, f32)> + Clone,
    chosen: LlamaToken,
    n: usize,
    model: &LlamaModel,
) -> TokenLogprob {
    let finite = candidates.filter(|(_, logit)| logit.is_finite());
    let max = finite
        .clone()
        .map(|(_, l)| l)
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = finite.clone().map(|(_, l)| ((l - max) as f64).exp()).sum();
    let log_norm = max as f64 + sum.ln();
    let logprob = |logit: f32| (logit as f64 - log_norm).min(0.0) as f32;
    let mut chosen_logprob = f32::NEG_INFINITY;
    // The best n, kept sorted: most likely first, then lower id.
    let mut best: Vec<(i32, f32)> = Vec::with_capacity(n + 1);
    for (id, logit) in finite {
        if id == chosen.0 {
            chosen_logprob = logprob(logit);
        }
        if n == 0 {
            continue;
        }
        let better = |&(bid, bl): &(i32, f32)| logit > bl || (logit == bl && id < bid);
        if best.len() < n || best.last().is_some_and(better) {
            let at = best.iter().position(better).unwrap_or(best.len());
            best.insert(at, (id, logit));
            best.truncate(n);
        }
    }
    let alternative = |id: i32, logprob: f32| Alternative {
        id,
        bytes: token_bytes(model, LlamaToken(id)),
        logprob,
    };
    TokenLogprob {
        token: alternative(chosen.0, chosen_logprob),
        top: best
            .into_iter()
            .map(|(id, logit)| alternative(id, logprob(logit)))
            .collect(),
    }
}

fn token_bytes(model: &LlamaModel, token: LlamaToken) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    model
        .vocab()
        .token_to_piece_into(token, &mut bytes, true, None);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain scan the vectorised argmax must agree with.
    fn first_highest(logits: &[f32]) -> i32 {
        let (mut best, mut best_logit) = (0, f32::NEG_INFINITY);
        for (i, &logit) in logits.iter().enumerate() {
            if logit > best_logit {
                (best, best_logit) = (i, logit);
            }
        }
        best as i32
    }

    #[test]
    fn argmax_is_the_first_highest_logit() {
        let mut next = crate::engine::worker::sampler_chain::xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..2000 {
            let len = 1 + (next() % 600) as usize;
            // Few distinct values, so ties across lanes, chunks and the remainder are common.
            let mut logits: Vec<f32> = (0..len).map(|_| (next() % 7) as f32).collect();
            match round % 5 {
                1 => logits.iter_mut().for_each(|l| *l = f32::NEG_INFINITY),
                2 => {
                    let at = (next() % len as u64) as usize;
                    logits[at] = f32::NAN;
                }
                3 => logits.iter_mut().step_by(3).for_each(|l| *l = f32::NAN),
                _ => {}
            }
            assert_eq!(
                argmax(&logits).0,
                first_highest(&logits),
                "round {round}: {logits:?}"
            );
        }
        assert_eq!(argmax(&[f32::NAN; 40]).0, 0);
    }
}
