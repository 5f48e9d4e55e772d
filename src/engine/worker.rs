//! The worker thread: the only code that touches a llama.cpp model or context. It takes
//! commands in arrival order, never waits for a consumer, and survives a panic in a request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::backend::{self, LogLevel};
use super::cancel::{AbortProbe, CancelBoard, RequestCancel};
use super::error::{Error, Result};
use super::events::{Event, EventSender};
use super::fault;
use super::loading::{LoadOrder, LoadReport};
use super::model::LoadedModel;
use super::options::Description;
use super::request::Request;
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

impl WorkerShared {
    pub fn new() -> Self {
        WorkerShared {
            board: Arc::new(CancelBoard::default()),
            queued: AtomicUsize::new(0),
            description: Mutex::new(Description::default()),
            shutting_down: AtomicBool::new(false),
        }
    }
}

/// Loads the first model (its outcome goes to `order.reports`), then serves commands until
/// Shutdown, then fails whatever is still queued.
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
            Command::SaveSnapshot { request, reply } => {
                let _ = reply.send(guarded(|| loaded.save_snapshot(&request)));
            }
            Command::LoadSnapshot { bytes, reply } => {
                let _ = reply.send(guarded(|| loaded.load_snapshot(&bytes)));
            }
            Command::Embed { texts, reply } => {
                let _ = reply.send(guarded(|| loaded.embed(&texts)));
            }
            Command::Reload(order) => {
                // The new model is loaded while the old one still serves; only on success is
                // the old one dropped (assignment drops it after the new one exists).
                let outcome = guarded(|| load(&order, &probe, &shared)).map(|new| {
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
        Command::Shutdown => {}
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
