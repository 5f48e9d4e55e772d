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
//!
//! Tools, tool calls and results in the history, `tool_choice`, `output_schema` (a JSON
//! Schema the reply is constrained to) and the reasoning switch all reach the engine; the
//! reply's reasoning and tool calls come back as Rig's reasoning and call blocks, so a
//! `rig_agent` agent runs its tool loop on a local model.
//!
//! The same engine is also Rig's embedding model ([`embedding_model`]) and, when it holds a
//! reranker, Rig's reranking model ([`rerank_model`]).
//!
//! [`Request`]: crate::engine::Request

use crate::engine::Engine;
use provider::model_name;

mod decode;
mod embedding;
mod encode;
mod provider;
mod rerank;
mod transport;
mod wire;

pub use decode::{EventDecoder, ReplyDocument};
pub use embedding::{RigllamaEmbeddingModel, MAX_EMBED_DOCUMENTS};
pub use encode::engine_request;
pub use provider::PROVIDER;
pub use rerank::{RigllamaRerankModel, MAX_RERANK_DOCUMENTS};
pub use transport::EngineTransport;
pub use wire::CompletionWire;

/// A loaded rigllama engine as Rig drives it. Clones share the engine.
pub type RigllamaModel = rig_core::Model<CompletionWire, EngineTransport>;

/// The Rig model for `engine`: pass it to `model.call`, `model.stream`, or
/// `rig_agent::AgentBuilder::new`.
pub fn completion_model(engine: &Engine) -> RigllamaModel {
    rig_core::Model::new(
        CompletionWire {
            model: model_name(engine),
            vision: !engine.describe().mmproj_path.is_empty(),
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

/// The Rig reranking model for `engine` (`rig_core::Model<Local<Rerank>, _>`, as Voyage AI's
/// `provider.rerank(model)` is over HTTP): pass a `rig_core::operation::RerankRequest` (a query
/// and its documents) to `model.call`. One call is one [`Engine::rerank`], at most
/// [`MAX_RERANK_DOCUMENTS`] documents. The `RerankResponse` follows rig's contract: `results`
/// has one entry per document, sorted by `relevance_score` (the engine's score, unnormalised;
/// higher is more relevant), highest first, equal scores in input order; each entry's `index`
/// is the document's place in the request, and `document` is `None`. `model` is the loaded
/// model file's name, `usage` is empty (no token counts) and `provider` is [`PROVIDER`].
///
/// `engine` must hold a reranker (a GGUF declaring pooling type rank, as bge-reranker's does);
/// on any other model a call fails with `ProviderError::Request` carrying the engine's "not a
/// reranker" message, as an empty query or document and a pair over
/// [`MAX_EMBED_TOKENS`](crate::MAX_EMBED_TOKENS) tokens do.
pub fn rerank_model(engine: &Engine) -> RigllamaRerankModel {
    rerank::model(engine, model_name(engine))
}
