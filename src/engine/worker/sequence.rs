//! One request from its prompt to its final event, as a state the scheduler advances a step
//! at a time: which sequence it uses and how much of its prompt is evaluated, then its
//! sampler, stop strings, whole-UTF-8 streaming and usage, token by token.

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::cache::sequences::SeqCache;
use crate::engine::chat::reply::ReplyReader;
use crate::engine::chat::text::{StopMatcher, StopScan, Utf8Streamer};
use crate::engine::data::event::Event;
use crate::engine::data::logprobs::TokenLogprob;
use crate::engine::data::sampling::random_seed;
use crate::engine::data::usage::{FinishReason, Usage};
use crate::engine::error::{Error, Result};
use crate::engine::llama::vision::{is_image_token, ImageSpan};
use crate::engine::worker::model::LoadedModel;
use crate::engine::worker::prompt::PromptPlan;
use crate::engine::worker::protocol::Submission;
use crate::engine::worker::reasoning_budget::budget_sampler;
use crate::engine::worker::sampler_chain::build_sampler;
use crate::engine::worker::speculation::Acceptance;
use crate::engine::worker::token_choice::{grammar_sampler, TokenChoice};

/// An admitted request: its sequence, its prompt's progress, and its generation state. Kept
/// whole while the request is paused.
pub(crate) struct Progress {
    /// Index into the model's sequences.
    pub(super) seq: usize,
    /// The LoRA adapters its tokens are evaluated under (see `Scheduler::fill_batch`).
    pub(super) adapters: AdapterSet,
    pub(super) plan: PromptPlan,
    choice: TokenChoice,
    utf8: Utf8Streamer,
    stops: StopMatcher,
    pub(super) usage: Usage,
    generated: u32,
    undelivered: u32,
    prompt_started: Instant,
    first_token_at: Option<Instant>,
    /// Sampled and streamed, to be evaluated in the next step.
    pub(super) pending: Option<LlamaToken>,
    /// Guessed to follow `pending`, evaluated in the same decode, after it.
    draft: Vec<LlamaToken>,
    /// The request's `draft_max` (0 when the model's cache cannot be cut back).
    draft_max: usize,
    /// How often this reply's guesses come true: decides how many are worth evaluating.
    acceptance: Acceptance,
    /// Where this request's logits are in the batch just decoded.
    pub(super) logits_at: Option<i32>,
    /// Until the last prompt chunk is in a batch.
    pub(super) evaluating_prompt: bool,
    /// Log-probabilities of the tokens not yet delivered (one per `undelivered` token).
    logprobs: Vec<TokenLogprob>,
    /// Splits the reply into content, reasoning and tool calls; None for content only.
    reader: Option<ReplyReader>,
    /// Special tokens rendered as text (the reply parser reads them).
    preserved: Vec<LlamaToken>,
}

/// What a step did to a request.
pub(crate) enum Advance {
    Continue,
    Finished(Event),
}

impl Progress {
    /// Takes sequence `seq` for `plan`, to be evaluated under `adapters`, and reuses what
    /// that sequence already holds (shifting kept turns into place after dropped ones under
    /// SHIFT).
    pub fn start(
        model: &mut LoadedModel,
        submission: &Submission,
        plan: PromptPlan,
        seq: usize,
        adapters: AdapterSet,
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
        if plan.dropped > 0 && model.can_shift && *cache.adapters() == adapters {
            // The turns after the dropped ones are still in the cache, further on: move them
            // down instead of evaluating them again.
            cache.close_gap_for(&mut model.ctx, &plan.tokens);
        }
        let mut reuse = model
            .seqs
            .reuse_prefix(&mut model.ctx, seq, &plan.tokens, &adapters);
        if let Some(cut) = plan
            .images
            .iter()
            .find(|s| s.start < reuse && reuse < s.start + s.len)
        {
            // Never half an image: its embeddings are decoded together.
            reuse = model
                .seqs
                .rewind(&mut model.ctx, seq, &plan.tokens, &adapters, cut.start);
        }
        usage.cached_prompt_tokens = reuse as u32;
        model.seqs.touch(seq);
        let (mut sampler, adaptive) =
            build_sampler(&request.sampling, seed, &model.model, model.n_ctx)?;
        // Penalties and DRY look back over the prompt too.
        let window = request.sampling.history_window(model.n_ctx);
        let tail = plan.tokens.len().saturating_sub(window);
        sampler.accept_many(plan.tokens[tail..].iter().filter(|&&t| !is_image_token(t)));
        let budget = match (&plan.reply.thinking, request.reasoning_budget) {
            (Some(tags), budget @ 0..) if plan.reply.grammar.as_ref().is_none_or(|g| g.lazy) => {
                Some(budget_sampler(&model.model, tags, budget)?)
            }
            _ => None,
        };
        let choice = TokenChoice::new(
            sampler,
            adaptive,
            budget,
            grammar,
            &request.sampling,
            request.logprobs as usize,
        );
        Ok(Progress {
            seq,
            adapters,
            plan,
            choice,
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
            logprobs: Vec::new(),
            reader,
            preserved,
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
        let guess = crate::engine::worker::speculation::draft(history, token, max);
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
        let (token, logprob) = match self.choice.choose(ctx, model, logits_at) {
            Ok(chosen) => chosen,
            Err(error) => return self.fail(error),
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

    /// The log-probabilities of the tokens counted as delivered, before their text.
    fn send_logprobs(&mut self, submission: &Submission) {
        if !self.logprobs.is_empty() {
            submission
                .events
                .send(Event::Logprobs(std::mem::take(&mut self.logprobs)));
        }
    }

    /// Ends the request with an error, after what was already delivered.
    pub fn fail(&mut self, error: Error) -> Advance {
        self.pending = None;
        Advance::Finished(Event::Failed {
            error,
            usage: self.usage.clone(),
        })
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
