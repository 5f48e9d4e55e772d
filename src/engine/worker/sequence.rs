//! One request from its prompt to its final event, as a state the scheduler advances a step
//! at a time: which sequence it uses and how much of its prompt is evaluated, then its
//! sampler, stop strings, whole-UTF-8 streaming and usage, token by token.

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use super::error::{Error, Result};
use super::events::Event;
use super::kv_cache::SeqCache;
use super::logprobs::{logprobs_of, TokenLogprob};
use super::lookup::Acceptance;
use super::model::LoadedModel;
use super::prompt::PromptPlan;
use super::reply::ReplyReader;
use super::request::Sampling;
use super::sampler::{build_sampler, random_seed, top_k_array};
use super::template::GrammarPlan;
use super::text::{StopMatcher, StopScan, Utf8Streamer};
use super::usage::{FinishReason, Usage};
use super::vision::{is_image_token, ImageSpan};
use super::worker::Submission;

/// An admitted request: its sequence, its prompt's progress, and its generation state. Kept
/// whole while the request is paused.
pub(crate) struct Progress {
    /// Index into the model's sequences.
    pub seq: usize,
    pub plan: PromptPlan,
    sampler: LlamaSampler,
    utf8: Utf8Streamer,
    stops: StopMatcher,
    pub usage: Usage,
    generated: u32,
    undelivered: u32,
    prompt_started: Instant,
    first_token_at: Option<Instant>,
    /// Sampled and streamed, to be evaluated in the next step.
    pub pending: Option<LlamaToken>,
    /// Guessed to follow `pending`, evaluated in the same decode, after it.
    draft: Vec<LlamaToken>,
    /// The request's `draft_max` (0 when the model's cache cannot be cut back).
    draft_max: usize,
    /// How often this reply's guesses come true: decides how many are worth evaluating.
    acceptance: Acceptance,
    /// Where this request's logits are in the batch just decoded.
    pub logits_at: Option<i32>,
    /// Until the last prompt chunk is in a batch.
    pub evaluating_prompt: bool,
    /// Temperature 0 with nothing else in the chain: the token is the argmax of the logits.
    greedy: bool,
    /// Alternatives per token when the request asked for log-probabilities (0: none).
    n_logprobs: usize,
    /// Log-probabilities of the tokens not yet delivered (one per `undelivered` token).
    logprobs: Vec<TokenLogprob>,
    /// The grammar the reply must match (a request's GBNF or JSON Schema, or the template's
    /// tool-call format).
    grammar: Option<LlamaSampler>,
    /// Splits the reply into content, reasoning and tool calls; None for content only.
    reader: Option<ReplyReader>,
    /// Special tokens rendered as text (the reply parser reads them).
    preserved: Vec<LlamaToken>,
    sampling: Sampling,
}

/// What a step did to a request.
pub(crate) enum Advance {
    Continue,
    Finished(Event),
}

impl Progress {
    /// Takes sequence `seq` for `plan` and reuses what that sequence already holds (shifting
    /// kept turns into place after dropped ones under SHIFT).
    pub fn start(
        model: &mut LoadedModel,
        submission: &Submission,
        plan: PromptPlan,
        seq: usize,
    ) -> Result<Progress> {
        let request = &submission.request;
        let grammar = plan
            .reply
            .grammar
            .as_ref()
            .map(|g| grammar_sampler(&model.model, g))
            .transpose()?;
        let reader = ReplyReader::new(&plan.reply.reading)?;
        let preserved = plan
            .reply
            .preserved
            .iter()
            .filter_map(
                |text| match model.model.vocab().tokenize(text.as_bytes(), false, true)[..] {
                    [token] => Some(token),
                    _ => None,
                },
            )
            .collect();
        let mut stops = request.stop.clone();
        stops.extend(plan.reply.extra_stops.iter().cloned());
        let seed = request.sampling.seed.unwrap_or_else(random_seed);
        let mut usage = Usage::none(seed);
        usage.prompt_tokens = plan.tokens.len() as u32;
        usage.image_tokens = plan.images.iter().map(|span| span.len as u32).sum();
        usage.dropped_tokens = plan.dropped;
        let cache = &mut model.seqs.caches[seq];
        if plan.dropped > 0 && model.can_shift {
            // The turns after the dropped ones are still in the cache, further on: move them
            // down instead of evaluating them again.
            cache.close_gap_for(&mut model.ctx, &plan.tokens);
        }
        let mut reuse = model.seqs.reuse_prefix(&mut model.ctx, seq, &plan.tokens);
        if let Some(cut) = plan
            .images
            .iter()
            .find(|s| s.start < reuse && reuse < s.start + s.len)
        {
            // Never half an image: its embeddings are decoded together.
            reuse = model
                .seqs
                .rewind(&mut model.ctx, seq, &plan.tokens, cut.start);
        }
        usage.cached_prompt_tokens = reuse as u32;
        model.seqs.touch(seq);
        let mut sampler = build_sampler(&request.sampling, seed, &model.model, model.n_ctx)?;
        // Penalties and DRY look back over the prompt too.
        let window = request.sampling.history_window(model.n_ctx);
        let tail = plan.tokens.len().saturating_sub(window);
        sampler.accept_many(plan.tokens[tail..].iter().filter(|&&t| !is_image_token(t)));
        let greedy = request.sampling.is_plain_greedy();
        Ok(Progress {
            seq,
            plan,
            sampler,
            utf8: Utf8Streamer::new(),
            stops: StopMatcher::new(&stops),
            usage,
            generated: 0,
            undelivered: 0,
            prompt_started: Instant::now(),
            first_token_at: None,
            pending: None,
            draft: Vec::new(),
            acceptance: Acceptance::default(),
            draft_max: if model.can_truncate {
                request.draft_max as usize
            } else {
                0
            },
            logits_at: None,
            evaluating_prompt: true,
            greedy,
            n_logprobs: request.logprobs as usize,
            logprobs: Vec::new(),
            grammar,
            reader,
            preserved,
            sampling: request.sampling.clone(),
        })
    }

    /// Prompt tokens not yet in the sequence's cache.
    pub fn prompt_left<'a>(&'a self, cache: &SeqCache) -> &'a [LlamaToken] {
        if !self.evaluating_prompt {
            return &[];
        }
        &self.plan.tokens[cache.len().min(self.plan.tokens.len())..]
    }

    /// The image the prompt has next, when the next position to evaluate starts one.
    pub fn image_at(&self, cache: &SeqCache) -> Option<&ImageSpan> {
        if !self.evaluating_prompt {
            return None;
        }
        self.plan
            .images
            .iter()
            .find(|span| span.start == cache.len())
    }

    /// The prompt's text tokens to evaluate before its next image (all that is left when no
    /// image is ahead).
    pub fn text_left<'a>(&'a self, cache: &SeqCache) -> &'a [LlamaToken] {
        let left = self.prompt_left(cache);
        match self
            .plan
            .images
            .iter()
            .find(|span| span.start >= cache.len())
        {
            Some(span) => &left[..(span.start - cache.len()).min(left.len())],
            None => left,
        }
    }

    /// Tokens guessed to follow the pending `token` (prompt lookup over `history`, the
    /// sequence's cache), to be evaluated after it: at most `room` (what the batch and the
    /// context have left), never more than could be kept before `max_tokens`, and only as
    /// many as this reply's record of right guesses makes worth their rows' cost.
    pub fn propose_draft(
        &mut self,
        submission: &Submission,
        history: &[LlamaToken],
        token: LlamaToken,
        room: usize,
    ) -> &[LlamaToken] {
        let mut max = self.draft_max.min(room);
        if let Some(limit) = submission.request.max_tokens {
            // This step samples one token more than it guesses.
            max = max.min(limit.saturating_sub(self.generated + 1) as usize);
        }
        let guess = super::lookup::draft(history, token, max);
        self.draft = self.acceptance.choose(guess);
        &self.draft
    }

    /// After a decode: samples from the logits at `logits_at` (the pending token's, or the
    /// prompt's last) and, while the sampled token is the next guess, from the guess's logits
    /// too (already evaluated: confirmed without a decode of its own). Each token is sampled
    /// by the same rule as without guesses, with the same random draws; only the batch's
    /// rounding of the logits differs (see `Request::draft_max`). Returns the step's outcome
    /// and how many guesses the cache holds that are not part of the reply (to be removed).
    pub fn on_decoded(
        &mut self,
        submission: &Submission,
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        logits_at: i32,
    ) -> (Advance, usize) {
        let draft = std::mem::take(&mut self.draft);
        self.usage.drafted_tokens += draft.len() as u32;
        let mut at = logits_at;
        for (i, &guess) in draft.iter().enumerate() {
            match self.on_logits(submission, ctx, model, at) {
                Advance::Continue if self.pending == Some(guess) => {
                    self.pending = None;
                    self.usage.accepted_tokens += 1;
                    self.acceptance.observe(true);
                    at += 1;
                }
                // A different token, or the end: the guesses from here on are not the reply.
                advance => {
                    if matches!(advance, Advance::Continue) {
                        self.acceptance.observe(false);
                    }
                    return (advance, draft.len() - i);
                }
            }
        }
        let advance = self.on_logits(submission, ctx, model, at);
        if let (Advance::Continue, Some(token)) = (&advance, self.pending) {
            self.acceptance.observe_shadow(token);
        }
        (advance, 0)
    }

    /// Samples from the logits at `logits_at` and handles the token: stream its text, or
    /// finish. A token that continues is kept as `pending` for the next step.
    fn on_logits(
        &mut self,
        submission: &Submission,
        ctx: &LlamaContext<'static>,
        model: &LlamaModel,
        logits_at: i32,
    ) -> Advance {
        let now = Instant::now();
        if self.first_token_at.is_none() {
            self.usage.prompt_ms = (now - self.prompt_started).as_secs_f64() * 1e3;
        }
        let (token, logprob) = if self.grammar.is_some() {
            match self.sample_constrained(ctx, model, logits_at) {
                Ok(chosen) => chosen,
                Err(error) => return self.fail(error),
            }
        } else if self.greedy {
            // What llama.cpp's greedy sampler picks (the first highest logit), without building
            // and sorting a candidate array over the whole vocabulary for every token.
            let logits = ctx.get_logits_ith(logits_at);
            let token = argmax(logits);
            (token, self.logprobs_of_logits(logits, token, model))
        } else {
            // What llama.cpp's `llama_sampler_sample` does (apply the chain, accept the token),
            // keeping the candidates the token was drawn from.
            let mut candidates = self.candidates(ctx, logits_at);
            self.sampler.apply(&mut candidates);
            let Some(token) = candidates.selected_token() else {
                return self.fail(Error::Internal(
                    "the sampler chain selected no token".into(),
                ));
            };
            self.sampler.accept(token);
            (
                token,
                self.logprobs_of_candidates(&candidates, token, model),
            )
        };
        let now = Instant::now();
        let first = *self.first_token_at.get_or_insert(now);
        self.usage.generation_ms = (now - first).as_secs_f64() * 1e3;
        let vocab = model.vocab();
        if vocab.is_eog(token) {
            return self.finish(submission, FinishReason::Stop);
        }
        self.generated += 1;
        self.undelivered += 1;
        self.logprobs.extend(logprob);
        let mut piece = Vec::with_capacity(32);
        vocab.token_to_piece_into(token, &mut piece, self.preserved.contains(&token), None);
        let text = self.utf8.push(&piece);
        match self.stops.push(&text) {
            StopScan::Continue(ready) => {
                self.send(submission, ready);
                if self.reader.as_ref().is_some_and(|r| r.enough_calls) {
                    return self.finish(submission, FinishReason::Stop);
                }
            }
            StopScan::Stopped(before) => {
                self.send(submission, before);
                // The stop string's own tokens are not delivered.
                self.undelivered = 0;
                self.logprobs.clear();
                return self.finish(submission, FinishReason::Stop);
            }
        }
        if submission
            .request
            .max_tokens
            .is_some_and(|max| self.generated >= max)
        {
            return self.finish(submission, FinishReason::Length);
        }
        self.pending = Some(token);
        Advance::Continue
    }

    fn send(&mut self, submission: &Submission, text: String) {
        if text.is_empty() {
            return;
        }
        self.usage.completion_tokens += self.undelivered;
        let mut tokens = std::mem::take(&mut self.undelivered);
        self.send_logprobs(submission);
        match &mut self.reader {
            None => submission.events.send(Event::Text { text, tokens }),
            // The reader holds text back until it knows what it is; the tokens count once
            // they reach it.
            Some(reader) => {
                for event in reader.push(&text, &mut tokens) {
                    submission.events.send(event);
                }
            }
        }
    }

    /// Ends the request: text held back for a possible stop string, or an unfinished
    /// character, was not a stop and belongs to the reply.
    pub fn finish(&mut self, submission: &Submission, reason: FinishReason) -> Advance {
        let tail = self.stops.finish() + &self.utf8.finish();
        self.send(submission, tail);
        self.usage.completion_tokens += self.undelivered;
        self.undelivered = 0;
        self.send_logprobs(submission);
        self.usage.finish_reason = reason;
        if let Some(reader) = &mut self.reader {
            let finished = reader.finish();
            for event in finished.events {
                submission.events.send(event);
            }
            if finished.has_tool_calls && reason == FinishReason::Stop {
                self.usage.finish_reason = FinishReason::ToolCalls;
            }
        }
        self.pending = None;
        Advance::Finished(Event::Done(self.usage.clone()))
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

    /// The log-probabilities of the tokens counted as delivered, before their text.
    fn send_logprobs(&mut self, submission: &Submission) {
        if !self.logprobs.is_empty() {
            submission
                .events
                .send(Event::Logprobs(std::mem::take(&mut self.logprobs)));
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

    /// Ends the request with an error, after what was already delivered.
    pub fn fail(&mut self, error: Error) -> Advance {
        self.pending = None;
        Advance::Finished(Event::Failed {
            error,
            usage: self.usage.clone(),
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
            self.sampler.apply(&mut all);
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
                self.sampler.apply(&mut allowed);
                let token = allowed.selected_token().ok_or_else(|| {
                    Error::Internal("the sampler chain selected no allowed token".into())
                })?;
                (token, self.logprobs_of_candidates(&allowed, token, model))
            }
        };
        let grammar = self.grammar.as_mut().expect("checked above");
        if !self.greedy {
            self.sampler.accept(token);
        }
        if !model.vocab().is_eog(token) {
            grammar.try_accept(token).map_err(|e| {
                Error::Internal(format!("the grammar refused a token it allowed ({e})"))
            })?;
        }
        Ok((token, logprob))
    }

    /// With SHIFT, when the context is full: drops the oldest exchange still in this
    /// request's sequence (never the one being answered) and moves the rest down, or
    /// evaluates the rest again where the cache cannot shift. Returns the tokens dropped (0:
    /// nothing left to drop).
    pub fn shift_out_oldest_exchange(
        &mut self,
        cache: &mut SeqCache,
        ctx: &mut LlamaContext<'static>,
        can_shift: bool,
        batch: &mut llama_cpp_2::llama_batch::LlamaBatch<'static>,
        n_batch: usize,
    ) -> Result<usize, String> {
        let starts = &mut self.plan.exchange_starts;
        if starts.len() < 2 {
            return Ok(0);
        }
        let (start, end) = (starts[0], starts[1]);
        let dropped = end - start;
        if can_shift {
            if !cache.remove_range(ctx, start, end) {
                return Err("llama.cpp could not shift the KV cache".into());
            }
        } else {
            let kept = cache.tokens()[end..].to_vec();
            if !cache.truncate(ctx, start) {
                return Err("llama.cpp could not cut the KV cache back".into());
            }
            for chunk in kept.chunks(n_batch) {
                decode_one(ctx, batch, cache, chunk, false)?;
            }
        }
        starts.remove(1);
        for s in starts.iter_mut().skip(1) {
            *s -= dropped;
        }
        self.usage.dropped_tokens += dropped as u32;
        Ok(dropped)
    }
}

/// The grammar sampler of a plan, with the text the template already put in the prompt
/// accepted (the template's grammars start with it; a request's own grammar has none).
fn grammar_sampler(model: &LlamaModel, plan: &GrammarPlan) -> Result<LlamaSampler> {
    let refused = |why: String| Error::invalid(format!("the grammar cannot be used: {why}"));
    // Parsed here first: llama.cpp's loader prints its reason to stderr and keeps it.
    super::chat::check_grammar(&plan.gbnf)?;
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
    if !plan.prefill.is_empty() {
        let vocab = model.vocab();
        let tokens = vocab.tokenize(plan.prefill.as_bytes(), false, true);
        for (i, token) in tokens.into_iter().enumerate() {
            let mut piece = Vec::new();
            vocab.token_to_piece_into(token, &mut piece, true, None);
            // Some tokenizers put a space before the first special token (llama.cpp skips it).
            if i == 0
                && piece.first().is_some_and(u8::is_ascii_whitespace)
                && !plan.prefill.starts_with(|c: char| c.is_ascii_whitespace())
            {
                continue;
            }
            sampler.try_accept(token).map_err(|e| {
                refused(format!(
                    "it does not accept the template's reply prefix ({e})"
                ))
            })?;
        }
    }
    Ok(sampler)
}

/// Evaluates `tokens` at the next positions of one sequence (outside the scheduler's
/// batches: re-evaluation after a shift that the cache cannot do in place).
pub(crate) fn decode_one(
    ctx: &mut LlamaContext<'static>,
    batch: &mut llama_cpp_2::llama_batch::LlamaBatch<'static>,
    cache: &mut SeqCache,
    tokens: &[LlamaToken],
    logits_for_last: bool,
) -> Result<(), String> {
    batch.clear();
    let start = cache.len();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        batch
            .add(
                *token,
                (start + i) as i32,
                &[cache.id],
                logits_for_last && i == last,
            )
            .map_err(|e| format!("batch add: {e}"))?;
    }
    match ctx.decode(batch) {
        Ok(()) => {
            cache.extend(tokens);
            Ok(())
        }
        Err(error) => {
            cache.clear(ctx);
            Err(format!("llama_decode failed: {error}"))
        }
    }
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
        let mut next = crate::engine::sampler::xorshift(0x9e37_79b9_7f4a_7c15);
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
