//! Streams a reply to stdout through Rig's `model.stream`, on a local model through rigllama.
//!
//!   cargo run --release --example rig_stream -- MODEL.gguf ["prompt"] [MAX_TOKENS]

use std::io::Write;

use futures::StreamExt;
use rig_core::completion::CompletionRequest;
use rig_core::streaming::{Item, StreamEvent};
use rigllama::{Engine, EngineOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = args
        .next()
        .ok_or("usage: rig_stream MODEL.gguf [PROMPT] [MAX_TOKENS]")?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "Tell me about the sea.".into());

    let engine = Engine::create(EngineOptions::new(model_path), None)?;
    let model = rigllama::rig::completion_model(&engine);
    let max_tokens: u64 = args.next().map_or(Ok(64), |n| n.parse())?;
    let request = CompletionRequest::new(prompt.as_str())
        .temperature(0.0)
        .max_tokens(max_tokens);
    let mut stream = model.stream(request)?;
    let (mut first, mut last) = (None, std::time::Instant::now());
    while let Some(item) = stream.next().await {
        if let Item::Event(StreamEvent::Text { text, .. }) = item? {
            print!("{text}");
            std::io::stdout().flush()?;
            last = std::time::Instant::now();
            first.get_or_insert(last);
        }
    }
    let response = stream.finish().await?;
    let tokens = response.usage.output_tokens.unwrap_or(0);
    let seconds = first.map_or(0.0, |first| (last - first).as_secs_f64());
    println!();
    eprintln!(
        "[{} prompt tokens ({} cached), {tokens} tokens: {:.1} tokens/s through model.stream]",
        response.usage.input_tokens.unwrap_or(0),
        response.usage.cached_input_tokens.unwrap_or(0),
        if seconds > 0.0 {
            (tokens.saturating_sub(1)) as f64 / seconds
        } else {
            0.0
        }
    );
    Ok(())
}
