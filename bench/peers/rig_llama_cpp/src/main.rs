//! usage: rig-llama-cpp-peer MODEL MAX_TOKENS
//! Prints {"load_ms", "ttft_ms", "tokens", "tg_tok_s"} for one streamed reply.
use std::time::Instant;

use futures::StreamExt;
use rig_core::completion::CompletionRequest;
use rig_core::streaming::{Item, StreamEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let max_tokens: u64 = args[2].parse()?;
    let started = Instant::now();
    let client = rig_llama_cpp::Client::builder(args[1].clone()).n_ctx(4096).build()?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let model = client.completion_model("local");
    let request = CompletionRequest::new("Once upon a time, in a faraway kingdom,")
        .temperature(0.0)
        .max_tokens(max_tokens);
    let sent = Instant::now();
    let mut stream = model.stream(request)?;
    let (mut first, mut last, mut pieces) = (None, sent, 0u32);
    while let Some(item) = stream.next().await {
        if let Item::Event(StreamEvent::Text { .. }) = item? {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            pieces += 1;
        }
    }
    let response = stream.finish().await?;
    let tokens = response.usage.output_tokens.unwrap_or(pieces as u64);
    let first = first.unwrap_or(last);
    let tg = if tokens > 1 { (tokens - 1) as f64 / (last - first).as_secs_f64() } else { 0.0 };
    println!(
        "{{\"load_ms\": {load_ms:.1}, \"ttft_ms\": {:.1}, \"tokens\": {tokens}, \"tg_tok_s\": {tg:.3}}}",
        (first - sent).as_secs_f64() * 1e3
    );
    Ok(())
}
