//! Per-token log-probabilities: the chosen token's and the most likely alternatives', taken
//! from the distribution the token was drawn from.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

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

/// The log-probabilities of `chosen` and the `n` most likely of `candidates` (id, logit):
/// a log-softmax over the finite logits, which is the distribution a seeded draw samples
/// from after the chain's filters and temperature (and, for greedy, the model's own).
pub(crate) fn logprobs_of(
    candidates: impl Iterator<Item = (i32, f32)> + Clone,
    chosen: LlamaToken,
    n: usize,
    model: &LlamaModel,
) -> TokenLogprob {
    let finite = candidates.filter(|(_, logit)| logit.is_finite());
    let max = finite
        .clone()
        .map(|(_, l)| l)
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = finite.clone().map(|(_, l)| ((l - max) as f64).exp()).sum();
    let log_norm = max as f64 + sum.ln();
    let logprob = |logit: f32| (logit as f64 - log_norm).min(0.0) as f32;
    let mut chosen_logprob = f32::NEG_INFINITY;
    // The best n, kept sorted: most likely first, then lower id.
    let mut best: Vec<(i32, f32)> = Vec::with_capacity(n + 1);
    for (id, logit) in finite {
        if id == chosen.0 {
            chosen_logprob = logprob(logit);
        }
        if n == 0 {
            continue;
        }
        let better = |&(bid, bl): &(i32, f32)| logit > bl || (logit == bl && id < bid);
        if best.len() < n || best.last().is_some_and(better) {
            let at = best.iter().position(better).unwrap_or(best.len());
            best.insert(at, (id, logit));
            best.truncate(n);
        }
    }
    let alternative = |id: i32, logprob: f32| Alternative {
        id,
        bytes: token_bytes(model, LlamaToken(id)),
        logprob,
    };
    TokenLogprob {
        token: alternative(chosen.0, chosen_logprob),
        top: best
            .into_iter()
            .map(|(id, logit)| alternative(id, logprob(logit)))
            .collect(),
    }
}

fn token_bytes(model: &LlamaModel, token: LlamaToken) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    model
        .vocab()
        .token_to_piece_into(token, &mut bytes, true, None);
    bytes
}
