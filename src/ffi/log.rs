//! Routing log lines to the host's callback.

use std::ffi::{c_char, c_void, CString};

use super::boundary::boundary_void;
use crate::engine::LogLevel;

/// Receives log lines from llama.cpp and rigllama: `level` is 0 debug, 1 info, 2 warn,
/// 3 error; `message` is one line without a newline, valid only during the call. May be
/// called from any thread, including the engine's worker; must not call back into rigllama.
pub type rigllama_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: i32, message: *const c_char)>;

struct HostLogger {
    callback: unsafe extern "C" fn(*mut c_void, i32, *const c_char),
    user_data: *mut c_void,
}
// SAFETY: the host promises, by setting it, that its callback may run on any thread.
unsafe impl Send for HostLogger {}
unsafe impl Sync for HostLogger {}

impl HostLogger {
    fn log(&self, level: LogLevel, message: &str) {
        let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
        unsafe { (self.callback)(self.user_data, level as i32, message.as_ptr()) };
    }
}

/// Routes log lines at `min_level` and above to `on_log` (process-wide). Logging is off by
/// default, and NULL turns it off again (do so before unloading the code `on_log` lives in,
/// e.g. across a Unity domain reload): once this returns, the previous callback is never
/// called again. Nothing is ever printed to stdout.
#[no_mangle]
pub unsafe extern "C" fn rigllama_set_log_callback(
    on_log: rigllama_log_callback,
    user_data: *mut c_void,
    min_level: i32,
) {
    boundary_void(|| {
        let min_level = match min_level {
            i32::MIN..=0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        let sink = on_log.map(|callback| {
            let logger = HostLogger {
                callback,
                user_data,
            };
            std::sync::Arc::new(move |level: LogLevel, message: &str| logger.log(level, message))
                as crate::engine::LogFn
        });
        crate::engine::set_log_sink(sink, min_level);
    })
}
