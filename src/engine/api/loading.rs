//! The asking side of a load (create or reload): progress reports until exactly one outcome
//! (the orders and reports themselves are the worker's protocol).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::data::description::Description;
use crate::engine::data::options::ProgressFn;
use crate::engine::error::{Error, Result};
use crate::engine::worker::protocol::LoadReport;

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
