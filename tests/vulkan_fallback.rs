//! The Vulkan build where Vulkan cannot start: the loader is pointed at a driver manifest
//! that does not exist (`VK_ICD_FILENAMES`), as on a player's machine without a Vulkan driver.
//! The engine must still load on the CPU, say why, and refuse a Vulkan device asked for by
//! name. Its own test binary: ggml reads the environment once per process. Only in the
//! `vulkan` build (`make vulkan-test`).
#![cfg(feature = "vulkan")]

mod common;

use common::*;
use rigllama::{DeviceType, Engine, Error};

/// No Vulkan driver for this process, before the backend starts.
fn without_a_vulkan_driver() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for variable in ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"] {
            std::env::set_var(variable, "/nonexistent/vulkan-icd.json");
        }
        std::env::set_var("GGML_VK_VISIBLE_DEVICES", "0");
    });
}

#[test]
fn without_a_driver_the_model_runs_on_the_cpu_and_describe_says_why() {
    without_a_vulkan_driver();
    let devices = rigllama::list_devices().expect("listing works without a driver");
    assert!(
        devices.iter().all(|d| d.kind == DeviceType::Cpu),
        "no Vulkan device: {devices:?}"
    );

    let mut cpu_only = options();
    cpu_only.n_gpu_layers = Some(0);
    let expected = Engine::create(cpu_only, None)
        .unwrap()
        .complete(greedy_raw("The capital of France is", 16))
        .unwrap()
        .0;

    let mut all_layers = options();
    all_layers.n_gpu_layers = None;
    let engine = Engine::create(all_layers, None).expect("falls back to the CPU");
    let described = engine.describe();
    let why = described
        .gpu_fallback
        .clone()
        .expect("gpu_fallback says why");
    assert!(why.contains("Vulkan") && why.contains("no device"), "{why}");
    assert_eq!(described.n_gpu_layers, 0);
    assert!(described.devices.iter().all(|d| d.kind == DeviceType::Cpu));
    let text = engine
        .complete(greedy_raw("The capital of France is", 16))
        .unwrap()
        .0;
    assert_eq!(text, expected, "the CPU's text");
}

#[test]
fn a_vulkan_device_asked_for_by_name_is_refused_naming_it() {
    without_a_vulkan_driver();
    let mut options = options();
    options.n_gpu_layers = None;
    options.devices = Some(vec!["Vulkan0".into()]);
    let error = Engine::create(options, None).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m)
            if m.contains("\"Vulkan0\"") && m.contains("Vulkan backend found no device")),
        "{error}"
    );
}
