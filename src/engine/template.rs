//! Choosing and applying the chat template. llama.cpp's template applier recognises known
//! templates by name or by their text; it does not run Jinja.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use super::error::{Error, Result};
use super::request::{Message, Role};

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
#[derive(Debug, Clone)]
pub struct ChatFormat {
    template: LlamaChatTemplate,
    pub text: String,
    pub source: &'static str,
}

impl ChatFormat {
    /// Picks the template: the caller's, else the GGUF's own if llama.cpp can apply it, else
    /// the built-in one for the model's architecture. `None` when there is nothing usable;
    /// chat requests then fail while raw prompts still work.
    pub fn choose(model: &LlamaModel, requested: Option<&str>, architecture: &str) -> Option<Self> {
        let make = |text: &str, source| {
            LlamaChatTemplate::new(text)
                .ok()
                .map(|template| ChatFormat {
                    template,
                    text: text.to_owned(),
                    source,
                })
        };
        if let Some(requested) = requested {
            return make(requested, "options");
        }
        if let Ok(own) = model.chat_template(None) {
            if let Ok(text) = own.to_string() {
                if let Some(format) = make(&text, "gguf") {
                    if format
                        .apply(model, &[Message::new(Role::User, "hi")])
                        .is_ok()
                    {
                        return Some(format);
                    }
                }
            }
        }
        ARCHITECTURE_TEMPLATES
            .iter()
            .find(|(arch, _)| *arch == architecture)
            .and_then(|(_, name)| make(name, "built-in for architecture"))
    }

    /// Formats `messages` and opens the assistant turn.
    pub fn apply(&self, model: &LlamaModel, messages: &[Message]) -> Result<String> {
        self.format(model, messages, true)
    }

    /// Formats `messages`, opening the assistant turn after them when `open_reply`.
    pub fn format(
        &self,
        model: &LlamaModel,
        messages: &[Message],
        open_reply: bool,
    ) -> Result<String> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid(format!("message cannot be formatted: {e}")))?;
        model
            .apply_chat_template(&self.template, &chat, open_reply)
            .map_err(|e| {
                Error::invalid(format!(
                    "the chat template ({}) cannot be applied by llama.cpp ({e}); set chat_template \
                     to a built-in name such as \"chatml\" in the engine options, or send a raw prompt",
                    self.source
                ))
            })
    }
}
