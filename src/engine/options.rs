//! How to load a model and size its context, and what the engine reports about it.

use std::path::PathBuf;

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
    /// What happens when a conversation outgrows the context window.
    pub context_overflow: ContextOverflow,
    /// Requests served at once (1..=[`MAX_SEQ`]), each in its own sequence of the shared
    /// context; more wait. Conversations keep their KV cache between requests.
    pub n_seq: u32,
}

/// The most requests an engine serves at once.
pub const MAX_SEQ: u32 = 64;

/// What happens when a conversation (its prompt, or prompt and reply) outgrows `n_ctx`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextOverflow {
    /// The request fails with [`Error::ContextOverflow`] before decoding, or generation
    /// stops with [`FinishReason::Length`](super::FinishReason::Length) when the reply fills it.
    #[default]
    Fail,
    /// Keep the system prompt and the latest turns: the oldest exchanges (a user turn and the
    /// replies after it) are dropped whole, before decoding or mid-reply, and the KV cache
    /// of what is kept is shifted rather than evaluated again where the model allows it.
    /// [`Usage::dropped_tokens`](super::Usage::dropped_tokens) counts what was dropped.
    Shift,
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
            context_overflow: ContextOverflow::Fail,
            n_seq: 1,
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
                    "n_threads {threads} is out of range (1..={MAX_THREADS}; None means the CPUs available)"
                )));
            }
        }
        if self.n_seq == 0 || self.n_seq > MAX_SEQ {
            return Err(Error::invalid(format!(
                "n_seq {} is out of range (1..={MAX_SEQ})",
                self.n_seq
            )));
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
    /// "jinja" (the template runs in llama.cpp's Jinja engine, with tools and reasoning),
    /// "built-in" (one of llama.cpp's fixed templates), or "none".
    pub chat_template_engine: &'static str,
    /// Embedding width of the model (the length of [`Engine::embed`](super::Engine::embed)'s
    /// vectors).
    pub n_embd: u32,
    pub context_overflow: ContextOverflow,
    pub n_seq: u32,
    /// Whether the model's KV cache can be shifted in place (else SHIFT evaluates the kept
    /// turns again).
    pub can_shift: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        EngineOptions::new("/m.gguf").validate().unwrap();
        let mut options = EngineOptions::new("/m.gguf");
        options.n_threads = Some(0);
        assert!(options
            .validate()
            .unwrap_err()
            .to_string()
            .contains("n_threads 0 is out of range"));
    }
}
