//! The worker thread: the only code that touches a llama.cpp model or context. It takes
//! commands in arrival order, never waits for a consumer, and survives a panic in a request.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::engine::cancel::AbortProbe;
use crate::engine::data::event::Event;
use crate::engine::data::usage::Usage;
use crate::engine::error::{Error, Result};
use crate::engine::fault;
use crate::engine::llama::backend::{self, LogLevel};
use crate::engine::worker::model::LoadedModel;
use crate::engine::worker::protocol::{
    panic_message, Command, LoadOrder, LoadReport, WorkerShared,
};
use crate::engine::worker::scheduler::Scheduler;

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
                Command::Tokenize { text, flags, reply } => {
                    let _ = reply.send(guarded(|| Ok(loaded.tokenize_with(&text, flags))));
                }
                Command::Detokenize {
                    tokens,
                    flags,
                    reply,
                } => {
                    let _ = reply.send(guarded(|| loaded.detokenize(&tokens, flags, "tokens")));
                }
                Command::Embed { texts, reply } => {
                    let _ = reply.send(guarded(|| loaded.embed(&texts)));
                }
                Command::Rerank {
                    query,
                    documents,
                    reply,
                } => {
                    let _ = reply.send(guarded(|| loaded.rerank(&query, &documents)));
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
                Command::ControlVector { change, reply } => {
                    let _ = reply.send(guarded(|| loaded.change_control_vector(change, &shared)));
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
                scheduler.step(&mut loaded, &probe, &shared.board, &|| {
                    shared.pause.is_requested() || shared.shutting_down.load(Ordering::SeqCst)
                })
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
        Command::Tokenize { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Detokenize { reply, .. } => {
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
        Command::Rerank { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::Reload(order) => {
            let _ = order.reports.send(LoadReport::Finished(Err(shut())));
        }
        Command::Lora { reply, .. } => {
            let _ = reply.send(Err(shut()));
        }
        Command::ControlVector { reply, .. } => {
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
