//! `csrc/chat_shim.cpp`: rigllama's bridge to llama.cpp's `common` chat layer. Values cross
//! it as JSON text; every function catches C++ exceptions and returns NULL (or -1) plus a
//! message in `*err`, a string the caller frees with `rl_chat_string_free`.

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;

use crate::engine::error::{Error, Result};

#[repr(C)]
pub(crate) struct RawChat {
    _private: [u8; 0],
}

#[repr(C)]
pub(crate) struct RawParser {
    _private: [u8; 0],
}

extern "C" {
    pub(crate) fn rl_chat_string_free(s: *mut c_char);
    pub(crate) fn rl_chat_init(
        model: *const llama_cpp_sys_2::llama_model,
        template_override: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut RawChat;
    pub(crate) fn rl_chat_free(chat: *mut RawChat);
    pub(crate) fn rl_chat_info(chat: *const RawChat, err: *mut *mut c_char) -> *mut c_char;
    pub(crate) fn rl_chat_apply(
        chat: *const RawChat,
        inputs_json: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut c_char;
    pub(crate) fn rl_chat_parser_new(
        params_json: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut RawParser;
    pub(crate) fn rl_chat_parser_free(parser: *mut RawParser);
    pub(crate) fn rl_chat_parse(
        parser: *const RawParser,
        text: *const c_char,
        len: usize,
        is_partial: c_int,
        err: *mut *mut c_char,
    ) -> *mut c_char;
    pub(crate) fn rl_json_schema_to_grammar(
        schema_json: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut c_char;
    pub(crate) fn rl_grammar_check(
        gbnf: *const c_char,
        root: *const c_char,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// Takes a string the shim allocated.
pub(crate) fn take(ptr: *mut c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned();
    unsafe { rl_chat_string_free(ptr) };
    Some(text)
}

/// Runs a shim call that reports failure as NULL plus a message.
pub(crate) fn call<T>(
    what: &str,
    f: impl FnOnce(*mut *mut c_char) -> *mut T,
) -> Result<NonNull<T>> {
    let mut err = std::ptr::null_mut();
    let out = f(&mut err);
    let message = take(err);
    NonNull::new(out).ok_or_else(|| {
        Error::invalid(format!(
            "{what}: {}",
            message.unwrap_or_else(|| "unknown error".into())
        ))
    })
}

pub(crate) fn c_string(what: &str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::invalid(format!("{what} contains a NUL character")))
}
