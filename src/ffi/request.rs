//! `rigllama_request`: one generation request, its defaults and `_init`, and its conversion
//! (validated and copied, before anything reaches the worker) to the engine's [`Request`].

use std::ffi::c_char;

use super::boundary::{array, array_of_at_most, boundary, optional_str, required_str, Failure};
use super::enums::{rigllama_mirostat, rigllama_reasoning, rigllama_tool_choice};
use super::status::rigllama_status;
use super::versioned::{frozen, init_struct, read_input, versioned_struct};
use crate::engine::{
    Dry, Error, LogitBias, LoraScale, Message, Mirostat, Prompt, ReasoningMode, Request, Role,
    Sampling, Tool, ToolChoice, Xtc, MAX_LORAS,
};

/// Pass as `max_tokens` to generate until the context window is full.
pub const RIGLLAMA_MAX_TOKENS_UNLIMITED: u32 = u32::MAX;
/// Pass as `seed` to use a random seed (reported back in `rigllama_usage.seed`).
pub const RIGLLAMA_SEED_RANDOM: u32 = u32::MAX;

/// One generation request. Initialise with `rigllama_request_init`, then set `prompt` (or
/// `messages_json`). Strings are UTF-8 and copied before the call returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rigllama_request {
    /// `sizeof(rigllama_request)`, set by `rigllama_request_init`.
    pub struct_size: u32,
    /// Most tokens to generate. Default 512; `RIGLLAMA_MAX_TOKENS_UNLIMITED` = until the
    /// context is full; 0 is invalid.
    pub max_tokens: u32,
    /// Default 0.8; 0 = greedy (deterministic). Finite and >= 0.
    pub temperature: f32,
    /// Default 0.95; 0 < top_p <= 1.
    pub top_p: f32,
    /// Default 40; 0 = off.
    pub top_k: i32,
    /// Default 0.05; 0 <= min_p <= 1; 0 = off.
    pub min_p: f32,
    /// Default 1.0 (off); > 0. Applies to the last `penalty_last_n` tokens (64 by default).
    pub repeat_penalty: f32,
    /// Default `RIGLLAMA_SEED_RANDOM`; any other value is a fixed seed.
    pub seed: u32,
    /// 0 (default) = format turns with the chat template; 1 = send `prompt` verbatim (text
    /// completion: special tokens in it are parsed, BOS is added as the model's vocabulary
    /// says). 1 together with `messages_json` or `system_prompt` is invalid.
    pub raw_prompt: u32,
    /// One user turn. May be NULL when `messages_json` is set.
    pub prompt: *const c_char,
    /// Optional system turn. Invalid together with a system message in `messages_json`.
    pub system_prompt: *const c_char,
    /// Optional conversation: `[{"role":"system|user|assistant","content":"..."}]` (content a
    /// string; only the first turn may be a system turn). v0.2: also an assistant turn with
    /// `"tool_calls":[{"id":"...","type":"function","function":{"name":"...","arguments":
    /// "{...}"}}]` (content null or absent) and `{"role":"tool","tool_call_id":"...",
    /// "content":"..."}` (the tool's result). `prompt`, if also set, is appended as the last
    /// user turn. The conversation must end with a user or tool turn.
    pub messages_json: *const c_char,
    /// Optional stop strings (`n_stop` of them). A stop string and everything after it are
    /// never emitted. NULL entries or "" are invalid.
    pub stop: *const *const c_char,
    /// Number of entries in `stop`.
    pub n_stop: usize,
    /// v0.2. Default 0; higher runs first. On an engine with n_seq > 1, a waiting request of
    /// higher priority than a running one takes its place: the running one pauses, its KV
    /// cache kept, and resumes after, losing nothing. Ties: arrival order.
    pub priority: i32,
    /// v0.2. Optional GBNF grammar (llama.cpp's format, start rule `root`) the reply must
    /// match. Invalid GBNF is refused with the parser's reason before decoding. Not with
    /// `json_schema`, nor with tools the model may call.
    pub grammar: *const c_char,
    /// v0.2. Optional JSON Schema: the reply is one JSON value valid against it (through a
    /// grammar made from it). Not with `grammar`, nor with tools the model may call.
    pub json_schema: *const c_char,
    /// v0.2. Optional tools, OpenAI's shape:
    /// `[{"type":"function","function":{"name":"...","description":"...","parameters":{JSON
    /// Schema}}}, ...]`. Rendered by the chat template's own tool format (or the generic JSON
    /// format for templates without one); the calls come back as `tool_calls` in
    /// `rigllama_engine_chat`, TOOL_CALL job events and finish reason TOOL_CALLS.
    pub tools_json: *const c_char,
    /// v0.2. One of `RIGLLAMA_TOOL_CHOICE_*`; default AUTO.
    pub tool_choice: i32,
    /// v0.2. One of `RIGLLAMA_REASONING_*`; default AUTO.
    pub reasoning: i32,
    /// v0.2. Subtracted from the logit of every token seen in the last `penalty_last_n`
    /// tokens (prompt included). Default 0 (off); -2..2.
    pub presence_penalty: f32,
    /// v0.2. Subtracted from a token's logit once per time it was seen in that window.
    /// Default 0 (off); -2..2.
    pub frequency_penalty: f32,
    /// v0.2. The window of `repeat_penalty`, `presence_penalty` and `frequency_penalty`, in
    /// tokens. Default 64 (v0.1's); -1 = the whole context; 0 = penalties off.
    pub penalty_last_n: i32,
    /// v0.2. DRY: penalises tokens that would extend a repetition of earlier text beyond
    /// `dry_allowed_length` tokens by `dry_multiplier * dry_base^(length - allowed)`.
    /// Default 0 (off); finite, >= 0 (0.8 is a common choice).
    pub dry_multiplier: f32,
    /// v0.2. Default 1.75; >= 1.
    pub dry_base: f32,
    /// v0.2. Repetitions up to this many tokens are free. Default 2; >= 0.
    pub dry_allowed_length: i32,
    /// v0.2. Tokens DRY scans for repetitions. Default -1 = the whole context; 0 = off.
    pub dry_penalty_last_n: i32,
    /// v0.2. XTC: with this probability per token, removes every candidate above
    /// `xtc_threshold` except the least likely of them. Default 0 (off); 0..1.
    pub xtc_probability: f32,
    /// v0.2. Default 0.1; 0..1 (above 0.5 nothing is ever removed).
    pub xtc_threshold: f32,
    /// v0.2. Locally typical sampling. Default 1 (off); 0 < typical_p <= 1.
    pub typical_p: f32,
    /// v0.2. Keeps tokens within this many standard deviations of the highest logit.
    /// Default 0 (off); >= 0.
    pub top_n_sigma: f32,
    /// v0.2. One of `RIGLLAMA_MIROSTAT_*`; default OFF.
    pub mirostat: i32,
    /// v0.2. Mirostat's target surprise. Default 5; > 0.
    pub mirostat_tau: f32,
    /// v0.2. Mirostat's learning rate. Default 0.1; 0 < eta <= 1.
    pub mirostat_eta: f32,
    /// v0.2. 0 (default) = none; 1..20 = each generated token's log-probability and this
    /// many most likely alternatives, from the distribution the token was drawn from (at
    /// temperature 0: the model's own, after the bias and penalties). Delivered as
    /// RIGLLAMA_EVENT_KIND_LOGPROBS job events and as `"logprobs":{"content":[...]}` in
    /// `rigllama_engine_chat`'s JSON.
    pub n_logprobs: u32,
    /// v0.2. Optional logit bias as JSON, applied before every other sampler: an object of
    /// token ids, `{"15043": -1.5, "9": 2}` (OpenAI's shape), or an array of pairs whose first
    /// element is a token id or a text (each token of the text, tokenized alone, is biased):
    /// `[[15043, -1.5], ["Paris", false]]`. A bias is a finite number; `false` bans.
    pub logit_bias_json: *const c_char,
    /// v0.2. DRY's sequence breakers (`n_dry_sequence_breakers` non-empty strings): texts that
    /// end a repetition. NULL (default) = llama.cpp's `"\n"`, `":"`, `"\""`, `"*"`.
    pub dry_sequence_breakers: *const *const c_char,
    /// v0.2. Entries in `dry_sequence_breakers`.
    pub n_dry_sequence_breakers: usize,
    /// v0.2. Prompt-lookup speculative decoding: up to this many tokens, guessed from the
    /// conversation's earlier text (what followed the reply's latest tokens where they
    /// occurred before), are evaluated in the same decode as the next token; the ones the
    /// sampler confirms cost no decode of their own, so replies that repeat their prompt
    /// (edits, quotes, extraction) come about twice as fast. Each token is still sampled from
    /// its own position's logits with the same random draws, but those logits come from a
    /// batch, which llama.cpp's CPU kernels round differently from a single token: where two
    /// tokens are nearly tied, the choice can differ from plain decoding's. Only as many
    /// guesses as the reply's record of right ones makes worth their cost are evaluated, so a
    /// reply whose guesses keep failing runs at plain speed. Default 0 (off); at most 64; 8 is
    /// what the bench measures. `rigllama_usage.drafted_tokens` and `accepted_tokens` report
    /// what it did.
    pub draft_max: u32,
    /// v0.3. The prompt as token ids, sent verbatim: nothing is added (tokenize with
    /// `RIGLLAMA_TOKENIZE_ADD_SPECIAL` for the BOS a raw prompt gets). Leave `prompt`,
    /// `messages_json` and `system_prompt` NULL. An id outside the vocabulary is refused with
    /// INVALID_ARGUMENT naming its index and value. Default NULL.
    pub prompt_tokens: *const i32,
    /// v0.3. Entries in `prompt_tokens` (at most 1,048,576); default 0.
    pub n_prompt_tokens: usize,
    /// v0.3. Fill-in-the-middle: the text after the gap, with `prompt` the text before it
    /// (either may be "", not both) and `raw_prompt` 1. The prompt is laid out with the
    /// vocabulary's FIM tokens as llama-server lays out an `/infill` prompt (a repository header
    /// where the vocabulary has FIM_REP/FIM_SEP, BOS where it adds one, then
    /// `[FIM_PRE]prefix[FIM_SUF]suffix[FIM_MID]`; the prefix keeps at most its last 3/4 of
    /// `n_batch` tokens and the suffix its first `n_batch`/4 - 2, the cut counted in
    /// `rigllama_usage.dropped_tokens`); the reply is the middle. A model whose vocabulary has
    /// no FIM tokens is refused with INVALID_ARGUMENT. Default NULL (no fill-in-the-middle).
    pub suffix: *const c_char,
    /// v0.3. Adaptive-p (llama.cpp's `adaptive_p` sampler): the draw favours tokens near this
    /// probability, adapting to what was chosen; it ends the chain in place of the plain draw
    /// (after min-p, temperature and the rest, as llama.cpp's common sampler places it; min-p
    /// alone before it is what llama.cpp suggests). In [0, 1]; negative = off (default -1).
    /// Not with mirostat; no effect at temperature 0.
    pub adaptive_target: f32,
    /// v0.3. Adaptive-p's decay: it remembers about 1 / (1 - decay) tokens; in [0, 0.99];
    /// default 0.90.
    pub adaptive_decay: f32,
    /// v0.3. Tokens the reply may think for: -1 = unlimited (default), 0 = no thinking, N.
    /// When the template's thinking block (Qwen3's and DeepSeek-R1's `<think>`, ...) reaches
    /// it, the engine writes the block's end tag, as llama.cpp's reasoning-budget sampler does,
    /// and the answer follows. A template without a thinking block has nothing to limit; with
    /// a `grammar` or `json_schema` the budget is not applied.
    pub reasoning_budget: i32,
    /// v0.3. This request's LoRA adapters (ids from `rigllama_engine_add_lora`), in place of
    /// the engine-wide ones: NULL (default) = the engine-wide adapters at their engine-wide
    /// scales; otherwise exactly these `n_loras` adapters at `lora_scales`, every other loaded
    /// adapter off (non-NULL with `n_loras` 0 = no adapter at all). An id not loaded, an id
    /// given twice, or a scale outside ±100 → INVALID_ARGUMENT naming it. Requests with
    /// different adapter sets never share a decode (they take turns step by step), and a
    /// cached prefix is reused only by requests with the same set.
    pub lora_ids: *const u32,
    /// v0.3. The scale of each adapter in `lora_ids` (0 = no effect, 1 = as trained); required
    /// when `n_loras` > 0.
    pub lora_scales: *const f32,
    /// v0.3. Entries in `lora_ids` and `lora_scales` (at most 64).
    pub n_loras: usize,
}

/// Fills `request` with defaults for `struct_size` bytes (pass `sizeof *request`).
#[no_mangle]
pub unsafe extern "C" fn rigllama_request_init(
    request: *mut rigllama_request,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(request, struct_size) })
}

versioned_struct!(input rigllama_request {
    v0_1_size: frozen(80, 56),
    v0_1_last: n_stop,
    max_tokens: crate::engine::DEFAULT_MAX_TOKENS,
    temperature: SAMPLING.temperature,
    top_p: SAMPLING.top_p,
    top_k: SAMPLING.top_k,
    min_p: SAMPLING.min_p,
    repeat_penalty: SAMPLING.repeat_penalty,
    seed: RIGLLAMA_SEED_RANDOM,
    raw_prompt: 0,
    prompt: std::ptr::null(),
    system_prompt: std::ptr::null(),
    messages_json: std::ptr::null(),
    stop: std::ptr::null(),
    n_stop: 0,
    priority: 0,
    grammar: std::ptr::null(),
    json_schema: std::ptr::null(),
    tools_json: std::ptr::null(),
    tool_choice: rigllama_tool_choice::Auto as i32,
    reasoning: rigllama_reasoning::Auto as i32,
    presence_penalty: SAMPLING.presence_penalty,
    frequency_penalty: SAMPLING.frequency_penalty,
    penalty_last_n: SAMPLING.penalty_last_n,
    dry_multiplier: SAMPLING.dry.multiplier,
    dry_base: SAMPLING.dry.base,
    dry_allowed_length: SAMPLING.dry.allowed_length,
    dry_penalty_last_n: SAMPLING.dry.penalty_last_n,
    xtc_probability: SAMPLING.xtc.probability,
    xtc_threshold: SAMPLING.xtc.threshold,
    typical_p: SAMPLING.typical_p,
    top_n_sigma: SAMPLING.top_n_sigma,
    mirostat: rigllama_mirostat::Off as i32,
    mirostat_tau: crate::engine::Mirostat::DEFAULT_TAU,
    mirostat_eta: crate::engine::Mirostat::DEFAULT_ETA,
    n_logprobs: 0,
    logit_bias_json: std::ptr::null(),
    dry_sequence_breakers: std::ptr::null(),
    n_dry_sequence_breakers: 0,
    draft_max: crate::engine::DEFAULT_DRAFT_MAX,
    prompt_tokens: std::ptr::null(),
    n_prompt_tokens: 0,
    suffix: std::ptr::null(),
    adaptive_target: -1.0,
    adaptive_decay: crate::engine::AdaptiveP::DEFAULT_DECAY,
    reasoning_budget: -1,
    lora_ids: std::ptr::null(),
    lora_scales: std::ptr::null(),
    n_loras: 0,
});

const SAMPLING: crate::engine::Sampling = crate::engine::Sampling::DEFAULT;

pub(crate) unsafe fn read_request(request: *const rigllama_request) -> Result<Request, Failure> {
    let raw = unsafe { read_input(request) }?;
    let prompt = unsafe { optional_str(raw.prompt, "request->prompt") }?;
    let system = unsafe { optional_str(raw.system_prompt, "request->system_prompt") }?;
    let messages_json = unsafe { optional_str(raw.messages_json, "request->messages_json") }?;
    let suffix = unsafe { optional_str(raw.suffix, "request->suffix") }?;
    let prompt = if let Some(suffix) = suffix {
        if raw.raw_prompt != 1 || !raw.prompt_tokens.is_null() || raw.n_prompt_tokens > 0 {
            return Err(Error::invalid(
                "suffix (fill-in-the-middle) needs raw_prompt 1, with prompt the text before the \
                 gap; prompt_tokens cannot be combined with it",
            )
            .into());
        }
        if messages_json.is_some() || system.is_some() {
            return Err(Error::invalid(
                "suffix (fill-in-the-middle) cannot be combined with messages_json or \
                 system_prompt",
            )
            .into());
        }
        Prompt::Infill {
            prefix: prompt.ok_or_else(|| {
                Failure::null("request->prompt (the text before the gap; \"\" for none)")
            })?,
            suffix,
        }
    } else if !raw.prompt_tokens.is_null() || raw.n_prompt_tokens > 0 {
        if prompt.is_some() || messages_json.is_some() || system.is_some() {
            return Err(Error::invalid(
                "prompt_tokens is set: leave prompt, messages_json and system_prompt NULL",
            )
            .into());
        }
        if raw.n_prompt_tokens == 0 {
            return Err(Error::invalid("request->prompt_tokens is set but its count is 0").into());
        }
        let ids = unsafe {
            array_of_at_most(
                raw.prompt_tokens,
                raw.n_prompt_tokens,
                crate::engine::MAX_N_CTX as usize,
                "request->prompt_tokens",
            )
        }?;
        Prompt::Tokens(ids.to_vec())
    } else {
        match raw.raw_prompt {
            0 => {
                let mut messages = match &messages_json {
                    Some(json) => Message::parse_openai_list(json)?,
                    None => Vec::new(),
                };
                if let Some(system) = system {
                    if messages.first().is_some_and(|m| m.role == Role::System) {
                        return Err(Error::invalid(
                        "system_prompt is set and messages_json also has a system message; use one",
                    )
                    .into());
                    }
                    messages.insert(0, Message::new(Role::System, system));
                }
                if let Some(prompt) = prompt {
                    messages.push(Message::new(Role::User, prompt));
                }
                if messages_json.is_none() && messages.iter().all(|m| m.role != Role::User) {
                    return Err(Failure::null(
                        "request->prompt (and request->messages_json)",
                    ));
                }
                if messages.is_empty() {
                    return Err(Error::invalid(
                        "messages_json is an empty array and prompt is NULL; set prompt or add a \
                     user message to messages_json",
                    )
                    .into());
                }
                Prompt::Chat(messages)
            }
            1 => {
                if messages_json.is_some() || system.is_some() {
                    return Err(Error::invalid(
                        "raw_prompt 1 sends prompt verbatim; it cannot be combined with \
                     messages_json or system_prompt",
                    )
                    .into());
                }
                Prompt::Raw(prompt.ok_or_else(|| Failure::null("request->prompt"))?)
            }
            other => {
                return Err(Error::invalid(format!("raw_prompt {other} must be 0 or 1")).into());
            }
        }
    };
    if raw.max_tokens == 0 {
        return Err(Error::invalid(
            "max_tokens 0 is not allowed; use a positive count or RIGLLAMA_MAX_TOKENS_UNLIMITED",
        )
        .into());
    }
    let stop = unsafe { string_array(raw.stop, raw.n_stop, "request->stop") }?;
    let lora = unsafe { request_loras(&raw) }?;
    let request = Request {
        prompt,
        max_tokens: (raw.max_tokens != RIGLLAMA_MAX_TOKENS_UNLIMITED).then_some(raw.max_tokens),
        sampling: Sampling {
            temperature: raw.temperature,
            top_p: raw.top_p,
            top_k: raw.top_k,
            min_p: raw.min_p,
            repeat_penalty: raw.repeat_penalty,
            presence_penalty: raw.presence_penalty,
            frequency_penalty: raw.frequency_penalty,
            penalty_last_n: raw.penalty_last_n,
            dry: Dry {
                multiplier: raw.dry_multiplier,
                base: raw.dry_base,
                allowed_length: raw.dry_allowed_length,
                penalty_last_n: raw.dry_penalty_last_n,
                sequence_breakers: if raw.dry_sequence_breakers.is_null()
                    && raw.n_dry_sequence_breakers == 0
                {
                    None
                } else {
                    Some(unsafe {
                        string_array(
                            raw.dry_sequence_breakers,
                            raw.n_dry_sequence_breakers,
                            "request->dry_sequence_breakers",
                        )
                    }?)
                },
            },
            xtc: Xtc {
                probability: raw.xtc_probability,
                threshold: raw.xtc_threshold,
            },
            typical_p: raw.typical_p,
            top_n_sigma: raw.top_n_sigma,
            adaptive_p: (raw.adaptive_target >= 0.0 || raw.adaptive_target.is_nan()).then_some(
                crate::engine::AdaptiveP {
                    target: raw.adaptive_target,
                    decay: raw.adaptive_decay,
                },
            ),
            mirostat: match rigllama_mirostat::from_repr(raw.mirostat) {
                Some(rigllama_mirostat::Off) => Mirostat::Off,
                Some(rigllama_mirostat::V1) => Mirostat::V1 {
                    tau: raw.mirostat_tau,
                    eta: raw.mirostat_eta,
                },
                Some(rigllama_mirostat::V2) => Mirostat::V2 {
                    tau: raw.mirostat_tau,
                    eta: raw.mirostat_eta,
                },
                None => {
                    return Err(Error::invalid(format!(
                        "mirostat {} is not a RIGLLAMA_MIROSTAT_* value (0 OFF, 1 V1, 2 V2)",
                        raw.mirostat
                    ))
                    .into())
                }
            },
            logit_bias: match unsafe {
                optional_str(raw.logit_bias_json, "request->logit_bias_json")
            }? {
                Some(json) => LogitBias::parse_json(&json)?,
                None => Vec::new(),
            },
            seed: (raw.seed != RIGLLAMA_SEED_RANDOM).then_some(raw.seed),
        },
        logprobs: raw.n_logprobs,
        draft_max: raw.draft_max,
        lora,
        stop,
        priority: raw.priority,
        grammar: unsafe { optional_str(raw.grammar, "request->grammar") }?,
        json_schema: unsafe { optional_str(raw.json_schema, "request->json_schema") }?,
        tools: match unsafe { optional_str(raw.tools_json, "request->tools_json") }? {
            Some(json) => Tool::parse_openai_list(&json)?,
            None => Vec::new(),
        },
        tool_choice: match rigllama_tool_choice::from_repr(raw.tool_choice) {
            Some(rigllama_tool_choice::Auto) => ToolChoice::Auto,
            Some(rigllama_tool_choice::None) => ToolChoice::None,
            Some(rigllama_tool_choice::Required) => ToolChoice::Required,
            None => {
                return Err(Error::invalid(format!(
                "tool_choice {} is not a RIGLLAMA_TOOL_CHOICE_* value (0 AUTO, 1 NONE, 2 REQUIRED)",
                raw.tool_choice
            ))
                .into())
            }
        },
        reasoning_budget: raw.reasoning_budget,
        reasoning: match rigllama_reasoning::from_repr(raw.reasoning) {
            Some(rigllama_reasoning::Auto) => ReasoningMode::Auto,
            Some(rigllama_reasoning::Off) => ReasoningMode::Off,
            Some(rigllama_reasoning::On) => ReasoningMode::On,
            None => {
                return Err(Error::invalid(format!(
                    "reasoning {} is not a RIGLLAMA_REASONING_* value (0 AUTO, 1 OFF, 2 ON)",
                    raw.reasoning
                ))
                .into())
            }
        },
    };
    request.validate()?;
    Ok(request)
}

/// `lora_ids`/`lora_scales`/`n_loras`: `None` (the engine-wide adapters) when `lora_ids` is
/// NULL.
unsafe fn request_loras(raw: &rigllama_request) -> Result<Option<Vec<LoraScale>>, Failure> {
    if raw.lora_ids.is_null() {
        if raw.n_loras > 0 || !raw.lora_scales.is_null() {
            return Err(Error::invalid(format!(
                "request->lora_scales or n_loras ({}) is set but lora_ids is NULL; set lora_ids \
                 (or leave all three unset for the engine-wide adapters)",
                raw.n_loras
            ))
            .into());
        }
        return Ok(None);
    }
    let ids =
        unsafe { array_of_at_most(raw.lora_ids, raw.n_loras, MAX_LORAS, "request->lora_ids") }?;
    let scales = unsafe {
        array_of_at_most(
            raw.lora_scales,
            raw.n_loras,
            MAX_LORAS,
            "request->lora_scales",
        )
    }?;
    Ok(Some(
        ids.iter()
            .zip(scales)
            .map(|(&id, &scale)| LoraScale { id, scale })
            .collect(),
    ))
}

/// Stop strings and DRY sequence breakers beyond this count are refused (each is scanned
/// for every generated piece).
const MAX_STRINGS: usize = 64;

/// `n` strings at `strings` (an array of non-NULL UTF-8 pointers), copied.
unsafe fn string_array(
    strings: *const *const c_char,
    n: usize,
    what: &str,
) -> Result<Vec<String>, Failure> {
    if n > MAX_STRINGS {
        return Err(
            Error::invalid(format!("{what} has {n} entries, more than {MAX_STRINGS}")).into(),
        );
    }
    unsafe { array(strings, n, what) }?
        .iter()
        .enumerate()
        .map(|(i, &entry)| {
            if entry.is_null() {
                return Err(Error::invalid(format!("{what}[{i}] is NULL")).into());
            }
            unsafe { required_str(entry, &format!("{what}[{i}]")) }
        })
        .collect()
}
