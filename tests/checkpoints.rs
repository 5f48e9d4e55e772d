//! State checkpoints of a recurrent model (the tiny Mamba fixture) and a hybrid one (the tiny
//! LFM2): a later request that shares a prefix with an earlier one resumes from a copy of the
//! state instead of evaluating the conversation again, within the count and byte bounds, with
//! the same reply.

mod common;

use common::*;
use rigllama::{Checkpointing, Engine, EngineOptions, Message, Request, Role, Usage};

fn mamba(checkpoints: Checkpointing, n_seq: u32) -> Engine {
    load(recurrent_model_path(), checkpoints, n_seq)
}

fn load(path: std::path::PathBuf, checkpoints: Checkpointing, n_seq: u32) -> Engine {
    let options = EngineOptions {
        checkpoints,
        n_seq,
        ..EngineOptions::new(path)
    };
    Engine::create(options, None).expect("the fixture loads")
}

fn no_checkpoints() -> Checkpointing {
    Checkpointing {
        max_count: 0,
        ..Checkpointing::default()
    }
}

/// A long system prompt (about 400 tokens) and one user line.
fn first_turn(topic: &str) -> Vec<Message> {
    vec![
        Message::new(Role::System, long_prompt(400)),
        Message::new(Role::User, format!("Tell me about {topic}.")),
    ]
}

fn greedy(messages: &[Message], max_tokens: u32) -> Request {
    let mut request = Request::chat(messages.to_vec());
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(max_tokens);
    request
}

/// Runs `messages` and returns the conversation with the reply and `next` appended.
fn turn(engine: &Engine, messages: &[Message], next: &str) -> (Vec<Message>, String, Usage) {
    let (reply, usage) = engine.complete(greedy(messages, 12)).expect("a turn");
    let mut history = messages.to_vec();
    history.push(Message::new(Role::Assistant, reply.clone()));
    history.push(Message::new(Role::User, next));
    (history, reply, usage)
}

#[test]
fn turn_two_resumes_where_turn_one_left_off_and_answers_the_same() {
    let engine = mamba(Checkpointing::default(), 1);
    let described = engine.describe().checkpoints;
    assert!(described.active, "a recurrent model takes checkpoints");
    let (history, _, first) = turn(&engine, &first_turn("rivers"), "And the sea?");
    let (second_reply, second) = engine.complete(greedy(&history, 12)).unwrap();
    println!("turn 1 {first:?}\nturn 2 {second:?}");
    assert!(
        second.cached_prompt_tokens as f64 >= 0.9 * first.prompt_tokens as f64,
        "turn 2 reuses >= 90% of turn 1's {} prompt tokens: {}",
        first.prompt_tokens,
        second.cached_prompt_tokens
    );
    // Everything up to the end of turn 1's prompt is reused: only the reply and the new
    // user line (and at most turn 1's last prompt token) are evaluated.
    assert!(second.cached_prompt_tokens + 1 >= first.prompt_tokens);

    same_as_cold(recurrent_model_path(), &history, &second_reply, &second);
}

/// The conversation `history` on a fresh engine without checkpoints evaluates everything,
/// and greedy decoding gives the reply a resumed request gave.
fn same_as_cold(path: std::path::PathBuf, history: &[Message], resumed: &str, usage: &Usage) {
    let cold_engine = load(path.clone(), no_checkpoints(), 1);
    assert!(!cold_engine.describe().checkpoints.active);
    let (cold_reply, cold) = cold_engine.complete(greedy(history, 12)).unwrap();
    assert_eq!(cold.cached_prompt_tokens, 0);
    assert_eq!(cold_reply, resumed, "resumed and cold replies agree");
    println!(
        "{}: turn 2 prompt {:.1} ms resumed ({} of {} tokens cached) vs {:.1} ms cold",
        path.display(),
        usage.prompt_ms,
        usage.cached_prompt_tokens,
        usage.prompt_tokens,
        cold.prompt_ms
    );
}

#[test]
fn a_regenerated_reply_resumes_from_a_checkpoint_and_without_them_starts_over() {
    for (path, checkpoints) in [
        (recurrent_model_path(), Checkpointing::default()),
        (recurrent_model_path(), no_checkpoints()),
        // A hybrid's checkpoint holds the recurrent layers' state; its attention layers'
        // cache is cut back to the same place.
        (hybrid_model_path(), Checkpointing::default()),
        (hybrid_model_path(), no_checkpoints()),
    ] {
        let engine = load(path, checkpoints, 1);
        let messages = first_turn("mountains");
        let (first_reply, first) = engine.complete(greedy(&messages, 12)).unwrap();
        // The same prompt again (a regenerated reply): the sequence has moved on past it
        // and cannot be cut back.
        let (again_reply, again) = engine.complete(greedy(&messages, 12)).unwrap();
        assert_eq!(
            again_reply, first_reply,
            "greedy: the same reply either way"
        );
        if checkpoints.max_count > 0 {
            assert_eq!(
                again.cached_prompt_tokens + 1,
                first.prompt_tokens,
                "all but the last token reused"
            );
        } else {
            assert_eq!(again.cached_prompt_tokens, 0, "nothing to resume from");
        }
    }
}

#[test]
fn conversations_taking_turns_on_one_sequence_each_resume_their_own() {
    let engine = mamba(Checkpointing::default(), 1);
    let (a_next, _, a1) = turn(&engine, &first_turn("rivers"), "And the sea?");
    let (b_next, _, b1) = turn(&engine, &first_turn("deserts"), "And oases?");
    // A's state was replaced by B's; A resumes from its end-of-reply checkpoint.
    let (_, _, a2) = turn(&engine, &a_next, "Thanks.");
    let (_, _, b2) = turn(&engine, &b_next, "Thanks.");
    for (first, second) in [(a1, a2), (b1, b2)] {
        assert!(
            second.cached_prompt_tokens + 1 >= first.prompt_tokens,
            "{} of turn 1's {} prompt tokens reused",
            second.cached_prompt_tokens,
            first.prompt_tokens
        );
    }
}

#[test]
fn the_bounds_hold_over_fifty_turns() {
    for path in [recurrent_model_path(), hybrid_model_path()] {
        bounds_hold_over_fifty_turns(path);
    }
}

fn bounds_hold_over_fifty_turns(path: std::path::PathBuf) {
    // One checkpoint's size first (a recurrent state's size does not grow with the tokens).
    let probe = load(path.clone(), Checkpointing::default(), 1);
    probe.complete(greedy_chat("Hello", 2)).unwrap();
    let one = probe.describe().checkpoints;
    assert!(one.count >= 1 && one.bytes > 0, "{one:?}");
    let size = one.bytes / one.count as u64;
    drop(probe);

    for limits in [
        Checkpointing {
            max_count: 4,
            max_bytes: u64::MAX,
        },
        Checkpointing {
            max_count: 100,
            max_bytes: 3 * size,
        },
    ] {
        let engine = load(path.clone(), limits, 1);
        let mut messages = vec![Message::new(Role::User, "Count with me.")];
        let mut most = 0;
        for n in 0..50 {
            let (next, _, usage) = turn(&engine, &messages, &format!("Turn {n}."));
            if n > 0 {
                assert!(
                    usage.cached_prompt_tokens > 0,
                    "turn {n} resumes from something: {usage:?}"
                );
            }
            let held = engine.describe().checkpoints;
            assert_eq!(
                held.bytes,
                held.count as u64 * size,
                "turn {n}: the bytes reported are the copies kept"
            );
            assert!(
                held.count <= limits.max_count && held.bytes <= limits.max_bytes,
                "turn {n}: {held:?} within {limits:?}"
            );
            most = most.max(held.count);
            messages = next;
        }
        println!(
            "{}: {limits:?}: at most {most} checkpoints of {size} bytes",
            path.display()
        );
        assert!(most >= 3, "the bound, not something else, limits them");
    }
}

#[test]
fn a_snapshot_of_a_recurrent_conversation_resumes_twice() {
    let engine = mamba(Checkpointing::default(), 1);
    let (history, _, _) = turn(&engine, &first_turn("forests"), "And trees?");
    let snapshot = engine.save_snapshot(greedy(&history, 12)).expect("saved");
    let fresh = mamba(Checkpointing::default(), 1);
    let restored = fresh.load_snapshot(&snapshot).expect("loaded");
    assert!(restored > 400);
    let (_, first) = fresh.complete(greedy(&history, 12)).unwrap();
    // Another last line instead: the sequence moved on, the snapshot's checkpoint brings it
    // back.
    let mut other = history.clone();
    *other.last_mut().unwrap() = Message::new(Role::User, "And flowers?");
    let (_, second) = fresh.complete(greedy(&other, 12)).unwrap();
    assert_eq!(first.cached_prompt_tokens as usize, restored);
    assert_eq!(second.cached_prompt_tokens as usize, restored);
}

#[test]
fn models_that_can_be_cut_back_take_none() {
    let engine = engine();
    engine.complete(greedy_chat("Hello", 4)).unwrap();
    let held = engine.describe().checkpoints;
    assert!(
        !held.active && held.count == 0 && held.bytes == 0,
        "{held:?}"
    );
}

#[test]
fn a_hybrid_model_resumes_turn_two_and_answers_as_a_cold_engine_does() {
    let engine = load(hybrid_model_path(), Checkpointing::default(), 1);
    assert!(
        engine.describe().checkpoints.active,
        "a hybrid model takes checkpoints"
    );
    let (history, _, first) = turn(&engine, &first_turn("rivers"), "And the sea?");
    // An edited second line, then the original: the second resumes from the checkpoint at
    // the end of turn 1's reply... or its prompt, whichever the template's rendering keeps.
    let mut edited = history.clone();
    *edited.last_mut().unwrap() = Message::new(Role::User, "And lakes?");
    let (_, edit) = engine.complete(greedy(&edited, 12)).unwrap();
    let (reply, second) = engine.complete(greedy(&history, 12)).unwrap();
    for usage in [&edit, &second] {
        assert!(
            usage.cached_prompt_tokens + 1 >= first.prompt_tokens,
            "turn 1's {} prompt tokens reused: {usage:?}",
            first.prompt_tokens
        );
    }
    same_as_cold(hybrid_model_path(), &history, &reply, &second);
}

#[test]
fn conversations_on_two_sequences_at_once_resume_their_own() {
    let engine = mamba(Checkpointing::default(), 2);
    let topics = ["rivers", "deserts"];
    let firsts: Vec<(Vec<Message>, Usage)> = std::thread::scope(|s| {
        let handles: Vec<_> = topics
            .iter()
            .map(|topic| {
                let engine = &engine;
                s.spawn(move || {
                    let (next, _, usage) = turn(engine, &first_turn(topic), "Go on.");
                    (next, usage)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // A third conversation takes one of the sequences meanwhile.
    turn(&engine, &first_turn("forests"), "Go on.");
    std::thread::scope(|s| {
        for (history, first) in &firsts {
            let engine = &engine;
            s.spawn(move || {
                let (_, usage) = engine.complete(greedy(history, 12)).unwrap();
                assert!(
                    usage.cached_prompt_tokens + 1 >= first.prompt_tokens,
                    "{} of turn 1's {} prompt tokens reused",
                    usage.cached_prompt_tokens,
                    first.prompt_tokens
                );
            });
        }
    });
}
