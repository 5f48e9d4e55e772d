//! The Rig adapter against the real default model: rigllama as a rig-core 0.44 model.
#![cfg(feature = "rig")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use rig_agent::agent::{
    AgentHook, CompletionCallAction, CompletionCallEvent, HookContext, RequestPatch,
};
use rig_agent::AgentBuilder;
use rig_core::completion::{
    CompletionRequest, FinishReason as RigFinishReason, Reasoning, ToolDefinition,
};
use rig_core::message::{
    AssistantContent, Message as RigMessage, ToolChoice, ToolName, UserContent,
};
use rig_core::operation::RerankRequest;
use rig_core::streaming::{Item, StreamEvent};
use rig_core::tool::PortableTool;
use rig_core::ProviderError;
use rigllama::ffi;
use serde_json::json;

fn greedy(prompt: &str, max_tokens: u64) -> CompletionRequest {
    CompletionRequest::new(prompt)
        .temperature(0.0)
        .max_tokens(max_tokens)
}

#[tokio::test]
async fn model_call_returns_text_and_usage() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let response = model.call(greedy("Name a color.", 16)).await.unwrap();
    assert!(!response.text().is_empty());
    assert!(
        response.usage.input_tokens.unwrap() > 5,
        "{:?}",
        response.usage
    );
    assert_eq!(response.usage.output_tokens, Some(16));
    assert_eq!(
        response.usage.total_tokens,
        Some(response.usage.input_tokens.unwrap() + 16)
    );
}

#[tokio::test]
async fn model_stream_text_equals_call_text_at_temperature_zero() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let request = || greedy("Describe the moon.", 48).seed(7);
    engine.reset().unwrap();
    let called = model.call(request()).await.unwrap().text();
    engine.reset().unwrap();
    let mut stream = model.stream(request()).unwrap();
    let mut streamed = String::new();
    let mut events = 0;
    while let Some(item) = stream.next().await {
        if let Item::Event(StreamEvent::Text { text, .. }) = item.unwrap() {
            streamed.push_str(&text);
            events += 1;
        }
    }
    assert!(events > 5, "{events} text events");
    assert_eq!(streamed, called);
    let folded = stream.finish().await.unwrap();
    assert_eq!(folded.text(), called);
}

/// The same request from C (`rigllama_engine_complete`) and from Rig gives the same text.
#[tokio::test]
async fn rig_and_the_c_abi_give_the_same_reply() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let prompt = "Write one sentence about rivers.";
    engine.reset().unwrap();
    let from_rig = model
        .call(greedy(prompt, 40).preamble("You are terse."))
        .await
        .unwrap()
        .text();

    let from_c = tokio::task::spawn_blocking(move || unsafe {
        let model = model_path();
        let path = std::ffi::CString::new(model.to_str().unwrap()).unwrap();
        let mut options = std::mem::zeroed::<ffi::rigllama_engine_options>();
        ffi::rigllama_engine_options_init(&mut options, std::mem::size_of_val(&options));
        options.model_path = path.as_ptr();
        let mut c_engine = std::ptr::null_mut();
        assert_eq!(
            ffi::rigllama_engine_create(&options, &mut c_engine),
            ffi::rigllama_status::Ok
        );
        let mut request = std::mem::zeroed::<ffi::rigllama_request>();
        ffi::rigllama_request_init(&mut request, std::mem::size_of_val(&request));
        let prompt = std::ffi::CString::new(prompt).unwrap();
        let system = std::ffi::CString::new("You are terse.").unwrap();
        request.prompt = prompt.as_ptr();
        request.system_prompt = system.as_ptr();
        request.temperature = 0.0;
        request.max_tokens = 40;
        let mut text = std::ptr::null_mut();
        let status =
            ffi::rigllama_engine_complete(c_engine, &request, &mut text, std::ptr::null_mut());
        assert_eq!(status, ffi::rigllama_status::Ok);
        let reply = std::ffi::CStr::from_ptr(text).to_str().unwrap().to_owned();
        ffi::rigllama_string_free(text);
        ffi::rigllama_engine_destroy(c_engine);
        reply
    })
    .await
    .unwrap();
    assert_eq!(from_rig, from_c);
}

#[tokio::test]
async fn a_second_turn_through_rig_reports_cached_input_tokens() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    engine.reset().unwrap();
    let first = model
        .call(greedy("What is the capital of France?", 32))
        .await
        .unwrap();
    let turn1_total = first.usage.input_tokens.unwrap() + first.usage.output_tokens.unwrap();
    let second = CompletionRequest::new("And of Germany?")
        .messages([
            RigMessage::user("What is the capital of France?"),
            RigMessage::assistant(first.text()),
        ])
        .temperature(0.0)
        .max_tokens(8);
    let response = model.call(second).await.unwrap();
    let cached = response.usage.cached_input_tokens.unwrap();
    println!("turn 1 {turn1_total} tokens; turn 2 reused {cached}");
    assert!(
        cached as f64 >= 0.9 * turn1_total as f64,
        "{cached} of {turn1_total}"
    );
}

#[tokio::test]
async fn dropping_the_stream_mid_generation_frees_the_engine_within_half_a_second() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let mut stream = model
        .stream(greedy("Write a long story about the sea.", 2000))
        .unwrap();
    let mut texts = 0;
    while texts < 5 {
        if let Item::Event(StreamEvent::Text { .. }) = stream.next().await.unwrap().unwrap() {
            texts += 1;
        }
    }
    let dropped = Instant::now();
    drop(stream);
    let next = model.call(greedy("Hello", 1)).await.unwrap();
    let elapsed = dropped.elapsed();
    println!("the next request finished {elapsed:?} after the drop");
    assert_eq!(next.usage.output_tokens, Some(1));
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test]
async fn stop_sequences_are_honoured() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let prompt = "The three primary colors are";
    let full = model.call(greedy(prompt, 24)).await.unwrap().text();
    let at = (1..full.len())
        .find(|&i| i >= full.len() / 2 && full.is_char_boundary(i))
        .unwrap();
    let stop: String = full[at..].chars().take(3).collect();
    let stopped = model
        .call(greedy(prompt, 24).stop([stop.clone()]))
        .await
        .unwrap()
        .text();
    assert_eq!(stopped, full[..full.find(&stop).unwrap()]);
}

#[tokio::test]
async fn additional_params_reach_the_sampler_and_logprobs_come_back_in_raw() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let plain = model.call(greedy("Name a color.", 12)).await.unwrap();
    assert!(plain.raw["logprobs"].is_null(), "none unless asked");
    let response = model
        .call(greedy("Name a color.", 12).additional_params(json!({
            "presence_penalty": 2.0, "repeat_last_n": -1, "top_logprobs": 3,
        })))
        .await
        .unwrap();
    let content = response.raw["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content in raw");
    assert_eq!(Some(content.len() as u64), response.usage.output_tokens);
    for entry in content {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(
            top[0]["id"], entry["id"],
            "temperature 0 takes the top choice"
        );
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
    }
    // What the engine cannot honour is refused, not ignored.
    let error = model
        .call(greedy("hi", 4).additional_params(json!({"best_of": 3})))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("additional_params.best_of"),
        "{error}"
    );
}

#[tokio::test]
async fn speculation_is_an_additional_param_and_its_counters_come_back_in_raw() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let prompt = "Copy the following paragraph exactly, word for word.\n\nThe Harbor Street \
                  Library opened in 1911 with a collection of four thousand books donated by the \
                  town's shipping merchants. The original building was a single brick hall with \
                  tall windows facing the water. In 1952 a fire destroyed the reading room, and \
                  most of the maritime maps kept there were lost.";
    // The copy ends at "lost."; after it this small model rambles, with near ties.
    let request = || greedy(prompt, 80).stop(["lost.".to_string()]);
    engine.reset().unwrap();
    let plain = model.call(request()).await.unwrap();
    assert_eq!(plain.raw["usage"]["drafted_tokens"], 0, "off unless asked");
    engine.reset().unwrap();
    let guessed = model
        .call(request().additional_params(json!({"speculative.n_max": 8})))
        .await
        .unwrap();
    assert_eq!(guessed.text(), plain.text());
    let usage = &guessed.raw["usage"];
    let (drafted, accepted) = (
        usage["drafted_tokens"].as_u64().unwrap(),
        usage["accepted_tokens"].as_u64().unwrap(),
    );
    assert!(accepted > 20 && accepted <= drafted, "{usage}");
}

#[tokio::test]
async fn unsupported_options_are_refused_with_a_clear_error() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    // The engine can return several calls in a reply, but cannot hold it to one.
    let error = model
        .call(greedy("hi", 4).parallel_tool_calls(false))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::UnsupportedOption(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("parallel_tool_calls"), "{error}");

    // A reasoning budget is kept (the default model's template has no thinking block).
    model
        .call(greedy("hi", 4).reasoning(Reasoning::Budget { tokens: 100 }))
        .await
        .unwrap();

    let error = model
        .call(greedy("hi", 4).seed(u64::MAX))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("32-bit"), "{error}");

    let error = model
        .call(greedy("hi", 4).temperature(-1.0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("temperature"), "{error}");
}

/// Adds two integers, counting its calls.
#[derive(Clone, Default)]
struct Add {
    calls: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct AddArgs {
    a: i64,
    b: i64,
}

impl PortableTool for Add {
    const NAME: &'static str = "add";
    type Args = AddArgs;
    type Output = i64;
    type Error = std::convert::Infallible;

    fn description(&self) -> String {
        "Adds two integers and returns their sum.".into()
    }

    fn parameters(&self) -> serde_json::Value {
        add_parameters()
    }

    async fn call(&self, args: AddArgs) -> Result<i64, Self::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(args.a.wrapping_add(args.b))
    }
}

fn add_parameters() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "a": { "type": "integer", "description": "The first addend" },
            "b": { "type": "integer", "description": "The second addend" },
        },
        "required": ["a", "b"],
    })
}

/// The agent's first model call must call a tool and every later one must answer in text:
/// the default model is tiny, and this keeps its tool loop to call, result, answer.
struct CallThenAnswer;

impl AgentHook for CallThenAnswer {
    async fn on_completion_call(
        &self,
        _ctx: &HookContext,
        event: CompletionCallEvent<'_>,
    ) -> CompletionCallAction {
        let choice = if event.turn == 1 {
            ToolChoice::Required
        } else {
            ToolChoice::None
        };
        CompletionCallAction::patch(RequestPatch::new().tool_choice(choice))
    }
}

/// A rig-agent agent with a real tool on the default model: the model calls the tool, Rig
/// runs it and sends the result back as a tool turn, and the model answers in text, all
/// within the turn budget.
#[tokio::test]
async fn agent_runs_a_whole_tool_loop() {
    let engine = engine();
    let add = Add::default();
    let agent = AgentBuilder::new(rigllama::rig::completion_model(&engine))
        .preamble("You are a calculator. Use the add tool to add numbers.")
        .temperature(0.0)
        .max_tokens(96)
        .add_hook(CallThenAnswer)
        .tool(add.clone())
        .build();
    let response = agent
        .prompt("What is 2 + 3?")
        .max_turns(4)
        .await
        .expect("the tool loop completes within 4 model calls");
    println!("agent> {}", response.output());
    for message in response.messages() {
        println!("  {message:?}");
    }
    assert!(add.calls.load(Ordering::SeqCst) >= 1, "the tool never ran");
    let calls = response.completion_calls();
    assert!(calls.len() >= 2, "{} model calls", calls.len());
    assert_eq!(calls[0].finish_reason, Some(RigFinishReason::ToolCalls));
    // The tool's result went back to the model as a tool result.
    assert!(response.messages().iter().any(|message| matches!(
        message,
        RigMessage::User { content }
            if content.iter().any(|part| matches!(part, UserContent::ToolResult(_)))
    )));
    assert!(!response.output().trim().is_empty(), "no final answer");
}

/// One Rig call with a required tool: a whole call block with JSON arguments, the tool-calls
/// finish reason, and the call in the raw document.
#[tokio::test]
async fn a_required_tool_call_comes_back_as_rigs_call_block() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let request = greedy("What is 2 + 3? Use the add tool.", 96)
        .tool(ToolDefinition::new(
            ToolName::new("add").unwrap(),
            "Adds two integers and returns their sum.",
            add_parameters(),
        ))
        .tool_choice(ToolChoice::Required);
    let response = model.call(request).await.unwrap();
    println!("{:?}\n{}", response.choice, response.raw);
    let calls: Vec<_> = response.tool_calls().collect();
    assert!(!calls.is_empty(), "{:?}", response.choice);
    assert_eq!(calls[0].function.name.as_str(), "add");
    assert!(calls[0].function.invalid_arguments.is_none());
    assert!(
        calls[0]
            .function
            .arguments
            .get("a")
            .is_some_and(serde_json::Value::is_i64),
        "{:?}",
        calls[0].function
    );
    assert_eq!(response.finish_reason(), Some(RigFinishReason::ToolCalls));
    assert!(response
        .choice
        .iter()
        .all(|part| !matches!(part, AssistantContent::Text(text) if !text.text.is_empty())));
    assert_eq!(response.raw["tool_calls"][0]["name"], "add");
}

/// `output_schema` holds the reply to the schema.
#[tokio::test]
async fn the_output_schema_constrains_the_reply() {
    let engine = engine();
    let model = rigllama::rig::completion_model(&engine);
    let schema = json!({
        "type": "object",
        "properties": { "city": { "type": "string", "maxLength": 32 } },
        "required": ["city"],
    });
    let request = greedy("Name the capital of France.", 64)
        .output_schema(rig_core::schemars::Schema::try_from(schema).unwrap());
    let text = model.call(request).await.unwrap().text();
    let reply: serde_json::Value = serde_json::from_str(&text).expect("the reply is JSON");
    assert!(reply["city"].is_string(), "{reply}");
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Three documents in one Rig call: one vector each, the engine's own, of its width and unit
/// length, and closer for the paraphrase than for the unrelated sentence.
#[tokio::test]
async fn embedding_model_embeds_a_batch_with_the_engines_vectors() {
    let engine = engine();
    let model = rigllama::rig::embedding_model(&engine);
    let n_embd = engine.describe().n_embd as usize;
    assert!(n_embd > 0);
    assert_eq!(model.capabilities().ndims, n_embd);
    assert_eq!(
        model.capabilities().max_documents,
        rigllama::rig::MAX_EMBED_DOCUMENTS
    );
    let texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly tax filings are due in April.",
    ];
    let response = model.call(texts.map(String::from).to_vec()).await.unwrap();
    assert_eq!(response.provider, rigllama::rig::PROVIDER);
    let vectors: Vec<&[f64]> = response.embeddings.iter().map(|e| &e.vec[..]).collect();
    assert_eq!(vectors.len(), 3);
    for (embedding, text) in response.embeddings.iter().zip(texts) {
        assert_eq!(embedding.document, text);
        assert_eq!(embedding.vec.len(), n_embd);
        let norm = cosine(&embedding.vec, &embedding.vec).sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let paraphrase = cosine(vectors[0], vectors[1]);
    let unrelated = cosine(vectors[0], vectors[2]);
    println!("cosine: paraphrase {paraphrase:.4}, unrelated {unrelated:.4}");
    assert!(paraphrase > unrelated, "{paraphrase} vs {unrelated}");

    // The batch went to the engine as one embed call.
    let direct = engine.embed(&texts).unwrap();
    for (rig, direct) in vectors.iter().zip(&direct) {
        let direct: Vec<f64> = direct.iter().copied().map(f64::from).collect();
        assert!(cosine(rig, &direct) > 0.9999);
    }
}

/// A text's vector is the same alone as in a batch with texts of other lengths.
#[tokio::test]
async fn an_embedding_does_not_depend_on_its_batch() {
    let engine = engine();
    let model = rigllama::rig::embedding_model(&engine);
    let texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly tax filings are due in April.",
    ];
    let batch = model.call(texts.map(String::from).to_vec()).await.unwrap();
    for (text, in_batch) in texts.iter().zip(&batch.embeddings) {
        let alone = model.embed_text(text).await.unwrap();
        let similarity = cosine(&alone.vec, &in_batch.vec);
        assert!(similarity > 0.9999, "{text:?}: {similarity}");
    }
}

/// Rig's EmbeddingsBuilder and in-memory vector store over the engine: the nearest document to
/// a query is the one about the same thing.
#[tokio::test]
async fn embedding_model_serves_rigs_in_memory_vector_store() {
    use rig_core::embeddings::EmbeddingsBuilder;
    use rig_core::vector_store::in_memory_store::InMemoryVectorStore;
    use rig_core::vector_store::request::VectorSearchRequest;
    use rig_core::vector_store::VectorStoreIndex;

    let engine = engine();
    let model = rigllama::rig::embedding_model(&engine);
    let documents = EmbeddingsBuilder::new(model.clone())
        .documents([
            "The cat sat on the mat.".to_owned(),
            "Quarterly tax filings are due in April.".to_owned(),
            "The train to Paris leaves at noon.".to_owned(),
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    assert_eq!(documents.len(), 3);
    let index = InMemoryVectorStore::from_documents(documents).index(model);
    let found = index
        .top_n::<String>(
            VectorSearchRequest::builder()
                .query("A cat was sitting on the mat.")
                .samples(1)
                .build(),
        )
        .await
        .unwrap();
    println!("{found:?}");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].document, "The cat sat on the mat.");
}

#[tokio::test]
async fn embedding_requests_the_engine_cannot_serve_are_refused() {
    let engine = engine();
    let model = rigllama::rig::embedding_model(&engine);
    let too_many = vec!["word".to_owned(); rigllama::rig::MAX_EMBED_DOCUMENTS + 1];
    let error = model.call(too_many).await.unwrap_err();
    assert!(matches!(error, ProviderError::Request(_)), "{error:?}");
    assert!(error.to_string().contains("at most"), "{error}");

    let too_long = long_prompt(rigllama::MAX_EMBED_TOKENS as usize + 500);
    let error = model.embed_text(&too_long).await.unwrap_err();
    assert!(matches!(error, ProviderError::Request(_)), "{error:?}");
    assert!(error.to_string().contains("tokens"), "{error}");

    assert!(model
        .call(Vec::<String>::new())
        .await
        .unwrap()
        .embeddings
        .is_empty());
}

fn rerank_request(query: &str, documents: &[&str]) -> RerankRequest {
    RerankRequest {
        query: query.to_owned(),
        documents: documents.iter().map(|d| d.to_string()).collect(),
    }
}

const RERANK_QUERY: &str = "what is a cat?";
const RERANK_DOCUMENTS: [&str; 5] = [
    "Granite is a hard igneous rock.",
    "A cat is a small furry animal that purrs.",
    "The train to Paris leaves at noon.",
    "Cats sleep for most of the day.",
    "Quarterly tax filings are due in April.",
];

/// The default model is not a reranker: a Rig rerank call fails as `Engine::rerank` does, with
/// rig's request error carrying the engine's own message. More documents than one call takes
/// are refused before they reach the engine.
#[tokio::test]
async fn rerank_model_on_a_model_that_is_not_a_reranker_is_refused_with_the_engines_message() {
    let engine = engine();
    let model = rigllama::rig::rerank_model(&engine);
    assert_eq!(
        model.capabilities().max_documents,
        rigllama::rig::MAX_RERANK_DOCUMENTS
    );
    let refused = engine.rerank(RERANK_QUERY, &RERANK_DOCUMENTS).unwrap_err();
    assert!(
        matches!(refused, rigllama::Error::InvalidArgument(_)),
        "{refused:?}"
    );
    let error = model
        .call(rerank_request(RERANK_QUERY, &RERANK_DOCUMENTS))
        .await
        .unwrap_err();
    println!("{error}");
    match &error {
        ProviderError::Request(reason) => assert_eq!(reason.to_string(), refused.to_string()),
        other => panic!("not rig's request error: {other:?}"),
    }
    assert!(error.to_string().contains("not a reranker"), "{error}");

    let too_many = vec!["word"; rigllama::rig::MAX_RERANK_DOCUMENTS + 1];
    let error = model
        .call(rerank_request(RERANK_QUERY, &too_many))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Request(_)), "{error:?}");
    assert!(error.to_string().contains("at most"), "{error}");
}

/// On a reranker (the tiny fixture of `scripts/make-reranker-model`), a Rig call
/// returns `Engine::rerank`'s scores in rig's `RerankResponse`: one result per document, sorted
/// by relevance, highest first (equal scores in input order), each with the document's index in
/// the request and its engine score, no document text.
#[tokio::test]
async fn rerank_model_returns_the_engines_scores_in_rigs_ranked_order() {
    let path = reranker_model_path();
    let engine = rigllama::Engine::create(rigllama::EngineOptions::new(&path), None)
        .expect("the reranker loads");
    let model = rigllama::rig::rerank_model(&engine);
    let scores = engine.rerank(RERANK_QUERY, &RERANK_DOCUMENTS).unwrap();
    println!("engine scores: {scores:?}");
    assert_eq!(scores.len(), RERANK_DOCUMENTS.len());

    let response = model
        .call(rerank_request(RERANK_QUERY, &RERANK_DOCUMENTS))
        .await
        .unwrap();
    println!("{:?}", response.results);
    assert_eq!(response.provider, rigllama::rig::PROVIDER);
    let stem = std::path::Path::new(&path).file_stem().unwrap();
    assert_eq!(response.model.as_deref(), stem.to_str());
    assert_eq!(response.usage, Default::default());

    // Every document once, with its engine score (the same batch: the same bits).
    let mut indices: Vec<usize> = response.results.iter().map(|r| r.index).collect();
    for result in &response.results {
        assert_eq!(result.relevance_score, f64::from(scores[result.index]));
        assert!(result.document.is_none());
    }
    // Most relevant first; a tie in input order.
    for pair in response.results.windows(2) {
        assert!(
            pair[0].relevance_score > pair[1].relevance_score
                || (pair[0].relevance_score == pair[1].relevance_score
                    && pair[0].index < pair[1].index),
            "{pair:?}"
        );
    }
    let mut expected: Vec<usize> = (0..scores.len()).collect();
    expected.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    assert_eq!(indices, expected);
    assert_ne!(
        expected,
        (0..scores.len()).collect::<Vec<_>>(),
        "the fixture's scores should reorder these documents"
    );
    indices.sort_unstable();
    assert_eq!(indices, (0..RERANK_DOCUMENTS.len()).collect::<Vec<_>>());

    // The same documents in reverse: each index still names its own document, whose score is
    // the one it had in input order (to rounding: a score moves a little with the document's
    // place in the engine's batch), nearer to it than to any other document's.
    let reversed: Vec<&str> = RERANK_DOCUMENTS.iter().rev().copied().collect();
    let response = model
        .call(rerank_request(RERANK_QUERY, &reversed))
        .await
        .unwrap();
    assert_eq!(response.results.len(), reversed.len());
    for result in &response.results {
        let original = RERANK_DOCUMENTS.len() - 1 - result.index;
        let distance = |i: usize| (result.relevance_score - f64::from(scores[i])).abs();
        let nearest = (0..scores.len())
            .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
            .unwrap();
        assert_eq!(nearest, original, "{result:?} vs {scores:?}");
        assert!(distance(original) < 1e-2, "{result:?} vs {scores:?}");
    }

    // No documents: no results; an empty document: the engine's refusal as rig's.
    let empty = model.call(rerank_request(RERANK_QUERY, &[])).await.unwrap();
    assert!(empty.results.is_empty());
    let error = model
        .call(rerank_request(RERANK_QUERY, &["fine", ""]))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Request(_)), "{error:?}");
    assert!(
        error.to_string().contains("documents[1] is empty"),
        "{error}"
    );
}
