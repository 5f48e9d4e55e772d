//! [`Engine`]: the handle every caller holds. It sends commands to the worker and, for the
//! blocking calls, drains the request's job on the caller's thread, so callbacks run there,
//! one at a time, and the worker never waits for them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};

use tokio::sync::mpsc;

use crate::engine::api::callback_gate::CallbackGate;
use crate::engine::api::job::Job;
use crate::engine::api::loading::wait_for_load;
use crate::engine::data::description::Description;
use crate::engine::data::event::Event;
use crate::engine::data::message::AssistantMessage;
use crate::engine::data::options::{EngineOptions, ProgressFn};
use crate::engine::data::request::Request;
use crate::engine::data::tokens::TokenFlags;
use crate::engine::data::usage::{FinishReason, Usage};
use crate::engine::error::{Error, Result};
use crate::engine::fault;
use crate::engine::worker::event_channel;
use crate::engine::worker::lora::LoraChange;
use crate::engine::worker::protocol::{
    Command, ControlVectorChange, LoadOrder, Submission, WorkerShared,
};
use crate::engine::worker::thread;

/// The worker's stack: llama.cpp's grammar checks recurse once per rule of a chain, and the
/// grammar limits (`data/grammar_limits.rs`) are sized for this much. Only the pages used are
/// ever committed.
const WORKER_STACK_BYTES: usize = 64 << 20;

/// Requests waiting for the worker beyond this make `submit` return [`Error::Busy`].
pub const QUEUE_LIMIT: usize = 1024;

/// A handle to one engine. Clones share the engine; it shuts down when the last clone is
/// dropped or [`Engine::shutdown`] is called.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<WorkerShared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    worker_thread: ThreadId,
    gate: CallbackGate,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model_path", &self.describe().model_path)
            .finish()
    }
}

impl Engine {
    /// Loads the model on a new worker thread and returns once it is ready to serve.
    /// `progress` runs on this thread; returning `false` aborts the load ([`Error::Cancelled`]).
    pub fn create(options: EngineOptions, progress: Option<&mut ProgressFn<'_>>) -> Result<Engine> {
        options.validate()?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(WorkerShared::new());
        let (order, report_receiver) = LoadOrder::new(options);
        let abort = order.abort.clone();
        let worker_shared = shared.clone();
        fault::check("spawn_worker")?;
        let worker = std::thread::Builder::new()
            .name("rigllama-worker".into())
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || thread::run(worker_shared, order, receiver))
            .map_err(|e| Error::ModelLoadFailed(format!("cannot start the worker thread: {e}")))?;
        let worker_thread = worker.thread().id();
        match wait_for_load(&report_receiver, &abort, progress) {
            Ok(_) => Ok(Engine {
                inner: Arc::new(EngineInner {
                    commands,
                    shared,
                    worker: Mutex::new(Some(worker)),
                    worker_thread,
                    gate: CallbackGate::default(),
                }),
            }),
            Err(error) => {
                drop(commands);
                let _ = worker.join();
                Err(error)
            }
        }
    }

    /// Queues `request` and returns at once with a job that receives its events.
    pub fn submit(&self, request: Request) -> Result<Job> {
        request.validate()?;
        let shared = &self.inner.shared;
        if shared.queued.fetch_add(1, Ordering::SeqCst) >= QUEUE_LIMIT {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Busy(format!(
                "{QUEUE_LIMIT} requests are already waiting for this engine; retry later"
            )));
        }
        let cancel = shared.board.issue();
        let (events, receiver) = event_channel::channel();
        let submission = Submission {
            request,
            cancel: cancel.clone(),
            events,
        };
        if self
            .inner
            .commands
            .send(Command::Generate(submission))
            .is_err()
        {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(self.gone());
        }
        Ok(Job::new(receiver, cancel, shared.clone(), self.gate_id()))
    }

    /// Generates the whole reply and returns it with its usage.
    pub fn complete(&self, request: Request) -> Result<(String, Usage)> {
        self.refuse_inside_own_callback("complete")?;
        let mut job = self.submit(request)?;
        let mut text = String::new();
        loop {
            match job.blocking_next() {
                Event::Text { text: piece, .. } => text.push_str(&piece),
                Event::Reasoning { .. } | Event::ToolCall(_) | Event::Logprobs(_) => {}
                Event::Done(usage) => return Ok((text, usage)),
                Event::Failed { error, .. } => return Err(error),
            }
        }
    }

    /// Generates the whole reply, split into content, reasoning and tool calls.
    pub fn chat(&self, request: Request) -> Result<(AssistantMessage, Usage)> {
        self.refuse_inside_own_callback("chat")?;
        let mut job = self.submit(request)?;
        let mut message = AssistantMessage::default();
        loop {
            match job.blocking_next() {
                Event::Text { text, .. } => message.content.push_str(&text),
                Event::Reasoning { text, .. } => message.reasoning.push_str(&text),
                Event::ToolCall(call) => message.tool_calls.push(call),
                Event::Logprobs(logprobs) => message.logprobs.extend(logprobs),
                Event::Done(usage) => return Ok((message, usage)),
                Event::Failed { error, .. } => return Err(error),
            }
        }
    }

    /// The exact text the model would be given for `request` (template applied, tools
    /// rendered, the BOS token's text first when the tokenizer adds one), without running it.
    pub fn apply_template(&self, request: Request) -> Result<String> {
        request.validate()?;
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::ApplyTemplate { request, reply }, receiver)
    }

    /// Generates the reply, calling `on_text` on this thread with each new piece (whole
    /// UTF-8 characters). Returning `false` stops generation: the result is Ok with
    /// [`FinishReason::Callback`], counting only the tokens delivered.
    pub fn stream(&self, request: Request, mut on_text: impl FnMut(&str) -> bool) -> Result<Usage> {
        self.refuse_inside_own_callback("stream")?;
        let mut job = self.submit(request)?;
        let gate = &self.inner.gate;
        let gate_id = self.gate_id();
        let mut delivered = 0u32;
        loop {
            match job.blocking_next() {
                Event::Text { text, tokens } => {
                    let Some(keep_going) = gate.call(gate_id, || on_text(&text)) else {
                        job.cancel();
                        return Err(destroyed_during_stream());
                    };
                    if gate.is_closed() {
                        // The callback destroyed the engine.
                        job.cancel();
                        return Err(destroyed_during_stream());
                    }
                    delivered += tokens;
                    if !keep_going {
                        job.cancel();
                        let mut usage = job.wait_for_end_usage();
                        usage.finish_reason = FinishReason::Callback;
                        usage.completion_tokens = delivered;
                        return Ok(usage);
                    }
                }
                // The callback gets the content only.
                Event::Reasoning { .. } | Event::ToolCall(_) | Event::Logprobs(_) => {}
                Event::Done(usage) => return Ok(usage),
                Event::Failed { error, .. } => return Err(error),
            }
        }
    }

    /// Swaps the model in place. Runs after requests submitted before it; the new model is
    /// loaded before the old one is released, and if it fails the old one keeps serving.
    pub fn reload(
        &self,
        options: EngineOptions,
        progress: Option<&mut ProgressFn<'_>>,
    ) -> Result<Description> {
        self.refuse_inside_own_callback("reload")?;
        options.validate()?;
        let (order, receiver) = LoadOrder::new(options);
        let abort = order.abort.clone();
        self.inner
            .commands
            .send(Command::Reload(order))
            .map_err(|_| self.gone())?;
        wait_for_load(&receiver, &abort, progress)
    }

    /// Cancels every request submitted before this call; later ones run normally.
    /// Returns at once; safe from any thread, including inside a callback.
    pub fn cancel(&self) {
        self.inner.shared.board.cancel_all_submitted();
    }

    /// Stops the worker between two decode steps and returns once it holds (within one step):
    /// every request keeps its state, requests submitted meanwhile wait, and
    /// [`Engine::cancel`], job cancels and [`Engine::shutdown`] still work. For moments that
    /// need every core (a level load, a cut-scene). Idempotent.
    pub fn pause(&self) -> Result<()> {
        let shared = &self.inner.shared;
        shared.pause.request();
        // An idle worker is blocked on its queue: wake it to see the pause.
        self.inner
            .commands
            .send(Command::Nudge)
            .map_err(|_| self.gone())?;
        shared.pause.wait_for_ack(|| {
            shared.shutting_down.load(Ordering::SeqCst) || self.inner.commands.is_closed()
        });
        Ok(())
    }

    /// Lets a paused worker go on where it stopped. Idempotent.
    pub fn resume(&self) {
        self.inner.shared.pause.resume();
    }

    /// Empties the KV cache (after the requests submitted before it).
    pub fn reset(&self) -> Result<()> {
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::Reset { reply }, receiver)
    }

    /// Formats and tokenizes `request` exactly as generation would, without running it.
    pub fn count_tokens(&self, request: Request) -> Result<u32> {
        request.validate()?;
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::CountTokens { request, reply }, receiver)
    }

    /// `text` as the model's token ids (see [`TokenFlags`]). Runs between decode steps.
    pub fn tokenize(&self, text: &str, flags: TokenFlags) -> Result<Vec<i32>> {
        if text.contains('\0') {
            return Err(Error::invalid("the text contains a NUL character"));
        }
        let (reply, receiver) = std::sync::mpsc::channel();
        let text = text.to_owned();
        self.send_and_wait(Command::Tokenize { text, flags, reply }, receiver)
    }

    /// Token ids back to text (see [`TokenFlags`]); an id outside the vocabulary is refused
    /// naming its index and value. Bytes that are not whole UTF-8 characters become U+FFFD.
    pub fn detokenize(&self, tokens: &[i32], flags: TokenFlags) -> Result<String> {
        let (reply, receiver) = std::sync::mpsc::channel();
        let tokens = tokens.to_vec();
        self.send_and_wait(
            Command::Detokenize {
                tokens,
                flags,
                reply,
            },
            receiver,
        )
    }

    /// The KV cache of the longest cached prefix of `request`'s formatted prompt, with its
    /// tokens, as a self-checking blob (model fingerprint, KV layout, checksum) for
    /// [`Engine::load_snapshot`] — in this process or another. The cache is cut back to that
    /// prefix. Keep the conversation's messages yourself: the snapshot only saves their
    /// evaluation.
    pub fn save_snapshot(&self, request: Request) -> Result<Vec<u8>> {
        request.validate()?;
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::SaveSnapshot { request, reply }, receiver)
    }

    /// Checks a snapshot whole before llama.cpp sees it, then makes it the engine's KV cache:
    /// the next request whose prompt starts with its tokens evaluates only what follows.
    /// A damaged snapshot, or one from another model or KV layout, is refused with
    /// [`Error::InvalidArgument`] naming what differs. Returns the tokens restored.
    pub fn load_snapshot(&self, snapshot: &[u8]) -> Result<usize> {
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(
            Command::LoadSnapshot {
                bytes: snapshot.to_vec(),
                reply,
            },
            receiver,
        )
    }

    /// The pooled, L2-normalised embedding of each text (each at most
    /// [`MAX_EMBED_TOKENS`](crate::MAX_EMBED_TOKENS) tokens), in order, computed in a separate
    /// context: the chat KV cache is untouched.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<String> = texts.iter().map(|t| t.as_ref().to_owned()).collect();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::Embed { texts, reply }, receiver)
    }

    /// How well each document answers `query`, in order: one score per document (higher is
    /// better; unnormalised, as llama-server returns them), from a reranker model (pooling type
    /// rank). Query and document are joined as llama-server joins them for the model. Runs in
    /// the embedding context: the chat KV cache is untouched. A model that is not a reranker,
    /// an empty query or document, or a pair longer than
    /// [`MAX_EMBED_TOKENS`](crate::MAX_EMBED_TOKENS) is refused.
    pub fn rerank<S: AsRef<str>>(&self, query: &str, documents: &[S]) -> Result<Vec<f32>> {
        let documents: Vec<String> = documents.iter().map(|d| d.as_ref().to_owned()).collect();
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(
            Command::Rerank {
                query: query.to_owned(),
                documents,
                reply,
            },
            receiver,
        )
    }

    /// Loads the LoRA adapter at `path` (a GGUF made for this model) and applies it at
    /// `scale` (0 = no effect, 1 = as trained; within ±[`MAX_LORA_SCALE`](crate::MAX_LORA_SCALE)),
    /// beside any others. Runs after the requests submitted before it and empties the KV
    /// cache. Returns the adapter's id. A reload drops every adapter.
    pub fn add_lora(&self, path: impl Into<std::path::PathBuf>, scale: f32) -> Result<u32> {
        self.change_lora(LoraChange::Add {
            path: path.into(),
            scale,
        })
    }

    /// Sets the scale of adapter `id` (empties the KV cache).
    pub fn set_lora_scale(&self, id: u32, scale: f32) -> Result<()> {
        self.change_lora(LoraChange::SetScale { id, scale })
            .map(|_| ())
    }

    /// Removes adapter `id` and frees it (empties the KV cache).
    pub fn remove_lora(&self, id: u32) -> Result<()> {
        self.change_lora(LoraChange::Remove { id }).map(|_| ())
    }

    /// Adds the control vector at `path` (a GGUF of `direction.N` tensors made for this model,
    /// as llama.cpp's `cvector-generator` writes) times `strength` (finite, within
    /// ±[`MAX_LORA_SCALE`](crate::MAX_LORA_SCALE); 0 = no effect) to the output of layers
    /// `layer_start..=layer_end` (0, 0 = every layer), replacing any vector set before. Runs
    /// after the requests submitted before it and empties the KV cache. A file that is not a
    /// control vector, or one for another model, is refused with the reason; the engine keeps
    /// serving. A reload drops it; snapshots are refused while it is set.
    pub fn set_control_vector(
        &self,
        path: impl Into<std::path::PathBuf>,
        strength: f32,
        layer_start: i32,
        layer_end: i32,
    ) -> Result<()> {
        self.change_control_vector(ControlVectorChange::Set {
            path: path.into(),
            strength,
            layer_start,
            layer_end,
        })
    }

    /// Removes the control vector (nothing happens when none is set). Empties the KV cache.
    pub fn clear_control_vector(&self) -> Result<()> {
        self.change_control_vector(ControlVectorChange::Clear)
    }

    fn change_control_vector(&self, change: ControlVectorChange) -> Result<()> {
        self.refuse_inside_own_callback("a control vector change")?;
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::ControlVector { change, reply }, receiver)
    }

    fn change_lora(&self, change: LoraChange) -> Result<u32> {
        // It waits for the running requests, one of which may be waiting for this callback.
        self.refuse_inside_own_callback("a LoRA change")?;
        let (reply, receiver) = std::sync::mpsc::channel();
        self.send_and_wait(Command::Lora { change, reply }, receiver)
    }

    /// Facts about the loaded model.
    pub fn describe(&self) -> Description {
        let shared = &self.inner.shared;
        let mut description = shared
            .description
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        description.checkpoints = *shared.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        description
    }

    /// Cancels running and queued requests, stops and joins the worker. After it returns no
    /// callback of this engine runs. Idempotent; allowed inside this engine's own callback.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn send_and_wait<T>(
        &self,
        command: Command,
        receiver: std::sync::mpsc::Receiver<Result<T>>,
    ) -> Result<T> {
        self.inner.commands.send(command).map_err(|_| self.gone())?;
        receiver.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    fn gone(&self) -> Error {
        if self.inner.shared.shutting_down.load(Ordering::SeqCst) {
            Error::Cancelled("the engine was destroyed".into())
        } else {
            Error::ShutDown
        }
    }

    fn gate_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// A blocking call from inside one of this engine's own callbacks would wait for itself.
    fn refuse_inside_own_callback(&self, what: &str) -> Result<()> {
        if CallbackGate::inside(self.gate_id()) > 0 {
            Err(Error::Busy(format!(
                "{what} was called from inside a callback of the same engine; it would \
                 deadlock. Call it after the callback returns"
            )))
        } else {
            Ok(())
        }
    }
}

fn destroyed_during_stream() -> Error {
    Error::Cancelled("the engine was destroyed during the stream".into())
}

impl EngineInner {
    fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.shared.board.cancel_forever();
        let _ = self.commands.send(Command::Shutdown);
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = worker {
            // A log callback runs on the worker; it cannot join itself, so it detaches.
            if std::thread::current().id() != self.worker_thread {
                let _ = worker.join();
            }
        }
        // The gate id of an engine is the address of its shared inner part.
        self.gate.close(self as *const EngineInner as usize);
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
