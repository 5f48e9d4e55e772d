//! The sampler knobs, log-probabilities, KV cache types, flash attention and fitting, each
//! shown to have its effect on the real default model. Run one at a time
//! (`--test-threads=1`).

mod common;

use common::*;
use rigllama::{
    AdaptiveP, BiasTarget, Engine, EngineOptions, Error, Fit, FlashAttention, KvType, LogitBias,
    Mirostat, Request,
};

fn with_logprobs(mut request: Request, n: u32) -> Request {
    request.logprobs = n;
    request
}

/// Tokens generated, as ids, for a greedy raw request (through the log-probabilities).
fn greedy_ids(engine: &Engine, request: Request) -> Vec<i32> {
    let (_, logprobs, _) = run_job(engine, with_logprobs(request, 1));
    logprobs.iter().map(|l| l.token.id).collect()
}

/// The share of tokens that repeat one of the previous 32: 0 = no repetition.
fn repetition(ids: &[i32]) -> f64 {
    let repeated = (1..ids.len())
        .filter(|&i| ids[i.saturating_sub(32)..i].contains(&ids[i]))
        .count();
    repeated as f64 / ids.len().max(1) as f64
}

const REPETITIVE: &str =
    "Repeat after me: the cat sat on the mat. the cat sat on the mat. the cat sat on the mat.";

#[test]
fn logprobs_at_temperature_0_are_the_models_top_choices() {
    let engine = engine();
    for n in [1u32, 5, 20] {
        let (text, logprobs, usage) = run_job(
            &engine,
            with_logprobs(greedy_raw("The capital of France is", 12), n),
        );
        assert_eq!(
            logprobs.len() as u32,
            usage.completion_tokens,
            "one entry per token: {text:?}"
        );
        for entry in &logprobs {
            assert_eq!(
                entry.top.len(),
                n as usize,
                "N alternatives at temperature 0"
            );
            assert_eq!(
                entry.top[0].id, entry.token.id,
                "greedy takes the top-1 alternative"
            );
            assert_eq!(entry.top[0].logprob, entry.token.logprob);
            assert!(entry.token.logprob <= 0.0 && entry.token.logprob.is_finite());
            assert!(
                entry.top.windows(2).all(|w| w[0].logprob >= w[1].logprob),
                "sorted: {:?}",
                entry.top
            );
            let mass: f32 = entry.top.iter().map(|a| a.logprob.exp()).sum();
            assert!(mass <= 1.0 + 1e-4, "probabilities sum to at most 1: {mass}");
        }
        let joined: Vec<u8> = logprobs
            .iter()
            .flat_map(|l| l.token.bytes.clone())
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&joined),
            text,
            "the tokens spell the text"
        );
    }
    // Sampled: from the distribution the chain drew from (top-k 40 keeps at most 40).
    let mut request = with_logprobs(Request::raw("Once upon a time"), 20);
    request.max_tokens = Some(16);
    request.sampling.seed = Some(7);
    let (_, logprobs, usage) = run_job(&engine, request);
    assert_eq!(logprobs.len() as u32, usage.completion_tokens);
    for entry in &logprobs {
        assert!(entry.top.len() <= 20 && !entry.top.is_empty());
        assert!(entry.token.logprob.is_finite() && entry.token.logprob <= 0.0);
        assert!(
            entry.top.iter().any(|a| a.id == entry.token.id)
                || entry.token.logprob <= entry.top.last().unwrap().logprob
        );
    }
    // And in chat's message.
    let (message, usage) = engine
        .chat(with_logprobs(greedy_chat("Say hello.", 8), 3))
        .expect("chat");
    assert_eq!(message.logprobs.len() as u32, usage.completion_tokens);
    let json = message.to_openai_json();
    assert_eq!(
        json["logprobs"]["content"].as_array().map(Vec::len),
        Some(message.logprobs.len())
    );
    // Out of range.
    let error = engine
        .complete(with_logprobs(greedy_raw("x", 2), 21))
        .unwrap_err();
    assert!(error.to_string().contains("n_logprobs 21"), "{error}");
}

#[test]
fn logit_bias_bans_a_token_and_a_text_and_forces_one() {
    let engine = engine();
    let base = greedy_ids(&engine, greedy_raw("The capital of France is", 24));
    let first = base[0];
    for target in [
        BiasTarget::Token(first),
        BiasTarget::Text(token_text(&engine, first)),
    ] {
        let mut request = greedy_raw("The capital of France is", 24);
        request.sampling.logit_bias = vec![LogitBias {
            target: target.clone(),
            bias: f32::NEG_INFINITY,
        }];
        let ids = greedy_ids(&engine, request);
        assert!(
            !ids.contains(&first),
            "{target:?} banned, yet generated: {ids:?}"
        );
        assert_ne!(ids, base);
    }
    // A large positive bias makes a token the greedy choice.
    let forced = base
        .iter()
        .copied()
        .find(|&t| t != first)
        .unwrap_or(first + 1);
    let mut request = greedy_raw("The capital of France is", 4);
    request.sampling.logit_bias = vec![LogitBias {
        target: BiasTarget::Token(forced),
        bias: 100.0,
    }];
    assert_eq!(greedy_ids(&engine, request), vec![forced; 4]);
    // An id outside the vocabulary is named.
    let mut request = greedy_raw("x", 2);
    request.sampling.logit_bias = vec![LogitBias {
        target: BiasTarget::Token(999_999_999),
        bias: 1.0,
    }];
    let error = engine.complete(request).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("token 999999999 is outside")),
        "{error}"
    );
}

fn token_text(engine: &Engine, id: i32) -> String {
    let (_, logprobs, _) = run_job(
        engine,
        with_logprobs(greedy_raw("The capital of France is", 1), 1),
    );
    assert_eq!(logprobs[0].token.id, id);
    String::from_utf8(logprobs[0].token.bytes.clone()).expect("a whole-character token")
}

#[test]
fn penalties_lower_repetition_over_200_tokens() {
    let engine = engine();
    // Greedy, this model loops: about 95% of its tokens repeat one of the previous 32.
    const PROMPT: &str = "The capital of France is";
    let base = repetition(&greedy_ids(&engine, greedy_raw(PROMPT, 200)));
    assert!(
        base > 0.8,
        "the unpenalised reply repeats itself: {base:.3}"
    );
    type Set = fn(&mut rigllama::Sampling);
    let knobs: [(&str, Set); 3] = [
        ("presence_penalty 2", |s| s.presence_penalty = 2.0),
        ("frequency_penalty 1", |s| s.frequency_penalty = 1.0),
        ("repeat_penalty 1.3", |s| s.repeat_penalty = 1.3),
    ];
    for (name, set) in knobs {
        let mut request = greedy_raw(PROMPT, 200);
        set(&mut request.sampling);
        let ids = greedy_ids(&engine, request.clone());
        let penalised = repetition(&ids);
        eprintln!(
            "{name}: repetition {base:.3} -> {penalised:.3} over {} tokens",
            ids.len()
        );
        assert!(
            penalised < base / 2.0,
            "{name} should lower repetition: {base:.3} -> {penalised:.3}"
        );
        // penalty_last_n 0 turns them off: the greedy text again.
        request.sampling.penalty_last_n = 0;
        assert_eq!(
            repetition(&greedy_ids(&engine, request)),
            base,
            "{name} with window 0"
        );
    }
}

/// At a fixed seed: the knob changes the text, and the same seed gives the same text again.
#[test]
fn dry_xtc_typical_top_n_sigma_mirostat_and_adaptive_p_change_seeded_output_deterministically() {
    let engine = engine();
    let seeded = |prompt: &str| {
        let mut request = Request::raw(prompt);
        request.max_tokens = Some(48);
        request.sampling.seed = Some(1234);
        request.sampling.temperature = 1.0;
        request.sampling.top_k = 0;
        request.sampling.top_p = 1.0;
        request.sampling.min_p = 0.0;
        request
    };
    type Set = fn(&mut rigllama::Sampling);
    let knobs: [(&str, &str, Set); 7] = [
        ("dry", REPETITIVE, |s| s.dry.multiplier = 2.0),
        ("xtc", "Once upon a time", |s| {
            s.xtc.probability = 1.0;
            s.xtc.threshold = 0.05
        }),
        ("typical_p", "Once upon a time", |s| s.typical_p = 0.3),
        ("top_n_sigma", "Once upon a time", |s| s.top_n_sigma = 0.5),
        ("mirostat v1", "Once upon a time", |s| {
            s.mirostat = Mirostat::V1 { tau: 2.0, eta: 0.1 }
        }),
        ("mirostat v2", "Once upon a time", |s| {
            s.mirostat = Mirostat::V2 { tau: 2.0, eta: 0.1 }
        }),
        ("adaptive_p", "Once upon a time", |s| {
            s.adaptive_p = Some(AdaptiveP {
                target: 0.3,
                decay: AdaptiveP::DEFAULT_DECAY,
            })
        }),
    ];
    for (name, prompt, set) in knobs {
        engine.reset().unwrap();
        let (plain, _, _) = run_job(&engine, seeded(prompt));
        let mut request = seeded(prompt);
        set(&mut request.sampling);
        engine.reset().unwrap();
        let (first, _, _) = run_job(&engine, request.clone());
        engine.reset().unwrap();
        let (again, _, _) = run_job(&engine, request);
        assert_eq!(first, again, "{name}: the same seed gives the same text");
        assert_ne!(first, plain, "{name} changes the text at seed 1234");
    }
}

#[test]
fn every_kv_type_loads_and_generates_and_q8_0_takes_less_memory() {
    let mut kv_bytes = Vec::new();
    for kv in KvType::ALL {
        let mut options = options();
        options.n_ctx = 4096;
        options.type_k = kv;
        options.type_v = kv;
        let engine = Engine::create(options, None).unwrap_or_else(|e| panic!("{kv:?}: {e}"));
        let description = engine.describe();
        assert_eq!((description.type_k, description.type_v), (kv, kv));
        let (text, usage) = engine
            .complete(greedy_raw("The capital of France is", 8))
            .unwrap();
        assert_eq!(usage.completion_tokens, 8, "{kv:?}: {text:?}");
        assert!(!text.trim().is_empty(), "{kv:?}");
        eprintln!(
            "kv {:>6}: KV cache {:>7.1} MiB at n_ctx 4096, {text:?}",
            kv.name(),
            description.memory.kv_cache_bytes as f64 / (1 << 20) as f64
        );
        kv_bytes.push((kv, description.memory.kv_cache_bytes));
    }
    let bytes = |kv| kv_bytes.iter().find(|(k, _)| *k == kv).unwrap().1;
    assert!(bytes(KvType::F16) > 0);
    assert!(
        bytes(KvType::Q8_0) < bytes(KvType::F16) * 6 / 10,
        "{kv_bytes:?}"
    );
    assert!(bytes(KvType::Q4_0) < bytes(KvType::Q8_0), "{kv_bytes:?}");
    assert_eq!(bytes(KvType::F32), 2 * bytes(KvType::F16), "{kv_bytes:?}");
}

#[test]
fn flash_attention_settings_generate_and_a_quantized_v_needs_it() {
    let mut texts = Vec::new();
    for flash in [
        FlashAttention::Auto,
        FlashAttention::On,
        FlashAttention::Off,
    ] {
        let mut options = options();
        options.flash_attention = flash;
        let engine = Engine::create(options, None).unwrap();
        assert_eq!(engine.describe().flash_attention, flash);
        let (text, _) = engine
            .complete(greedy_raw("The capital of France is", 8))
            .unwrap();
        texts.push(text);
    }
    assert!(texts.iter().all(|t| !t.trim().is_empty()), "{texts:?}");
    let mut options = options();
    options.flash_attention = FlashAttention::Off;
    options.type_v = KvType::Q8_0;
    let error = refused(options);
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("type_v q8_0") && m.contains("flash attention")),
        "{error}"
    );
}

/// The error `create` gives for `options` (Engine has no Debug, so no `expect_err`).
fn refused(options: EngineOptions) -> Error {
    match Engine::create(options, None) {
        Ok(_) => panic!("the engine was created"),
        Err(error) => error,
    }
}

fn total_bytes(options: EngineOptions) -> u64 {
    let engine = Engine::create(options, None).unwrap();
    let memory = engine.describe().memory;
    memory.model_bytes + memory.kv_cache_bytes + memory.compute_bytes
}

fn host_mib() -> u64 {
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) } as u64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    (pages * page) >> 20
}

#[test]
fn fit_keeps_n_ctx_when_it_fits_reduces_it_when_forced_and_fails_clearly() {
    // Fits: the default margin (1 GiB) on this machine's memory.
    let mut options = options();
    options.fit = Some(Fit::default());
    let engine = Engine::create(options.clone(), None).unwrap();
    let described = engine.describe();
    let fit = described.fit.clone().expect("fit reported");
    assert_eq!((fit.n_ctx, described.n_ctx), (4096, 4096), "{fit:?}");
    assert!(fit.reason.starts_with("fits"), "{fit:?}");
    drop(engine);

    // Forced: a margin that leaves room for the model with a small context but not for the
    // model's whole 32768-token context (both measured here, as llama.cpp accounts them).
    let n_ctx_train = described.n_ctx_train;
    let mut full = options.clone();
    full.fit = None;
    full.n_ctx = n_ctx_train;
    let mut small = full.clone();
    small.n_ctx = 1024;
    let (full_bytes, small_bytes) = (total_bytes(full), total_bytes(small));
    let budget_mib = ((full_bytes + small_bytes) / 2) >> 20;
    let margin = (host_mib() - budget_mib) as u32;
    options.n_ctx = n_ctx_train;
    options.fit = Some(Fit {
        min_ctx: 1024,
        margins_mib: vec![margin],
    });
    let engine = Engine::create(options.clone(), None).unwrap();
    let fit = engine.describe().fit.expect("fit reported");
    eprintln!(
        "host {} MiB, budget {budget_mib} MiB (full {} MiB, small {} MiB), margin {margin} MiB: {fit:?}",
        host_mib(),
        full_bytes >> 20,
        small_bytes >> 20
    );
    assert!(fit.n_ctx > 1024 && fit.n_ctx < n_ctx_train, "{fit:?}");
    assert!(fit.reason.contains("reduced"), "{fit:?}");
    assert_eq!(engine.describe().n_ctx, fit.n_ctx);
    let (_, usage) = engine
        .complete(greedy_raw("The capital of France is", 4))
        .unwrap();
    assert_eq!(usage.completion_tokens, 4);
    drop(engine);

    // Cannot fit even at the minimum context: a clear error.
    for margin in [host_mib() as u32 - (small_bytes >> 21) as u32, u32::MAX] {
        options.fit = Some(Fit {
            min_ctx: 1024,
            margins_mib: vec![margin],
        });
        let error = refused(options.clone());
        assert!(
            matches!(&error, Error::ModelLoadFailed(m) if m.contains("does not fit") && m.contains("fit_min_ctx 1024")),
            "{error}"
        );
    }
    // Fit chooses the GPU layers: a fixed count with it is refused.
    options.n_gpu_layers = Some(3);
    let error = refused(options);
    assert!(
        error.to_string().contains("n_gpu_layers 3 with fit"),
        "{error}"
    );
}
