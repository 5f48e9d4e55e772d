//! The transport every Rig model sends through: the engine itself, in process. Completions are
//! carried here; embeddings in `embedding.rs` and reranking in `rerank.rs`, both through
//! [`off_runtime`].

use futures::StreamExt;
use rig_core::driver::{Exchange, Opened, Opening, Transport};
use rig_core::error::ProviderError;

use super::provider::provider_error;
use super::wire::CompletionWire;
use crate::engine::{Engine, Event, Request, Result as EngineResult};

/// Carries each request to the engine's worker and its events back as frames.
#[derive(Clone, Debug)]
pub struct EngineTransport {
    pub(super) engine: Engine,
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
                    event => Some((Ok(event), Some(job))),
                }
            })
            .boxed();
            Ok(Opened::new(frames))
        })
    }
}

/// A blocking engine call (`Engine::embed`, `Engine::rerank`: each waits until the engine's
/// worker has its answer) on a thread of its own, `rigllama-{what}`; the caller awaits its
/// answer on a channel, so the async runtime is never blocked. Dropping the future discards the
/// answer; the engine still computes it.
pub(super) async fn off_runtime<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> EngineResult<T> + Send + 'static,
) -> Result<T, ProviderError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("rigllama-{what}"))
        .spawn(move || {
            // The receiver is gone when the caller dropped the call; nothing to tell.
            let _ = reply.send(work());
        })
        .map_err(|e| {
            ProviderError::Provider(format!("cannot start the rigllama-{what} thread: {e}"))
        })?;
    answer
        .await
        .map_err(|_| {
            ProviderError::Provider(format!("the rigllama-{what} thread ended without a reply"))
        })?
        .map_err(provider_error)
}
