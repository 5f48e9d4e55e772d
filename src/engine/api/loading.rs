//! The load protocol between the thread that asked for a model (create or reload) and the
//! worker that loads it: progress reports, an abort flag, and exactly one outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::{Error, Result};
use super::options::{Description, EngineOptions, ProgressFn};

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

/// On the asking thread: runs `progress` for each report until the outcome arrives. Once
/// `progress` says stop, the load is aborted and `progress` is not called again.
pub(crate) fn wait_for_load(
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
