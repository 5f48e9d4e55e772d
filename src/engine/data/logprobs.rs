//! Per-token log-probabilities: the chosen token's and the most likely alternatives', taken
//! from the distribution the token was drawn from (computed by the worker's token choice).

/// A generated token's log-probability and the `n_logprobs` most likely tokens of the same
/// distribution (which include it when it is among them).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: Alternative,
    /// Most likely first (ties: lower token id first). Fewer than asked for when the
    /// samplers left fewer candidates.
    pub top: Vec<Alternative>,
}

/// One token of a distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub id: i32,
    /// The token's bytes (special tokens as their text). A token may end inside a UTF-8
    /// character, so these are bytes, not a string.
    pub bytes: Vec<u8>,
    /// Natural log of its probability: <= 0, `-inf` for a token the samplers removed.
    pub logprob: f32,
}

impl Alternative {
    fn to_openai_json(&self) -> serde_json::Value {
        serde_json::json!({
            "token": String::from_utf8_lossy(&self.bytes),
            "id": self.id,
            "logprob": json_logprob(self.logprob),
            "bytes": self.bytes,
        })
    }
}

/// JSON has no -infinity; OpenAI reports -9999 for what cannot happen.
fn json_logprob(logprob: f32) -> f64 {
    if logprob.is_finite() {
        logprob as f64
    } else {
        -9999.0
    }
}

impl TokenLogprob {
    /// One entry of OpenAI's `logprobs.content`: `{"token","id","logprob","bytes",
    /// "top_logprobs":[{"token","id","logprob","bytes"}]}`.
    pub fn to_openai_json(&self) -> serde_json::Value {
        let mut entry = self.token.to_openai_json();
        entry["top_logprobs"] = self.top.iter().map(Alternative::to_openai_json).collect();
        entry
    }
}
