//! LoRA adapters at run time on the real default model, with adapters made by
//! `scripts/make-lora-adapter`. Run one at a time (`--test-threads=1`).

mod common;

use common::*;
use rigllama::{Engine, Error};

const PROMPT: &str = "The capital of France is";

/// From an empty cache each time: greedy text is only reproducible from the same cache state
/// (a random adapter leaves many near-ties).
fn greedy(engine: &Engine) -> String {
    engine.reset().unwrap();
    engine.complete(greedy_raw(PROMPT, 24)).expect("complete").0
}

#[test]
fn scale_0_is_the_base_model_scale_1_changes_it_and_several_apply_at_once() {
    let [lora, second, _, _] = lora_fixtures();
    let engine = engine();
    let base = greedy(&engine);

    let id = engine.add_lora(&lora, 0.0).expect("adapter loads");
    assert_eq!(greedy(&engine), base, "scale 0 is exactly the base model");
    let described = engine.describe();
    assert_eq!(described.lora.len(), 1);
    assert_eq!((described.lora[0].id, described.lora[0].scale), (id, 0.0));

    engine.set_lora_scale(id, 1.0).unwrap();
    let adapted = greedy(&engine);
    assert_ne!(adapted, base, "scale 1 changes the greedy text");
    assert_eq!(greedy(&engine), adapted, "deterministic with the adapter");

    let id2 = engine
        .add_lora(&second, 1.0)
        .expect("a second adapter loads");
    assert_ne!(id2, id);
    let both = greedy(&engine);
    assert_ne!(both, adapted, "the second adapter applies too");
    assert_eq!(engine.describe().lora.len(), 2);

    engine.remove_lora(id2).unwrap();
    assert_eq!(
        greedy(&engine),
        adapted,
        "removing the second leaves the first"
    );
    engine.set_lora_scale(id, 0.0).unwrap();
    assert_eq!(greedy(&engine), base);
    engine.remove_lora(id).unwrap();
    assert_eq!(greedy(&engine), base);
    assert!(engine.describe().lora.is_empty());

    // Unknown ids and bad scales are refused by name.
    for error in [
        engine.remove_lora(id).unwrap_err(),
        engine.set_lora_scale(99, 1.0).unwrap_err(),
        engine.add_lora(&lora, f32::NAN).unwrap_err(),
        engine.add_lora(&lora, 1000.0).unwrap_err(),
    ] {
        assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    }
}

#[test]
fn bad_adapters_are_refused_with_the_reason_and_the_engine_keeps_serving() {
    let [lora, _, wrong_shape, wrong_arch] = lora_fixtures();
    let engine = engine();
    let base = greedy(&engine);
    let garbage = std::env::temp_dir().join("rigllama-not-an-adapter.gguf");
    std::fs::write(&garbage, b"GGUF but not really").unwrap();
    let cases = [
        (wrong_shape.clone(), "incorrect shape"),
        (wrong_arch.clone(), "architecture llama"),
        (garbage.clone(), "rigllama-not-an-adapter.gguf"),
        ("/nonexistent/adapter.gguf".into(), "not found"),
        (model_path(), "LoRA adapter"),
    ];
    for (path, expected) in cases {
        let error = engine.add_lora(&path, 1.0).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.contains(expected)),
            "{}: {error}",
            path.display()
        );
        assert_eq!(greedy(&engine), base, "still serving, unchanged");
        assert!(engine.describe().lora.is_empty());
    }
    // Snapshots do not record adapters: refused while one is applied.
    engine.complete(greedy_raw(PROMPT, 4)).unwrap();
    let id = engine.add_lora(&lora, 1.0).unwrap();
    let error = engine.save_snapshot(greedy_raw(PROMPT, 4)).unwrap_err();
    assert!(error.to_string().contains("LoRA"), "{error}");
    // A reload drops every adapter.
    engine.reload(options(), None).unwrap();
    assert!(engine.describe().lora.is_empty());
    assert_eq!(greedy(&engine), base);
    assert!(engine.remove_lora(id).is_err());
}
