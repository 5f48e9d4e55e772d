//! Process-wide llama.cpp state: the backend (initialised once, never freed), where its log
//! lines go, and the thread count that is safe on this machine.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Once, OnceLock, RwLock};

use llama_cpp_2::llama_backend::LlamaBackend;

use crate::engine::error::{Error, Result};

/// A log sink shared by the whole process.
pub type LogFn = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();

/// The llama.cpp backend. Initialising it twice in one process, or freeing it while another
/// engine lives, crashes llama.cpp, so it is made once and kept until the process exits.
/// In a `dynamic-backends` build ggml has no backend until its modules are loaded, so that
/// comes first (once per process; see `modules`).
pub fn backend() -> Result<&'static LlamaBackend> {
    install_log_hook();
    if let Some(line) = super::modules::ensure_loaded()? {
        log(LogLevel::Info, &line);
    }
    BACKEND
        .get_or_init(|| LlamaBackend::init().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::ModelLoadFailed(format!("llama.cpp backend init failed: {e}")))
}

/// The CPUs this process may run on (affinity mask and cgroup quota included). ggml's thread
/// pool spins, so more threads than this makes it collapse (100x slower here).
pub fn available_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

struct LogSink {
    sink: Option<LogFn>,
}

static LOG_SINK: RwLock<LogSink> = RwLock::new(LogSink { sink: None });
static LOG_MIN_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Debug as u8);
static LOG_HOOK: Once = Once::new();

/// Routes llama.cpp's and rigllama's log lines to `sink` (process-wide); `None` silences them.
pub fn set_log_sink(sink: Option<LogFn>, min_level: LogLevel) {
    install_log_hook();
    LOG_MIN_LEVEL.store(min_level as u8, Ordering::Relaxed);
    // A poisoned lock only means a sink panicked earlier; the slot itself is still sound.
    let mut slot = LOG_SINK.write().unwrap_or_else(|p| p.into_inner());
    slot.sink = sink;
}

/// Sends one of rigllama's own messages to the log sink, if one is set.
pub fn log(level: LogLevel, message: &str) {
    if (level as u8) < LOG_MIN_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    // The read lock is held across the call so that once `set_log_sink` returns, the old
    // sink is never called again (a host unloading its code, e.g. a Unity domain reload,
    // relies on that). Sinks must not call back into rigllama.
    let slot = LOG_SINK.read().unwrap_or_else(|p| p.into_inner());
    if let Some(sink) = &slot.sink {
        // A host callback must never unwind into llama.cpp's C++ frames.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(level, message)));
    }
}

/// llama.cpp prints to stderr until told otherwise, so the hook goes in before anything else
/// touches llama.cpp.
fn install_log_hook() {
    LOG_HOOK.call_once(|| unsafe {
        llama_cpp_sys_2::llama_log_set(Some(forward_llama_log), std::ptr::null_mut());
        llama_cpp_sys_2::ggml_log_set(Some(forward_llama_log), std::ptr::null_mut());
        install_abort_hook();
    });
}

/// What rigllama puts before the message of a `GGML_ABORT` it sees.
pub const ABORT_PREFIX: &str = "rigllama: llama.cpp is aborting the process: ";

/// ggml ends the process on an error it cannot report (`GGML_ABORT`, a failed
/// `GGML_ASSERT`; with RPC, a server lost mid-request). This cannot be survived or turned
/// into an error; the hook only makes the reason visible first: it goes to stderr and to the
/// log sink (at ERROR), then ggml calls `abort()`.
pub(crate) fn install_abort_hook() {
    unsafe {
        llama_cpp_sys_2::ggml_set_abort_callback(Some(on_ggml_abort));
    }
}

unsafe extern "C" fn on_ggml_abort(message: *const c_char) {
    let message = if message.is_null() {
        "(no message)".into()
    } else {
        unsafe { CStr::from_ptr(message) }.to_string_lossy()
    };
    let line = format!("{ABORT_PREFIX}{}", message.trim_end());
    {
        use std::io::Write;
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
        let _ = stderr.flush();
    }
    // try_read: the abort may come from inside a sink call on a thread that holds the lock
    // for writing (set_log_sink); waiting for it would hang instead of aborting.
    if let Ok(slot) = LOG_SINK.try_read() {
        if let Some(sink) = &slot.sink {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink(LogLevel::Error, &line)
            }));
        }
    }
}

/// mtmd (the projector library) logs through its own hook; it goes to the same sink.
#[cfg(feature = "mtmd")]
pub(crate) fn hook_mtmd_log() {
    static MTMD_HOOK: std::sync::Once = std::sync::Once::new();
    MTMD_HOOK.call_once(|| unsafe {
        llama_cpp_sys_2::mtmd_log_set(Some(forward_llama_log), std::ptr::null_mut());
        llama_cpp_sys_2::mtmd_helper_log_set(Some(forward_llama_log), std::ptr::null_mut());
    });
}

thread_local! {
    /// llama.cpp continues a line with level CONT; it keeps the level of the line it continues.
    static LAST_LEVEL: Cell<LogLevel> = const { Cell::new(LogLevel::Info) };
    /// Warnings and errors llama.cpp logs on this thread inside [`capture_problems`].
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
    /// llama.cpp's `layer N assigned to device NAME` lines inside [`capture_placement`].
    static PLACEMENT: std::cell::RefCell<Option<Vec<(u32, String)>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a model load) and returns the device llama.cpp placed each layer on, from its
/// debug log (the only place it says so), whatever the log sink's level.
pub(crate) fn capture_placement<T>(f: impl FnOnce() -> T) -> (T, Vec<(u32, String)>) {
    PLACEMENT.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let value = f();
    let lines = PLACEMENT
        .with(|c| c.borrow_mut().take())
        .unwrap_or_default();
    (value, lines)
}

/// "load_tensors: layer  12 assigned to device RPC0, is_swa = 1" -> (12, "RPC0").
fn parse_placement(line: &str) -> Option<(u32, String)> {
    let rest = line.split("layer").nth(1)?;
    let (layer, rest) = rest.split_once("assigned to device")?;
    let device = rest.split(',').next()?.trim();
    Some((layer.trim().parse().ok()?, device.to_owned()))
}

/// Runs `f` and returns what it returned with the warning and error lines llama.cpp logged
/// on this thread meanwhile: the only place some of its reasons ("tensor has incorrect
/// shape") are given.
pub(crate) fn capture_problems<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let value = f();
    let lines = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (value, lines)
}

unsafe extern "C" fn forward_llama_log(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const c_char,
    _user_data: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    let level = match level {
        llama_cpp_sys_2::GGML_LOG_LEVEL_DEBUG => LogLevel::Debug,
        llama_cpp_sys_2::GGML_LOG_LEVEL_WARN => LogLevel::Warn,
        llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR => LogLevel::Error,
        llama_cpp_sys_2::GGML_LOG_LEVEL_CONT => LAST_LEVEL.with(Cell::get),
        _ => LogLevel::Info,
    };
    LAST_LEVEL.with(|last| last.set(level));
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = text.trim_end_matches('\n');
    if !line.is_empty() {
        if line.contains("assigned to device") {
            PLACEMENT.with(|c| {
                if let Some(lines) = c.borrow_mut().as_mut() {
                    lines.extend(parse_placement(line));
                }
            });
        }
        if level >= LogLevel::Warn {
            CAPTURED.with(|c| {
                if let Some(lines) = c.borrow_mut().as_mut() {
                    lines.push(line.trim().to_owned());
                }
            });
        }
        log(level, line);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placement_lines() {
        assert_eq!(
            super::parse_placement("load_tensors: layer  12 assigned to device RPC0, is_swa = 1"),
            Some((12, "RPC0".to_owned()))
        );
        assert_eq!(
            super::parse_placement("load_tensors: offloaded 19/19 layers"),
            None
        );
    }
}
