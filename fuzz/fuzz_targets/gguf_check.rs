//! Feeds arbitrary bytes to the GGUF header validator: it must return Ok or Err, never
//! panic, overflow or allocate without bound.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(message) = gguf_check::check_gguf_bytes(data) {
        assert!(!message.contains('\n'), "the reason is one line");
    }
});
