//! A good guest in the host's process: engines share the cores (their computations take
//! turns through the process's CPU share), an idle engine's threads sleep, and
//! `thread_priority` LOW is applied to every thread an engine starts. These tests show the
//! behaviour; `make bench-host` measures the speeds.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rigllama::{Engine, Error, Event, FinishReason, ThreadPriority};

const PROMPT: &str = "The old lighthouse keeper looked out at the storm and";

/// Drains `job` and returns its text and final event.
fn finish(mut job: rigllama::Job) -> (String, Event) {
    let mut text = String::new();
    loop {
        match job.blocking_next() {
            Event::Text { text: piece, .. } => text.push_str(&piece),
            event @ (Event::Done(_) | Event::Failed { .. }) => return (text, event),
            _ => {}
        }
    }
}

fn alone(prompt: &str, tokens: u32) -> String {
    let engine = engine();
    engine.complete(greedy_raw(prompt, tokens)).unwrap().0
}

#[test]
fn two_engines_generating_at_once_both_finish_with_the_text_each_gives_alone() {
    let expected_a = alone(PROMPT, 48);
    let expected_b = alone("Once upon a time, in a small village by the sea,", 48);
    let (a, b) = (engine(), engine());
    let job_a = a.submit(greedy_raw(PROMPT, 48)).unwrap();
    let job_b = b
        .submit(greedy_raw(
            "Once upon a time, in a small village by the sea,",
            48,
        ))
        .unwrap();
    let (text_b, end_b) = finish(job_b);
    let (text_a, end_a) = finish(job_a);
    assert!(
        matches!(&end_a, Event::Done(u) if u.completion_tokens == 48),
        "{end_a:?}"
    );
    assert!(
        matches!(&end_b, Event::Done(u) if u.completion_tokens == 48),
        "{end_b:?}"
    );
    assert_eq!(text_a, expected_a);
    assert_eq!(text_b, expected_b);
}

#[test]
fn three_engines_generating_at_once_all_finish() {
    let engines: Vec<Engine> = (0..3).map(|_| engine()).collect();
    let jobs: Vec<_> = engines
        .iter()
        .map(|e| e.submit(greedy_raw(PROMPT, 24)).unwrap())
        .collect();
    let texts: Vec<String> = jobs
        .into_iter()
        .map(|job| {
            let (text, end) = finish(job);
            assert!(
                matches!(&end, Event::Done(u) if u.completion_tokens == 24),
                "{end:?}"
            );
            text
        })
        .collect();
    assert!(texts.iter().all(|t| *t == texts[0]), "{texts:?}");
}

#[test]
fn a_cancel_lands_promptly_while_another_engine_holds_the_cores() {
    let (busy, cancelled) = (engine(), engine());
    // A long prompt keeps the other engine's steps long (128- to 512-token chunks).
    let mut long = greedy_raw(&long_prompt(2500), 64);
    long.max_tokens = Some(64);
    let busy_job = busy.submit(long).unwrap();
    let mut job = cancelled.submit(greedy_raw(PROMPT, 400)).unwrap();
    // Wait until it generates, then cancel it.
    loop {
        if let Event::Text { .. } = job.blocking_next() {
            break;
        }
    }
    let at = Instant::now();
    job.cancel();
    let end = loop {
        if let event @ (Event::Done(_) | Event::Failed { .. }) = job.blocking_next() {
            break event;
        }
    };
    let took = at.elapsed();
    println!("cancel landed in {took:?} while the other engine evaluated a long prompt");
    assert!(
        matches!(
            &end,
            Event::Failed {
                error: Error::Cancelled(_),
                ..
            }
        ),
        "{end:?}"
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
    let (_, busy_end) = finish(busy_job);
    assert!(matches!(busy_end, Event::Done(_)), "{busy_end:?}");
}

#[test]
fn destroying_one_engine_mid_generation_leaves_the_other_generating() {
    let expected = alone(PROMPT, 40);
    let (keeper, doomed) = (engine(), engine());
    let kept = keeper.submit(greedy_raw(PROMPT, 40)).unwrap();
    let mut lost = doomed.submit(greedy_raw(PROMPT, 400)).unwrap();
    loop {
        if let Event::Text { .. } = lost.blocking_next() {
            break;
        }
    }
    let at = Instant::now();
    doomed.shutdown();
    println!("destroy returned in {:?}", at.elapsed());
    let (_, lost_end) = finish(lost);
    assert!(
        matches!(
            &lost_end,
            Event::Failed {
                error: Error::Cancelled(_),
                ..
            }
        ),
        "{lost_end:?}"
    );
    let (text, end) = finish(kept);
    assert!(matches!(end, Event::Done(_)), "{end:?}");
    assert_eq!(text, expected);
}

#[test]
fn an_engine_created_and_destroyed_repeatedly_while_another_generates() {
    let expected = alone(PROMPT, 64);
    let runner = engine();
    let job = runner.submit(greedy_raw(PROMPT, 64)).unwrap();
    for round in 0..4 {
        let churn = engine();
        let (text, usage) = churn.complete(greedy_raw("Hello", 4)).unwrap();
        assert_eq!(usage.completion_tokens, 4, "round {round}: {text:?}");
        drop(churn);
    }
    let (text, end) = finish(job);
    assert!(matches!(end, Event::Done(_)), "{end:?}");
    assert_eq!(text, expected);
}

#[test]
fn pausing_one_engine_does_not_block_the_other() {
    let (paused, free) = (engine(), engine());
    let held = paused.submit(greedy_raw(PROMPT, 200)).unwrap();
    let running = free.submit(greedy_raw(PROMPT, 400)).unwrap();
    let at = Instant::now();
    paused.pause().unwrap();
    println!(
        "pause returned in {:?} with another engine generating",
        at.elapsed()
    );
    let (_, usage) = free.complete(greedy_raw("Hello", 8)).unwrap_or_else(|e| {
        panic!("the other engine serves while this one is paused: {e}");
    });
    assert_eq!(usage.completion_tokens, 8);
    paused.resume();
    drop(running);
    let (_, end) = finish(held);
    assert!(
        matches!(&end, Event::Done(u) if u.completion_tokens == 200),
        "{end:?}"
    );
}

/// CPU time this process used (all threads), from getrusage.
fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[test]
fn an_idle_engine_sleeps_and_wakes_for_the_next_request() {
    let engine = engine();
    engine.reset().unwrap();
    let first = engine.complete(greedy_raw(PROMPT, 32)).unwrap().0;
    let before = process_cpu();
    std::thread::sleep(Duration::from_secs(1));
    let idle = process_cpu() - before;
    println!("CPU while idle for 1 s after a reply: {idle:?}");
    // ggml's default polling spun ~150 ms of CPU per core after every reply.
    assert!(idle < Duration::from_millis(30), "{idle:?}");
    // From the same (empty) cache, so the batch shapes and the greedy text are the same.
    engine.reset().unwrap();
    let second = engine.complete(greedy_raw(PROMPT, 32)).unwrap().0;
    assert_eq!(first, second);
}

#[test]
fn threads_beyond_the_cores_are_capped() {
    let mut options = options();
    options.n_threads = Some(64);
    let engine = Engine::create(options, None).unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get() as u32;
    assert_eq!(engine.describe().n_threads, cpus.min(64));
}

/// The nice value of every thread of this process named `name` (Linux: field 19 of
/// /proc/self/task/TID/stat, after the command name in parentheses).
fn nice_of_threads_named(name: &str) -> Vec<i64> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        // Fields from the 3rd (state) on; nice is the 19th.
        let nice: i64 = after_name.split(' ').nth(19 - 3).unwrap().parse().unwrap();
        nices.push(nice);
    }
    nices
}

#[test]
fn thread_priority_low_is_applied_to_the_worker_and_every_thread_it_starts() {
    let mut options = options();
    options.thread_priority = ThreadPriority::Low;
    let engine = Engine::create(options, None).unwrap();
    engine.complete(greedy_raw(PROMPT, 8)).unwrap();
    let description = engine.describe();
    assert_eq!(description.thread_priority, ThreadPriority::Low);
    assert!(description.thread_priority_applied);
    // The worker is named, and the threads it starts (ggml's pool) inherit its name.
    let nices = nice_of_threads_named("rigllama-worker");
    println!("rigllama-worker threads' nice values: {nices:?}");
    assert!(
        nices.len() >= description.n_threads as usize,
        "the worker and its pool: {nices:?}"
    );
    assert!(nices.iter().all(|&n| n == 19), "{nices:?}");
    drop(engine);

    let normal = Engine::create(common::options(), None).unwrap();
    normal.complete(greedy_raw(PROMPT, 4)).unwrap();
    assert_eq!(normal.describe().thread_priority, ThreadPriority::Normal);
    let nices = nice_of_threads_named("rigllama-worker");
    assert!(
        !nices.is_empty() && nices.iter().all(|&n| n == 0),
        "{nices:?}"
    );
}

#[test]
fn a_low_priority_engine_still_generates_the_same_text() {
    let expected = alone(PROMPT, 32);
    let mut options = options();
    options.thread_priority = ThreadPriority::Low;
    let low = Engine::create(options, None).unwrap();
    let (text, usage) = low.complete(greedy_raw(PROMPT, 32)).unwrap();
    assert_eq!(usage.finish_reason, FinishReason::Length);
    assert_eq!(text, expected);
}

#[test]
fn embeddings_and_generation_of_two_engines_share_the_cores() {
    let (chat, embedder) = (engine(), engine());
    let alone_vectors = embedder.embed(&["a quiet harbour".to_string()]).unwrap();
    let job = chat.submit(greedy_raw(PROMPT, 64)).unwrap();
    let vectors = embedder.embed(&["a quiet harbour".to_string()]).unwrap();
    assert_eq!(vectors, alone_vectors);
    let (_, end) = finish(job);
    assert!(matches!(end, Event::Done(_)), "{end:?}");
}
