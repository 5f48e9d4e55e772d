//! Feeds arbitrary bytes to the snapshot loader: it must return Ok or a one-line Err, never
//! panic or allocate without bound. Inputs that start like a real snapshot get a valid
//! checksum recomputed half the time, so the fuzzer also reaches the field parser behind it.

#![no_main]

use snapshot_format::{decode, encode, fingerprint, Shape, Snapshot};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes as the body of a snapshot with a correct checksum.
    if data.len() > 44 && data[0] & 1 == 1 {
        let mut framed = b"RIGLSNAP".to_vec();
        framed.extend_from_slice(&1u32.to_le_bytes());
        framed.extend_from_slice(&data[1..]);
        framed.extend_from_slice(&fingerprint(&framed));
        check(&framed);
    }
});

fn check(bytes: &[u8]) {
    match decode(bytes) {
        Ok(snapshot) => {
            // Whatever decodes re-encodes to the same bytes and compares against an engine.
            assert_eq!(encode(&snapshot), bytes);
            let _ = snapshot.shape.check(snapshot.tokens.len(), &engine(), 4096);
        }
        Err(message) => assert!(!message.contains('\n'), "the reason is one line"),
    }
}

fn engine() -> Shape {
    let sample = Snapshot {
        library_version: String::new(),
        shape: Shape {
            fingerprint: fingerprint(b""),
            model_name: "m.gguf".into(),
            architecture: "gemma3".into(),
            n_layer: 18,
            n_embd: 640,
            type_k: 1,
            type_v: 1,
            flash_attention: 0,
            llama_cpp: String::new(),
        },
        tokens: Vec::new(),
        payload: Vec::new(),
    };
    sample.shape
}
