//! A Rig agent with a preamble, answering a prompt on a local model through rigllama.
//!
//!   cargo run --release --example rig_agent -- MODEL.gguf ["question"]

use rig_agent::AgentBuilder;
use rigllama::{Engine, EngineOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = args
        .next()
        .ok_or("usage: rig_agent MODEL.gguf [QUESTION]")?;
    let question = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());

    let engine = Engine::create(EngineOptions::new(model_path), None)?;
    let agent = AgentBuilder::new(rigllama::rig::completion_model(&engine))
        .preamble("You are a helpful assistant. Answer in one short sentence.")
        .temperature(0.0)
        .max_tokens(48)
        .build();
    let answer = agent.prompt(question.as_str()).await?;
    println!("user> {question}\nagent> {}", answer.output());
    Ok(())
}
