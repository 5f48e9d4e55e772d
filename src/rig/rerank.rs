//! rigllama as a rig-core 0.44 reranking model, on the same [`Engine`] as the completion and
//! embedding models.
//!
//! (Not compiled as a doctest: rustdoc cannot tell apart the several rig-core builds that
//! the test features leave beside each other. `tests/rig.rs` runs the same calls.)
//!
//! ```ignore
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rig_core::operation::RerankRequest;
//! use rigllama::{Engine, EngineOptions};
//! let engine = Engine::create(EngineOptions::new("bge-reranker-v2-m3.gguf"), None)?;
//! let model = rigllama::rig::rerank_model(&engine);
//! let response = model
//!     .call(RerankRequest {
//!         query: "What is a panda?".into(),
//!         documents: vec!["hi".into(), "The giant panda is a bear native to China.".into()],
//!     })
//!     .await?;
//! // Most relevant first; `index` is the document's place in `documents`.
//! assert_eq!(response.results[0].index, 1);
//! # Ok(()) }
//! ```
//!
//! Rig 0.44 has no reranking trait to implement: as with embeddings, a reranking model is a
//! `rig_core::Model<W, T>` whose wire performs `rig_core::operation::Rerank` (what Voyage AI's
//! `provider.rerank(model)` returns, over an HTTP wire). A local runtime speaks rig's
//! pass-through wire, [`Local`]: the payload is rig's [`RerankRequest`] (the query and the
//! documents, in input order) and the reply one [`Step::End`] carrying a [`RerankResponse`].
//! [`EngineTransport`] is that runtime here, so one Rig call (at most [`MAX_RERANK_DOCUMENTS`]
//! documents) is one [`Engine::rerank`].
//!
//! The response follows rig's contract for [`RerankResponse`]: `results` holds one
//! [`RerankResult`] per document, sorted by relevance, highest first (documents with equal
//! scores keep their input order), each with `index`, the document's place in the request's
//! `documents`, and `relevance_score`, the engine's score for it (unnormalised, as llama-server
//! returns it; compare scores only within one response). `document` is `None`: rig fills it only
//! when a provider was asked to echo documents back, and the caller has them at `index`.
//! `model` is the loaded model file's name (without its extension); `usage` reports nothing,
//! as the engine counts no tokens for a rerank; `provider` is [`PROVIDER`].
//!
//! [`Engine::rerank`] blocks until the engine's worker has the scores, so the call waits for it
//! on a thread of its own and the async runtime only awaits a channel. Dropping the call
//! discards the scores; the engine still computes them. A model that is not a reranker, an
//! empty query or document, or a pair over [`MAX_EMBED_TOKENS`](crate::MAX_EMBED_TOKENS) tokens
//! is refused with the engine's message as `ProviderError::Request`.

use rig_core::driver::{Exchange, Local, Opened, Opening, Step, Transport};
use rig_core::error::ProviderError;
use rig_core::operation::{Rerank, RerankRequest};
use rig_core::rerank::{RerankResponse, RerankResult};
use rig_core::wire::Capabilities;

use super::provider::{model_name, PROVIDER};
use super::transport::{off_runtime, EngineTransport};
use crate::engine::Engine;

/// The most documents one Rig rerank call takes (the batch limit rig's own llama.cpp dialect
/// declares for llama-server's `/rerank`). One call is one [`Engine::rerank`], which holds the
/// engine's worker until every document is scored (chat requests wait behind it). Rank more in
/// several calls: a score depends only on its query and document (to rounding), so their
/// results merge by score.
pub const MAX_RERANK_DOCUMENTS: usize = 1024;

/// A loaded rigllama engine as Rig's reranking model. Clones share the engine.
pub type RigllamaRerankModel = rig_core::Model<Local<Rerank>, EngineTransport>;

/// The reranking model for `engine`, named `model`.
pub(super) fn model(engine: &Engine, model: String) -> RigllamaRerankModel {
    rig_core::Model::new(
        Local::new(PROVIDER)
            .with_id(model)
            .with_capabilities(Capabilities::rerank(MAX_RERANK_DOCUMENTS)),
        EngineTransport {
            engine: engine.clone(),
        },
    )
}

impl Transport<Local<Rerank>> for EngineTransport {
    fn send(&self, request: RerankRequest, _exchange: Exchange) -> Opening<Step<Rerank>> {
        if request.documents.len() > MAX_RERANK_DOCUMENTS {
            return Opening::failed(ProviderError::request(format!(
                "{} documents in one rerank call; rigllama takes at most \
                 {MAX_RERANK_DOCUMENTS} (rigllama::rig::MAX_RERANK_DOCUMENTS): rank them in \
                 several calls",
                request.documents.len()
            )));
        }
        let engine = self.engine.clone();
        Opening::new(async move {
            let RerankRequest { query, documents } = request;
            let (scores, model) = off_runtime("rerank", move || {
                let scores = engine.rerank(&query, &documents)?;
                Ok((scores, model_name(&engine)))
            })
            .await?;
            let response = RerankResponse {
                model: Some(model),
                ..RerankResponse::new(ranked(&scores))
            };
            Ok(Opened::new(futures::stream::iter([
                Ok::<_, ProviderError>(Step::End(response)),
            ])))
        })
    }
}

/// [`Engine::rerank`]'s scores (one per document, in input order) as rig's results: sorted by
/// score, highest first, a tie keeping input order (a NaN score, which ranks nothing, last);
/// each result's `index` is its document's place in the input, `document` is `None`.
fn ranked(scores: &[f32]) -> Vec<RerankResult> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable: equal scores stay in input order.
    order.sort_by(|&a, &b| {
        let (a, b) = (scores[a], scores[b]);
        b.partial_cmp(&a)
            .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
    });
    order
        .into_iter()
        .map(|index| RerankResult {
            index,
            document: None,
            relevance_score: f64::from(scores[index]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(results: &[RerankResult]) -> Vec<(usize, f64)> {
        results
            .iter()
            .map(|r| (r.index, r.relevance_score))
            .collect()
    }

    #[test]
    fn results_are_sorted_highest_first_with_input_indices() {
        let results = ranked(&[0.5, -2.0, 3.25, 1.0]);
        assert_eq!(pairs(&results), [(2, 3.25), (3, 1.0), (0, 0.5), (1, -2.0)]);
        assert!(results.iter().all(|r| r.document.is_none()));
    }

    #[test]
    fn ties_keep_input_order_and_nan_ranks_last() {
        let results = ranked(&[1.0, f32::NAN, 2.0, 1.0, f32::NAN, -1.0]);
        let indices: Vec<usize> = results.iter().map(|r| r.index).collect();
        assert_eq!(indices, [2, 0, 3, 5, 1, 4]);
    }

    #[test]
    fn no_documents_no_results() {
        assert!(ranked(&[]).is_empty());
    }

    #[test]
    fn an_f32_score_is_carried_exactly() {
        let score = 0.1f32;
        assert_eq!(ranked(&[score])[0].relevance_score, f64::from(score));
    }
}
