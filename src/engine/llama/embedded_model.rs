//! Loading a model with llama.cpp parameters llama-cpp-2 does not expose: a GGUF that starts
//! inside a larger file (a game's asset archive), through `llama_model_load_from_file_ptr`
//! (it reads the GGUF from a `FILE`'s current position; offset 0 is a plain file), and
//! `use_extra_bufts` (CPU repacking) off.

use std::ffi::{c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use llama_cpp_2::model::LlamaModel;

/// How to load it: what rigllama otherwise sets through llama-cpp-2's `LlamaModelParams`.
pub(crate) struct EmbeddedLoad<'a> {
    pub path: &'a Path,
    /// Where the GGUF starts in the file.
    pub offset: u64,
    pub n_gpu_layers: i32,
    /// Map the file (llama.cpp needs the GGUF's data section 32-byte aligned in the file for
    /// that) or read the tensors into memory.
    pub use_mmap: bool,
    /// llama.cpp's `no_alloc`: read the metadata and plan every buffer without allocating
    /// it (what a load would take, for an estimate).
    pub no_alloc: bool,
    /// llama.cpp's `use_extra_bufts`: repack CPU weights for its fastest kernels.
    pub repack: bool,
    /// ggml device indices to place layers on; `None` = llama.cpp's default list.
    pub devices: Option<Vec<usize>>,
    /// Called with the load's progress; false cancels it.
    pub progress: &'a mut dyn FnMut(f32) -> bool,
}

unsafe extern "C" fn progress_trampoline(progress: f32, user_data: *mut c_void) -> bool {
    // SAFETY: `user_data` is the `&mut &mut dyn FnMut` set below, alive for the whole load.
    let callback = unsafe { &mut *user_data.cast::<&mut dyn FnMut(f32) -> bool>() };
    callback(progress)
}

pub(crate) fn load_embedded(load: EmbeddedLoad<'_>) -> Result<LlamaModel, String> {
    let c_path = CString::new(load.path.as_os_str().as_bytes())
        .map_err(|_| "the path contains a NUL character".to_string())?;
    let mut params = unsafe { llama_cpp_sys_2::llama_model_default_params() };
    params.n_gpu_layers = load.n_gpu_layers;
    if !load.use_mmap {
        params.load_mode = llama_cpp_sys_2::LLAMA_LOAD_MODE_NONE;
    }
    params.use_extra_bufts = load.repack;
    params.no_alloc = load.no_alloc;
    // NULL-terminated, alive until the load returns.
    let mut devices: Vec<llama_cpp_sys_2::ggml_backend_dev_t> = Vec::new();
    if let Some(indices) = &load.devices {
        let count = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
        for &i in indices {
            if i >= count {
                return Err(format!("no ggml device {i}"));
            }
            devices.push(unsafe { llama_cpp_sys_2::ggml_backend_dev_get(i) });
        }
        devices.push(std::ptr::null_mut());
        params.devices = devices.as_mut_ptr();
    }
    let mut callback: &mut dyn FnMut(f32) -> bool = load.progress;
    params.progress_callback = Some(progress_trampoline);
    params.progress_callback_user_data = std::ptr::from_mut(&mut callback).cast();
    let offset = libc::off_t::try_from(load.offset)
        .map_err(|_| format!("offset {} is too large", load.offset))?;
    // SAFETY: a NUL-terminated path and mode; the FILE is closed below on every path.
    unsafe {
        let file = libc::fopen(c_path.as_ptr(), c"rb".as_ptr());
        if file.is_null() {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if libc::fseeko(file, offset, libc::SEEK_SET) != 0 {
            let error = std::io::Error::last_os_error().to_string();
            libc::fclose(file);
            return Err(format!("cannot seek to byte {}: {error}", load.offset));
        }
        // llama.cpp reads through the FILE during the load and does not keep it (nor close it).
        let raw = llama_cpp_sys_2::llama_model_load_from_file_ptr(file.cast(), params);
        libc::fclose(file);
        let raw = NonNull::new(raw).ok_or_else(|| "llama.cpp could not load it".to_string())?;
        // SAFETY: llama-cpp-2's `LlamaModel` is `#[repr(transparent)]` over a non-null pointer
        // to the `llama_model` it owns and frees on drop (see raw.rs); the version is pinned.
        Ok(std::mem::transmute::<
            NonNull<llama_cpp_sys_2::llama_model>,
            LlamaModel,
        >(raw))
    }
}
