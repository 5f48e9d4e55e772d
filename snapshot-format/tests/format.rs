//! The container round-trips, and every damage to it is caught before the payload is used.

use proptest::prelude::*;
use snapshot_format::{decode, encode, fingerprint, Shape, Snapshot};

fn shape() -> Shape {
    Shape {
        fingerprint: fingerprint(b"GGUF header of model A"),
        model_name: "a.gguf".into(),
        architecture: "gemma3".into(),
        n_layer: 18,
        n_embd: 640,
        type_k: 1,
        type_v: 1,
        flash_attention: 0,
        llama_cpp: "0.1.161".into(),
    }
}

fn sample() -> Snapshot {
    Snapshot {
        library_version: "0.1.0".into(),
        shape: shape(),
        tokens: vec![2, 105, 2364, 107, 1],
        payload: (0..1000u32).map(|i| (i * 7 % 251) as u8).collect(),
    }
}

#[test]
fn round_trip() {
    let snapshot = sample();
    assert_eq!(decode(&encode(&snapshot)).unwrap(), snapshot);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = encode(&sample());
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "length {len} accepted");
    }
}

#[test]
fn every_single_byte_flip_is_refused() {
    let bytes = encode(&sample());
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5A;
        assert!(decode(&damaged).is_err(), "flip at {at} accepted");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    assert!(decode(b"hello").unwrap_err().contains("bad magic"));
    let mut bytes = encode(&sample());
    bytes[8] = 9;
    assert!(decode(&bytes).unwrap_err().contains("format version 9"));
    let mut bytes = encode(&sample());
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    assert!(decode(&bytes).unwrap_err().contains("checksum"));
}

#[test]
fn shape_mismatches_are_named() {
    let ours = shape();
    assert!(ours.check(5, &ours, 4096).is_ok());
    let mut other = shape();
    other.fingerprint = fingerprint(b"model B");
    other.model_name = "b.gguf".into();
    let error = other.check(5, &ours, 4096).unwrap_err();
    assert!(error.contains("snapshot is for model b.gguf"), "{error}");
    assert!(error.contains("this engine has a.gguf"), "{error}");
    let mut other = shape();
    other.type_k = 8;
    let error = other.check(5, &ours, 4096).unwrap_err();
    assert_eq!(error, "snapshot has K cache type 8, this engine has 1");
    let error = ours.check(5000, &ours, 4096).unwrap_err();
    assert!(
        error.contains("5000 tokens") && error.contains("n_ctx is 4096"),
        "{error}"
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        cut in 0usize..200,
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = encode(&sample());
        bytes.truncate(cut.min(bytes.len()));
        bytes.extend_from_slice(&tail);
        let _ = decode(&bytes);
    }
}
