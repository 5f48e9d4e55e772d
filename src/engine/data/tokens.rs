//! Text to token ids and back, as a caller who works with ids sees them, and the special
//! tokens of a vocabulary.

/// How [`Engine::tokenize`](crate::Engine::tokenize) and
/// [`Engine::detokenize`](crate::Engine::detokenize) treat special tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenFlags {
    /// Tokenize: add BOS/EOS as the vocabulary wants. Detokenize: leave out the BOS/EOS such
    /// a tokenization added.
    pub add_special: bool,
    /// Tokenize: special-token text (`<start_of_turn>`) becomes its token, else it is plain
    /// text. Detokenize: special tokens come out as their text, else as nothing.
    pub parse_special: bool,
}

impl TokenFlags {
    /// Both on: what a raw prompt gets, and the exact inverse for detokenize.
    pub const ALL: TokenFlags = TokenFlags {
        add_special: true,
        parse_special: true,
    };
}

/// The ids of the vocabulary's special tokens; `None` where it has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpecialTokens {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos: Option<i32>,
    /// End of turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eot: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sep: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nl: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad: Option<i32>,
    /// Fill-in-the-middle: before the prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fim_pre: Option<i32>,
    /// Fill-in-the-middle: before the suffix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fim_suf: Option<i32>,
    /// Fill-in-the-middle: where the middle is generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fim_mid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fim_pad: Option<i32>,
    /// Fill-in-the-middle, repository level: before the repository name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fim_rep: Option<i32>,
    /// Fill-in-the-middle, repository level: before each file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fim_sep: Option<i32>,
}
