//! rigllama as a rig-core 0.44 model: an in-process provider over the same [`Engine`] the C
//! ABI uses, so a Rust caller and a C caller get the same behaviour for the same request.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rigllama::{Engine, EngineOptions};
//! let engine = Engine::create(EngineOptions::new("model.gguf"), None)?;
//! let model = rigllama::rig::completion_model(&engine);
//! let response = model.call("Hello!").await?;
//! println!("{:?} {:?}", response.choice, response.usage);
//! # Ok(()) }
//! ```
//!
//! The wire's payload is the engine's own [`Request`], built from Rig's `CompletionRequest`
//! by [`engine_request`]; the transport submits it and turns the job's events into frames.
//! Dropping a Rig stream drops the job, which cancels the request in the engine.

use futures::StreamExt;
use rig_core::completion::options::{Mapping, OptionFields, OptionMap};
use rig_core::completion::{
    Accepts, CompletionRequest, FinishReason as RigFinishReason, LaterSystem, Media, ReplayTarget,
    Usage as RigUsage,
};
use rig_core::driver::{Exchange, Opened, Opening, Transport};
use rig_core::error::{EncodeError, ProviderError};
use rig_core::message::{Api, AssistantContent, Message as RigMessage, UserContent};
use rig_core::operation::{Block, Completion, Finish};
use rig_core::wire::document::{Reassemble, Serves};
use rig_core::wire::{Decoder, Descriptor, Flow, Mode, Out, Wire, WireEvent};

use crate::engine::{
    Engine, Error, Event, FinishReason, Message, Prompt, Request, Role, Sampling, Usage,
    DEFAULT_MAX_TOKENS,
};

mod embedding;
pub use embedding::{RigllamaEmbeddingModel, MAX_EMBED_DOCUMENTS};

/// The provider name records and telemetry see.
pub const PROVIDER: &str = "rigllama";
const API: Api = Api::from_static("llama.cpp.chat-template");

/// A loaded rigllama engine as Rig drives it. Clones share the engine.
pub type RigllamaModel = rig_core::Model<CompletionWire, EngineTransport>;

/// The Rig model for `engine`: pass it to `model.call`, `model.stream`, or
/// `rig_agent::AgentBuilder::new`.
pub fn completion_model(engine: &Engine) -> RigllamaModel {
    rig_core::Model::new(
        CompletionWire {
            model: model_name(engine),
        },
        EngineTransport {
            engine: engine.clone(),
        },
    )
}

/// The Rig embedding model for `engine`: pass it to `model.embed_text`, `model.call(texts)`,
/// `rig_core::embeddings::EmbeddingsBuilder::new` or a vector store's `index`. Its vectors
/// are [`Engine::embed`]'s (pooled, L2-normalised, `describe().n_embd` long).
pub fn embedding_model(engine: &Engine) -> RigllamaEmbeddingModel {
    embedding::model(engine, model_name(engine))
}

/// The model file's name without its extension.
fn model_name(engine: &Engine) -> String {
    let path = engine.describe().model_path;
    std::path::Path::new(&path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(path)
}

/// The completion wire: its payload is the engine's [`Request`], its frames the engine's
/// [`Event`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletionWire {
    model: String,
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
        Accepts::TEXT
    }

    fn encodes(&self, _model: &str, _media: Media<'_>) -> bool {
        true
    }

    /// Honoured: top_p, seed, stop. Everything else is refused, not silently ignored.
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
            reasoning: Mapping::of(reasoning, refuse("rigllama has no reasoning control")),
            cache: Mapping::of(
                cache,
                refuse("the KV prefix cache is automatic; reset it with Engine::reset"),
            ),
            service_tier: Mapping::of(service_tier, refuse("a local model has no service tiers")),
            verbosity: Mapping::of(verbosity, refuse("rigllama has no verbosity control")),
            parallel_tool_calls: Mapping::of(
                parallel_tool_calls,
                refuse("rigllama does not call tools"),
            ),
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

/// Builds the engine's request from Rig's, refusing what the engine cannot do.
pub fn engine_request(request: &CompletionRequest) -> Result<Request, String> {
    if !request.tools.is_empty() {
        return Err("rigllama does not call tools; remove the tools from the request".into());
    }
    if request.output_schema.is_some() {
        return Err("rigllama does not constrain output to a JSON schema".into());
    }
    if request
        .additional_params
        .as_ref()
        .is_some_and(|p| !p.is_null())
    {
        return Err("rigllama takes no additional_params".into());
    }
    let mut messages = Vec::new();
    for (index, message) in request.chat_history.iter().enumerate() {
        match message {
            RigMessage::System { content } => messages.push(Message::new(Role::System, content)),
            RigMessage::User { content } => {
                let text = content
                    .iter()
                    .map(|part| match part {
                        UserContent::Text(text) => Ok(text.text.as_str()),
                        _ => Err(format!(
                            "user message {index} has non-text content; rigllama reads text only"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat();
                messages.push(Message::new(Role::User, text));
            }
            RigMessage::Assistant(assistant) => {
                let text = assistant
                    .content
                    .iter()
                    .map(|part| match part {
                        AssistantContent::Text(text) => Ok(text.text.as_str()),
                        _ => Err(format!(
                            "assistant message {index} has non-text content; rigllama reads text only"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat();
                messages.push(Message::new(Role::Assistant, text));
            }
        }
    }
    if let Some(documents) = request.normalized_documents() {
        // Documents go in front of the first non-system turn, as Rig's own providers do.
        let RigMessage::User { content } = documents else {
            unreachable!("normalized documents are a user message")
        };
        let text: String = content
            .iter()
            .map(|part| match part {
                UserContent::Document(document) => document.data.to_string(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let at = messages
            .iter()
            .position(|m| m.role != Role::System)
            .unwrap_or(messages.len());
        match messages.get_mut(at) {
            Some(first) if first.role == Role::User => {
                first.content = format!("{text}\n\n{}", first.content);
            }
            _ => messages.insert(at, Message::new(Role::User, text)),
        }
    }
    let options = &request.options;
    let seed = options
        .seed
        .map(|seed| {
            u32::try_from(seed)
                .ok()
                .filter(|&s| s != u32::MAX)
                .ok_or_else(|| format!("seed {seed} does not fit rigllama's 32-bit seeds"))
        })
        .transpose()?;
    let max_tokens = request.max_tokens.map_or(Ok(DEFAULT_MAX_TOKENS), |max| {
        u32::try_from(max).map_err(|_| format!("max_tokens {max} is too large"))
    })?;
    let defaults = Sampling::default();
    let request = Request {
        prompt: Prompt::Chat(messages),
        max_tokens: Some(max_tokens),
        sampling: Sampling {
            temperature: request
                .temperature
                .map_or(defaults.temperature, |t| t as f32),
            top_p: options.top_p.map_or(defaults.top_p, |p| p as f32),
            seed,
            ..defaults
        },
        stop: options.stop.clone(),
        priority: 0,
    };
    request.validate().map_err(|e| e.to_string())?;
    Ok(request)
}

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
            Event::Done(usage) => {
                out.end_run()?;
                Ok(out.end(Finish {
                    usage: rig_usage(&usage),
                    reason: Some(match usage.finish_reason {
                        FinishReason::Stop | FinishReason::Callback => RigFinishReason::Stop,
                        FinishReason::Length => RigFinishReason::Length,
                    }),
                    ..Finish::default()
                }))
            }
            // The transport ends the stream with the error instead of sending this frame.
            Event::Failed { error, .. } => Err(provider_error(error)),
        }
    }
}

fn rig_usage(usage: &Usage) -> RigUsage {
    RigUsage::new()
        .input_tokens(u64::from(usage.prompt_tokens))
        .output_tokens(u64::from(usage.completion_tokens))
        .total_tokens(u64::from(usage.prompt_tokens + usage.completion_tokens))
        .cached_input_tokens(u64::from(usage.cached_prompt_tokens))
}

fn provider_error(error: Error) -> ProviderError {
    match error {
        Error::InvalidArgument(_) | Error::ContextOverflow { .. } => {
            ProviderError::request(error.to_string())
        }
        other => ProviderError::Provider(other.to_string()),
    }
}

/// The reply's provider document (Rig's `raw`): the text and the engine's usage.
#[derive(Debug, Default)]
pub struct ReplyDocument {
    text: String,
    usage: Option<serde_json::Value>,
}

impl Serves<Completion> for ReplyDocument {}

impl Reassemble<Event> for ReplyDocument {
    fn absorb(&mut self, event: &Event) {
        match event {
            Event::Text { text, .. } => self.text.push_str(text),
            Event::Done(usage) => {
                self.usage = Some(serde_json::json!({
                    "prompt_tokens": usage.prompt_tokens,
                    "cached_prompt_tokens": usage.cached_prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "seed": usage.seed,
                    "prompt_ms": usage.prompt_ms,
                    "generation_ms": usage.generation_ms,
                }))
            }
            Event::Failed { .. } => {}
        }
    }

    fn finish(self) -> serde_json::Value {
        serde_json::json!({ "text": self.text, "usage": self.usage })
    }
}

/// Carries each request to the engine's worker and its events back as frames.
#[derive(Clone, Debug)]
pub struct EngineTransport {
    engine: Engine,
}

impl Transport<CompletionWire> for EngineTransport {
    fn send(&self, request: Request, _exchange: Exchange) -> Opening<Event> {
        let engine = self.engine.clone();
        Opening::new(async move {
            let job = engine.submit(request).map_err(provider_error)?;
            // Unary and streaming read the same events; dropping the stream drops the job,
            // which cancels the request.
            let frames = futures::stream::unfold(Some(job), |job| async move {
                let mut job = job?;
                match job.next().await {
                    Event::Failed { error, .. } => Some((Err(provider_error(error)), None)),
                    done @ Event::Done(_) => Some((Ok(done), None)),
                    text => Some((Ok(text), Some(job))),
                }
            })
            .boxed();
            Ok(Opened::new(frames))
        })
    }
}
