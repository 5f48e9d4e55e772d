//! The generic tool format, for templates that cannot render tools (llama.cpp's built-in
//! templates, and Jinja templates without tool support): the tools are described in the
//! system turn, the reply is one JSON object constrained by a grammar —
//! `{"tool_calls":[{"name":..,"arguments":{..}}, ...]}` or, when the model may answer
//! directly, `{"response":"..."}` — and earlier calls and results are written into the
//! conversation as text the model can read.

use serde_json::{json, Value};

use crate::engine::data::message::{Message, Role};
use crate::engine::data::tools::new_call_id;
use crate::engine::data::tools::{Tool, ToolCall, ToolChoice};
use crate::engine::error::Result;
use crate::engine::llama::grammar::json_schema_to_grammar;

/// Rewrites a conversation for a template that knows only system, user and assistant
/// turns: tool calls become the assistant's JSON, tool results become a user turn (one for
/// a run of consecutive results), and `tools` (when given) are described in the system turn.
pub(crate) fn rewrite_messages(
    messages: &[Message],
    tools: &[Tool],
    choice: ToolChoice,
) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let instructions = instructions(tools, choice);
        match messages.first() {
            Some(first) if first.role == Role::System => {
                out.push(Message::new(
                    Role::System,
                    format!("{}\n\n{instructions}", first.content),
                ));
            }
            _ => out.push(Message::new(Role::System, instructions)),
        }
    }
    let skip =
        usize::from(!tools.is_empty() && messages.first().is_some_and(|m| m.role == Role::System));
    for message in &messages[skip..] {
        match message.role {
            Role::Assistant if !message.tool_calls.is_empty() => {
                let calls = json!({ "tool_calls": message.tool_calls.iter().map(call_json).collect::<Vec<_>>() });
                let content = if message.content.is_empty() {
                    calls.to_string()
                } else {
                    format!("{}\n{calls}", message.content)
                };
                out.push(Message::new(Role::Assistant, content));
            }
            Role::Tool => {
                let result = json!({
                    "tool_result": {
                        "id": message.tool_call_id,
                        "name": message.name,
                        "content": message.content,
                    }
                })
                .to_string();
                match out.last_mut() {
                    Some(last)
                        if last.role == Role::User
                            && last.content.starts_with("{\"tool_result\"") =>
                    {
                        last.content.push('\n');
                        last.content.push_str(&result);
                    }
                    _ => out.push(Message::new(Role::User, result)),
                }
            }
            _ => out.push(Message::new(message.role, message.content.clone())),
        }
    }
    out
}

fn call_json(call: &ToolCall) -> Value {
    let arguments = serde_json::from_str::<Value>(&call.arguments).unwrap_or(Value::Null);
    json!({ "name": call.name, "arguments": arguments })
}

fn instructions(tools: &[Tool], choice: ToolChoice) -> String {
    let listed = tools
        .iter()
        .map(|t| {
            json!({ "name": t.name, "description": t.description, "parameters": t.parameters })
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let answer = match choice {
        ToolChoice::Required => {
            "Reply with one JSON object and nothing else, calling one or more tools: \
             {\"tool_calls\": [{\"name\": \"<tool name>\", \"arguments\": {<arguments>}}]}"
        }
        _ => {
            "Reply with one JSON object and nothing else: either call one or more tools with \
             {\"tool_calls\": [{\"name\": \"<tool name>\", \"arguments\": {<arguments>}}]} \
             or answer directly with {\"response\": \"<your answer>\"}."
        }
    };
    format!("You can use these tools:\n{listed}\n\n{answer}\nTool results come back as {{\"tool_result\": ...}}.")
}

/// Calls in one reply at most, in every tool format: parallel calls are allowed, but a small
/// model repeats calls until max_tokens if nothing ends the list.
pub const MAX_CALLS_PER_REPLY: usize = 4;

/// The JSON Schema of a reply in this format.
pub(crate) fn schema(tools: &[Tool], choice: ToolChoice) -> Value {
    // REQUIRED asks for one call, as in the templates' own formats (see template.rs).
    let max_calls = if choice == ToolChoice::Required {
        1
    } else {
        MAX_CALLS_PER_REPLY
    };
    let call = json!({
        "anyOf": tools.iter().map(|t| json!({
            "type": "object",
            "properties": { "name": { "const": t.name }, "arguments": t.parameters },
            "required": ["name", "arguments"],
        })).collect::<Vec<_>>()
    });
    let calls = json!({
        "type": "object",
        "properties": { "tool_calls": {
            "type": "array", "items": call, "minItems": 1, "maxItems": max_calls,
        } },
        "required": ["tool_calls"],
    });
    match choice {
        ToolChoice::Required => calls,
        _ => json!({
            "anyOf": [
                calls,
                {
                    "type": "object",
                    "properties": { "response": { "type": "string" } },
                    "required": ["response"],
                }
            ]
        }),
    }
}

pub(crate) fn grammar(tools: &[Tool], choice: ToolChoice) -> Result<String> {
    json_schema_to_grammar(&schema(tools, choice).to_string())
}

/// A whole reply in this format: its content and calls. Text that is not this format (a
/// reply cut short by max_tokens, say) is content.
pub(crate) fn parse_reply(text: &str) -> (String, Vec<ToolCall>) {
    let Ok(value) = serde_json::from_str::<Value>(text.trim()) else {
        return (text.to_owned(), Vec::new());
    };
    if let Some(calls) = value.get("tool_calls").and_then(Value::as_array) {
        let calls: Vec<ToolCall> = calls
            .iter()
            .filter_map(|c| {
                let name = c.get("name")?.as_str()?;
                let arguments = c.get("arguments").cloned().unwrap_or_else(|| json!({}));
                Some(ToolCall::new(new_call_id(), name, arguments.to_string()))
            })
            .collect();
        if !calls.is_empty() {
            return (String::new(), calls);
        }
    }
    if let Some(response) = value.get("response").and_then(Value::as_str) {
        return (response.to_owned(), Vec::new());
    }
    (text.to_owned(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Tool> {
        vec![Tool::new(
            "move_to",
            "Walk somewhere",
            json!({"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}),
        )]
    }

    #[test]
    fn results_and_calls_become_readable_turns() {
        let messages = vec![
            Message::new(Role::User, "go"),
            Message::tool_calls("", vec![ToolCall::new("c1", "move_to", "{\"x\":1}")]),
            Message::tool_result("c1", Some("move_to".into()), "arrived"),
            Message::tool_result("c2", None, "also"),
        ];
        let out = rewrite_messages(&messages, &tools(), ToolChoice::Auto);
        let roles: Vec<Role> = out.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert!(out[0].content.contains("move_to"));
        assert_eq!(
            out[2].content,
            r#"{"tool_calls":[{"name":"move_to","arguments":{"x":1}}]}"#
        );
        assert!(out[3].content.contains("arrived") && out[3].content.contains("also"));
    }

    #[test]
    fn replies_parse_into_calls_or_content() {
        let (content, calls) =
            parse_reply(r#"{"tool_calls":[{"name":"move_to","arguments":{"x":3}}]}"#);
        assert!(content.is_empty());
        assert_eq!(calls[0].name, "move_to");
        assert_eq!(calls[0].arguments, r#"{"x":3}"#);
        assert!(calls[0].id.starts_with("call_"));
        assert_eq!(
            parse_reply(r#"{"response":"hello"}"#),
            ("hello".into(), vec![])
        );
        assert_eq!(parse_reply("cut {\"tool"), ("cut {\"tool".into(), vec![]));
    }

    #[test]
    fn schemas_become_grammars() {
        for choice in [ToolChoice::Auto, ToolChoice::Required] {
            crate::engine::llama::grammar::check_grammar(&grammar(&tools(), choice).unwrap())
                .unwrap();
        }
    }
}
