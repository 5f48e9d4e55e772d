//! Images in messages. Built without the `mtmd` feature (the default build), a projector or an
//! image is refused with an error that says how to get vision. With it (`make test` builds
//! and runs these in a second target dir), on the default model and the tiny random Gemma 3
//! projector made by `scripts/make-vision-projector`: an image request completes, counts its
//! image tokens, is deterministic at temperature 0, reuses the image from the cache when the
//! same image comes again (and not when another does), takes data: URLs and file paths, and
//! a cancel or destroy during encoding returns promptly.

mod common;

use common::*;
use rigllama::{Engine, EngineOptions, Error, Image, Message, Request, Role};

/// A BMP file (stb_image reads it) of `width` x `height` pixels, a pattern set by `seed`.
fn bmp(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let size = 54 + row * height;
    let mut file = Vec::with_capacity(size as usize);
    file.extend_from_slice(b"BM");
    for value in [size, 0, 54, 40] {
        file.extend_from_slice(&value.to_le_bytes());
    }
    file.extend_from_slice(&(width as i32).to_le_bytes());
    file.extend_from_slice(&(height as i32).to_le_bytes());
    file.extend_from_slice(&1u16.to_le_bytes());
    file.extend_from_slice(&24u16.to_le_bytes());
    for value in [0u32, row * height, 2835, 2835, 0, 0] {
        file.extend_from_slice(&value.to_le_bytes());
    }
    for y in 0..height {
        for x in 0..width {
            let v = (x * 7 + y * 13) as u8;
            file.extend_from_slice(&[v.wrapping_add(seed), v ^ seed, seed.wrapping_mul(3)]);
        }
        file.resize(file.len() + (row - width * 3) as usize, 0);
    }
    file
}

fn describe(image: Image) -> Request {
    let mut request = Request::chat(vec![Message::with_images(
        Role::User,
        vec![image],
        "Describe this picture.",
    )]);
    request.sampling.temperature = 0.0;
    request.max_tokens = Some(12);
    request
}

#[cfg(not(feature = "mtmd"))]
#[test]
fn without_the_feature_a_projector_and_an_image_are_refused_saying_how_to_get_vision() {
    let options = EngineOptions {
        mmproj_path: Some("/any/mmproj.gguf".into()),
        ..options()
    };
    match Engine::create(options, None) {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("`mtmd`"), "{message}"),
        other => panic!("{other:?}"),
    }
    let engine = engine();
    let image = Image::from_bytes(bmp(32, 32, 1)).unwrap();
    match engine.complete(describe(image)) {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("`mtmd`"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The engine still serves text.
    assert!(engine.complete(greedy_chat("Hello", 2)).is_ok());
}

#[test]
fn image_parts_are_read_and_checked_before_anything_runs() {
    let dir = std::env::temp_dir().join(format!("rigllama-vision-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("picture.bmp");
    std::fs::write(&path, bmp(16, 16, 9)).unwrap();
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(bmp(16, 16, 9));
    let parse = |json: String| Message::parse_openai_list(&json);
    let part = |url: &str| {
        format!(
            r#"[{{"role":"user","content":[{{"type":"text","text":"Look: "}},{{"type":"image_url","image_url":{{"url":"{url}"}}}}]}}]"#
        )
    };
    let from_data = parse(part(&format!("data:image/bmp;base64,{data}"))).unwrap();
    let from_file = parse(part(&format!("file://{}", path.display()))).unwrap();
    let from_path = parse(part(path.to_str().unwrap())).unwrap();
    assert_eq!(from_data[0].images.len(), 1);
    assert_eq!(
        from_data[0].content,
        format!("Look: {}", rigllama::MEDIA_MARKER)
    );
    assert_eq!(
        from_data, from_file,
        "a data: URL and a file:// URL of the same bytes"
    );
    assert_eq!(from_file, from_path);
    for (url, expected) in [
        ("https://example.com/a.png", "not fetched"),
        ("data:image/png,abc", "base64"),
        ("data:image/png;base64,@@@", "base64"),
        ("/no/such/image.png", "cannot read"),
    ] {
        let error = parse(part(url)).unwrap_err().to_string();
        assert!(
            error.contains("content[1]") && error.contains(expected),
            "{url}: {error}"
        );
    }
    let marker = format!(
        r#"[{{"role":"user","content":"a {} in text"}}]"#,
        rigllama::MEDIA_MARKER
    );
    assert!(parse(marker).unwrap_err().to_string().contains("remove it"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "mtmd")]
mod with_vision {
    use super::*;
    use rigllama::Usage;

    fn vision_engine() -> Engine {
        let options = EngineOptions {
            mmproj_path: Some(vision_projector_path()),
            ..options()
        };
        Engine::create(options, None).expect("the model loads with the fixture projector")
    }

    #[test]
    fn an_image_request_completes_counts_its_tokens_and_is_deterministic() {
        let engine = vision_engine();
        assert!(!engine.describe().mmproj_path.is_empty());
        let image = Image::from_bytes(bmp(64, 48, 3)).unwrap();
        let (first, usage) = engine.complete(describe(image.clone())).unwrap();
        println!("{first:?} {usage:?}");
        assert!(usage.image_tokens > 0, "{usage:?}");
        assert!(usage.prompt_tokens > usage.image_tokens + 5);
        assert_eq!(usage.completion_tokens, 12);
        // The same request on a fresh engine: the same reply.
        let fresh = vision_engine();
        let (again, _) = fresh.complete(describe(image.clone())).unwrap();
        assert_eq!(
            first, again,
            "greedy decoding with an image is deterministic"
        );
        // And on the same engine: the image is reused from the cache.
        let (cached, reuse): (String, Usage) = engine.complete(describe(image)).unwrap();
        assert_eq!(cached, first);
        assert_eq!(
            reuse.cached_prompt_tokens + 1,
            reuse.prompt_tokens,
            "{reuse:?}"
        );
    }

    #[test]
    fn another_image_in_the_same_place_is_evaluated_again() {
        let engine = vision_engine();
        let (_, one) = engine
            .complete(describe(Image::from_bytes(bmp(64, 48, 3)).unwrap()))
            .unwrap();
        let (_, two) = engine
            .complete(describe(Image::from_bytes(bmp(64, 48, 200)).unwrap()))
            .unwrap();
        assert_eq!(one.prompt_tokens, two.prompt_tokens);
        assert!(
            two.cached_prompt_tokens + two.image_tokens < two.prompt_tokens,
            "only the text before the image is reused: {two:?}"
        );
    }

    #[test]
    fn an_image_the_projector_cannot_read_is_refused_and_the_engine_serves_on() {
        let engine = vision_engine();
        // Bytes of no known format, and a picture cut short. (Decoded in Rust: nothing is
        // handed to an ffmpeg subprocess, as mtmd's own helper would.)
        let cut_short = bmp(64, 48, 3)[..80].to_vec();
        for bytes in [b"this is not a picture".to_vec(), cut_short] {
            match engine.complete(describe(Image::from_bytes(bytes).unwrap())) {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.contains("could not be decoded"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(engine.complete(greedy_chat("Hello", 2)).is_ok());
    }

    #[test]
    fn an_image_larger_than_a_batch_is_refused_saying_what_n_batch_it_needs() {
        // Gemma 3 decodes an image's tokens attending both ways: one batch must hold them.
        let options = EngineOptions {
            mmproj_path: Some(vision_projector_path()),
            n_batch: 8,
            ..options()
        };
        let engine = Engine::create(options, None).unwrap();
        match engine.complete(describe(Image::from_bytes(bmp(32, 32, 1)).unwrap())) {
            Err(Error::InvalidArgument(message)) => {
                assert!(message.contains("set n_batch to at least 16"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(engine.complete(greedy_chat("Hello", 2)).is_ok());
    }

    #[test]
    fn an_engine_without_a_projector_refuses_an_image_saying_what_to_set() {
        let engine = engine();
        let image = Image::from_bytes(bmp(32, 32, 1)).unwrap();
        match engine.complete(describe(image)) {
            Err(Error::InvalidArgument(message)) => {
                assert!(message.contains("mmproj_path"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let missing = EngineOptions {
            mmproj_path: Some("/no/such/mmproj.gguf".into()),
            ..options()
        };
        match Engine::create(missing, None) {
            Err(Error::ModelLoadFailed(message)) => {
                assert!(message.contains("/no/such/mmproj.gguf"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Rig: an image in a user message reaches the model when the engine has a projector
    /// (its tokens come back in raw usage); without one, Rig's history adapter leaves it out
    /// with a note in the text, as for any model that reads no images.
    #[cfg(feature = "rig")]
    #[test]
    fn a_rig_user_image_reaches_the_model_when_the_engine_has_a_projector() {
        use base64::Engine as _;
        use rig_core::completion::CompletionRequest;
        use rig_core::message::{
            DocumentSourceKind, Image as RigImage, Message as RigMessage, UserContent,
        };
        let picture = base64::engine::general_purpose::STANDARD.encode(bmp(64, 48, 3));
        let request = || {
            CompletionRequest::new(RigMessage::User {
                content: vec![
                    UserContent::Image(RigImage {
                        data: DocumentSourceKind::Base64(picture.clone()),
                        ..Default::default()
                    }),
                    UserContent::text("Describe this picture."),
                ],
            })
            .temperature(0.0)
            .max_tokens(6)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (engine, image_tokens) in [(vision_engine(), 16), (engine(), 0)] {
            let model = rigllama::rig::completion_model(&engine);
            let reply = runtime
                .block_on(model.call(request()))
                .expect("the call completes");
            assert_eq!(
                reply.raw["usage"]["image_tokens"], image_tokens,
                "{}",
                reply.raw
            );
        }
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn cancel_and_destroy_during_encoding_return_promptly() {
        use rigllama::fault::slow_encoder;
        use std::time::{Duration, Instant};
        let engine = vision_engine();
        // Paused 100 ms at each cancel check (every 8 graph nodes), encoding this image takes
        // about a second: a cancel after the third check lands well inside it.
        slow_encoder::set(true);
        let wait_for_encoding = || {
            let start = Instant::now();
            while slow_encoder::checks() < 3 {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "encoding never started"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let mut job = engine
            .submit(describe(Image::from_bytes(bmp(64, 48, 5)).unwrap()))
            .unwrap();
        wait_for_encoding();
        let asked = Instant::now();
        job.cancel();
        let ended = loop {
            match job.blocking_next() {
                rigllama::Event::Failed { error, .. } => break error,
                rigllama::Event::Done(usage) => panic!("finished: {usage:?}"),
                _ => {}
            }
        };
        assert!(matches!(ended, Error::Cancelled(_)), "{ended:?}");
        let cancel_ms = asked.elapsed().as_millis();
        assert!(cancel_ms < 1000, "cancel took {cancel_ms} ms");
        slow_encoder::set(false);
        let (_, usage) = engine
            .complete(describe(Image::from_bytes(bmp(64, 48, 5)).unwrap()))
            .expect("the engine serves the same image after the cancel");
        assert_eq!(
            usage.cached_prompt_tokens as usize, 0,
            "nothing half-decoded was kept"
        );

        slow_encoder::set(true);
        let _job = engine
            .submit(describe(Image::from_bytes(bmp(64, 48, 6)).unwrap()))
            .unwrap();
        wait_for_encoding();
        let asked = Instant::now();
        engine.shutdown();
        let destroy_ms = asked.elapsed().as_millis();
        slow_encoder::set(false);
        println!("cancel {cancel_ms} ms, destroy {destroy_ms} ms during encoding");
        assert!(destroy_ms < 1000, "destroy took {destroy_ms} ms");
    }
}
