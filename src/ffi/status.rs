//! `rigllama_status`: what every fallible function returns, its static descriptions, and
//! the one mapping from the engine's errors to it.

use std::ffi::{c_char, CStr};

use crate::engine::Error;

/// The result of every fallible function. Numbers never change and are never reused.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_status {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL.
    NullArgument = 1,
    /// An out-of-range value, invalid UTF-8, bad JSON or a bad `struct_size`.
    InvalidArgument = 2,
    /// The model file is missing, unreadable, corrupt or unsupported.
    ModelLoadFailed = 3,
    /// The prompt does not fit the context window.
    ContextOverflow = 4,
    /// `rigllama_engine_cancel`, destroy, or an aborted load stopped it.
    Cancelled = 5,
    /// The queue is full, or the call would deadlock (a blocking call from inside a callback
    /// of the same engine).
    Busy = 6,
    /// The engine's worker is gone.
    ShutDown = 7,
    /// A bug: a panic was caught at the boundary.
    Internal = 8,
}

impl rigllama_status {
    /// The static text `rigllama_status_str` returns.
    pub(crate) fn description(self) -> &'static CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullArgument => c"a required pointer was NULL",
            Self::InvalidArgument => c"invalid argument",
            Self::ModelLoadFailed => c"the model could not be loaded",
            Self::ContextOverflow => c"the prompt does not fit the context window",
            Self::Cancelled => c"cancelled",
            Self::Busy => c"busy",
            Self::ShutDown => c"the engine is shut down",
            Self::Internal => c"internal error (a bug in rigllama)",
        }
    }
}

impl From<&Error> for rigllama_status {
    fn from(error: &Error) -> Self {
        match error {
            Error::InvalidArgument(_) => Self::InvalidArgument,
            Error::ModelLoadFailed(_) => Self::ModelLoadFailed,
            Error::ContextOverflow { .. } => Self::ContextOverflow,
            Error::Cancelled(_) => Self::Cancelled,
            Error::Busy(_) => Self::Busy,
            Error::ShutDown => Self::ShutDown,
            Error::Internal(_) => Self::Internal,
        }
    }
}

/// A static description of `status` (one of the `RIGLLAMA_STATUS_*` values); "unknown
/// status" for any other number.
#[no_mangle]
pub extern "C" fn rigllama_status_str(status: i32) -> *const c_char {
    rigllama_status::from_repr(status)
        .map_or(c"unknown status", rigllama_status::description)
        .as_ptr()
}
