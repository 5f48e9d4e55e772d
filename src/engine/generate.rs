//! One request from its prompt to its final event: prefix reuse, prompt evaluation in
//! chunks, the token loop with stop strings and whole-UTF-8 streaming, and cancellation.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::backend::{self, LogLevel};
use super::cancel::{AbortProbe, CancelBoard};
use super::error::Error;
use super::events::Event;
use llama_cpp_2::context::LlamaContext;

use super::kv_cache::KvCache;
use super::model::LoadedModel;
use super::options::ContextOverflow;
use super::sampler::{build_sampler, random_seed, PENALTY_LAST_N};
use super::text::{StopMatcher, StopScan, Utf8Streamer};
use super::usage::{FinishReason, Usage};
use super::worker::{panic_message, Submission, WorkerShared};

/// A failed request: why, and what it spent before failing.
type Failed = (Error, Usage);

impl LoadedModel {
    /// Runs one submission to its end, sending its events. Never panics past here.
    pub fn serve(&mut self, submission: Submission, probe: &AbortProbe, shared: &WorkerShared) {
        let events = submission.events.clone();
        let mut seed = 0;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if submission.cancel.is_cancelled(&shared.board) {
                return Err((Error::cancelled(), Usage::none(0)));
            }
            probe.watching(&submission.cancel, || {
                self.generate(&submission, &shared.board, &mut seed)
            })
        }));
        let last = match outcome {
            Ok(Ok(usage)) => Event::Done(usage),
            Ok(Err((error, usage))) => Event::Failed { error, usage },
            Err(panic) => {
                // The context may be mid-decode; start the next request from a clean cache.
                self.forget_cache();
                let message = panic_message(&panic);
                backend::log(LogLevel::Error, &format!("worker panic: {message}"));
                Event::Failed {
                    error: Error::Internal(message),
                    usage: Usage::none(seed),
                }
            }
        };
        events.send(last);
    }

    fn generate(
        &mut self,
        submission: &Submission,
        board: &CancelBoard,
        seed_out: &mut u32,
    ) -> Result<Usage, Failed> {
        let request = &submission.request;
        let seed = request.sampling.seed.unwrap_or_else(random_seed);
        *seed_out = seed;
        let mut usage = Usage::none(seed);
        let fail = |error: Error, usage: &Usage| Err((error, usage.clone()));
        #[cfg(feature = "fault-injection")]
        if let super::request::Prompt::Raw(text) = &request.prompt {
            if text == super::fault::PANIC_PROMPT {
                panic!("fault injection: panic requested by the prompt");
            }
        }
        let cancelled_or = |message: String| {
            if submission.cancel.is_cancelled(board) {
                Error::cancelled()
            } else {
                Error::Internal(message)
            }
        };

        let mut plan = match self.plan_prompt(request) {
            Ok(plan) => plan,
            Err(error) => return fail(error, &usage),
        };
        let tokens = std::mem::take(&mut plan.tokens);
        usage.prompt_tokens = tokens.len() as u32;
        usage.dropped_tokens = plan.dropped;
        if plan.dropped > 0 && self.can_shift {
            // The turns after the dropped ones are still in the cache, further on: move them
            // down instead of evaluating them again.
            self.kv.close_gap_for(&mut self.ctx, &tokens);
        }

        let reuse = self.kv.reuse_prefix(&mut self.ctx, &tokens);
        usage.cached_prompt_tokens = reuse as u32;

        let prompt_start = Instant::now();
        let mut logits_index = 0;
        for chunk in tokens[reuse..].chunks(self.n_batch as usize) {
            if submission.cancel.is_cancelled(board) {
                return fail(Error::cancelled(), &usage);
            }
            let is_last_chunk = self.kv.len() + chunk.len() == tokens.len();
            if let Err(error) = self.kv.decode(&mut self.ctx, chunk, is_last_chunk) {
                return fail(cancelled_or(error), &usage);
            }
            logits_index = chunk.len() as i32 - 1;
        }
        usage.prompt_ms = prompt_start.elapsed().as_secs_f64() * 1e3;

        let mut sampler = build_sampler(request, seed, self.model.n_vocab());
        if request.sampling.repeat_penalty != 1.0 {
            let tail = tokens.len().saturating_sub(PENALTY_LAST_N as usize);
            sampler.accept_many(&tokens[tail..]);
        }
        let mut utf8 = Utf8Streamer::new();
        let mut stops = StopMatcher::new(&request.stop);
        let mut undelivered_tokens = 0u32;
        let mut generated = 0u32;
        let mut first_token_at = None;
        let vocab = self.model.vocab();
        let shifting = self.context_overflow == ContextOverflow::Shift;
        let mut piece = Vec::with_capacity(32);
        let send = |text: String, tokens: &mut u32, usage: &mut Usage| {
            if !text.is_empty() {
                usage.completion_tokens += *tokens;
                submission.events.send(Event::Text {
                    text,
                    tokens: std::mem::take(tokens),
                });
            }
        };
        let finish = loop {
            if submission.cancel.is_cancelled(board) {
                return fail(Error::cancelled(), &usage);
            }
            let token = sampler.sample(&self.ctx, logits_index);
            let now = Instant::now();
            let first = *first_token_at.get_or_insert(now);
            usage.generation_ms = (now - first).as_secs_f64() * 1e3;
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            generated += 1;
            undelivered_tokens += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let text = utf8.push(&piece);
            match stops.push(&text) {
                StopScan::Continue(ready) => send(ready, &mut undelivered_tokens, &mut usage),
                StopScan::Stopped(before) => {
                    send(before, &mut undelivered_tokens, &mut usage);
                    // The stop string's own tokens are not delivered.
                    undelivered_tokens = 0;
                    break FinishReason::Stop;
                }
            }
            if request.max_tokens.is_some_and(|max| generated >= max) {
                break FinishReason::Length;
            }
            if self.kv.len() >= self.n_ctx as usize {
                if !shifting {
                    break FinishReason::Length;
                }
                let shifted = shift_out_oldest_exchange(
                    &mut self.kv,
                    &mut self.ctx,
                    self.can_shift,
                    self.n_batch,
                    &mut plan.exchange_starts,
                );
                match shifted {
                    Ok(0) => break FinishReason::Length,
                    Ok(dropped) => usage.dropped_tokens += dropped as u32,
                    Err(error) => return fail(cancelled_or(error), &usage),
                }
            }
            if let Err(error) = self.kv.decode(&mut self.ctx, &[token], true) {
                return fail(cancelled_or(error), &usage);
            }
            logits_index = 0;
        };
        // Text held back for a possible stop string, or an unfinished character, was not a
        // stop: it belongs to the reply.
        let tail = stops.finish() + &utf8.finish();
        send(tail, &mut undelivered_tokens, &mut usage);
        usage.completion_tokens += undelivered_tokens;
        usage.finish_reason = finish;
        Ok(usage)
    }
}

/// With SHIFT, when the reply fills the context: drops the oldest exchange still in the cache
/// (never the one being answered) and moves the rest down, or evaluates the rest again where
/// the cache cannot shift. Returns the tokens dropped (0: nothing left to drop, so the reply
/// ends with LENGTH as under FAIL).
fn shift_out_oldest_exchange(
    kv: &mut KvCache,
    ctx: &mut LlamaContext<'static>,
    can_shift: bool,
    n_batch: u32,
    starts: &mut Vec<usize>,
) -> Result<usize, String> {
    if starts.len() < 2 {
        return Ok(0);
    }
    let (start, end) = (starts[0], starts[1]);
    let dropped = end - start;
    if can_shift {
        if !kv.remove_range(ctx, start, end) {
            return Err("llama.cpp could not shift the KV cache".into());
        }
    } else {
        let kept = kv.tokens()[end..].to_vec();
        if !kv.truncate(ctx, start) {
            return Err("llama.cpp could not cut the KV cache back".into());
        }
        for chunk in kept.chunks(n_batch as usize) {
            kv.decode(ctx, chunk, false)?;
        }
    }
    starts.remove(1);
    for s in starts.iter_mut().skip(1) {
        *s -= dropped;
    }
    Ok(dropped)
}
