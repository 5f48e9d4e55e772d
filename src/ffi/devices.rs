//! `rigllama_list_devices` and `rigllama_estimate`: questions about the machine that need no
//! engine.

use std::ffi::{c_char, CString};

use super::boundary::{boundary, out_ptr};
use super::options::{read_options, rigllama_engine_options};
use super::status::rigllama_status;
use crate::engine::Error;

/// `value` as a JSON C string for the caller (to free with `rigllama_string_free`).
fn json_for_caller(value: &impl serde::Serialize, what: &str) -> Result<*mut c_char, Error> {
    let json = serde_json::to_string(value).map_err(|e| Error::Internal(format!("{what}: {e}")))?;
    Ok(CString::new(json)
        .map_err(|_| Error::Internal(format!("{what}: NUL in JSON")))?
        .into_raw())
}

/// The devices this library can use on this machine, callable before any engine exists: a
/// JSON array in ggml's order (GPUs before the CPU), each `{"name","description","type","memory_total",
/// "memory_free"}` (type "cpu", "gpu", "igpu" or "accel"; memory in bytes, as the driver
/// reports it now; the host's RAM for the CPU). A name is what `options.devices` takes.
/// `*out_json` is NULL on failure; free it with `rigllama_string_free`.
#[no_mangle]
pub unsafe extern "C" fn rigllama_list_devices(out_json: *mut *mut c_char) -> rigllama_status {
    boundary(|| unsafe {
        let out_json = out_ptr(out_json, "out_json")?;
        out_json.write(std::ptr::null_mut());
        let devices = crate::engine::list_devices()?;
        out_json.write(json_for_caller(&devices, "list_devices")?);
        Ok(())
    })
}

/// What `rigllama_engine_create` with `options` would allocate, per device, without loading
/// the weights (llama.cpp reads the file's metadata and plans every buffer): a game picks the
/// largest model tier that fits. JSON: `{"n_ctx", "devices": [{"name","type","layers",
/// "memory": {"model_bytes","kv_cache_bytes","compute_bytes"},"memory_total","memory_free"}],
/// "total": {"model_bytes","kv_cache_bytes","compute_bytes"}}`, the CPU (host memory) first.
/// Within 10% of what `describe`'s "devices" reports after the real create (measured: the
/// KV cache and compute buffers exactly, the weights 5% under a mapped file's size). The
/// options are checked as create checks them; `fit` and `rpc_servers` are refused
/// (INVALID_ARGUMENT), and a projector's memory is not included. Takes milliseconds to a
/// second; runs on the calling thread. `*out_json` is NULL on failure; free it with
/// `rigllama_string_free`.
#[no_mangle]
pub unsafe extern "C" fn rigllama_estimate(
    options: *const rigllama_engine_options,
    out_json: *mut *mut c_char,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_json = out_ptr(out_json, "out_json")?;
        out_json.write(std::ptr::null_mut());
        let (options, _) = read_options(options)?;
        let estimate = crate::engine::estimate(&options)?;
        out_json.write(json_for_caller(&estimate, "estimate")?);
        Ok(())
    })
}
