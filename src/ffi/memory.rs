//! Freeing what the library returns: strings (`CString`s) and byte blobs (`malloc`'d, so the
//! pointer alone frees them).

use std::ffi::{c_char, CString};

use super::boundary::boundary_void;

/// Frees a string returned by this library. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn rigllama_string_free(text: *mut c_char) {
    boundary_void(|| unsafe {
        if !text.is_null() {
            drop(CString::from_raw(text));
        }
    })
}

/// Frees a blob returned by this library (`rigllama_engine_save_snapshot`). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn rigllama_bytes_free(data: *mut u8) {
    boundary_void(|| unsafe { libc::free(data.cast()) })
}
