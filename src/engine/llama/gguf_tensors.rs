//! Reads the F32 vectors of a small GGUF (a control vector's `direction.N` tensors) through
//! ggml's own GGUF reader, after rigllama's validator has checked the file (ggml's reader
//! asserts on some malformed files).

use std::ffi::{CStr, CString};
use std::path::Path;

/// One tensor: its name, dimension count, ggml type and, for a 1-D F32 tensor, its values.
pub(crate) struct Tensor {
    pub name: String,
    pub n_dims: i32,
    pub is_f32: bool,
    pub values: Vec<f32>,
}

/// Every tensor of the GGUF at `path` (checked by `gguf_check` first); values are read only
/// for 1-D F32 tensors.
pub(crate) fn read_tensors(path: &Path) -> Result<Vec<Tensor>, String> {
    gguf_check::check_model_file(path).map_err(|e| e.to_string())?;
    let c_path = CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| "the path contains a NUL character".to_string())?;
    let mut ggml_ctx: *mut llama_cpp_sys_2::ggml_context = std::ptr::null_mut();
    let params = llama_cpp_sys_2::gguf_init_params {
        no_alloc: false,
        ctx: &mut ggml_ctx,
    };
    // SAFETY: a file the validator accepted; ggml allocates the context and reads the data.
    let gguf = unsafe { llama_cpp_sys_2::gguf_init_from_file(c_path.as_ptr(), params) };
    if gguf.is_null() || ggml_ctx.is_null() {
        if !gguf.is_null() {
            unsafe { llama_cpp_sys_2::gguf_free(gguf) };
        }
        return Err("ggml could not read it as a GGUF".into());
    }
    let mut tensors = Vec::new();
    // SAFETY: `gguf` and `ggml_ctx` are live until freed below; names are NUL-terminated.
    unsafe {
        for i in 0..llama_cpp_sys_2::gguf_get_n_tensors(gguf) {
            let name_ptr = llama_cpp_sys_2::gguf_get_tensor_name(gguf, i);
            let name = CStr::from_ptr(name_ptr).to_string_lossy().into_owned();
            let tensor = llama_cpp_sys_2::ggml_get_tensor(ggml_ctx, name_ptr);
            if tensor.is_null() {
                continue;
            }
            let n_dims = llama_cpp_sys_2::ggml_n_dims(tensor);
            let is_f32 = (*tensor).type_ == llama_cpp_sys_2::GGML_TYPE_F32;
            let values = if is_f32 && n_dims == 1 && !(*tensor).data.is_null() {
                let n = llama_cpp_sys_2::ggml_nelements(tensor).max(0) as usize;
                std::slice::from_raw_parts((*tensor).data.cast::<f32>(), n).to_vec()
            } else {
                Vec::new()
            };
            tensors.push(Tensor {
                name,
                n_dims,
                is_f32,
                values,
            });
        }
        llama_cpp_sys_2::gguf_free(gguf);
        llama_cpp_sys_2::ggml_free(ggml_ctx);
    }
    Ok(tensors)
}
