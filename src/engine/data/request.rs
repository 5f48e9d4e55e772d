//! One generation request: what the model is asked to continue, and how tokens are chosen.
//! Both the C ABI and the Rig adapter build these same types.

use crate::engine::data::lora::{check_request_loras, LoraScale};
use crate::engine::data::message::{Message, Role, MEDIA_MARKER};
use crate::engine::data::sampling::Sampling;
use crate::engine::data::tools::{ReasoningMode, Tool, ToolChoice};
use crate::engine::error::{Error, Result};

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Turns formatted with the chat template; must end with a user turn.
    Chat(Vec<Message>),
    /// Text sent verbatim (special tokens in it are parsed, BOS added as the vocab says).
    Raw(String),
    /// Token ids sent verbatim (nothing added): a prompt the caller tokenized itself with
    /// [`Engine::tokenize`](crate::Engine::tokenize).
    Tokens(Vec<i32>),
    /// Fill-in-the-middle: the model writes what goes between `prefix` and `suffix`, laid out
    /// with the vocabulary's FIM tokens as llama-server lays out an `/infill` prompt. Needs a
    /// model trained for it (one whose vocabulary has FIM tokens).
    Infill { prefix: String, suffix: String },
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub prompt: Prompt,
    /// `None` = until the context window is full.
    pub max_tokens: Option<u32>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// Higher runs first. A waiting request of higher priority than a running one takes its
    /// place: that one pauses, its KV cache kept, and resumes after. Ties: arrival order.
    pub priority: i32,
    /// GBNF the reply must match.
    pub grammar: Option<String>,
    /// A JSON Schema the reply (one JSON value) must be valid against.
    pub json_schema: Option<String>,
    /// Functions the model may call (rendered by the chat template's own tool format).
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    pub reasoning: ReasoningMode,
    /// Tokens the reply may think for (-1 = unlimited, the default; 0 = no thinking): when
    /// the thinking block reaches it, the engine writes the template's end tag (as llama.cpp's
    /// reasoning-budget sampler does) and the answer follows. Only templates with a thinking
    /// block (Qwen3, DeepSeek-R1, ...) have one to limit.
    pub reasoning_budget: i32,
    /// Alternatives reported with each generated token's log-probability (0..=[`MAX_LOGPROBS`]);
    /// 0 = none. Any other value makes the request emit
    /// [`Event::Logprobs`](crate::Event::Logprobs) before the text of the tokens they cover.
    pub logprobs: u32,
    /// Prompt-lookup speculative decoding: at most this many tokens, guessed from the
    /// conversation's earlier text (what followed the reply's latest tokens where they
    /// occurred before), are evaluated in the same decode as the next token, and the ones
    /// the sampler confirms are kept; replies that repeat their prompt (edits, quotes,
    /// extraction) come about twice as fast. Each token is still sampled from its own
    /// position's logits with the same random draws, so the sampler's choices are unchanged;
    /// but those logits come from a batch, which llama.cpp's CPU kernels round differently
    /// from a single token, so where two tokens are nearly tied the choice can differ from
    /// plain decoding's (as after a different prefix reuse). Only as many guesses as the
    /// reply's record of right ones makes worth their cost are evaluated, so a reply whose
    /// guesses keep failing runs at plain speed. 0 (the default) = off; at most
    /// [`MAX_DRAFT`]; 8 is what the bench measures. Models whose cache cannot be cut back
    /// (recurrent) never guess. [`Usage::drafted_tokens`](crate::Usage::drafted_tokens) and
    /// [`Usage::accepted_tokens`](crate::Usage::accepted_tokens) report what it did.
    pub draft_max: u32,
    /// The LoRA adapters for this request alone (llama-server's per-request `lora`): `None`
    /// (the default) = the engine-wide adapters at their engine-wide scales; `Some(list)` =
    /// exactly these adapters at these scales, every other loaded adapter off (an empty list
    /// = none at all). Ids are those [`Engine::add_lora`](crate::Engine::add_lora) gave.
    /// Requests whose adapter sets differ never share a decode (they take turns, step by
    /// step), and a conversation's cached prefix is reused only by requests with the same set.
    pub lora: Option<Vec<LoraScale>>,
}

/// The most alternatives a request may ask for per token.
pub const MAX_LOGPROBS: u32 = 20;

/// Off by default: guessed tokens are evaluated in batches, whose rounding can flip a near
/// tie between two tokens (see [`Request::draft_max`]); 8 is the value the bench measures.
pub const DEFAULT_DRAFT_MAX: u32 = 0;
/// The most tokens a request may have guessed per step.
pub const MAX_DRAFT: u32 = 64;

pub const DEFAULT_MAX_TOKENS: u32 = 512;

impl Request {
    /// A one-turn chat request with default sampling.
    pub fn chat(messages: Vec<Message>) -> Self {
        Self {
            prompt: Prompt::Chat(messages),
            max_tokens: Some(DEFAULT_MAX_TOKENS),
            sampling: Sampling::default(),
            stop: Vec::new(),
            priority: 0,
            grammar: None,
            json_schema: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            reasoning: ReasoningMode::Auto,
            reasoning_budget: -1,
            logprobs: 0,
            draft_max: DEFAULT_DRAFT_MAX,
            lora: None,
        }
    }

    pub fn user(prompt: impl Into<String>) -> Self {
        Self::chat(vec![Message::new(Role::User, prompt)])
    }

    pub fn raw(prompt: impl Into<String>) -> Self {
        Self {
            prompt: Prompt::Raw(prompt.into()),
            ..Self::chat(Vec::new())
        }
    }

    /// Token ids sent verbatim (see [`Prompt::Tokens`]).
    pub fn tokens(ids: Vec<i32>) -> Self {
        Self {
            prompt: Prompt::Tokens(ids),
            ..Self::chat(Vec::new())
        }
    }

    /// Fill-in-the-middle: what goes between `prefix` and `suffix` (see [`Prompt::Infill`]).
    pub fn infill(prefix: impl Into<String>, suffix: impl Into<String>) -> Self {
        Self {
            prompt: Prompt::Infill {
                prefix: prefix.into(),
                suffix: suffix.into(),
            },
            ..Self::chat(Vec::new())
        }
    }

    /// Checks every field against its documented range before anything reaches llama.cpp.
    pub fn validate(&self) -> Result<()> {
        match &self.prompt {
            Prompt::Raw(text) => {
                if text.is_empty() {
                    return Err(Error::invalid("the prompt is empty"));
                }
                reject_nul("prompt", text)?;
            }
            Prompt::Infill { prefix, suffix } => {
                if prefix.is_empty() && suffix.is_empty() {
                    return Err(Error::invalid(
                        "the prompt (the text before the gap) and suffix (the text after it) are \
                         both empty",
                    ));
                }
                reject_nul("prompt", prefix)?;
                reject_nul("suffix", suffix)?;
            }
            Prompt::Tokens(tokens) => {
                if tokens.is_empty() {
                    return Err(Error::invalid("prompt_tokens is empty"));
                }
                if let Some((i, id)) = tokens.iter().enumerate().find(|(_, id)| **id < 0) {
                    return Err(Error::invalid(format!(
                        "prompt_tokens[{i}] = {id} is not a token id (ids are 0 to n_vocab - 1)"
                    )));
                }
            }
            Prompt::Chat(messages) => {
                let Some(last) = messages.last() else {
                    return Err(Error::invalid(
                        "the chat has no messages; add at least one user message",
                    ));
                };
                if !matches!(last.role, Role::User | Role::Tool) {
                    return Err(Error::invalid(format!(
                        "the conversation must end with a user or tool turn, but it ends with {}",
                        last.role.as_str()
                    )));
                }
                for (i, message) in messages.iter().enumerate() {
                    reject_nul(&format!("message {i}"), &message.content)?;
                    let markers = message.content.matches(MEDIA_MARKER).count();
                    if markers != message.images.len() {
                        return Err(Error::invalid(format!(
                            "message {i} has {} image(s) but {markers} {MEDIA_MARKER} marker(s) \
                             in its content; put one marker where each image goes (and none \
                             in text)",
                            message.images.len()
                        )));
                    }
                    if !message.tool_calls.is_empty() && message.role != Role::Assistant {
                        return Err(Error::invalid(format!(
                            "message {i} is a {} turn with tool_calls; only assistant turns call tools",
                            message.role.as_str()
                        )));
                    }
                    for call in &message.tool_calls {
                        call.validate(&format!("message {i}"))?;
                    }
                    if message.role == Role::System && i != 0 {
                        return Err(Error::invalid(format!(
                            "message {i} is a system turn; only the first turn may be a system turn"
                        )));
                    }
                }
            }
        }
        if self.max_tokens == Some(0) {
            return Err(Error::invalid(
                "max_tokens Some(0) is not allowed; use a positive count, or None for no limit",
            ));
        }
        self.sampling.validate()?;
        if self.logprobs > MAX_LOGPROBS {
            return Err(Error::invalid(format!(
                "n_logprobs {} is out of range (0..={MAX_LOGPROBS})",
                self.logprobs
            )));
        }
        if self.draft_max > MAX_DRAFT {
            return Err(Error::invalid(format!(
                "draft_max {} is out of range (0 = off, up to {MAX_DRAFT})",
                self.draft_max
            )));
        }
        if let Some(loras) = &self.lora {
            check_request_loras(loras)?;
        }
        for (i, stop) in self.stop.iter().enumerate() {
            if stop.is_empty() {
                return Err(Error::invalid(format!("stop string {i} is empty")));
            }
            reject_nul(&format!("stop string {i}"), stop)?;
        }
        self.validate_structure()
    }

    /// grammar, json_schema and tools: well-formed, and not in combinations that cannot be
    /// honoured together.
    fn validate_structure(&self) -> Result<()> {
        if self.grammar.is_some() && self.json_schema.is_some() {
            return Err(Error::invalid(
                "grammar and json_schema are both set; give one (a json_schema is turned into a grammar)",
            ));
        }
        let calls_possible = !self.tools.is_empty() && self.tool_choice != ToolChoice::None;
        if calls_possible && (self.grammar.is_some() || self.json_schema.is_some()) {
            return Err(Error::invalid(
                "tools cannot be combined with grammar or json_schema (tool calls are constrained \
                 by the tools' own schemas); set tool_choice NONE or drop the grammar",
            ));
        }
        if self.tool_choice == ToolChoice::Required && self.tools.is_empty() {
            return Err(Error::invalid(
                "tool_choice REQUIRED needs at least one tool in tools_json",
            ));
        }
        if !matches!(self.prompt, Prompt::Chat(_)) && !self.tools.is_empty() {
            return Err(Error::invalid(
                "tools need a chat request (the template renders them); this one is raw text, \
                 token ids or fill-in-the-middle",
            ));
        }
        if self.reasoning_budget < -1 {
            return Err(Error::invalid(format!(
                "reasoning_budget {} must be -1 (unlimited), 0 (no thinking) or a token count",
                self.reasoning_budget
            )));
        }
        if let Some(grammar) = &self.grammar {
            reject_nul("grammar", grammar)?;
            crate::engine::llama::grammar::check_grammar(grammar)?;
        }
        if let Some(schema) = &self.json_schema {
            reject_nul("json_schema", schema)?;
            let value = crate::engine::data::grammar_limits::parse_schema(schema)?;
            if !(value.is_object() || value.is_boolean()) {
                return Err(Error::invalid(
                    "json_schema must be a JSON Schema object (or true/false)",
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for tool in &self.tools {
            if !names.insert(tool.name.as_str()) {
                return Err(Error::invalid(format!(
                    "tools_json names tool \"{}\" twice",
                    tool.name
                )));
            }
        }
        Ok(())
    }
}

fn reject_nul(what: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        Err(Error::invalid(format!("{what} contains a NUL character")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Request::user("hi").validate().unwrap();
        Request::raw("hi").validate().unwrap();
    }

    #[test]
    fn out_of_range_sampling_is_refused_with_the_value() {
        let mut r = Request::user("hi");
        r.sampling.temperature = f32::NAN;
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("temperature NaN"));
        let mut r = Request::user("hi");
        r.sampling.top_p = 0.0;
        assert!(r.validate().unwrap_err().to_string().contains("top_p 0"));
        let mut r = Request::user("hi");
        r.max_tokens = Some(0);
        assert!(r.validate().is_err());
        let mut r = Request::user("hi");
        r.stop = vec![String::new()];
        assert!(r.validate().is_err());
    }

    #[test]
    fn conversation_must_end_with_user() {
        let r = Request::chat(vec![
            Message::new(Role::User, "a"),
            Message::new(Role::Assistant, "b"),
        ]);
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ends with assistant"));
    }
}
