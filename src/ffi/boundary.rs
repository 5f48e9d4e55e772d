//! The panic boundary and the per-thread last error, and the checks every entry point makes
//! on the caller's pointers before the Rust API sees them.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use super::status::rigllama_status;
use crate::engine::Error;

/// An error as the boundary reports it: a status and the message for `rigllama_last_error`.
pub(crate) struct Failure {
    status: rigllama_status,
    message: String,
}

impl Failure {
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn null(what: &str) -> Self {
        Failure {
            status: rigllama_status::NullArgument,
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
            status: rigllama_status::Internal,
            message: format!("internal error (a bug in rigllama): panic: {what}"),
        })
    });
    match outcome {
        Ok(()) => {
            set_last_error("");
            rigllama_status::Ok
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

/// The handle `ptr` (an engine or a job) as a reference, or NULL_ARGUMENT naming `what`. Any
/// other pointer is, by the C contract, one that create or submit returned and that is not
/// freed yet.
pub(crate) unsafe fn handle<'a, T>(ptr: *mut T, what: &str) -> Result<&'a T, Failure> {
    unsafe { ptr.cast_const().as_ref() }.ok_or_else(|| Failure::null(what))
}

/// The out-pointer `ptr`, where a result is written, or NULL_ARGUMENT naming `what`. It stays
/// a pointer, written with `write`: the caller's memory may be uninitialised (`char *text;`),
/// and a versioned struct may be smaller than `T`.
pub(crate) fn out_ptr<T>(ptr: *mut T, what: &str) -> Result<NonNull<T>, Failure> {
    NonNull::new(ptr).ok_or_else(|| Failure::null(what))
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

/// `n` items at `items` (NULL allowed when `n` is 0); at most 65,536, more is refused.
pub(crate) unsafe fn array<'a, T>(
    items: *const T,
    n: usize,
    what: &str,
) -> Result<&'a [T], Failure> {
    unsafe { array_of_at_most(items, n, 1 << 16, what) }
}

/// `n` items at `items` (NULL allowed when `n` is 0); more than `max` is refused.
pub(crate) unsafe fn array_of_at_most<'a, T>(
    items: *const T,
    n: usize,
    max: usize,
    what: &str,
) -> Result<&'a [T], Failure> {
    if n == 0 {
        return Ok(&[]);
    }
    if items.is_null() {
        return Err(Failure::null(&format!("{what} (its count is {n})")));
    }
    if n > max {
        return Err(Error::invalid(format!(
            "{what} has {n} entries, more than the {max} allowed"
        ))
        .into());
    }
    // SAFETY: the caller promises `n` readable items at `items`.
    Ok(unsafe { std::slice::from_raw_parts(items, n) })
}

/// The message of the last status-returning call on this thread: "" after success, else the
/// cause and the value. Valid until the next `rigllama_` call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn rigllama_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}
