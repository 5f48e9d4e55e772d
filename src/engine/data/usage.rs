//! What a request cost and why it ended.

/// Why generation ended. New reasons may be added (match with a wildcard arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinishReason {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
    /// The consumer asked to stop (the token callback returned non-zero).
    Callback,
    /// The reply ended in tool calls.
    ToolCalls,
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
    /// Tokens of the oldest turns dropped to make room
    /// ([`ContextOverflow::Shift`](crate::ContextOverflow::Shift)); 0 otherwise.
    pub dropped_tokens: u32,
    /// Tokens guessed by prompt-lookup speculation
    /// ([`Request::draft_max`](crate::Request::draft_max)) and evaluated with the real ones.
    pub drafted_tokens: u32,
    /// Of those, the ones the sampler confirmed: each saved a decode of its own.
    pub accepted_tokens: u32,
    /// Of the prompt tokens, those that stand for images (counted in `prompt_tokens`, and
    /// in `cached_prompt_tokens` when reused).
    pub image_tokens: u32,
}

impl FinishReason {
    /// The reason as the JSON documents name it: `"stop"`, `"length"`, `"callback"` or
    /// `"tool_calls"` (OpenAI's names where OpenAI has the reason).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Callback => "callback",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

impl Usage {
    /// Every field as one JSON object, named as the fields are: the one place the usage
    /// document is written (Rig's raw reply and any other JSON front end read this).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "finish_reason": self.finish_reason.as_str(),
            "prompt_tokens": self.prompt_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seed": self.seed,
            "prompt_ms": self.prompt_ms,
            "generation_ms": self.generation_ms,
            "dropped_tokens": self.dropped_tokens,
            "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens,
            "image_tokens": self.image_tokens,
        })
    }

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
            dropped_tokens: 0,
            drafted_tokens: 0,
            accepted_tokens: 0,
            image_tokens: 0,
        }
    }
}
