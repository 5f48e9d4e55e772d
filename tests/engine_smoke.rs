mod common;
use common::*;

#[test]
fn smoke() {
    let engine = engine();
    println!("{:?}", engine.describe());
    let t = std::time::Instant::now();
    let (text, usage) = engine.complete(greedy_raw("The capital of France is", 32)).unwrap();
    println!("{text:?} {usage:?} {:?}", t.elapsed());
    let (text, usage) = engine.complete(greedy_chat("Write a haiku about rust.", 64)).unwrap();
    println!("{text:?} {usage:?}");
    let mut pieces = Vec::new();
    let usage = engine.stream(greedy_chat("Write a haiku about rust.", 64), |p| { pieces.push(p.to_owned()); true }).unwrap();
    println!("{pieces:?} {usage:?}");
}
