//! The transport both Rig models send through: the engine itself, in process. Completions are
//! carried here; embeddings in `embedding.rs`.

use futures::StreamExt;
use rig_core::driver::{Exchange, Opened, Opening, Transport};

use super::provider::provider_error;
use super::wire::CompletionWire;
use crate::engine::{Engine, Event, Request};

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
