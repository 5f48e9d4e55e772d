//! Vision with the `mtmd` feature: the projector, mtmd's tokenizer and the image encoder.

use std::ffi::{c_void, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_sys_2 as sys;

use super::stand_in::image_token;
use crate::engine::cancel::AbortProbe;
use crate::engine::data::message::{Image, MEDIA_MARKER};
use crate::engine::error::{Error, Result};
use crate::engine::llama::raw::{raw_context, raw_model};

/// Where an image sits in a prompt's tokens.
pub(crate) struct ImageSpan {
    pub start: usize,
    pub len: usize,
    chunk: Chunk,
}

/// An image chunk mtmd made, owned (freed on drop).
pub(crate) struct Chunk(NonNull<sys::mtmd_input_chunk>);

// SAFETY: a chunk is plain data mtmd only reads; it is used on the worker only.
unsafe impl Send for Chunk {}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: made by mtmd_input_chunk_copy, freed once.
        unsafe { sys::mtmd_input_chunk_free(self.0.as_ptr()) }
    }
}

/// What the encoder's node callback looks at: the worker's abort probe (a request that
/// is cancelled, or an engine being destroyed, stops the encoding), and a count of the
/// nodes seen so it only stops to ask every few nodes.
struct EncodeWatch {
    probe: *const AbortProbe,
    nodes: AtomicUsize,
}

/// Stops to ask every this many graph nodes (each stop synchronises the backend).
const NODES_PER_CHECK: usize = 8;

unsafe extern "C" fn stop_if_cancelled(
    _node: *mut sys::ggml_tensor,
    ask: bool,
    data: *mut c_void,
) -> bool {
    // SAFETY: `data` is the Vision's boxed EncodeWatch, alive as long as the context.
    let watch = unsafe { &*data.cast::<EncodeWatch>() };
    if ask {
        return watch.nodes.fetch_add(1, Ordering::Relaxed) % NODES_PER_CHECK == 0;
    }
    #[cfg(feature = "fault-injection")]
    crate::engine::fault::slow_encoder::pause();
    // SAFETY: the worker's probe outlives every context (it is dropped last).
    !unsafe { &*watch.probe }.should_abort()
}

/// An image file's bytes as RGB pixels. Decoded here, in memory-safe Rust within the
/// `image` crate's default allocation limit (512 MiB), rather than by mtmd's helper, which
/// hands whatever stb_image cannot read to an ffmpeg subprocess.
fn decode(bytes: &[u8]) -> std::result::Result<image::RgbImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a known image format".into());
    }
    Ok(reader.decode().map_err(|e| e.to_string())?.into_rgb8())
}

/// A projector loaded for a model: llama.cpp's mtmd context.
pub(crate) struct Vision {
    ctx: NonNull<sys::mtmd_context>,
    // Boxed: the context keeps a pointer to it.
    _watch: Box<EncodeWatch>,
}

// SAFETY: the context is used by the worker thread only, one call at a time.
unsafe impl Send for Vision {}

impl Drop for Vision {
    fn drop(&mut self) {
        // SAFETY: made by mtmd_init_from_file, freed once.
        unsafe { sys::mtmd_free(self.ctx.as_ptr()) }
    }
}

impl Vision {
    pub fn load(
        path: &Path,
        model: &LlamaModel,
        n_threads: u32,
        use_gpu: bool,
        probe: &AbortProbe,
    ) -> Result<Vision> {
        crate::engine::llama::backend::hook_mtmd_log();
        let failed = |why: &str| {
            Error::ModelLoadFailed(format!("the multimodal projector {} {why}", path.display()))
        };
        if !path.is_file() {
            return Err(failed(
                "does not exist or is not a file; mmproj_path must name the projector's \
                 .gguf file",
            ));
        }
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| failed("has a NUL byte in its path"))?;
        let marker = CString::new(MEDIA_MARKER).expect("no NUL");
        let watch = Box::new(EncodeWatch {
            probe,
            nodes: AtomicUsize::new(0),
        });
        // SAFETY: plain defaults.
        let mut params = unsafe { sys::mtmd_context_params_default() };
        params.use_gpu = use_gpu;
        params.print_timings = false;
        params.n_threads = n_threads as i32;
        params.media_marker = marker.as_ptr();
        params.warmup = false;
        params.cb_eval = Some(stop_if_cancelled);
        params.cb_eval_user_data = (&*watch as *const EncodeWatch).cast_mut().cast();
        let (ctx, problems) = crate::engine::llama::backend::capture_problems(|| unsafe {
            // SAFETY: the model outlives the Vision (LoadedModel drops it first); the
            // strings live across the call (mtmd copies the marker).
            sys::mtmd_init_from_file(c_path.as_ptr(), raw_model(model), params)
        });
        let Some(ctx) = NonNull::new(ctx) else {
            let why = problems.last().map_or(String::new(), |p| format!(": {p}"));
            return Err(failed(&format!(
                "could not be loaded for this model{why}; is it the projector made for it?"
            )));
        };
        let vision = Vision { ctx, _watch: watch };
        // SAFETY: a live context.
        unsafe {
            if !sys::mtmd_support_vision(vision.ctx.as_ptr()) {
                return Err(failed(
                    "has no vision encoder (audio-only projectors are not supported)",
                ));
            }
            if sys::mtmd_decode_use_mrope(vision.ctx.as_ptr()) {
                return Err(failed(
                    "places image tokens with M-RoPE (Qwen2-VL style), which rigllama \
                     does not support yet",
                ));
            }
        }
        Ok(vision)
    }

    /// `text` (with one marker per image) and `images` as the model's tokens, each image
    /// as its stand-in tokens, and where the images are.
    pub fn tokenize(
        &self,
        text: &str,
        images: &[&Image],
    ) -> Result<(Vec<LlamaToken>, Vec<ImageSpan>)> {
        let mut bitmaps = Vec::with_capacity(images.len());
        struct Bitmaps(Vec<*mut sys::mtmd_bitmap>);
        impl Drop for Bitmaps {
            fn drop(&mut self) {
                for &b in &self.0 {
                    // SAFETY: made by mtmd, freed once.
                    unsafe { sys::mtmd_bitmap_free(b) }
                }
            }
        }
        let mut owned = Bitmaps(Vec::new());
        for (i, image) in images.iter().enumerate() {
            let rgb = decode(image.bytes()).map_err(|why| {
                Error::invalid(format!(
                    "image {} ({} bytes) could not be decoded ({why}); send PNG, JPEG, GIF, \
                     BMP or WebP",
                    i + 1,
                    image.bytes().len()
                ))
            })?;
            // SAFETY: `rgb` holds width x height x 3 bytes; mtmd copies them.
            let bitmap =
                unsafe { sys::mtmd_bitmap_init(rgb.width(), rgb.height(), rgb.as_raw().as_ptr()) };
            if bitmap.is_null() {
                return Err(Error::Internal("mtmd_bitmap_init failed".into()));
            }
            owned.0.push(bitmap);
            bitmaps.push(bitmap.cast_const());
        }
        let c_text =
            CString::new(text).map_err(|_| Error::invalid("the prompt holds a NUL byte"))?;
        let input = sys::mtmd_input_text {
            text: c_text.as_ptr(),
            text_len: text.len(),
            add_special: true,
            parse_special: true,
        };
        struct Chunks(*mut sys::mtmd_input_chunks);
        impl Drop for Chunks {
            fn drop(&mut self) {
                // SAFETY: made by mtmd_input_chunks_init, freed once.
                unsafe { sys::mtmd_input_chunks_free(self.0) }
            }
        }
        // SAFETY: plain allocation.
        let chunks = Chunks(unsafe { sys::mtmd_input_chunks_init() });
        // SAFETY: all pointers are live for the call; mtmd copies what it keeps.
        let status = unsafe {
            sys::mtmd_tokenize(
                self.ctx.as_ptr(),
                chunks.0,
                &input,
                bitmaps.as_mut_ptr(),
                bitmaps.len(),
            )
        };
        match status {
            0 => {}
            1 => {
                return Err(Error::invalid(format!(
                    "the prompt has a different number of {MEDIA_MARKER} markers than \
                     images ({}); the chat template may have dropped or repeated one",
                    images.len()
                )))
            }
            2 => return Err(Error::invalid("an image could not be preprocessed")),
            other => return Err(Error::Internal(format!("mtmd_tokenize failed ({other})"))),
        }
        let mut tokens = Vec::new();
        let mut spans = Vec::new();
        let mut next_image = 0;
        // SAFETY: indices below the reported size; chunks are read while alive.
        unsafe {
            for i in 0..sys::mtmd_input_chunks_size(chunks.0) {
                let chunk = sys::mtmd_input_chunks_get(chunks.0, i);
                match sys::mtmd_input_chunk_get_type(chunk) {
                    sys::MTMD_INPUT_CHUNK_TYPE_TEXT => {
                        let mut n = 0;
                        let text = sys::mtmd_input_chunk_get_tokens_text(chunk, &mut n);
                        if n > 0 {
                            tokens.extend(
                                std::slice::from_raw_parts(text, n)
                                    .iter()
                                    .map(|&t| LlamaToken(t)),
                            );
                        }
                    }
                    sys::MTMD_INPUT_CHUNK_TYPE_IMAGE => {
                        let len = sys::mtmd_input_chunk_get_n_tokens(chunk);
                        let stand_in = image_token(images[next_image].bytes());
                        next_image += 1;
                        let owned =
                            NonNull::new(sys::mtmd_input_chunk_copy(chunk)).ok_or_else(|| {
                                Error::Internal("mtmd_input_chunk_copy failed".into())
                            })?;
                        spans.push(ImageSpan {
                            start: tokens.len(),
                            len,
                            chunk: Chunk(owned),
                        });
                        tokens.extend(std::iter::repeat_n(stand_in, len));
                    }
                    _ => return Err(Error::invalid("audio input is not supported")),
                }
            }
        }
        Ok((tokens, spans))
    }

    /// Encodes `span`'s image and decodes its embeddings into sequence `seq_id` from
    /// position `at`. A cancel (or destroy) stops the encoder within a few graph nodes:
    /// then Err(Cancelled), and the sequence may hold part of nothing useful.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        span: &ImageSpan,
        ctx: &mut LlamaContext<'static>,
        model: &LlamaModel,
        seq_id: i32,
        at: usize,
        n_batch: u32,
        probe: &AbortProbe,
    ) -> Result<()> {
        let chunk = span.chunk.0.as_ptr();
        // SAFETY: a live context and chunk.
        if span.len > n_batch as usize
            && unsafe { sys::mtmd_decode_use_non_causal(self.ctx.as_ptr(), chunk) }
        {
            // Its tokens attend to each other both ways: one batch must hold them all.
            return Err(Error::invalid(format!(
                "this model decodes an image's {} tokens in one batch; set n_batch to at \
                 least {}",
                span.len, span.len
            )));
        }
        // SAFETY: a live context and chunk.
        let encoded = unsafe { sys::mtmd_encode_chunk(self.ctx.as_ptr(), chunk) };
        if probe.should_abort() {
            return Err(Error::cancelled());
        }
        if encoded != 0 {
            return Err(Error::Internal(format!(
                "the projector could not encode the image (mtmd_encode_chunk {encoded})"
            )));
        }
        let lctx = raw_context(ctx, model)?;
        let mut after = 0;
        // SAFETY: the embeddings belong to the context and hold this chunk's tokens; the
        // llama context is the one the chunk's positions are decoded into.
        let decoded = unsafe {
            let embd = sys::mtmd_get_output_embd(self.ctx.as_ptr());
            sys::mtmd_helper_decode_image_chunk(
                self.ctx.as_ptr(),
                lctx.as_ptr(),
                chunk,
                embd,
                at as i32,
                seq_id,
                n_batch as i32,
                &mut after,
                None,
                std::ptr::null_mut(),
            )
        };
        if probe.should_abort() {
            return Err(Error::cancelled());
        }
        if decoded != 0 || after as usize != at + span.len {
            return Err(Error::Internal(format!(
                "llama.cpp could not decode the image's embeddings ({decoded})"
            )));
        }
        Ok(())
    }
}
