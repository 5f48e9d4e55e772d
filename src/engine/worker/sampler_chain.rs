//! The llama.cpp sampler chain a request's sampling settings make, in the order llama.cpp's
//! common sampler uses, and the top-k shortcut that spares sorting the whole vocabulary.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;

use crate::engine::data::sampling::{BiasTarget, LogitBias, Mirostat, Sampling};
use crate::engine::error::{Error, Result};
use crate::engine::llama::raw_sampler::RawSampler;

/// The token ids and biases of `biases`, texts tokenized, ids checked against the vocabulary.
fn resolve_biases(biases: &[LogitBias], model: &LlamaModel) -> Result<Vec<LlamaLogitBias>> {
    let n_vocab = model.n_vocab();
    let mut resolved = Vec::new();
    for (i, bias) in biases.iter().enumerate() {
        match &bias.target {
            BiasTarget::Token(id) => {
                if *id >= n_vocab {
                    return Err(Error::invalid(format!(
                        "logit_bias entry {i}: token {id} is outside this model's vocabulary of {n_vocab}"
                    )));
                }
                resolved.push(LlamaLogitBias::new(LlamaToken(*id), bias.bias));
            }
            BiasTarget::Text(text) => {
                for token in model.vocab().tokenize(text.as_bytes(), false, false) {
                    resolved.push(LlamaLogitBias::new(token, bias.bias));
                }
            }
        }
    }
    Ok(resolved)
}

/// The chain for `s`, in llama.cpp's common-sampler order: logit bias, penalties, DRY, then
/// top-n-sigma, top-k, typical-p, top-p, min-p, XTC, temperature and a seeded draw — or,
/// with mirostat, temperature and mirostat after DRY. Temperature 0 ends with the argmax
/// after DRY. With adaptive-p the chain ends at temperature and the adaptive-p sampler,
/// returned beside it, makes the draw (as llama.cpp's common sampler puts it last in place
/// of `dist`). Windows of -1 mean `n_ctx`.
pub(crate) fn build_sampler(
    s: &Sampling,
    seed: u32,
    model: &LlamaModel,
    n_ctx: u32,
) -> Result<(LlamaSampler, Option<RawSampler>)> {
    let n_vocab = model.n_vocab();
    let window = |n: i32| if n < 0 { n_ctx as i32 } else { n };
    let mut chain = Vec::new();
    if !s.logit_bias.is_empty() {
        let biases = resolve_biases(&s.logit_bias, model)?;
        chain.push(LlamaSampler::logit_bias(n_vocab, &biases));
    }
    if s.penalties_on() {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            window(s.penalty_last_n),
            s.repeat_penalty,
            s.frequency_penalty,
            s.presence_penalty,
        ));
    }
    if s.dry_on() {
        const LLAMA_CPP_BREAKERS: [&str; 4] = ["\n", ":", "\"", "*"];
        let breakers: Vec<&str> = match &s.dry.sequence_breakers {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => LLAMA_CPP_BREAKERS.to_vec(),
        };
        chain.push(LlamaSampler::dry(
            model,
            s.dry.multiplier,
            s.dry.base,
            s.dry.allowed_length,
            window(s.dry.penalty_last_n),
            breakers,
        ));
    }
    if s.temperature == 0.0 {
        chain.push(LlamaSampler::greedy());
        return Ok((LlamaSampler::chain_simple(chain), None));
    }
    let mut adaptive = None;
    match s.mirostat {
        Mirostat::Off => {
            if s.top_n_sigma > 0.0 {
                chain.push(LlamaSampler::top_n_sigma(s.top_n_sigma));
            }
            if s.top_k > 0 {
                chain.push(LlamaSampler::top_k(s.top_k));
            }
            if s.typical_p < 1.0 {
                chain.push(LlamaSampler::typical(s.typical_p, 1));
            }
            if s.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(s.top_p, 1));
            }
            if s.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(s.min_p, 1));
            }
            if s.xtc.probability > 0.0 {
                chain.push(LlamaSampler::xtc(
                    s.xtc.probability,
                    s.xtc.threshold,
                    1,
                    seed,
                ));
            }
            chain.push(LlamaSampler::temp(s.temperature));
            match s.adaptive_p {
                Some(a) => adaptive = Some(RawSampler::adaptive_p(a.target, a.decay, seed)?),
                None => chain.push(LlamaSampler::dist(seed)),
            }
        }
        Mirostat::V1 { tau, eta } => {
            chain.push(LlamaSampler::temp(s.temperature));
            chain.push(LlamaSampler::mirostat(n_vocab, seed, tau, eta, 100));
        }
        Mirostat::V2 { tau, eta } => {
            chain.push(LlamaSampler::temp(s.temperature));
            chain.push(LlamaSampler::mirostat_v2(seed, tau, eta));
        }
    }
    Ok((LlamaSampler::chain_simple(chain), adaptive))
}

/// The `k` highest logits, most likely first, as a sorted candidate array: what a chain whose
/// first sampler is top-k (see [`Sampling::draw_window`]) holds after it. llama.cpp would
/// build a candidate for every token of the vocabulary (262,144 here) and partially sort
/// them for every token generated; one pass that keeps the best `k` gives the same
/// candidates in the same order (logit ties aside, whose order llama.cpp's sort leaves open).
pub(crate) fn top_k_array(logits: &[f32], k: usize) -> LlamaTokenDataArray {
    let mut best: Vec<LlamaTokenData> = Vec::with_capacity(k + 1);
    let mut floor = f32::NEG_INFINITY;
    for (id, &logit) in logits.iter().enumerate() {
        // Only a higher logit displaces one kept (the first of equal logits stays, as in a
        // stable sort); NaN never enters.
        if logit.is_nan() || (best.len() == k && logit <= floor) {
            continue;
        }
        let at = best.partition_point(|d| d.logit() >= logit);
        best.insert(at, LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0));
        best.truncate(k);
        if best.len() == k {
            floor = best[k - 1].logit();
        }
    }
    LlamaTokenDataArray::new(best, true)
}

/// A small deterministic random source for tests (xorshift64).
#[cfg(test)]
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top-k shortcut draws exactly the token llama.cpp's chain draws over the whole
    /// vocabulary, for the same seed: 300 random logit vectors of 262,144 entries, the
    /// default chain and others a top-k starts.
    #[test]
    fn the_top_k_shortcut_draws_what_the_whole_vocabulary_draws() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let n_vocab = 262_144;
        let chains: [(i32, f32, f32, f32); 4] = [
            (40, 0.95, 0.05, 0.8),
            (40, 1.0, 0.0, 1.0),
            (5, 0.5, 0.0, 1.5),
            (200, 0.99, 0.01, 0.7),
        ];
        for round in 0..300u32 {
            // Logits like a model's: a few high ones over a broad low mass.
            let logits: Vec<f32> = (0..n_vocab)
                .map(|_| {
                    let u = (next() >> 40) as f32 / (1u64 << 24) as f32;
                    if next().is_multiple_of(2000) {
                        10.0 + 10.0 * u
                    } else {
                        8.0 * u - 4.0
                    }
                })
                .collect();
            let (k, top_p, min_p, temp) = chains[round as usize % chains.len()];
            let chain = |seed| {
                let mut samplers = vec![LlamaSampler::top_k(k)];
                if top_p < 1.0 {
                    samplers.push(LlamaSampler::top_p(top_p, 1));
                }
                if min_p > 0.0 {
                    samplers.push(LlamaSampler::min_p(min_p, 1));
                }
                samplers.push(LlamaSampler::temp(temp));
                samplers.push(LlamaSampler::dist(seed));
                LlamaSampler::chain_simple(samplers)
            };
            let mut whole = LlamaTokenDataArray::from_iter(
                logits
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
                false,
            );
            chain(round).apply(&mut whole);
            let mut short = top_k_array(&logits, k as usize);
            assert_eq!(short.data.len(), k as usize);
            chain(round).apply(&mut short);
            assert_eq!(
                short.selected_token(),
                whole.selected_token(),
                "round {round}"
            );
        }
    }
}
