mod common;
use common::*;
fn cos(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}
#[test]
fn probe() {
    let engine = engine();
    let t = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly tax filings are due in April.",
    ];
    let alone: Vec<Vec<f32>> = t
        .iter()
        .map(|x| engine.embed(&[x]).unwrap().remove(0))
        .collect();
    for combo in [
        vec![0usize, 1],
        vec![1, 0],
        vec![1, 2],
        vec![2, 1],
        vec![1, 1],
        vec![0, 0],
        vec![2, 2],
        vec![0, 1, 2],
        vec![2, 0],
    ] {
        let texts: Vec<&str> = combo.iter().map(|&i| t[i]).collect();
        let out = engine.embed(&texts).unwrap();
        let sims: Vec<String> = combo
            .iter()
            .zip(&out)
            .map(|(&i, v)| format!("t{i}:{:.4}", cos(v, &alone[i])))
            .collect();
        println!("{combo:?}: {}", sims.join(" "));
    }
    for pair in [
        ["The cat sat on the mat.", "The dog sat on the rug."],
        ["The dog sat on the rug.", "The cat sat on the mat."],
    ] {
        let a: Vec<Vec<f32>> = pair
            .iter()
            .map(|x| engine.embed(&[x]).unwrap().remove(0))
            .collect();
        let b = engine.embed(&pair).unwrap();
        println!(
            "same-length pair: {:.4} {:.4}",
            cos(&a[0], &b[0]),
            cos(&a[1], &b[1])
        );
    }
    let alone_again: Vec<Vec<f32>> = t
        .iter()
        .map(|x| engine.embed(&[x]).unwrap().remove(0))
        .collect();
    for i in 0..3 {
        println!("alone again t{i}: {:.4}", cos(&alone[i], &alone_again[i]));
    }
    println!(
        "alone: cat/para {:.4} cat/tax {:.4}",
        cos(&alone[0], &alone[1]),
        cos(&alone[0], &alone[2])
    );
}
