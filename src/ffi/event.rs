//! `rigllama_event`: one event of a polled job, and its `_init`.

use std::ffi::c_char;

use super::boundary::boundary;
use super::enums::rigllama_event_kind;
use super::status::rigllama_status;
use super::versioned::{frozen, init_struct, versioned_struct};

/// One event of a job. `text` and `message` are borrowed until the next poll or free of the
/// job. Events come in order: TEXT, REASONING and TOOL_CALL events as the reply has them,
/// then exactly one DONE or ERROR, which later polls return again.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rigllama_event {
    /// Set by `rigllama_event_init`.
    pub struct_size: u32,
    /// What happened.
    pub kind: rigllama_event_kind,
    /// ERROR: the reason (e.g. `RIGLLAMA_STATUS_CANCELLED`); otherwise `RIGLLAMA_STATUS_OK`.
    pub status: rigllama_status,
    /// TEXT: whole UTF-8 characters, NUL-terminated; otherwise "".
    pub text: *const c_char,
    /// Bytes in `text`.
    pub text_len: usize,
    /// ERROR: what went wrong; otherwise "".
    pub message: *const c_char,
}

versioned_struct!(output rigllama_event {
    v0_1_size: frozen(40, 24),
    v0_1_last: message,
    kind: rigllama_event_kind::None,
    status: rigllama_status::Ok,
    text: c"".as_ptr(),
    text_len: 0,
    message: c"".as_ptr(),
});

/// Prepares `event` to receive poll results (pass `sizeof *event`).
#[no_mangle]
pub unsafe extern "C" fn rigllama_event_init(
    event: *mut rigllama_event,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(event, struct_size) })
}
