//! Soak tests, run by `make stress` (`cargo test --release --test stress -- --ignored`):
//! load, concurrency and create/destroy/reload cycles with RSS, threads and fds checked flat.
//! Each prints its figures; each is bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rigllama::{Engine, Error, Event};

#[derive(Debug, Clone, Copy)]
struct Resources {
    rss_mb: f64,
    threads: usize,
    fds: usize,
}

fn resources() -> Resources {
    let count = |dir| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    Resources {
        rss_mb: pages * 4096.0 / (1024.0 * 1024.0),
        threads: count("/proc/self/task"),
        fds: count("/proc/self/fd"),
    }
}

fn assert_flat(what: &str, before: Resources, after: Resources, rss_slack_mb: f64) {
    println!("{what}: before {before:?}, after {after:?}");
    assert_eq!(after.threads, before.threads, "{what}: threads");
    assert_eq!(after.fds, before.fds, "{what}: fds");
    assert!(
        after.rss_mb - before.rss_mb < rss_slack_mb,
        "{what}: RSS grew {:.1} MB",
        after.rss_mb - before.rss_mb
    );
}

/// 8 threads × 50 requests on `engine` (priorities 0–2 when `with_priorities`): every request
/// is served once, none lost or duplicated. Returns how long they took.
fn four_hundred_requests(engine: &Engine, with_priorities: bool) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let prompt = format!("Thread {t}, request {i}. Once upon a time");
                        let mut request = greedy_raw(&prompt, 4);
                        if with_priorities {
                            request.priority = i % 3;
                        }
                        let (text, usage) = engine.complete(request).expect("served");
                        assert!(!text.is_empty() && !text.contains('\0'));
                        assert_eq!(usage.completion_tokens, 4);
                        (t, i)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut served: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    served.sort();
    served.dedup();
    assert_eq!(served.len(), 400, "none lost or duplicated");
    started.elapsed()
}

#[test]
#[ignore = "soak: make stress"]
fn eight_threads_fifty_requests_each_on_one_engine() {
    let elapsed = four_hundred_requests(&engine(), false);
    println!("400 requests from 8 threads in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(600));
}

#[test]
#[ignore = "soak: make stress"]
fn eight_threads_fifty_requests_each_on_four_sequences() {
    let mut options = options();
    options.n_seq = 4;
    let engine = Engine::create(options, None).unwrap();
    let elapsed = four_hundred_requests(&engine, true);
    println!("400 requests from 8 threads on 4 sequences in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(600));
}

#[test]
#[ignore = "soak: make stress"]
fn several_engines_created_and_destroyed_concurrently() {
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..5 {
                    let mut options = options();
                    options.n_threads = Some(1);
                    let engine = Engine::create(options, None).expect("create");
                    engine.complete(greedy_raw("Hi", 2)).expect("complete");
                    engine.shutdown();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    println!("20 engines on 4 threads in {:?}", started.elapsed());
}

#[test]
#[ignore = "soak: make stress"]
fn a_thousand_create_destroy_cycles_leave_rss_threads_and_fds_flat() {
    let cycles: usize = std::env::var("RIGLLAMA_STRESS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for _ in 0..20 {
        drop(engine()); // warm-up: allocator pools, backend
    }
    let before = resources();
    let started = Instant::now();
    for _ in 0..cycles {
        drop(engine());
    }
    let after = resources();
    println!("{cycles} create/destroy cycles in {:?}", started.elapsed());
    assert_flat("create/destroy", before, after, 30.0);
}

#[test]
#[ignore = "soak: make stress"]
fn a_hundred_reloads_leave_rss_threads_and_fds_flat() {
    let engine = engine();
    let second = rigllama::EngineOptions::new(second_model_path());
    for _ in 0..10 {
        engine.reload(second.clone(), None).unwrap();
        engine.reload(options(), None).unwrap();
    }
    let before = resources();
    let started = Instant::now();
    for i in 0..100 {
        let target = if i % 2 == 0 {
            second.clone()
        } else {
            options()
        };
        engine.reload(target, None).unwrap();
        if i % 10 == 0 {
            engine.complete(greedy_raw("Hello", 2)).unwrap();
        }
    }
    let after = resources();
    println!("100 reloads in {:?}", started.elapsed());
    assert_flat("reload", before, after, 30.0);
}

#[test]
#[ignore = "soak: make stress"]
fn destroy_mid_stream_a_hundred_times_with_random_delays() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let started = Instant::now();
    for round in 0..100 {
        let engine = engine();
        let streaming = engine.clone();
        let after_destroy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let late = after_destroy.clone();
        let runner = std::thread::spawn(move || {
            let mut request = greedy_raw("Once upon a time", 1);
            request.max_tokens = None;
            streaming.stream(request, |_| {
                assert!(
                    !late.load(std::sync::atomic::Ordering::SeqCst),
                    "callback after destroy"
                );
                true
            })
        });
        std::thread::sleep(Duration::from_millis(next() % 300));
        let destroy_started = Instant::now();
        engine.shutdown();
        after_destroy.store(true, std::sync::atomic::Ordering::SeqCst);
        let took = destroy_started.elapsed();
        let result = runner.join().unwrap();
        assert!(
            matches!(result, Err(Error::Cancelled(_))),
            "round {round}: {result:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "round {round}: destroy took {took:?}"
        );
    }
    println!("100 destroys mid-stream in {:?}", started.elapsed());
}

#[test]
#[ignore = "soak: make stress"]
fn jobs_outlive_destroyed_engines() {
    for _ in 0..20 {
        let engine = engine();
        let mut jobs: Vec<_> = (0..3)
            .map(|_| engine.submit(greedy_raw("Once upon a time", 64)).unwrap())
            .collect();
        engine.shutdown();
        drop(engine);
        for job in &mut jobs {
            let last = loop {
                match job.blocking_next() {
                    Event::Text { .. } => continue,
                    last => break last,
                }
            };
            assert!(matches!(
                last,
                Event::Failed {
                    error: Error::Cancelled(_),
                    ..
                } | Event::Done(_)
            ));
        }
    }
}
