//! Tools the model may call, the calls it makes, and the switches for both (tool choice,
//! thinking).

use serde_json::Value;

use crate::engine::error::{Error, Result};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// A JSON Schema object for the arguments.
    pub parameters: Value,
}

/// One call the model made (or made in an earlier turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// Whether the model may, must or must not call tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides; a lazy grammar keeps any call it starts well-formed.
    #[default]
    Auto,
    /// Tools are not offered to the model.
    None,
    /// At least one call, constrained to the tools' schemas.
    Required,
}

/// The template's thinking switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningMode {
    /// The template's own default: as the template renders when `enable_thinking` is not
    /// passed (thinking on for Qwen3 and DeepSeek-R1, off for Gemma 4).
    #[default]
    Auto,
    /// `enable_thinking` false.
    Off,
    /// `enable_thinking` true.
    On,
}

impl ReasoningMode {
    /// The value of the template's `enable_thinking`; `template_default` is what the template
    /// does when it is not passed (llama.cpp's chat layer always passes it).
    pub(crate) fn enable_thinking(self, template_default: bool) -> bool {
        match self {
            ReasoningMode::Auto => template_default,
            ReasoningMode::Off => false,
            ReasoningMode::On => true,
        }
    }
}

impl ToolChoice {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::None => "none",
            ToolChoice::Required => "required",
        }
    }
}

impl Tool {
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }

    /// The OpenAI shape templates are rendered from.
    pub fn to_openai_json(&self) -> Value {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }
}

impl ToolCall {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::invalid(format!(
                "{at}: a tool call has an empty name"
            )));
        }
        if serde_json::from_str::<Value>(&self.arguments).is_err() {
            return Err(Error::invalid(format!(
                "{at}: the arguments of the call to {} are not JSON text",
                self.name
            )));
        }
        Ok(())
    }

    /// `{"id","type":"function","function":{"name","arguments":"<JSON text>"}}`
    pub fn to_openai_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "type": "function",
            "function": { "name": self.name, "arguments": self.arguments },
        })
    }

    /// `{"id","name","arguments":{...}}`: a TOOL_CALL event's text.
    pub fn to_event_json(&self) -> Value {
        let arguments = serde_json::from_str::<Value>(&self.arguments)
            .unwrap_or_else(|_| Value::String(self.arguments.clone()));
        serde_json::json!({ "id": self.id, "name": self.name, "arguments": arguments })
    }
}

/// A new call id, unique within the process (OpenAI-like: "call_" and 24 characters).
pub(crate) fn new_call_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = crate::engine::data::sampling::random_seed() as u64;
    format!(
        "call_{:016x}{:08x}",
        seed.rotate_left(17) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        n as u32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_differ() {
        assert_ne!(new_call_id(), new_call_id());
    }
}
