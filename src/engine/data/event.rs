//! A request's events, as the worker reports them and every front end reads them.

use crate::engine::data::logprobs::TokenLogprob;
use crate::engine::data::tools::ToolCall;
use crate::engine::data::usage::Usage;
use crate::engine::error::Error;

/// One event of a running request, in order: `Text`, `Reasoning` and `ToolCall` events as
/// the reply has them, then exactly one `Done` or `Failed`.
/// New kinds may be added (match with a wildcard arm).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A piece of the reply's content: whole UTF-8 characters; `tokens` is how many
    /// generated tokens this text completes.
    Text { text: String, tokens: u32 },
    /// A piece of the model's reasoning (thinking), kept out of the content.
    Reasoning { text: String, tokens: u32 },
    /// One whole tool call.
    ToolCall(ToolCall),
    /// The log-probabilities of the tokens generated since the previous `Logprobs` event,
    /// in order, sent before the events that carry those tokens' text; only when the request
    /// asked for them ([`Request::logprobs`](crate::Request::logprobs)). Over a request they
    /// cover every token counted in `completion_tokens`.
    Logprobs(Vec<TokenLogprob>),
    /// Finished.
    Done(Usage),
    /// The request failed; `usage` is what was spent before it did.
    Failed { error: Error, usage: Usage },
}
