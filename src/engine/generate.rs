//! One request from its prompt to its final event, as a state the scheduler advances a step
//! at a time: which sequence it uses and how much of its prompt is evaluated, then its
//! sampler, stop strings, whole-UTF-8 streaming and usage, token by token.

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::events::Event;
use super::kv_cache::SeqCache;
use super::model::LoadedModel;
use super::prompt::PromptPlan;
use super::sampler::{build_sampler, random_seed, PENALTY_LAST_N};
use super::text::{StopMatcher, StopScan, Utf8Streamer};
use super::usage::{FinishReason, Usage};
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
    /// Where this request's logits are in the batch just decoded.
    pub logits_at: Option<i32>,
    /// Until the last prompt chunk is in a batch.
    pub evaluating_prompt: bool,
    /// Temperature 0 with nothing else in the chain: the token is the argmax of the logits.
    greedy: bool,
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
    ) -> Progress {
        let request = &submission.request;
        let seed = request.sampling.seed.unwrap_or_else(random_seed);
        let mut usage = Usage::none(seed);
        usage.prompt_tokens = plan.tokens.len() as u32;
        usage.dropped_tokens = plan.dropped;
        let cache = &mut model.seqs.caches[seq];
        if plan.dropped > 0 && model.can_shift {
            // The turns after the dropped ones are still in the cache, further on: move them
            // down instead of evaluating them again.
            cache.close_gap_for(&mut model.ctx, &plan.tokens);
        }
        let reuse = cache.reuse_prefix(&mut model.ctx, &plan.tokens);
        usage.cached_prompt_tokens = reuse as u32;
        model.seqs.touch(seq);
        let mut sampler = build_sampler(request, seed, model.model.n_vocab());
        if request.sampling.repeat_penalty != 1.0 {
            let tail = plan.tokens.len().saturating_sub(PENALTY_LAST_N as usize);
            sampler.accept_many(&plan.tokens[tail..]);
        }
        Progress {
            seq,
            plan,
            sampler,
            utf8: Utf8Streamer::new(),
            stops: StopMatcher::new(&request.stop),
            usage,
            generated: 0,
            undelivered: 0,
            prompt_started: Instant::now(),
            first_token_at: None,
            pending: None,
            logits_at: None,
            evaluating_prompt: true,
            greedy: request.sampling.temperature == 0.0 && request.sampling.repeat_penalty == 1.0,
        }
    }

    /// Prompt tokens not yet in the sequence's cache.
    pub fn prompt_left<'a>(&'a self, cache: &SeqCache) -> &'a [LlamaToken] {
        if !self.evaluating_prompt {
            return &[];
        }
        &self.plan.tokens[cache.len().min(self.plan.tokens.len())..]
    }

    /// Samples from the logits at `logits_at` and handles the token: stream its text, or
    /// finish. A token that continues is kept as `pending` for the next step.
    pub fn on_logits(
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
        let token = if self.greedy {
            // What llama.cpp's greedy sampler picks (the first highest logit), without building
            // and sorting a candidate array over the whole vocabulary for every token.
            argmax(ctx.get_logits_ith(logits_at))
        } else {
            self.sampler.sample(ctx, logits_at)
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
        let mut piece = Vec::with_capacity(32);
        vocab.token_to_piece_into(token, &mut piece, false, None);
        let text = self.utf8.push(&piece);
        match self.stops.push(&text) {
            StopScan::Continue(ready) => self.send(submission, ready),
            StopScan::Stopped(before) => {
                self.send(submission, before);
                // The stop string's own tokens are not delivered.
                self.undelivered = 0;
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
        if !text.is_empty() {
            self.usage.completion_tokens += self.undelivered;
            submission.events.send(Event::Text {
                text,
                tokens: std::mem::take(&mut self.undelivered),
            });
        }
    }

    /// Ends the request: text held back for a possible stop string, or an unfinished
    /// character, was not a stop and belongs to the reply.
    pub fn finish(&mut self, submission: &Submission, reason: FinishReason) -> Advance {
        let tail = self.stops.finish() + &self.utf8.finish();
        self.send(submission, tail);
        self.usage.completion_tokens += self.undelivered;
        self.undelivered = 0;
        self.usage.finish_reason = reason;
        self.pending = None;
        Advance::Finished(Event::Done(self.usage.clone()))
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

/// The index of the first highest value (llama.cpp's greedy sampler keeps the first of ties).
fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0;
    let mut best_logit = f32::NEG_INFINITY;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > best_logit {
            best = i;
            best_logit = logit;
        }
    }
    LlamaToken(best as i32)
}
