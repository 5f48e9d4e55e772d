//! The completion wire: how Rig sees this provider (its name and model, the media and options
//! it takes) and what one completion is made of (the engine's request as payload, its events
//! as frames, their decoder and the raw reply document).

use rig_core::completion::options::{Mapping, OptionFields, OptionMap};
use rig_core::completion::{
    Accepts, CompletionRequest, LaterSystem, Media, Place, Reasoning as RigReasoning, ReplayTarget,
};
use rig_core::error::EncodeError;
use rig_core::message::{Api, AssistantContent};
use rig_core::operation::Completion;
use rig_core::wire::{Descriptor, Mode, Wire};

use super::decode::{EventDecoder, ReplyDocument};
use super::encode::engine_request;
use super::provider::PROVIDER;
use crate::engine::{Event, Request};

const API: Api = Api::from_static("llama.cpp.chat-template");

/// The completion wire: its payload is the engine's [`Request`], its frames the engine's
/// [`Event`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletionWire {
    pub(super) model: String,
    /// The engine has a multimodal projector: images in user messages reach the model.
    pub(super) vision: bool,
}

impl ReplayTarget for CompletionWire {
    fn api(&self) -> Api {
        API
    }

    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn accepts(&self, _model: &str) -> Accepts {
        Accepts {
            user_images: self.vision,
            ..Accepts::TEXT
        }
    }

    /// Images in user messages when the engine has a projector; nothing else: Rig's history
    /// adapter then sends a text document as its text and replaces other media with a
    /// placeholder saying it was left out.
    fn encodes(&self, _model: &str, media: Media<'_>) -> bool {
        self.vision && matches!(media, Media::Image(_, Place::User))
    }

    /// Honoured: reasoning (the template's thinking switch), parallel tool calls, top_p,
    /// seed, stop. Everything else is refused, not silently ignored.
    fn map_options(&self, _request: &CompletionRequest, fields: OptionFields<'_>) -> OptionMap {
        let OptionFields {
            reasoning,
            cache,
            service_tier,
            verbosity,
            parallel_tool_calls,
            top_p,
            seed,
            stop,
        } = fields;
        OptionMap {
            // engine_request reads the option itself into the request's ReasoningMode.
            reasoning: Mapping::of(reasoning, |reasoning| match reasoning {
                RigReasoning::Off => Mapping::Omit("turns the template's thinking off"),
                RigReasoning::Budget { .. } => {
                    Mapping::Omit("thinking on, its block capped at that many tokens")
                }
                // Templates offer on or off: each effort level is thinking on with a budget.
                _ => Mapping::Omit("thinking on, with the effort level's token budget"),
            }),
            cache: Mapping::of(
                cache,
                refuse("the KV prefix cache is automatic; reset it with Engine::reset"),
            ),
            service_tier: Mapping::of(service_tier, refuse("a local model has no service tiers")),
            verbosity: Mapping::of(verbosity, refuse("rigllama has no verbosity control")),
            parallel_tool_calls: Mapping::of(parallel_tool_calls, |parallel| {
                if parallel {
                    Mapping::Omit("the engine lets a reply hold several tool calls")
                } else {
                    // Its tool-call grammar takes one call or more; it cannot stop at one.
                    Mapping::unsupported("rigllama cannot limit a reply to one tool call")
                }
            }),
            top_p: Mapping::of(top_p, |_| Mapping::Omit("applied by the engine's sampler")),
            seed: Mapping::of(seed, |_| Mapping::Omit("seeds the engine's sampler")),
            stop: Mapping::of_stop(stop, |_| Mapping::Omit("applied by the engine")),
        }
    }

    fn states_finish_reason(&self) -> bool {
        true
    }

    fn later_system(&self, _model: &str) -> LaterSystem {
        LaterSystem::Leading
    }

    /// Reasoning is never sent back (templates drop earlier turns' thinking), so a turn of
    /// reasoning alone carries nothing and Rig's history adapter leaves it out.
    fn sends_alone(&self, block: &AssistantContent) -> bool {
        match block {
            AssistantContent::Text(text) => !text.text.is_empty(),
            AssistantContent::ToolCall(_) => true,
            _ => false,
        }
    }
}

/// The answer for an option this wire cannot honour.
fn refuse<T>(reason: &'static str) -> impl FnOnce(T) -> Mapping {
    move |_| Mapping::unsupported(reason)
}

impl Wire for CompletionWire {
    type Op = Completion;
    type Payload = Request;
    type Frame = Event;
    type Decoder<'id> = EventDecoder<'id>;
    type Reassembler = ReplyDocument;

    fn describe(&self) -> Descriptor<'_> {
        Descriptor::new(PROVIDER)
            .model(Some(self.model.as_str()))
            .replay(self)
    }

    fn encode(&self, request: CompletionRequest, _mode: Mode) -> Result<Request, EncodeError> {
        engine_request(&request).map_err(EncodeError::request)
    }

    fn decoder<'id>(&self) -> EventDecoder<'id> {
        EventDecoder::default()
    }
}
