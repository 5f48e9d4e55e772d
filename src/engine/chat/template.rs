//! Choosing the chat template, and turning a request into the prompt text plus what the
//! reply must look like. A GGUF's own Jinja template (and a Jinja `chat_template` option)
//! runs through llama.cpp's chat layer (`chat.rs`): its tool format, grammar, triggers and
//! reply parser. GGUFs without a template use llama.cpp's built-in templates, as in v0.1;
//! there, and for Jinja templates that cannot render tools, tools use the generic JSON
//! format of `generic.rs`.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use crate::engine::chat::common_chat::{ChatParams, JinjaTemplates};
use crate::engine::chat::generic;
use crate::engine::chat::python_escapes::python_string_escapes;
use crate::engine::data::message::{Message, Role};
use crate::engine::data::request::{Prompt, Request};
use crate::engine::data::tools::{Tool, ToolChoice};
use crate::engine::error::{Error, Result};
use crate::engine::llama::backend::{self, LogLevel};
use crate::engine::llama::grammar::{enforceable_schema, json_schema_to_grammar};

/// The built-in llama.cpp template used when a GGUF has no template llama.cpp can apply,
/// keyed by the GGUF's `general.architecture`. Documented in the README.
pub const ARCHITECTURE_TEMPLATES: &[(&str, &str)] = &[
    ("gemma", "gemma"),
    ("gemma2", "gemma"),
    ("gemma3", "gemma"),
    ("gemma3n", "gemma"),
    ("llama", "llama3"),
    ("llama4", "llama4"),
    ("qwen2", "chatml"),
    ("qwen3", "chatml"),
    ("qwen3moe", "chatml"),
    ("phi3", "phi3"),
    ("phi4", "phi4"),
    ("mistral3", "mistral-v7"),
    ("command-r", "command-r"),
    ("cohere2", "command-r"),
    ("deepseek2", "deepseek2"),
    ("granite", "granite"),
    ("exaone", "exaone3"),
    ("smollm", "chatml"),
];

/// The template an engine formats chats with, and where it came from (for `describe`).
pub(crate) enum ChatFormat {
    /// Rendered by llama.cpp's Jinja engine.
    Jinja {
        templates: JinjaTemplates,
        source: &'static str,
    },
    /// One of llama.cpp's built-in templates (no Jinja).
    Builtin {
        template: LlamaChatTemplate,
        text: String,
        source: &'static str,
    },
}

/// How the reply is constrained and read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplyPlan {
    pub grammar: Option<GrammarPlan>,
    pub reading: Reading,
    /// Stop strings the template's format adds.
    pub extra_stops: Vec<String>,
    /// Special tokens whose text the reply parser must see.
    pub preserved: Vec<String>,
    /// The template's thinking block, when it has one.
    pub thinking: Option<ThinkingTags>,
}

/// How a template's thinking block opens and closes, and the text the template already put
/// after the last turn (which may open it).
#[derive(Debug, Clone)]
pub(crate) struct ThinkingTags {
    pub start: String,
    /// The first is the one written to close it.
    pub ends: Vec<String>,
    pub generation_prompt: String,
}

#[derive(Debug, Clone)]
pub(crate) struct GrammarPlan {
    pub gbnf: String,
    /// Constrains only from the first trigger on.
    pub lazy: bool,
    pub trigger_patterns: Vec<String>,
    pub trigger_tokens: Vec<i32>,
    /// Text the template already put in the prompt that the grammar starts with.
    pub prefill: String,
}

impl ReplyPlan {
    /// Tool calls in the generic JSON format, under its grammar.
    fn use_generic_format(&mut self, request: &Request) -> Result<()> {
        self.grammar = Some(GrammarPlan::eager(generic::grammar(
            &request.tools,
            request.tool_choice,
        )?));
        self.reading = Reading::Generic;
        Ok(())
    }
}

impl GrammarPlan {
    fn eager(gbnf: String) -> Self {
        GrammarPlan {
            gbnf,
            lazy: false,
            trigger_patterns: Vec::new(),
            trigger_tokens: Vec::new(),
            prefill: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) enum Reading {
    /// The reply is the content, streamed as it comes.
    #[default]
    Plain,
    /// Content, reasoning and tool calls split by the template's parser.
    Template(Box<ChatParams>),
    /// The generic JSON tool format.
    Generic,
}

/// A request as the model will see it.
pub(crate) struct Rendered {
    pub text: String,
    pub reply: ReplyPlan,
}

impl ChatFormat {
    /// Picks the template: the caller's (a built-in name, or Jinja text), else the GGUF's own
    /// (Jinja), else the built-in one for the model's architecture. The format is `None` when
    /// there is nothing usable (chat requests then fail while raw prompts still work); the
    /// message is why a Jinja template (the caller's or the GGUF's) could not be used, in
    /// llama.cpp's parser's words, for `describe` and the log.
    pub fn choose(
        model: &LlamaModel,
        requested: Option<&str>,
        architecture: &str,
    ) -> (Option<Self>, Option<String>) {
        let builtin = |text: &str, source| {
            LlamaChatTemplate::new(text)
                .ok()
                .map(|template| ChatFormat::Builtin {
                    template,
                    text: text.to_owned(),
                    source,
                })
        };
        if let Some(requested) = requested {
            if !looks_like_jinja(requested) {
                return (builtin(requested, "options"), None);
            }
            return match jinja(model, Some(requested)) {
                Ok(templates) => (
                    Some(ChatFormat::Jinja {
                        templates,
                        source: "options",
                    }),
                    None,
                ),
                Err(e) => {
                    backend::log(LogLevel::Warn, &format!("chat_template option: {e}"));
                    (None, Some(e.to_string()))
                }
            };
        }
        let mut error = None;
        if let Ok(own) = model.chat_template(None) {
            let own = own.to_string().unwrap_or_default();
            match jinja(
                model,
                Some(own.as_str()).filter(|s| python_string_escapes(s).is_some()),
            ) {
                Ok(templates) => {
                    return (
                        Some(ChatFormat::Jinja {
                            templates,
                            source: "gguf",
                        }),
                        None,
                    )
                }
                Err(e) => {
                    let fallback = ARCHITECTURE_TEMPLATES
                        .iter()
                        .find(|(arch, _)| *arch == architecture)
                        .map_or("none".to_owned(), |(_, name)| {
                            format!("the built-in \"{name}\"")
                        });
                    backend::log(
                        LogLevel::Warn,
                        &format!(
                            "the GGUF's chat template cannot be used ({e}); chats use {fallback} \
                             template for architecture {architecture}; pass the engine option \
                             chat_template to choose another"
                        ),
                    );
                    error = Some(e.to_string());
                }
            }
        }
        let format = ARCHITECTURE_TEMPLATES
            .iter()
            .find(|(arch, _)| *arch == architecture)
            .and_then(|(_, name)| builtin(name, "built-in for architecture"));
        (format, error)
    }

    pub fn text(&self) -> &str {
        match self {
            ChatFormat::Jinja { templates, .. } => &templates.source,
            ChatFormat::Builtin { text, .. } => text,
        }
    }

    pub fn source(&self) -> &'static str {
        match self {
            ChatFormat::Jinja { source, .. } | ChatFormat::Builtin { source, .. } => source,
        }
    }

    pub fn engine_name(&self) -> &'static str {
        match self {
            ChatFormat::Jinja { .. } => "jinja",
            ChatFormat::Builtin { .. } => "built-in",
        }
    }

    /// Formats `messages` only, opening the assistant turn after them when `open_reply`
    /// (used to find where turns start).
    pub fn format(
        &self,
        model: &LlamaModel,
        messages: &[Message],
        open_reply: bool,
    ) -> Result<String> {
        let mut request = Request::chat(messages.to_vec());
        request.tool_choice = ToolChoice::None;
        Ok(self.render(model, &request, open_reply)?.text)
    }

    /// The prompt for `request` and the plan for its reply.
    pub fn render(
        &self,
        model: &LlamaModel,
        request: &Request,
        open_reply: bool,
    ) -> Result<Rendered> {
        let Prompt::Chat(messages) = &request.prompt else {
            return Err(Error::Internal("render called for a raw prompt".into()));
        };
        let offered = !request.tools.is_empty() && request.tool_choice != ToolChoice::None;
        match self {
            ChatFormat::Jinja { templates, .. } => {
                let use_generic = offered && !templates.supports_tool_calls;
                // A template that knows no tool turns gets calls and results as text, whether
                // or not tools are offered this turn.
                let tool_history = messages
                    .iter()
                    .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty());
                let messages = if !templates.supports_tool_calls && (offered || tool_history) {
                    let tools: &[Tool] = if offered { &request.tools } else { &[] };
                    generic::rewrite_messages(messages, tools, request.tool_choice)
                } else {
                    messages.clone()
                };
                let mut inputs = serde_json::json!({
                    "messages": messages.iter().map(Message::to_openai_json).collect::<Vec<_>>(),
                    "tool_choice": request.tool_choice.as_str(),
                    "add_generation_prompt": open_reply,
                    "enable_thinking": request.reasoning.enable_thinking(templates.thinking_default),
                    // With REQUIRED the grammar then ends after one call: small models otherwise
                    // add calls (or whitespace between them) until max_tokens.
                    "parallel_tool_calls": request.tool_choice != ToolChoice::Required,
                });
                if !request.tools.is_empty() && !use_generic {
                    inputs["tools"] = request.tools.iter().map(|t| t.to_openai_json()).collect();
                }
                if let Some(schema) = &request.json_schema {
                    inputs["json_schema"] = enforceable_schema(schema)?.into();
                }
                let params = templates.apply(&inputs)?;
                let text = strip_bos(model, &params.prompt);
                let mut reply = ReplyPlan {
                    extra_stops: params.additional_stops.clone(),
                    preserved: params.preserved_tokens.clone(),
                    thinking: (params.supports_thinking
                        && !params.thinking_start_tag.is_empty()
                        && params.thinking_end_tags.iter().any(|t| !t.is_empty()))
                    .then(|| ThinkingTags {
                        start: params.thinking_start_tag.clone(),
                        ends: params
                            .thinking_end_tags
                            .iter()
                            .filter(|t| !t.is_empty())
                            .cloned()
                            .collect(),
                        generation_prompt: params.generation_prompt.clone(),
                    }),
                    ..ReplyPlan::default()
                };
                if use_generic {
                    reply.use_generic_format(request)?;
                } else if let Some(gbnf) = &request.grammar {
                    reply.grammar = Some(GrammarPlan::eager(gbnf.clone()));
                } else {
                    if !params.grammar.is_empty() {
                        let gbnf = if offered && request.tool_choice == ToolChoice::Required {
                            calls_without_leading_content(
                                &params.grammar,
                                &params.thinking_start_tag,
                            )
                        } else {
                            params.grammar.clone()
                        };
                        reply.grammar = Some(GrammarPlan {
                            gbnf,
                            lazy: params.grammar_lazy,
                            trigger_patterns: params
                                .grammar_triggers
                                .iter()
                                .filter_map(|t| t.pattern())
                                .collect(),
                            trigger_tokens: params
                                .grammar_triggers
                                .iter()
                                .filter(|t| t.kind == 0)
                                .map(|t| t.token)
                                .collect(),
                            prefill: if params.grammar_lazy {
                                String::new()
                            } else {
                                params.generation_prompt.clone()
                            },
                        });
                    } else if let Some(schema) = &request.json_schema {
                        // A template route that made no grammar for the schema.
                        reply.grammar = Some(GrammarPlan::eager(json_schema_to_grammar(schema)?));
                    }
                    let structured =
                        offered || request.json_schema.is_some() || params.supports_thinking;
                    if structured {
                        reply.reading = Reading::Template(Box::new(params));
                    }
                }
                Ok(Rendered { text, reply })
            }
            ChatFormat::Builtin {
                template, source, ..
            } => {
                // Built-in templates know only system, user and assistant turns.
                let messages = generic::rewrite_messages(
                    messages,
                    if offered { &request.tools } else { &[] },
                    request.tool_choice,
                );
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::invalid(format!("message cannot be formatted: {e}")))?;
                let text = model
                    .apply_chat_template(template, &chat, open_reply)
                    .map_err(|e| {
                        Error::invalid(format!(
                            "the chat template ({source}) cannot be applied by llama.cpp ({e}); set \
                             chat_template to a built-in name such as \"chatml\" in the engine \
                             options, or send a raw prompt"
                        ))
                    })?;
                let mut reply = ReplyPlan::default();
                if offered {
                    reply.use_generic_format(request)?;
                } else {
                    reply.grammar = plain_grammar(request)?;
                }
                Ok(Rendered { text, reply })
            }
        }
    }
}

/// The grammar of a request that is not read as a template's format: its GBNF, or its JSON
/// Schema's.
pub(crate) fn plain_grammar(request: &Request) -> Result<Option<GrammarPlan>> {
    Ok(match (&request.grammar, &request.json_schema) {
        (Some(gbnf), _) => Some(GrammarPlan::eager(gbnf.clone())),
        (None, Some(schema)) => Some(GrammarPlan::eager(json_schema_to_grammar(schema)?)),
        (None, None) => None,
    })
}

/// llama.cpp's tool grammars let a reply write free text before its calls, even when a call
/// is required, and a small model then writes text until max_tokens. With
/// tool_choice REQUIRED, the optional text before the calls goes from the `root` rule (the
/// thinking block stays), so the reply starts its first call at once.
fn calls_without_leading_content(gbnf: &str, thinking_start_tag: &str) -> String {
    let thinking = format!("(\"{thinking_start_tag}\"");
    gbnf.lines()
        .map(|line| match line.strip_prefix("root ::= ") {
            Some(rule) => {
                let kept: Vec<&str> = top_level_items(rule)
                    .into_iter()
                    .filter(|item| {
                        let optional_text = item.ends_with('?') && item.contains("until-");
                        let thinking_block =
                            !thinking_start_tag.is_empty() && item.starts_with(&thinking);
                        !optional_text || thinking_block
                    })
                    .collect();
                format!("root ::= {}", kept.join(" "))
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The items of a GBNF sequence at the top level (quoted strings, character classes and
/// parenthesised groups kept whole, with any `?`, `*` or `+` after them).
fn top_level_items(rule: &str) -> Vec<&str> {
    let bytes = rule.as_bytes();
    let mut items = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, None::<usize>, 0);
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'[' => {
                start.get_or_insert(i);
                let close = if c == b'"' { b'"' } else { b']' };
                i += 1;
                while i < bytes.len() && bytes[i] != close {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' => {
                start.get_or_insert(i);
                depth += 1;
            }
            b')' => depth = depth.saturating_sub(1),
            b' ' | b'\t' if depth == 0 => {
                if let Some(s) = start.take() {
                    items.push(&rule[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
        i += 1;
    }
    if let Some(s) = start {
        items.push(&rule[s..]);
    }
    items
}

/// Jinja templates use `{{ }}` or `{% %}`; built-in names and llama.cpp's recognised
/// template texts are matched by llama.cpp itself.
/// A Jinja template (`source` None: the GGUF's own, with its `tool_use` variant), its
/// Python-only string escapes rewritten for llama.cpp's lexer first.
fn jinja(model: &LlamaModel, source: Option<&str>) -> Result<JinjaTemplates> {
    let Some(source) = source else {
        return JinjaTemplates::new(model, None);
    };
    match python_string_escapes(source) {
        Some(rewritten) => {
            backend::log(
                LogLevel::Info,
                "the chat template's string literals use Python escapes llama.cpp's Jinja \
                 lexer lacks (such as a backslash at the end of a line); they were rewritten \
                 to the same text",
            );
            JinjaTemplates::new(model, Some(&rewritten))
        }
        None => JinjaTemplates::new(model, Some(source)),
    }
}

fn looks_like_jinja(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// The tokenizer adds BOS where the vocabulary says so; a template that also writes it
/// would double it (llama.cpp's server strips it the same way).
fn strip_bos(model: &LlamaModel, prompt: &str) -> String {
    if let Some(bos) = bos_text(model) {
        if let Some(rest) = prompt.strip_prefix(bos.as_str()) {
            return rest.to_owned();
        }
    }
    prompt.to_owned()
}

/// The BOS token's text when the tokenizer adds it to every prompt.
pub(crate) fn bos_text(model: &LlamaModel) -> Option<String> {
    let vocab = model.vocab();
    if !vocab.should_add_bos() {
        return None;
    }
    let mut piece = Vec::new();
    vocab.token_to_piece_into(vocab.bos(), &mut piece, true, None);
    String::from_utf8(piece).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jinja_is_told_from_names() {
        assert!(looks_like_jinja(
            "{% for m in messages %}{{ m.content }}{% endfor %}"
        ));
        assert!(!looks_like_jinja("chatml"));
        assert!(!looks_like_jinja("gemma"));
    }

    #[test]
    fn required_calls_lose_the_optional_text_before_them_but_not_the_thinking() {
        let g = "x ::= \"a\"\nroot ::= \"<|im_start|>assistant\\n\" space until-169? tool-calls";
        assert_eq!(
            calls_without_leading_content(g, ""),
            "x ::= \"a\"\nroot ::= \"<|im_start|>assistant\\n\" space tool-calls"
        );
        let g = r#"root ::= "<A>" space ("<think>" until-4 "</think>")? until-147? tool-calls"#;
        assert_eq!(
            calls_without_leading_content(g, "<think>"),
            r#"root ::= "<A>" space ("<think>" until-4 "</think>")? tool-calls"#
        );
        let g = r#"root ::= "<C>" space ("<C>" until-171 "<E>")? tool-call"#;
        assert_eq!(
            calls_without_leading_content(g, ""),
            r#"root ::= "<C>" space tool-call"#
        );
        assert_eq!(
            top_level_items(r#""a b" [ x] (c "d e")* f"#),
            vec![r#""a b""#, "[ x]", r#"(c "d e")*"#, "f"]
        );
    }

    #[test]
    fn user_turns_are_not_rewritten_without_tools() {
        let m = vec![Message::new(Role::User, "hi")];
        assert_eq!(generic::rewrite_messages(&m, &[], ToolChoice::Auto), m);
    }
}
