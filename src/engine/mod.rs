//! The engine: a worker thread that owns a llama.cpp model and context, and the handle
//! callers use to reach it. Knows nothing of C or Rig.
//!
//! Every request is a submission returning a [`Job`], a receiver of [`Event`]s. Blocking
//! [`Engine::complete`] and [`Engine::stream`] drain a job on the caller's thread, so
//! callbacks run there, one at a time, and the worker never waits for them.

mod backend;
mod cancel;
mod error;
mod events;
pub mod fault;
pub mod gguf_check;
mod request;
mod template;
mod text;
mod worker;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use tokio::sync::mpsc;

pub use backend::{available_cpus, log, set_log_sink};
pub use error::{Error, Result};
pub use request::{
    Description, EngineOptions, FinishReason, LogFn, LogLevel, Message, ProgressFn, Prompt,
    Request, Role, Sampling, Usage, DEFAULT_MAX_TOKENS, DEFAULT_N_BATCH, DEFAULT_N_CTX,
};
pub use template::ARCHITECTURE_TEMPLATES;
pub use text::{StopMatcher, StopScan, Utf8Streamer};
pub use worker::Event;

use cancel::{CancelBoard, RequestCancel};
use worker::{Command, LoadOrder, LoadReport, Submission, WorkerShared};

/// Requests waiting for the worker beyond this make `submit` return [`Error::Busy`].
pub const QUEUE_LIMIT: usize = 1024;

/// With the `fault-injection` feature, a raw prompt equal to this panics inside the worker.
#[cfg(feature = "fault-injection")]
pub const PANIC_PROMPT: &str = "\u{1}rigllama-fault-injection: panic\u{1}";

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
        let shared = Arc::new(WorkerShared {
            board: Arc::new(CancelBoard::default()),
            queued: AtomicUsize::new(0),
            description: Mutex::new(Description::default()),
            shutting_down: AtomicBool::new(false),
        });
        let (reports, report_receiver) = std::sync::mpsc::channel();
        let abort = Arc::new(AtomicBool::new(false));
        let order = LoadOrder {
            options,
            reports,
            abort: abort.clone(),
        };
        let worker_shared = shared.clone();
        fault::check("spawn_worker")?;
        let worker = std::thread::Builder::new()
            .name("rigllama-worker".into())
            .spawn(move || worker::run(worker_shared, order, receiver))
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
        let (events, receiver) = events::channel();
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
        Ok(Job {
            events: receiver,
            cancel,
            shared: shared.clone(),
            engine_id: self.gate_id(),
            last: None,
        })
    }

    /// Generates the whole reply and returns it with its usage.
    pub fn complete(&self, request: Request) -> Result<(String, Usage)> {
        self.refuse_inside_own_callback("complete")?;
        let mut job = self.submit(request)?;
        let mut text = String::new();
        loop {
            match job.blocking_next() {
                Event::Text { text: piece, .. } => text.push_str(&piece),
                Event::Done(usage) => return Ok((text, usage)),
                Event::Failed { error, .. } => return Err(error),
            }
        }
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
        let (reports, receiver) = std::sync::mpsc::channel();
        let abort = Arc::new(AtomicBool::new(false));
        let order = LoadOrder {
            options,
            reports,
            abort: abort.clone(),
        };
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

    /// Facts about the loaded model.
    pub fn describe(&self) -> Description {
        self.inner
            .shared
            .description
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        self.gate.close(self);
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_for_load(
    reports: &std::sync::mpsc::Receiver<LoadReport>,
    abort: &AtomicBool,
    mut progress: Option<&mut ProgressFn<'_>>,
) -> Result<Description> {
    loop {
        match reports.recv() {
            Ok(LoadReport::Progress(fraction)) => {
                if let Some(progress) = progress.as_mut() {
                    if !abort.load(Ordering::SeqCst) && !progress(fraction) {
                        abort.store(true, Ordering::SeqCst);
                    }
                }
            }
            Ok(LoadReport::Finished(outcome)) => return outcome,
            Err(_) => return Err(Error::Internal("the worker ended during a load".into())),
        }
    }
}

/// A running request's events. Dropping it cancels the request.
#[derive(Debug)]
pub struct Job {
    events: events::EventReceiver,
    cancel: RequestCancel,
    shared: Arc<WorkerShared>,
    /// The engine's callback-gate id: polling inside its own callback never waits.
    engine_id: usize,
    /// The final event, kept so it can be returned again.
    last: Option<Event>,
}

/// Cancels one job from any thread without access to the job itself.
#[derive(Debug, Clone)]
pub struct JobCanceller(RequestCancel);

impl JobCanceller {
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

impl Job {
    /// Cancels this request only. Returns at once.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels this job from any thread.
    pub fn canceller(&self) -> JobCanceller {
        JobCanceller(self.cancel.clone())
    }

    /// The next event if one is ready, without blocking. After the final event, returns it
    /// again.
    pub fn try_next(&mut self) -> Option<Event> {
        self.next_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for the next event (`None`: nothing yet). Inside a callback of
    /// this job's own engine it never waits. After the final event, returns it again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(last) = &self.last {
            return Some(last.clone());
        }
        let timeout = if CallbackGate::inside(self.engine_id) > 0 {
            Duration::ZERO
        } else {
            timeout
        };
        let received = if timeout.is_zero() {
            self.events.try_recv()
        } else {
            self.events.recv_timeout(timeout)
        };
        match received {
            events::Received::Event(event) => Some(self.remember(event)),
            events::Received::Empty => None,
            events::Received::Closed => Some(self.remember(self.lost())),
        }
    }

    /// Waits for the next event, blocking this thread (in async code, prefer [`Job::next`]).
    pub fn blocking_next(&mut self) -> Event {
        if let Some(last) = &self.last {
            return last.clone();
        }
        let event = self.events.blocking_recv().unwrap_or_else(|| self.lost());
        self.remember(event)
    }

    /// Waits for the next event, asynchronously.
    pub async fn next(&mut self) -> Event {
        if let Some(last) = &self.last {
            return last.clone();
        }
        let event = self.events.recv().await.unwrap_or_else(|| self.lost());
        self.remember(event)
    }

    /// Whether the final event has been received.
    pub fn is_finished(&self) -> bool {
        self.last.is_some()
    }

    fn wait_for_end_usage(&mut self) -> Usage {
        loop {
            match self.blocking_next() {
                Event::Text { .. } => continue,
                Event::Done(usage) | Event::Failed { usage, .. } => return usage,
            }
        }
    }

    fn remember(&mut self, event: Event) -> Event {
        if !matches!(event, Event::Text { .. }) {
            self.last = Some(event.clone());
        }
        event
    }

    /// The worker dropped the request without a final event: it is gone.
    fn lost(&self) -> Event {
        let error = if self.shared.shutting_down.load(Ordering::SeqCst) {
            Error::Cancelled("the engine was destroyed".into())
        } else {
            Error::ShutDown
        };
        Event::Failed {
            error,
            usage: Usage::none(0),
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.last.is_none() {
            self.cancel.cancel();
        }
    }
}

thread_local! {
    /// The engines whose callbacks are running on this thread, innermost last.
    static IN_CALLBACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Lets `shutdown` wait until no callback of the engine is running on another thread, so
/// no callback runs after it returns, while a shutdown from inside a callback still works.
#[derive(Default)]
struct CallbackGate {
    state: Mutex<GateState>,
    idle: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    running: usize,
}

impl CallbackGate {
    /// Runs `callback` unless the engine is shut down (then `None`).
    fn call<T>(&self, id: usize, callback: impl FnOnce() -> T) -> Option<T> {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closed {
                return None;
            }
            state.running += 1;
        }
        IN_CALLBACK.with(|ids| ids.borrow_mut().push(id));
        struct Leave<'a>(&'a CallbackGate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                IN_CALLBACK.with(|ids| {
                    ids.borrow_mut().pop();
                });
                let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                state.running -= 1;
                self.0.idle.notify_all();
            }
        }
        let _leave = Leave(self);
        Some(callback())
    }

    fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed
    }

    /// How many callbacks of engine `id` this thread is inside.
    fn inside(id: usize) -> usize {
        IN_CALLBACK.with(|ids| ids.borrow().iter().filter(|&&x| x == id).count())
    }

    fn close(&self, engine: &EngineInner) {
        let own = Self::inside(engine as *const EngineInner as usize);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        while state.running > own {
            state = self.idle.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}
