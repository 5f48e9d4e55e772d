//! The sampler chain a request's settings make. Grammars and the other samplers join here.

use llama_cpp_2::sampling::LlamaSampler;

use super::request::Request;

/// The repeat penalty looks at this many of the latest tokens.
pub(crate) const PENALTY_LAST_N: i32 = 64;

/// Penalties, then (unless greedy) top-k, top-p, min-p, temperature and a seeded draw — the
/// order llama.cpp's common sampler uses.
pub(crate) fn build_sampler(request: &Request, seed: u32, n_vocab: i32) -> LlamaSampler {
    let s = &request.sampling;
    let mut chain = Vec::new();
    if s.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            PENALTY_LAST_N,
            s.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if s.temperature == 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(s.top_k));
        }
        if s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        if s.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(s.min_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(seed));
    }
    LlamaSampler::chain_simple(chain)
}

/// A seed for requests that asked for a random one. Never `u32::MAX`, which the C ABI uses
/// to mean "random".
pub(crate) fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let seed = hasher.finish() as u32;
    if seed == u32::MAX {
        0
    } else {
        seed
    }
}
