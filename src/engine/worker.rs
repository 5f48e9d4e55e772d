//! The worker thread: the only code that touches a llama.cpp model or context. It takes
//! commands in arrival order, never waits for a consumer, and survives a panic in a request.

use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::backend::{self, available_cpus};
use super::cancel::{install_abort_probe, AbortProbe, CancelBoard, RequestCancel};
use super::error::{Error, Result};
use super::events::EventSender;
use super::fault;
use super::request::{Description, EngineOptions, FinishReason, LogLevel, Prompt, Request, Usage};
use super::template::ChatFormat;
use super::text::{StopMatcher, StopScan, Utf8Streamer};

/// One event of a running request, in order: `Text`*, then exactly one `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Whole UTF-8 characters; `tokens` is how many generated tokens this text completes.
    Text {
        text: String,
        tokens: u32,
    },
    Done(Usage),
    /// The request failed; `usage` is what was spent before it did.
    Failed {
        error: Error,
        usage: Usage,
    },
}

pub(crate) struct Submission {
    pub request: Request,
    pub cancel: RequestCancel,
    pub events: EventSender,
}

/// What a load tells the thread that asked for it: progress, then exactly one outcome.
pub(crate) enum LoadReport {
    Progress(f32),
    Finished(Result<Description>),
}

pub(crate) struct LoadOrder {
    pub options: EngineOptions,
    pub reports: std::sync::mpsc::Sender<LoadReport>,
    /// Set by the caller to abort the load (its progress callback said stop).
    pub abort: Arc<AtomicBool>,
}

pub(crate) enum Command {
    Generate(Submission),
    CountTokens {
        request: Request,
        reply: std::sync::mpsc::Sender<Result<u32>>,
    },
    Reset {
        reply: std::sync::mpsc::Sender<Result<()>>,
    },
    Reload(LoadOrder),
    Shutdown,
}

/// What the engine handle and the worker share.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub board: Arc<CancelBoard>,
    /// Generate commands sent but not yet taken by the worker (for BUSY on a full queue).
    pub queued: AtomicUsize,
    pub description: Mutex<Description>,
    /// Set once the engine is being destroyed: loads abort, queued work is cancelled.
    pub shutting_down: AtomicBool,
}

/// Runs the worker until Shutdown. `ready` gets the outcome of the first load.
pub(crate) fn run(
    shared: Arc<WorkerShared>,
    order: LoadOrder,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    // Declared first so it is dropped last: every context points at it.
    let probe = AbortProbe::new(shared.board.clone());
    let first = catch_unwind(AssertUnwindSafe(|| {
        fault::check("backend")?;
        backend::backend().and_then(|backend| Loaded::load(backend, &order, &probe, &shared))
    }))
    .unwrap_or_else(|panic| Err(Error::Internal(panic_message(&panic))));
    let mut loaded = match first {
        Ok(loaded) => {
            let _ = order
                .reports
                .send(LoadReport::Finished(Ok(loaded.description.clone())));
            loaded
        }
        Err(error) => {
            let _ = order.reports.send(LoadReport::Finished(Err(error)));
            return;
        }
    };

    while let Some(command) = commands.blocking_recv() {
        match command {
            Command::Generate(submission) => {
                shared.queued.fetch_sub(1, Ordering::SeqCst);
                loaded.serve(submission, &probe, &shared);
            }
            Command::CountTokens { request, reply } => {
                let counted = guarded(|| loaded.tokenize(&request).map(|t| t.len() as u32));
                let _ = reply.send(counted);
            }
            Command::Reset { reply } => {
                loaded.forget_cache();
                let _ = reply.send(Ok(()));
            }
            Command::Reload(order) => {
                // The new model is loaded while the old one still serves; only on success is
                // the old one dropped (assignment drops it after the new one exists).
                let outcome = guarded(|| {
                    fault::check("backend")?;
                    backend::backend()
                        .and_then(|backend| Loaded::load(backend, &order, &probe, &shared))
                });
                let outcome = outcome.map(|new| {
                    loaded = new;
                    loaded.description.clone()
                });
                let _ = order.reports.send(LoadReport::Finished(outcome));
            }
            Command::Shutdown => break,
        }
    }
    // Whatever is still queued will never run: tell its waiters.
    commands.close();
    while let Ok(command) = commands.try_recv() {
        fail_unrun(command);
    }
}

fn fail_unrun(command: Command) {
    let shut = || Error::Cancelled("the engine was destroyed before the request ran".into());
    match command {
        Command::Generate(submission) => {
            submission.events.send(Event::Failed {
                error: shut(),
                usage: Usage::none(0),
            });
        }
        Command::CountTokens { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Reset { reply } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Reload(order) => {
            let _ = order.reports.send(LoadReport::Finished(Err(shut())));
        }
        Command::Shutdown => {}
    }
}

fn guarded<T>(run: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = panic_message(&panic);
        backend::log(LogLevel::Error, &format!("worker panic: {message}"));
        Err(Error::Internal(message))
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// A loaded model with its context and the tokens its KV cache holds.
struct Loaded {
    // Field order is drop order: the context must go before the model it points into.
    ctx: LlamaContext<'static>,
    model: Box<LlamaModel>,
    format: Option<ChatFormat>,
    /// Exactly the tokens in KV sequence 0, position by position.
    cached: Vec<LlamaToken>,
    batch: LlamaBatch<'static>,
    n_ctx: u32,
    n_batch: u32,
    description: Description,
}

impl Loaded {
    fn load(
        backend: &'static LlamaBackend,
        order: &LoadOrder,
        probe: &AbortProbe,
        shared: &WorkerShared,
    ) -> Result<Loaded> {
        let options = &order.options;
        options.validate()?;
        let path = &options.model_path;
        check_model_file(path)?;
        fault::check("check_file")?;

        let reports = order.reports.clone();
        let abort = order.abort.clone();
        let n_gpu_layers = options.n_gpu_layers.unwrap_or(u32::MAX);
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(n_gpu_layers)
            .with_progress_callback(move |fraction| {
                let _ = reports.send(LoadReport::Progress(fraction));
                !abort.load(Ordering::SeqCst)
            });
        let model = LlamaModel::load_from_file(backend, path, &params);
        if order.abort.load(Ordering::SeqCst) || shared.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::Cancelled(format!(
                "loading {} was aborted by the progress callback or by destroy",
                path.display()
            )));
        }
        let model = Box::new(model.map_err(|e| {
            Error::ModelLoadFailed(format!(
                "llama.cpp could not load {} ({e}); is it a complete GGUF model file? \
                 Set a log callback for llama.cpp's reason",
                path.display()
            ))
        })?);
        // After the model exists, so the failure path must free it.
        fault::check("load_model")?;

        let n_ctx_train = model.n_ctx_train();
        let n_ctx = options.n_ctx.min(n_ctx_train.max(1));
        let n_batch = options.n_batch.min(n_ctx);
        let n_threads = options.n_threads.unwrap_or_else(available_cpus);
        let mut ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(n_threads as i32)
            .with_n_threads_batch(n_threads as i32);
        if !install_abort_probe(&mut ctx_params, probe) {
            backend::log(
                LogLevel::Warn,
                "llama.cpp abort callback unavailable: cancel waits for the current prompt chunk",
            );
        }
        // SAFETY: the context borrows the boxed model, whose heap address never moves; the
        // struct's field order drops the context first.
        let model_ref: &'static LlamaModel = unsafe { &*(model.as_ref() as *const LlamaModel) };
        let ctx = model_ref.new_context(backend, ctx_params).map_err(|e| {
            Error::ModelLoadFailed(format!(
                "llama.cpp could not create a context of {n_ctx} tokens for {} ({e}); \
                 try a smaller n_ctx",
                path.display()
            ))
        })?;
        // After the context exists, so the failure path must free both, context first.
        fault::check("create_context")?;

        let architecture = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let format = ChatFormat::choose(&model, options.chat_template.as_deref(), &architecture);
        let description = Description {
            model_path: path.to_string_lossy().into_owned(),
            architecture,
            n_ctx,
            n_ctx_train,
            n_batch,
            n_vocab: model.n_vocab().max(0) as u32,
            n_params: model.n_params(),
            n_threads,
            n_gpu_layers: options.n_gpu_layers.map_or(-1, |n| n as i32),
            chat_template: format.as_ref().map(|f| f.text.clone()).unwrap_or_default(),
            chat_template_source: format.as_ref().map_or("none", |f| f.source),
        };
        *shared.description.lock().unwrap_or_else(|p| p.into_inner()) = description.clone();
        Ok(Loaded {
            ctx,
            model,
            format,
            cached: Vec::new(),
            batch: LlamaBatch::new(n_batch as usize, 1),
            n_ctx,
            n_batch,
            description,
        })
    }

    fn forget_cache(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// Formats and tokenizes a request exactly as generation will.
    fn tokenize(&self, request: &Request) -> Result<Vec<LlamaToken>> {
        request.validate()?;
        let text = match &request.prompt {
            Prompt::Raw(text) => text.clone(),
            Prompt::Chat(messages) => {
                let format = self.format.as_ref().ok_or_else(|| {
                    Error::invalid(format!(
                        "the model ({}) has no chat template llama.cpp can apply; set \
                         chat_template to a built-in name such as \"chatml\", or use raw_prompt",
                        self.description.architecture
                    ))
                })?;
                format.apply(&self.model, messages)?
            }
        };
        // BOS is added as the vocabulary says, and special tokens in the text are parsed,
        // as llama.cpp's server does for both chat and raw prompts.
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        if tokens.is_empty() {
            return Err(Error::invalid("the prompt has no tokens"));
        }
        Ok(tokens)
    }

    /// Runs one submission to its end, sending its events. Never panics past here.
    fn serve(&mut self, submission: Submission, probe: &AbortProbe, shared: &WorkerShared) {
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
    ) -> std::result::Result<Usage, (Error, Usage)> {
        let request = &submission.request;
        let seed = request.sampling.seed.unwrap_or_else(random_seed);
        *seed_out = seed;
        let mut usage = Usage::none(seed);
        let fail = |error: Error, usage: &Usage| Err((error, usage.clone()));
        #[cfg(feature = "fault-injection")]
        if let Prompt::Raw(text) = &request.prompt {
            if text == super::PANIC_PROMPT {
                panic!("fault injection: panic requested by the prompt");
            }
        }

        let tokens = match self.tokenize(request) {
            Ok(tokens) => tokens,
            Err(error) => return fail(error, &usage),
        };
        usage.prompt_tokens = tokens.len() as u32;
        if tokens.len() > self.n_ctx as usize {
            let error = Error::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx: self.n_ctx,
            };
            return fail(error, &usage);
        }

        // Reuse the longest prefix already in the KV cache; at least one token is evaluated
        // so there are logits to sample from.
        let mut reuse = common_prefix(&self.cached, &tokens).min(tokens.len() - 1);
        if reuse < self.cached.len() {
            let removed = self
                .ctx
                .kv_cache_seq_rm(0, Some(reuse as u32), None)
                .is_ok();
            if removed {
                self.cached.truncate(reuse);
            } else {
                self.forget_cache();
                reuse = 0;
            }
        }
        usage.cached_prompt_tokens = reuse as u32;

        let prompt_start = Instant::now();
        let mut logits_index = 0;
        for chunk in tokens[reuse..].chunks(self.n_batch as usize) {
            if submission.cancel.is_cancelled(board) {
                return fail(Error::cancelled(), &usage);
            }
            let is_last_chunk = self.cached.len() + chunk.len() == tokens.len();
            if let Err(error) = self.decode(chunk, is_last_chunk, submission, board) {
                return fail(error, &usage);
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
            if request.max_tokens.is_some_and(|max| generated >= max)
                || self.cached.len() >= self.n_ctx as usize
            {
                break FinishReason::Length;
            }
            if let Err(error) = decode_into(
                &mut self.ctx,
                &mut self.batch,
                &mut self.cached,
                &[token],
                true,
            ) {
                return fail(decode_error(error, submission, board), &usage);
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

    /// Evaluates `tokens` at the next positions of sequence 0.
    fn decode(
        &mut self,
        tokens: &[LlamaToken],
        logits_for_last: bool,
        submission: &Submission,
        board: &CancelBoard,
    ) -> Result<()> {
        decode_into(
            &mut self.ctx,
            &mut self.batch,
            &mut self.cached,
            tokens,
            logits_for_last,
        )
        .map_err(|error| decode_error(error, submission, board))
    }
}

/// Evaluates `tokens` at the next positions of sequence 0 and records them in `cached`.
/// A free function so the caller can keep the model's vocabulary borrowed meanwhile.
fn decode_into(
    ctx: &mut LlamaContext<'static>,
    batch: &mut LlamaBatch<'static>,
    cached: &mut Vec<LlamaToken>,
    tokens: &[LlamaToken],
    logits_for_last: bool,
) -> std::result::Result<(), String> {
    batch.clear();
    let start = cached.len();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        batch
            .add(
                *token,
                (start + i) as i32,
                &[0],
                logits_for_last && i == last,
            )
            .map_err(|e| format!("batch add: {e}"))?;
    }
    match ctx.decode(batch) {
        Ok(()) => {
            cached.extend_from_slice(tokens);
            Ok(())
        }
        Err(error) => {
            // Part of the batch may be in the cache now; we no longer know exactly what.
            ctx.clear_kv_cache();
            cached.clear();
            Err(format!("llama_decode failed: {error}"))
        }
    }
}

fn decode_error(message: String, submission: &Submission, board: &CancelBoard) -> Error {
    if submission.cancel.is_cancelled(board) {
        Error::cancelled()
    } else {
        Error::Internal(message)
    }
}

const PENALTY_LAST_N: i32 = 64;

fn build_sampler(request: &Request, seed: u32, n_vocab: i32) -> LlamaSampler {
    let s = &request.sampling;
    let mut chain = Vec::new();
    if s.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            PENALTY_LAST_N,
            s.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if s.temperature == 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(s.top_k));
        }
        if s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        if s.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(s.min_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(seed));
    }
    LlamaSampler::chain_simple(chain)
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A seed for requests that asked for a random one (never RIGLLAMA_SEED_RANDOM itself).
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let seed = hasher.finish() as u32;
    if seed == u32::MAX {
        0
    } else {
        seed
    }
}

/// Gives a clear reason for the common ways a path is wrong before llama.cpp sees it.
fn check_model_file(path: &std::path::Path) -> Result<()> {
    use std::io::Read;
    let fail = |why: String| Err(Error::ModelLoadFailed(why));
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!("model file not found: {}", path.display()))
        }
        Err(e) => return fail(format!("cannot read model file {}: {e}", path.display())),
    };
    if meta.is_dir() {
        return fail(format!(
            "model path is a directory, not a .gguf file: {}",
            path.display()
        ));
    }
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => fail(format!(
            "model file is too short to be GGUF ({} bytes): {}",
            meta.len(),
            path.display()
        )),
        Err(e) => fail(format!("cannot read model file {}: {e}", path.display())),
        Ok(()) if &magic != b"GGUF" => fail(format!(
            "not a GGUF file (bad magic {:?}): {}",
            String::from_utf8_lossy(&magic),
            path.display()
        )),
        // Magic is right: now the whole header, metadata and tensor table, with bounds checks,
        // because llama.cpp aborts the process on some malformed files.
        Ok(()) => super::gguf_check::check_gguf_file(path)
            .map(|_| ())
            .map_err(|why| {
                Error::ModelLoadFailed(format!("malformed GGUF file {}: {why}", path.display()))
            }),
    }
}
