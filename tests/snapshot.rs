//! Save games: a conversation's KV cache saved, the engine destroyed, a new engine restores
//! it and evaluates only the new turn, with the text the original engine gives from the same
//! state; damaged or foreign snapshots are refused before llama.cpp sees them.

mod common;

use std::time::Instant;

use common::*;
use rigllama::{Engine, EngineOptions, Error, Message, Request, Role};

/// A conversation of about `tokens` tokens that ends with a user turn.
fn conversation(tokens: usize) -> Vec<Message> {
    let mut messages = vec![Message::new(
        Role::System,
        "You are Mira, the lighthouse keeper of a small island village.",
    )];
    let mut turn = 0;
    while messages.iter().map(|m| m.content.len()).sum::<usize>() / 4 < tokens {
        turn += 1;
        messages.push(Message::new(
            Role::User,
            format!("Tell me about day {turn}. {}", long_prompt(60)),
        ));
        messages.push(Message::new(
            Role::Assistant,
            format!(
                "On day {turn} the lamp burned all night. {}",
                long_prompt(40)
            ),
        ));
    }
    messages.push(Message::new(Role::User, "What happened next?"));
    messages
}

fn greedy(messages: Vec<Message>, max_tokens: u32) -> Request {
    let mut request = Request::chat(messages);
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(max_tokens);
    request
}

/// The next turn of `messages`: the reply appended, then a new user line.
fn next_turn(messages: &[Message], reply: &str) -> Vec<Message> {
    let mut next = messages.to_vec();
    next.push(Message::new(Role::Assistant, reply));
    next.push(Message::new(Role::User, "And after that?"));
    next
}

#[test]
fn a_snapshot_restores_a_long_conversation_in_a_new_engine() {
    let messages = conversation(1500);
    let engine = engine();
    let (reply, first) = engine.complete(greedy(messages.clone(), 8)).unwrap();
    assert!(
        first.prompt_tokens >= 1200,
        "{} tokens",
        first.prompt_tokens
    );
    let next = greedy(next_turn(&messages, &reply), 16);
    let snapshot = engine.save_snapshot(next.clone()).unwrap();
    // The original engine's next turn, from exactly the saved state.
    let (expected, _) = engine.complete(next.clone()).unwrap();
    drop(engine);

    let cold_engine = rigllama::Engine::create(options(), None).unwrap();
    let (_, cold) = cold_engine.complete(next.clone()).unwrap();
    drop(cold_engine);

    let engine = rigllama::Engine::create(options(), None).unwrap();
    let started = Instant::now();
    let restored = engine.load_snapshot(&snapshot).unwrap();
    let restore_ms = started.elapsed().as_secs_f64() * 1e3;
    let (text, usage) = engine.complete(next).unwrap();
    let cached = usage.cached_prompt_tokens as f64 / usage.prompt_tokens as f64;
    eprintln!(
        "snapshot: {restored} tokens, {} bytes ({:.0} KB per 1000 tokens); restore {restore_ms:.1} ms \
         + prompt {:.1} ms vs cold prompt {:.1} ms; cached {:.1}%",
        snapshot.len(),
        snapshot.len() as f64 / restored as f64,
        usage.prompt_ms,
        cold.prompt_ms,
        cached * 100.0
    );
    assert!(cached >= 0.95, "cached {cached}");
    assert!(
        restore_ms + usage.prompt_ms <= 0.2 * cold.prompt_ms,
        "restore {restore_ms} + prompt {} vs cold {}",
        usage.prompt_ms,
        cold.prompt_ms
    );
    assert_eq!(text, expected);
}

#[test]
fn damaged_snapshots_are_refused_and_the_engine_keeps_serving() {
    let engine = engine();
    let request = greedy_chat("Hello there", 4);
    engine.complete(request.clone()).unwrap();
    let snapshot = engine.save_snapshot(request.clone()).unwrap();
    let mut refused = 0;
    let lengths =
        (0..snapshot.len()).filter(|&n| n < 512 || n + 64 >= snapshot.len() || n % 997 == 0);
    for len in lengths {
        match engine.load_snapshot(&snapshot[..len]) {
            Err(Error::InvalidArgument(_)) => refused += 1,
            other => panic!("length {len}: {other:?}"),
        }
    }
    let step = (snapshot.len() / 300).max(1);
    for at in (0..snapshot.len()).step_by(step) {
        let mut damaged = snapshot.clone();
        damaged[at] ^= 0xA5;
        match engine.load_snapshot(&damaged) {
            Err(Error::InvalidArgument(_)) => refused += 1,
            other => panic!("flip at {at}: {other:?}"),
        }
    }
    eprintln!("{refused} damaged snapshots refused");
    assert!(engine.load_snapshot(&snapshot).unwrap() > 0);
    let (_, usage) = engine.complete(request).unwrap();
    assert!(usage.cached_prompt_tokens > 0);
}

#[test]
fn a_snapshot_from_another_model_or_too_large_for_n_ctx_is_refused_by_name() {
    let engine = engine();
    let request = greedy(conversation(300), 4);
    engine.complete(request.clone()).unwrap();
    let snapshot = engine.save_snapshot(request).unwrap();
    drop(engine);

    let other = Engine::create(EngineOptions::new(second_model_path()), None).unwrap();
    let error = other.load_snapshot(&snapshot).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("snapshot is for model gemma3-270m-q4_k_m.gguf")
            && m.contains("this engine has gemma3-270m-first12layers.gguf")),
        "{error}"
    );
    drop(other);

    let mut small = options();
    small.n_ctx = 128;
    let small = Engine::create(small, None).unwrap();
    let error = small.load_snapshot(&snapshot).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("n_ctx is 128")),
        "{error}"
    );
    assert!(small.complete(greedy_chat("Hi", 2)).is_ok());
}

#[test]
fn saving_needs_a_cached_prefix() {
    let engine = engine();
    let error = engine
        .save_snapshot(greedy_chat("Never run", 2))
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("nothing of this request's prompt")),
        "{error}"
    );
}
