//! The OpenAI JSON shapes tools and conversations arrive in (`tools_json`,
//! `messages_json`), read and checked here so the C ABI, Rust callers and Rig share one
//! reading; errors name the item and the field.

use serde_json::Value;

use crate::engine::data::message::{Image, Message, Role, MEDIA_MARKER};
use crate::engine::data::tools::{Tool, ToolCall};
use crate::engine::error::{Error, Result};

impl Tool {
    /// Reads `[{"type":"function","function":{"name","description","parameters"}}, ...]`.
    pub fn parse_openai_list(json: &str) -> Result<Vec<Tool>> {
        json_array(json, "tools_json", "tools")?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = |what: &str| format!("tools_json[{i}]{what}");
                if item.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(Error::invalid(format!(
                        "{} must be \"function\"",
                        at(".type")
                    )));
                }
                let function = item
                    .get("function")
                    .filter(|f| f.is_object())
                    .ok_or_else(|| {
                        Error::invalid(format!("{} must be an object", at(".function")))
                    })?;
                let name = function
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| valid_tool_name(n))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{} must be a non-empty name of letters, digits, '_', '-' or '.'",
                            at(".function.name")
                        ))
                    })?;
                let description = match function.get("description") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(d)) => d.clone(),
                    Some(_) => {
                        return Err(Error::invalid(format!(
                            "{} must be a string",
                            at(".function.description")
                        )))
                    }
                };
                let parameters = match function.get("parameters") {
                    None | Some(Value::Null) => {
                        serde_json::json!({"type": "object", "properties": {}})
                    }
                    Some(p) if p.is_object() => p.clone(),
                    Some(_) => {
                        return Err(Error::invalid(format!(
                            "{} must be a JSON Schema object",
                            at(".function.parameters")
                        )))
                    }
                };
                Ok(Tool::new(name, description, parameters))
            })
            .collect()
    }
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Message {
    /// Reads an OpenAI message list: `{"role","content"}`, assistant turns with
    /// `"tool_calls"` (content null or absent), and `{"role":"tool","tool_call_id","content"}`.
    pub fn parse_openai_list(json: &str) -> Result<Vec<Message>> {
        json_array(json, "messages_json", "messages")?
            .iter()
            .enumerate()
            .map(|(i, item)| parse_message(i, item))
            .collect()
    }
}

/// `json` read as a JSON array; errors name the field and what its items should be.
fn json_array(json: &str, field: &str, items: &str) -> Result<Vec<Value>> {
    match serde_json::from_str(json) {
        Ok(Value::Array(values)) => Ok(values),
        Ok(_) => Err(Error::invalid(format!(
            "{field} must be a JSON array of {items}"
        ))),
        Err(e) => Err(Error::invalid(format!("{field} is not valid JSON: {e}"))),
    }
}

fn parse_message(i: usize, item: &Value) -> Result<Message> {
    let invalid = |what: String| Error::invalid(format!("messages_json[{i}]{what}"));
    let role = item
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(" has no string \"role\"".into()))?;
    let role = Role::parse(role).ok_or_else(|| {
        invalid(format!(
            ".role is \"{role}\"; use system, user, assistant or tool"
        ))
    })?;
    let tool_calls = match item.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) if role == Role::Assistant => calls
            .iter()
            .enumerate()
            .map(|(j, call)| {
                parse_call(call).map_err(|why| invalid(format!(".tool_calls[{j}] {why}")))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => {
            return Err(invalid(
                ".tool_calls must be an array, on an assistant message".into(),
            ))
        }
    };
    let (content, images) = match item.get("content") {
        Some(Value::String(c)) => (c.clone(), Vec::new()),
        Some(Value::Array(parts)) => {
            parse_content_parts(parts).map_err(|(j, why)| invalid(format!(".content[{j}]{why}")))?
        }
        None | Some(Value::Null) if !tool_calls.is_empty() => (String::new(), Vec::new()),
        _ => {
            return Err(invalid(
                ".content must be a string or an array of text and image_url parts (null only \
                 on an assistant message with tool_calls)"
                    .into(),
            ))
        }
    };
    if content.matches(MEDIA_MARKER).count() != images.len() {
        return Err(invalid(format!(
            ".content holds the text {MEDIA_MARKER}, which marks where images go; remove it"
        )));
    }
    let text_field = |name: &str| -> Result<Option<String>> {
        match item.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!(".{name} must be a string"))),
        }
    };
    let tool_call_id = text_field("tool_call_id")?;
    let name = text_field("name")?;
    if role == Role::Tool && tool_call_id.is_none() {
        return Err(invalid(
            " is a tool message without \"tool_call_id\" (the id of the call it answers)".into(),
        ));
    }
    Ok(Message {
        role,
        content,
        images,
        tool_calls,
        tool_call_id,
        name,
    })
}

/// OpenAI content parts: text parts joined, an image marker where each image part is. An
/// error names the part (its index) and what is wrong with it.
fn parse_content_parts(
    parts: &[Value],
) -> std::result::Result<(String, Vec<Image>), (usize, String)> {
    let mut text = String::new();
    let mut images = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text") {
                Some(Value::String(t)) => text.push_str(t),
                _ => return Err((j, ".text must be a string".into())),
            },
            Some("image_url") => {
                let url = match part.get("image_url") {
                    Some(Value::String(url)) => url,
                    Some(object) => match object.get("url") {
                        Some(Value::String(url)) => url,
                        _ => return Err((j, ".image_url.url must be a string".into())),
                    },
                    None => return Err((j, " has no image_url".into())),
                };
                let image = Image::from_url(url).map_err(|e| (j, format!(": {e}")))?;
                text.push_str(MEDIA_MARKER);
                images.push(image);
            }
            Some(other) => {
                return Err((
                    j,
                    format!(".type is \"{other}\"; use \"text\" or \"image_url\""),
                ))
            }
            None => return Err((j, " has no string \"type\"".into())),
        }
    }
    Ok((text, images))
}

fn parse_call(call: &Value) -> std::result::Result<ToolCall, String> {
    let function = call
        .get("function")
        .filter(|f| f.is_object())
        .ok_or("has no \"function\" object")?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("has no function.name")?;
    let arguments = match function.get("arguments") {
        Some(Value::String(text)) => {
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("has function.arguments that are not JSON text: {e}"))?;
            text.clone()
        }
        Some(object @ Value::Object(_)) => object.to_string(),
        None | Some(Value::Null) => "{}".to_owned(),
        Some(_) => {
            return Err("has function.arguments that are neither JSON text nor an object".into())
        }
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(ToolCall::new(id, name, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_json_errors_name_the_item_and_field() {
        let err = |json: &str| Tool::parse_openai_list(json).unwrap_err().to_string();
        assert!(err("nope").contains("not valid JSON"));
        assert!(err("{}").contains("array"));
        assert!(err(r#"[{"type":"x"}]"#).contains("tools_json[0].type"));
        assert!(err(r#"[{"type":"function","function":{"name":""}}]"#).contains(".function.name"));
        assert!(
            err(r#"[{"type":"function","function":{"name":"a b"}}]"#).contains(".function.name")
        );
        assert!(
            err(r#"[{"type":"function","function":{"name":"a","parameters":5}}]"#)
                .contains(".function.parameters")
        );
        let tools = Tool::parse_openai_list(
            r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]"#,
        )
        .unwrap();
        assert_eq!(tools[0].name, "get_weather");
    }

    #[test]
    fn messages_read_tool_calls_and_results() {
        let m = Message::parse_openai_list(
            r#"[{"role":"user","content":"hi"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                  "function":{"name":"f","arguments":"{\"a\":1}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"ok"}]"#,
        )
        .unwrap();
        assert_eq!(m[1].tool_calls, vec![ToolCall::new("c1", "f", "{\"a\":1}")]);
        assert_eq!(m[2].role, Role::Tool);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("c1"));
        let err = |json: &str| Message::parse_openai_list(json).unwrap_err().to_string();
        assert!(err(r#"[{"role":"robot","content":"x"}]"#).contains("messages_json[0].role"));
        assert!(err(r#"[{"role":"user","content":5}]"#).contains(".content"));
        assert!(err(r#"[{"role":"tool","content":"x"}]"#).contains("tool_call_id"));
        assert!(err(
            r#"[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{"}}]}]"#
        )
        .contains("tool_calls[0]"));
    }
}
