//! The engine's inputs and outputs: options for loading a model, one generation request, and
//! the usage report. Both the C ABI and the Rig adapter build these same types.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::{Error, Result};

/// Called during model loading with progress in `0.0..=1.0`; returning `false` aborts the load.
pub type ProgressFn<'a> = dyn FnMut(f32) -> bool + 'a;

/// How to load a model and size its context.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    /// Context window in tokens, capped to the model's training context.
    pub n_ctx: u32,
    /// Most prompt tokens per decode call.
    pub n_batch: u32,
    /// Threads for generation and prompt evaluation; `None` = the CPUs this process may use.
    pub n_threads: Option<u32>,
    /// Layers to offload to a GPU: `None` = all, `Some(0)` = CPU only.
    pub n_gpu_layers: Option<u32>,
    /// A llama.cpp built-in template name or a template string; `None` = the model's own.
    pub chat_template: Option<String>,
}

pub const DEFAULT_N_CTX: u32 = 4096;
pub const DEFAULT_N_BATCH: u32 = 512;
/// Context windows beyond this are refused up front: llama.cpp would try to allocate them.
pub const MAX_N_CTX: u32 = 1 << 20;
/// Threads beyond this are refused: nothing useful runs with more, and ggml spins.
pub const MAX_THREADS: u32 = 1024;

impl EngineOptions {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            n_ctx: DEFAULT_N_CTX,
            n_batch: DEFAULT_N_BATCH,
            n_threads: None,
            n_gpu_layers: Some(0),
            chat_template: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.model_path.as_os_str().is_empty() {
            return Err(Error::invalid(
                "model_path is empty; give the path of a .gguf file",
            ));
        }
        if self.model_path.to_str().is_none() {
            return Err(Error::invalid(format!(
                "model_path is not valid UTF-8: {}",
                self.model_path.display()
            )));
        }
        if self.n_ctx == 0 || self.n_ctx > MAX_N_CTX {
            return Err(Error::invalid(format!(
                "n_ctx {} is out of range (1..={MAX_N_CTX})",
                self.n_ctx
            )));
        }
        if self.n_batch == 0 || self.n_batch > MAX_N_CTX {
            return Err(Error::invalid(format!(
                "n_batch {} is out of range (1..={MAX_N_CTX})",
                self.n_batch
            )));
        }
        if let Some(threads) = self.n_threads {
            if threads == 0 || threads > MAX_THREADS {
                return Err(Error::invalid(format!(
                    "n_threads {threads} is out of range (1..={MAX_THREADS}; 0 from C means the CPUs available)"
                )));
            }
        }
        if let Some(template) = &self.chat_template {
            if template.is_empty() || template.contains('\0') {
                return Err(Error::invalid(
                    "chat_template must be a non-empty template name or template text without NUL",
                ));
            }
        }
        Ok(())
    }
}

/// Who said a turn of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Turns formatted with the chat template; must end with a user turn.
    Chat(Vec<Message>),
    /// Text sent verbatim (special tokens in it are parsed, BOS added as the vocab says).
    Raw(String),
}

/// How the next token is chosen. Temperature 0 is greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 = off.
    pub top_k: i32,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub repeat_penalty: f32,
    /// `None` = a random seed, reported back in [`Usage::seed`].
    pub seed: Option<u32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            seed: None,
        }
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub prompt: Prompt,
    /// `None` = until the context window is full.
    pub max_tokens: Option<u32>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
}

pub const DEFAULT_MAX_TOKENS: u32 = 512;

impl Request {
    /// A one-turn chat request with default sampling.
    pub fn chat(messages: Vec<Message>) -> Self {
        Self {
            prompt: Prompt::Chat(messages),
            max_tokens: Some(DEFAULT_MAX_TOKENS),
            sampling: Sampling::default(),
            stop: Vec::new(),
        }
    }

    pub fn user(prompt: impl Into<String>) -> Self {
        Self::chat(vec![Message::new(Role::User, prompt)])
    }

    pub fn raw(prompt: impl Into<String>) -> Self {
        Self {
            prompt: Prompt::Raw(prompt.into()),
            ..Self::chat(Vec::new())
        }
    }

    /// Checks every field against its documented range before anything reaches llama.cpp.
    pub fn validate(&self) -> Result<()> {
        match &self.prompt {
            Prompt::Raw(text) => {
                if text.is_empty() {
                    return Err(Error::invalid("the prompt is empty"));
                }
                reject_nul("prompt", text)?;
            }
            Prompt::Chat(messages) => {
                let Some(last) = messages.last() else {
                    return Err(Error::invalid(
                        "the request has no prompt and no messages; set prompt or messages_json",
                    ));
                };
                if last.role != Role::User {
                    return Err(Error::invalid(format!(
                        "the conversation must end with a user turn, but it ends with {}",
                        last.role.as_str()
                    )));
                }
                for (i, message) in messages.iter().enumerate() {
                    reject_nul(&format!("message {i}"), &message.content)?;
                    if message.role == Role::System && i != 0 {
                        return Err(Error::invalid(format!(
                            "message {i} is a system turn; only the first turn may be a system turn"
                        )));
                    }
                }
            }
        }
        if self.max_tokens == Some(0) {
            return Err(Error::invalid(
                "max_tokens 0 is not allowed; use a positive count or RIGLLAMA_MAX_TOKENS_UNLIMITED",
            ));
        }
        let s = &self.sampling;
        if !s.temperature.is_finite() || s.temperature < 0.0 {
            return Err(Error::invalid(format!(
                "temperature {} must be finite and >= 0",
                s.temperature
            )));
        }
        if !(s.top_p > 0.0 && s.top_p <= 1.0) {
            return Err(Error::invalid(format!(
                "top_p {} must be in (0, 1]",
                s.top_p
            )));
        }
        if s.top_k < 0 {
            return Err(Error::invalid(format!(
                "top_k {} must be >= 0 (0 = off)",
                s.top_k
            )));
        }
        if !(0.0..=1.0).contains(&s.min_p) {
            return Err(Error::invalid(format!(
                "min_p {} must be in [0, 1]",
                s.min_p
            )));
        }
        if !s.repeat_penalty.is_finite() || s.repeat_penalty <= 0.0 {
            return Err(Error::invalid(format!(
                "repeat_penalty {} must be finite and > 0 (1 = off)",
                s.repeat_penalty
            )));
        }
        for (i, stop) in self.stop.iter().enumerate() {
            if stop.is_empty() {
                return Err(Error::invalid(format!("stop string {i} is empty")));
            }
            reject_nul(&format!("stop string {i}"), stop)?;
        }
        Ok(())
    }
}

fn reject_nul(what: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        Err(Error::invalid(format!("{what} contains a NUL character")))
    } else {
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
    /// The consumer asked to stop (the token callback returned non-zero).
    Callback,
}

/// What a request cost and why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub finish_reason: FinishReason,
    /// Tokens in the formatted prompt.
    pub prompt_tokens: u32,
    /// Of those, reused from the KV cache.
    pub cached_prompt_tokens: u32,
    /// Tokens whose text was delivered.
    pub completion_tokens: u32,
    /// The seed actually used.
    pub seed: u32,
    pub prompt_ms: f64,
    /// From the first to the last generated token.
    pub generation_ms: f64,
}

impl Usage {
    /// Nothing spent yet: what a request that never ran reports.
    pub(crate) fn none(seed: u32) -> Self {
        Usage {
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            seed,
            prompt_ms: 0.0,
            generation_ms: 0.0,
        }
    }
}

/// Facts about the loaded model and engine, as `describe` reports them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Description {
    pub model_path: String,
    pub architecture: String,
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    pub n_batch: u32,
    pub n_vocab: u32,
    pub n_params: u64,
    pub n_threads: u32,
    pub n_gpu_layers: i32,
    pub chat_template: String,
    pub chat_template_source: &'static str,
}

/// A log sink shared by the whole process.
pub type LogFn = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        EngineOptions::new("/m.gguf").validate().unwrap();
        Request::user("hi").validate().unwrap();
        Request::raw("hi").validate().unwrap();
    }

    #[test]
    fn out_of_range_sampling_is_refused_with_the_value() {
        let mut r = Request::user("hi");
        r.sampling.temperature = f32::NAN;
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("temperature NaN"));
        let mut r = Request::user("hi");
        r.sampling.top_p = 0.0;
        assert!(r.validate().unwrap_err().to_string().contains("top_p 0"));
        let mut r = Request::user("hi");
        r.max_tokens = Some(0);
        assert!(r.validate().is_err());
        let mut r = Request::user("hi");
        r.stop = vec![String::new()];
        assert!(r.validate().is_err());
    }

    #[test]
    fn conversation_must_end_with_user() {
        let r = Request::chat(vec![
            Message::new(Role::User, "a"),
            Message::new(Role::Assistant, "b"),
        ]);
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ends with assistant"));
    }
}
