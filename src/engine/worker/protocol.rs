//! What the callers' side and the worker thread exchange: commands and generation
//! submissions, the state they share (cancel board, queue count, description, pause gate),
//! and the load protocol (an order with an abort flag; progress reports, then exactly one
//! outcome).

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};

use crate::engine::cancel::{CancelBoard, RequestCancel};
use crate::engine::data::description::{CheckpointUse, Description};
use crate::engine::data::options::EngineOptions;
use crate::engine::data::request::Request;
use crate::engine::data::tokens::TokenFlags;
use crate::engine::error::Result;
use crate::engine::worker::event_channel::EventSender;
use crate::engine::worker::lora::LoraChange;

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
    Tokenize {
        text: String,
        flags: TokenFlags,
        reply: std::sync::mpsc::Sender<Result<Vec<i32>>>,
    },
    Detokenize {
        tokens: Vec<i32>,
        flags: TokenFlags,
        reply: std::sync::mpsc::Sender<Result<String>>,
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
    Rerank {
        query: String,
        documents: Vec<String>,
        reply: std::sync::mpsc::Sender<Result<Vec<f32>>>,
    },
    Reload(LoadOrder),
    Lora {
        change: LoraChange,
        reply: std::sync::mpsc::Sender<Result<u32>>,
    },
    ControlVector {
        change: ControlVectorChange,
        reply: std::sync::mpsc::Sender<Result<()>>,
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
    pub(super) fn acknowledge(&self) {
        let mut state = self.lock();
        if state.requested && !state.acknowledged {
            state.acknowledged = true;
            self.changed.notify_all();
        }
    }

    /// Worker: waits up to `timeout` for a resume.
    pub(super) fn wait_while_paused(&self, timeout: std::time::Duration) {
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

/// What a load tells the thread that asked for it: progress, then exactly one outcome.
// Sent a handful of times per load: the size of the final report does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LoadReport {
    Progress(f32),
    Finished(Result<Description>),
}

/// A load the worker is asked to do.
pub(crate) struct LoadOrder {
    pub options: EngineOptions,
    pub reports: std::sync::mpsc::Sender<LoadReport>,
    /// Set by the caller to abort the load (its progress callback said stop).
    pub abort: Arc<AtomicBool>,
}

impl LoadOrder {
    /// An order for `options` and the receiver its reports arrive on.
    pub fn new(options: EngineOptions) -> (Self, std::sync::mpsc::Receiver<LoadReport>) {
        let (reports, receiver) = std::sync::mpsc::channel();
        let order = LoadOrder {
            options,
            reports,
            abort: Arc::new(AtomicBool::new(false)),
        };
        (order, receiver)
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// A control-vector change (worker/control_vector.rs applies it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ControlVectorChange {
    /// Apply the vector at `path` times `strength` to layers `layer_start..=layer_end`
    /// (0, 0: every layer, as llama.cpp's default range).
    Set {
        path: std::path::PathBuf,
        strength: f32,
        layer_start: i32,
        layer_end: i32,
    },
    Clear,
}
