//! C structs to engine types. Everything is validated and copied here, before the call
//! returns and before anything reaches the worker.

use std::ffi::c_char;
use std::path::PathBuf;

use super::boundary::{optional_str, required_str, Failure};
use super::enums::{
    rigllama_context_overflow, rigllama_flash_attention, rigllama_kv_type, rigllama_mirostat,
    rigllama_reasoning, rigllama_tool_choice,
};
use super::versioned::{
    read_input, rigllama_engine_options, rigllama_request, RIGLLAMA_MAX_TOKENS_UNLIMITED,
    RIGLLAMA_SEED_RANDOM,
};
use crate::engine::{
    Checkpointing, ContextOverflow, Dry, EngineOptions, Error, Fit, FlashAttention, KvType,
    LogitBias, Message, Mirostat, Prompt, ReasoningMode, Request, Role, Sampling, Tool, ToolChoice,
    Xtc,
};

pub(crate) unsafe fn engine_options(
    options: *const rigllama_engine_options,
) -> Result<(EngineOptions, rigllama_engine_options), Failure> {
    let raw = unsafe { read_input(options) }?;
    let model_path = unsafe { required_str(raw.model_path, "options->model_path") }?;
    let chat_template = unsafe { optional_str(raw.chat_template, "options->chat_template") }?;
    let mmproj_path = unsafe { optional_str(raw.mmproj_path, "options->mmproj_path") }?;
    if raw.n_threads < 0 {
        return Err(Error::invalid(format!(
            "n_threads {} is negative; use 0 for the CPUs available",
            raw.n_threads
        ))
        .into());
    }
    if raw.n_threads > crate::engine::MAX_THREADS as i32 {
        return Err(Error::invalid(format!(
            "n_threads {} is out of range (0 = the CPUs available, or 1..={})",
            raw.n_threads,
            crate::engine::MAX_THREADS
        ))
        .into());
    }
    if raw.n_gpu_layers < -1 {
        return Err(Error::invalid(format!(
            "n_gpu_layers {} is invalid; use -1 (all), 0 (CPU only) or a layer count",
            raw.n_gpu_layers
        ))
        .into());
    }
    let options = EngineOptions {
        model_path: PathBuf::from(model_path),
        n_ctx: raw.n_ctx,
        n_batch: raw.n_batch,
        n_threads: (raw.n_threads > 0).then_some(raw.n_threads as u32),
        n_gpu_layers: (raw.n_gpu_layers >= 0).then_some(raw.n_gpu_layers as u32),
        chat_template,
        context_overflow: match rigllama_context_overflow::from_repr(raw.context_overflow) {
            Some(rigllama_context_overflow::Fail) => ContextOverflow::Fail,
            Some(rigllama_context_overflow::Shift) => ContextOverflow::Shift,
            None => {
                return Err(Error::invalid(format!(
                "context_overflow {} is not a RIGLLAMA_CONTEXT_OVERFLOW_* value (0 FAIL, 1 SHIFT)",
                raw.context_overflow
            ))
                .into())
            }
        },
        n_seq: raw.n_seq,
        type_k: kv_type(raw.type_k, "type_k")?,
        type_v: kv_type(raw.type_v, "type_v")?,
        flash_attention: match rigllama_flash_attention::from_repr(raw.flash_attention) {
            Some(rigllama_flash_attention::Auto) => FlashAttention::Auto,
            Some(rigllama_flash_attention::Off) => FlashAttention::Off,
            Some(rigllama_flash_attention::On) => FlashAttention::On,
            None => {
                return Err(Error::invalid(format!(
                    "flash_attention {} is not a RIGLLAMA_FLASH_ATTENTION_* value (0 AUTO, 1 OFF, 2 ON)",
                    raw.flash_attention
                ))
                .into())
            }
        },
        fit: match raw.fit {
            0 => None,
            1 => Some(Fit {
                min_ctx: raw.fit_min_ctx,
                margins_mib: match unsafe {
                    array(raw.fit_margins_mib, raw.n_fit_margins_mib, "options->fit_margins_mib")
                }? {
                    [] => vec![crate::engine::DEFAULT_FIT_MARGIN_MIB],
                    margins => margins.to_vec(),
                },
            }),
            other => return Err(Error::invalid(format!("fit {other} must be 0 or 1")).into()),
        },
        checkpoints: Checkpointing {
            max_count: raw.max_checkpoints,
            max_bytes: raw.max_checkpoint_bytes,
        },
        mmproj_path: mmproj_path.map(PathBuf::from),
    };
    options.validate()?;
    Ok((options, raw))
}

pub(crate) unsafe fn request(request: *const rigllama_request) -> Result<Request, Failure> {
    let raw = unsafe { read_input(request) }?;
    let prompt = unsafe { optional_str(raw.prompt, "request->prompt") }?;
    let system = unsafe { optional_str(raw.system_prompt, "request->system_prompt") }?;
    let messages_json = unsafe { optional_str(raw.messages_json, "request->messages_json") }?;
    let prompt = match raw.raw_prompt {
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
    };
    if raw.max_tokens == 0 {
        return Err(Error::invalid(
            "max_tokens 0 is not allowed; use a positive count or RIGLLAMA_MAX_TOKENS_UNLIMITED",
        )
        .into());
    }
    let stop = unsafe { string_array(raw.stop, raw.n_stop, "request->stop") }?;
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

/// The caller's array of `n` items at `items` (NULL is fine when `n` is 0).
unsafe fn array<'a, T>(items: *const T, n: usize, what: &str) -> Result<&'a [T], Failure> {
    if n == 0 {
        return Ok(&[]);
    }
    if items.is_null() {
        return Err(Failure::null(&format!("{what} (its count is {n})")));
    }
    if n > (1 << 16) {
        return Err(Error::invalid(format!("{what} has {n} entries; that cannot be right")).into());
    }
    // SAFETY: the caller promises `n` readable items at `items`.
    Ok(unsafe { std::slice::from_raw_parts(items, n) })
}

fn kv_type(value: i32, field: &str) -> Result<KvType, Failure> {
    Ok(match rigllama_kv_type::from_repr(value) {
        Some(rigllama_kv_type::F16) => KvType::F16,
        Some(rigllama_kv_type::F32) => KvType::F32,
        Some(rigllama_kv_type::Bf16) => KvType::BF16,
        Some(rigllama_kv_type::Q8_0) => KvType::Q8_0,
        Some(rigllama_kv_type::Q4_0) => KvType::Q4_0,
        Some(rigllama_kv_type::Q4_1) => KvType::Q4_1,
        Some(rigllama_kv_type::Q5_0) => KvType::Q5_0,
        Some(rigllama_kv_type::Q5_1) => KvType::Q5_1,
        Some(rigllama_kv_type::Iq4Nl) => KvType::Iq4Nl,
        None => {
            return Err(Error::invalid(format!(
                "{field} {value} is not a RIGLLAMA_KV_TYPE_* value (0..8)"
            ))
            .into())
        }
    })
}
