//! How the next token is chosen: the sampling settings of a request and their ranges (the
//! worker turns them into llama.cpp's sampler chain).

use crate::engine::error::{Error, Result};

/// How the next token is chosen. Temperature 0 is greedy: the logit bias, the penalties and
/// DRY still apply, then the highest logit wins (the samplers that shape a random draw —
/// top-n-sigma, top-k, typical-p, top-p, min-p, XTC, mirostat — have nothing to do).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 = off.
    pub top_k: i32,
    /// 0 = off.
    pub min_p: f32,
    /// Divides the logit of every token seen in the last `penalty_last_n` (multiplies when
    /// negative). 1 = off; > 0.
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every token seen in the window. 0 = off; -2..=2.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was seen in the window. 0 = off; -2..=2.
    pub frequency_penalty: f32,
    /// The window of the three penalties above, in tokens (prompt included): 64 by default,
    /// -1 = the whole context, 0 = penalties off.
    pub penalty_last_n: i32,
    pub dry: Dry,
    pub xtc: Xtc,
    /// Locally typical sampling; 1 = off; in (0, 1].
    pub typical_p: f32,
    /// Keeps tokens within this many standard deviations of the highest logit; 0 = off; >= 0.
    pub top_n_sigma: f32,
    pub mirostat: Mirostat,
    /// Adaptive-p: the draw favours tokens near a target probability, adapting to what was
    /// chosen (llama.cpp's `adaptive_p`, ending the chain in place of the plain draw). `None`
    /// = off.
    pub adaptive_p: Option<AdaptiveP>,
    /// Added to the logits of tokens (or of every token of a text) before anything else.
    pub logit_bias: Vec<LogitBias>,
    /// `None` = a random seed, reported back in [`Usage::seed`](crate::Usage::seed).
    pub seed: Option<u32>,
}

/// DRY ("don't repeat yourself"): penalises tokens that would extend a repetition of
/// earlier text beyond `allowed_length` tokens, by `multiplier * base^(length - allowed)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dry {
    /// 0 = off; finite, >= 0.
    pub multiplier: f32,
    /// >= 1; default 1.75.
    pub base: f32,
    /// Repetitions up to this many tokens are free; >= 0; default 2.
    pub allowed_length: i32,
    /// Tokens scanned for repetitions: -1 (default) = the whole context, 0 = off.
    pub penalty_last_n: i32,
    /// Texts that end a repetition; `None` = llama.cpp's `["\n", ":", "\"", "*"]`.
    pub sequence_breakers: Option<Vec<String>>,
}

/// XTC ("exclude top choices"): with `probability`, removes every token above `threshold`
/// except the least likely of them, for more varied text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Xtc {
    /// 0 = off; in [0, 1].
    pub probability: f32,
    /// In [0, 1]; above 0.5 nothing is ever removed. Default 0.1.
    pub threshold: f32,
}

/// Adaptive-p settings (llama.cpp's `--adaptive-target` / `--adaptive-decay`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveP {
    /// Select tokens near this probability; in [0, 1].
    pub target: f32,
    /// How slowly it adapts: history of about 1 / (1 - decay) tokens; in [0, 0.99]; llama.cpp's
    /// default 0.90.
    pub decay: f32,
}

impl AdaptiveP {
    /// llama.cpp's default decay.
    pub const DEFAULT_DECAY: f32 = 0.90;
}

/// Mirostat keeps the text's surprise near `tau`, learning at rate `eta`; it replaces top-k,
/// typical-p, top-p, min-p and XTC (as in llama.cpp).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mirostat {
    Off,
    V1 { tau: f32, eta: f32 },
    V2 { tau: f32, eta: f32 },
}

impl Mirostat {
    /// llama.cpp's default target surprise.
    pub const DEFAULT_TAU: f32 = 5.0;
    /// llama.cpp's default learning rate.
    pub const DEFAULT_ETA: f32 = 0.1;
}

/// What a logit bias applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum BiasTarget {
    /// One token id of the model's vocabulary.
    Token(i32),
    /// Every token of this text as the model tokenizes it alone (no special tokens), as
    /// llama-server does: `Text("Paris")` with `f32::NEG_INFINITY` bans the tokens "Paris"
    /// is made of.
    Text(String),
}

/// A bias added to a token's logit; `f32::NEG_INFINITY` bans it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitBias {
    pub target: BiasTarget,
    pub bias: f32,
}

impl LogitBias {
    /// Reads a logit bias in JSON: an object of token ids (OpenAI's shape, `{"15043": -1.5}`)
    /// or an array of `[token id or text, bias]` pairs (llama-server's, `[["Paris", false]]`).
    /// A bias is a finite number, or `false` to ban.
    pub fn parse_json(text: &str) -> Result<Vec<LogitBias>> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("logit_bias is not valid JSON: {e}")))?;
        let bias_of = |what: &str, v: &serde_json::Value| match v {
            serde_json::Value::Bool(false) => Ok(f32::NEG_INFINITY),
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(|b| b as f32)
                .filter(|b| b.is_finite())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "logit_bias {what}: bias {n} is not a finite number"
                    ))
                }),
            other => Err(Error::invalid(format!(
                "logit_bias {what}: the bias must be a number or false (ban), not {other}"
            ))),
        };
        match value {
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(key, v)| {
                    let id: i32 = key.parse().map_err(|_| {
                        Error::invalid(format!(
                            "logit_bias key \"{key}\" is not a token id (use the array form \
                             [[\"text\", bias]] for texts)"
                        ))
                    })?;
                    Ok(LogitBias {
                        target: BiasTarget::Token(id),
                        bias: bias_of(&format!("token {key}"), v)?,
                    })
                })
                .collect(),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let pair = item.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                        Error::invalid(format!(
                            "logit_bias entry {i} must be a [token id or text, bias] pair"
                        ))
                    })?;
                    let target = match &pair[0] {
                        serde_json::Value::String(text) => BiasTarget::Text(text.clone()),
                        serde_json::Value::Number(n) => BiasTarget::Token(
                            n.as_i64()
                                .and_then(|id| i32::try_from(id).ok())
                                .ok_or_else(|| {
                                    Error::invalid(format!(
                                        "logit_bias entry {i}: token {n} is not a token id"
                                    ))
                                })?,
                        ),
                        other => {
                            return Err(Error::invalid(format!(
                                "logit_bias entry {i}: {other} is neither a token id nor a text"
                            )))
                        }
                    };
                    Ok(LogitBias {
                        target,
                        bias: bias_of(&format!("entry {i}"), &pair[1])?,
                    })
                })
                .collect(),
            _ => Err(Error::invalid(
                "logit_bias must be a JSON object of token ids or an array of [token, bias] pairs",
            )),
        }
    }
}

impl Sampling {
    /// temperature 0.8, top-p 0.95, top-k 40, min-p 0.05, a random seed; every other knob off.
    pub const DEFAULT: Sampling = Sampling {
        temperature: 0.8,
        top_p: 0.95,
        top_k: 40,
        min_p: 0.05,
        repeat_penalty: 1.0,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        penalty_last_n: 64,
        dry: Dry {
            multiplier: 0.0,
            base: 1.75,
            allowed_length: 2,
            penalty_last_n: -1,
            sequence_breakers: None,
        },
        xtc: Xtc {
            probability: 0.0,
            threshold: 0.1,
        },
        typical_p: 1.0,
        top_n_sigma: 0.0,
        mirostat: Mirostat::Off,
        adaptive_p: None,
        logit_bias: Vec::new(),
        seed: None,
    };

    pub(crate) fn penalties_on(&self) -> bool {
        self.penalty_last_n != 0
            && (self.repeat_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }

    pub(crate) fn dry_on(&self) -> bool {
        self.dry.multiplier > 0.0 && self.dry.penalty_last_n != 0
    }

    /// Whether anything changes the logits before the draw (bias, penalties, DRY), and so
    /// the order of the candidates.
    fn changes_logits(&self) -> bool {
        self.penalties_on() || self.dry_on() || !self.logit_bias.is_empty()
    }

    /// Greedy with nothing that changes the logits first: the token is the argmax of the
    /// logits, no candidate array needed.
    pub(crate) fn is_plain_greedy(&self) -> bool {
        self.temperature == 0.0 && !self.changes_logits()
    }

    /// The draw only ever looks at the `top_k` highest raw logits: top-k is the first
    /// sampler that sees them (nothing reorders them before it, and neither top-n-sigma nor
    /// mirostat, which look at all of them, is on). `None` when that is not so.
    pub(crate) fn draw_window(&self) -> Option<usize> {
        (self.top_k > 0
            && !self.changes_logits()
            && self.top_n_sigma == 0.0
            && self.mirostat == Mirostat::Off)
            .then_some(self.top_k as usize)
    }

    /// How many of the latest tokens (prompt included) the chain must have seen before the
    /// first sample: the penalties' and DRY's windows, -1 resolved to `n_ctx`.
    pub(crate) fn history_window(&self, n_ctx: u32) -> usize {
        let resolve = |n: i32| if n < 0 { n_ctx as usize } else { n as usize };
        let mut window = 0;
        if self.penalties_on() {
            window = resolve(self.penalty_last_n);
        }
        if self.dry_on() {
            window = window.max(resolve(self.dry.penalty_last_n));
        }
        window
    }

    /// Checks every knob against its documented range, naming the field and the value.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, field: &str, value: impl std::fmt::Display, range: &str) -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(format!("{field} {value} must be {range}")))
            }
        }
        let finite_in = |v: f32, lo: f32, hi: f32| v.is_finite() && (lo..=hi).contains(&v);
        check(
            self.temperature.is_finite() && self.temperature >= 0.0,
            "temperature",
            self.temperature,
            "finite and >= 0",
        )?;
        check(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "top_p",
            self.top_p,
            "in (0, 1]",
        )?;
        check(self.top_k >= 0, "top_k", self.top_k, ">= 0 (0 = off)")?;
        check(
            finite_in(self.min_p, 0.0, 1.0),
            "min_p",
            self.min_p,
            "in [0, 1]",
        )?;
        check(
            self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0,
            "repeat_penalty",
            self.repeat_penalty,
            "finite and > 0 (1 = off)",
        )?;
        check(
            finite_in(self.presence_penalty, -2.0, 2.0),
            "presence_penalty",
            self.presence_penalty,
            "in [-2, 2] (0 = off)",
        )?;
        check(
            finite_in(self.frequency_penalty, -2.0, 2.0),
            "frequency_penalty",
            self.frequency_penalty,
            "in [-2, 2] (0 = off)",
        )?;
        check(
            self.penalty_last_n >= -1,
            "penalty_last_n",
            self.penalty_last_n,
            ">= -1 (-1 = the whole context, 0 = penalties off)",
        )?;
        let d = &self.dry;
        check(
            d.multiplier.is_finite() && d.multiplier >= 0.0,
            "dry_multiplier",
            d.multiplier,
            "finite and >= 0 (0 = off)",
        )?;
        check(
            finite_in(d.base, 1.0, f32::MAX),
            "dry_base",
            d.base,
            "finite and >= 1",
        )?;
        check(
            d.allowed_length >= 0,
            "dry_allowed_length",
            d.allowed_length,
            ">= 0",
        )?;
        check(
            d.penalty_last_n >= -1,
            "dry_penalty_last_n",
            d.penalty_last_n,
            ">= -1 (-1 = the whole context, 0 = off)",
        )?;
        if let Some(a) = self.adaptive_p {
            check(
                finite_in(a.target, 0.0, 1.0),
                "adaptive_target",
                a.target,
                "in [0, 1] (negative = off)",
            )?;
            check(
                finite_in(a.decay, 0.0, 0.99),
                "adaptive_decay",
                a.decay,
                "in [0, 0.99]",
            )?;
            if self.mirostat != Mirostat::Off {
                return Err(Error::invalid(
                    "adaptive_target and mirostat both choose the token; use one",
                ));
            }
        }
        for (i, breaker) in d.sequence_breakers.iter().flatten().enumerate() {
            if breaker.is_empty() || breaker.contains('\0') {
                return Err(Error::invalid(format!(
                    "dry sequence breaker {i} is empty or contains NUL"
                )));
            }
        }
        check(
            finite_in(self.xtc.probability, 0.0, 1.0),
            "xtc_probability",
            self.xtc.probability,
            "in [0, 1] (0 = off)",
        )?;
        check(
            finite_in(self.xtc.threshold, 0.0, 1.0),
            "xtc_threshold",
            self.xtc.threshold,
            "in [0, 1]",
        )?;
        check(
            self.typical_p > 0.0 && self.typical_p <= 1.0,
            "typical_p",
            self.typical_p,
            "in (0, 1] (1 = off)",
        )?;
        check(
            self.top_n_sigma.is_finite() && self.top_n_sigma >= 0.0,
            "top_n_sigma",
            self.top_n_sigma,
            "finite and >= 0 (0 = off)",
        )?;
        if let Mirostat::V1 { tau, eta } | Mirostat::V2 { tau, eta } = self.mirostat {
            check(
                tau.is_finite() && tau > 0.0,
                "mirostat_tau",
                tau,
                "finite and > 0",
            )?;
            check(
                finite_in(eta, f32::MIN_POSITIVE, 1.0),
                "mirostat_eta",
                eta,
                "in (0, 1]",
            )?;
        }
        for (i, bias) in self.logit_bias.iter().enumerate() {
            if !(bias.bias.is_finite() || bias.bias == f32::NEG_INFINITY) {
                return Err(Error::invalid(format!(
                    "logit_bias entry {i}: bias {} must be finite, or -infinity to ban",
                    bias.bias
                )));
            }
            match &bias.target {
                BiasTarget::Token(id) if *id < 0 => {
                    return Err(Error::invalid(format!(
                        "logit_bias entry {i}: token {id} is negative"
                    )))
                }
                BiasTarget::Text(text) if text.is_empty() || text.contains('\0') => {
                    return Err(Error::invalid(format!(
                        "logit_bias entry {i}: the text is empty or contains NUL"
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Default for Sampling {
    fn default() -> Self {
        Self::DEFAULT
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_every_bad_range_names_its_field() {
        Sampling::DEFAULT.validate().unwrap();
        type Set = Box<dyn Fn(&mut Sampling)>;
        let cases: Vec<(&str, Set)> = vec![
            ("presence_penalty 3", Box::new(|s| s.presence_penalty = 3.0)),
            (
                "frequency_penalty NaN",
                Box::new(|s| s.frequency_penalty = f32::NAN),
            ),
            ("penalty_last_n -2", Box::new(|s| s.penalty_last_n = -2)),
            ("dry_multiplier -1", Box::new(|s| s.dry.multiplier = -1.0)),
            ("dry_base 0.5", Box::new(|s| s.dry.base = 0.5)),
            (
                "dry_allowed_length -1",
                Box::new(|s| s.dry.allowed_length = -1),
            ),
            (
                "dry_penalty_last_n -5",
                Box::new(|s| s.dry.penalty_last_n = -5),
            ),
            (
                "dry sequence breaker 1",
                Box::new(|s| s.dry.sequence_breakers = Some(vec!["a".into(), String::new()])),
            ),
            ("xtc_probability 1.5", Box::new(|s| s.xtc.probability = 1.5)),
            ("xtc_threshold -0.1", Box::new(|s| s.xtc.threshold = -0.1)),
            ("typical_p 0", Box::new(|s| s.typical_p = 0.0)),
            ("top_n_sigma -1", Box::new(|s| s.top_n_sigma = -1.0)),
            (
                "mirostat_tau 0",
                Box::new(|s| s.mirostat = Mirostat::V2 { tau: 0.0, eta: 0.1 }),
            ),
            (
                "mirostat_eta 2",
                Box::new(|s| s.mirostat = Mirostat::V1 { tau: 5.0, eta: 2.0 }),
            ),
            (
                "bias inf",
                Box::new(|s| {
                    s.logit_bias = vec![LogitBias {
                        target: BiasTarget::Token(1),
                        bias: f32::INFINITY,
                    }]
                }),
            ),
            (
                "token -3",
                Box::new(|s| {
                    s.logit_bias = vec![LogitBias {
                        target: BiasTarget::Token(-3),
                        bias: 1.0,
                    }]
                }),
            ),
            (
                "entry 0: the text is empty",
                Box::new(|s| {
                    s.logit_bias = vec![LogitBias {
                        target: BiasTarget::Text(String::new()),
                        bias: 1.0,
                    }]
                }),
            ),
        ];
        for (expected, set) in cases {
            let mut s = Sampling::DEFAULT;
            set(&mut s);
            let error = s.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
        let mut banned = Sampling::DEFAULT;
        banned.logit_bias = vec![LogitBias {
            target: BiasTarget::Text("Paris".into()),
            bias: f32::NEG_INFINITY,
        }];
        banned.validate().unwrap();
    }

    #[test]
    fn logit_bias_json_in_both_shapes() {
        let parsed = LogitBias::parse_json(r#"{"15043": -1.5, "9": 2}"#).unwrap();
        assert!(parsed.contains(&LogitBias {
            target: BiasTarget::Token(15043),
            bias: -1.5
        }));
        let parsed = LogitBias::parse_json(r#"[[7, 0.5], ["Paris", false]]"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                LogitBias {
                    target: BiasTarget::Token(7),
                    bias: 0.5
                },
                LogitBias {
                    target: BiasTarget::Text("Paris".into()),
                    bias: f32::NEG_INFINITY
                },
            ]
        );
        for (bad, expected) in [
            ("{\"x\": 1}", "key \"x\" is not a token id"),
            ("[[1]]", "entry 0 must be a [token id or text, bias] pair"),
            ("[[1, true]]", "must be a number or false"),
            ("[[1.5, 1]]", "token 1.5 is not a token id"),
            ("3", "must be a JSON object"),
            ("{", "not valid JSON"),
        ] {
            let error = LogitBias::parse_json(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn greedy_is_plain_only_without_logit_changes() {
        let mut s = Sampling {
            temperature: 0.0,
            ..Sampling::DEFAULT
        };
        assert!(s.is_plain_greedy());
        assert_eq!(s.history_window(4096), 0);
        s.presence_penalty = 0.5;
        assert!(!s.is_plain_greedy());
        assert_eq!(s.history_window(4096), 64);
        s.dry.multiplier = 0.8;
        assert_eq!(
            s.history_window(4096),
            4096,
            "DRY's -1 is the whole context"
        );
        s.penalty_last_n = 0;
        s.dry.penalty_last_n = 0;
        assert!(s.is_plain_greedy(), "windows of 0 turn both off");
    }
}
