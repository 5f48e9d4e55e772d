//! The engine's promises (API.md), one test each, against the real default model.
//! Run one at a time (`--test-threads=1`): two ggml thread pools on two cores collapse.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;
use rigllama::{Engine, EngineOptions, Error, Event, FinishReason, Message, Request, Role};

#[test]
fn complete_returns_text_and_usage() {
    let engine = engine();
    let (text, usage) = engine
        .complete(greedy_raw("The capital of France is", 16))
        .unwrap();
    assert!(!text.is_empty());
    assert_eq!(
        usage.prompt_tokens,
        engine
            .count_tokens(greedy_raw("The capital of France is", 16))
            .unwrap()
    );
    assert!(usage.prompt_tokens >= 5, "{usage:?}");
    assert_eq!(usage.completion_tokens, 16);
    assert_eq!(usage.finish_reason, FinishReason::Length);
    assert!(
        usage.prompt_ms > 0.0 && usage.generation_ms > 0.0,
        "{usage:?}"
    );
}

#[test]
fn stream_pieces_concatenate_to_complete_text_after_reset() {
    let engine = engine();
    let request = greedy_chat("Describe a sunrise over the mountains in detail.", 80);
    engine.reset().unwrap();
    let (text, usage) = engine.complete(request.clone()).unwrap();
    engine.reset().unwrap();
    let mut pieces = Vec::new();
    let streamed = engine
        .stream(request, |piece| {
            pieces.push(piece.to_owned());
            true
        })
        .unwrap();
    assert_eq!(pieces.concat(), text);
    assert!(pieces.len() > 10, "{} pieces", pieces.len());
    assert!(pieces.iter().all(|p| !p.is_empty() && !p.contains('\0')));
    assert_eq!(streamed.completion_tokens, usage.completion_tokens);
    assert_eq!(streamed.cached_prompt_tokens, 0, "reset empties the cache");
}

#[test]
fn same_fixed_seed_gives_same_text_from_the_same_cache_state() {
    let engine = engine();
    let mut request = Request::raw("My favourite animal is");
    request.max_tokens = Some(24);
    request.sampling.seed = Some(1234);
    engine.reset().unwrap();
    let (first, usage) = engine.complete(request.clone()).unwrap();
    assert_eq!(usage.seed, 1234);
    engine.reset().unwrap();
    let (second, _) = engine.complete(request).unwrap();
    assert_eq!(first, second);
}

#[test]
fn random_seed_is_resolved_and_reported() {
    let engine = engine();
    let mut request = Request::raw("Hello");
    request.max_tokens = Some(2);
    let (_, a) = engine.complete(request.clone()).unwrap();
    let (_, b) = engine.complete(request).unwrap();
    assert_ne!(a.seed, u32::MAX);
    assert_ne!(a.seed, b.seed, "two random seeds in a row were equal");
}

#[test]
fn turn_two_of_a_chat_reuses_the_cache_for_turn_one() {
    let engine = engine();
    engine.reset().unwrap();
    let mut history = vec![Message::new(Role::User, "What is the capital of France?")];
    let mut first = Request::chat(history.clone());
    first.sampling.temperature = 0.0;
    first.max_tokens = Some(48);
    let (reply, turn1) = engine.complete(first).unwrap();
    history.push(Message::new(Role::Assistant, reply));
    history.push(Message::new(
        Role::User,
        "And what is the capital of Germany?",
    ));
    let mut second = Request::chat(history);
    second.sampling.temperature = 0.0;
    second.max_tokens = Some(16);
    let (_, turn2) = engine.complete(second).unwrap();
    let turn1_total = turn1.prompt_tokens + turn1.completion_tokens;
    let ratio = turn2.cached_prompt_tokens as f64 / turn1_total as f64;
    println!("turn 1: {turn1:?}\nturn 2: {turn2:?}\ncached ratio {ratio:.3}");
    assert!(
        ratio >= 0.9,
        "turn 2 reused {} of turn 1's {turn1_total} tokens",
        turn2.cached_prompt_tokens
    );
}

#[test]
fn max_tokens_is_honoured() {
    let engine = engine();
    let (_, usage) = engine
        .complete(greedy_raw("Count: one, two, three,", 7))
        .unwrap();
    assert_eq!(usage.completion_tokens, 7);
    assert_eq!(usage.finish_reason, FinishReason::Length);
}

#[test]
fn unlimited_max_tokens_stops_when_the_context_is_full() {
    let mut options = options();
    options.n_ctx = 96;
    let engine = Engine::create(options, None).unwrap();
    let mut request = greedy_raw("Count: one, two, three,", 1);
    request.max_tokens = None;
    let started = Instant::now();
    let (_, usage) = engine.complete(request).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(usage.finish_reason, FinishReason::Length);
    assert_eq!(
        usage.prompt_tokens + usage.completion_tokens,
        96 + 1,
        "{usage:?}"
    );
}

#[test]
fn stop_string_is_not_emitted_even_when_split_across_tokens() {
    let engine = engine();
    let (full, _) = engine
        .complete(greedy_raw("The three primary colors are", 40))
        .unwrap();
    // A stop string that starts in the middle of a word and spans a token boundary.
    let at = full
        .find("blue")
        .or_else(|| full.find(", "))
        .expect("a place to stop")
        + 1;
    let stop: String = full[at..].chars().take(4).collect();
    let mut request = greedy_raw("The three primary colors are", 40);
    request.stop = vec![stop.clone()];
    let mut pieces = Vec::new();
    let usage = engine
        .stream(request, |p| {
            pieces.push(p.to_owned());
            true
        })
        .unwrap();
    let streamed = pieces.concat();
    assert_eq!(
        streamed,
        full[..full.find(&stop).unwrap()],
        "stop {stop:?} in {full:?}"
    );
    assert!(!streamed.contains(&stop));
    assert_eq!(usage.finish_reason, FinishReason::Stop);
}

#[test]
fn callback_returning_stop_ends_with_finish_callback() {
    let engine = engine();
    let mut calls = 0;
    let usage = engine
        .stream(greedy_raw("Once upon a time", 100), |_| {
            calls += 1;
            calls < 3
        })
        .unwrap();
    assert_eq!(calls, 3);
    assert_eq!(usage.finish_reason, FinishReason::Callback);
    assert!((3..10).contains(&usage.completion_tokens), "{usage:?}");
}

/// Runs `request` on a thread, cancels when `cancel_when` says so, and returns how long the
/// request took to end after the cancel, and its result.
fn cancel_latency(
    engine: &Engine,
    request: Request,
    cancel_when: impl FnOnce(&mpsc::Receiver<()>),
) -> (Duration, Result<rigllama::Usage, Error>, usize) {
    let (piece_tx, piece_rx) = mpsc::channel();
    let pieces = Arc::new(AtomicUsize::new(0));
    let worker_engine = engine.clone();
    let counter = pieces.clone();
    let runner = std::thread::spawn(move || {
        let result = worker_engine.stream(request, |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = piece_tx.send(());
            true
        });
        (Instant::now(), result)
    });
    cancel_when(&piece_rx);
    let pieces_at_cancel = pieces.load(Ordering::SeqCst);
    let cancelled_at = Instant::now();
    engine.cancel();
    let (ended_at, result) = runner.join().unwrap();
    (
        ended_at.saturating_duration_since(cancelled_at),
        result,
        pieces_at_cancel,
    )
}

#[test]
fn cancel_from_another_thread_during_generation_returns_cancelled_within_half_a_second() {
    let engine = engine();
    let mut request = greedy_raw("Write a long story about the sea.", 1);
    request.max_tokens = None;
    let (latency, result, pieces) = cancel_latency(&engine, request, |pieces| {
        for _ in 0..10 {
            pieces.recv().unwrap();
        }
    });
    println!("cancel during generation took {latency:?} after {pieces} pieces");
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    assert!(
        engine.complete(greedy_raw("Hello", 2)).is_ok(),
        "next request runs normally"
    );
}

#[test]
fn cancel_during_a_long_prompt_returns_cancelled_within_half_a_second() {
    let engine = engine();
    // ~2000 tokens: four 512-token chunks, each ~1.2 s here.
    let request = greedy_raw(&long_prompt(2000), 8);
    let prompt_tokens = engine.count_tokens(request.clone()).unwrap();
    assert!(prompt_tokens > 1500, "{prompt_tokens}");
    let (latency, result, pieces) = cancel_latency(&engine, request, |_| {
        std::thread::sleep(Duration::from_millis(700));
    });
    println!("cancel during a {prompt_tokens}-token prompt took {latency:?}");
    assert_eq!(pieces, 0, "the cancel must land during prompt evaluation");
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    let (_, usage) = engine.complete(greedy_raw("Hello", 2)).unwrap();
    assert_eq!(usage.completion_tokens, 2);
}

#[test]
fn cancel_affects_only_requests_submitted_before_it() {
    let engine = engine();
    let before = engine.submit(greedy_raw("Once upon a time", 64)).unwrap();
    let queued = engine.submit(greedy_raw("Once upon a time", 64)).unwrap();
    engine.cancel();
    let after = engine.submit(greedy_raw("Hello", 3)).unwrap();
    for mut job in [before, queued] {
        let last = drain(&mut job);
        assert!(
            matches!(
                last,
                Event::Failed {
                    error: Error::Cancelled(_),
                    ..
                }
            ),
            "{last:?}"
        );
    }
    let mut after = after;
    assert!(matches!(drain(&mut after), Event::Done(_)));
}

fn drain(job: &mut rigllama::Job) -> Event {
    loop {
        match job.blocking_next() {
            Event::Text { .. } => continue,
            last => return last,
        }
    }
}

#[test]
fn job_try_next_never_blocks_and_events_end_with_one_final_event() {
    let engine = engine();
    let mut job = engine.submit(greedy_raw("Once upon a time", 20)).unwrap();
    let mut texts = String::new();
    let mut worst = Duration::ZERO;
    let last = loop {
        let started = Instant::now();
        let event = job.try_next();
        worst = worst.max(started.elapsed());
        match event {
            None => std::thread::sleep(Duration::from_millis(1)),
            Some(Event::Text { text, .. }) => texts.push_str(&text),
            Some(last) => break last,
        }
    };
    println!("worst try_next: {worst:?}");
    assert!(worst < Duration::from_millis(5), "{worst:?}");
    assert!(matches!(last, Event::Done(_)));
    assert_eq!(
        job.try_next(),
        Some(last.clone()),
        "the final event repeats"
    );
    engine.reset().unwrap();
    let (text, _) = engine.complete(greedy_raw("Once upon a time", 20)).unwrap();
    engine.reset().unwrap();
    let mut job = engine.submit(greedy_raw("Once upon a time", 20)).unwrap();
    let mut again = String::new();
    while let Event::Text { text, .. } = job.blocking_next() {
        again.push_str(&text);
    }
    assert_eq!(again, text);
}

#[test]
fn dropping_a_job_mid_generation_frees_the_engine_promptly() {
    let engine = engine();
    let mut request = greedy_raw("Write a long story about the sea.", 1);
    request.max_tokens = None;
    let mut job = engine.submit(request).unwrap();
    for _ in 0..5 {
        assert!(matches!(job.blocking_next(), Event::Text { .. }));
    }
    let dropped = Instant::now();
    drop(job);
    let (_, usage) = engine.complete(greedy_raw("Hello", 1)).unwrap();
    let elapsed = dropped.elapsed();
    println!("next request finished {elapsed:?} after the drop");
    assert_eq!(usage.completion_tokens, 1);
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

#[test]
fn reload_to_a_second_model_changes_answers_and_a_bad_path_keeps_the_old_one() {
    let engine = engine();
    let question = || greedy_raw("The sun rises in the", 12);
    let (first, _) = engine.complete(question()).unwrap();
    let second_path = second_model_path();
    let described = engine
        .reload(EngineOptions::new(&second_path), None)
        .unwrap();
    assert_eq!(described.model_path, second_path.to_string_lossy());
    assert_eq!(engine.describe().model_path, second_path.to_string_lossy());
    let (second, _) = engine.complete(question()).unwrap();
    assert_ne!(first, second, "the second model answers differently");

    let error = engine
        .reload(EngineOptions::new("/nonexistent/x.gguf"), None)
        .unwrap_err();
    assert!(
        matches!(&error, Error::ModelLoadFailed(m) if m.contains("/nonexistent/x.gguf")),
        "{error}"
    );
    let (still, _) = engine.complete(question()).unwrap();
    assert_eq!(still, second, "the second model still answers");
    assert_eq!(engine.describe().model_path, second_path.to_string_lossy());
}

#[test]
fn reload_runs_after_requests_submitted_before_it() {
    let engine = engine();
    let mut running = engine.submit(greedy_raw("Once upon a time", 32)).unwrap();
    engine.reload(options(), None).unwrap();
    let last = drain(&mut running);
    assert!(
        matches!(last, Event::Done(ref u) if u.completion_tokens == 32),
        "{last:?}"
    );
}

#[test]
fn four_threads_five_requests_each_all_succeed() {
    let engine = engine();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        let prompt = format!("Thread {t} request {i}: the number after {i} is");
                        engine
                            .complete(greedy_raw(&prompt, 6))
                            .map(|(text, u)| (text, u.completion_tokens))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut done = 0;
    for thread in threads {
        for result in thread.join().unwrap() {
            let (text, tokens) = result.expect("every request succeeds");
            assert!(!text.is_empty());
            assert_eq!(tokens, 6);
            done += 1;
        }
    }
    assert_eq!(done, 20);
}

#[test]
fn default_threads_never_exceed_the_cpus_available() {
    let engine = engine();
    let cpus = std::thread::available_parallelism().unwrap().get() as u32;
    assert_eq!(engine.describe().n_threads, cpus);
}

#[test]
fn two_engines_live_in_one_process() {
    let mut options = options();
    options.n_threads = Some(1);
    let a = Engine::create(options.clone(), None).unwrap();
    let b = Engine::create(options, None).unwrap();
    let (ta, _) = a.complete(greedy_raw("Hello", 3)).unwrap();
    a.shutdown();
    let (tb, _) = b.complete(greedy_raw("Hello", 3)).unwrap();
    assert_eq!(ta, tb);
    assert!(matches!(
        a.complete(greedy_raw("Hello", 1)),
        Err(Error::Cancelled(_))
    ));
}

#[test]
fn progress_false_aborts_the_load_with_cancelled() {
    let mut calls = 0;
    let mut progress = |_: f32| {
        calls += 1;
        false
    };
    let result = Engine::create(options(), Some(&mut progress));
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
    assert!(calls >= 1);
}

#[test]
fn chat_requests_use_the_gemma_template_for_the_base_model() {
    let engine = engine();
    let description = engine.describe();
    assert_eq!(description.chat_template, "gemma");
    assert_eq!(
        description.chat_template_source,
        "built-in for architecture"
    );
    let tokens = engine.count_tokens(greedy_chat("hi", 1)).unwrap();
    let raw = engine
        .count_tokens(greedy_raw(
            "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
            1,
        ))
        .unwrap();
    assert_eq!(
        tokens, raw,
        "the chat is formatted exactly as Gemma's turn markup"
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_panic_in_the_worker_fails_that_request_with_internal_and_the_engine_keeps_serving() {
    let engine = engine();
    let result = engine.complete(Request::raw(rigllama::fault::PANIC_PROMPT));
    assert!(matches!(result, Err(Error::Internal(_))), "{result:?}");
    let (_, usage) = engine.complete(greedy_raw("Hello", 2)).unwrap();
    assert_eq!(usage.completion_tokens, 2);
}
