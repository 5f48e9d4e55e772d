//! Faults and bad input: every fallible step of create and reload made to fail in turn, bad
//! values through the C ABI, arbitrary bytes as prompts. Nothing crashes, nothing leaks, the
//! engine keeps serving. (The long soak tests are in tests/stress.rs, run by `make stress`.)
#![cfg(feature = "fault-injection")]

mod common;

use std::ffi::CString;

use common::*;
use proptest::prelude::*;
use rigllama::fault;
use rigllama::{Engine, Error};

/// Threads and open file descriptors of this process, from /proc.
fn threads_and_fds() -> (usize, usize) {
    let count = |dir| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    (count("/proc/self/task"), count("/proc/self/fd"))
}

/// Memory still allocated through malloc (and so through C++'s new): what a leak keeps.
/// Resident memory would also count what glibc caches after a free — it never trims the top
/// of a thread's arena, and raises its trim threshold after large frees — which left ~50 MB of
/// a failed load's freed vocabulary resident in some runs and not others.
fn heap_in_use_mb() -> f64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as f64 / (1024.0 * 1024.0)
}

/// How many mappings of `path` this process has: a model left mapped after a failed create
/// is a leak outside malloc.
fn mappings_of(path: &std::path::Path) -> usize {
    let path = path.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|line| line.ends_with(path.to_str().unwrap()))
        .count()
}

/// Serialises the tests of this file: the injected fault is process-wide.
static FAULT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn each_fallible_step_of_create_fails_cleanly_without_leaks() {
    let _guard = FAULT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Warm up the process-wide pieces (backend, allocator arenas of new threads) with one
    // full round before taking the baseline.
    drop(engine());
    let mut before = threads_and_fds();
    let mut heap_before = heap_in_use_mb();
    let mut mapped_before = mappings_of(&model_path());
    for round in 0..4 {
        if round == 1 {
            before = threads_and_fds();
            heap_before = heap_in_use_mb();
            mapped_before = mappings_of(&model_path());
        }
        println!("round {round}: heap in use {:.1} MB", heap_in_use_mb());
        for step in fault::LOAD_STEPS {
            fault::fail_at(Some(step));
            let result = Engine::create(options(), None);
            fault::fail_at(None);
            match result {
                Err(Error::ModelLoadFailed(message)) => {
                    assert!(message.contains(step), "round {round} {step}: {message}")
                }
                other => panic!("round {round} {step}: {other:?}"),
            }
        }
    }
    assert_eq!(
        threads_and_fds(),
        before,
        "threads and fds after 15 failed creates"
    );
    assert_eq!(
        mappings_of(&model_path()),
        mapped_before,
        "the model file is unmapped after each failed create"
    );
    let grown = heap_in_use_mb() - heap_before;
    println!("heap in use grew {grown:.1} MB over 15 failed creates after warm-up");
    assert!(grown < 20.0, "heap in use grew {grown:.1} MB");
    let engine = engine();
    assert!(
        engine.complete(greedy_raw("Hello", 2)).is_ok(),
        "a create after the faults works"
    );
}

#[test]
fn each_fallible_step_of_reload_fails_and_the_old_model_keeps_serving() {
    let _guard = FAULT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let engine = engine();
    let (before, _) = engine
        .complete(greedy_raw("The sun rises in the", 8))
        .unwrap();
    for step in fault::LOAD_STEPS.iter().filter(|s| **s != "spawn_worker") {
        fault::fail_at(Some(step));
        let result = engine.reload(options(), None);
        fault::fail_at(None);
        assert!(
            matches!(&result, Err(Error::ModelLoadFailed(m)) if m.contains(step)),
            "{step}: {result:?}"
        );
        let (after, _) = engine
            .complete(greedy_raw("The sun rises in the", 8))
            .unwrap();
        assert_eq!(
            after, before,
            "after a failed reload at {step}, the old model answers"
        );
    }
}

#[test]
fn absurd_engine_options_are_refused_through_the_c_abi() {
    use rigllama::ffi::*;
    let path = CString::new(model_path().to_str().unwrap()).unwrap();
    let try_create = |edit: &dyn Fn(&mut rigllama_engine_options)| unsafe {
        let mut options = std::mem::zeroed::<rigllama_engine_options>();
        rigllama_engine_options_init(&mut options, std::mem::size_of_val(&options));
        options.model_path = path.as_ptr();
        edit(&mut options);
        let mut engine = std::ptr::null_mut();
        let status = rigllama_engine_create(&options, &mut engine);
        rigllama_engine_destroy(engine);
        let message = std::ffi::CStr::from_ptr(rigllama_last_error())
            .to_string_lossy()
            .into_owned();
        (status, message)
    };
    type Edit = Box<dyn Fn(&mut rigllama_engine_options)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("n_ctx 0", Box::new(|o| o.n_ctx = 0), "n_ctx 0"),
        (
            "n_ctx huge",
            Box::new(|o| o.n_ctx = u32::MAX),
            "n_ctx 4294967295",
        ),
        ("n_batch 0", Box::new(|o| o.n_batch = 0), "n_batch 0"),
        (
            "n_threads huge",
            Box::new(|o| o.n_threads = 100_000),
            "n_threads 100000",
        ),
        (
            "n_threads negative",
            Box::new(|o| o.n_threads = -1),
            "n_threads -1",
        ),
        (
            "n_gpu_layers -2",
            Box::new(|o| o.n_gpu_layers = -2),
            "n_gpu_layers -2",
        ),
        (
            "struct_size 0",
            Box::new(|o| o.struct_size = 0),
            "rigllama_engine_options_init",
        ),
        (
            "empty chat_template",
            Box::new(|o| o.chat_template = c"".as_ptr()),
            "chat_template",
        ),
    ];
    for (what, edit, expect) in cases {
        let (status, message) = try_create(&*edit);
        assert_eq!(
            status,
            rigllama_status::InvalidArgument,
            "{what}: {message}"
        );
        assert!(message.contains(expect), "{what}: {message}");
    }
}

#[test]
fn an_unusable_chat_template_fails_chat_requests_while_raw_prompts_work() {
    let mut options = options();
    options.chat_template = Some("no-such-template".into());
    let engine = Engine::create(options, None).unwrap();
    let error = engine.complete(greedy_chat("hi", 2)).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("chat template")),
        "{error}"
    );
    assert!(engine.complete(greedy_raw("hi", 2)).is_ok());
}

/// One C engine handle for the property tests (kept for the life of the test process).
fn shared_handle() -> *mut rigllama::ffi::rigllama_engine {
    use rigllama::ffi::*;
    static HANDLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *HANDLE.get_or_init(|| unsafe {
        let path = CString::new(model_path().to_str().unwrap()).unwrap();
        let mut options = std::mem::zeroed::<rigllama_engine_options>();
        rigllama_engine_options_init(&mut options, std::mem::size_of_val(&options));
        options.model_path = path.as_ptr();
        let mut engine = std::ptr::null_mut();
        assert_eq!(
            rigllama_engine_create(&options, &mut engine),
            rigllama_status::Ok
        );
        engine as usize
    }) as *mut rigllama_engine
}

/// Counts the tokens of a request built from raw bytes, through the C ABI.
fn count_through_c(prompt: &[u8], messages_json: Option<&[u8]>) -> rigllama::ffi::rigllama_status {
    use rigllama::ffi::*;
    let prompt = CString::new(prompt).unwrap();
    let json = messages_json.map(|j| CString::new(j).unwrap());
    unsafe {
        let mut request = std::mem::zeroed::<rigllama_request>();
        rigllama_request_init(&mut request, std::mem::size_of_val(&request));
        request.prompt = prompt.as_ptr();
        request.messages_json = json.as_ref().map_or(std::ptr::null(), |j| j.as_ptr());
        let mut tokens = 0u32;
        rigllama_engine_count_tokens(shared_handle(), &request, &mut tokens)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_prompt_bytes_never_crash_and_bad_utf8_is_invalid(
        bytes in proptest::collection::vec(1u8..=255, 0..200)
    ) {
        let status = count_through_c(&bytes, None);
        let expected_ok = std::str::from_utf8(&bytes).is_ok() && !bytes.is_empty();
        if expected_ok {
            prop_assert_eq!(status, rigllama::ffi::rigllama_status::Ok);
        } else if bytes.is_empty() {
            prop_assert!(status == rigllama::ffi::rigllama_status::Ok
                || status == rigllama::ffi::rigllama_status::InvalidArgument);
        } else {
            prop_assert_eq!(status, rigllama::ffi::rigllama_status::InvalidArgument);
        }
    }

    #[test]
    fn arbitrary_messages_json_never_crashes(
        bytes in proptest::collection::vec(1u8..=255, 0..200)
    ) {
        let status = count_through_c(b"hi", Some(&bytes));
        prop_assert!(status == rigllama::ffi::rigllama_status::Ok
            || status == rigllama::ffi::rigllama_status::InvalidArgument, "status {:?}", status);
    }

    #[test]
    fn json_shaped_messages_are_accepted_or_refused_with_invalid(
        roles in proptest::collection::vec(prop_oneof!["system", "user", "assistant", "robot"], 1..5),
        content in "[^\u{0}]{0,40}",
    ) {
        let turns: Vec<_> = roles.iter().map(|r| serde_json::json!({"role": r, "content": content})).collect();
        let json = serde_json::to_vec(&turns).unwrap();
        let status = count_through_c(b"and?", Some(&json));
        prop_assert!(status == rigllama::ffi::rigllama_status::Ok
            || status == rigllama::ffi::rigllama_status::InvalidArgument, "status {:?}", status);
    }
}
