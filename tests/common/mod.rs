//! Shared by the integration tests: where the model is and small request builders.
#![allow(dead_code)]

use std::path::PathBuf;

use rigllama::{Engine, EngineOptions, Event, Request, TokenLogprob, Usage};

/// The default model: `RIGLLAMA_MODEL`, else where `scripts/fetch-model` puts it.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("RIGLLAMA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("RIGLLAMA_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rigllama")
                });
            cache.join("models/gemma3-270m-q4_k_m.gguf")
        });
    assert!(
        path.is_file(),
        "model not found at {}: run scripts/fetch-model (or `make test`), or set RIGLLAMA_MODEL",
        path.display()
    );
    path
}

pub fn options() -> EngineOptions {
    EngineOptions::new(model_path())
}

pub fn engine() -> Engine {
    Engine::create(options(), None).expect("the default model loads")
}

/// A deterministic raw-text request.
pub fn greedy_raw(prompt: &str, max_tokens: u32) -> Request {
    let mut request = Request::raw(prompt);
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(max_tokens);
    request
}

/// A deterministic one-turn chat request.
pub fn greedy_chat(prompt: &str, max_tokens: u32) -> Request {
    let mut request = Request::user(prompt);
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(max_tokens);
    request
}

/// A prompt of roughly `tokens` tokens of ordinary prose.
pub fn long_prompt(tokens: usize) -> String {
    let sentence = "The quick brown fox jumps over the lazy dog near the quiet river bank. ";
    // About 15 tokens per sentence for this tokenizer.
    sentence.repeat(tokens / 15 + 1)
}

/// A genuinely different small model for reload tests: the default model cut to its first
/// 12 layers by `scripts/make-second-model` (`RIGLLAMA_SECOND_MODEL` overrides it).
pub fn second_model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("RIGLLAMA_SECOND_MODEL") {
        return PathBuf::from(path);
    }
    fixture_beside_model("make-second-model", "gemma3-270m-first12layers.gguf")
}

/// A tiny Mamba (recurrent) model with random weights and the default model's tokenizer, made
/// by `scripts/make-recurrent-model` (cached next to the default model).
pub fn recurrent_model_path() -> PathBuf {
    fixture_beside_model("make-recurrent-model", "mamba-3x64-random.gguf")
}

/// A tiny LFM2 (hybrid: short-convolution and attention layers) with random weights and the
/// default model's tokenizer, made by `scripts/make-hybrid-model` (cached beside it).
pub fn hybrid_model_path() -> PathBuf {
    fixture_beside_model("make-hybrid-model", "lfm2-4x64-random.gguf")
}

/// A tiny BERT reranker (rank pooling, one score per query/document pair) with random weights
/// and the default model's tokenizer (EOS added, `<unused0>` as the separator), made by
/// `scripts/make-reranker-model` (cached beside it).
pub fn reranker_model_path() -> PathBuf {
    fixture_beside_model("make-reranker-model", "bert-reranker-3x64-random.gguf")
}

/// A tiny random-weight Gemma 3 multimodal projector for the default model, made by
/// `scripts/make-vision-projector` (cached beside it).
pub fn vision_projector_path() -> PathBuf {
    fixture_beside_model("make-vision-projector", "gemma3-270m-mmproj-random.gguf")
}

/// The default model with fill-in-the-middle tokens in its vocabulary (five of its unused
/// control tokens), made by `scripts/make-fim-model` (cached beside it).
pub fn fim_model_path() -> PathBuf {
    fixture_beside_model("make-fim-model", "fim-gemma3-270m.gguf")
}

/// `scripts/SCRIPT MODEL DEST` with DEST the file `name` beside the default model: a fixture
/// made from it once, then cached.
fn fixture_beside_model(script: &str, name: &str) -> PathBuf {
    let model = model_path();
    let dest = model.with_file_name(name);
    fixture_script(script, &[&model, &dest]);
    dest
}

/// Runs `scripts/NAME ARGS` (a cached fixture maker) and returns its stdout lines.
fn fixture_script(name: &str, args: &[&std::path::Path]) -> Vec<String> {
    let script = format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{script} does not run: {e}"));
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The control-vector fixtures for the default model, made (once, cached) by
/// `scripts/make-control-vector`: `[valid, made for a model 64 wide]`.
pub fn control_vector_fixtures() -> [PathBuf; 2] {
    let model = model_path();
    let dir = model.with_file_name("control-vectors");
    let paths: Vec<PathBuf> = fixture_script("make-control-vector", &[&model, &dir])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    paths.try_into().expect("two control vectors")
}

/// The path of one of llama.cpp's own programs (`embedding`, `rpc-server`, ...) built from the
/// same sources by `scripts/build-llama-tool`.
pub fn llama_tool(name: &str) -> PathBuf {
    let lines = fixture_script("build-llama-tool", &[std::path::Path::new(name)]);
    PathBuf::from(
        lines
            .last()
            .expect("build-llama-tool prints the path")
            .trim(),
    )
}

/// The LoRA adapter fixtures for the default model, made (once, cached) by
/// `scripts/make-lora-adapter`: `[valid, second valid, wrong shape, wrong architecture]`.
pub fn lora_fixtures() -> [PathBuf; 4] {
    let model = model_path();
    let dir = model.with_file_name("lora");
    let paths: Vec<PathBuf> = fixture_script("make-lora-adapter", &[&model, &dir])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    paths.try_into().expect("four adapter paths")
}

/// A request's whole reply through a job: its text, every token's log-probability (when it
/// asked for them) and its usage. Panics if it fails.
pub fn run_job(engine: &Engine, request: Request) -> (String, Vec<TokenLogprob>, Usage) {
    let mut job = engine.submit(request).expect("submit");
    let (mut text, mut logprobs) = (String::new(), Vec::new());
    loop {
        match job.blocking_next() {
            Event::Text { text: piece, .. } => text.push_str(&piece),
            Event::Logprobs(entries) => logprobs.extend(entries),
            Event::Done(usage) => return (text, logprobs, usage),
            Event::Failed { error, .. } => panic!("request failed: {error}"),
            _ => {}
        }
    }
}

/// `planned` (an estimate) against `real` (what create allocated): within 10%, or 1 MiB for
/// the small buffers.
pub fn assert_close(what: &str, planned: u64, real: u64) {
    let diff = planned.abs_diff(real);
    eprintln!(
        "{what}: planned {planned}, allocated {real} ({:+.2}%)",
        100.0 * (planned as f64 - real as f64) / (real.max(1) as f64)
    );
    assert!(
        diff as f64 <= 0.10 * real as f64 || diff <= 1 << 20,
        "{what}: estimate {planned} vs allocated {real}"
    );
}

/// `rigllama::estimate` device by device against `describe` after the real create: the same
/// devices in the same order, the same layers on each, weights and KV cache close.
pub fn assert_estimate_matches(estimate: &rigllama::Estimate, described: &rigllama::Description) {
    assert_eq!(estimate.devices.len(), described.devices.len());
    for (planned, real) in estimate.devices.iter().zip(&described.devices) {
        assert_eq!(planned.name, real.name);
        assert_eq!(planned.layers, real.layers, "{}", real.name);
        assert_close(
            &format!("{} model", real.name),
            planned.memory.model_bytes,
            real.memory.model_bytes,
        );
        assert_close(
            &format!("{} kv cache", real.name),
            planned.memory.kv_cache_bytes,
            real.memory.kv_cache_bytes,
        );
    }
}
