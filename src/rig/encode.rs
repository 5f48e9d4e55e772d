//! Rig's completion request as the engine's [`Request`]: the history as chat turns (tool
//! calls, tool results and images included), the tools and tool choice, the output schema,
//! the options and `additional_params`. What the engine cannot do is refused by name, not
//! dropped.

use rig_core::completion::{CompletionRequest, Reasoning as RigReasoning, ToolDefinition};
use rig_core::message::{
    AssistantContent, DocumentSourceKind, Image as RigImage, Message as RigMessage,
    ToolChoice as RigToolChoice, ToolResult, ToolResultContent, UserContent,
};

use crate::engine::{
    Image, LogitBias, Message, Mirostat, Prompt, ReasoningMode, Request, Role, Sampling, Tool,
    ToolCall, ToolChoice, DEFAULT_MAX_TOKENS, MEDIA_MARKER,
};

/// Builds the engine's request from Rig's, refusing what the engine cannot do.
pub fn engine_request(request: &CompletionRequest) -> Result<Request, String> {
    let mut messages = Vec::new();
    for (index, message) in request.chat_history.iter().enumerate() {
        match message {
            RigMessage::System { content } => messages.push(Message::new(Role::System, content)),
            RigMessage::User { content } => push_user_turns(&mut messages, index, content)?,
            RigMessage::Assistant(assistant) => {
                messages.push(assistant_turn(index, &assistant.content)?)
            }
        }
    }
    if let Some(documents) = request.normalized_documents() {
        // Documents go in front of the first non-system turn, as Rig's own providers do.
        // (Through `Model::call` Rig has already put them in the history; this is for callers
        // of engine_request itself.)
        let RigMessage::User { content } = documents else {
            unreachable!("normalized documents are a user message")
        };
        let text: String = content
            .iter()
            .map(|part| match part {
                UserContent::Document(document) => document.data.to_string(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let at = messages
            .iter()
            .position(|m| m.role != Role::System)
            .unwrap_or(messages.len());
        match messages.get_mut(at) {
            Some(first) if first.role == Role::User => {
                first.content = format!("{text}\n\n{}", first.content);
            }
            _ => messages.insert(at, Message::new(Role::User, text)),
        }
    }
    let (tools, tool_choice) = engine_tools(&request.tools, request.tool_choice.as_ref())?;
    let json_schema = request
        .output_schema
        .as_ref()
        .map(|schema| {
            serde_json::to_string(schema)
                .map_err(|e| format!("the output_schema does not serialize: {e}"))
        })
        .transpose()?;
    if json_schema.is_some() && !tools.is_empty() && tool_choice != ToolChoice::None {
        // The schema's grammar would keep the model from calling the tools.
        return Err(
            "rigllama cannot hold a reply to output_schema while it may call tools; \
                    set tool_choice None, or ask for the structured answer without tools"
                .into(),
        );
    }
    let options = &request.options;
    let additional_params = request.additional_params.as_ref();
    let (reasoning, reasoning_budget) = match options.reasoning {
        None => (ReasoningMode::Auto, -1),
        Some(RigReasoning::Off) => (ReasoningMode::Off, -1),
        Some(RigReasoning::Budget { tokens }) => {
            (ReasoningMode::On, i32::try_from(tokens).unwrap_or(i32::MAX))
        }
        Some(RigReasoning::Effort(effort)) => (ReasoningMode::On, effort_budget(effort)),
        // A kind Rig adds later: thinking on, unlimited.
        Some(_) => (ReasoningMode::On, -1),
    };
    let seed = options
        .seed
        .map(|seed| {
            u32::try_from(seed)
                .ok()
                .filter(|&s| s != u32::MAX)
                .ok_or_else(|| format!("seed {seed} does not fit rigllama's 32-bit seeds"))
        })
        .transpose()?;
    let max_tokens = request.max_tokens.map_or(Ok(DEFAULT_MAX_TOKENS), |max| {
        u32::try_from(max).map_err(|_| format!("max_tokens {max} is too large"))
    })?;
    let defaults = Sampling::default();
    let request = Request {
        prompt: Prompt::Chat(messages),
        max_tokens: Some(max_tokens),
        sampling: Sampling {
            temperature: request
                .temperature
                .map_or(defaults.temperature, |t| t as f32),
            top_p: options.top_p.map_or(defaults.top_p, |p| p as f32),
            seed,
            ..defaults
        },
        stop: options.stop.clone(),
        priority: 0,
        grammar: None,
        json_schema,
        tools,
        tool_choice,
        reasoning,
        reasoning_budget,
        logprobs: 0,
        draft_max: crate::engine::DEFAULT_DRAFT_MAX,
        lora: None,
    };
    let mut request = request;
    if let Some(params) = additional_params.filter(|p| !p.is_null()) {
        apply_additional_params(params, &mut request)?;
    }
    request.validate().map_err(|e| e.to_string())?;
    Ok(request)
}

/// llama-server's `lora` list: objects with an adapter `id` (as `add_lora` gave it) and a
/// `scale`.
fn lora_list(value: &serde_json::Value) -> Result<Vec<crate::LoraScale>, String> {
    let shape = || {
        format!(
            "additional_params.lora must be an array of {{\"id\": <adapter id>, \"scale\": \
             <number>}} objects, not {value}"
        )
    };
    let entries = value.as_array().ok_or_else(shape)?;
    entries
        .iter()
        .map(|entry| {
            let id = entry.get("id").and_then(serde_json::Value::as_u64);
            let scale = entry.get("scale").and_then(serde_json::Value::as_f64);
            match (id.and_then(|id| u32::try_from(id).ok()), scale) {
                (Some(id), Some(scale)) => Ok(crate::LoraScale {
                    id,
                    scale: scale as f32,
                }),
                _ => Err(shape()),
            }
        })
        .collect()
}

/// Rig's `additional_params`: llama.cpp's sampler knobs under llama-server's names, and
/// OpenAI's `logprobs`/`top_logprobs`, llama-server's `speculative.n_max` (prompt-lookup
/// speculation's [`Request::draft_max`]) and `lora` (this request's adapters,
/// `[{"id": 0, "scale": 0.5}]`: [`Request::lora`]). Anything else is refused, not ignored.
fn apply_additional_params(
    params: &serde_json::Value,
    request: &mut Request,
) -> Result<(), String> {
    let serde_json::Value::Object(map) = params else {
        return Err(format!(
            "additional_params must be a JSON object, not {params}"
        ));
    };
    let s = &mut request.sampling;
    let mut mirostat = 0;
    let (mut tau, mut eta) = (Mirostat::DEFAULT_TAU, Mirostat::DEFAULT_ETA);
    let mut top_logprobs = None;
    let mut logprobs = false;
    for (key, value) in map {
        let number = || {
            value
                .as_f64()
                .map(|v| v as f32)
                .ok_or_else(|| format!("additional_params.{key} must be a number, not {value}"))
        };
        let integer = || {
            value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| format!("additional_params.{key} must be an integer, not {value}"))
        };
        match key.as_str() {
            "top_k" => s.top_k = integer()?,
            "min_p" => s.min_p = number()?,
            "repeat_penalty" => s.repeat_penalty = number()?,
            "presence_penalty" => s.presence_penalty = number()?,
            "frequency_penalty" => s.frequency_penalty = number()?,
            "penalty_last_n" | "repeat_last_n" => s.penalty_last_n = integer()?,
            "typical_p" => s.typical_p = number()?,
            "top_n_sigma" => s.top_n_sigma = number()?,
            "dry_multiplier" => s.dry.multiplier = number()?,
            "dry_base" => s.dry.base = number()?,
            "dry_allowed_length" => s.dry.allowed_length = integer()?,
            "dry_penalty_last_n" => s.dry.penalty_last_n = integer()?,
            "dry_sequence_breakers" => {
                s.dry.sequence_breakers = Some(
                    serde_json::from_value(value.clone()).map_err(|_| {
                        format!("additional_params.dry_sequence_breakers must be an array of strings, not {value}")
                    })?,
                )
            }
            "xtc_probability" => s.xtc.probability = number()?,
            "xtc_threshold" => s.xtc.threshold = number()?,
            "mirostat" => mirostat = integer()?,
            "mirostat_tau" => tau = number()?,
            "mirostat_eta" => eta = number()?,
            "logit_bias" => {
                s.logit_bias =
                    LogitBias::parse_json(&value.to_string()).map_err(|e| e.to_string())?
            }
            "logprobs" => {
                logprobs = value.as_bool().ok_or_else(|| {
                    format!("additional_params.logprobs must be true or false, not {value}")
                })?
            }
            "top_logprobs" | "n_probs" => top_logprobs = Some(integer()?),
            // llama-server's per-request name for the speculative draft length.
            "speculative.n_max" | "draft_max" => {
                request.draft_max = u32::try_from(integer()?)
                    .map_err(|_| format!("additional_params.{key} {value} is negative"))?
            }
            // llama-server's per-request adapters: [{"id": 0, "scale": 0.5}, ...].
            "lora" => request.lora = Some(lora_list(value)?),
            other => {
                return Err(format!(
                    "rigllama does not know additional_params.{other}; it takes llama.cpp's sampler \
                     settings (top_k, min_p, repeat_penalty, presence_penalty, frequency_penalty, \
                     penalty_last_n, typical_p, top_n_sigma, dry_*, xtc_*, mirostat*, logit_bias), \
                     logprobs/top_logprobs, speculative.n_max (prompt-lookup speculation) and lora \
                     (this request's LoRA adapters)"
                ))
            }
        }
    }
    s.mirostat = match mirostat {
        0 => Mirostat::Off,
        1 => Mirostat::V1 { tau, eta },
        2 => Mirostat::V2 { tau, eta },
        other => {
            return Err(format!(
                "additional_params.mirostat {other} must be 0, 1 or 2"
            ))
        }
    };
    request.logprobs = match (logprobs, top_logprobs) {
        (_, Some(n)) => u32::try_from(n).map_err(|_| format!("top_logprobs {n} is negative"))?,
        // OpenAI's logprobs without alternatives: the token's own, and the best one beside it.
        (true, None) => 1,
        (false, None) => 0,
    };
    Ok(())
}

/// One Rig user message as engine turns, in its order: each tool result its own tool turn,
/// and each run of text between them one user turn (its parts a line apart).
fn push_user_turns(
    messages: &mut Vec<Message>,
    index: usize,
    content: &[UserContent],
) -> Result<(), String> {
    fn flush(messages: &mut Vec<Message>, text: &mut Vec<String>, images: &mut Vec<Image>) {
        if !text.is_empty() {
            let mut turn = Message::new(Role::User, text.join("\n"));
            turn.images = std::mem::take(images);
            messages.push(turn);
            text.clear();
        }
    }
    // Text parts, and a marker for each image where it came.
    let mut text: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for part in content {
        match part {
            UserContent::Text(part) => text.push(part.text.clone()),
            UserContent::Image(image) => {
                images.push(engine_image(index, image)?);
                text.push(MEDIA_MARKER.to_owned());
            }
            UserContent::ToolResult(result) => {
                flush(messages, &mut text, &mut images);
                messages.push(tool_turn(index, result)?);
            }
            _ => {
                return Err(format!(
                    "user message {index} has audio, video or a document part; rigllama reads \
                     text and images only"
                ))
            }
        }
    }
    flush(messages, &mut text, &mut images);
    Ok(())
}

/// A Rig image as the engine's: base64 data, raw bytes, or a data:/file URL or local path
/// (web URLs are not fetched).
fn engine_image(index: usize, image: &RigImage) -> Result<Image, String> {
    let image = match &image.data {
        DocumentSourceKind::Base64(data) => Image::from_base64(data),
        DocumentSourceKind::Raw(bytes) => Image::from_bytes(bytes.clone()),
        DocumentSourceKind::Url(url) | DocumentSourceKind::String(url) => Image::from_url(url),
        _ => {
            return Err(format!(
                "the image in user message {index} is a provider file id or empty; pass its \
                 bytes, base64 data or a file path"
            ))
        }
    };
    image.map_err(|e| format!("the image in user message {index}: {e}"))
}

/// A tool result as the tool turn answering its call. Text and JSON parts are its content,
/// a line apart, as Rig's history adapter joins them.
fn tool_turn(index: usize, result: &ToolResult) -> Result<Message, String> {
    let content = result
        .content
        .iter()
        .map(|part| match part {
            ToolResultContent::Text(text) => Ok(text.text.clone()),
            ToolResultContent::Json { value } => Ok(value.to_string()),
            ToolResultContent::Image(_) => Err(format!(
                "the result of tool {} in message {index} holds an image; rigllama reads text only",
                result.name
            )),
        })
        .collect::<Result<Vec<_>, _>>()?
        .join("\n");
    Ok(Message::tool_result(
        result.call.wire().into_owned(),
        Some(result.name.to_string()),
        content,
    ))
}

/// A Rig assistant turn as one engine turn: its text, and its tool calls. Its reasoning is
/// left out: chat templates show the model none of its earlier turns' thinking.
fn assistant_turn(index: usize, content: &[AssistantContent]) -> Result<Message, String> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in content {
        match part {
            AssistantContent::Text(part) => text.push_str(&part.text),
            AssistantContent::ToolCall(call) => calls.push(ToolCall::new(
                call.id.wire().into_owned(),
                call.function.name.as_str(),
                call.function.arguments_value().to_string(),
            )),
            AssistantContent::Reasoning(_) => {}
            _ => {
                return Err(format!(
                    "assistant message {index} has content other than text, reasoning and tool \
                     calls; rigllama reads text only"
                ))
            }
        }
    }
    Ok(if calls.is_empty() {
        Message::new(Role::Assistant, text)
    } else {
        Message::tool_calls(text, calls)
    })
}

/// The tools the model is offered and how it must use them. Rig's choice of specific
/// functions is honoured as the engine's Required over just those tools.
fn engine_tools(
    definitions: &[ToolDefinition],
    choice: Option<&RigToolChoice>,
) -> Result<(Vec<Tool>, ToolChoice), String> {
    let tool = |definition: &ToolDefinition| {
        Tool::new(
            definition.name.as_str(),
            definition.description.as_str(),
            definition.parameters.clone(),
        )
    };
    let (tools, choice): (Vec<Tool>, ToolChoice) = match choice {
        None | Some(RigToolChoice::Auto) => {
            (definitions.iter().map(tool).collect(), ToolChoice::Auto)
        }
        Some(RigToolChoice::None) => (definitions.iter().map(tool).collect(), ToolChoice::None),
        Some(RigToolChoice::Required) => {
            (definitions.iter().map(tool).collect(), ToolChoice::Required)
        }
        Some(RigToolChoice::Specific { function_names }) => {
            if let Some(unknown) = function_names
                .iter()
                .find(|name| !definitions.iter().any(|d| d.name == **name))
            {
                return Err(format!(
                    "tool_choice names the function {unknown}, which is not among the request's tools"
                ));
            }
            let named: Vec<Tool> = definitions
                .iter()
                .filter(|d| function_names.contains(&d.name))
                .map(tool)
                .collect();
            (named, ToolChoice::Required)
        }
    };
    if choice == ToolChoice::Required && tools.is_empty() {
        return Err("tool_choice requires a tool call, but the request has no tools".into());
    }
    Ok((tools, choice))
}

/// The thinking tokens each of Rig's effort levels allows (the README's table): templates
/// only switch thinking on or off, so effort is a budget.
pub(crate) fn effort_budget(effort: rig_core::completion::Effort) -> i32 {
    use rig_core::completion::Effort;
    match effort {
        Effort::Minimal => 128,
        Effort::Low => 512,
        Effort::Medium => 2048,
        Effort::High => 8192,
        Effort::XHigh => 16384,
        // Max, and levels Rig adds later: unlimited.
        _ => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig_core::message::{AssistantMessage, ToolCall as RigToolCall, ToolFunction, ToolName};
    use serde_json::json;

    fn add_tool() -> ToolDefinition {
        ToolDefinition::new(
            ToolName::new("add").unwrap(),
            "Adds two integers",
            json!({
                "type": "object",
                "properties": { "a": { "type": "integer" }, "b": { "type": "integer" } },
                "required": ["a", "b"],
            }),
        )
    }

    fn sub_tool() -> ToolDefinition {
        ToolDefinition::new(
            ToolName::new("sub").unwrap(),
            "Subtracts",
            json!({ "type": "object" }),
        )
    }

    fn add_call() -> RigToolCall {
        RigToolCall::from_wire(
            "call_1",
            ToolFunction::new(ToolName::new("add").unwrap(), json!({ "a": 2, "b": 3 })),
        )
    }

    /// A whole tool round as a later request carries it: the tools, the assistant's call
    /// (after its reasoning), and the call's result.
    #[test]
    fn tools_calls_and_results_reach_the_engine() {
        let call = add_call();
        let result = call.result(vec![ToolResultContent::text("5")]);
        let request = CompletionRequest::new(RigMessage::tool_results(vec![result]))
            .preamble("Use the tools.")
            .messages([
                RigMessage::user("What is 2 + 3?"),
                RigMessage::Assistant(AssistantMessage::new(vec![
                    AssistantContent::reasoning("I should add."),
                    AssistantContent::ToolCall(call),
                ])),
            ])
            .tool(add_tool())
            .tool_choice(RigToolChoice::Required)
            .reasoning(RigReasoning::Off);
        let engine = engine_request(&request).unwrap();
        let Prompt::Chat(messages) = &engine.prompt else {
            panic!("a chat request")
        };
        assert_eq!(
            messages,
            &vec![
                Message::new(Role::System, "Use the tools."),
                Message::new(Role::User, "What is 2 + 3?"),
                // The reasoning is not sent back.
                Message::tool_calls("", vec![ToolCall::new("call_1", "add", r#"{"a":2,"b":3}"#)]),
                Message::tool_result("call_1", Some("add".into()), "5"),
            ]
        );
        assert_eq!(
            engine.tools,
            vec![Tool::new("add", "Adds two integers", add_tool().parameters)]
        );
        assert_eq!(engine.tool_choice, ToolChoice::Required);
        assert_eq!(engine.reasoning, ReasoningMode::Off);
        assert_eq!(engine.json_schema, None);
    }

    /// Text after the results (the next prompt, joined to them by Rig's history adapter)
    /// is a user turn after the tool turns; JSON results are their JSON text.
    #[test]
    fn a_user_message_splits_into_tool_turns_and_a_user_turn() {
        let call = add_call();
        let result = call.result(vec![ToolResultContent::json(json!({ "sum": 5 }))]);
        let request = CompletionRequest::new(RigMessage::User {
            content: vec![
                UserContent::ToolResult(result),
                UserContent::text("Thanks!"),
            ],
        })
        .messages([
            RigMessage::user("What is 2 + 3?"),
            RigMessage::Assistant(AssistantMessage::new(vec![AssistantContent::ToolCall(
                call,
            )])),
        ])
        .tool(add_tool());
        let engine = engine_request(&request).unwrap();
        let Prompt::Chat(messages) = &engine.prompt else {
            panic!("a chat request")
        };
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![Role::User, Role::Assistant, Role::Tool, Role::User]
        );
        assert_eq!(messages[2].content, r#"{"sum":5}"#);
        assert_eq!(messages[3].content, "Thanks!");
        assert_eq!(engine.tool_choice, ToolChoice::Auto);
        assert_eq!(engine.reasoning, ReasoningMode::Auto);
    }

    #[test]
    fn an_image_in_a_tool_result_is_refused() {
        let call = add_call();
        let result = call.result(vec![ToolResultContent::image_url(
            "https://example.com/a.png",
            None,
            None,
        )]);
        let request = CompletionRequest::new(RigMessage::tool_results(vec![result]))
            .messages([
                RigMessage::user("Draw it."),
                RigMessage::Assistant(AssistantMessage::new(vec![AssistantContent::ToolCall(
                    call,
                )])),
            ])
            .tool(add_tool());
        let error = engine_request(&request).unwrap_err();
        assert!(error.contains("image"), "{error}");
    }

    /// Naming functions narrows the tools to those and makes a call required.
    #[test]
    fn a_specific_tool_choice_offers_only_the_named_tools() {
        let choose = |names: &[&str]| {
            CompletionRequest::new("Subtract 3 from 5.")
                .tools(vec![add_tool(), sub_tool()])
                .tool_choice(RigToolChoice::Specific {
                    function_names: names.iter().map(|n| ToolName::new(*n).unwrap()).collect(),
                })
        };
        let engine = engine_request(&choose(&["sub"])).unwrap();
        let names: Vec<&str> = engine.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["sub"]);
        assert_eq!(engine.tool_choice, ToolChoice::Required);
        let error = engine_request(&choose(&["mul"])).unwrap_err();
        assert!(error.contains("mul"), "{error}");
        let error =
            engine_request(&CompletionRequest::new("hi").tool_choice(RigToolChoice::Required))
                .unwrap_err();
        assert!(error.contains("no tools"), "{error}");
    }

    #[test]
    fn the_output_schema_becomes_the_requests_json_schema() {
        let schema = json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"],
        });
        let request = CompletionRequest::new("Name a city.")
            .output_schema(rig_core::schemars::Schema::try_from(schema.clone()).unwrap());
        let engine = engine_request(&request).unwrap();
        let sent: serde_json::Value =
            serde_json::from_str(engine.json_schema.as_deref().unwrap()).unwrap();
        assert_eq!(sent, schema);

        // Held to a schema, the model could not call the tools it is offered.
        let error = engine_request(&request.clone().tool(add_tool())).unwrap_err();
        assert!(error.contains("output_schema"), "{error}");
        let engine =
            engine_request(&request.tool(add_tool()).tool_choice(RigToolChoice::None)).unwrap();
        assert!(engine.json_schema.is_some());
        assert_eq!(engine.tool_choice, ToolChoice::None);
    }

    #[test]
    fn additional_params_set_the_sampler_knobs_and_logprobs() {
        let request = CompletionRequest::new("hi").additional_params(json!({
            "top_k": 12, "min_p": 0.1, "repeat_penalty": 1.1, "presence_penalty": 0.5,
            "frequency_penalty": 0.25, "repeat_last_n": -1, "typical_p": 0.9, "top_n_sigma": 1.5,
            "dry_multiplier": 0.8, "dry_base": 2.0, "dry_allowed_length": 3,
            "dry_penalty_last_n": 128, "dry_sequence_breakers": ["\n"], "xtc_probability": 0.5,
            "xtc_threshold": 0.2, "mirostat": 2, "mirostat_tau": 4.0, "mirostat_eta": 0.2,
            "logit_bias": {"42": -100}, "logprobs": true, "top_logprobs": 5,
            "speculative.n_max": 8,
        }));
        let s = engine_request(&request).unwrap();
        let expected = Sampling {
            top_k: 12,
            min_p: 0.1,
            repeat_penalty: 1.1,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            penalty_last_n: -1,
            typical_p: 0.9,
            top_n_sigma: 1.5,
            dry: crate::Dry {
                multiplier: 0.8,
                base: 2.0,
                allowed_length: 3,
                penalty_last_n: 128,
                sequence_breakers: Some(vec!["\n".into()]),
            },
            xtc: crate::Xtc {
                probability: 0.5,
                threshold: 0.2,
            },
            mirostat: Mirostat::V2 { tau: 4.0, eta: 0.2 },
            logit_bias: vec![LogitBias {
                target: crate::BiasTarget::Token(42),
                bias: -100.0,
            }],
            ..Sampling::default()
        };
        assert_eq!(s.sampling, expected);
        assert_eq!(s.logprobs, 5);
        assert_eq!(s.draft_max, 8);
        let just_logprobs =
            CompletionRequest::new("hi").additional_params(json!({"logprobs": true}));
        assert_eq!(engine_request(&just_logprobs).unwrap().logprobs, 1);
        let lora = CompletionRequest::new("hi")
            .additional_params(json!({"lora": [{"id": 1, "scale": 0.5}, {"id": 0, "scale": 0}]}));
        assert_eq!(
            engine_request(&lora).unwrap().lora,
            Some(vec![
                crate::LoraScale { id: 1, scale: 0.5 },
                crate::LoraScale { id: 0, scale: 0.0 }
            ])
        );

        // What it cannot honour, or out of range, is refused by name.
        for (params, expected) in [
            (
                json!({"grammar": "root ::= \"a\""}),
                "does not know additional_params.grammar",
            ),
            (json!({"top_k": "many"}), "top_k must be an integer"),
            (json!({"mirostat": 3}), "mirostat 3"),
            (json!({"presence_penalty": 9}), "presence_penalty 9"),
            (json!({"top_logprobs": 50}), "n_logprobs 50"),
            (json!({"speculative.n_max": 65}), "draft_max 65"),
            (json!({"draft_max": -1}), "draft_max -1 is negative"),
            (
                json!({"lora": [{"id": 0}]}),
                "additional_params.lora must be an array",
            ),
            (
                json!({"lora": {"id": 0, "scale": 1}}),
                "additional_params.lora must be",
            ),
            (
                json!({"lora": [{"id": 0, "scale": 1}, {"id": 0, "scale": 2}]}),
                "lora_ids[1] = 0 names an adapter already listed",
            ),
            (
                json!({"lora": [{"id": 0, "scale": 1e9}]}),
                "lora_scales[0] (adapter 0)",
            ),
            (json!([1, 2]), "must be a JSON object"),
        ] {
            let request = CompletionRequest::new("hi").additional_params(params);
            let error = engine_request(&request).unwrap_err();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn an_effort_level_turns_thinking_on_with_its_budget() {
        use rig_core::completion::Effort;
        for (effort, budget) in [
            (Effort::Minimal, 128),
            (Effort::Low, 512),
            (Effort::Medium, 2048),
            (Effort::High, 8192),
            (Effort::XHigh, 16384),
            (Effort::Max, -1),
        ] {
            let request = engine_request(&CompletionRequest::new("hi").reasoning(effort)).unwrap();
            assert_eq!(request.reasoning, ReasoningMode::On);
            assert_eq!(request.reasoning_budget, budget, "{effort:?}");
        }
        let request = CompletionRequest::new("hi")
            .reasoning(rig_core::completion::Reasoning::Budget { tokens: 77 });
        assert_eq!(engine_request(&request).unwrap().reasoning_budget, 77);
    }
}
