//! The panic boundary, status codes and the per-thread last error.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::engine::Error;

/// The result of every fallible function: one of the `RIGLLAMA_STATUS_*` values.
/// Numbers never change and are never reused.
pub type rigllama_status = i32;

/// Success.
pub const RIGLLAMA_STATUS_OK: rigllama_status = 0;
/// A required pointer was NULL.
pub const RIGLLAMA_STATUS_NULL_ARGUMENT: rigllama_status = 1;
/// An out-of-range value, invalid UTF-8, bad JSON or a bad `struct_size`.
pub const RIGLLAMA_STATUS_INVALID_ARGUMENT: rigllama_status = 2;
/// The model file is missing, unreadable, corrupt or unsupported.
pub const RIGLLAMA_STATUS_MODEL_LOAD_FAILED: rigllama_status = 3;
/// The prompt does not fit the context window.
pub const RIGLLAMA_STATUS_CONTEXT_OVERFLOW: rigllama_status = 4;
/// `rigllama_engine_cancel`, destroy, or an aborted load stopped it.
pub const RIGLLAMA_STATUS_CANCELLED: rigllama_status = 5;
/// The queue is full, or the call would deadlock (a blocking call from inside a callback of
/// the same engine).
pub const RIGLLAMA_STATUS_BUSY: rigllama_status = 6;
/// The engine's worker is gone.
pub const RIGLLAMA_STATUS_SHUT_DOWN: rigllama_status = 7;
/// A bug: a panic was caught at the boundary.
pub const RIGLLAMA_STATUS_INTERNAL: rigllama_status = 8;

impl From<&Error> for rigllama_status {
    fn from(error: &Error) -> Self {
        match error {
            Error::InvalidArgument(_) => RIGLLAMA_STATUS_INVALID_ARGUMENT,
            Error::ModelLoadFailed(_) => RIGLLAMA_STATUS_MODEL_LOAD_FAILED,
            Error::ContextOverflow { .. } => RIGLLAMA_STATUS_CONTEXT_OVERFLOW,
            Error::Cancelled(_) => RIGLLAMA_STATUS_CANCELLED,
            Error::Busy(_) => RIGLLAMA_STATUS_BUSY,
            Error::ShutDown => RIGLLAMA_STATUS_SHUT_DOWN,
            Error::Internal(_) => RIGLLAMA_STATUS_INTERNAL,
        }
    }
}

/// An error as the boundary reports it: a status and the message for `rigllama_last_error`.
pub(crate) struct Failure {
    status: rigllama_status,
    message: String,
}

impl Failure {
    pub(crate) fn null(what: &str) -> Self {
        Failure {
            status: RIGLLAMA_STATUS_NULL_ARGUMENT,
            message: format!("{what} is NULL"),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            status: (&error).into(),
            message: error.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // try_with: a thread being torn down has no last error to keep.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
}

/// Runs the body of an exported function: catches panics (INTERNAL), maps errors to a
/// status and records the thread's last error, clearing it on success.
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), Failure>) -> rigllama_status {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Failure {
            status: RIGLLAMA_STATUS_INTERNAL,
            message: format!("internal error (a bug in rigllama): panic: {what}"),
        })
    });
    match outcome {
        Ok(()) => {
            set_last_error("");
            RIGLLAMA_STATUS_OK
        }
        Err(failure) => {
            set_last_error(&failure.message);
            failure.status
        }
    }
}

/// For functions that return nothing: a panic is swallowed rather than crossing into C.
pub(crate) fn boundary_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// `ptr` as a reference, or NULL_ARGUMENT naming `what`.
pub(crate) unsafe fn non_null<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Copies a NUL-terminated UTF-8 string; NULL gives NULL_ARGUMENT, bad UTF-8 INVALID_ARGUMENT.
pub(crate) unsafe fn required_str(ptr: *const c_char, what: &str) -> Result<String, Failure> {
    unsafe { optional_str(ptr, what) }?.ok_or_else(|| Failure::null(what))
}

/// Like [`required_str`], with NULL meaning "not given".
pub(crate) unsafe fn optional_str(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<String>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Some(text.to_owned())),
        Err(e) => Err(Error::invalid(format!(
            "{what} is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
        .into()),
    }
}

/// A static description of `status`.
#[no_mangle]
pub extern "C" fn rigllama_status_str(status: rigllama_status) -> *const c_char {
    let text: &'static CStr = match status {
        RIGLLAMA_STATUS_OK => c"ok",
        RIGLLAMA_STATUS_NULL_ARGUMENT => c"a required pointer was NULL",
        RIGLLAMA_STATUS_INVALID_ARGUMENT => c"invalid argument",
        RIGLLAMA_STATUS_MODEL_LOAD_FAILED => c"the model could not be loaded",
        RIGLLAMA_STATUS_CONTEXT_OVERFLOW => c"the prompt does not fit the context window",
        RIGLLAMA_STATUS_CANCELLED => c"cancelled",
        RIGLLAMA_STATUS_BUSY => c"busy",
        RIGLLAMA_STATUS_SHUT_DOWN => c"the engine is shut down",
        RIGLLAMA_STATUS_INTERNAL => c"internal error (a bug in rigllama)",
        _ => c"unknown status",
    };
    text.as_ptr()
}

/// The message of the last status-returning call on this thread: "" after success, else the
/// cause and the value. Valid until the next `rigllama_` call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn rigllama_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The library version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn rigllama_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
