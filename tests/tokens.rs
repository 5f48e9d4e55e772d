//! Token ids in and out: tokenize and detokenize round-trip exactly, counts agree with
//! count_tokens, a prompt sent as ids answers as the same prompt sent as text, and ids outside
//! the vocabulary are refused naming their index and value.

mod common;

use common::*;
use rigllama::{Error, Prompt, Request, TokenFlags};

/// Text across scripts and shapes, and the special-token text of the default model's
/// template.
const CORPUS: &[&str] = &[
    "Hello, world!",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\nlines\n\n",
    "Übergrößenträger naïve café",
    "日本語のテキストと漢字",
    "中文文本，标点符号。",
    "Русский текст",
    "النص العربي",
    "हिन्दी पाठ",
    "emoji 🦀🚀 and a family 👨‍👩‍👧",
    "e\u{301} combining marks",
    "fn main() { println!(\"{}\", 1 + 2); }",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "1234567890 3.14159 -42",
];

#[test]
fn text_to_ids_to_text_is_exact_with_every_flag_combination() {
    let engine = engine();
    let mut checked = 0;
    for add_special in [false, true] {
        for parse_special in [false, true] {
            let flags = TokenFlags {
                add_special,
                parse_special,
            };
            for text in CORPUS {
                let ids = engine.tokenize(text, flags).unwrap();
                assert!(!ids.is_empty(), "{text:?}");
                let back = engine.detokenize(&ids, flags).unwrap();
                assert_eq!(&back, text, "{flags:?}: {ids:?}");
                checked += 1;
            }
        }
    }
    println!("{checked} round trips exact");
}

#[test]
fn special_token_text_becomes_one_token_only_when_parsed() {
    let engine = engine();
    let text = "<start_of_turn>";
    let plain = TokenFlags::default();
    let parsed = TokenFlags {
        parse_special: true,
        ..plain
    };
    let as_text = engine.tokenize(text, plain).unwrap();
    let as_token = engine.tokenize(text, parsed).unwrap();
    assert!(as_text.len() > 1, "{as_text:?}");
    assert_eq!(as_token.len(), 1, "{as_token:?}");
    // Unparsed on the way back, a special token is left out.
    assert_eq!(engine.detokenize(&as_token, plain).unwrap(), "");
    assert_eq!(engine.detokenize(&as_token, parsed).unwrap(), text);
}

#[test]
fn counts_equal_count_tokens_and_bos_follows_the_flag() {
    let engine = engine();
    let bos = engine
        .describe()
        .special_tokens
        .bos
        .expect("the default model has a BOS");
    for text in CORPUS {
        let ids = engine.tokenize(text, TokenFlags::ALL).unwrap();
        let counted = engine.count_tokens(Request::raw(*text)).unwrap();
        assert_eq!(ids.len() as u32, counted, "{text:?}");
        assert_eq!(ids[0], bos);
        let without = engine
            .tokenize(
                text,
                TokenFlags {
                    add_special: false,
                    parse_special: true,
                },
            )
            .unwrap();
        assert_eq!(&ids[1..], &without[..]);
    }
}

#[test]
fn describe_reports_the_vocabulary_and_its_special_tokens() {
    let description = engine().describe();
    assert!(description.n_vocab > 200_000, "{}", description.n_vocab);
    let special = description.special_tokens;
    for id in [special.bos, special.eos, special.eot]
        .into_iter()
        .flatten()
    {
        assert!((0..description.n_vocab as i32).contains(&id), "{special:?}");
    }
    assert!(
        special.bos.is_some() && special.eos.is_some(),
        "{special:?}"
    );
}

#[test]
fn a_prompt_sent_as_ids_answers_as_the_same_prompt_sent_as_text() {
    let engine = engine();
    let text = "The old lighthouse keeper looked out at the storm and";
    let (from_text, text_usage) = engine.complete(greedy_raw(text, 24)).unwrap();
    engine.reset().unwrap();
    let mut request = greedy_raw(text, 24);
    request.prompt = Prompt::Tokens(engine.tokenize(text, TokenFlags::ALL).unwrap());
    let (from_ids, ids_usage) = engine.complete(request.clone()).unwrap();
    assert_eq!(from_ids, from_text);
    assert_eq!(ids_usage.prompt_tokens, text_usage.prompt_tokens);
    assert_eq!(
        engine.count_tokens(request).unwrap(),
        text_usage.prompt_tokens
    );
}

#[test]
fn ids_outside_the_vocabulary_are_refused_naming_index_and_value() {
    let engine = engine();
    let n_vocab = engine.describe().n_vocab as i32;
    let refused = |ids: Vec<i32>| {
        let mut request = greedy_raw("x", 2);
        request.prompt = Prompt::Tokens(ids);
        match engine.complete(request) {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("{other:?}"),
        }
    };
    assert!(refused(vec![2, 5, -1]).contains("prompt_tokens[2] = -1"));
    let message = refused(vec![2, n_vocab]);
    assert!(
        message.contains(&format!("prompt_tokens[1] = {n_vocab}")),
        "{message}"
    );
    assert!(refused(Vec::new()).contains("prompt_tokens is empty"));
    let message = engine
        .detokenize(&[2, 10, n_vocab + 7], TokenFlags::ALL)
        .unwrap_err();
    assert!(
        message
            .to_string()
            .contains(&format!("tokens[2] = {}", n_vocab + 7)),
        "{message}"
    );
    assert_eq!(engine.detokenize(&[], TokenFlags::ALL).unwrap(), "");
    assert!(engine.tokenize("a\0b", TokenFlags::ALL).is_err());
    // Tools need a template: ids are raw.
    let mut request = greedy_raw("x", 2);
    request.prompt = Prompt::Tokens(vec![2, 10]);
    request.tools = vec![rigllama::Tool::new(
        "f",
        "",
        serde_json::json!({"type": "object"}),
    )];
    assert!(matches!(
        engine.complete(request),
        Err(Error::InvalidArgument(_))
    ));
    let (_, usage) = engine.complete(greedy_raw("Hello", 2)).unwrap();
    assert_eq!(
        usage.completion_tokens, 2,
        "the engine serves after the refusals"
    );
}
