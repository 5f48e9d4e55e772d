//! A conversation's turns (role, text, images, tool calls and results) and the assistant's
//! reply as [`Engine::chat`](crate::Engine::chat) returns it.

use serde_json::Value;

use crate::engine::data::logprobs::TokenLogprob;
use crate::engine::data::tools::ToolCall;
use crate::engine::error::{Error, Result};

/// Who said a turn of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    /// A tool's result, answering the assistant's call with the same id.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// Where an image sits in a message's `content`: one marker per image, in order (mtmd's
/// default media marker).
pub const MEDIA_MARKER: &str = "<__media__>";

/// An image file's bytes (PNG, JPEG, GIF, BMP or WebP),
/// given to a vision model through its projector (engine option `mmproj_path`; needs the
/// `mtmd` cargo feature). Decoded when the request runs.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    bytes: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} bytes)", self.bytes.len())
    }
}

impl Image {
    /// An image from its file's bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Image> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(Error::invalid("the image is empty (0 bytes)"));
        }
        Ok(Image {
            bytes: bytes.into(),
        })
    }

    /// An image read from a file now.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Image> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::invalid(format!("cannot read the image {}: {e}", path.display()))
        })?;
        Image::from_bytes(bytes)
            .map_err(|_| Error::invalid(format!("the image {} is empty", path.display())))
    }

    /// An image from what OpenAI's `image_url.url` holds: a `data:` URL with base64 content
    /// (`data:image/png;base64,...`), a `file://` URL, or a local path. Web URLs are not
    /// fetched.
    pub fn from_url(url: &str) -> Result<Image> {
        if let Some(data) = url.strip_prefix("data:") {
            let Some((kind, payload)) = data.split_once(',') else {
                return Err(Error::invalid(
                    "the image's data: URL has no ',' before its data",
                ));
            };
            if !kind.ends_with(";base64") {
                return Err(Error::invalid(format!(
                    "the image's data: URL is \"{kind}\"; only base64 data is read \
                     (data:image/png;base64,...)"
                )));
            }
            return Image::from_base64(payload);
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(Error::invalid(
                "images are not fetched from the web; pass a data: URL (base64) or a local \
                 file path",
            ));
        }
        Image::from_file(url.strip_prefix("file://").unwrap_or(url))
    }

    /// An image from its file's bytes in base64 (standard alphabet, padded).
    pub fn from_base64(data: &str) -> Result<Image> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| Error::invalid(format!("the image's base64 data is invalid: {e}")))?;
        Image::from_bytes(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    /// The text; with images, one [`MEDIA_MARKER`] where each goes.
    pub content: String,
    /// Images, in the order of the markers in `content`.
    pub images: Vec<Image>,
    /// Assistant turns: the tools it called.
    pub tool_calls: Vec<ToolCall>,
    /// Tool turns: the id of the call this answers.
    pub tool_call_id: Option<String>,
    /// Tool turns: the tool's name, for templates that show it.
    pub name: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            images: Vec::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A turn with images before its text (a marker for each is put in `content`).
    pub fn with_images(role: Role, images: Vec<Image>, text: &str) -> Self {
        let content = MEDIA_MARKER.repeat(images.len()) + text;
        Self {
            images,
            ..Self::new(role, content)
        }
    }

    /// An assistant turn that called tools.
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// A tool's result for the call `call_id`.
    pub fn tool_result(
        call_id: impl Into<String>,
        name: Option<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            name,
            ..Self::new(Role::Tool, content)
        }
    }

    /// The OpenAI chat-message shape templates are rendered from.
    pub fn to_openai_json(&self) -> serde_json::Value {
        let mut m = serde_json::json!({ "role": self.role.as_str(), "content": self.content });
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self
                .tool_calls
                .iter()
                .map(ToolCall::to_openai_json)
                .collect();
        }
        if let Some(id) = &self.tool_call_id {
            m["tool_call_id"] = id.clone().into();
        }
        if let Some(name) = &self.name {
            m["name"] = name.clone().into();
        }
        m
    }
}

/// The assistant's reply, split: what [`Engine::chat`](crate::Engine::chat) returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssistantMessage {
    pub content: String,
    /// The model's thinking, kept out of the content.
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    /// Every delivered token's log-probability, in order, when the request asked for them.
    pub logprobs: Vec<TokenLogprob>,
}

impl AssistantMessage {
    /// `{"role":"assistant","content":"..."|null,"reasoning_content":"..." (when any),
    /// "tool_calls":[...] (when any), "logprobs":{"content":[...]} (when asked for)}`: append
    /// it to the conversation for the next turn (the extra keys are ignored there).
    pub fn to_openai_json(&self) -> Value {
        let mut m = serde_json::json!({ "role": "assistant" });
        m["content"] = if self.content.is_empty() && !self.tool_calls.is_empty() {
            Value::Null
        } else {
            self.content.clone().into()
        };
        if !self.reasoning.is_empty() {
            m["reasoning_content"] = self.reasoning.clone().into();
        }
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self
                .tool_calls
                .iter()
                .map(ToolCall::to_openai_json)
                .collect();
        }
        if !self.logprobs.is_empty() {
            let content: Vec<Value> = self
                .logprobs
                .iter()
                .map(TokenLogprob::to_openai_json)
                .collect();
            m["logprobs"] = serde_json::json!({ "content": content });
        }
        m
    }

    /// As a message of the next request's conversation.
    pub fn to_message(&self) -> Message {
        Message::tool_calls(self.content.clone(), self.tool_calls.clone())
    }
}
