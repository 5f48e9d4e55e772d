//! Conversation to prompt; reply text to events.
pub(super) mod common_chat;
pub(super) mod generic;
pub(super) mod python_escapes;
pub(super) mod reply;
pub(super) mod template;
pub(super) mod text;
