//! When the context fills: SHIFT drops the oldest exchanges whole and keeps going; FAIL keeps
//! v0.1's behaviour.

mod common;

use common::*;
use rigllama::{ContextOverflow, Engine, Error, FinishReason, Message, Request, Role};

fn engine_with(overflow: ContextOverflow) -> Engine {
    let mut options = options();
    options.n_ctx = 512;
    options.context_overflow = overflow;
    Engine::create(options, None).unwrap()
}

fn turn(messages: &[Message], max_tokens: u32) -> Request {
    let mut request = Request::chat(messages.to_vec());
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(max_tokens);
    request
}

#[test]
fn a_forty_turn_chat_keeps_answering_with_shift() {
    let engine = engine_with(ContextOverflow::Shift);
    let mut messages = vec![Message::new(Role::System, "You are a friendly innkeeper.")];
    let mut total_dropped = 0;
    let mut shifted_turns = 0;
    let mut evaluated = 0;
    let mut prompted = 0;
    for i in 0..40 {
        messages.push(Message::new(
            Role::User,
            format!(
                "Traveller {i} asks: what news from the road, and is there a room free tonight?"
            ),
        ));
        let (reply, usage) = engine
            .complete(turn(&messages, 24))
            .unwrap_or_else(|e| panic!("turn {i}: {e}"));
        assert!(usage.prompt_tokens <= 512, "turn {i}: {usage:?}");
        evaluated += usage.prompt_tokens - usage.cached_prompt_tokens;
        prompted += usage.prompt_tokens;
        if usage.dropped_tokens > 0 {
            shifted_turns += 1;
            total_dropped += usage.dropped_tokens;
            // The system prompt is kept and the reused cache still counts.
            assert!(usage.cached_prompt_tokens > 0, "turn {i}: {usage:?}");
        }
        messages.push(Message::new(Role::Assistant, reply));
    }
    eprintln!(
        "{shifted_turns} of 40 turns dropped old exchanges ({total_dropped} tokens in all); \
         prompt tokens evaluated over all turns: {evaluated} of {prompted}"
    );
    // The kept turns are shifted in the cache, not evaluated again.
    assert!(evaluated * 4 < prompted, "{evaluated} of {prompted}");
    assert!(shifted_turns > 10);
}

#[test]
fn a_reply_that_fills_the_context_shifts_instead_of_stopping() {
    let engine = engine_with(ContextOverflow::Shift);
    let mut messages = vec![Message::new(Role::System, "You are a storyteller.")];
    for i in 0..6 {
        messages.push(Message::new(
            Role::User,
            format!("Part {i}: {}", long_prompt(40)),
        ));
        messages.push(Message::new(Role::Assistant, long_prompt(20)));
    }
    messages.push(Message::new(
        Role::User,
        "Now tell the whole tale again, at length.",
    ));
    let mut request = turn(&messages, 400);
    request.stop.clear();
    let (_, usage) = engine.complete(request).unwrap();
    eprintln!("{usage:?}");
    assert!(usage.dropped_tokens > 0, "{usage:?}");
    assert!(
        usage.completion_tokens >= 400 || usage.finish_reason == FinishReason::Stop,
        "{usage:?}"
    );
}

#[test]
fn fail_keeps_the_v0_1_behaviour() {
    let engine = engine_with(ContextOverflow::Fail);
    let mut messages = vec![Message::new(Role::System, "You are a friendly innkeeper.")];
    for i in 0..12 {
        messages.push(Message::new(
            Role::User,
            format!("Question {i}: {}", long_prompt(20)),
        ));
        messages.push(Message::new(Role::Assistant, long_prompt(20)));
    }
    messages.push(Message::new(Role::User, "And?"));
    let error = engine.complete(turn(&messages, 8)).unwrap_err();
    assert!(matches!(error, Error::ContextOverflow { .. }), "{error}");
}

#[test]
fn shift_cannot_drop_the_turn_being_answered() {
    let engine = engine_with(ContextOverflow::Shift);
    let messages = vec![Message::new(Role::User, long_prompt(700))];
    let error = engine.complete(turn(&messages, 8)).unwrap_err();
    assert!(matches!(error, Error::ContextOverflow { .. }), "{error}");
}
