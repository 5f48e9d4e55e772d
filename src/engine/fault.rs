//! Fault injection for tests (curl-torture style): with the `fault-injection` feature, a test
//! names one fallible step of create/reload and that step fails, so every error path is
//! exercised for leaks and for the engine's survival. Without the feature it costs nothing.

/// The fallible steps of loading a model, in order.
pub const LOAD_STEPS: &[&str] = &[
    "spawn_worker",
    "backend",
    "check_file",
    "load_model",
    "create_context",
];

#[cfg(feature = "fault-injection")]
mod active {
    use std::sync::Mutex;

    use crate::engine::error::{Error, Result};

    static FAIL_AT: Mutex<Option<&'static str>> = Mutex::new(None);

    /// Makes `step` fail from now on (`None`: nothing fails).
    pub fn fail_at(step: Option<&'static str>) {
        *FAIL_AT.lock().unwrap_or_else(|p| p.into_inner()) = step;
    }

    pub(crate) fn check(step: &'static str) -> Result<()> {
        if *FAIL_AT.lock().unwrap_or_else(|p| p.into_inner()) == Some(step) {
            Err(Error::ModelLoadFailed(format!("fault injected at {step}")))
        } else {
            Ok(())
        }
    }
}

/// With the `fault-injection` feature, a raw prompt equal to this panics inside the worker.
#[cfg(feature = "fault-injection")]
pub const PANIC_PROMPT: &str = "\u{1}rigllama-fault-injection: panic\u{1}";

#[cfg(feature = "fault-injection")]
pub use active::fail_at;

/// With the `fault-injection` feature, makes the image encoder pause 100 ms at each of its
/// cancel checks, so a test can cancel or destroy while an image is being encoded (the test
/// projector is otherwise done in milliseconds); `checks` tells the test the encoder has
/// started.
#[cfg(feature = "fault-injection")]
pub mod slow_encoder {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    static ON: AtomicBool = AtomicBool::new(false);
    static CHECKS: AtomicUsize = AtomicUsize::new(0);

    pub fn set(on: bool) {
        ON.store(on, Ordering::SeqCst);
        CHECKS.store(0, Ordering::SeqCst);
    }

    /// Cancel checks the encoder has made since `set`.
    pub fn checks() -> usize {
        CHECKS.load(Ordering::SeqCst)
    }

    #[cfg_attr(not(feature = "mtmd"), allow(dead_code))]
    pub(crate) fn pause() {
        CHECKS.fetch_add(1, Ordering::SeqCst);
        if ON.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use active::check;

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn check(_step: &'static str) -> crate::engine::error::Result<()> {
    Ok(())
}
