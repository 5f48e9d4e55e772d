//! Reranking: a reranker model (pooling type rank: llama.cpp's classification head on top)
//! scores how well each document answers a query. Query and document are joined as
//! llama-server joins them for that model (`format_prompt_rerank` in its
//! tools/server/server-common.cpp): the GGUF's `rerank` template with `{query}` and
//! `{document}` filled in, else `[BOS] query [EOS] [SEP] document [EOS]`, each special token
//! where the vocabulary adds it. A score is the head's first output, unnormalised, as
//! llama-server returns it. Runs in the embedding context (embed.rs).

use llama_cpp_2::context::params::LlamaPoolingType;
use llama_cpp_2::token::LlamaToken;

use crate::engine::error::{Error, Result};
use crate::engine::worker::model::LoadedModel;

impl LoadedModel {
    /// The score of each document for `query`, in order.
    pub fn rerank(&mut self, query: &str, documents: &[String]) -> Result<Vec<f32>> {
        if self.pooling() != LlamaPoolingType::Rank {
            return Err(Error::invalid(format!(
                "the model ({}) is not a reranker: its GGUF does not declare pooling type rank \
                 (a classification head, as bge-reranker and Qwen3-Reranker GGUFs do); load a \
                 reranker to use rerank",
                self.description.architecture
            )));
        }
        check_text(query, "query")?;
        for (i, document) in documents.iter().enumerate() {
            check_text(document, &format!("documents[{i}]"))?;
        }
        let limit = self.pooling_limit();
        let mut inputs = Vec::with_capacity(documents.len());
        for (i, document) in documents.iter().enumerate() {
            let tokens = self.rerank_tokens(query, document);
            if tokens.len() > limit {
                return Err(Error::invalid(format!(
                    "the query and documents[{i}] are {} tokens together; a reranker input is \
                     at most {limit}",
                    tokens.len()
                )));
            }
            inputs.push(tokens);
        }
        self.pooled_outputs(&inputs, limit)?
            .into_iter()
            .map(|scores| {
                scores
                    .first()
                    .copied()
                    .ok_or_else(|| Error::Internal("the reranker gave no score".into()))
            })
            .collect()
    }

    /// The tokens the reranker reads for `query` and `document`.
    pub(super) fn rerank_tokens(&self, query: &str, document: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        if let Some(template) = self
            .model
            .chat_template(Some("rerank"))
            .ok()
            .and_then(|t| t.to_string().ok())
        {
            // Replaced in this order, as llama-server does.
            let text = template
                .replace("{query}", query)
                .replace("{document}", document);
            return vocab.tokenize(text.as_bytes(), false, true);
        }
        let eos = if vocab.eos().0 >= 0 {
            vocab.eos()
        } else {
            vocab.sep()
        };
        let mut tokens = Vec::new();
        if vocab.should_add_bos() {
            tokens.push(vocab.bos());
        }
        tokens.extend(vocab.tokenize(query.as_bytes(), false, false));
        if vocab.should_add_eos() {
            tokens.push(eos);
        }
        if vocab.should_add_sep() {
            tokens.push(vocab.sep());
        }
        tokens.extend(vocab.tokenize(document.as_bytes(), false, false));
        if vocab.should_add_eos() {
            tokens.push(eos);
        }
        tokens
    }
}

fn check_text(text: &str, what: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if text.contains('\0') {
        return Err(Error::invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}
