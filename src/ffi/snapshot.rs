//! Snapshots ("save games") through the C ABI.

use super::boundary::{boundary, handle, out_ptr, Failure};
use super::engine::rigllama_engine;
use super::request::{read_request, rigllama_request};
use super::status::rigllama_status;
use crate::engine::Error;

/// Writes the KV cache of the longest cached prefix of `request`'s formatted prompt, with its
/// tokens, as one self-checking blob: format version, library version, a fingerprint of the
/// model file (SHA-256 of its GGUF header, metadata and tensor table), the settings that
/// shape the KV cache, and a SHA-256 checksum. `*out_data` (free with `rigllama_bytes_free`)
/// and `*out_len` receive it; NULL and 0 on failure. The cache is cut back to that prefix
/// (what the request itself would reuse) and holds exactly the saved state afterwards. INVALID_ARGUMENT when no prefix of the prompt is
/// cached: run the conversation first. Keep the conversation's messages yourself: the
/// snapshot only saves evaluating them again.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_save_snapshot(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_data = out_ptr(out_data, "out_data")?;
        out_data.write(std::ptr::null_mut());
        let out_len = out_ptr(out_len, "out_len")?;
        out_len.write(0);
        let engine = handle(engine, "engine")?.engine().clone();
        let request = read_request(request)?;
        let bytes = engine.save_snapshot(request)?;
        // malloc'd so rigllama_bytes_free needs only the pointer.
        let copy = libc::malloc(bytes.len().max(1)).cast::<u8>();
        if copy.is_null() {
            return Err(Error::Internal(format!(
                "out of memory for a {}-byte snapshot",
                bytes.len()
            ))
            .into());
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
        out_len.write(bytes.len());
        out_data.write(copy);
        Ok(())
    })
}

/// Puts a snapshot back as the engine's KV cache (after the requests submitted before it):
/// the next request whose prompt starts with its tokens evaluates only what follows. The
/// whole blob is checked before llama.cpp sees a byte: a damaged or truncated one, or one
/// from another model, KV layout or format version, or holding more tokens than this
/// engine's n_ctx → INVALID_ARGUMENT naming what differs ("snapshot is for model a.gguf
/// (…), this engine has b.gguf (…)"); the engine's cache is left as it was (emptied only
/// if llama.cpp itself refuses the state) and it keeps serving. After a load, the next turn gives the same greedy text as it gives on the engine
/// that saved the snapshot (which puts its own saved state back when it saves).
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_load_snapshot(
    engine: *mut rigllama_engine,
    data: *const u8,
    len: usize,
) -> rigllama_status {
    boundary(|| unsafe {
        let engine = handle(engine, "engine")?.engine().clone();
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        if len > isize::MAX as usize {
            return Err(Error::invalid(format!("len {len} is not a valid size")).into());
        }
        let bytes = std::slice::from_raw_parts(data, len);
        engine.load_snapshot(bytes)?;
        Ok(())
    })
}
