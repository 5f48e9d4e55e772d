//! Structured output and tools against the real default model (a base model without a chat
//! template: llama.cpp's built-in template, tools in the generic JSON format). Every reply is
//! checked with a real JSON Schema validator. Run one at a time (`--test-threads=1`).

mod common;

use common::*;
use proptest::prelude::*;
use rigllama::{Error, Event, FinishReason, Message, Request, Role, Tool, ToolCall, ToolChoice};
use serde_json::{json, Value};

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("bad test schema {schema}: {e}"))
}

fn assert_valid(schema: &Value, text: &str, context: &str) -> Value {
    let value: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{context}: reply is not JSON ({e}): {text:?}"));
    let errors: Vec<String> = validator(schema)
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{context}: {value} is not valid against {schema}: {errors:?}"
    );
    value
}

/// Schemas of growing difficulty; every string is bounded so a reply always fits max_tokens.
fn schemas() -> Vec<Value> {
    vec![
        json!({"type": "boolean"}),
        json!({"type": "integer", "minimum": 1, "maximum": 6}),
        json!({"enum": ["red", "green", "blue"]}),
        json!({"type": "object",
               "properties": {"name": {"type": "string", "maxLength": 12},
                              "age": {"type": "integer", "minimum": 0, "maximum": 120}},
               "required": ["name", "age"]}),
        json!({"type": "object",
               "properties": {"color": {"enum": ["red", "green"]}, "shiny": {"type": "boolean"}},
               "required": ["color", "shiny"], "additionalProperties": false}),
        json!({"type": "object",
               "properties": {
                   "player": {"type": "object",
                              "properties": {"name": {"type": "string", "maxLength": 10},
                                             "level": {"type": "integer", "minimum": 1, "maximum": 99}},
                              "required": ["name", "level"], "additionalProperties": false},
                   "alive": {"type": "boolean"}},
               "required": ["player", "alive"], "additionalProperties": false}),
        json!({"type": "array", "items": {"type": "string", "maxLength": 8},
               "minItems": 2, "maxItems": 4}),
        json!({"anyOf": [
                  {"type": "integer", "minimum": 0, "maximum": 9},
                  {"type": "object", "properties": {"x": {"type": "number", "minimum": -5, "maximum": 5}},
                   "required": ["x"], "additionalProperties": false}]}),
        json!({"type": "object",
               "properties": {"price": {"type": "number", "minimum": 0.5, "maximum": 99.5},
                              "qty": {"type": "integer", "exclusiveMinimum": 0, "maximum": 10}},
               "required": ["price", "qty"], "additionalProperties": false}),
        json!({"type": "array", "minItems": 1, "maxItems": 3,
               "items": {"type": "object",
                         "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 1000},
                                        "tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                 "maxItems": 2}},
                         "required": ["id", "tags"], "additionalProperties": false}}),
        json!({"type": "string", "pattern": "^[A-Z][a-z]{2,5}$"}),
    ]
}

#[test]
fn json_schema_replies_parse_and_validate_at_several_seeds() {
    let engine = engine();
    let mut replies = 0;
    for (i, schema) in schemas().iter().enumerate() {
        for seed in [1, 2] {
            let mut request = Request::user("Answer with an example value.");
            request.json_schema = Some(schema.to_string());
            request.sampling.temperature = 0.9;
            request.sampling.seed = Some(seed);
            request.max_tokens = Some(200);
            let (message, usage) = engine.chat(request).unwrap();
            assert_eq!(
                usage.finish_reason,
                FinishReason::Stop,
                "schema {i} seed {seed}: {message:?}"
            );
            assert_valid(schema, &message.content, &format!("schema {i} seed {seed}"));
            replies += 1;
        }
    }
    eprintln!("{replies} replies, all valid");
}

#[test]
fn a_grammar_decides_the_reply_and_raw_prompts_take_one_too() {
    let engine = engine();
    let mut request = greedy_chat("How many legs does a cat have?", 20);
    request.grammar = Some(r#"root ::= "(" [0-9] [0-9]? ") " ("cat" | "dog")"#.into());
    let (text, _) = engine.complete(request).unwrap();
    let rest = text.strip_prefix('(').unwrap_or_else(|| panic!("{text:?}"));
    let (digits, animal) = rest.split_once(") ").unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        (1..=2).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()),
        "{text:?}"
    );
    assert!(animal == "cat" || animal == "dog", "{text:?}");

    let mut raw = greedy_raw("The answer is", 20);
    raw.json_schema = Some(r#"{"type":"integer","minimum":10,"maximum":20}"#.into());
    let (text, _) = engine.complete(raw).unwrap();
    let n: i64 = text.trim().parse().unwrap_or_else(|_| panic!("{text:?}"));
    assert!((10..=20).contains(&n), "{n}");
}

#[test]
fn a_grammar_that_is_already_complete_ends_the_reply_at_once() {
    let engine = engine();
    let mut request = greedy_chat("Say something.", 20);
    request.grammar = Some(r#"root ::= """#.into());
    let (text, usage) = engine.complete(request).unwrap();
    assert_eq!(text, "");
    assert_eq!(usage.finish_reason, FinishReason::Stop);
}

#[test]
fn bad_structure_is_refused_before_decoding_and_the_engine_serves_on() {
    let engine = engine();
    type Spoil = Box<dyn Fn(&mut Request)>;
    let cases: Vec<(Spoil, &str)> = vec![
        (
            Box::new(|r| r.grammar = Some("root ::= \"open".into())),
            "GBNF",
        ),
        (
            Box::new(|r| r.grammar = Some("root ::= missing".into())),
            "missing",
        ),
        (
            Box::new(|r| r.grammar = Some("start ::= \"a\"".into())),
            "'root'",
        ),
        (
            Box::new(|r| r.json_schema = Some("{\"type\":".into())),
            "json_schema is not valid JSON",
        ),
        (
            Box::new(|r| r.json_schema = Some("[1]".into())),
            "json_schema must be",
        ),
        (
            Box::new(|r| {
                r.grammar = Some("root ::= \"a\"".into());
                r.json_schema = Some("{}".into());
            }),
            "both",
        ),
        (
            Box::new(|r| {
                r.tools = vec![Tool::new("f", "", json!({"type": "object"}))];
                r.grammar = Some("root ::= \"a\"".into());
            }),
            "tools cannot be combined",
        ),
        (
            Box::new(|r| r.tool_choice = ToolChoice::Required),
            "REQUIRED",
        ),
        (
            Box::new(|r| {
                r.tools = vec![Tool::new("f", "", json!({})), Tool::new("f", "", json!({}))];
            }),
            "twice",
        ),
    ];
    for (make_bad, expected) in cases {
        let mut request = greedy_chat("hi", 4);
        make_bad(&mut request);
        match engine.complete(request) {
            Err(Error::InvalidArgument(message)) => {
                assert!(message.contains(expected), "{message:?} lacks {expected:?}")
            }
            other => panic!("expected InvalidArgument containing {expected:?}, got {other:?}"),
        }
    }
    // Left recursion parses as GBNF; llama.cpp refuses it when the request starts.
    let mut request = greedy_chat("hi", 4);
    request.grammar = Some("root ::= root \"a\" | \"a\"".into());
    assert!(matches!(
        engine.complete(request),
        Err(Error::InvalidArgument(_))
    ));
    let (text, _) = engine.complete(greedy_chat("Say hello.", 4)).unwrap();
    assert!(!text.is_empty());
}

fn weather_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "get_weather",
            "The weather in a city",
            json!({"type": "object",
                   "properties": {"city": {"type": "string", "maxLength": 20},
                                  "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}),
        ),
        Tool::new(
            "move_to",
            "Walk to a tile",
            json!({"type": "object",
                   "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9},
                                  "y": {"type": "integer", "minimum": 0, "maximum": 9}},
                   "required": ["x", "y"]}),
        ),
    ]
}

#[test]
fn tool_choice_required_gives_valid_calls_every_time() {
    let engine = engine();
    let tools = weather_tools();
    for seed in 1..=6 {
        let mut request = Request::user("What is the weather in Paris? Then walk to tile 3, 4.");
        request.tools = tools.clone();
        request.tool_choice = ToolChoice::Required;
        request.sampling.temperature = 0.8;
        request.sampling.seed = Some(seed);
        request.max_tokens = Some(200);
        let (message, usage) = engine.chat(request).unwrap();
        assert_eq!(
            usage.finish_reason,
            FinishReason::ToolCalls,
            "seed {seed}: {message:?}"
        );
        assert!(message.content.is_empty(), "{message:?}");
        assert!(!message.tool_calls.is_empty());
        for call in &message.tool_calls {
            let tool = tools
                .iter()
                .find(|t| t.name == call.name)
                .unwrap_or_else(|| panic!("{call:?}"));
            assert_valid(
                &tool.parameters,
                &call.arguments,
                &format!("seed {seed} {}", call.name),
            );
            assert!(call.id.starts_with("call_"), "{call:?}");
        }
        let json = message.to_openai_json();
        assert_eq!(json["content"], Value::Null);
        assert_eq!(json["tool_calls"][0]["type"], "function");
    }
}

#[test]
fn tool_choice_none_and_auto_and_the_events_of_a_call() {
    let engine = engine();
    let mut request = greedy_chat("What is the weather in Paris?", 40);
    request.tools = weather_tools();
    request.tool_choice = ToolChoice::None;
    let (message, usage) = engine.chat(request.clone()).unwrap();
    assert!(message.tool_calls.is_empty() && usage.finish_reason != FinishReason::ToolCalls);
    // NONE does not describe the tools to the model at all.
    assert!(!engine
        .apply_template(request.clone())
        .unwrap()
        .contains("get_weather"));

    request.tool_choice = ToolChoice::Auto;
    request.max_tokens = Some(200);
    let prompt = engine.apply_template(request.clone()).unwrap();
    assert!(
        prompt.contains("get_weather") && prompt.contains("\"response\""),
        "{prompt}"
    );
    let (message, usage) = engine.chat(request.clone()).unwrap();
    // AUTO: either a call or an answer, always well-formed.
    assert!(
        (usage.finish_reason == FinishReason::ToolCalls) != message.tool_calls.is_empty(),
        "{message:?} {usage:?}"
    );

    request.tool_choice = ToolChoice::Required;
    let mut job = engine.submit(request).unwrap();
    let mut calls = 0;
    loop {
        match job.blocking_next() {
            Event::ToolCall(call) => {
                calls += 1;
                let value = call.to_event_json();
                assert!(value["arguments"].is_object(), "{value}");
            }
            Event::Text { text, .. } => panic!("content {text:?} in a tool-call reply"),
            Event::Done(usage) => {
                assert_eq!(usage.finish_reason, FinishReason::ToolCalls);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(calls >= 1);
}

#[test]
fn an_agent_loop_with_a_tool_result_completes() {
    let engine = engine();
    let tools = weather_tools();
    let mut messages = vec![Message::new(Role::User, "What is the weather in Paris?")];
    let mut request = Request::chat(messages.clone());
    request.tools = tools.clone();
    request.tool_choice = ToolChoice::Required;
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(200);
    let (reply, _) = engine.chat(request).unwrap();
    assert!(!reply.tool_calls.is_empty());
    messages.push(reply.to_message());
    for call in &reply.tool_calls {
        messages.push(Message::tool_result(
            call.id.clone(),
            Some(call.name.clone()),
            "18 C, sunny",
        ));
    }
    let mut request = Request::chat(messages);
    request.tools = tools;
    request.tool_choice = ToolChoice::None;
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(60);
    let prompt = engine.apply_template(request.clone()).unwrap();
    assert!(prompt.contains("18 C, sunny"), "{prompt}");
    let (answer, usage) = engine.chat(request).unwrap();
    assert!(answer.tool_calls.is_empty());
    assert!(!answer.content.is_empty(), "{answer:?} {usage:?}");
}

#[test]
fn stop_strings_cancel_and_prefix_reuse_hold_with_a_grammar() {
    let engine = engine();
    let mut request = greedy_chat("List some animals.", 60);
    request.grammar = Some(r#"root ::= "cat, dog, " [a-z]+ ", fish, " [a-z ,]*"#.into());
    request.stop = vec!["fish".into()];
    let (text, usage) = engine.complete(request.clone()).unwrap();
    assert!(
        text.starts_with("cat, dog, ") && !text.contains("fish"),
        "{text:?}"
    );
    assert_eq!(usage.finish_reason, FinishReason::Stop);
    let (_, again) = engine.complete(request.clone()).unwrap();
    assert!(again.cached_prompt_tokens > 0, "{again:?}");

    request.stop.clear();
    request.max_tokens = Some(400);
    let mut job = engine.submit(request).unwrap();
    match job.blocking_next() {
        Event::Text { .. } => job.cancel(),
        other => panic!("{other:?}"),
    }
    loop {
        match job.blocking_next() {
            Event::Failed {
                error: Error::Cancelled(_),
                ..
            } => break,
            Event::Done(usage) => panic!("not cancelled: {usage:?}"),
            _ => {}
        }
    }
}

#[test]
fn tool_calls_in_history_round_trip_through_openai_json() {
    let call = ToolCall::new("call_9", "move_to", r#"{"x":1,"y":2}"#);
    let json = json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [call.to_openai_json()]},
        {"role": "tool", "tool_call_id": "call_9", "content": "ok"}
    ]);
    let messages = Message::parse_openai_list(&json.to_string()).unwrap();
    assert_eq!(messages[1].tool_calls, vec![call]);
    assert_eq!(messages[2].role, Role::Tool);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Arbitrary grammar, schema and tools text: a clear verdict, never a crash.
    #[test]
    fn arbitrary_structure_strings_never_crash(
        grammar in prop::option::of("(root ::= )?[ -~\\n]{0,60}"),
        schema in prop::option::of("[ -~]{0,40}"),
        tools in prop::option::of("[ -~]{0,60}"),
    ) {
        let mut request = Request::user("hi");
        request.grammar = grammar;
        request.json_schema = schema;
        if let Some(tools) = tools {
            match Tool::parse_openai_list(&tools) {
                Ok(parsed) => request.tools = parsed,
                Err(e) => prop_assert!(matches!(e, Error::InvalidArgument(_))),
            }
        }
        if let Err(e) = request.validate() {
            prop_assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        }
    }
}

#[test]
fn generated_grammars_run_on_the_model_without_crashing() {
    // Valid grammars of many shapes, each run for a few tokens: whatever the model samples,
    // the request ends with a status, never an abort.
    let engine = engine();
    let grammars = [
        r#"root ::= [a-z]{1,3}"#,
        r#"root ::= "x"*"#,
        r#"root ::= ("a" | "b" root)"#,
        r#"root ::= [^a-z]+"#,
        r#"root ::= "\u00e9t\u00e9" | "caf\u00e9""#,
        r#"root ::= [\u4e00-\u4e0f] [0-9]?"#,
        r#"root ::= "<start_of_turn>" [a-z]*"#,
        r#"root ::= " "* "{" " "* "}""#,
    ];
    for (i, gbnf) in grammars.iter().enumerate() {
        for seed in [1, 2] {
            let mut request = Request::user("Write anything.");
            request.grammar = Some((*gbnf).into());
            request.sampling.seed = Some(seed);
            request.sampling.temperature = 1.0;
            request.max_tokens = Some(12);
            match engine.complete(request) {
                Ok(_) | Err(Error::InvalidArgument(_)) => {}
                Err(e) => panic!("grammar {i}: {e:?}"),
            }
        }
    }
    let (text, _) = engine.complete(greedy_chat("Say hello.", 4)).unwrap();
    assert!(!text.is_empty());
}

/// Schemas built from JSON Schema's own keywords, nested.
fn schema_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({"type": "string"})),
        Just(json!({"type": "integer", "minimum": -3, "maximum": 1000000})),
        Just(json!({"type": "number", "exclusiveMinimum": 0.25})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!({"enum": []})),
        Just(json!({"const": "x"})),
        Just(json!({"type": "string", "pattern": "^(a|b)*[c-f]{2,}$"})),
        Just(json!({"type": "string", "pattern": "(((("})),
        Just(json!({"type": "string", "format": "date-time"})),
        Just(json!({"$ref": "#"})),
        Just(json!({"$ref": "#/nowhere"})),
        Just(json!({"type": "integer", "minimum": 5, "maximum": 1})),
        Just(json!({"type": "string", "minLength": 1000000000})),
        Just(json!({"type": "array", "minItems": 100000})),
        Just(json!({"type": ["string", "integer"]})),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!({})),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| json!({"anyOf": items})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|items| json!({"oneOf": items})),
            inner
                .clone()
                .prop_map(|item| json!({"type": "array", "items": item, "maxItems": 3})),
            (prop::collection::vec(inner.clone(), 1..4), any::<bool>()).prop_map(
                |(props, strict)| {
                    let properties: serde_json::Map<String, Value> = props
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (format!("p{i}"), p))
                        .collect();
                    let required: Vec<String> = properties.keys().cloned().collect();
                    json!({"type": "object", "properties": properties, "required": required,
                       "additionalProperties": !strict, "$defs": {"d": {"$ref": "#/$defs/d"}}})
                }
            ),
        ]
    })
}

#[test]
fn arbitrary_schemas_and_tools_become_grammars_or_clear_errors_never_crashes() {
    // Through the real converter and llama.cpp's grammar loader (each request starts, so the
    // grammar is built, then stops after one token).
    let engine = engine();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(150));
    let outcomes = [std::cell::Cell::new(0usize), std::cell::Cell::new(0usize)];
    runner
        .run(&(schema_strategy(), any::<bool>()), |(schema, as_tool)| {
            let mut request = greedy_chat("Answer.", 1);
            if as_tool {
                request.tools = vec![Tool::new("t", "", schema.clone())];
                request.tool_choice = ToolChoice::Required;
            } else {
                request.json_schema = Some(schema.to_string());
            }
            match engine.complete(request) {
                Ok(_) => outcomes[0].set(outcomes[0].get() + 1),
                Err(Error::InvalidArgument(_)) => outcomes[1].set(outcomes[1].get() + 1),
                Err(e) => prop_assert!(false, "{schema}: {e:?}"),
            }
            Ok(())
        })
        .unwrap();
    let (ran, refused) = (outcomes[0].get(), outcomes[1].get());
    eprintln!("{ran} ran, {refused} refused with a reason");
    assert!(ran > 0 && refused > 0, "{ran} ran, {refused} refused");
    let (text, _) = engine.complete(greedy_chat("Say hello.", 4)).unwrap();
    assert!(!text.is_empty());
}
