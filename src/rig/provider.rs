//! Who this provider is to Rig, shared by the completion, embedding and reranking models: its
//! name, the name it gives a loaded model, and how the engine's errors read as Rig's.

use rig_core::error::ProviderError;

use crate::engine::{Engine, Error};

/// The provider name records and telemetry see.
pub const PROVIDER: &str = "rigllama";

/// The model file's name without its extension.
pub(super) fn model_name(engine: &Engine) -> String {
    let path = engine.describe().model_path;
    std::path::Path::new(&path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(path)
}

/// An engine error as Rig's: a request the engine refuses (a bad argument, a prompt over the
/// context) is the caller's to fix; anything else is the provider's.
pub(super) fn provider_error(error: Error) -> ProviderError {
    match error {
        Error::InvalidArgument(_) | Error::ContextOverflow { .. } => {
            ProviderError::request(error.to_string())
        }
        other => ProviderError::Provider(other.to_string()),
    }
}
