//! llama.cpp's grammar tools, through the chat shim: the GBNF parser (to check a grammar and
//! keep the parser's reason) and the JSON Schema to GBNF converter, with the schema adjusted
//! first so that every reply the grammar allows is valid against it.

use crate::engine::data::grammar_limits::{
    check_gbnf_limits, parse_schema, MAX_GENERATED_GRAMMAR_NESTING, MAX_GRAMMAR_NESTING,
};
use crate::engine::error::{Error, Result};
use crate::engine::llama::chat_shim::{
    c_string, call, rl_grammar_check, rl_json_schema_to_grammar, take,
};

/// GBNF for JSON values valid against `schema` (llama.cpp's converter, after
/// [`whole_numbers_for_bounded_reals`]).
pub(crate) fn json_schema_to_grammar(schema: &str) -> Result<String> {
    let schema = c_string("json_schema", &enforceable_schema(schema)?)?;
    let out = call(
        "json_schema cannot be turned into a grammar",
        |err| unsafe { rl_json_schema_to_grammar(schema.as_ptr(), err) },
    )?;
    Ok(take(out.as_ptr()).unwrap_or_default())
}

/// `schema` as llama.cpp's converters should see it (see [`whole_numbers_for_bounded_reals`]).
pub(crate) fn enforceable_schema(schema: &str) -> Result<String> {
    let mut value = parse_schema(schema)?;
    whole_numbers_for_bounded_reals(&mut value);
    anchor_patterns(&mut value);
    Ok(value.to_string())
}

/// llama.cpp's converter only turns patterns anchored with `^` and `$` into grammar (others it
/// lets match any string, and says so on stderr). A pattern matches anywhere in the string;
/// anchoring it keeps a subset of those strings, so every reply stays valid.
fn anchor_patterns(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(pattern)) = map.get_mut("pattern") {
                let body = pattern.strip_prefix('^').unwrap_or(pattern);
                let body = body
                    .strip_suffix('$')
                    .filter(|b| !b.ends_with('\\'))
                    .unwrap_or(body);
                *pattern = format!("^({body})$");
            }
            for (key, child) in map.iter_mut() {
                // Property names are not schemas.
                if key != "pattern" {
                    anchor_patterns(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(anchor_patterns),
        _ => {}
    }
}

/// llama.cpp's converter enforces bounds on integers but not on other numbers, so a bounded
/// `"type": "number"` becomes the whole numbers within its bounds (or, when there are none,
/// the midpoint): every reply the grammar allows is then valid against the caller's schema.
fn whole_numbers_for_bounded_reals(schema: &mut serde_json::Value) {
    use serde_json::{json, Value};
    match schema {
        Value::Object(map) => {
            let bound = |key: &str| map.get(key).and_then(Value::as_f64);
            let (min, max, xmin, xmax) = (
                bound("minimum"),
                bound("maximum"),
                bound("exclusiveMinimum"),
                bound("exclusiveMaximum"),
            );
            if map.get("type").and_then(Value::as_str) == Some("number")
                && (min.is_some() || max.is_some() || xmin.is_some() || xmax.is_some())
            {
                let low = match (min.map(f64::ceil), xmin.map(|x| x.floor() + 1.0)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                let high = match (max.map(f64::floor), xmax.map(|x| x.ceil() - 1.0)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                for key in [
                    "type",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                ] {
                    map.remove(key);
                }
                match (low, high) {
                    (Some(l), Some(h)) if l > h => {
                        let lower = min.or(xmin).unwrap_or(l);
                        let upper = max.or(xmax).unwrap_or(h);
                        map.insert("const".into(), json!((lower + upper) / 2.0));
                    }
                    _ => {
                        map.insert("type".into(), json!("integer"));
                        if let Some(l) = low {
                            map.insert("minimum".into(), json!(l as i64));
                        }
                        if let Some(h) = high {
                            map.insert("maximum".into(), json!(h as i64));
                        }
                    }
                }
            }
            for child in map.values_mut() {
                whole_numbers_for_bounded_reals(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_for_bounded_reals),
        _ => {}
    }
}

/// Checks that a request's `gbnf` parses and has a `root` rule, with the parser's reason when
/// not; any thread may call it (see [`MAX_GRAMMAR_NESTING`]).
pub(crate) fn check_grammar(gbnf: &str) -> Result<()> {
    check_gbnf_limits(gbnf, "grammar", MAX_GRAMMAR_NESTING)?;
    parse_check(gbnf)
}

/// [`check_grammar`] for any grammar about to be used, on the worker thread only (whose
/// stack the looser nesting bound of generated grammars is sized for).
pub(crate) fn check_grammar_on_worker(gbnf: &str) -> Result<()> {
    check_gbnf_limits(gbnf, "the grammar", MAX_GENERATED_GRAMMAR_NESTING)?;
    parse_check(gbnf)
}

fn parse_check(gbnf: &str) -> Result<()> {
    let text = c_string("grammar", gbnf)?;
    let mut err = std::ptr::null_mut();
    let ok = unsafe { rl_grammar_check(text.as_ptr(), c"root".as_ptr(), &mut err) };
    let message = take(err);
    if ok == 1 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "grammar is not valid GBNF: {}",
            message.unwrap_or_else(|| "unknown error".into())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_errors_carry_the_parsers_reason() {
        check_grammar("root ::= \"a\" | [b-c]+").unwrap();
        let e = check_grammar("root ::= undefined-rule")
            .unwrap_err()
            .to_string();
        assert!(e.contains("undefined-rule"), "{e}");
        let e = check_grammar("root ::= \"unterminated")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grammar is not valid GBNF"), "{e}");
        let e = check_grammar("other ::= \"a\"").unwrap_err().to_string();
        assert!(e.contains("'root'"), "{e}");
        assert!(check_grammar("").is_err());
    }

    #[test]
    fn schemas_become_grammars_or_say_why_not() {
        let g =
            json_schema_to_grammar(r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#)
                .unwrap();
        check_grammar(&g).unwrap();
        assert!(json_schema_to_grammar("{not json").is_err());
    }

    #[test]
    fn bounded_reals_become_whole_numbers_inside_the_bounds() {
        let mut s = serde_json::json!({"properties": {"p": {"type": "number", "minimum": 0.5, "maximum": 99.5},
            "q": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "r": {"type": "number"}}});
        whole_numbers_for_bounded_reals(&mut s);
        assert_eq!(
            s["properties"]["p"],
            serde_json::json!({"type": "integer", "minimum": 1, "maximum": 99})
        );
        assert_eq!(s["properties"]["q"], serde_json::json!({"const": 0.5}));
        assert_eq!(s["properties"]["r"], serde_json::json!({"type": "number"}));
    }

    #[test]
    fn patterns_are_anchored() {
        let mut s = serde_json::json!({"properties": {"a": {"type": "string", "pattern": "ab+"},
            "b": {"type": "string", "pattern": "^[A-Z][a-z]{2,5}$"}}});
        anchor_patterns(&mut s);
        assert_eq!(s["properties"]["a"]["pattern"], "^(ab+)$");
        assert_eq!(s["properties"]["b"]["pattern"], "^([A-Z][a-z]{2,5})$");
    }
}
