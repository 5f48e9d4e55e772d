//! The C enums but `rigllama_status` (in `status.rs`). Each is a `#[repr(i32)]` Rust enum
//! written once here — names, numbers and docs — that cbindgen renders as
//! `RIGLLAMA_<ENUM>_<VARIANT>` enumerators with an `int32_t` typedef. The library only ever
//! writes these types; a value coming in from C arrives as `i32` and goes through
//! `from_repr`, never a transmute. Numbers never change.

use crate::engine::FinishReason;

/// Why generation ended.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_finish_reason {
    /// An end-of-turn token or a stop string.
    Stop = 0,
    /// `max_tokens` reached, or the context window is full.
    Length = 1,
    /// The token callback returned non-zero.
    Callback = 2,
    /// v0.2. The reply ended in tool calls (see `rigllama_engine_chat` and TOOL_CALL events).
    ToolCalls = 3,
}

impl From<FinishReason> for rigllama_finish_reason {
    fn from(reason: FinishReason) -> Self {
        match reason {
            FinishReason::Stop => Self::Stop,
            FinishReason::Length => Self::Length,
            FinishReason::Callback => Self::Callback,
            FinishReason::ToolCalls => Self::ToolCalls,
        }
    }
}

/// What a job poll returned.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_event_kind {
    /// Nothing new yet.
    None = 0,
    /// A piece of the reply's content.
    Text = 1,
    /// Finished; `rigllama_job_usage` has the usage.
    Done = 2,
    /// Failed or cancelled; `status` and `message` say why.
    Error = 3,
    /// v0.2. A piece of the model's reasoning (thinking), never part of the content.
    Reasoning = 4,
    /// v0.2. One whole tool call: `text` is `{"id":"...","name":"...","arguments":{...}}`.
    ToolCall = 5,
    /// v0.2. Only when the request's `n_logprobs` > 0: `text` is a JSON array with the
    /// log-probabilities of the tokens generated since the previous LOGPROBS event, one
    /// entry per token in OpenAI's `logprobs.content` shape (`{"token","id","logprob","bytes",
    /// "top_logprobs":[...]}`). It comes before the TEXT/REASONING/TOOL_CALL events that carry
    /// those tokens' text; over a job the entries cover every token of `completion_tokens`.
    Logprobs = 6,
}

/// Whether the model may call the request's tools (`rigllama_request.tool_choice`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_tool_choice {
    /// The model decides; a call it starts is kept well-formed by a grammar that switches on
    /// at the format's trigger. Up to 4 calls in one reply.
    Auto = 0,
    /// The tools are not offered (not even described to the model).
    None = 1,
    /// The reply is one call, constrained so its arguments are valid against the tool's
    /// parameters schema (even a small model produces a valid call); no text before it.
    Required = 2,
}

/// The chat template's thinking switch (`rigllama_request.reasoning`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_reasoning {
    /// The template's own default: as it renders when `enable_thinking` is not passed
    /// (thinking on for Qwen3 and DeepSeek-R1, off for Gemma 4).
    Auto = 0,
    /// `enable_thinking` false: thinking disabled where the template supports it.
    Off = 1,
    /// `enable_thinking` true.
    On = 2,
}

/// What happens when a conversation outgrows the context window
/// (`rigllama_engine_options.context_overflow`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_context_overflow {
    /// v0.1 behaviour: `RIGLLAMA_STATUS_CONTEXT_OVERFLOW` before decoding when the prompt does
    /// not fit; `RIGLLAMA_FINISH_REASON_LENGTH` when the reply fills the context.
    Fail = 0,
    /// Keep the system prompt and the latest turns: drop the oldest exchanges (a user turn and
    /// the replies after it) whole, before decoding or mid-reply, and go on.
    /// `rigllama_usage.dropped_tokens` counts what was dropped. Raw prompts behave as FAIL.
    Shift = 1,
}

/// A KV cache data type (`rigllama_engine_options.type_k` and `type_v`): llama.cpp's
/// `--cache-type-k/-v` choices. Quantized types take less memory per token; a quantized V
/// cache needs flash attention (AUTO or ON).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_kv_type {
    /// 16-bit floats (the default).
    F16 = 0,
    /// 32-bit floats: twice the memory of F16.
    F32 = 1,
    /// bfloat16.
    Bf16 = 2,
    /// 8-bit blocks: about half of F16's memory.
    Q8_0 = 3,
    /// 4-bit blocks.
    Q4_0 = 4,
    /// 4-bit blocks with a minimum.
    Q4_1 = 5,
    /// 5-bit blocks.
    Q5_0 = 6,
    /// 5-bit blocks with a minimum.
    Q5_1 = 7,
    /// 4-bit non-linear blocks.
    Iq4Nl = 8,
}

/// Flash attention (`rigllama_engine_options.flash_attention`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_flash_attention {
    /// llama.cpp decides per device (the default).
    Auto = 0,
    /// Off. A quantized `type_v` is then refused.
    Off = 1,
    /// On.
    On = 2,
}

/// How an engine's threads are scheduled beside the host's
/// (`rigllama_engine_options.thread_priority`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_thread_priority {
    /// As the host's threads (the default).
    Normal = 0,
    /// Below the host's: the engine computes with the cycles the host leaves idle, so a
    /// game's frame loop keeps its frames. Linux: nice 19 for the engine's worker and every
    /// thread it starts. Other systems: accepted, not applied yet
    /// (`"thread_priority_applied": false` in `rigllama_engine_describe`).
    Low = 1,
}

/// Mirostat sampling (`rigllama_request.mirostat`): keeps the text's surprise near
/// `mirostat_tau`. It replaces top-k, typical-p, top-p, min-p and XTC.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::FromRepr)]
pub enum rigllama_mirostat {
    /// Off (the default).
    Off = 0,
    /// Mirostat 1.0.
    V1 = 1,
    /// Mirostat 2.0.
    V2 = 2,
}
