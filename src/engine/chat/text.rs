//! Turning token bytes into text the host can trust: whole UTF-8 characters only, and
//! nothing at or after a stop string.

/// Accepts token bytes one piece at a time and releases only whole UTF-8 characters.
///
/// A token may end in the middle of a multi-byte character; those bytes wait for the next
/// token. Bytes that can never form a character become U+FFFD, and U+0000 is dropped, so the
/// output is always valid, NUL-free UTF-8 that C hosts can treat as a C string.
#[derive(Debug, Default)]
pub struct Utf8Streamer {
    pending: Vec<u8>,
}

impl Utf8Streamer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and returns the text of every character they complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(&self.pending[consumed..]) {
                Ok(valid) => {
                    push_without_nul(&mut out, valid);
                    consumed = self.pending.len();
                    break;
                }
                Err(err) => {
                    let valid_end = consumed + err.valid_up_to();
                    // SAFETY of the unwrap: from_utf8 just said these bytes are valid.
                    push_without_nul(
                        &mut out,
                        std::str::from_utf8(&self.pending[consumed..valid_end]).unwrap(),
                    );
                    match err.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed = valid_end + bad;
                        }
                        None => {
                            // An incomplete character at the end: keep it for the next token.
                            consumed = valid_end;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }

    /// Releases whatever is still pending at the end of generation (as U+FFFD).
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

fn push_without_nul(out: &mut String, text: &str) {
    if text.contains('\0') {
        out.extend(text.chars().filter(|&c| c != '\0'));
    } else {
        out.push_str(text);
    }
}

/// What [`StopMatcher::push`] decided about the text it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum StopScan {
    /// This text is safe to emit now; more may still be held back.
    Continue(String),
    /// A stop string was found: emit this text (everything before the stop string) and end.
    Stopped(String),
}

/// Holds back text that could be the beginning of a stop string until it is known not to be,
/// so a stop string split across tokens is still never emitted.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.to_vec(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> StopScan {
        if self.stops.is_empty() {
            return StopScan::Continue(text.to_owned());
        }
        self.held.push_str(text);
        let earliest_stop = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = earliest_stop {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return StopScan::Stopped(before);
        }
        let keep_from = self.held.len() - self.longest_suffix_that_starts_a_stop();
        let ready = self.held[..keep_from].to_owned();
        self.held.drain(..keep_from);
        StopScan::Continue(ready)
    }

    /// Text still held back when generation ends for another reason: it was not a stop string.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop string.
    fn longest_suffix_that_starts_a_stop(&self) -> usize {
        let held = self.held.as_str();
        let mut longest = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(held.len());
            for len in (longest + 1..=max).rev() {
                let start = held.len() - len;
                if held.is_char_boundary(start) && stop.starts_with(&held[start..]) {
                    longest = len;
                    break;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_character_split_across_tokens_is_released_whole() {
        let mut s = Utf8Streamer::new();
        let euro = "€".as_bytes();
        assert_eq!(s.push(&euro[..1]), "");
        assert_eq!(s.push(&euro[1..2]), "");
        assert_eq!(s.push(&euro[2..]), "€");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let mut s = Utf8Streamer::new();
        assert_eq!(s.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(s.push(b"\xe2\x82"), "");
        assert_eq!(s.push(b"x"), "\u{FFFD}x");
        assert_eq!(s.push(b"\xf0\x9f"), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }

    #[test]
    fn nul_is_dropped() {
        let mut s = Utf8Streamer::new();
        assert_eq!(s.push(b"a\0b"), "ab");
    }

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let mut m = StopMatcher::new(&["END".to_owned()]);
        assert_eq!(m.push("hello E"), StopScan::Continue("hello ".into()));
        assert_eq!(m.push("N"), StopScan::Continue("".into()));
        assert_eq!(m.push("D and more"), StopScan::Stopped("".into()));
    }

    #[test]
    fn held_text_that_turns_out_not_to_be_a_stop_is_released() {
        let mut m = StopMatcher::new(&["END".to_owned()]);
        assert_eq!(m.push("EN"), StopScan::Continue("".into()));
        assert_eq!(m.push("X"), StopScan::Continue("ENX".into()));
        assert_eq!(m.push("E"), StopScan::Continue("".into()));
        assert_eq!(m.finish(), "E");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(&["bb".to_owned(), "a".to_owned()]);
        assert_eq!(m.push("xbbya"), StopScan::Stopped("x".into()));
    }

    #[test]
    fn multibyte_stop_strings_hold_back_on_char_boundaries() {
        let mut m = StopMatcher::new(&["é!".to_owned()]);
        assert_eq!(m.push("caf"), StopScan::Continue("caf".into()));
        assert_eq!(m.push("é"), StopScan::Continue("".into()));
        assert_eq!(m.push("!"), StopScan::Stopped("".into()));
    }
}
