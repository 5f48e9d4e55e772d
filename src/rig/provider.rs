//! Who this provider is to Rig, shared by the completion and embedding models: its name, and
//! how the engine's errors read as Rig's.

use rig_core::error::ProviderError;

use crate::engine::Error;

/// The provider name records and telemetry see.
pub const PROVIDER: &str = "rigllama";

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
