//! Devices: listing them before any model, choosing them by name, what a model holds on
//! each, and the memory estimate before a load against the real allocation. Run one at a time
//! (`--test-threads=1`).

mod common;

use common::*;
use rigllama::{DeviceType, Engine, Error};

#[test]
fn devices_are_listed_before_any_model_with_the_cpu_among_them() {
    let devices = rigllama::list_devices().expect("list");
    eprintln!("{}", serde_json::to_string_pretty(&devices).unwrap());
    let cpu = devices
        .iter()
        .find(|d| d.kind == DeviceType::Cpu)
        .expect("a CPU device");
    assert_eq!(cpu.name, "CPU");
    assert!(!cpu.description.is_empty());
    assert!(cpu.memory_total > 1 << 30, "{cpu:?}");
    assert!(
        cpu.memory_free > 0 && cpu.memory_free <= cpu.memory_total,
        "{cpu:?}"
    );
    // The C API's JSON keys.
    let json = serde_json::to_value(cpu).unwrap();
    for key in ["name", "description", "type", "memory_total", "memory_free"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(json["type"], "cpu");
}

#[test]
fn devices_are_chosen_by_name_and_a_name_that_is_no_device_is_refused() {
    let mut options = options();
    options.devices = Some(vec!["NoSuchGPU0".into()]);
    let error = Engine::create(options.clone(), None).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("\"NoSuchGPU0\"") && m.contains("CPU")),
        "{error}"
    );
    options.devices = Some(vec!["CPU".into(), "CPU".into()]);
    let error = Engine::create(options.clone(), None).unwrap_err();
    assert!(error.to_string().contains("names CPU twice"), "{error}");
    assert!(rigllama::parse_devices("Vulkan0,,CUDA0").is_err());
    assert_eq!(
        rigllama::parse_devices("none").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        rigllama::parse_devices(" Vulkan0, CUDA1 ").unwrap(),
        vec!["Vulkan0".to_owned(), "CUDA1".to_owned()]
    );
    // The CPU by name, and none at all: the CPU either way, and the same text.
    for devices in [vec!["CPU".to_owned()], Vec::new()] {
        options.devices = Some(devices);
        options.n_gpu_layers = None;
        let engine = Engine::create(options.clone(), None).expect("loads on the CPU");
        let described = engine.describe();
        assert_eq!(described.gpu_fallback, None);
        assert!(
            described.devices.iter().all(|d| d.kind == DeviceType::Cpu),
            "{:?}",
            described.devices
        );
        assert!(!engine
            .complete(greedy_raw("The capital of France is", 8))
            .unwrap()
            .0
            .is_empty());
    }
}

/// `estimate` per device and in total against `describe` after the real create: each
/// figure within 10% (or 1 MiB, for the small compute buffers).
fn check_estimate(options: rigllama::EngineOptions) {
    let estimate = rigllama::estimate(&options).expect("estimate");
    let engine = Engine::create(options, None).expect("create");
    let described = engine.describe();
    eprintln!(
        "estimate {:?}\ndescribe {:?} / {:?}",
        estimate, described.memory, described.devices
    );
    assert_eq!(estimate.n_ctx, described.n_ctx);
    assert_close(
        "model",
        estimate.total.model_bytes,
        described.memory.model_bytes,
    );
    assert_close(
        "kv cache",
        estimate.total.kv_cache_bytes,
        described.memory.kv_cache_bytes,
    );
    assert_close(
        "compute",
        estimate.total.compute_bytes,
        described.memory.compute_bytes,
    );
    assert_estimate_matches(&estimate, &described);
    let sum: u64 = described.devices.iter().map(|d| d.memory.model_bytes).sum();
    assert_eq!(
        sum, described.memory.model_bytes,
        "describe's devices add up"
    );
}

#[test]
fn the_estimate_is_within_ten_percent_of_what_create_allocates() {
    check_estimate(options());
    // A bigger context and more sequences grow the KV cache: the estimate follows.
    let mut options = options();
    options.n_ctx = 8192;
    options.n_seq = 4;
    options.type_k = rigllama::KvType::Q8_0;
    options.type_v = rigllama::KvType::Q8_0;
    options.flash_attention = rigllama::FlashAttention::On;
    check_estimate(options);
}

#[test]
fn an_estimate_of_a_bad_file_is_refused_like_a_load() {
    let mut options = options();
    options.model_path = "/nonexistent/model.gguf".into();
    assert!(matches!(
        rigllama::estimate(&options),
        Err(Error::ModelLoadFailed(_))
    ));
    let mut options = common::options();
    options.n_ctx = 0;
    assert!(matches!(
        rigllama::estimate(&options),
        Err(Error::InvalidArgument(_))
    ));
}
