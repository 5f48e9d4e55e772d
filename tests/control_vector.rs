//! Control vectors: strength 0 gives exactly the base model's greedy text, a non-zero strength
//! changes it, clearing restores it; files that are not control vectors, vectors for another
//! width and layer ranges outside the model are refused with the reason, and the engine keeps
//! serving.

mod common;

use common::*;
use rigllama::{ControlVectorInfo, Engine, Error, Request};

/// From an empty cache each time: a prompt evaluated again after its prefix was cached rounds
/// differently (one token alone, not in a batch), which can flip a near tie.
fn greedy_text(engine: &Engine) -> String {
    engine.reset().unwrap();
    engine
        .complete(greedy_raw("The lighthouse keeper", 24))
        .unwrap()
        .0
}

#[test]
fn strength_0_is_the_base_model_and_a_strength_changes_the_text() {
    let [vector, _] = control_vector_fixtures();
    let engine = engine();
    let base = greedy_text(&engine);
    engine.set_control_vector(&vector, 0.0, 0, 0).unwrap();
    assert_eq!(greedy_text(&engine), base, "strength 0 changes nothing");
    engine.set_control_vector(&vector, 1.0, 0, 0).unwrap();
    let steered = greedy_text(&engine);
    assert_ne!(steered, base, "strength 1 changes the text");
    let d = engine.describe();
    assert_eq!(
        d.control_vector,
        Some(ControlVectorInfo {
            path: vector.to_string_lossy().into_owned(),
            strength: 1.0,
            layer_start: 1,
            layer_end: 18,
        })
    );
    // The same again (deterministic), and a narrower range is another steering.
    assert_eq!(greedy_text(&engine), steered);
    engine.set_control_vector(&vector, 1.0, 10, 12).unwrap();
    assert_eq!(engine.describe().control_vector.unwrap().layer_start, 10);
    let narrow = greedy_text(&engine);
    assert_ne!(narrow, steered);
    // Snapshots do not record it.
    let e = engine
        .save_snapshot(greedy_raw("The lighthouse keeper", 4))
        .unwrap_err();
    assert!(e.to_string().contains("control vector"), "{e}");
    engine.clear_control_vector().unwrap();
    assert_eq!(engine.describe().control_vector, None);
    assert_eq!(greedy_text(&engine), base, "cleared: the base model again");
    println!("base {base:?}\nsteered {steered:?}\nlayers 10-12 {narrow:?}");
}

#[test]
fn bad_control_vectors_are_refused_with_the_reason_and_the_engine_serves_on() {
    let [vector, wrong_width] = control_vector_fixtures();
    let engine = engine();
    let base = greedy_text(&engine);
    let refused = |path: &std::path::Path, strength: f32, start: i32, end: i32, says: &str| {
        let e = engine
            .set_control_vector(path, strength, start, end)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains(says), "expected {says:?} in: {e}");
    };
    refused(&wrong_width, 1.0, 0, 0, "640 wide");
    refused(&model_path(), 1.0, 0, 0, "is not a direction.N tensor");
    refused(
        std::path::Path::new("/nonexistent/cvec.gguf"),
        1.0,
        0,
        0,
        "cvec.gguf",
    );
    refused(&vector, f32::NAN, 0, 0, "strength NaN");
    refused(&vector, 1.0, 0, 19, "layer range 0..19");
    refused(&vector, 1.0, 5, 4, "layer range 5..4");
    assert_eq!(engine.describe().control_vector, None);
    assert_eq!(greedy_text(&engine), base);
    engine.clear_control_vector().unwrap(); // none set: fine
    let _ = Request::raw("x");
}
