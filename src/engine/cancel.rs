//! Cancellation: which requests are cancelled, and the probe llama.cpp calls between graph
//! nodes so a cancel lands inside a long prompt chunk rather than after it.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use llama_cpp_2::context::params::LlamaContextParams;

/// Shared by an engine's handle and its worker. Every request gets a sequence number when it
/// is submitted; `cancel_all_submitted` cancels every number handed out so far, so requests
/// submitted afterwards run normally.
#[derive(Debug, Default)]
pub struct CancelBoard {
    next_seq: AtomicU64,
    cancelled_below: AtomicU64,
}

impl CancelBoard {
    pub fn issue(&self) -> RequestCancel {
        RequestCancel {
            seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn cancel_all_submitted(&self) {
        let issued = self.next_seq.load(Ordering::SeqCst);
        self.cancelled_below.fetch_max(issued, Ordering::SeqCst);
    }

    /// Cancels everything, including requests that are still being submitted.
    pub fn cancel_forever(&self) {
        self.cancelled_below.store(u64::MAX, Ordering::SeqCst);
    }

    fn is_cancelled(&self, seq: u64, flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed) || seq < self.cancelled_below.load(Ordering::Relaxed)
    }
}

/// One request's ticket: its sequence number and its own cancel flag (for a single job, a
/// dropped stream, or a callback that asked to stop).
#[derive(Debug, Clone)]
pub struct RequestCancel {
    seq: u64,
    flag: Arc<AtomicBool>,
}

impl RequestCancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self, board: &CancelBoard) -> bool {
        board.is_cancelled(self.seq, &self.flag)
    }
}

/// What llama.cpp's abort callback looks at: the requests in the batch being decoded. It
/// aborts the decode only when every one of them is cancelled (the others still need it).
/// Lives in a `Box` owned by the worker for longer than any context that points to it.
#[derive(Debug)]
pub struct AbortProbe {
    board: Arc<CancelBoard>,
    watched: Mutex<Vec<RequestCancel>>,
}

impl AbortProbe {
    pub fn new(board: Arc<CancelBoard>) -> Box<Self> {
        Box::new(Self {
            board,
            watched: Mutex::new(Vec::new()),
        })
    }

    /// Points the probe at `requests` while `run` decodes their batch.
    pub fn watching<T>(&self, requests: Vec<RequestCancel>, run: impl FnOnce() -> T) -> T {
        *self.watched.lock().unwrap_or_else(|p| p.into_inner()) = requests;
        struct Unwatch<'a>(&'a Mutex<Vec<RequestCancel>>);
        impl Drop for Unwatch<'_> {
            fn drop(&mut self) {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
        }
        let _unwatch = Unwatch(&self.watched);
        run()
    }

    pub(crate) fn should_abort(&self) -> bool {
        let watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        !watched.is_empty() && watched.iter().all(|r| r.is_cancelled(&self.board))
    }
}

unsafe extern "C" fn abort_if_cancelled(data: *mut c_void) -> bool {
    // SAFETY: `data` is the worker's boxed AbortProbe, which outlives every context.
    let probe = unsafe { &*data.cast::<AbortProbe>() };
    probe.should_abort()
}

/// llama-cpp-2 0.1.160 has no setter for the context's abort callback and keeps the raw
/// context private, yet without it a cancel waits for a whole prompt chunk (~1.2 s for 512
/// tokens here). `LlamaContextParams` is a single-field wrapper of the raw struct; this
/// checks that once at run time and, only if it holds, sets the two raw fields.
/// Returns whether the probe was installed.
pub fn install_abort_probe(params: &mut LlamaContextParams, probe: &AbortProbe) -> bool {
    if !wrapper_is_transparent() {
        return false;
    }
    // SAFETY: sizes are equal (checked at compile time) and the field mapping was verified
    // by `wrapper_is_transparent`.
    let raw = unsafe {
        &mut *(params as *mut LlamaContextParams).cast::<llama_cpp_sys_2::llama_context_params>()
    };
    raw.abort_callback = Some(abort_if_cancelled);
    raw.abort_callback_data = (probe as *const AbortProbe).cast_mut().cast();
    true
}

const _: () = assert!(
    std::mem::size_of::<LlamaContextParams>()
        == std::mem::size_of::<llama_cpp_sys_2::llama_context_params>()
);

fn wrapper_is_transparent() -> bool {
    static CHECKED: OnceLock<bool> = OnceLock::new();
    *CHECKED.get_or_init(|| {
        let params = LlamaContextParams::default()
            .with_n_ctx(std::num::NonZeroU32::new(7717))
            .with_n_batch(3313)
            .with_n_threads(29);
        // SAFETY: same size; we only read plain integers to compare.
        let raw = unsafe {
            &*(&params as *const LlamaContextParams).cast::<llama_cpp_sys_2::llama_context_params>()
        };
        raw.n_ctx == 7717 && raw.n_batch == 3313 && raw.n_threads == 29
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_covers_requests_submitted_before_it_only() {
        let board = CancelBoard::default();
        let before = board.issue();
        board.cancel_all_submitted();
        let after = board.issue();
        assert!(before.is_cancelled(&board));
        assert!(!after.is_cancelled(&board));
        after.cancel();
        assert!(after.is_cancelled(&board));
    }

    #[test]
    fn probe_aborts_only_while_watching_a_cancelled_request() {
        let board = Arc::new(CancelBoard::default());
        let probe = AbortProbe::new(board.clone());
        let request = board.issue();
        assert!(!probe.should_abort());
        probe.watching(vec![request.clone()], || {
            assert!(!probe.should_abort());
            board.cancel_all_submitted();
            assert!(probe.should_abort());
        });
        assert!(!probe.should_abort());
    }

    #[test]
    fn context_params_wrapper_layout_is_checked() {
        assert!(wrapper_is_transparent());
        let board = Arc::new(CancelBoard::default());
        let probe = AbortProbe::new(board);
        let mut params = LlamaContextParams::default();
        assert!(install_abort_probe(&mut params, &probe));
    }
}
