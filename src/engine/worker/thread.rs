//! The worker thread: the only code that touches a llama.cpp model or context. It takes
//! commands in arrival order, never waits for a consumer, and survives a panic in a request.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::mpsc;

use super::backend::{self, LogLevel};
use super::cancel::{AbortProbe, CancelBoard, RequestCancel};
use super::error::{Error, Result};
use super::events::{Event, EventSender};
use super::fault;
use super::loading::{LoadOrder, LoadReport};
use super::lora::LoraChange;
use super::model::LoadedModel;
use super::options::{CheckpointUse, Description};
use super::request::Request;
use super::scheduler::Scheduler;
use super::usage::Usage;

/// A generation request on its way to the worker, with its cancel ticket and event channel.
pub(crate) struct Submission {
    pub request: Request,
    pub cancel: RequestCancel,
    pub events: EventSender,
}

pub(crate) enum Command {
    Generate(Submission),
    CountTokens {
        request: Request,
        reply: std::sync::mpsc::Sender<Result<u32>>,
    },
    ApplyTemplate {
        request: Request,
        reply: std::sync::mpsc::Sender<Result<String>>,
    },
    Reset {
        reply: std::sync::mpsc::Sender<Result<()>>,
    },
    SaveSnapshot {
        request: Request,
        reply: std::sync::mpsc::Sender<Result<Vec<u8>>>,
    },
    LoadSnapshot {
        bytes: Vec<u8>,
        reply: std::sync::mpsc::Sender<Result<usize>>,
    },
    Embed {
        texts: Vec<String>,
        reply: std::sync::mpsc::Sender<Result<Vec<Vec<f32>>>>,
    },
    Reload(LoadOrder),
    Lora {
        change: LoraChange,
        reply: std::sync::mpsc::Sender<Result<u32>>,
    },
    /// Wakes an idle worker (to see a pause).
    Nudge,
    Shutdown,
}

/// What the engine handle and the worker share.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub board: Arc<CancelBoard>,
    /// Generate commands sent but not yet taken by the worker (for BUSY on a full queue).
    pub queued: AtomicUsize,
    pub description: Mutex<Description>,
    /// The loaded model's checkpoint figures, kept current by its checkpoint store
    /// (`describe` reports them under "checkpoints").
    pub checkpoints: Arc<Mutex<CheckpointUse>>,
    /// Set once the engine is being destroyed: loads abort, queued work is cancelled.
    pub shutting_down: AtomicBool,
    pub pause: PauseGate,
}

/// `Engine::pause` and `resume`: the caller asks, the worker acknowledges between two steps.
#[derive(Debug, Default)]
pub(crate) struct PauseGate {
    state: Mutex<PauseState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PauseState {
    requested: bool,
    acknowledged: bool,
}

impl PauseGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_requested(&self) -> bool {
        self.lock().requested
    }

    /// Caller: asks for a pause. Then `wait_for_ack`.
    pub fn request(&self) {
        self.lock().requested = true;
        self.changed.notify_all();
    }

    /// Caller: waits until the worker holds, or `gone()` says it never will.
    pub fn wait_for_ack(&self, gone: impl Fn() -> bool) {
        let mut state = self.lock();
        while state.requested && !state.acknowledged && !gone() {
            state = self
                .changed
                .wait_timeout(state, std::time::Duration::from_millis(10))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn resume(&self) {
        let mut state = self.lock();
        state.requested = false;
        state.acknowledged = false;
        self.changed.notify_all();
    }

    /// Worker: it now holds between two steps.
    fn acknowledge(&self) {
        let mut state = self.lock();
        if state.requested && !state.acknowledged {
            state.acknowledged = true;
            self.changed.notify_all();
        }
    }

    /// Worker: waits up to `timeout` for a resume.
    fn wait_while_paused(&self, timeout: std::time::Duration) {
        let state = self.lock();
        if state.requested {
            let _ = self
                .changed
                .wait_timeout(state, timeout)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl WorkerShared {
    pub fn new() -> Self {
        WorkerShared {
            board: Arc::new(CancelBoard::default()),
            queued: AtomicUsize::new(0),
            description: Mutex::new(Description::default()),
            checkpoints: Arc::default(),
            shutting_down: AtomicBool::new(false),
            pause: PauseGate::default(),
        }
    }
}

/// Loads the first model (its outcome goes to `order.reports`), then serves commands until
/// Shutdown, then fails whatever is left.
///
/// Commands are taken in arrival order. Generate requests go to the scheduler, which runs up
/// to `n_seq` at once; count and embed run between steps; reset, snapshots and reload wait
/// until every request before them has ended, and the commands after them wait behind them.
pub(crate) fn run(
    shared: Arc<WorkerShared>,
    order: LoadOrder,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    // Declared first so it is dropped last: every context points at it.
    let probe = AbortProbe::new(shared.board.clone());
    let first = guarded(|| load(&order, &probe, &shared));
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

    let mut scheduler = Scheduler::default();
    let mut inbox: VecDeque<Command> = VecDeque::new();
    'serve: loop {
        if shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let paused = shared.pause.is_requested();
        if scheduler.is_idle() && inbox.is_empty() && !paused {
            match commands.blocking_recv() {
                Some(command) => inbox.push_back(command),
                None => break,
            }
        }
        while let Ok(command) = commands.try_recv() {
            inbox.push_back(command);
        }
        sweep_cancelled_inbox(&mut inbox, &shared);
        if shared.pause.is_requested() {
            // Between two steps: hold everything, but cancels and destroy still work.
            shared.pause.acknowledge();
            scheduler.sweep_cancelled(&shared.board);
            shared
                .pause
                .wait_while_paused(std::time::Duration::from_millis(20));
            continue;
        }
        while let Some(command) = inbox.pop_front() {
            match command {
                Command::Generate(submission) => {
                    shared.queued.fetch_sub(1, Ordering::SeqCst);
                    scheduler.push(submission);
                }
                Command::CountTokens { request, reply } => {
                    let counted = guarded(|| loaded.tokenize(&request).map(|t| t.len() as u32));
                    let _ = reply.send(counted);
                }
                Command::Embed { texts, reply } => {
                    let _ = reply.send(guarded(|| loaded.embed(&texts)));
                }
                Command::ApplyTemplate { request, reply } => {
                    let _ = reply.send(guarded(|| loaded.apply_template(&request)));
                }
                Command::Nudge => {}
                Command::Shutdown => break 'serve,
                barrier if !scheduler.is_idle() => {
                    // Runs once every request before it has ended.
                    inbox.push_front(barrier);
                    break;
                }
                Command::Reset { reply } => {
                    loaded.forget_cache();
                    let _ = reply.send(Ok(()));
                }
                Command::SaveSnapshot { request, reply } => {
                    let _ = reply.send(guarded(|| {
                        loaded.refuse_snapshot_with_adapters()?;
                        loaded.save_snapshot(&request)
                    }));
                }
                Command::LoadSnapshot { bytes, reply } => {
                    let _ = reply.send(guarded(|| {
                        loaded.refuse_snapshot_with_adapters()?;
                        loaded.load_snapshot(&bytes)
                    }));
                }
                Command::Lora { change, reply } => {
                    let _ = reply.send(guarded(|| loaded.change_lora(change, &shared)));
                }
                Command::Reload(order) => {
                    // The new model is loaded while the old one still serves; only on success
                    // is the old one dropped (assignment drops it after the new one exists).
                    let outcome = guarded(|| load(&order, &probe, &shared)).map(|new| {
                        loaded = new;
                        loaded.description.clone()
                    });
                    let _ = order.reports.send(LoadReport::Finished(outcome));
                }
            }
        }
        if !scheduler.is_idle() {
            let stepped = catch_unwind(AssertUnwindSafe(|| {
                scheduler.step(&mut loaded, &probe, &shared.board)
            }));
            if let Err(panic) = stepped {
                // The context may be mid-decode: fail what ran, start again from clean caches.
                let message = panic_message(&panic);
                backend::log(LogLevel::Error, &format!("worker panic: {message}"));
                scheduler.fail_all(|| Error::Internal(message.clone()));
                loaded.forget_cache();
            }
        }
    }
    // Whatever is still queued will never run: tell its waiters.
    scheduler.fail_all(|| Error::Cancelled("the engine was destroyed".into()));
    commands.close();
    while let Ok(command) = commands.try_recv() {
        inbox.push_back(command);
    }
    for command in inbox {
        fail_unrun(command);
    }
}

/// Generate requests still in the inbox (behind a barrier, or while paused) that were
/// cancelled end now rather than when they are reached.
fn sweep_cancelled_inbox(inbox: &mut VecDeque<Command>, shared: &WorkerShared) {
    inbox.retain(|command| match command {
        Command::Generate(submission) if submission.cancel.is_cancelled(&shared.board) => {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
            submission.events.send(Event::Failed {
                error: Error::cancelled(),
                usage: Usage::none(0),
            });
            false
        }
        _ => true,
    });
}

fn load(order: &LoadOrder, probe: &AbortProbe, shared: &WorkerShared) -> Result<LoadedModel> {
    fault::check("backend")?;
    let backend = backend::backend()?;
    LoadedModel::load(backend, order, probe, shared)
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
        Command::ApplyTemplate { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Reset { reply } => {
            let _ = reply.send(Err(shut()));
        }
        Command::SaveSnapshot { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::LoadSnapshot { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Embed { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Reload(order) => {
            let _ = order.reports.send(LoadReport::Finished(Err(shut())));
        }
        Command::Lora { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Nudge | Command::Shutdown => {}
    }
}

/// Runs `run`, turning a panic into [`Error::Internal`] (logged).
fn guarded<T>(run: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = panic_message(&panic);
        backend::log(LogLevel::Error, &format!("worker panic: {message}"));
        Err(Error::Internal(message))
    })
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}
