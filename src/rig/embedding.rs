//! rigllama as a rig-core 0.44 embedding model, on the same [`Engine`] as the completion model.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rigllama::{Engine, EngineOptions};
//! let engine = Engine::create(EngineOptions::new("model.gguf"), None)?;
//! let model = rigllama::rig::embedding_model(&engine);
//! let embedding = model.embed_text("Hello!").await?;
//! assert_eq!(embedding.vec.len(), engine.describe().n_embd as usize);
//! # Ok(()) }
//! ```
//!
//! Rig 0.44 has no embedding trait to implement: an embedding model is a
//! `rig_core::Model<W, T>` whose wire performs `rig_core::operation::Embedding`. A local
//! runtime speaks rig's pass-through wire, [`Local`]: the payload is the batch of texts and the
//! reply one [`Step::End`] carrying the vectors. [`EngineTransport`] is that runtime here, so
//! one Rig call (one batch, at most [`MAX_EMBED_DOCUMENTS`] texts) is one [`Engine::embed`].
//!
//! [`Engine::embed`] blocks until the engine's worker has the vectors, so the call waits for
//! it on a thread of its own and the async runtime only awaits a channel. Dropping the call
//! discards the vectors; the engine still computes them.

use rig_core::driver::{Exchange, Local, Opened, Opening, Step, Transport};
use rig_core::embeddings::{Embedding as Vector, EmbeddingResponse};
use rig_core::error::ProviderError;
use rig_core::operation::Embedding;
use rig_core::wire::Capabilities;

use super::provider::PROVIDER;
use super::transport::{off_runtime, EngineTransport};
use crate::engine::Engine;

/// The most texts one Rig embedding call takes, and the batch size Rig's
/// `EmbeddingsBuilder` splits documents into. One call is one [`Engine::embed`], which holds
/// the engine's worker (chat requests wait behind it), so batches stay moderate.
pub const MAX_EMBED_DOCUMENTS: usize = 64;

/// A loaded rigllama engine as Rig's embedding model. Clones share the engine.
pub type RigllamaEmbeddingModel = rig_core::Model<Local<Embedding>, EngineTransport>;

/// The embedding model for `engine`, named `model`, with the engine's current width. After
/// [`Engine::reload`] to a model of another width its replies fail with
/// `ProviderError::MismatchedDimensions` instead of mixing vector spaces: make a new one.
pub(super) fn model(engine: &Engine, model: String) -> RigllamaEmbeddingModel {
    let ndims = engine.describe().n_embd as usize;
    rig_core::Model::new(
        Local::new(PROVIDER).with_id(model).with_capabilities(
            Capabilities::embedding(MAX_EMBED_DOCUMENTS, ndims).declaring(Some(ndims)),
        ),
        EngineTransport {
            engine: engine.clone(),
        },
    )
}

impl Transport<Local<Embedding>> for EngineTransport {
    fn send(&self, texts: Vec<String>, _exchange: Exchange) -> Opening<Step<Embedding>> {
        if texts.len() > MAX_EMBED_DOCUMENTS {
            return Opening::failed(ProviderError::request(format!(
                "{} texts in one embedding call; rigllama takes at most {MAX_EMBED_DOCUMENTS} \
                 (rigllama::rig::MAX_EMBED_DOCUMENTS), as EmbeddingsBuilder batches them",
                texts.len()
            )));
        }
        let engine = self.engine.clone();
        Opening::new(async move {
            let vectors = embed_off_runtime(engine, texts).await?;
            let response = EmbeddingResponse::new(
                vectors
                    .into_iter()
                    .map(|vector| Vector {
                        // Rig's fold names each vector after its input text.
                        document: String::new(),
                        vec: vector.into_iter().map(f64::from).collect(),
                    })
                    .collect(),
            );
            Ok(Opened::new(futures::stream::iter([
                Ok::<_, ProviderError>(Step::End(response)),
            ])))
        })
    }
}

/// [`Engine::embed`] on a thread of its own; the caller awaits its answer.
async fn embed_off_runtime(
    engine: Engine,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, ProviderError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    off_runtime("embed", move || engine.embed(&texts)).await
}
