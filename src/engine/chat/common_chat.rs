//! llama.cpp's `common` chat layer (what llama-server uses), through `csrc/chat_shim.cpp`:
//! Jinja chat templates with tools and a thinking switch, each template family's tool-call
//! format with its grammar and lazy triggers, and the parser that splits a reply into
//! content, reasoning and tool calls. Also JSON Schema to GBNF and a GBNF check that keeps
//! the parser's reason. Values cross the shim as JSON text; C++ exceptions come back as
//! messages.

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;

use serde::Deserialize;

use super::error::{Error, Result};
use super::raw::raw_model;

#[repr(C)]
struct RawChat {
    _private: [u8; 0],
}

#[repr(C)]
struct RawParser {
    _private: [u8; 0],
}

extern "C" {
    fn rl_chat_string_free(s: *mut c_char);
    fn rl_chat_init(
        model: *const llama_cpp_sys_2::llama_model,
        template_override: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut RawChat;
    fn rl_chat_free(chat: *mut RawChat);
    fn rl_chat_info(chat: *const RawChat, err: *mut *mut c_char) -> *mut c_char;
    fn rl_chat_apply(
        chat: *const RawChat,
        inputs_json: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut c_char;
    fn rl_chat_parser_new(params_json: *const c_char, err: *mut *mut c_char) -> *mut RawParser;
    fn rl_chat_parser_free(parser: *mut RawParser);
    fn rl_chat_parse(
        parser: *const RawParser,
        text: *const c_char,
        len: usize,
        is_partial: c_int,
        err: *mut *mut c_char,
    ) -> *mut c_char;
    fn rl_json_schema_to_grammar(schema_json: *const c_char, err: *mut *mut c_char) -> *mut c_char;
    fn rl_grammar_check(gbnf: *const c_char, root: *const c_char, err: *mut *mut c_char) -> c_int;
}

/// Takes a string the shim allocated.
fn take(ptr: *mut c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned();
    unsafe { rl_chat_string_free(ptr) };
    Some(text)
}

/// Runs a shim call that reports failure as NULL plus a message.
fn call<T>(what: &str, f: impl FnOnce(*mut *mut c_char) -> *mut T) -> Result<NonNull<T>> {
    let mut err = std::ptr::null_mut();
    let out = f(&mut err);
    let message = take(err);
    NonNull::new(out).ok_or_else(|| {
        Error::invalid(format!(
            "{what}: {}",
            message.unwrap_or_else(|| "unknown error".into())
        ))
    })
}

fn c_string(what: &str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::invalid(format!("{what} contains a NUL character")))
}

/// A model's Jinja chat templates (its default one and any `tool_use` variant).
pub(crate) struct JinjaTemplates {
    raw: NonNull<RawChat>,
    pub source: String,
    pub supports_tool_calls: bool,
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
        };
        let info = call("chat template info", |err| unsafe {
            rl_chat_info(templates.raw.as_ptr(), err)
        })?;
        let info: Info = serde_json::from_str(&take(info.as_ptr()).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("chat template info: {e}")))?;
        templates.source = info.source;
        templates.supports_tool_calls = info.caps.get("supports_tool_calls") == Some(&true);
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

/// GBNF for JSON values valid against `schema` (llama.cpp's converter, after
/// [`whole_numbers_for_bounded_reals`]).
pub(crate) fn json_schema_to_grammar(schema: &str) -> Result<String> {
    let schema = c_string("json_schema", &enforceable_schema(schema)?)?;
    let out = call(
        "json_schema cannot be turned into a grammar",
        |err| unsafe { rl_json_schema_to_grammar(schema.as_ptr(), err) },
    )?;
    Ok(take(out.as_ptr()).unwrap_or_default())
}

/// `schema` as llama.cpp's converters should see it (see [`whole_numbers_for_bounded_reals`]).
pub(crate) fn enforceable_schema(schema: &str) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(schema)
        .map_err(|e| Error::invalid(format!("json_schema is not valid JSON: {e}")))?;
    whole_numbers_for_bounded_reals(&mut value);
    anchor_patterns(&mut value);
    Ok(value.to_string())
}

/// llama.cpp's converter only turns patterns anchored with `^` and `$` into grammar (others it
/// lets match any string, and says so on stderr). A pattern matches anywhere in the string;
/// anchoring it keeps a subset of those strings, so every reply stays valid.
fn anchor_patterns(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(pattern)) = map.get_mut("pattern") {
                let body = pattern.strip_prefix('^').unwrap_or(pattern);
                let body = body
                    .strip_suffix('$')
                    .filter(|b| !b.ends_with('\\'))
                    .unwrap_or(body);
                *pattern = format!("^({body})$");
            }
            for (key, child) in map.iter_mut() {
                // Property names are not schemas.
                if key != "pattern" {
                    anchor_patterns(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(anchor_patterns),
        _ => {}
    }
}

/// llama.cpp's converter enforces bounds on integers but not on other numbers, so a bounded
/// `"type": "number"` becomes the whole numbers within its bounds (or, when there are none,
/// the midpoint): every reply the grammar allows is then valid against the caller's schema.
fn whole_numbers_for_bounded_reals(schema: &mut serde_json::Value) {
    use serde_json::{json, Value};
    match schema {
        Value::Object(map) => {
            let bound = |key: &str| map.get(key).and_then(Value::as_f64);
            let (min, max, xmin, xmax) = (
                bound("minimum"),
                bound("maximum"),
                bound("exclusiveMinimum"),
                bound("exclusiveMaximum"),
            );
            if map.get("type").and_then(Value::as_str) == Some("number")
                && (min.is_some() || max.is_some() || xmin.is_some() || xmax.is_some())
            {
                let low = match (min.map(f64::ceil), xmin.map(|x| x.floor() + 1.0)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                let high = match (max.map(f64::floor), xmax.map(|x| x.ceil() - 1.0)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                for key in [
                    "type",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                ] {
                    map.remove(key);
                }
                match (low, high) {
                    (Some(l), Some(h)) if l > h => {
                        let lower = min.or(xmin).unwrap_or(l);
                        let upper = max.or(xmax).unwrap_or(h);
                        map.insert("const".into(), json!((lower + upper) / 2.0));
                    }
                    _ => {
                        map.insert("type".into(), json!("integer"));
                        if let Some(l) = low {
                            map.insert("minimum".into(), json!(l as i64));
                        }
                        if let Some(h) = high {
                            map.insert("maximum".into(), json!(h as i64));
                        }
                    }
                }
            }
            for child in map.values_mut() {
                whole_numbers_for_bounded_reals(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_for_bounded_reals),
        _ => {}
    }
}

/// Checks that `gbnf` parses and has a `root` rule, with the parser's reason when not.
pub(crate) fn check_grammar(gbnf: &str) -> Result<()> {
    let text = c_string("grammar", gbnf)?;
    let mut err = std::ptr::null_mut();
    let ok = unsafe { rl_grammar_check(text.as_ptr(), c"root".as_ptr(), &mut err) };
    let message = take(err);
    if ok == 1 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "grammar is not valid GBNF: {}",
            message.unwrap_or_else(|| "unknown error".into())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_errors_carry_the_parsers_reason() {
        check_grammar("root ::= \"a\" | [b-c]+").unwrap();
        let e = check_grammar("root ::= undefined-rule")
            .unwrap_err()
            .to_string();
        assert!(e.contains("undefined-rule"), "{e}");
        let e = check_grammar("root ::= \"unterminated")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grammar is not valid GBNF"), "{e}");
        let e = check_grammar("other ::= \"a\"").unwrap_err().to_string();
        assert!(e.contains("'root'"), "{e}");
        assert!(check_grammar("").is_err());
    }

    #[test]
    fn schemas_become_grammars_or_say_why_not() {
        let g =
            json_schema_to_grammar(r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#)
                .unwrap();
        check_grammar(&g).unwrap();
        assert!(json_schema_to_grammar("{not json").is_err());
    }

    #[test]
    fn bounded_reals_become_whole_numbers_inside_the_bounds() {
        let mut s = serde_json::json!({"properties": {"p": {"type": "number", "minimum": 0.5, "maximum": 99.5},
            "q": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "r": {"type": "number"}}});
        whole_numbers_for_bounded_reals(&mut s);
        assert_eq!(
            s["properties"]["p"],
            serde_json::json!({"type": "integer", "minimum": 1, "maximum": 99})
        );
        assert_eq!(s["properties"]["q"], serde_json::json!({"const": 0.5}));
        assert_eq!(s["properties"]["r"], serde_json::json!({"type": "number"}));
    }

    #[test]
    fn patterns_are_anchored() {
        let mut s = serde_json::json!({"properties": {"a": {"type": "string", "pattern": "ab+"},
            "b": {"type": "string", "pattern": "^[A-Z][a-z]{2,5}$"}}});
        anchor_patterns(&mut s);
        assert_eq!(s["properties"]["a"]["pattern"], "^(ab+)$");
        assert_eq!(s["properties"]["b"]["pattern"], "^([A-Z][a-z]{2,5})$");
    }

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
