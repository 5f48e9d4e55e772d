//! Continuous batching: up to `n_seq` requests advance together, one `llama_decode` per step
//! holding the next token of every generating request and chunks of the prompts being
//! evaluated. Waiting requests start in priority order (then arrival); a waiting request of
//! higher priority than a running one pauses that one, which keeps its sequence and state and
//! resumes where it stopped. Requests under different LoRA adapter sets never share a
//! decode (llama-server's rule): each step serves one set, the one whose requests have waited
//! longest, so sets take turns.

use std::cmp::Reverse;

use llama_cpp_2::token::LlamaToken;

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::cancel::{AbortProbe, CancelBoard};
use crate::engine::data::event::Event;
use crate::engine::data::options::ContextOverflow;
use crate::engine::data::usage::{FinishReason, Usage};
use crate::engine::error::Error;
use crate::engine::worker::cpu_share::cpu_share;
use crate::engine::worker::model::LoadedModel;
use crate::engine::worker::protocol::{panic_message, Submission};
use crate::engine::worker::sequence::{Advance, Progress};

/// With other requests running, a step evaluates at most this many prompt tokens, so their
/// tokens keep flowing and a step (the cancel granularity) stays short; alone, a request
/// evaluates `n_batch` at a time as v0.1 did.
const SHARED_PROMPT_CHUNK: usize = 128;

struct Task {
    submission: Submission,
    arrival: u64,
    /// Set once admitted; kept while paused.
    progress: Option<Progress>,
    /// Steps in a row it had tokens to evaluate but another adapter set's requests were
    /// decoded.
    passed_over: u32,
}

impl Task {
    fn priority(&self) -> i32 {
        self.submission.request.priority
    }

    fn usage(&self) -> Usage {
        self.progress
            .as_ref()
            .map_or_else(|| Usage::none(0), |p| p.usage.clone())
    }

    fn fail(self, error: Error) {
        let usage = self.usage();
        self.submission.events.send(Event::Failed { error, usage });
    }
}

/// What became of a request the scheduler tried to start.
enum Start {
    Running(Task),
    /// No free sequence, or no room while others run: it waits for them.
    NotNow(Task),
    /// It failed and was answered.
    Failed,
}

#[derive(Default)]
pub(crate) struct Scheduler {
    running: Vec<Task>,
    /// Not yet admitted, or paused (with progress).
    waiting: Vec<Task>,
    arrivals: u64,
}

impl Scheduler {
    pub fn push(&mut self, submission: Submission) {
        self.arrivals += 1;
        self.waiting.push(Task {
            submission,
            arrival: self.arrivals,
            progress: None,
            passed_over: 0,
        });
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// Ends every cancelled request, running or waiting, with CANCELLED.
    pub fn sweep_cancelled(&mut self, board: &CancelBoard) {
        for list in [&mut self.running, &mut self.waiting] {
            let mut i = 0;
            while i < list.len() {
                if list[i].submission.cancel.is_cancelled(board) {
                    list.remove(i).fail(Error::cancelled());
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Ends every request with `error` (shutdown, or a panic that left the context unknown).
    pub fn fail_all(&mut self, error: impl Fn() -> Error) {
        for task in self.running.drain(..).chain(self.waiting.drain(..)) {
            task.fail(error());
        }
    }

    /// One step: sweep cancels, admit, then one decode for every running request, in a turn
    /// of the process's CPU share. While other engines hold the cores, it waits for its turn
    /// unless a running request is cancelled or `stop_waiting` says so (pause, destroy): then
    /// it returns having done nothing, and the caller's loop deals with that first.
    pub fn step(
        &mut self,
        model: &mut LoadedModel,
        probe: &AbortProbe,
        board: &CancelBoard,
        stop_waiting: &dyn Fn() -> bool,
    ) {
        self.sweep_cancelled(board);
        self.admit(model);
        if self.running.is_empty() {
            return;
        }
        let give_up = || {
            stop_waiting()
                || self
                    .running
                    .iter()
                    .any(|task| task.submission.cancel.is_cancelled(board))
        };
        let Some(_turn) = cpu_share().take_turn(model.n_threads, &give_up) else {
            return;
        };
        self.make_room_for_next_tokens(model);
        self.evaluate_images(model, probe, board);
        let (in_batch, adapters) = self.fill_batch(model);
        if in_batch.is_empty() {
            return;
        }
        let cancels = in_batch
            .iter()
            .map(|(i, _)| self.running[*i].submission.cancel.clone())
            .collect();
        let decoded = match model.use_adapters(&adapters) {
            Ok(()) => probe
                .watching(cancels, || model.ctx.decode(&mut model.batch))
                .map_err(|error| format!("llama_decode failed: {error}")),
            Err(error) => Err(error.to_string()),
        };
        if let Err(message) = decoded {
            // Part of the batch may be in the cache now; the sequences involved are emptied.
            let mut failed: Vec<usize> = in_batch.iter().map(|(i, _)| *i).collect();
            failed.sort_unstable_by_key(|&i| Reverse(i));
            for i in failed {
                let task = self.running.remove(i);
                if let Some(progress) = &task.progress {
                    model.seqs.caches[progress.seq].clear(&mut model.ctx);
                }
                let error = if task.submission.cancel.is_cancelled(board) {
                    Error::cancelled()
                } else {
                    Error::Internal(message.clone())
                };
                task.fail(error);
            }
            return;
        }
        for (i, tokens) in &in_batch {
            let progress = self.running[*i].progress.as_ref().unwrap();
            model.seqs.caches[progress.seq].extend(tokens);
            if model.seqs.checkpoints.is_active()
                && progress.prompt_left(&model.seqs.caches[progress.seq]).len() == 1
            {
                model.seqs.checkpoint(&model.ctx, progress.seq);
            }
        }
        let mut finished = Vec::new();
        for (i, _) in &in_batch {
            let task = &mut self.running[*i];
            let progress = task.progress.as_mut().unwrap();
            let Some(at) = progress.logits_at.take() else {
                continue;
            };
            let (advance, unconfirmed) =
                progress.on_decoded(&task.submission, &model.ctx, &model.model, at);
            let cache = &mut model.seqs.caches[progress.seq];
            let advance = if unconfirmed > 0
                && !cache.truncate(&mut model.ctx, cache.len() - unconfirmed)
            {
                // Not expected (guesses are only made where the cache can be cut back), but
                // the sequence no longer holds the reply: it cannot go on.
                progress.fail(Error::Internal(
                    "llama.cpp could not remove the unconfirmed guesses from the KV cache".into(),
                ))
            } else {
                advance
            };
            if let Advance::Finished(event) = advance {
                finished.push((*i, event));
            }
        }
        finished.sort_unstable_by_key(|(i, _)| Reverse(*i));
        for (i, event) in finished {
            let task = self.running.remove(i);
            if let Some(progress) = &task.progress {
                model.seqs.touch(progress.seq);
                // The state at the end of the reply: the next turn starts with it.
                model.seqs.checkpoint(&model.ctx, progress.seq);
            }
            task.submission.events.send(event);
        }
    }

    /// Sequences held by running or paused requests.
    fn busy(&self) -> Vec<usize> {
        self.running
            .iter()
            .chain(&self.waiting)
            .filter_map(|t| t.progress.as_ref().map(|p| p.seq))
            .collect()
    }

    /// Cells the running requests' prompts still need.
    fn reserved(&self, model: &LoadedModel) -> usize {
        self.running
            .iter()
            .filter_map(|t| t.progress.as_ref())
            .map(|p| p.prompt_left(&model.seqs.caches[p.seq]).len())
            .sum()
    }

    /// Starts or resumes waiting requests while fewer than `n_seq` run, best first, pausing
    /// a running request for a waiting one of higher priority.
    fn admit(&mut self, model: &mut LoadedModel) {
        let n_seq = model.n_seq as usize;
        loop {
            self.waiting
                .sort_by_key(|t| (Reverse(t.priority()), t.arrival));
            let Some(best) = self.waiting.first() else {
                return;
            };
            if self.running.len() >= n_seq {
                // Pause the lowest-priority running request (the latest of them) for it.
                let Some(lowest) = (0..self.running.len()).min_by_key(|&i| {
                    (self.running[i].priority(), Reverse(self.running[i].arrival))
                }) else {
                    return;
                };
                let free_seq = self.busy().len() < model.seqs.caches.len();
                if best.priority() <= self.running[lowest].priority()
                    || (best.progress.is_none() && !free_seq)
                {
                    return;
                }
                let mut paused = self.running.remove(lowest);
                if let Some(progress) = paused.progress.as_mut() {
                    progress.logits_at = None;
                }
                self.waiting.push(paused);
                continue;
            }
            let task = self.waiting.remove(0);
            if task.progress.is_some() {
                self.running.push(task); // resumes where it stopped
                continue;
            }
            // A panic while starting fails this request (it is in no list meanwhile); the
            // worker's own guard handles the rest.
            let events = task.submission.events.clone();
            let started =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start(model, task)));
            let started = match started {
                Ok(started) => started,
                Err(panic) => {
                    let message = panic_message(&panic);
                    crate::engine::llama::backend::log(
                        crate::engine::llama::backend::LogLevel::Error,
                        &format!("worker panic: {message}"),
                    );
                    events.send(Event::Failed {
                        error: Error::Internal(message),
                        usage: Usage::none(0),
                    });
                    continue;
                }
            };
            match started {
                Start::Running(task) => self.running.push(task),
                Start::NotNow(task) => {
                    // No room yet: it waits for running requests to end.
                    self.waiting.insert(0, task);
                    return;
                }
                Start::Failed => {}
            }
        }
    }

    /// Plans a request's prompt and gives it a sequence with room for it.
    fn start(&mut self, model: &mut LoadedModel, task: Task) -> Start {
        #[cfg(feature = "fault-injection")]
        if let crate::engine::data::request::Prompt::Raw(text) = &task.submission.request.prompt {
            if text == crate::engine::fault::PANIC_PROMPT {
                panic!("fault injection: panic requested by the prompt");
            }
        }
        let request = &task.submission.request;
        let planned = model
            .adapters
            .resolve(request.lora.as_deref())
            .and_then(|adapters| model.plan_prompt(request).map(|plan| (plan, adapters)));
        let (plan, adapters) = match planned {
            Ok(planned) => planned,
            Err(error) => {
                task.fail(error);
                return Start::Failed;
            }
        };
        let busy = self.busy();
        let across_gap = plan.dropped > 0 && model.can_shift;
        let Some(seq) = model
            .seqs
            .choose(&plan.tokens, &adapters, &busy, across_gap)
        else {
            return Start::NotNow(task);
        };
        // Once evaluated, the sequence holds exactly the prompt (what it holds beyond the
        // reusable part is cut back first): the cells it needs beyond what it holds now.
        let needed = plan
            .tokens
            .len()
            .saturating_sub(model.seqs.caches[seq].len());
        let reserved = self.reserved(model);
        let mut keep = busy;
        keep.push(seq);
        if !model.seqs.make_room(
            &mut model.ctx,
            needed + reserved,
            model.n_ctx as usize,
            &keep,
        ) {
            if self.running.is_empty() {
                // Only paused requests hold the rest of the context.
                task.fail(Error::ContextOverflow {
                    prompt_tokens: plan.tokens.len(),
                    n_ctx: model.n_ctx,
                });
                return Start::Failed;
            }
            return Start::NotNow(task); // waits for running requests to end
        }
        let progress = match Progress::start(model, &task.submission, plan, seq, adapters) {
            Ok(progress) => progress,
            Err(error) => {
                task.fail(error);
                return Start::Failed;
            }
        };
        Start::Running(Task {
            progress: Some(progress),
            ..task
        })
    }

    /// Encodes and decodes the image each running request's prompt has next, one per
    /// request per step, outside the shared batch (embeddings, not tokens). A request
    /// cancelled meanwhile (or an engine being destroyed) stops the encoder within a few of
    /// its graph nodes and ends CANCELLED; one whose image fails ends with the error. Either
    /// way its sequence is emptied: it may hold part of the image.
    fn evaluate_images(
        &mut self,
        model: &mut LoadedModel,
        probe: &AbortProbe,
        board: &CancelBoard,
    ) {
        let mut i = 0;
        while i < self.running.len() {
            let task = &self.running[i];
            let progress = task.progress.as_ref().unwrap();
            let cache = &model.seqs.caches[progress.seq];
            let Some(span) = progress.image_at(cache).filter(|_| model.vision.is_some()) else {
                i += 1;
                continue;
            };
            let (id, at) = (cache.id, cache.len());
            // The image's embeddings go through the model's layers: under its own adapters.
            let evaluated = model.use_adapters(&progress.adapters).and_then(|()| {
                let vision = model.vision.as_mut().expect("checked above");
                probe.watching(vec![task.submission.cancel.clone()], || {
                    vision.evaluate(
                        span,
                        &mut model.ctx,
                        &model.model,
                        id,
                        at,
                        model.n_batch,
                        probe,
                    )
                })
            });
            let seq = progress.seq;
            match evaluated {
                Ok(()) => {
                    let stand_ins = &progress.plan.tokens[at..at + span.len];
                    model.seqs.caches[seq].extend(stand_ins);
                    i += 1;
                }
                Err(error) => {
                    model.seqs.caches[seq].clear(&mut model.ctx);
                    let task = self.running.remove(i);
                    let error = if task.submission.cancel.is_cancelled(board) {
                        Error::cancelled()
                    } else {
                        error
                    };
                    task.fail(error);
                }
            }
        }
    }

    /// Every request about to evaluate its next token needs a free cell: idle conversations'
    /// caches are dropped for it (least recently used first); when none is left, SHIFT drops
    /// the request's own oldest exchange, and otherwise the reply ends with LENGTH.
    fn make_room_for_next_tokens(&mut self, model: &mut LoadedModel) {
        let n_ctx = model.n_ctx as usize;
        // Sequences in use and the cells prompts still need do not change in this loop (a
        // request that ends here only frees its sequence for the next step).
        let busy = self.busy();
        let reserved = self.reserved(model);
        // Cells granted to earlier requests' next tokens in this same step: they are not in
        // the caches until the decode, but the decode needs them all at once.
        let mut granted = 0;
        let mut i = 0;
        while i < self.running.len() {
            let Some(progress) = self.running[i].progress.as_ref() else {
                i += 1;
                continue;
            };
            if progress.pending.is_none() {
                i += 1;
                continue;
            }
            let seq = progress.seq;
            let own_full = model.seqs.caches[seq].len() >= n_ctx;
            let fits = !own_full
                && model
                    .seqs
                    .make_room(&mut model.ctx, granted + 1 + reserved, n_ctx, &busy);
            if fits {
                granted += 1;
                i += 1;
                continue;
            }
            let task = &mut self.running[i];
            let progress = task.progress.as_mut().unwrap();
            let shifted = if model.context_overflow == ContextOverflow::Shift {
                // What it evaluates again, it evaluates under its own adapters.
                if let Err(error) = model.use_adapters(&progress.adapters) {
                    let task = self.running.remove(i);
                    task.fail(error);
                    continue;
                }
                progress.shift_out_oldest_exchange(
                    &mut model.seqs.caches[seq],
                    &mut model.ctx,
                    model.can_shift,
                    &mut model.batch,
                    model.n_batch as usize,
                )
            } else {
                Ok(0)
            };
            match shifted {
                Ok(0) => {
                    let Advance::Finished(event) =
                        progress.finish(&task.submission, FinishReason::Length)
                    else {
                        unreachable!()
                    };
                    let task = self.running.remove(i);
                    model.seqs.touch(seq);
                    task.submission.events.send(event);
                }
                Ok(_) => {} // look again: there may still be no room
                Err(message) => {
                    let task = self.running.remove(i);
                    task.fail(Error::Internal(message));
                }
            }
        }
    }

    /// The adapter set this step decodes under: that of the request with something to
    /// evaluate that was passed over the most steps in a row (then the highest priority, then
    /// the earliest), so that sets take turns. `None` when no request has anything.
    fn adapters_for_this_step(&self, model: &LoadedModel) -> Option<AdapterSet> {
        self.running
            .iter()
            .filter(|t| Self::has_tokens_to_evaluate(t, model))
            .max_by_key(|t| (t.passed_over, t.priority(), Reverse(t.arrival)))
            .map(|t| t.progress.as_ref().unwrap().adapters.clone())
    }

    /// A pending token, or prompt text (not an image) left.
    fn has_tokens_to_evaluate(task: &Task, model: &LoadedModel) -> bool {
        task.progress.as_ref().is_some_and(|p| {
            p.pending.is_some() || !p.text_left(&model.seqs.caches[p.seq]).is_empty()
        })
    }

    /// Fills the batch with the requests under one adapter set (see
    /// [`Scheduler::adapters_for_this_step`]): each generating request's pending token and its
    /// guesses, then prompt chunks in priority order. Returns, per running request in the
    /// batch, the tokens it added, and the set.
    fn fill_batch(
        &mut self,
        model: &mut LoadedModel,
    ) -> (Vec<(usize, Vec<LlamaToken>)>, AdapterSet) {
        let n_batch = model.n_batch as usize;
        model.batch.clear();
        let mut added = Vec::new();
        let Some(adapters) = self.adapters_for_this_step(model) else {
            return (added, AdapterSet::default());
        };
        for task in &mut self.running {
            let progress = task.progress.as_ref().unwrap();
            if progress.adapters == adapters {
                task.passed_over = 0;
            } else if Self::has_tokens_to_evaluate(task, model) {
                task.passed_over += 1;
            }
        }
        let this_set = |task: &Task| {
            task.progress
                .as_ref()
                .is_some_and(|p| p.adapters == adapters)
        };
        // Guesses only use what the pending tokens and the prompts leave of the batch and of
        // the context's cells (they never evict an idle conversation's cache).
        let generating = self
            .running
            .iter()
            .filter(|t| t.progress.as_ref().is_some_and(|p| p.pending.is_some()))
            .count();
        let mut spare_slots = n_batch.saturating_sub(generating);
        let mut spare_cells = (model.n_ctx as usize)
            .saturating_sub(model.seqs.used() + self.reserved(model) + generating);
        for (i, task) in self.running.iter_mut().enumerate() {
            if !this_set(task) {
                continue;
            }
            let progress = task.progress.as_mut().unwrap();
            let Some(token) = progress.pending.take() else {
                continue;
            };
            let cache = &model.seqs.caches[progress.seq];
            let start = cache.len();
            if model
                .batch
                .add(token, start as i32, &[cache.id], true)
                .is_err()
            {
                progress.pending = Some(token); // the batch is full: next step
                continue;
            }
            progress.logits_at = Some(model.batch.n_tokens() - 1);
            let room = spare_slots.min(spare_cells);
            let draft = progress.propose_draft(&task.submission, cache.tokens(), token, room);
            for (j, guess) in draft.iter().enumerate() {
                model
                    .batch
                    .add(*guess, (start + 1 + j) as i32, &[cache.id], true)
                    .expect("the batch has room for the guesses");
            }
            spare_slots -= draft.len();
            spare_cells -= draft.len();
            let mut tokens = Vec::with_capacity(1 + draft.len());
            tokens.push(token);
            tokens.extend_from_slice(draft);
            added.push((i, tokens));
        }
        let cap = if self.running.len() == 1 {
            n_batch
        } else {
            SHARED_PROMPT_CHUNK.min(n_batch)
        };
        let mut order: Vec<usize> = (0..self.running.len()).collect();
        order.sort_by_key(|&i| (Reverse(self.running[i].priority()), self.running[i].arrival));
        for i in order {
            if !this_set(&self.running[i]) {
                continue;
            }
            let budget = n_batch.saturating_sub(model.batch.n_tokens() as usize);
            let progress = self.running[i].progress.as_mut().unwrap();
            let cache = &model.seqs.caches[progress.seq];
            let left = progress.prompt_left(cache);
            // Text only: an image ahead is evaluated on its own (see `evaluate_images`).
            let mut n = progress.text_left(cache).len().min(budget).min(cap);
            if n == 0 || progress.pending.is_some() {
                continue;
            }
            if model.seqs.checkpoints.is_active() && n == left.len() && n > 1 {
                // Stop one token short, for a checkpoint there (see `step`): a request that
                // repeats this prompt, or continues it, resumes from it and still has a token
                // to evaluate for its first logits.
                n -= 1;
            }
            let last = n == left.len();
            let chunk = left[..n].to_vec();
            let start = cache.len();
            for (j, token) in chunk.iter().enumerate() {
                let logits = last && j == n - 1;
                // Capacity is checked above; an error here would be a bug caught by the step.
                model
                    .batch
                    .add(*token, (start + j) as i32, &[cache.id], logits)
                    .expect("the batch has room for the chunk");
            }
            if last {
                progress.logits_at = Some(model.batch.n_tokens() - 1);
                progress.evaluating_prompt = false;
            }
            added.push((i, chunk));
        }
        (added, adapters)
    }
}
