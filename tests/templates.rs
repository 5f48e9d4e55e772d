//! Real Jinja chat templates of eight model families (fetched by scripts/fetch-templates and
//! put into copies of the default model by scripts/make-template-models, both cached):
//! `apply_template` equals the reference rendering of Python jinja2 set up as transformers
//! sets it up (tests/templates/reference.py), byte for byte, for every conversation of
//! tests/templates/conversations.json; and tool_choice REQUIRED on the real model yields a
//! valid call in each tool-capable family's own format. Run one at a time.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use rigllama::{
    Engine, EngineOptions, FinishReason, Message, ReasoningMode, Request, Tool, ToolChoice,
};
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// family -> its GGUF copy, and the fixtures' manifest.
fn fixtures() -> (PathBuf, Value) {
    let cache = model_path().parent().unwrap().join("templates");
    let run = |script: &str, args: &[&std::ffi::OsStr]| {
        let output = Command::new(format!("{ROOT}/scripts/{script}"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("scripts/{script}: {e}"));
        assert!(
            output.status.success(),
            "scripts/{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap()
                .trim(),
        )
    };
    let models = run(
        "make-template-models",
        &[model_path().as_os_str(), cache.as_os_str()],
    );
    let templates = run("fetch-templates", &[]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(templates.join("manifest.json")).unwrap())
            .unwrap();
    (models, manifest)
}

fn families(manifest: &Value) -> Vec<Value> {
    let entries = manifest
        .get("templates")
        .or_else(|| manifest.get("families"))
        .unwrap_or(manifest);
    match entries {
        Value::Array(list) => list.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(family, entry)| {
                let mut e = entry.clone();
                e["family"] = family.clone().into();
                e
            })
            .collect(),
        _ => panic!("unexpected manifest shape: {manifest}"),
    }
}

fn engine_for(models: &std::path::Path, family: &str) -> Engine {
    let mut options = EngineOptions::new(models.join(format!("{family}.gguf")));
    options.n_ctx = 2048;
    let engine = Engine::create(options, None).unwrap_or_else(|e| panic!("{family}: {e}"));
    let description = engine.describe();
    assert_eq!(description.chat_template_engine, "jinja", "{family}");
    assert_eq!(description.chat_template_source, "gguf", "{family}");
    engine
}

fn applies(conversation: &Value, family: &Value) -> bool {
    match &conversation["templates"] {
        Value::String(s) if s == "all" => true,
        Value::String(s) if s == "tools" => family["tools"] == true,
        Value::String(s) if s == "reasoning" => family["reasoning"] == true,
        Value::Array(list) => list.iter().any(|f| f == &family["family"]),
        other => panic!("unknown templates selector {other}"),
    }
}

fn reference_render(requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(format!("{ROOT}/tests/templates/reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tests/templates/reference.py runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(requests.to_vec()).to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    serde_json::from_slice(&output.stdout).expect("reference.py prints a JSON list")
}

#[test]
fn apply_template_equals_the_jinja2_reference_byte_for_byte() {
    let (models, manifest) = fixtures();
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/tests/templates/conversations.json")).unwrap(),
    )
    .unwrap();
    // Pairs jinja2 cannot render, and pairs where llama.cpp's chat layer deliberately differs
    // from transformers (each with its reason in the file).
    let mut skip = cases["skip"].as_array().cloned().unwrap_or_default();
    skip.extend(cases["differences"].as_array().cloned().unwrap_or_default());
    let today = |format: &str| {
        let out = Command::new("date")
            .arg(format!("+{format}"))
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let skipped = |family: &str, conversation: &str| {
        skip.iter()
            .any(|s| s["template"] == family && s["conversation"] == conversation)
    };
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let families = families(&manifest);
    assert!(families.len() >= 6, "{} template families", families.len());
    for family in &families {
        let name = family["family"].as_str().unwrap();
        let engine = engine_for(&models, name);
        let template = engine.describe().chat_template;
        let mut requests = Vec::new();
        let mut ours = Vec::new();
        for conversation in cases["conversations"].as_array().unwrap() {
            let conversation_name = conversation["name"].as_str().unwrap();
            if !applies(conversation, family) || skipped(name, conversation_name) {
                continue;
            }
            let extra = conversation["extra"].clone();
            let reasoning = match extra.get("enable_thinking") {
                Some(Value::Bool(false)) => ReasoningMode::Off,
                Some(Value::Bool(true)) => ReasoningMode::On,
                _ => ReasoningMode::Auto,
            };
            let mut request = Request::chat(
                Message::parse_openai_list(&conversation["messages"].to_string()).unwrap(),
            );
            if conversation["tools"].is_array() {
                request.tools =
                    Tool::parse_openai_list(&conversation["tools"].to_string()).unwrap();
            }
            request.reasoning = reasoning;
            let text = engine
                .apply_template(request)
                .unwrap_or_else(|e| panic!("{name} x {conversation_name}: {e}"));
            // llama.cpp passes enable_thinking to every template (true unless OFF), as
            // transformers does when the caller passes it.
            let mut extra = if extra.is_object() { extra } else { json!({}) };
            extra["enable_thinking"] = (reasoning != ReasoningMode::Off).into();
            // ...and today's date, which Llama 3.x templates print.
            extra["date_string"] = today("%d %b %Y").into();
            extra["datetime"] = today("%b %d %Y").into();
            requests.push(json!({
                "template": template,
                "messages": conversation["messages"],
                "tools": conversation["tools"],
                "add_generation_prompt": conversation["add_generation_prompt"],
                "bos_token": cases["bos_token"],
                "eos_token": cases["eos_token"],
                "extra": extra,
            }));
            ours.push((conversation_name.to_owned(), text));
        }
        let expected = reference_render(&requests);
        let bos = cases["bos_token"].as_str().unwrap();
        for ((conversation, text), reference) in ours.iter().zip(expected) {
            let reference = reference.as_str().unwrap_or_else(|| {
                panic!("{name} x {conversation}: reference failed: {reference}")
            });
            // The model sees the tokenizer's BOS (this vocabulary adds one) before the
            // rendered text; a template that writes it itself gets no second one.
            let reference = if reference.starts_with(bos) {
                reference.to_owned()
            } else {
                format!("{bos}{reference}")
            };
            compared += 1;
            if *text != reference {
                mismatches.push(format!(
                    "{name} x {conversation}:\n--- rigllama\n{text}\n--- jinja2\n{reference}"
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
    eprintln!("{compared} renderings equal");
    assert!(compared >= 30, "only {compared} renderings compared");
}

#[test]
fn each_tool_family_returns_a_valid_required_call_in_its_own_format() {
    let (models, manifest) = fixtures();
    let tool = Tool::new(
        "get_weather",
        "The weather in a city",
        json!({"type": "object",
               "properties": {"city": {"type": "string", "maxLength": 20},
                              "unit": {"enum": ["celsius", "fahrenheit"]}},
               "required": ["city", "unit"]}),
    );
    let validator = jsonschema::validator_for(&tool.parameters).unwrap();
    let mut covered = Vec::new();
    for family in families(&manifest).iter().filter(|f| f["tools"] == true) {
        let name = family["family"].as_str().unwrap();
        let engine = engine_for(&models, name);
        let mut request = Request::user("What is the weather in Paris?");
        request.tools = vec![tool.clone()];
        request.tool_choice = ToolChoice::Required;
        request.sampling.temperature = 0.0;
        // Thinking off: a reasoning template's tiny-model thoughts would run to max_tokens.
        request.reasoning = ReasoningMode::Off;
        request.max_tokens = Some(200);
        // (How each template shows the tools is checked against jinja2 above.)
        let (message, usage) = engine.chat(request).unwrap();
        // Mistral's format has the model write each call's id after its arguments; the
        // 270M model never ends it, so that reply stops at max_tokens with its call whole.
        if name == "mistral-nemo" {
            assert!(
                matches!(
                    usage.finish_reason,
                    FinishReason::ToolCalls | FinishReason::Length
                ),
                "{name}: {usage:?}"
            );
        } else {
            assert_eq!(
                usage.finish_reason,
                FinishReason::ToolCalls,
                "{name}: {message:?}"
            );
        }
        assert!(!message.tool_calls.is_empty(), "{name}: {message:?}");
        for call in &message.tool_calls {
            assert_eq!(call.name, "get_weather", "{name}");
            let arguments: Value = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|e| panic!("{name}: arguments {:?}: {e}", call.arguments));
            assert!(validator.is_valid(&arguments), "{name}: {arguments}");
            assert!(!call.id.is_empty(), "{name}");
        }
        covered.push(name.to_owned());
    }
    eprintln!("valid REQUIRED calls from: {covered:?}");
    assert!(covered.len() >= 6, "{covered:?}");
}
