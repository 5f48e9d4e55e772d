//! llama.cpp's `common` chat layer (what llama-server uses), through `csrc/chat_shim.cpp`:
//! Jinja chat templates with tools and a thinking switch, each template family's tool-call
//! format with its grammar and lazy triggers, and the parser that splits a reply into
//! content, reasoning and tool calls. Values cross the shim as JSON text; C++ exceptions
//! come back as messages.

use std::ffi::c_int;
use std::ptr::NonNull;

use serde::Deserialize;

use crate::engine::error::{Error, Result};
use crate::engine::llama::chat_shim::*;
use crate::engine::llama::raw::raw_model;

/// A model's Jinja chat templates (its default one and any `tool_use` variant).
pub(crate) struct JinjaTemplates {
    raw: NonNull<RawChat>,
    pub source: String,
    pub supports_tool_calls: bool,
    /// Whether the template thinks when `enable_thinking` is not passed (what AUTO means).
    pub thinking_default: bool,
}

// The templates are immutable after init and only used by the worker that owns the model.
unsafe impl Send for JinjaTemplates {}

impl Drop for JinjaTemplates {
    fn drop(&mut self) {
        unsafe { rl_chat_free(self.raw.as_ptr()) }
    }
}

#[derive(Deserialize)]
struct Info {
    source: String,
    caps: std::collections::HashMap<String, bool>,
    thinking_default: bool,
}

/// What the chat layer makes of one request: the prompt, and how to constrain and read the
/// reply.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatParams {
    pub format: i32,
    pub prompt: String,
    pub grammar: String,
    pub grammar_lazy: bool,
    pub grammar_triggers: Vec<Trigger>,
    pub generation_prompt: String,
    pub supports_thinking: bool,
    pub thinking_start_tag: String,
    #[serde(default)]
    pub thinking_end_tags: Vec<String>,
    pub preserved_tokens: Vec<String>,
    pub additional_stops: Vec<String>,
    pub parser: String,
}

/// A lazy grammar switches on when the reply reaches one of these.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Trigger {
    /// common_grammar_trigger_type: 0 token, 1 word, 2 pattern, 3 full pattern.
    #[serde(rename = "type")]
    pub kind: i32,
    pub value: String,
    pub token: i32,
}

impl Trigger {
    /// The regular expression llama.cpp's lazy grammar sampler matches (as common_sampler
    /// builds it), or None for a token trigger.
    pub fn pattern(&self) -> Option<String> {
        match self.kind {
            1 => Some(regex_escape(&self.value)),
            2 => Some(self.value.clone()),
            3 => {
                let mut p = self.value.clone();
                if !p.starts_with('^') {
                    p.insert(0, '^');
                }
                if !p.ends_with('$') {
                    p.push('$');
                }
                Some(p)
            }
            _ => None,
        }
    }
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if ".^$|()*+?[]{}\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl JinjaTemplates {
    /// The GGUF's own templates (`source` None) or the given Jinja text.
    pub fn new(model: &llama_cpp_2::model::LlamaModel, source: Option<&str>) -> Result<Self> {
        Self::init(raw_model(model), source)
    }

    /// A template with no model behind it (no BOS/EOS text): for tests of the chat layer.
    #[cfg(test)]
    pub fn without_model(source: &str) -> Result<Self> {
        Self::init(std::ptr::null(), Some(source))
    }

    fn init(model: *const llama_cpp_sys_2::llama_model, source: Option<&str>) -> Result<Self> {
        let source = source.map(|s| c_string("chat_template", s)).transpose()?;
        let raw = call("the chat template does not parse as Jinja", |err| unsafe {
            rl_chat_init(
                model,
                source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                err,
            )
        })?;
        let mut templates = JinjaTemplates {
            raw,
            source: String::new(),
            supports_tool_calls: false,
            thinking_default: true,
        };
        let info = call("chat template info", |err| unsafe {
            rl_chat_info(templates.raw.as_ptr(), err)
        })?;
        let info: Info = serde_json::from_str(&take(info.as_ptr()).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("chat template info: {e}")))?;
        templates.source = info.source;
        templates.supports_tool_calls = info.caps.get("supports_tool_calls") == Some(&true);
        templates.thinking_default = info.thinking_default;
        Ok(templates)
    }

    /// Renders `inputs` (see csrc/chat_shim.cpp for the shape).
    pub fn apply(&self, inputs: &serde_json::Value) -> Result<ChatParams> {
        let inputs = c_string("the request", &inputs.to_string())?;
        let out = call(
            "the chat template cannot render this request",
            |err| unsafe { rl_chat_apply(self.raw.as_ptr(), inputs.as_ptr(), err) },
        )?;
        serde_json::from_str(&take(out.as_ptr()).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("chat params: {e}")))
    }
}

/// Splits a reply into content, reasoning and tool calls, in the request's format.
pub(crate) struct ReplyParser {
    raw: NonNull<RawParser>,
}

unsafe impl Send for ReplyParser {}

impl Drop for ReplyParser {
    fn drop(&mut self) {
        unsafe { rl_chat_parser_free(self.raw.as_ptr()) }
    }
}

/// A parsed assistant message (OpenAI shape).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct ParsedMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ParsedCall>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct ParsedCall {
    #[serde(default)]
    pub id: String,
    pub function: ParsedFunction,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct ParsedFunction {
    pub name: String,
    pub arguments: String,
}

impl ReplyParser {
    pub fn new(params: &ChatParams) -> Result<Self> {
        let json = serde_json::json!({
            "format": params.format,
            "generation_prompt": params.generation_prompt,
            "parser": params.parser,
        });
        let json = c_string("chat params", &json.to_string())?;
        let raw = call("reply parser", |err| unsafe {
            rl_chat_parser_new(json.as_ptr(), err)
        })?;
        Ok(ReplyParser { raw })
    }

    /// The message in `text`; `partial` while the reply is still growing.
    pub fn parse(&self, text: &str, partial: bool) -> Result<ParsedMessage> {
        let out = call(
            "the reply does not match the template's format",
            |err| unsafe {
                rl_chat_parse(
                    self.raw.as_ptr(),
                    text.as_ptr().cast(),
                    text.len(),
                    c_int::from(partial),
                    err,
                )
            },
        )?;
        serde_json::from_str(&take(out.as_ptr()).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("parsed reply: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_become_llama_cpp_patterns() {
        let t = |kind, value: &str| Trigger {
            kind,
            value: value.into(),
            token: -1,
        };
        assert_eq!(t(1, "<tool_call>").pattern().unwrap(), "<tool_call>");
        assert_eq!(t(1, "[TOOL_CALLS]").pattern().unwrap(), "\\[TOOL_CALLS\\]");
        assert_eq!(t(3, "x.*").pattern().unwrap(), "^x.*$");
        assert!(t(0, "").pattern().is_none());
    }
}
