//! Published chat templates are written for Python's Jinja2, which decodes a string literal's
//! backslash escapes the way Python does (`unicode-escape`). llama.cpp's Jinja lexer knows
//! only `\n \t \r \b \f \v \\ \' \"` and refuses the rest, so a template such as Mistral Small
//! 3.1's (a system prompt split over lines with `\` + newline) does not parse. This rewrites
//! the other escapes inside string literals into text llama.cpp reads to the same string, and
//! leaves everything outside `{{ }}` and `{% %}` (and inside comments and raw blocks) alone.

/// The template with Python's string escapes spelled as llama.cpp's lexer reads them, or None
/// when it has none to rewrite.
pub(crate) fn python_string_escapes(source: &str) -> Option<String> {
    let mut out = String::with_capacity(source.len());
    let mut changed = false;
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        let (text, from_brace) = rest.split_at(open);
        out.push_str(text);
        if from_brace.starts_with("{#") {
            let end = from_brace.find("#}").map_or(from_brace.len(), |i| i + 2);
            out.push_str(&from_brace[..end]);
            rest = &from_brace[end..];
        } else if from_brace.starts_with("{{") || from_brace.starts_with("{%") {
            let is_statement = from_brace.starts_with("{%");
            let end = tag_end(from_brace, is_statement);
            let tag = &from_brace[..end];
            changed |= rewrite_tag(tag, &mut out);
            rest = &from_brace[end..];
            if is_statement && is_raw_start(tag) {
                // Everything up to {% endraw %} is text.
                let end = raw_block_end(rest);
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
        } else {
            out.push('{');
            rest = &from_brace[1..];
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Where the tag starting at `s` ends (after `}}` or `%}`), skipping string literals and
/// nested braces (a dict literal's `}}` does not close `{{`).
fn tag_end(s: &str, is_statement: bool) -> usize {
    let bytes = s.as_bytes();
    let close = if is_statement { b'%' } else { b'}' };
    let mut depth = 0usize;
    let mut i = 2;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => i = string_end(bytes, i, quote),
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            c if c == close && bytes.get(i + 1) == Some(&b'}') => return i + 2,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the literal that opens with `quote` at `start`.
fn string_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn is_raw_start(tag: &str) -> bool {
    let inner =
        tag[2..tag.len().saturating_sub(2).max(2)].trim_matches(|c: char| c == '-' || c == '+');
    inner.trim() == "raw"
}

fn raw_block_end(s: &str) -> usize {
    let mut from = 0;
    while let Some(i) = s[from..].find("{%") {
        let at = from + i;
        let end = at + tag_end(&s[at..], true);
        let inner = s[at + 2..end.saturating_sub(2).max(at + 2)]
            .trim_matches(|c: char| c == '-' || c == '+');
        if inner.trim() == "endraw" {
            return at;
        }
        from = end;
    }
    s.len()
}

/// Copies one tag, rewriting escapes in its string literals; true when something changed.
fn rewrite_tag(tag: &str, out: &mut String) -> bool {
    let mut changed = false;
    let mut chars = tag.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '\'' && c != '"' {
            continue;
        }
        let quote = c;
        while let Some((_, c)) = chars.next() {
            if c == quote {
                out.push(c);
                break;
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, escaped)) = chars.next() else {
                out.push(c);
                break;
            };
            match escaped {
                // llama.cpp reads these as Python does.
                'n' | 't' | 'r' | 'b' | 'f' | 'v' | '\\' | '\'' | '"' => {
                    out.push('\\');
                    out.push(escaped);
                }
                // A line continuation: nothing.
                '\n' => changed = true,
                '\r' => {
                    if chars.peek().map(|&(_, c)| c) == Some('\n') {
                        chars.next();
                    }
                    changed = true;
                }
                'a' => {
                    out.push('\u{7}');
                    changed = true;
                }
                '0'..='7' => {
                    let mut code = escaped.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|&(_, c)| c.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    push_literal(out, char::from_u32(code), quote);
                    changed = true;
                }
                'x' | 'u' | 'U' => {
                    let digits = match escaped {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let mut hex = String::new();
                    while hex.len() < digits {
                        match chars.peek() {
                            Some(&(_, h)) if h.is_ascii_hexdigit() => {
                                hex.push(h);
                                chars.next();
                            }
                            _ => break,
                        }
                    }
                    let decoded = (hex.len() == digits)
                        .then(|| u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32))
                        .flatten();
                    match decoded {
                        Some(ch) => {
                            push_literal(out, Some(ch), quote);
                            changed = true;
                        }
                        // Python refuses it too; llama.cpp will say where.
                        None => {
                            out.push('\\');
                            out.push(escaped);
                            out.push_str(&hex);
                        }
                    }
                }
                // \N{NAME} needs Unicode's name table: left for llama.cpp to refuse.
                'N' => {
                    out.push('\\');
                    out.push('N');
                }
                // Python keeps an unknown escape as written, backslash included.
                other => {
                    out.push_str("\\\\");
                    out.push(other);
                    changed = true;
                }
            }
        }
    }
    changed
}

/// A decoded character, escaped again where llama.cpp's lexer needs it.
fn push_literal(out: &mut String, ch: Option<char>, quote: char) {
    match ch {
        Some('\\') => out.push_str("\\\\"),
        Some(c) if c == quote => {
            out.push('\\');
            out.push(c);
        }
        Some(c) => out.push(c),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::python_string_escapes as rewrite;

    #[test]
    fn a_line_continuation_in_a_string_is_removed() {
        let src = "{%- set s = \"one\\\ntwo\" %}{{ s }}";
        assert_eq!(rewrite(src).unwrap(), "{%- set s = \"onetwo\" %}{{ s }}");
        let crlf = "{{ 'a\\\r\nb' }}";
        assert_eq!(rewrite(crlf).unwrap(), "{{ 'ab' }}");
    }

    #[test]
    fn escapes_llama_cpp_knows_are_untouched() {
        let src = r#"{{ "a\n\t\"b\"\\" + 'it\'s' }} text \x {# \q #}"#;
        assert_eq!(rewrite(src), None);
    }

    #[test]
    fn python_only_escapes_become_their_characters() {
        assert_eq!(
            rewrite(r#"{{ "\x41\u00e9\U0001F600\101\a" }}"#).unwrap(),
            "{{ \"A\u{e9}\u{1F600}A\u{7}\" }}"
        );
        // A decoded quote or backslash is escaped again.
        assert_eq!(rewrite(r#"{{ "\x22\x5c" }}"#).unwrap(), r#"{{ "\"\\" }}"#);
        // Unknown escapes keep their backslash, as in Python.
        assert_eq!(rewrite(r#"{{ "\d+" }}"#).unwrap(), r#"{{ "\\d+" }}"#);
    }

    #[test]
    fn text_comments_and_raw_blocks_are_left_alone() {
        let src = "say \"a\\\nb\" {# \"c\\\nd\" #}{% raw %}{{ \"e\\\nf\" }}{% endraw %}{{ 1 }}";
        assert_eq!(rewrite(src), None);
    }

    #[test]
    fn a_dict_literal_does_not_end_the_tag() {
        let src = "{{ {'a': {'b': 'x\\\ny'}} }}";
        assert_eq!(rewrite(src).unwrap(), "{{ {'a': {'b': 'xy'}} }}");
    }
}
