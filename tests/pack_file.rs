//! Models inside pack files: a GGUF stored at an offset of a larger file (a game's asset
//! archive) loads through `model_offset` / `model_size`, mapped when its data section is
//! 32-byte aligned in the file and read otherwise; it answers exactly as the plain file does,
//! its snapshots are the plain file's, reload takes ranges, and ranges that do not hold a GGUF
//! are refused before llama.cpp reads a byte.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use rigllama::{Engine, EngineOptions, Error};

/// `prefix` bytes of junk, the default model, then 1,000 bytes of junk: the archive, and the
/// GGUF's offset and size in it. Cached beside the model (it is as large as the model).
fn pack(prefix: usize) -> (PathBuf, u64, u64) {
    let model = model_path();
    let path = model.with_file_name(format!("pack-{prefix}.bin"));
    let size = std::fs::metadata(&model).unwrap().len();
    let want = prefix as u64 + size + 1000;
    let fresh = std::fs::metadata(&path).is_ok_and(|m| {
        m.len() == want
            && m.modified().unwrap() > std::fs::metadata(&model).unwrap().modified().unwrap()
    });
    if !fresh {
        let part = path.with_extension("part");
        let mut out = std::fs::File::create(&part).unwrap();
        out.write_all(&vec![0xA5; prefix]).unwrap();
        std::io::copy(&mut std::fs::File::open(&model).unwrap(), &mut out).unwrap();
        out.write_all(&[0x5A; 1000]).unwrap();
        drop(out);
        std::fs::rename(&part, &path).unwrap();
    }
    (path, prefix as u64, size)
}

fn options_at(path: &Path, offset: u64, size: u64) -> EngineOptions {
    let mut options = EngineOptions::new(path);
    options.model_offset = offset;
    options.model_size = size;
    options.n_ctx = 512;
    options
}

fn greedy(engine: &Engine) -> String {
    engine.reset().unwrap();
    engine
        .complete(greedy_raw("The lighthouse keeper", 16))
        .unwrap()
        .0
}

#[test]
fn a_gguf_inside_a_pack_file_answers_as_the_plain_file() {
    let plain_started = Instant::now();
    let plain = Engine::create(options_at(&model_path(), 0, 0), None).unwrap();
    let plain_load = plain_started.elapsed();
    let expected = greedy(&plain);
    let snapshot = {
        plain
            .complete(greedy_raw("The lighthouse keeper", 4))
            .unwrap();
        plain
            .save_snapshot(greedy_raw("The lighthouse keeper", 4))
            .unwrap()
    };
    // 4096: the data section stays 32-byte aligned (mapped); 4099: it does not (read).
    for prefix in [4096, 4099] {
        let (path, offset, size) = pack(prefix);
        let started = Instant::now();
        let engine = Engine::create(options_at(&path, offset, size), None).unwrap();
        let load = started.elapsed();
        assert_eq!(greedy(&engine), expected, "offset {offset}");
        // A snapshot of the plain file loads here: the fingerprint is the GGUF's own.
        engine.load_snapshot(&snapshot).unwrap();
        // size 0: to the end of the file, which here has trailing junk llama.cpp ignores.
        let to_end = Engine::create(options_at(&path, offset, 0), None).unwrap();
        assert_eq!(greedy(&to_end), expected);
        println!(
            "offset {offset}: load {:.0} ms (the plain file {:.0} ms)",
            load.as_secs_f64() * 1e3,
            plain_load.as_secs_f64() * 1e3
        );
    }
    // Reload takes a range, and back.
    let (path, offset, size) = pack(4096);
    plain.reload(options_at(&path, offset, size), None).unwrap();
    assert_eq!(greedy(&plain), expected);
    plain.reload(options_at(&model_path(), 0, 0), None).unwrap();
    assert_eq!(greedy(&plain), expected);
}

#[test]
fn ranges_that_hold_no_gguf_are_refused_and_the_old_model_keeps_serving() {
    let (path, offset, size) = pack(4096);
    let len = std::fs::metadata(&path).unwrap().len();
    let refused = |options: EngineOptions, says: &str| {
        let Err(e) = Engine::create(options, None) else {
            panic!("{says}: loaded");
        };
        assert!(
            matches!(e, Error::ModelLoadFailed(_) | Error::InvalidArgument(_)),
            "{e}"
        );
        assert!(e.to_string().contains(says), "expected {says:?} in: {e}");
    };
    refused(options_at(&path, len + 10, 0), "past the end of the file");
    refused(options_at(&path, offset, len), "past the end of the file");
    refused(options_at(&path, 10, 0), "not a GGUF");
    refused(options_at(&path, offset, size - 5000), "past the end");
    let mut fit = options_at(&path, offset, size);
    fit.fit = Some(Default::default());
    refused(fit, "fit");
    // A failed reload keeps the old model.
    let engine = Engine::create(options_at(&path, offset, size), None).unwrap();
    let before = greedy(&engine);
    assert!(engine.reload(options_at(&path, 12, 0), None).is_err());
    assert_eq!(greedy(&engine), before);
}
