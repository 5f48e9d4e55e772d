//! llama.cpp's Vulkan backend (cargo feature `vulkan`): every layer on the Vulkan device,
//! against the CPU engine of the same build. On the CPU-only machines this is developed on the
//! device is Mesa's lavapipe (Vulkan on the CPU), so this shows that the build, the offload and
//! the shaders work, not what a GPU gains. Run with `make vulkan-test` (its own target dir;
//! scripts/vulkan-sdk prepares the headers, loader and glslc). Tests here share the
//! process-wide log sink, so they run one at a time.
#![cfg(feature = "vulkan")]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};

use common::*;
use rigllama::{Engine, LogLevel};

/// Greedy tokens compared per oracle prompt.
const COMPARED_TOKENS: u32 = 16;
/// The most a chosen token's log-probability may differ between the engines, in nats. Seen
/// on lavapipe: up to 0.30 (the CPU's kernels round the activations to 8 bits for quantized
/// weights, the shaders do not; GGML_VK_DISABLE_F16 changes nothing).
const MAX_LOGPROB_ERROR: f32 = 0.5;
/// Where the engines choose differently, the most the CPU's choice may have led by: a flip
/// needs the two candidates' errors to add up to the lead. Seen: 0.20.
const MAX_DIVERGENT_MARGIN: f32 = 2.0 * MAX_LOGPROB_ERROR;
/// Tokens every prompt's replies share at least. Seen: 3 (then that 0.20 near tie).
const MIN_SHARED_PREFIX: usize = 2;

/// Every log line (llama.cpp's, at every level) since the last `take_log`.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn setup() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        // ggml leaves out Vulkan devices of CPU type (lavapipe) unless GGML_VK_VISIBLE_DEVICES
        // names them (llama.cpp's own CI runs its Vulkan tests the same way). ggml reads it
        // once, when the backend starts, so it is set before the first engine; a value from
        // the environment (a machine with a GPU and a choice) is kept.
        if std::env::var_os("GGML_VK_VISIBLE_DEVICES").is_none() {
            std::env::set_var("GGML_VK_VISIBLE_DEVICES", "0");
        }
        rigllama::set_log_sink(
            Some(Arc::new(|_, line: &str| {
                LOG.lock().unwrap().push(line.to_owned())
            })),
            LogLevel::Debug,
        );
    });
}

fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock().unwrap())
}

/// An engine on the default model with `n_gpu_layers` (`None` = all), and what llama.cpp
/// logged while loading it.
fn engine_with(n_gpu_layers: Option<u32>) -> (Engine, Vec<String>) {
    setup();
    take_log();
    let mut options = options();
    options.n_gpu_layers = n_gpu_layers;
    let engine = Engine::create(options, None).unwrap_or_else(|e| {
        panic!(
            "n_gpu_layers {n_gpu_layers:?}: {e}\nllama.cpp's log:\n{}",
            take_log().join("\n")
        )
    });
    (engine, take_log())
}

/// The log line containing `needle`, or a failure that shows the log.
fn line_with<'a>(log: &'a [String], needle: &str) -> &'a str {
    log.iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in llama.cpp's log:\n{}", log.join("\n")))
}

/// llama.cpp's "offloaded N/M layers to GPU" as (N, M).
fn offloaded(log: &[String]) -> (u32, u32) {
    let line = line_with(log, "load_tensors: offloaded ");
    let counts = line
        .split("offloaded ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n_m| n_m.split_once('/'))
        .unwrap_or_else(|| panic!("unexpected line: {line}"));
    (counts.0.parse().unwrap(), counts.1.parse().unwrap())
}

/// llama.cpp's "<buffer> <kind> size = X MiB" lines ("CPU_Mapped model buffer", "Vulkan0 KV
/// buffer"), as MiB by buffer name, summed over lines of the same name.
fn buffers(log: &[String], kind: &str) -> BTreeMap<String, f64> {
    let mut sizes = BTreeMap::new();
    for line in log.iter().filter(|l| l.contains(kind)) {
        let (name, size) = line.split_once(kind).unwrap();
        let name = name.split_whitespace().last().unwrap_or_default();
        let mib: f64 = size
            .trim_start_matches([' ', '='])
            .split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no size in {line}"));
        *sizes.entry(name.to_owned()).or_default() += mib;
    }
    sizes
}

/// A prompt's greedy reply from an empty cache: its text, and each token's id with its
/// log-probability and the margin (in nats) over the runner-up.
struct Greedy {
    text: String,
    tokens: Vec<(i32, f32, f32)>,
}

fn greedy(engine: &Engine, prompt: &str, n: u32) -> Greedy {
    // From an empty cache, as the oracle was made: prefix reuse changes batch shapes.
    engine.reset().unwrap();
    let mut request = greedy_raw(prompt, n);
    request.logprobs = 2;
    let (text, logprobs, _) = run_job(engine, request);
    let tokens = logprobs
        .iter()
        .map(|l| {
            let runner_up = l.top.get(1).map_or(f32::NEG_INFINITY, |a| a.logprob);
            (l.token.id, l.token.logprob, l.token.logprob - runner_up)
        })
        .collect();
    Greedy { text, tokens }
}

fn oracle_prompts() -> Vec<(String, String)> {
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("greedy/expected.json")).unwrap();
    expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["prompt"].as_str().unwrap().to_owned(),
                c["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Generated tokens per second of a 64-token greedy reply (first to last token), and the
/// prompt's milliseconds.
fn generation_rate(engine: &Engine) -> (f64, f64, u32) {
    engine.reset().unwrap();
    let (_, usage) = engine
        .complete(greedy_raw(
            "Once upon a time, in a small village by the sea,",
            64,
        ))
        .unwrap();
    let rate = usage.completion_tokens.saturating_sub(1) as f64 / (usage.generation_ms / 1e3);
    (rate, usage.prompt_ms, usage.completion_tokens)
}

#[test]
fn every_layer_on_the_vulkan_device_gives_the_cpu_engine_s_greedy_tokens() {
    let prompts = oracle_prompts();

    // The CPU engine of the same build. Not quite the CPU-only build's: with a GPU device
    // present llama.cpp stores CPU layers' weights in the device's host buffer type, which
    // comes before the CPU's repacked layouts in its list, so they are not repacked (as with
    // cpu_repack = false) and its kernels round as an RPC server's do, not as tests/greedy.rs's
    // oracle (made by the CPU-only build) does.
    let (cpu, cpu_log) = engine_with(Some(0));
    assert_eq!(offloaded(&cpu_log).0, 0, "the CPU engine offloaded layers");
    let cpu_description = cpu.describe();
    let cpu_replies: Vec<Greedy> = prompts
        .iter()
        .map(|(prompt, _)| greedy(&cpu, prompt, COMPARED_TOKENS))
        .collect();
    let cpu_is_oracle = cpu_replies
        .iter()
        .zip(&prompts)
        .filter(|(reply, (_, oracle))| oracle.starts_with(&reply.text))
        .count();
    let cpu_rate = generation_rate(&cpu);
    drop(cpu);

    let (vulkan, vulkan_log) = engine_with(None);
    // Where llama.cpp put the model: every layer (and the output layer) on the Vulkan device,
    // their weights and the whole KV cache in its memory. What stays in host memory is the
    // token embedding, always, and on lavapipe the output projection too: gemma3 ties it to
    // the embedding, 170 MiB, over the 128 MiB one storage buffer may span there, so ggml's
    // Vulkan backend declines it and it is computed on the CPU.
    let (done, of) = offloaded(&vulkan_log);
    assert!(of > 0 && done == of, "only {done} of {of} layers offloaded");
    let on_device = vulkan_log
        .iter()
        .filter(|l| l.contains("assigned to device Vulkan0"))
        .count();
    assert_eq!(
        on_device as u32, of,
        "layers placed on Vulkan0 (llama.cpp's `assigned to device` lines)"
    );
    let (cpu_weights, weights) = (
        buffers(&cpu_log, "model buffer size"),
        buffers(&vulkan_log, "model buffer size"),
    );
    let (cpu_kv, kv) = (
        buffers(&cpu_log, "KV buffer size"),
        buffers(&vulkan_log, "KV buffer size"),
    );
    let device_weights = weights.get("Vulkan0").copied().unwrap_or_default();
    assert!(device_weights > 0.0, "no weights on Vulkan0: {weights:?}");
    let total = |sizes: &BTreeMap<String, f64>| sizes.values().sum::<f64>();
    assert!(
        (total(&weights) - total(&cpu_weights)).abs() < 0.1,
        "the same weights, placed differently: {weights:?} vs the CPU engine's {cpu_weights:?}"
    );
    assert_eq!(
        kv.keys().collect::<Vec<_>>(),
        ["Vulkan0"],
        "the KV cache is not all on Vulkan0: {kv:?}"
    );
    assert!(
        (total(&kv) - total(&cpu_kv)).abs() < 0.1,
        "{kv:?} vs {cpu_kv:?}"
    );
    // ggml names its devices when the backend starts: with the first engine.
    let whole_log: Vec<String> = cpu_log.iter().chain(&vulkan_log).cloned().collect();
    let device = line_with(&whole_log, "ggml_vulkan: 0 = ").to_owned();
    let description = vulkan.describe();
    assert_eq!(description.n_gpu_layers, -1);
    assert_eq!(cpu_description.n_gpu_layers, 0);

    // Per prompt: where the greedy tokens first differ (None: all equal), both engines'
    // margins of their choice over the runner-up there, and the largest difference in a chosen
    // token's log-probability before it.
    let mut comparisons = Vec::new();
    for ((prompt, _), cpu_reply) in prompts.iter().zip(&cpu_replies) {
        let reply = greedy(&vulkan, prompt, COMPARED_TOKENS);
        assert_eq!(reply.tokens.len(), cpu_reply.tokens.len(), "{prompt:?}");
        let diverges = reply
            .tokens
            .iter()
            .zip(&cpu_reply.tokens)
            .position(|(v, c)| v.0 != c.0);
        let agreed = diverges.unwrap_or(reply.tokens.len());
        let logprob_error = reply.tokens[..agreed]
            .iter()
            .zip(&cpu_reply.tokens)
            .map(|(v, c)| (v.1 - c.1).abs())
            .fold(0f32, f32::max);
        let margins = diverges.map(|at| (cpu_reply.tokens[at].2, reply.tokens[at].2));
        match (diverges, margins) {
            (Some(at), Some((cpu_margin, vulkan_margin))) => eprintln!(
                "{prompt:?}: first divergence at token {at}, where the CPU's choice led by {cpu_margin:.3} nats and the Vulkan engine's by {vulkan_margin:.3}; largest log-prob difference before it {logprob_error:.4}\n  CPU:    {:?}\n  Vulkan: {:?}",
                cpu_reply.text, reply.text
            ),
            _ => eprintln!(
                "{prompt:?}: all {COMPARED_TOKENS} tokens equal; largest log-prob difference {logprob_error:.4}"
            ),
        }
        comparisons.push((prompt, diverges, margins, logprob_error));
    }
    let agree = comparisons.iter().filter(|c| c.1.is_none()).count();
    let first_divergence: Vec<usize> = comparisons.iter().filter_map(|c| c.1).collect();
    eprintln!(
        "greedy agreement over the first {COMPARED_TOKENS} tokens: {agree} of {} prompts identical; first divergence at {first_divergence:?} in the others",
        prompts.len()
    );
    for (prompt, diverges, margins, logprob_error) in &comparisons {
        // The shaders round differently from the CPU kernels, so probabilities differ a
        // little and a near tie may go the other way; a larger difference, or a different
        // token where the CPU's choice clearly led, is a wrong result.
        assert!(
            *logprob_error < MAX_LOGPROB_ERROR,
            "{prompt:?}: a chosen token's log-probability differs by {logprob_error} nats"
        );
        if let (Some(at), Some((cpu_margin, _))) = (diverges, margins) {
            assert!(
                *cpu_margin < MAX_DIVERGENT_MARGIN,
                "{prompt:?}: the Vulkan engine chose another token at {at}, where the CPU's choice led by {cpu_margin:.3} nats"
            );
            assert!(
                *at >= MIN_SHARED_PREFIX,
                "{prompt:?}: the replies differ from token {at}"
            );
        }
    }
    let vulkan_rate = generation_rate(&vulkan);

    eprintln!("device: {device}");
    eprintln!(
        "offloaded {done}/{of} layers; weights (MiB) {weights:?}, CPU engine's {cpu_weights:?}; KV cache {kv:?}, CPU engine's {cpu_kv:?}; {}",
        line_with(&vulkan_log, "splits =").trim()
    );
    eprintln!(
        "describe: n_gpu_layers {} memory {:?} (CPU engine: n_gpu_layers {} memory {:?})",
        description.n_gpu_layers,
        description.memory,
        cpu_description.n_gpu_layers,
        cpu_description.memory
    );
    eprintln!(
        "CPU engine (n_gpu_layers 0, weights not repacked): {cpu_is_oracle} of {} prompts begin as the CPU-only build's oracle text",
        prompts.len()
    );
    for (name, (rate, prompt_ms, tokens), threads) in [
        ("CPU", cpu_rate, cpu_description.n_threads),
        ("Vulkan", vulkan_rate, description.n_threads),
    ] {
        eprintln!(
            "{name}: {rate:.1} tok/s over a {tokens}-token greedy reply (prompt {prompt_ms:.0} ms, engine n_threads {threads})"
        );
    }
}

#[test]
fn the_vulkan_device_is_listed_chosen_estimated_and_fitted() {
    setup();
    let devices = rigllama::list_devices().unwrap();
    eprintln!("list_devices: {devices:?}");
    let vulkan = devices
        .iter()
        .find(|d| d.name == "Vulkan0")
        .expect("Vulkan0 is listed");
    assert!(
        matches!(
            vulkan.kind,
            rigllama::DeviceType::Gpu | rigllama::DeviceType::Igpu
        ),
        "{vulkan:?}"
    );
    assert!(
        vulkan.memory_total > 0 && !vulkan.description.is_empty(),
        "{vulkan:?}"
    );

    // By name, every layer: describe's devices say where the layers and the cache went, and
    // the estimate said so before the load.
    let mut on_vulkan = options();
    on_vulkan.n_gpu_layers = None;
    on_vulkan.devices = Some(vec!["Vulkan0".into()]);
    let estimate = rigllama::estimate(&on_vulkan).expect("estimate");
    let engine = Engine::create(on_vulkan, None).expect("Vulkan0 by name");
    let described = engine.describe();
    eprintln!("estimate: {estimate:?}\ndescribe: {:?}", described.devices);
    assert_eq!(described.gpu_fallback, None);
    let device = described
        .devices
        .iter()
        .find(|d| d.name == "Vulkan0")
        .expect("describe lists Vulkan0");
    assert!(!device.layers.is_empty(), "layers on Vulkan0: {device:?}");
    assert!(
        device.memory.kv_cache_bytes > 0 && device.memory.model_bytes > 0,
        "{device:?}"
    );
    let cpu = &described.devices[0];
    assert_eq!(cpu.name, "CPU");
    assert_eq!(
        cpu.memory.kv_cache_bytes, 0,
        "the whole KV cache is on the device: {cpu:?}"
    );
    assert_estimate_matches(&estimate, &described);
    assert!(!engine
        .complete(greedy_raw("The capital of France is", 4))
        .unwrap()
        .0
        .is_empty());
    drop(engine);

    // "none": the CPU only, though the build has a GPU backend and the device is there.
    let mut cpu_only = options();
    cpu_only.n_gpu_layers = None;
    cpu_only.devices = Some(Vec::new());
    let engine = Engine::create(cpu_only, None).unwrap();
    let described = engine.describe();
    assert!(
        described.devices.iter().all(|d| d.name == "CPU"),
        "{:?}",
        described.devices
    );
    drop(engine);

    // fit measures the Vulkan device's memory: all layers fit there with the default margin.
    let mut fitted = options();
    fitted.fit = Some(rigllama::Fit::default());
    let engine = Engine::create(fitted, None).expect("fit");
    let described = engine.describe();
    let fit = described.fit.clone().expect("fit report");
    eprintln!("fit: {fit:?}; devices {:?}", described.devices);
    assert!(
        fit.n_gpu_layers != 0,
        "fit put no layer on Vulkan0: {fit:?}"
    );
    assert!(
        described
            .devices
            .iter()
            .any(|d| d.name == "Vulkan0" && !d.layers.is_empty()),
        "{:?}",
        described.devices
    );
}
