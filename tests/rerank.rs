//! Reranking: a reranker GGUF's scores equal llama.cpp's own (`llama-embedding --pooling
//! rank`, built from the same sources by scripts/build-llama-tool) within 1e-4, query and
//! document joined as llama-server joins them; a model that is not a reranker is refused, as
//! is bad input, and the engine serves on.

mod common;

use std::process::Command;

use common::*;
use rigllama::{Engine, EngineOptions, Error};

const QUERY: &str = "what is a cat?";
const DOCUMENTS: &[&str] = &[
    "a small furry animal",
    "a kind of rock",
    "a small furry animal that purrs and hunts mice at night",
    "Katzen schlafen den größten Teil des Tages.",
    "猫は小さな動物です",
];

fn reranker() -> Engine {
    let mut options = EngineOptions::new(reranker_model_path());
    options.n_ctx = 512;
    Engine::create(options, None).unwrap()
}

/// llama-embedding's scores for QUERY against each document: one prompt per line, query and
/// document split by its classification separator (a tab); raw output is one score a line.
fn llama_cpp_scores(documents: &[&str]) -> Vec<f32> {
    let binary = llama_tool("embedding");
    let prompt: Vec<String> = documents.iter().map(|d| format!("{QUERY}\t{d}")).collect();
    let out = Command::new(&binary)
        .arg("-m")
        .arg(reranker_model_path())
        .args(["--pooling", "rank", "--embd-normalize", "-1"])
        .args(["--embd-output-format", "raw", "-t", "2", "-p"])
        .arg(prompt.join("\n"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn scores_equal_llama_cpps_own_within_1e_4() {
    let engine = reranker();
    let ours = engine.rerank(QUERY, DOCUMENTS).unwrap();
    let theirs = llama_cpp_scores(DOCUMENTS);
    assert_eq!(ours.len(), DOCUMENTS.len());
    assert_eq!(
        theirs.len(),
        DOCUMENTS.len(),
        "llama-embedding printed {theirs:?}"
    );
    let mut worst = 0.0f32;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() < 1e-4, "document {i}: {a} vs llama.cpp's {b}");
        worst = worst.max((a - b).abs());
    }
    println!("scores {ours:?}, llama.cpp {theirs:?}, max error {worst:e}");
    // One at a time, and over several batches of 8 pairs, the same scores up to the
    // rounding of a different batch (pairs evaluated together share the ubatch's f16 KV
    // buffer: llama.cpp's own scores move by ~0.004 here, the same way).
    for (i, document) in DOCUMENTS.iter().enumerate() {
        let alone = engine.rerank(QUERY, &[document]).unwrap();
        assert!(
            (alone[0] - ours[i]).abs() < 1e-2,
            "{i}: {} vs {}",
            alone[0],
            ours[i]
        );
        let theirs_alone = llama_cpp_scores(&[document]);
        assert!(
            (alone[0] - theirs_alone[0]).abs() < 1e-4,
            "{i} alone: {} vs {}",
            alone[0],
            theirs_alone[0]
        );
    }
    let many: Vec<&str> = DOCUMENTS.iter().cycle().take(19).copied().collect();
    let scores = engine.rerank(QUERY, &many).unwrap();
    for (i, score) in scores.iter().enumerate() {
        assert!((score - ours[i % DOCUMENTS.len()]).abs() < 1e-2, "{i}");
    }
}

#[test]
fn rerank_and_embed_refuse_the_wrong_kind_of_model_and_bad_input() {
    let chat = engine();
    let e = chat.rerank(QUERY, DOCUMENTS).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("not a reranker")),
        "{e}"
    );
    let reranker = reranker();
    let e = reranker.embed(&["text"]).unwrap_err();
    assert!(e.to_string().contains("is a reranker"), "{e}");
    for (query, documents, says) in [
        ("", vec!["doc"], "query is empty"),
        ("q", vec!["fine", ""], "documents[1] is empty"),
        ("q\0x", vec!["doc"], "query contains a NUL"),
    ] {
        let e = reranker.rerank(query, &documents).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let long = "word ".repeat(3000);
    let e = reranker.rerank(QUERY, &[long.as_str()]).unwrap_err();
    assert!(e.to_string().contains("tokens together"), "{e}");
    assert!(reranker.rerank(QUERY, &[] as &[&str]).unwrap().is_empty());
    assert_eq!(
        reranker.rerank(QUERY, &["a kind of rock"]).unwrap().len(),
        1
    );
    chat.complete(greedy_raw("Once upon a time", 2)).unwrap();
}
