//! LoRA adapters at run time on the real default model, with adapters made by
//! `scripts/make-lora-adapter`. Run one at a time (`--test-threads=1`).

mod common;

use common::*;
use rigllama::{Engine, Error, Event, LoraScale};

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

/// The per-request tests' scale: enough to change the text, not so much that the model turns
/// to noise (where every token is a near tie and batch rounding decides).
const ADAPTED: f32 = 0.25;

/// Flash attention off: the random adapters drive activations far enough that the CPU flash
/// attention kernel's f16 accumulation makes the text depend on how the prompt was split into
/// batches (a reused prefix plus one token vs. the whole prompt), with or without
/// per-request adapters. Without it, the same request gives the same text either way.
fn exact_options() -> rigllama::EngineOptions {
    let mut options = options();
    options.flash_attention = rigllama::FlashAttention::Off;
    options
}

/// `request` with these adapters for itself alone.
fn with_loras(mut request: rigllama::Request, loras: &[(u32, f32)]) -> rigllama::Request {
    request.lora = Some(
        loras
            .iter()
            .map(|&(id, scale)| LoraScale { id, scale })
            .collect(),
    );
    request
}

/// Runs a job to its end: its text and usage.
fn drain(mut job: rigllama::Job) -> (String, rigllama::Usage) {
    let mut text = String::new();
    loop {
        match job.blocking_next() {
            Event::Text { text: piece, .. } => text.push_str(&piece),
            Event::Done(usage) => return (text, usage),
            Event::Failed { error, .. } => panic!("request failed: {error}"),
            _ => {}
        }
    }
}

/// How many leading characters two texts share.
fn agreement(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[test]
fn a_request_brings_its_own_adapters_and_never_shares_a_decode_with_other_sets() {
    let [lora, second, _, _] = lora_fixtures();
    let mut options = exact_options();
    options.n_seq = 2;
    let engine = Engine::create(options, None).expect("the default model loads");
    let base = greedy(&engine);
    // Both loaded at engine-wide scale 0: the engine's own requests run the base model.
    let a = engine.add_lora(&lora, 0.0).unwrap();
    let b = engine.add_lora(&second, 0.0).unwrap();
    assert_eq!(greedy(&engine), base);

    // A request alone under [a at 1] = the engine with a at 1.
    engine.set_lora_scale(a, ADAPTED).unwrap();
    let engine_wide = greedy(&engine);
    assert_ne!(engine_wide, base);
    engine.set_lora_scale(a, 0.0).unwrap();
    let solo = |loras: &[(u32, f32)]| {
        engine.reset().unwrap();
        let request = with_loras(greedy_raw(PROMPT, 24), loras);
        engine.complete(request).expect("complete").0
    };
    let under_a = solo(&[(a, ADAPTED)]);
    assert_eq!(
        under_a, engine_wide,
        "per request = the same scales engine-wide"
    );
    let under_b = solo(&[(b, ADAPTED)]);
    assert_ne!(under_b, base);
    assert_ne!(under_b, under_a);
    // Engine-wide scales do not leak into a request that names its own set.
    engine.set_lora_scale(b, ADAPTED).unwrap();
    assert_eq!(
        solo(&[(a, ADAPTED)]),
        under_a,
        "b's engine-wide scale is off for it"
    );
    assert_eq!(solo(&[]), base, "an empty list = no adapter at all");
    engine.set_lora_scale(b, 0.0).unwrap();

    // Two requests under different sets at once (n_seq 2): they take turns, decode by decode,
    // each under its own set. Had one been decoded under the other's adapters, its text would
    // follow that adapter (the solo texts differ from the first words).
    engine.reset().unwrap();
    let started = std::time::Instant::now();
    let x = engine
        .submit(with_loras(greedy_raw(PROMPT, 24), &[(a, ADAPTED)]))
        .unwrap();
    let y = engine
        .submit(with_loras(greedy_raw(PROMPT, 24), &[(b, ADAPTED)]))
        .unwrap();
    let (x_text, _) = drain(x);
    let (y_text, _) = drain(y);
    let apart = started.elapsed();
    // The same set twice at once: one decode serves both.
    engine.reset().unwrap();
    let started = std::time::Instant::now();
    let same = [(); 2].map(|_| {
        engine
            .submit(with_loras(greedy_raw(PROMPT, 24), &[(a, ADAPTED)]))
            .unwrap()
    });
    let [same_x, same_y] = same.map(|job| drain(job).0);
    let together = started.elapsed();
    eprintln!(
        "different sets at once: {apart:?} (agreement with solo: {}/{} and {}/{} chars); \
         the same set twice at once: {together:?}",
        agreement(&x_text, &under_a),
        under_a.chars().count(),
        agreement(&y_text, &under_b),
        under_b.chars().count(),
    );
    // Each decode holds one request's tokens only, as when it runs alone: the same text.
    let words = |text: &str| {
        text.split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(words(&x_text), words(&under_a), "{x_text:?} vs {under_a:?}");
    assert_eq!(words(&y_text), words(&under_b), "{y_text:?} vs {under_b:?}");
    assert_ne!(
        words(&under_a),
        words(&under_b),
        "the adapters are told apart early"
    );
    assert_eq!(words(&same_x), words(&under_a));
    assert_eq!(words(&same_y), words(&under_a));
}

#[test]
fn a_cached_prefix_is_reused_only_under_the_same_adapters() {
    let [lora, _, _, _] = lora_fixtures();
    let engine = Engine::create(exact_options(), None).expect("the default model loads");
    let a = engine.add_lora(&lora, 0.0).unwrap();
    engine.reset().unwrap();
    let run = |loras: Option<&[(u32, f32)]>| {
        let request = greedy_raw(PROMPT, 8);
        let request = match loras {
            Some(loras) => with_loras(request, loras),
            None => request,
        };
        engine.complete(request).expect("complete")
    };
    let (first, usage) = run(Some(&[(a, ADAPTED)]));
    assert_eq!(usage.cached_prompt_tokens, 0);
    let (again, usage) = run(Some(&[(a, ADAPTED)]));
    assert_eq!(again, first);
    assert!(
        usage.cached_prompt_tokens > 0,
        "same set: reused ({usage:?})"
    );
    // One sequence (n_seq 1): each other set empties it, the same set reuses it.
    let (base, usage) = run(None);
    assert_eq!(
        usage.cached_prompt_tokens, 0,
        "base model: not reused ({usage:?})"
    );
    let (base_again, usage) = run(Some(&[(a, 0.0)]));
    assert_eq!(base_again, base, "scale 0 is the base model");
    assert!(
        usage.cached_prompt_tokens > 0,
        "scale 0 = the base model's cache ({usage:?})"
    );
    let (_, usage) = run(Some(&[(a, 0.5)]));
    assert_eq!(
        usage.cached_prompt_tokens, 0,
        "another scale: not reused ({usage:?})"
    );
    let (_, usage) = run(Some(&[(a, ADAPTED)]));
    assert_eq!(
        usage.cached_prompt_tokens, 0,
        "not the 0.5 run's cache ({usage:?})"
    );

    // Bad lists are refused by name, and the engine keeps serving.
    for (loras, expected) in [
        (vec![(99, 1.0)], "lora_ids[0] = 99"),
        (vec![(a, ADAPTED), (a, 0.5)], "lora_ids[1]"),
        (vec![(a, f32::NAN)], "lora_scales[0]"),
        (vec![(a, 101.0)], "lora_scales[0]"),
    ] {
        let error = engine
            .complete(with_loras(greedy_raw(PROMPT, 4), &loras))
            .unwrap_err();
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.contains(expected)),
            "{loras:?}: {error}"
        );
    }
    assert_eq!(run(None).0, base);
    // Removed adapters cannot be named any more.
    engine.remove_lora(a).unwrap();
    let error = engine
        .complete(with_loras(greedy_raw(PROMPT, 4), &[(a, ADAPTED)]))
        .unwrap_err();
    assert!(
        error.to_string().contains("no LoRA adapter has that id"),
        "{error}"
    );
}
