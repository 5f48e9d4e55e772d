//! The library's version.

use std::ffi::c_char;

/// The library version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn rigllama_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
