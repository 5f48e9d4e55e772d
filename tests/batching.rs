//! Many conversations at once: with `n_seq` > 1 requests advance together, each keeps its KV
//! cache, a higher-priority request pauses a lower one, and pause/resume hold the worker.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rigllama::{Engine, Error, Event, FinishReason, Message, Request, Role, Usage};

fn engine_with(n_seq: u32) -> Engine {
    let mut options = options();
    options.n_seq = n_seq;
    Engine::create(options, None).unwrap()
}

/// A story prompt that keeps a small model talking well past `max_tokens`.
fn story(i: usize, max_tokens: u32) -> Request {
    greedy_raw(
        &format!("Chapter {i}. The old sailor looked at the sea and began his long tale:"),
        max_tokens,
    )
}

/// Runs a job to its end on this thread: (text, usage, when it ended).
fn drain(mut job: rigllama::Job) -> (String, Result<Usage, Error>, Instant) {
    let mut text = String::new();
    loop {
        match job.blocking_next() {
            Event::Text { text: piece, .. } => text.push_str(&piece),
            Event::Done(usage) => return (text, Ok(usage), Instant::now()),
            Event::Failed { error, .. } => return (text, Err(error), Instant::now()),
            _ => {}
        }
    }
}

#[test]
fn four_concurrent_streams_advance_together_and_finish_with_full_counts() {
    let engine = engine_with(4);
    let first_pieces = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            let first_pieces = first_pieces.clone();
            std::thread::spawn(move || {
                let mut first = true;
                let usage = engine
                    .stream(story(i, 48), |_| {
                        if std::mem::take(&mut first) {
                            first_pieces.lock().unwrap().push(Instant::now());
                        }
                        true
                    })
                    .unwrap();
                (usage, Instant::now())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (usage, _) in &results {
        assert_eq!(usage.completion_tokens, 48, "{usage:?}");
        assert_eq!(usage.finish_reason, FinishReason::Length);
        assert!(usage.prompt_tokens > 10);
    }
    // Every stream had started before any finished: they ran together.
    let last_start = *first_pieces.lock().unwrap().iter().max().unwrap();
    let first_end = results.iter().map(|(_, end)| *end).min().unwrap();
    assert!(last_start < first_end, "streams ran one after another");
}

#[test]
fn greedy_output_alone_on_four_sequences_equals_one_sequence() {
    let one = engine_with(1);
    let chat = greedy_chat("Describe a lighthouse at night in three sentences.", 40);
    let raw = story(7, 40);
    let (chat_one, _) = one.complete(chat.clone()).unwrap();
    let (raw_one, _) = one.complete(raw.clone()).unwrap();
    drop(one);
    let four = engine_with(4);
    assert_eq!(four.complete(chat).unwrap().0, chat_one);
    assert_eq!(four.complete(raw).unwrap().0, raw_one);
}

#[test]
fn four_interleaved_conversations_each_reuse_their_own_history() {
    let engine = engine_with(4);
    let npcs = ["blacksmith", "innkeeper", "guard", "witch"];
    let mut histories: Vec<Vec<Message>> = npcs
        .iter()
        .map(|npc| {
            vec![
                Message::new(Role::System, format!("You are the village {npc}. Answer briefly.")),
                Message::new(Role::User, format!("Good morning, {npc}! What do you sell or do here, and what news have you heard in the village this week?")),
            ]
        })
        .collect();
    let mut turn_one = Vec::new();
    for history in &mut histories {
        let mut request = Request::chat(history.clone());
        request.sampling.temperature = 0.0;
        request.max_tokens = Some(24);
        let (reply, usage) = engine.complete(request).unwrap();
        history.push(Message::new(Role::Assistant, reply));
        history.push(Message::new(Role::User, "Thank you. Anything else?"));
        turn_one.push(usage);
    }
    for (i, history) in histories.iter().enumerate() {
        let mut request = Request::chat(history.clone());
        request.sampling.temperature = 0.0;
        request.max_tokens = Some(8);
        let (_, usage) = engine.complete(request).unwrap();
        let before = turn_one[i].prompt_tokens + turn_one[i].completion_tokens;
        let reused = usage.cached_prompt_tokens as f64 / before as f64;
        eprintln!(
            "{}: turn 2 reused {} of turn 1's {before} tokens",
            npcs[i], usage.cached_prompt_tokens
        );
        assert!(reused >= 0.9, "{}: {reused:.2}", npcs[i]);
    }
}

#[test]
fn a_high_priority_request_finishes_before_the_low_ones_which_lose_nothing() {
    let engine = engine_with(4);
    let low: Vec<_> = (0..4)
        .map(|i| engine.submit(story(i, 64)).unwrap())
        .collect();
    // Let the low ones start generating.
    std::thread::sleep(Duration::from_millis(600));
    let mut urgent = greedy_chat("Player: where is the exit?", 8);
    urgent.priority = 10;
    let urgent = engine.submit(urgent).unwrap();
    let low_threads: Vec<_> = low
        .into_iter()
        .map(|job| std::thread::spawn(move || drain(job)))
        .collect();
    let (_, urgent_usage, urgent_end) = drain(urgent);
    urgent_usage.unwrap();
    for thread in low_threads {
        let (text, usage, end) = thread.join().unwrap();
        let usage = usage.unwrap();
        assert!(urgent_end < end, "a low-priority request ended first");
        assert_eq!(usage.completion_tokens, 64, "{usage:?}");
        assert!(!text.is_empty());
    }
}

#[test]
fn cancelling_one_of_four_returns_within_half_a_second_while_the_others_finish() {
    let engine = engine_with(4);
    let mut jobs: Vec<_> = (0..4)
        .map(|i| engine.submit(story(i, 96)).unwrap())
        .collect();
    let victim = jobs.remove(1);
    let others: Vec<_> = jobs
        .into_iter()
        .map(|job| std::thread::spawn(move || drain(job)))
        .collect();
    let mut victim = victim;
    // Wait for its first token, then cancel.
    let first = victim.blocking_next();
    assert!(matches!(first, Event::Text { .. }), "{first:?}");
    let cancelled_at = Instant::now();
    victim.cancel();
    let (_, outcome, ended) = drain(victim);
    assert!(matches!(outcome, Err(Error::Cancelled(_))), "{outcome:?}");
    let latency = ended - cancelled_at;
    eprintln!("cancel latency with four running: {latency:?}");
    assert!(latency < Duration::from_millis(500));
    for other in others {
        let (_, usage, _) = other.join().unwrap();
        assert_eq!(usage.unwrap().completion_tokens, 96);
    }
}

#[test]
fn destroy_during_four_streams_returns_promptly_with_no_callback_after() {
    let engine = engine_with(4);
    let calls = Arc::new(AtomicUsize::new(0));
    let destroyed = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            let (calls, destroyed, late) = (calls.clone(), destroyed.clone(), late.clone());
            std::thread::spawn(move || {
                engine.stream(story(i, 400), |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if destroyed.load(Ordering::SeqCst) {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                    true
                })
            })
        })
        .collect();
    while calls.load(Ordering::SeqCst) < 8 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    engine.shutdown();
    destroyed.store(true, Ordering::SeqCst);
    let took = started.elapsed();
    for thread in threads {
        assert!(matches!(thread.join().unwrap(), Err(Error::Cancelled(_))));
    }
    eprintln!("destroy during four streams took {took:?}");
    assert!(took < Duration::from_millis(500));
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "a callback ran after destroy returned"
    );
}

#[test]
fn pause_holds_every_request_and_resume_continues_them() {
    let engine = engine_with(4);
    let pieces = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let engine = engine.clone();
            let pieces = pieces.clone();
            std::thread::spawn(move || {
                engine.stream(story(i, 48), |_| {
                    pieces.fetch_add(1, Ordering::SeqCst);
                    true
                })
            })
        })
        .collect();
    while pieces.load(Ordering::SeqCst) < 4 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    engine.pause().unwrap();
    eprintln!("pause returned in {:?}", started.elapsed());
    // Pieces already sent may still be delivered; then nothing moves.
    std::thread::sleep(Duration::from_millis(100));
    let held = pieces.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        pieces.load(Ordering::SeqCst),
        held,
        "tokens arrived while paused"
    );
    // Submitted while paused: waits; cancelled while paused: ends at once.
    let waiting = engine.submit(story(9, 4)).unwrap();
    let mut doomed = engine.submit(story(10, 4)).unwrap();
    doomed.cancel();
    let cancelled = doomed.next_timeout(Duration::from_millis(300));
    assert!(
        matches!(
            cancelled,
            Some(Event::Failed {
                error: Error::Cancelled(_),
                ..
            })
        ),
        "{cancelled:?}"
    );
    engine.resume();
    for thread in threads {
        let usage = thread.join().unwrap().unwrap();
        assert_eq!(usage.completion_tokens, 48);
    }
    let (_, usage, _) = drain(waiting);
    assert_eq!(usage.unwrap().completion_tokens, 4);
}

#[test]
fn n_seq_out_of_range_is_refused() {
    let mut options = options();
    options.n_seq = 0;
    assert!(Engine::create(options.clone(), None).is_err());
    options.n_seq = 65;
    let error = Engine::create(options, None).unwrap_err();
    assert!(error.to_string().contains("n_seq 65"), "{error}");
}

#[test]
fn destroy_while_paused_ends_every_request_promptly() {
    let engine = engine_with(2);
    let pieces = Arc::new(AtomicUsize::new(0));
    let streaming = {
        let (engine, pieces) = (engine.clone(), pieces.clone());
        std::thread::spawn(move || {
            engine.stream(story(1, 200), |_| {
                pieces.fetch_add(1, Ordering::SeqCst);
                true
            })
        })
    };
    while pieces.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.pause().unwrap();
    let queued = engine.submit(story(2, 8)).unwrap();
    let started = Instant::now();
    engine.shutdown();
    let took = started.elapsed();
    assert!(matches!(
        streaming.join().unwrap(),
        Err(Error::Cancelled(_))
    ));
    let (_, outcome, _) = drain(queued);
    assert!(matches!(outcome, Err(Error::Cancelled(_))), "{outcome:?}");
    eprintln!("destroy while paused took {took:?}");
    assert!(took < Duration::from_millis(500));
}

#[test]
fn streams_that_fill_the_shared_context_together_end_with_length_not_an_error() {
    let mut options = options();
    options.n_seq = 4;
    options.n_ctx = 256;
    let engine = Engine::create(options, None).unwrap();
    let jobs: Vec<_> = (0..4)
        .map(|i| engine.submit(story(i, 120)).unwrap())
        .collect();
    let threads: Vec<_> = jobs
        .into_iter()
        .map(|job| std::thread::spawn(move || drain(job)))
        .collect();
    let mut total = 0;
    for thread in threads {
        let (_, usage, _) = thread.join().unwrap();
        let usage = usage.unwrap();
        assert_eq!(usage.finish_reason, FinishReason::Length, "{usage:?}");
        total += usage.prompt_tokens + usage.completion_tokens;
    }
    // Four 120-token replies cannot all fit in 256 shared cells: some were cut at the edge.
    assert!(total <= 256 + 4, "{total} tokens in a 256-token context");
}
