/// Everything that can go wrong in rigllama. Each variant maps to one C status code, and its
/// message names the cause and the value so the host can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    ModelLoadFailed(String),
    #[error("prompt is {prompt_tokens} tokens but n_ctx is {n_ctx}; shorten the prompt or create the engine with a larger n_ctx")]
    ContextOverflow { prompt_tokens: usize, n_ctx: u32 },
    #[error("{0}")]
    Cancelled(String),
    #[error("{0}")]
    Busy(String),
    #[error("the engine's worker thread is gone; create a new engine")]
    ShutDown,
    #[error("internal error (a bug in rigllama): {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    pub(crate) fn cancelled() -> Self {
        Error::Cancelled("the request was cancelled".into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
