//! Fill-in-the-middle: a request with a suffix is laid out with the vocabulary's FIM tokens
//! token for token as llama-server lays out an /infill prompt, cut as it cuts to fit a batch
//! (the cut reported as dropped tokens), generates from exactly that layout, and a model
//! without FIM tokens is refused saying so.

mod common;

use common::*;
use rigllama::{Engine, EngineOptions, Error, Request, TokenFlags};

const PREFIX: &str = "def add(a, b):\n    ";
const SUFFIX: &str = "\n\nprint(add(1, 2))\n";

fn fim_engine(n_batch: u32) -> Engine {
    let mut options = EngineOptions::new(fim_model_path());
    options.n_ctx = 1024;
    options.n_batch = n_batch;
    Engine::create(options, None).unwrap()
}

fn plain(engine: &Engine, text: &str) -> Vec<i32> {
    engine.tokenize(text, TokenFlags::default()).unwrap()
}

/// llama-server's format_prompt_infill for these inputs (no extra chunks, no prompt after
/// the middle marker), written out from the ids describe reports:
/// [FIM_REP]myproject\n[FIM_SEP]filename\n[BOS][FIM_PRE]prefix[FIM_SUF]suffix[FIM_MID].
fn reference_layout(engine: &Engine, prefix: &[i32], suffix: &[i32]) -> Vec<i32> {
    let special = engine.describe().special_tokens;
    let mut ids = vec![special.fim_rep.unwrap()];
    ids.extend(plain(engine, "myproject\n"));
    ids.push(special.fim_sep.unwrap());
    ids.extend(plain(engine, "filename\n"));
    ids.push(special.bos.unwrap());
    ids.push(special.fim_pre.unwrap());
    ids.extend(prefix);
    ids.push(special.fim_suf.unwrap());
    ids.extend(suffix);
    ids.push(special.fim_mid.unwrap());
    ids
}

fn layout_of(engine: &Engine, request: Request) -> Vec<i32> {
    // apply_template shows the laid-out prompt with its special tokens written out; parsing
    // them back gives the ids (checked against count_tokens too).
    let text = engine.apply_template(request.clone()).unwrap();
    let ids = engine
        .tokenize(
            &text,
            TokenFlags {
                add_special: false,
                parse_special: true,
            },
        )
        .unwrap();
    assert_eq!(engine.count_tokens(request).unwrap() as usize, ids.len());
    ids
}

#[test]
fn the_layout_is_llama_servers_token_for_token() {
    let engine = fim_engine(512);
    let special = engine.describe().special_tokens;
    assert_eq!(
        (
            special.fim_pre,
            special.fim_suf,
            special.fim_mid,
            special.fim_rep,
            special.fim_sep
        ),
        (Some(6), Some(7), Some(8), Some(9), Some(10)),
        "the fixture's FIM ids"
    );
    let expected = reference_layout(&engine, &plain(&engine, PREFIX), &plain(&engine, SUFFIX));
    assert_eq!(
        layout_of(&engine, Request::infill(PREFIX, SUFFIX)),
        expected
    );
    // An empty side is allowed (not both).
    let expected = reference_layout(&engine, &plain(&engine, PREFIX), &[]);
    assert_eq!(layout_of(&engine, Request::infill(PREFIX, "")), expected);
    println!("layout: {} tokens", expected.len());
}

#[test]
fn generation_reads_exactly_that_layout() {
    let engine = fim_engine(512);
    let layout = reference_layout(&engine, &plain(&engine, PREFIX), &plain(&engine, SUFFIX));
    let mut infill = Request::infill(PREFIX, SUFFIX);
    infill.max_tokens = Some(16);
    infill.sampling.temperature = 0.0;
    let mut by_ids = Request::tokens(layout.clone());
    by_ids.max_tokens = Some(16);
    by_ids.sampling.temperature = 0.0;
    engine.reset().unwrap();
    let (middle, usage) = engine.complete(infill).unwrap();
    assert_eq!(usage.prompt_tokens as usize, layout.len());
    assert_eq!(usage.dropped_tokens, 0);
    engine.reset().unwrap();
    let (same, _) = engine.complete(by_ids).unwrap();
    assert_eq!(middle, same);
    assert!(!middle.is_empty());
}

#[test]
fn a_long_prefix_and_suffix_are_cut_as_llama_server_cuts_them() {
    // n_batch 64: the prefix keeps its last 48 tokens, the suffix its first 14.
    let engine = fim_engine(64);
    let prefix = "x = 1\n".repeat(40);
    let suffix = "y = 2\n".repeat(40);
    let (p, s) = (plain(&engine, &prefix), plain(&engine, &suffix));
    assert!(p.len() > 48 && s.len() > 14, "{} {}", p.len(), s.len());
    let expected = reference_layout(&engine, &p[p.len() - 48..], &s[..14]);
    assert_eq!(
        layout_of(&engine, Request::infill(&prefix, &suffix)),
        expected
    );
    let mut request = Request::infill(&prefix, &suffix);
    request.max_tokens = Some(2);
    let (_, usage) = engine.complete(request).unwrap();
    assert_eq!(
        usage.dropped_tokens as usize,
        (p.len() - 48) + (s.len() - 14),
        "the cut is reported"
    );
}

#[test]
fn bad_fill_in_the_middle_requests_are_refused_and_the_engine_serves_on() {
    // The default model has no FIM tokens.
    let engine = engine();
    let e = engine
        .complete(Request::infill(PREFIX, SUFFIX))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("fill-in-the-middle tokens"), "{e}");
    let fim = fim_engine(512);
    for (request, says) in [
        (Request::infill("", ""), "both empty"),
        (Request::infill("a\0b", "c"), "NUL"),
        (Request::infill("a", "b\0"), "suffix"),
    ] {
        let e = fim.complete(request).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let mut ok = Request::infill(PREFIX, SUFFIX);
    ok.max_tokens = Some(2);
    fim.complete(ok).unwrap();
    engine.complete(greedy_raw("Once upon a time", 2)).unwrap();
}
