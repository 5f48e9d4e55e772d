//! Where a `dynamic-backends` build loads ggml's backend modules from.

use std::ffi::c_char;
use std::path::PathBuf;

use super::boundary::{boundary, required_str};
use super::status::rigllama_status;

/// Loads ggml's backend modules (`libggml-cpu-*.so`, one per x86-64 instruction-set level;
/// the best this CPU runs is used) from the directory `dir` (UTF-8) instead of the one
/// librigllama.so was loaded from, or `$RIGLLAMA_BACKEND_DIR`. Process-wide; call it before
/// the first engine is created: the modules are loaded then, once. Afterwards the same
/// directory gives OK and any other INVALID_ARGUMENT. A directory that holds no
/// `libggml-cpu-*.so` → INVALID_ARGUMENT. A library built without the `dynamic-backends`
/// feature has its CPU code built in and loads no modules: INVALID_ARGUMENT saying so.
/// `rigllama_engine_describe` names the module in use (`cpu_backend`).
#[no_mangle]
pub unsafe extern "C" fn rigllama_set_backend_dir(dir: *const c_char) -> rigllama_status {
    boundary(|| unsafe {
        let dir = PathBuf::from(required_str(dir, "dir")?);
        crate::engine::set_backend_dir(&dir)?;
        Ok(())
    })
}
