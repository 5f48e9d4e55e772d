//! Embeddings: pooled, normalised, deterministic, meaningful enough to rank a paraphrase
//! above an unrelated sentence, and computed without touching the chat KV cache.

mod common;

use common::*;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_are_unit_length_deterministic_and_rank_paraphrases_first() {
    let engine = engine();
    let texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly tax filings are due in April.",
        "The dog slept by the fire.",
        "A dog was sleeping next to the fireplace.",
        "The stock market fell sharply on Monday.",
    ];
    let vectors = engine.embed(&texts).unwrap();
    assert_eq!(vectors.len(), texts.len());
    let dims = engine.describe().n_embd as usize;
    for v in &vectors {
        assert_eq!(v.len(), dims);
        let norm = dot(v, v).sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    for (a, b, unrelated) in [(0, 1, 2), (3, 4, 5), (1, 0, 5), (4, 3, 2)] {
        let close = dot(&vectors[a], &vectors[b]);
        let far = dot(&vectors[a], &vectors[unrelated]);
        assert!(
            close > far,
            "{:?}: {close} vs {:?}: {far}",
            texts[b],
            texts[unrelated]
        );
    }
    // One at a time gives what the batch gave, whatever the other texts' lengths.
    for (text, in_batch) in texts.iter().zip(&vectors) {
        let alone = engine.embed(&[text]).unwrap();
        assert!(dot(&alone[0], in_batch) > 0.9999, "{text:?}");
    }
    let again = engine.embed(&[texts[0]]).unwrap();
    assert_eq!(engine.embed(&[texts[0]]).unwrap(), again);
}

#[test]
fn embedding_does_not_disturb_the_chat_cache() {
    let engine = engine();
    let first = greedy_chat("Tell me a story about a lighthouse.", 8);
    engine.complete(first.clone()).unwrap();
    engine.embed(&["Something else entirely."]).unwrap();
    let (_, usage) = engine.complete(first).unwrap();
    assert!(
        usage.cached_prompt_tokens + 1 >= usage.prompt_tokens,
        "{usage:?}"
    );
}

#[test]
fn texts_beyond_the_limit_or_with_nul_are_refused() {
    let engine = engine();
    let long = long_prompt(rigllama::MAX_EMBED_TOKENS as usize + 200);
    let error = engine.embed(&[long.as_str()]).unwrap_err();
    assert!(error.to_string().contains("at most 2048"), "{error}");
    assert!(engine.embed(&["a\0b"]).is_err());
    assert!(engine.embed(&["fine"]).is_ok());
    assert!(engine.embed::<&str>(&[]).unwrap().is_empty());
}
