//! Real Jinja chat templates of nine model families (fetched by scripts/fetch-templates and
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
    Engine, EngineOptions, FinishReason, Message, ReasoningMode, Request, Role, Tool, ToolChoice,
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
            // ON and OFF pass enable_thinking; AUTO leaves it undefined, as transformers does
            // when the caller does not pass it (the template's own default).
            let extra = if extra.is_object() { extra } else { json!({}) };
            let mut extra = extra;
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
            // llama.cpp's Gemma 4 format constrains the call's shape (a Gemma 4 dict) but not
            // its arguments to the schema yet (a TODO in common/parsers/gemma4.cpp).
            if name == "gemma4" {
                assert!(arguments.is_object(), "{name}: {arguments}");
            } else {
                assert!(validator.is_valid(&arguments), "{name}: {arguments}");
            }
            assert!(!call.id.is_empty(), "{name}");
        }
        covered.push(name.to_owned());
    }
    eprintln!("valid REQUIRED calls from: {covered:?}");
    assert!(covered.len() >= 6, "{covered:?}");
}

/// A GGUF copy of the default model carrying `template` (a file of tests/templates or text
/// written here), made by scripts/make-template-models.
fn model_with_template(name: &str, text: &str) -> PathBuf {
    make_model_with_template(name, text, false)
}

/// The same, with `<think>` and `</think>` as single control tokens of the vocabulary.
fn model_with_template_and_think_tokens(name: &str, text: &str) -> PathBuf {
    make_model_with_template(name, text, true)
}

fn make_model_with_template(name: &str, text: &str, think_tokens: bool) -> PathBuf {
    let dir = model_path().parent().unwrap().join("templates").join("own");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.jinja"));
    // Rewritten only when it changes: the copy is remade when the file is newer.
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text) {
        std::fs::write(&file, text).unwrap();
    }
    let arg = format!("{name}={}", file.display());
    let mut command = Command::new(format!("{ROOT}/scripts/make-template-models"));
    if think_tokens {
        command.arg("--think-tokens");
    }
    let output = command
        .args([model_path().as_os_str(), dir.as_os_str(), arg.as_ref()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "make-template-models: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join(format!("{name}.gguf"))
}

/// `apply_template` for each conversation that `select` keeps, and the jinja2 reference.
fn render_both(engine: &Engine, template: &str, select: &[&str]) -> Vec<(String, String, String)> {
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/tests/templates/conversations.json")).unwrap(),
    )
    .unwrap();
    let mut names = Vec::new();
    let mut ours = Vec::new();
    let mut requests = Vec::new();
    for conversation in cases["conversations"].as_array().unwrap() {
        if !select.contains(&conversation["templates"].as_str().unwrap_or("")) {
            continue;
        }
        let mut request = Request::chat(
            Message::parse_openai_list(&conversation["messages"].to_string()).unwrap(),
        );
        if conversation["tools"].is_array() {
            request.tools = Tool::parse_openai_list(&conversation["tools"].to_string()).unwrap();
        }
        names.push(conversation["name"].as_str().unwrap().to_owned());
        ours.push(engine.apply_template(request).unwrap());
        requests.push(json!({
            "template": template,
            "messages": conversation["messages"],
            "tools": conversation["tools"],
            "add_generation_prompt": conversation["add_generation_prompt"],
            "bos_token": cases["bos_token"],
            "eos_token": cases["eos_token"],
        }));
    }
    let expected = reference_render(&requests);
    names
        .into_iter()
        .zip(ours)
        .zip(expected)
        .map(|((name, ours), reference)| {
            (
                name,
                ours,
                reference.as_str().expect("reference renders").to_owned(),
            )
        })
        .collect()
}

#[test]
fn python_string_escapes_render_as_transformers_renders_them() {
    // Mistral Small 3.1's published template continues a string over lines with a backslash,
    // which llama.cpp's Jinja lexer refuses ("unknown escape character"); rigllama rewrites
    // such escapes first. The test template uses the same idioms (tests/templates/).
    let template =
        std::fs::read_to_string(format!("{ROOT}/tests/templates/python-escapes.jinja")).unwrap();
    let from_gguf = {
        let mut options = EngineOptions::new(model_with_template("python-escapes", &template));
        options.n_ctx = 2048;
        Engine::create(options, None).unwrap()
    };
    let from_option = {
        let mut options = EngineOptions::new(model_path());
        options.n_ctx = 2048;
        options.chat_template = Some(template.clone());
        Engine::create(options, None).unwrap()
    };
    for (engine, source) in [(&from_gguf, "gguf"), (&from_option, "options")] {
        let d = engine.describe();
        assert_eq!(d.chat_template_source, source);
        assert_eq!(d.chat_template_engine, "jinja");
        assert_eq!(d.chat_template_error, None);
        let rendered = render_both(engine, &template, &["all", "tools"]);
        assert_eq!(rendered.len(), 6);
        for (name, ours, reference) in rendered {
            assert_eq!(ours, reference, "{source} x {name}");
        }
    }
}

#[test]
fn a_template_that_does_not_parse_is_reported_in_describe_and_errors() {
    let broken = "{% for m in messages %}{{ m.content }}{% endfor";
    // The GGUF's own: chats use the architecture's built-in template, and describe says why.
    let mut options = EngineOptions::new(model_with_template("does-not-parse", broken));
    options.n_ctx = 512;
    let engine = Engine::create(options, None).unwrap();
    let d = engine.describe();
    let error = d.chat_template_error.clone().expect("chat_template_error");
    assert!(
        error.contains("Parser Error"),
        "llama.cpp's own message: {error}"
    );
    assert!(!error.contains("std::exception"), "{error}");
    assert_eq!(d.chat_template_source, "built-in for architecture");
    assert!(engine
        .apply_template(Request::user("Hi"))
        .unwrap()
        .contains("<start_of_turn>user"));

    // The caller's: no chat format, and a chat request says why.
    let mut options = EngineOptions::new(model_path());
    options.n_ctx = 512;
    options.chat_template = Some(broken.into());
    let engine = Engine::create(options, None).unwrap();
    let d = engine.describe();
    assert_eq!(d.chat_template_source, "none");
    assert!(d
        .chat_template_error
        .as_deref()
        .unwrap()
        .contains("Parser Error"));
    let e = engine.apply_template(Request::user("Hi")).unwrap_err();
    assert!(e.to_string().contains("Parser Error"), "{e}");
    assert!(e.to_string().contains("chat_template"), "{e}");
    // Raw prompts still work.
    let mut raw = Request::raw("Once upon a time");
    raw.max_tokens = Some(2);
    engine.complete(raw).unwrap();
}

#[test]
fn auto_reasoning_is_the_templates_own_default() {
    let (models, _) = fixtures();
    let render = |engine: &Engine, mode| {
        let mut r = Request::chat(vec![
            Message::new(Role::System, "Be brief."),
            Message::new(Role::User, "Hi"),
        ]);
        r.reasoning = mode;
        engine.apply_template(r).unwrap()
    };
    // Gemma 4 thinks only when enable_thinking is true: AUTO renders as OFF.
    let gemma4 = engine_for(&models, "gemma4");
    let auto = render(&gemma4, ReasoningMode::Auto);
    assert_eq!(auto, render(&gemma4, ReasoningMode::Off));
    assert_ne!(auto, render(&gemma4, ReasoningMode::On));
    assert!(!auto.contains("<|think|>"), "{auto}");
    // Qwen3 thinks unless told not to: AUTO renders as ON.
    let qwen3 = engine_for(&models, "qwen3");
    let auto = render(&qwen3, ReasoningMode::Auto);
    assert_eq!(auto, render(&qwen3, ReasoningMode::On));
    assert_ne!(auto, render(&qwen3, ReasoningMode::Off));
    // llama.cpp's copy of DeepSeek-R1's template closes the thought unless enable_thinking is
    // truthy (undefined counts as off): AUTO renders as OFF there.
    let deepseek = engine_for(&models, "deepseek-r1");
    let auto = render(&deepseek, ReasoningMode::Auto);
    assert_eq!(auto, render(&deepseek, ReasoningMode::Off));
    assert_ne!(auto, render(&deepseek, ReasoningMode::On));
}

#[test]
fn a_reasoning_budget_closes_the_thinking_block_and_the_answer_follows() {
    let (models, _) = fixtures();
    // DeepSeek-R1's template opens the thinking block in the prompt (with thinking on): the
    // budget counts from the first generated token. Its tags are single tokens in the
    // vocabulary, as in the models it was written for.
    let template = engine_for(&models, "deepseek-r1").describe().chat_template;
    let mut options = EngineOptions::new(model_with_template_and_think_tokens(
        "deepseek-r1-think",
        &template,
    ));
    options.n_ctx = 2048;
    let engine = Engine::create(options, None).unwrap();
    let think = |budget: i32| {
        let mut request = Request::user("What is 2 + 2? Think it through.");
        request.reasoning = ReasoningMode::On;
        request.reasoning_budget = budget;
        request.max_tokens = Some(96);
        request.sampling.temperature = 0.0;
        engine.reset().unwrap();
        let (message, _) = engine.chat(request).unwrap();
        let tokens = |text: &String| {
            if text.trim().is_empty() {
                0
            } else {
                engine
                    .tokenize(text.trim(), Default::default())
                    .unwrap()
                    .len()
            }
        };
        (
            tokens(&message.reasoning),
            tokens(&message.content),
            message,
        )
    };
    let (unlimited, _, _) = think(-1);
    assert!(
        unlimited > 24,
        "unlimited thinking runs on ({unlimited} tokens)"
    );
    for budget in [0, 8, 24] {
        let (reasoning, content, message) = think(budget);
        println!("budget {budget}: {reasoning} reasoning tokens, {content} content tokens");
        // Re-tokenizing the text can merge or split a token at the edges.
        assert!(
            reasoning <= budget as usize + 2,
            "budget {budget}: {message:?}"
        );
        assert!(
            content > 0,
            "budget {budget}: the answer follows: {message:?}"
        );
    }
}
