//! Prompt-lookup speculation (`Request::draft_max`): replies that repeat their prompt come in
//! fewer decodes, and every token is still the one the sampler picks from its own position's
//! logits. Run one at a time (`--test-threads=1`).
//!
//! About "the same text": the guesses are evaluated in one batch, and llama.cpp's CPU kernels
//! round a batch differently from single tokens (measured here: a token's log-probability
//! moves by up to ~0.5 between the two shapes). So where plain decoding's two best tokens are
//! nearly tied, the choice can flip; everywhere else the tokens are the same. The tests check
//! exactly that: both runs agree token for token up to the first difference, and there plain
//! decoding's best two tokens were within [`NEAR_TIE`] of each other.

mod common;

use common::*;
use rigllama::{Engine, EngineOptions, Error, Event, Request, TokenLogprob, Usage};

const CODE_EDIT: &str = include_str!("../bench/workloads/code_edit.txt");
const QUOTES: &str = include_str!("../bench/workloads/quotes.txt");
const EXTRACT: &str = include_str!("../bench/workloads/extract.txt");
const FREE_FORM: &str = include_str!("../bench/workloads/free_form.txt");

/// The widest gap, in log-probability, between plain decoding's best two tokens at which a
/// batched evaluation was seen to pick the other one is ~0.25; a flip beyond 1.0 is a bug.
const NEAR_TIE: f32 = 1.0;

struct Reply {
    text: String,
    /// One per generated token, with the best two alternatives.
    tokens: Vec<TokenLogprob>,
    usage: Usage,
}

/// The reply through a job, with each token's best two alternatives.
fn run(engine: &Engine, mut request: Request, draft_max: u32) -> Reply {
    request.draft_max = draft_max;
    request.logprobs = 2;
    let (text, tokens, usage) = run_job(engine, request);
    Reply {
        text,
        tokens,
        usage,
    }
}

/// From an empty cache, as a new conversation.
fn cold(engine: &Engine, request: &Request, draft_max: u32) -> Reply {
    engine.reset().unwrap();
    run(engine, request.clone(), draft_max)
}

fn ids(reply: &Reply) -> Vec<i32> {
    reply.tokens.iter().map(|t| t.token.id).collect()
}

/// `guessed` picks plain decoding's tokens, except that it may part ways where plain decoding
/// had a near tie. Returns how many tokens they share.
fn agrees(plain: &Reply, guessed: &Reply, what: &str) -> usize {
    for (i, (p, g)) in plain.tokens.iter().zip(&guessed.tokens).enumerate() {
        if p.token.id != g.token.id {
            let gap = p.top[0].logprob - p.top[1].logprob;
            assert!(
                gap < NEAR_TIE,
                "{what}: token {i} differs ({} vs {}) where plain decoding's best two were {gap} apart",
                p.token.id,
                g.token.id
            );
            return i;
        }
    }
    assert_eq!(
        plain.tokens.len(),
        guessed.tokens.len(),
        "{what}: one reply ended early"
    );
    assert_eq!(plain.text, guessed.text, "{what}");
    assert_eq!(
        plain.usage.finish_reason, guessed.usage.finish_reason,
        "{what}"
    );
    plain.tokens.len()
}

fn tokens_per_second(reply: &Reply) -> f64 {
    reply.usage.completion_tokens as f64 / (reply.usage.generation_ms / 1e3)
}

#[test]
fn guesses_keep_the_samplers_tokens_and_save_decodes() {
    let engine = engine();
    for (name, prompt, copies) in [
        ("code edit", CODE_EDIT, true),
        ("quotes", QUOTES, true),
        ("extract", EXTRACT, true),
        ("free form", FREE_FORM, false),
    ] {
        let request = greedy_chat(prompt, 300);
        let plain = cold(&engine, &request, 0);
        let guessed = cold(&engine, &request, 8);
        let shared = agrees(&plain, &guessed, name);
        let u = &guessed.usage;
        eprintln!(
            "{name}: {} tokens, same for {shared}; plain {:.1} tok/s, guessed {:.1} tok/s; \
             drafted {}, accepted {}",
            u.completion_tokens,
            tokens_per_second(&plain),
            tokens_per_second(&guessed),
            u.drafted_tokens,
            u.accepted_tokens
        );
        assert_eq!(
            (plain.usage.drafted_tokens, plain.usage.accepted_tokens),
            (0, 0)
        );
        assert!(u.accepted_tokens <= u.drafted_tokens);
        assert_eq!(guessed.tokens.len() as u32, u.completion_tokens, "{name}");
        if copies {
            // These replies repeat their prompt: most of the guesses are right.
            assert!(
                u.accepted_tokens * 2 > u.drafted_tokens && u.accepted_tokens > 40,
                "{name}: {u:?}"
            );
        }
        // The same request again takes the same path.
        let again = cold(&engine, &request, 8);
        assert_eq!(ids(&again), ids(&guessed), "{name}: not deterministic");
        assert_eq!(again.usage.accepted_tokens, u.accepted_tokens);
    }
}

#[test]
fn stop_strings_and_max_tokens_end_the_reply_where_plain_decoding_does() {
    let engine = engine();
    let request = greedy_chat(QUOTES, 300);
    let plain = cold(&engine, &request, 0);
    let guessed = cold(&engine, &request, 8);
    assert_eq!(agrees(&plain, &guessed, "quotes"), plain.tokens.len());
    // A stop string inside a run the guesses copy: the text ends before it, nothing after it
    // is delivered, and the usage counts only what was.
    let stop = "a second floor";
    let at = guessed
        .text
        .find(stop)
        .expect("the reply quotes the document");
    let mut stopped = request.clone();
    stopped.stop = vec![stop.into()];
    let reply = cold(&engine, &stopped, 8);
    assert_eq!(reply.text, guessed.text[..at]);
    assert!(reply.usage.accepted_tokens > 10, "{:?}", reply.usage);
    assert_eq!(
        reply.usage.completion_tokens as usize,
        reply.tokens.len(),
        "one log-probability per delivered token"
    );
    assert!(reply.usage.completion_tokens < guessed.usage.completion_tokens);
    // max_tokens: exactly that many tokens, the first ones of the longer reply.
    for max in [1, 2, 3, 9, 10, 57] {
        let mut short = request.clone();
        short.max_tokens = Some(max);
        let reply = cold(&engine, &short, 8);
        assert_eq!(reply.usage.completion_tokens, max, "max_tokens {max}");
        assert_eq!(
            ids(&reply)[..],
            ids(&plain)[..max as usize],
            "max_tokens {max}"
        );
        // Guesses never go past the limit.
        assert!(
            reply.usage.drafted_tokens < max,
            "max_tokens {max}: {:?}",
            reply.usage
        );
    }
}

#[test]
fn the_cache_holds_the_reply_and_nothing_guessed_after_it() {
    // The next turn reuses the whole previous exchange exactly as after plain decoding: the
    // rejected guesses were removed from the KV cache.
    let engine = engine();
    let first = greedy_chat(QUOTES, 300);
    let mut turns = Vec::new();
    for draft_max in [0, 8] {
        let reply = cold(&engine, &first, draft_max);
        let rigllama::Prompt::Chat(mut messages) = first.prompt.clone() else {
            unreachable!()
        };
        messages.push(rigllama::Message::new(
            rigllama::Role::Assistant,
            &reply.text,
        ));
        messages.push(rigllama::Message::new(
            rigllama::Role::User,
            "Now say it in one sentence.",
        ));
        let mut second = greedy_chat("", 40);
        second.prompt = rigllama::Prompt::Chat(messages);
        let next = run(&engine, second, draft_max);
        turns.push((reply.usage, next.usage));
    }
    let ((_, plain_next), (guessed, guessed_next)) = (&turns[0], &turns[1]);
    assert!(
        guessed.drafted_tokens > guessed.accepted_tokens,
        "some guesses were wrong"
    );
    assert_eq!(guessed_next.prompt_tokens, plain_next.prompt_tokens);
    assert_eq!(
        guessed_next.cached_prompt_tokens,
        plain_next.cached_prompt_tokens
    );
    assert!(guessed_next.cached_prompt_tokens * 10 >= guessed_next.prompt_tokens * 9);
}

#[test]
fn structured_output_logprobs_and_seeded_sampling_work_with_guesses() {
    let engine = engine();
    // A JSON Schema: the grammar checks each sampled token, guessed or not.
    let schema = r#"{"type":"object","properties":{"name":{"type":"string"},"email":{"type":"string"},"phone":{"type":"string"},"city":{"type":"string"}},"required":["name","email","phone","city"]}"#;
    let mut request = greedy_chat(EXTRACT, 200);
    request.json_schema = Some(schema.into());
    let plain = cold(&engine, &request, 0);
    let guessed = cold(&engine, &request, 8);
    agrees(&plain, &guessed, "json schema");
    let value: serde_json::Value = serde_json::from_str(&guessed.text).expect("valid JSON");
    assert!(value["email"].as_str().unwrap().contains('@'), "{value}");
    assert!(guessed.usage.accepted_tokens > 10, "{:?}", guessed.usage);
    // Sampling with a seed: each token is still drawn from its own position's distribution,
    // with the same random draws in the same order, so the same seed gives the same reply
    // twice, and guesses are accepted whenever the draw picks them.
    let mut sampled = Request::user(CODE_EDIT);
    sampled.sampling.temperature = 0.7;
    sampled.sampling.seed = Some(42);
    sampled.max_tokens = Some(150);
    let a = cold(&engine, &sampled, 8);
    let b = cold(&engine, &sampled, 8);
    assert_eq!(a.text, b.text);
    assert!(a.usage.accepted_tokens > 20, "{:?}", a.usage);
    assert_eq!(a.tokens.len() as u32, a.usage.completion_tokens);
}

#[test]
fn out_of_range_draft_max_is_refused() {
    let engine = engine();
    let mut request = greedy_raw("Hello", 4);
    request.draft_max = rigllama::MAX_DRAFT + 1;
    let error = engine.complete(request).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("draft_max 65")),
        "{error:?}"
    );
}

#[test]
fn cancel_during_guessing_is_prompt_and_leaves_the_engine_serving() {
    let engine = engine();
    let baseline = cold(&engine, &greedy_raw("The capital of France is", 12), 0);
    let mut job = engine
        .submit({
            let mut r = greedy_chat(CODE_EDIT, 300);
            r.draft_max = 8;
            r
        })
        .unwrap();
    let mut delivered = 0;
    let cancelled_at = loop {
        match job.blocking_next() {
            Event::Text { tokens, .. } => {
                delivered += tokens;
                if delivered >= 40 {
                    job.cancel();
                    break std::time::Instant::now();
                }
            }
            Event::Done(usage) => panic!("finished before the cancel: {usage:?}"),
            Event::Failed { error, .. } => panic!("{error}"),
            _ => {}
        }
    };
    loop {
        match job.blocking_next() {
            Event::Failed { error, .. } => {
                assert!(matches!(error, Error::Cancelled(_)), "{error:?}");
                break;
            }
            Event::Done(usage) => panic!("not cancelled: {usage:?}"),
            _ => {}
        }
    }
    let waited = cancelled_at.elapsed();
    assert!(waited.as_millis() < 2000, "cancel took {waited:?}");
    let after = run(&engine, greedy_raw("The capital of France is", 12), 0);
    assert_eq!(after.text, baseline.text);
}

#[test]
fn many_sequences_guess_side_by_side() {
    let engine = Engine::create(
        EngineOptions {
            n_seq: 2,
            ..options()
        },
        None,
    )
    .expect("loads with two sequences");
    let requests = [greedy_chat(CODE_EDIT, 150), greedy_chat(QUOTES, 150)];
    let alone: Vec<Reply> = requests.iter().map(|r| cold(&engine, r, 0)).collect();
    engine.reset().unwrap();
    let together: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| s.spawn(|| run(&engine, r.clone(), 8)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        agrees(a, t, &format!("stream {i}"));
        assert!(t.usage.accepted_tokens > 20, "stream {i}: {:?}", t.usage);
    }
}

#[test]
fn a_recurrent_model_never_guesses() {
    // A reply that repeats one token (a +100 bias) is guessed at every step on the default
    // model; a recurrent model's state cannot be cut back past a wrong guess, so there
    // draft_max is ignored and the reply is plain decoding's.
    let mut request = greedy_raw("a b c d a b c d a b c d a b", 24);
    request.sampling.logit_bias = vec![rigllama::LogitBias {
        target: rigllama::BiasTarget::Token(1000),
        bias: 100.0,
    }];
    let default_model = engine();
    let repeated = cold(&default_model, &request, 8);
    assert!(ids(&repeated).iter().all(|&id| id == 1000));
    assert!(repeated.usage.accepted_tokens > 5, "{:?}", repeated.usage);
    drop(default_model);

    let engine = Engine::create(EngineOptions::new(recurrent_model_path()), None)
        .expect("the recurrent fixture loads");
    let plain = cold(&engine, &request, 0);
    let guessed = cold(&engine, &request, 8);
    assert!(ids(&plain).iter().all(|&id| id == 1000));
    assert_eq!(guessed.usage.drafted_tokens, 0);
    assert_eq!(ids(&guessed), ids(&plain));
    assert_eq!(guessed.usage.completion_tokens, 24);
}
