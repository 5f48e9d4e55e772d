//! Reading a reply that is more than content: the template's parser (or the generic JSON
//! format) splits the text generated so far into content, reasoning and tool calls, and the
//! reader turns what is new into events. Content and reasoning stream as they grow; each
//! tool call is sent whole when the reply ends.

use crate::engine::chat::common_chat::{ParsedMessage, ReplyParser};
use crate::engine::chat::generic::{self, MAX_CALLS_PER_REPLY};
use crate::engine::chat::template::Reading;
use crate::engine::data::event::Event;
use crate::engine::data::tools::{new_call_id, ToolCall};
use crate::engine::error::Result;

pub(crate) struct ReplyReader {
    parser: Option<ReplyParser>,
    /// Set once the reply has started a call beyond [`MAX_CALLS_PER_REPLY`]: generation stops
    /// and that call is dropped.
    pub enough_calls: bool,
    /// Everything generated so far (after stop strings).
    raw: String,
    sent_content: String,
    sent_reasoning: String,
}

/// What a finished reply held.
pub(crate) struct Finished {
    pub events: Vec<Event>,
    pub has_tool_calls: bool,
}

impl ReplyReader {
    /// None for replies that are content only.
    pub fn new(reading: &Reading) -> Result<Option<Self>> {
        let parser = match reading {
            Reading::Plain => return Ok(None),
            Reading::Template(params) => Some(ReplyParser::new(params)?),
            Reading::Generic => None,
        };
        Ok(Some(ReplyReader {
            parser,
            enough_calls: false,
            raw: String::new(),
            sent_content: String::new(),
            sent_reasoning: String::new(),
        }))
    }

    /// Takes more of the reply; returns the content and reasoning that became certain.
    /// `tokens` (the tokens this text completes) is carried on the first event.
    pub fn push(&mut self, text: &str, tokens: &mut u32) -> Vec<Event> {
        self.raw.push_str(text);
        let Some(parser) = &self.parser else {
            // The generic format is one JSON object: nothing is known before it closes.
            return Vec::new();
        };
        match parser.parse(&self.raw, true) {
            Ok(message) => {
                // A small model repeats calls until max_tokens if nothing ends the list.
                self.enough_calls = message.tool_calls.len() > MAX_CALLS_PER_REPLY;
                self.deltas(&message, tokens)
            }
            // Not parseable yet: wait for more.
            Err(_) => Vec::new(),
        }
    }

    /// The whole reply: the rest of its content and reasoning, then its tool calls.
    pub fn finish(&mut self) -> Finished {
        let mut tokens = 0;
        let (message, calls) = match &self.parser {
            None => {
                let (content, calls) = generic::parse_reply(&self.raw);
                (
                    ParsedMessage {
                        content: Some(content),
                        ..ParsedMessage::default()
                    },
                    calls,
                )
            }
            Some(parser) => {
                let message = parser
                    .parse(&self.raw, false)
                    .or_else(|_| parser.parse(&self.raw, true))
                    // Output the format cannot read is the reply's content, as it came.
                    .unwrap_or_else(|_| ParsedMessage {
                        content: Some(self.raw.clone()),
                        ..ParsedMessage::default()
                    });
                let calls = message
                    .tool_calls
                    .iter()
                    .take(MAX_CALLS_PER_REPLY)
                    .map(|c| {
                        let id = if c.id.is_empty() {
                            new_call_id()
                        } else {
                            c.id.clone()
                        };
                        ToolCall::new(id, c.function.name.clone(), c.function.arguments.clone())
                    })
                    .collect();
                (message, calls)
            }
        };
        let mut events = self.deltas(&message, &mut tokens);
        let has_tool_calls = !calls.is_empty();
        events.extend(calls.into_iter().map(Event::ToolCall));
        Finished {
            events,
            has_tool_calls,
        }
    }

    /// New reasoning, then new content, when each extends what was sent (a parse that
    /// rewrites what was already sent waits for the text to settle).
    fn deltas(&mut self, message: &ParsedMessage, tokens: &mut u32) -> Vec<Event> {
        let mut events = Vec::new();
        let reasoning = message.reasoning_content.as_deref().unwrap_or("");
        if let Some(new) = extension(&self.sent_reasoning, reasoning) {
            events.push(Event::Reasoning {
                text: new.to_owned(),
                tokens: std::mem::take(tokens),
            });
            self.sent_reasoning = reasoning.to_owned();
        }
        let content = message.content.as_deref().unwrap_or("");
        if let Some(new) = extension(&self.sent_content, content) {
            events.push(Event::Text {
                text: new.to_owned(),
                tokens: std::mem::take(tokens),
            });
            self.sent_content = content.to_owned();
        }
        events
    }
}

/// What `now` adds to `sent`, if it extends it.
fn extension<'a>(sent: &str, now: &'a str) -> Option<&'a str> {
    now.strip_prefix(sent).filter(|new| !new.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_replies_become_calls_at_the_end() {
        let mut reader = ReplyReader::new(&Reading::Generic).unwrap().unwrap();
        let mut tokens = 3;
        assert!(reader
            .push(r#"{"tool_calls":[{"name":"f","#, &mut tokens)
            .is_empty());
        assert!(reader
            .push(r#""arguments":{"a":1}}]}"#, &mut tokens)
            .is_empty());
        let finished = reader.finish();
        assert!(finished.has_tool_calls);
        match &finished.events[..] {
            [Event::ToolCall(call)] => {
                assert_eq!(call.name, "f");
                assert_eq!(call.arguments, r#"{"a":1}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A minimal thinking template in the shape of Qwen3's: earlier reasoning rendered in
    /// `<think>` tags, and a switch that closes an empty think block when thinking is off.
    const THINKING_TEMPLATE: &str = "{%- for m in messages -%}<|{{ m.role }}|>\n\
        {%- if m.role == 'assistant' and m.reasoning_content -%}<think>\n{{ m.reasoning_content }}\n</think>\n\n{%- endif -%}\
        {{ m.content }}<|end|>\n{%- endfor -%}\
        {%- if add_generation_prompt -%}<|assistant|>\n\
        {%- if enable_thinking is defined and not enable_thinking -%}<think>\n\n</think>\n\n{%- endif -%}\
        {%- endif -%}";

    fn thinking_reader() -> ReplyReader {
        let templates =
            crate::engine::chat::common_chat::JinjaTemplates::without_model(THINKING_TEMPLATE)
                .unwrap();
        let params = templates
            .apply(&serde_json::json!({
                "messages": [{"role": "user", "content": "hi"}],
                "add_generation_prompt": true,
                "enable_thinking": true,
            }))
            .unwrap();
        ReplyReader::new(&Reading::Template(Box::new(params)))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn thinking_streams_apart_from_the_content() {
        let mut reader = thinking_reader();
        let mut events = Vec::new();
        for piece in [
            "<think>\nI should",
            " greet.",
            "\n</think>",
            "\n\nHel",
            "lo!",
        ] {
            events.extend(reader.push(piece, &mut 1));
        }
        events.extend(reader.finish().events);
        let (mut reasoning, mut content) = (String::new(), String::new());
        let mut seen_content = false;
        for event in events {
            match event {
                Event::Reasoning { text, .. } => {
                    assert!(!seen_content, "reasoning after content");
                    reasoning.push_str(&text)
                }
                Event::Text { text, .. } => {
                    seen_content = true;
                    content.push_str(&text)
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reasoning.trim(), "I should greet.");
        assert_eq!(content.trim(), "Hello!");
        assert!(!content.contains("think"));
    }

    #[test]
    fn parallel_calls_come_back_as_several_events_in_order() {
        let mut reader = ReplyReader::new(&Reading::Generic).unwrap().unwrap();
        reader.push(
            r#"{"tool_calls":[{"name":"a","arguments":{"x":1}},{"name":"b","arguments":{}}]}"#,
            &mut 0,
        );
        let names: Vec<String> = reader
            .finish()
            .events
            .into_iter()
            .map(|e| match e {
                Event::ToolCall(call) => call.name,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn only_extensions_are_sent() {
        assert_eq!(extension("ab", "abc"), Some("c"));
        assert_eq!(extension("ab", "ab"), None);
        assert_eq!(extension("ab", "a"), None);
    }
}
