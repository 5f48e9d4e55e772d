//! The engine's reply as Rig's: its events as the blocks of a completion turn, its usage and
//! finish reason as Rig's, and the whole reply as Rig's raw provider document.

use rig_core::completion::{FinishReason as RigFinishReason, Usage as RigUsage};
use rig_core::error::ProviderError;
use rig_core::message::{CallId, ToolName};
use rig_core::operation::{Block, Completion, Finish};
use rig_core::wire::document::{Reassemble, Serves};
use rig_core::wire::{Decoder, Flow, Out, WireEvent};

use super::provider::provider_error;
use crate::engine::{Event, FinishReason, TokenLogprob, ToolCall, Usage};

/// Writes the engine's events into Rig's completion turn.
#[derive(Default)]
pub struct EventDecoder<'id> {
    brand: std::marker::PhantomData<fn(&'id ()) -> &'id ()>,
}

impl<'id> Decoder<'id, Completion, Event> for EventDecoder<'id> {
    type Event = Event;

    fn classify(&self, event: Event) -> WireEvent<Event> {
        WireEvent::Known(event)
    }

    fn decode(
        &mut self,
        event: Event,
        mut out: Out<'id, Completion>,
    ) -> Result<Flow, ProviderError> {
        match event {
            Event::Text { text, .. } => {
                out.run(Block::Text, &text)?;
                Ok(Flow::More)
            }
            Event::Reasoning { text, .. } => {
                out.run(Block::Reasoning { redacted: false }, &text)?;
                Ok(Flow::More)
            }
            Event::ToolCall(call) => {
                write_call(&mut out, call)?;
                Ok(Flow::More)
            }
            // Rig's turn has no place for them; the raw document keeps them.
            Event::Logprobs(_) => Ok(Flow::More),
            Event::Done(usage) => {
                out.end_run()?;
                Ok(out.end(Finish {
                    usage: rig_usage(&usage),
                    reason: Some(match usage.finish_reason {
                        FinishReason::Stop | FinishReason::Callback => RigFinishReason::Stop,
                        FinishReason::Length => RigFinishReason::Length,
                        FinishReason::ToolCalls => RigFinishReason::ToolCalls,
                    }),
                    ..Finish::default()
                }))
            }
            // The transport ends the stream with the error instead of sending this frame.
            Event::Failed { error, .. } => Err(provider_error(error)),
        }
    }
}

/// One whole tool call as Rig's call block. The engine's id is the call's id (Rig has one
/// id per call, which its result echoes). The engine sends calls whole at the end of the
/// reply, so the text or reasoning before it is closed first.
// Rig's own error type, as its Decoder::decode returns.
#[allow(clippy::result_large_err)]
fn write_call(out: &mut Out<'_, Completion>, call: ToolCall) -> Result<(), ProviderError> {
    // Nothing can answer a call without a name; Rig's own fold drops such calls too.
    let Ok(name) = ToolName::new(call.name) else {
        return Ok(());
    };
    out.end_run()?;
    let index = out.fresh_index();
    let block = Block::Call {
        id: CallId::from_wire(call.id),
        name,
    };
    // No provider item: the call replays from its canonical fields.
    out.whole(index, block, serde_json::Value::Null, &call.arguments)
}

fn rig_usage(usage: &Usage) -> RigUsage {
    RigUsage::new()
        .input_tokens(u64::from(usage.prompt_tokens))
        .output_tokens(u64::from(usage.completion_tokens))
        .total_tokens(u64::from(usage.prompt_tokens + usage.completion_tokens))
        .cached_input_tokens(u64::from(usage.cached_prompt_tokens))
}
/// The reply's provider document (Rig's `raw`): the text, the reasoning, the tool calls
/// (`{"id","name","arguments":{..}}`), the log-probabilities when `additional_params`
/// asked for them (`{"content":[...]}`, OpenAI's shape) and the engine's usage.
#[derive(Debug, Default)]
pub struct ReplyDocument {
    text: String,
    reasoning: String,
    tool_calls: Vec<serde_json::Value>,
    logprobs: Vec<serde_json::Value>,
    usage: Option<serde_json::Value>,
}

impl Serves<Completion> for ReplyDocument {}

impl Reassemble<Event> for ReplyDocument {
    fn absorb(&mut self, event: &Event) {
        match event {
            Event::Text { text, .. } => self.text.push_str(text),
            Event::Reasoning { text, .. } => self.reasoning.push_str(text),
            Event::ToolCall(call) => self.tool_calls.push(call.to_event_json()),
            Event::Logprobs(logprobs) => self
                .logprobs
                .extend(logprobs.iter().map(TokenLogprob::to_openai_json)),
            Event::Done(usage) => self.usage = Some(usage.to_json()),
            Event::Failed { .. } => {}
        }
    }

    fn finish(self) -> serde_json::Value {
        serde_json::json!({
            "text": self.text,
            "reasoning": self.reasoning,
            "tool_calls": self.tool_calls,
            "logprobs": (!self.logprobs.is_empty()).then(|| serde_json::json!({ "content": self.logprobs })),
            "usage": self.usage,
        })
    }
}
