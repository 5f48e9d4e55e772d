//! Token ids through the C ABI: tokenize, detokenize, and the flags of both.

use std::ffi::{c_char, CString};

use super::boundary::{array_of_at_most, boundary, handle, out_ptr};
use super::engine::rigllama_engine;
use super::status::rigllama_status;
use crate::engine::{Error, TokenFlags};

/// Tokenize: add BOS/EOS as the vocabulary wants. Detokenize: leave out the BOS/EOS such a
/// tokenization added.
pub const RIGLLAMA_TOKENIZE_ADD_SPECIAL: u32 = 1;
/// Tokenize: special-token text ("<start_of_turn>") becomes its token, else it is plain text.
/// Detokenize: special tokens come out as their text, else as nothing.
pub const RIGLLAMA_TOKENIZE_PARSE_SPECIAL: u32 = 2;

fn token_flags(flags: u32) -> Result<TokenFlags, Error> {
    let known = RIGLLAMA_TOKENIZE_ADD_SPECIAL | RIGLLAMA_TOKENIZE_PARSE_SPECIAL;
    if flags & !known != 0 {
        return Err(Error::invalid(format!(
            "flags {flags:#x} has bits other than RIGLLAMA_TOKENIZE_ADD_SPECIAL (1) and \
             RIGLLAMA_TOKENIZE_PARSE_SPECIAL (2)"
        )));
    }
    Ok(TokenFlags {
        add_special: flags & RIGLLAMA_TOKENIZE_ADD_SPECIAL != 0,
        parse_special: flags & RIGLLAMA_TOKENIZE_PARSE_SPECIAL != 0,
    })
}

/// The token ids of `len` bytes of UTF-8 at `text` (not necessarily NUL-terminated; a NUL
/// byte in them is refused). `flags`: `RIGLLAMA_TOKENIZE_*`, OR-ed (a raw prompt is
/// tokenized with both). `*out_n` receives how many ids the text makes. With `out_tokens`
/// NULL it returns OK having written only `*out_n` (to size the buffer); with a `capacity`
/// smaller than that, INVALID_ARGUMENT and nothing written but `*out_n`. Runs on the
/// engine's worker between decode steps.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_tokenize(
    engine: *mut rigllama_engine,
    text: *const c_char,
    len: usize,
    flags: u32,
    out_tokens: *mut i32,
    capacity: usize,
    out_n: *mut usize,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_n = out_ptr(out_n, "out_n")?;
        let engine = handle(engine, "engine")?.engine().clone();
        let flags = token_flags(flags)?;
        // Bytes, not a C string: `len` bounds them (NULL is fine when `len` is 0).
        let bytes = array_of_at_most(text.cast::<u8>(), len, usize::MAX, "text")?;
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::invalid(format!(
                "text is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ))
        })?;
        let ids = engine.tokenize(text, flags)?;
        out_n.write(ids.len());
        if out_tokens.is_null() {
            return Ok(());
        }
        if capacity < ids.len() {
            return Err(Error::invalid(format!(
                "capacity {capacity} is smaller than the {} ids the text makes (*out_n)",
                ids.len()
            ))
            .into());
        }
        std::ptr::copy_nonoverlapping(ids.as_ptr(), out_tokens, ids.len());
        Ok(())
    })
}

/// The text of `n` token ids at `tokens` (`RIGLLAMA_TOKENIZE_*` flags: the inverse of the
/// same flags in `rigllama_engine_tokenize`, so text -> ids -> text gives the text back).
/// `*out_text` receives a NUL-terminated UTF-8 string (free with `rigllama_string_free`);
/// bytes that are not whole characters (ids cut inside one) become U+FFFD. An id outside the
/// vocabulary is refused with INVALID_ARGUMENT naming its index and value. `n` 0 gives "".
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_detokenize(
    engine: *mut rigllama_engine,
    tokens: *const i32,
    n: usize,
    flags: u32,
    out_text: *mut *mut c_char,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_text = out_ptr(out_text, "out_text")?;
        out_text.write(std::ptr::null_mut());
        let engine = handle(engine, "engine")?.engine().clone();
        let flags = token_flags(flags)?;
        let ids = array_of_at_most(tokens, n, crate::engine::MAX_N_CTX as usize, "tokens")?;
        let text = engine.detokenize(ids, flags)?;
        // A NUL byte token cannot cross a C string: it ends the text there.
        let text = match CString::new(text) {
            Ok(text) => text,
            Err(e) => {
                let mut bytes = e.into_vec();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                bytes.truncate(end);
                CString::new(bytes).expect("cut at the first NUL")
            }
        };
        out_text.write(text.into_raw());
        Ok(())
    })
}
