//! Streams a reply to stdout through Rig's `model.stream`, on a local model through rigllama.
//!
//!   cargo run --release --example rig_stream -- MODEL.gguf ["prompt"]

use std::io::Write;

use futures::StreamExt;
use rig_core::completion::CompletionRequest;
use rig_core::streaming::{Item, StreamEvent};
use rigllama::{Engine, EngineOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = args.next().ok_or("usage: rig_stream MODEL.gguf [PROMPT]")?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "Tell me about the sea.".into());

    let engine = Engine::create(EngineOptions::new(model_path), None)?;
    let model = rigllama::rig::completion_model(&engine);
    let request = CompletionRequest::new(prompt.as_str())
        .temperature(0.7)
        .max_tokens(64);
    let mut stream = model.stream(request)?;
    while let Some(item) = stream.next().await {
        if let Item::Event(StreamEvent::Text { text, .. }) = item? {
            print!("{text}");
            std::io::stdout().flush()?;
        }
    }
    let response = stream.finish().await?;
    println!("\n[{:?}]", response.usage);
    Ok(())
}
