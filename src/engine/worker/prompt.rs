//! From a request to the tokens the model is given: the chat template for conversations,
//! the text itself for raw prompts, then llama.cpp's tokenizer. With
//! [`ContextOverflow::Shift`], a conversation that does not fit loses its oldest exchanges
//! here, and the plan records where the remaining ones start so generation can drop more.

use llama_cpp_2::token::LlamaToken;

use crate::engine::chat::template::{bos_text, plain_grammar, ChatFormat, Rendered, ReplyPlan};
use crate::engine::data::message::{Message, Role};
use crate::engine::data::options::ContextOverflow;
use crate::engine::data::request::{Prompt, Request};
use crate::engine::data::tokens::TokenFlags;
use crate::engine::error::{Error, Result};
use crate::engine::llama::vision::{no_vision_error, ImageSpan};
use crate::engine::worker::model::LoadedModel;
use crate::engine::worker::tokens::checked_tokens;

/// The tokens a request will evaluate, what SHIFT needs to know about them, and how its
/// reply is constrained and read.
pub(crate) struct PromptPlan {
    /// With images, each image position holds its stand-in token (see `vision`).
    pub tokens: Vec<LlamaToken>,
    /// Where the images are in `tokens`, in order.
    pub images: Vec<ImageSpan>,
    /// Tokens of the exchanges dropped to make the prompt fit.
    pub dropped: u32,
    /// Token offsets where each exchange (a user turn and the replies after it) starts, the
    /// last one being the exchange that is being answered; empty when the conversation
    /// cannot be cut at turn boundaries (raw prompts, FAIL, templates whose turns do not
    /// tokenize on their own).
    pub exchange_starts: Vec<usize>,
    pub reply: ReplyPlan,
}

impl LoadedModel {
    /// The prompt text and reply plan of a request, exactly as generation will use them.
    pub fn render(&self, request: &Request) -> Result<Rendered> {
        request.validate()?;
        match &request.prompt {
            Prompt::Raw(text) => Ok(Rendered {
                text: text.clone(),
                reply: plain_reply(request)?,
            }),
            Prompt::Chat(_) => self.chat_format()?.render(&self.model, request, true),
            // The laid-out tokens' text, special tokens written out.
            Prompt::Infill { prefix, suffix } => {
                let layout = self.infill_layout(prefix, suffix)?;
                let ids: Vec<i32> = layout.tokens.iter().map(|t| t.0).collect();
                Ok(Rendered {
                    text: self.detokenize(
                        &ids,
                        TokenFlags {
                            add_special: false,
                            parse_special: true,
                        },
                        "the fill-in-the-middle prompt",
                    )?,
                    reply: plain_reply(request)?,
                })
            }
            // The ids' own text, special tokens written out: what apply_template shows.
            Prompt::Tokens(ids) => Ok(Rendered {
                text: self.detokenize(
                    ids,
                    TokenFlags {
                        add_special: false,
                        parse_special: true,
                    },
                    "prompt_tokens",
                )?,
                reply: plain_reply(request)?,
            }),
        }
    }

    /// The text the model is given for `request`, with the BOS token's text when the
    /// tokenizer adds one (`rigllama_engine_apply_template`).
    pub fn apply_template(&self, request: &Request) -> Result<String> {
        let rendered = self.render(request)?;
        if let Prompt::Tokens(_) | Prompt::Infill { .. } = request.prompt {
            return Ok(rendered.text); // nothing is added to ids; a layout has its BOS
        }
        Ok(bos_text(&self.model).unwrap_or_default() + &rendered.text)
    }

    /// Formats and tokenizes a request exactly as generation will (an image counts as its
    /// tokens).
    pub fn tokenize(&self, request: &Request) -> Result<Vec<LlamaToken>> {
        Ok(self.render_tokens(request)?.0)
    }

    fn render_tokens(
        &self,
        request: &Request,
    ) -> Result<(Vec<LlamaToken>, Vec<ImageSpan>, ReplyPlan)> {
        if let Prompt::Tokens(ids) = &request.prompt {
            // Evaluated as they are: checked, never rendered to text and back.
            request.validate()?;
            let tokens = checked_tokens(&self.model, ids, "prompt_tokens")?;
            return Ok((tokens, Vec::new(), plain_reply(request)?));
        }
        if let Prompt::Infill { prefix, suffix } = &request.prompt {
            request.validate()?;
            let layout = self.infill_layout(prefix, suffix)?;
            return Ok((layout.tokens, Vec::new(), plain_reply(request)?));
        }
        let rendered = self.render(request)?;
        let images = match &request.prompt {
            // In the order their markers appear in the rendered prompt.
            Prompt::Chat(messages) => messages.iter().flat_map(|m| m.images.iter()).collect(),
            Prompt::Raw(_) | Prompt::Tokens(_) | Prompt::Infill { .. } => Vec::new(),
        };
        let (tokens, spans) = if images.is_empty() {
            (self.tokenize_text(&rendered.text), Vec::new())
        } else {
            let vision = self.vision.as_ref().ok_or_else(no_vision_error)?;
            let (tokens, spans) = vision.tokenize(&rendered.text, &images)?;
            if spans
                .last()
                .is_some_and(|s| s.start + s.len == tokens.len())
            {
                return Err(Error::invalid(
                    "the prompt ends with an image; the chat template must put text after it",
                ));
            }
            (tokens, spans)
        };
        if tokens.is_empty() {
            return Err(Error::invalid("the prompt has no tokens"));
        }
        Ok((tokens, spans, rendered.reply))
    }

    fn chat_format(&self) -> Result<&ChatFormat> {
        self.format.as_ref().ok_or_else(|| {
            let why = self
                .description
                .chat_template_error
                .as_ref()
                .map_or(String::new(), |e| format!(" ({e})"));
            Error::invalid(format!(
                "the model ({}) has no chat template llama.cpp can apply{why}; choose a \
                 built-in template such as \"chatml\" in the engine options' \
                 chat_template, or send a raw prompt",
                self.description.architecture
            ))
        })
    }

    fn format_chat(&self, messages: &[Message], open_reply: bool) -> Result<String> {
        self.chat_format()?
            .format(&self.model, messages, open_reply)
    }

    /// BOS is added as the vocabulary says, and special tokens in the text are parsed, as
    /// llama.cpp's server does for both chat and raw prompts.
    fn tokenize_text(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), true, true)
    }

    /// The prompt to evaluate: the whole request, or with SHIFT a conversation whose oldest
    /// exchanges are dropped until it leaves room for the reply. Fails with
    /// [`Error::ContextOverflow`] when even that cannot fit.
    pub fn plan_prompt(&self, request: &Request) -> Result<PromptPlan> {
        let n_ctx = self.n_ctx as usize;
        let overflow = |prompt_tokens: usize| Error::ContextOverflow {
            prompt_tokens,
            n_ctx: self.n_ctx,
        };
        if let Prompt::Infill { prefix, suffix } = &request.prompt {
            request.validate()?;
            let layout = self.infill_layout(prefix, suffix)?;
            if layout.tokens.len() > n_ctx {
                return Err(overflow(layout.tokens.len()));
            }
            return Ok(PromptPlan {
                tokens: layout.tokens,
                images: Vec::new(),
                dropped: layout.dropped,
                exchange_starts: Vec::new(),
                reply: plain_reply(request)?,
            });
        }
        let (tokens, images, reply) = self.render_tokens(request)?;
        match (&request.prompt, self.context_overflow) {
            (Prompt::Chat(_), ContextOverflow::Shift) => {}
            _ if tokens.len() > n_ctx => return Err(overflow(tokens.len())),
            _ => {
                return Ok(PromptPlan {
                    tokens,
                    images,
                    dropped: 0,
                    exchange_starts: Vec::new(),
                    reply,
                })
            }
        }
        // Room for the reply, so the first generated tokens do not shift at once.
        let room = (request.max_tokens.unwrap_or(u32::MAX) as usize).min(n_ctx / 4);
        let original = tokens.len();
        let mut kept = request.clone();
        let mut tokens = tokens;
        let mut images = images;
        let mut reply = reply;
        while tokens.len() + room > n_ctx {
            let Prompt::Chat(messages) = &mut kept.prompt else {
                unreachable!("SHIFT plans only chats")
            };
            if !drop_oldest_exchange(messages) {
                if tokens.len() > n_ctx {
                    return Err(overflow(tokens.len()));
                }
                break; // it fits, with less room for the reply: it will shift mid-reply
            }
            (tokens, images, reply) = self.render_tokens(&kept)?;
        }
        let Prompt::Chat(kept_messages) = &kept.prompt else {
            unreachable!("SHIFT plans only chats")
        };
        let exchange_starts = self.exchange_starts(kept_messages, &tokens)?;
        Ok(PromptPlan {
            dropped: original.saturating_sub(tokens.len()) as u32,
            tokens,
            images,
            exchange_starts,
            reply,
        })
    }

    /// Where each exchange of `messages` starts in `tokens`, found by formatting the turns
    /// before it. Empty if any prefix does not tokenize to a prefix of `tokens`.
    fn exchange_starts(&self, messages: &[Message], tokens: &[LlamaToken]) -> Result<Vec<usize>> {
        let mut starts = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            if message.role != Role::User {
                continue;
            }
            let before = if i == 0 {
                // Nothing before the first turn but what the tokenizer adds (BOS).
                self.tokenize_text("")
            } else {
                // A template that cannot render the turns before (some refuse a conversation
                // ending with an assistant turn) just means no cut points.
                match self.format_chat(&messages[..i], false) {
                    Ok(text) => self.tokenize_text(&text),
                    Err(_) => return Ok(Vec::new()),
                }
            };
            if before.len() > tokens.len() || before[..] != tokens[..before.len()] {
                return Ok(Vec::new());
            }
            starts.push(before.len());
        }
        Ok(starts)
    }
}

/// The reply plan of a prompt sent as it is (raw text or ids): the request's own grammar only.
fn plain_reply(request: &Request) -> Result<ReplyPlan> {
    Ok(ReplyPlan {
        grammar: plain_grammar(request)?,
        ..ReplyPlan::default()
    })
}

/// Removes the oldest exchange after any system turn: its user turn and everything up to the
/// next user turn. False when only the last exchange is left.
fn drop_oldest_exchange(messages: &mut Vec<Message>) -> bool {
    let first = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    let Some(next_user) = (first + 1..messages.len()).find(|&i| messages[i].role == Role::User)
    else {
        return false;
    };
    messages.drain(first..next_user);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(roles: &str) -> Vec<Message> {
        roles
            .chars()
            .map(|c| {
                let role = match c {
                    's' => Role::System,
                    'u' => Role::User,
                    _ => Role::Assistant,
                };
                Message::new(role, c.to_string())
            })
            .collect()
    }

    fn roles(messages: &[Message]) -> String {
        messages
            .iter()
            .map(|m| m.role.as_str().chars().next().unwrap())
            .collect()
    }

    #[test]
    fn the_oldest_exchange_goes_whole_and_the_system_turn_stays() {
        let mut m = turns("suauau");
        assert!(drop_oldest_exchange(&mut m));
        assert_eq!(roles(&m), "suau");
        assert!(drop_oldest_exchange(&mut m));
        assert_eq!(roles(&m), "su");
        assert!(
            !drop_oldest_exchange(&mut m),
            "the last exchange is never dropped"
        );
        let mut m = turns("uaau");
        assert!(drop_oldest_exchange(&mut m));
        assert_eq!(roles(&m), "u");
    }
}
