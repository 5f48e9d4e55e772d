//! From a request to the tokens the model is given: the chat template for conversations,
//! the text itself for raw prompts, then llama.cpp's tokenizer.

use llama_cpp_2::token::LlamaToken;

use super::error::{Error, Result};
use super::model::LoadedModel;
use super::request::{Prompt, Request};

impl LoadedModel {
    /// Formats and tokenizes a request exactly as generation will.
    pub fn tokenize(&self, request: &Request) -> Result<Vec<LlamaToken>> {
        request.validate()?;
        let text = match &request.prompt {
            Prompt::Raw(text) => text.clone(),
            Prompt::Chat(messages) => {
                let format = self.format.as_ref().ok_or_else(|| {
                    Error::invalid(format!(
                        "the model ({}) has no chat template llama.cpp can apply; choose a \
                         built-in template such as \"chatml\" in the engine options' \
                         chat_template, or send a raw prompt",
                        self.description.architecture
                    ))
                })?;
                format.apply(&self.model, messages)?
            }
        };
        // BOS is added as the vocabulary says, and special tokens in the text are parsed,
        // as llama.cpp's server does for both chat and raw prompts.
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        if tokens.is_empty() {
            return Err(Error::invalid("the prompt has no tokens"));
        }
        Ok(tokens)
    }
}
