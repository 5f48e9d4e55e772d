//! The limits a grammar or a JSON Schema must keep before llama.cpp sees it. llama.cpp's GBNF
//! parser reads nested groups by recursive descent (each level of `( ... )` costs ~1.6 KB of
//! the calling thread's stack: ~5,000 levels overflowed an 8 MiB stack and killed the
//! process), its left-recursion check walks rule references recursively, and the JSON Schema
//! converter recurses into nested schemas and into groups of a `pattern`. These bounds keep
//! every recursion shallow enough for any thread that calls the library (see the README's
//! "Structured output") while staying far above what real grammars and schemas use.

use crate::engine::error::{Error, Result};

/// The deepest nesting of `( ... )` groups in a request's GBNF grammar (real grammars nest a
/// handful). It is parsed on the caller's thread too (to refuse a bad grammar at submit), so
/// this keeps that parse within ~100 KB of any thread's stack.
pub const MAX_GRAMMAR_NESTING: usize = 64;
/// The same for grammars the engine makes itself (from a JSON Schema, whose optional
/// properties nest, or a template's tool format), parsed only on the worker, whose stack is
/// sized for them.
pub(crate) const MAX_GENERATED_GRAMMAR_NESTING: usize = 4096;
/// The most rules a grammar may make: rule definitions, plus a generated rule for every
/// group and repetition (`*`, `+`, `?`, `{m,n}`). Bounds the depth of llama.cpp's recursive
/// left-recursion check, which runs on the engine's worker thread.
pub const MAX_GRAMMAR_RULES: usize = 20_000;
/// The deepest nesting of a JSON Schema (objects and arrays within each other).
pub const MAX_SCHEMA_NESTING: usize = 64;
/// The deepest nesting of groups in a JSON Schema `pattern` (a regular expression).
pub const MAX_PATTERN_NESTING: usize = 32;

/// Checks a GBNF grammar's nesting (at most `max_nesting`) and rule count; `what` names it in
/// the error.
pub(crate) fn check_gbnf_limits(gbnf: &str, what: &str, max_nesting: usize) -> Result<()> {
    #[derive(PartialEq)]
    enum In {
        Rules,
        Literal,
        Class,
        Comment,
    }
    let mut state = In::Rules;
    let (mut depth, mut deepest, mut rules) = (0usize, 0usize, 0usize);
    let mut chars = gbnf.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Literal | In::Class => match c {
                '\\' => {
                    chars.next();
                }
                '"' if state == In::Literal => state = In::Rules,
                ']' if state == In::Class => state = In::Rules,
                _ => {}
            },
            In::Comment => {
                if c == '\n' {
                    state = In::Rules;
                }
            }
            In::Rules => match c {
                '"' => state = In::Literal,
                '[' => state = In::Class,
                '#' => state = In::Comment,
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    rules += 1;
                    if deepest > max_nesting {
                        return Err(Error::invalid(format!(
                            "{what} nests groups deeper than {max_nesting} levels; \
                             flatten it with named rules"
                        )));
                    }
                }
                ')' => depth = depth.saturating_sub(1),
                '*' | '+' | '?' | '{' => rules += 1,
                ':' if chars.peek() == Some(&':') => {
                    chars.next();
                    if chars.peek() == Some(&'=') {
                        rules += 1;
                    }
                }
                _ => {}
            },
        }
        if rules > MAX_GRAMMAR_RULES {
            return Err(Error::invalid(format!(
                "{what} makes more than {MAX_GRAMMAR_RULES} rules (counting one for every rule, \
                 group and repetition); split the output into smaller requests"
            )));
        }
    }
    Ok(())
}

/// A request's `json_schema` text, parsed and checked against the limits above.
pub(crate) fn parse_schema(text: &str) -> Result<serde_json::Value> {
    let value = serde_json::from_str(text).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            // serde_json's own bound (128 levels) on what it parses.
            Error::invalid(format!(
                "json_schema nests deeper than {MAX_SCHEMA_NESTING} levels"
            ))
        } else {
            Error::invalid(format!("json_schema is not valid JSON: {e}"))
        }
    })?;
    check_schema_limits(&value)?;
    Ok(value)
}

/// Checks a JSON Schema's nesting, and the group nesting of every `pattern` in it.
fn check_schema_limits(schema: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    // Iterative: the schema itself may be as deep as serde_json parsed it.
    let mut todo = vec![(schema, 1usize)];
    while let Some((value, depth)) = todo.pop() {
        if depth > MAX_SCHEMA_NESTING {
            return Err(Error::invalid(format!(
                "json_schema nests deeper than {MAX_SCHEMA_NESTING} levels"
            )));
        }
        match value {
            Value::Object(map) => {
                if let Some(Value::String(pattern)) = map.get("pattern") {
                    check_pattern(pattern)?;
                }
                todo.extend(map.values().map(|v| (v, depth + 1)));
            }
            Value::Array(items) => todo.extend(items.iter().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> Result<()> {
    let (mut depth, mut escaped, mut in_class) = (0usize, false, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => in_class = true,
            ']' => in_class = false,
            '(' if !in_class => {
                depth += 1;
                if depth > MAX_PATTERN_NESTING {
                    return Err(Error::invalid(format!(
                        "json_schema has a pattern that nests groups deeper than \
                         {MAX_PATTERN_NESTING} levels"
                    )));
                }
            }
            ')' if !in_class => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("root ::= {}\"a\"{}", "(".repeat(levels), ")".repeat(levels))
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_beyond_it_is_refused_naming_it() {
        check_gbnf_limits(&nested(MAX_GRAMMAR_NESTING), "grammar", MAX_GRAMMAR_NESTING).unwrap();
        let e = check_gbnf_limits(
            &nested(MAX_GRAMMAR_NESTING + 1),
            "grammar",
            MAX_GRAMMAR_NESTING,
        )
        .unwrap_err();
        assert!(e.to_string().contains("deeper than 64 levels"), "{e}");
    }

    #[test]
    fn parentheses_in_literals_classes_and_comments_do_not_count() {
        let deep = "(".repeat(500);
        let grammar = format!("# {deep}\nroot ::= \"{deep}\" [(\\]] \"\\\"(\"\n");
        check_gbnf_limits(&grammar, "grammar", MAX_GRAMMAR_NESTING).unwrap();
    }

    #[test]
    fn rules_groups_and_repetitions_count_toward_the_rule_limit() {
        let many: String = (0..MAX_GRAMMAR_RULES)
            .map(|i| format!("r{i} ::= \"x\"\n"))
            .collect();
        check_gbnf_limits(&many, "grammar", MAX_GRAMMAR_NESTING).unwrap();
        let too_many = many + "root ::= \"x\"*\n";
        let e = check_gbnf_limits(&too_many, "grammar", MAX_GRAMMAR_NESTING).unwrap_err();
        assert!(e.to_string().contains("more than 20000 rules"), "{e}");
    }

    #[test]
    fn schemas_and_patterns_past_their_depth_are_refused() {
        let mut schema = serde_json::json!({"type": "string"});
        for _ in 0..MAX_SCHEMA_NESTING {
            schema = serde_json::json!({"type": "array", "items": schema});
        }
        let e = check_schema_limits(&schema).unwrap_err();
        assert!(e.to_string().contains("deeper than 64 levels"), "{e}");
        let pattern = format!("{}a{}", "(".repeat(33), ")".repeat(33));
        let e = check_schema_limits(&serde_json::json!({"type": "string", "pattern": pattern}))
            .unwrap_err();
        assert!(e.to_string().contains("pattern"), "{e}");
        check_schema_limits(&serde_json::json!({"pattern": "[(((]((a))\\("})).unwrap();
    }
}
