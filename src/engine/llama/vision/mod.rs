//! Images in prompts, through llama.cpp's mtmd library and a multimodal projector (the
//! `mmproj` GGUF beside the model). With the `mtmd` cargo feature: the projector is loaded
//! with the model; a prompt with images is tokenized by mtmd into text tokens and image
//! chunks; an image chunk is encoded (the vision tower, on this worker) and its embeddings
//! decoded into the request's sequence before the text after it. Without the feature,
//! [`Vision`] has no values and every path that would need one refuses with a clear error.
//!
//! In a sequence's cache an image is as many positions as it has tokens, each holding the
//! same stand-in token: a negative number no vocabulary uses, derived from the image's bytes.
//! So prefix reuse works as for text (the same image at the same place is reused, another
//! one is not), and nothing that reads tokens can mistake one for text.

use crate::engine::error::Error;

#[cfg(feature = "mtmd")]
#[path = "enabled.rs"]
mod imp;
#[cfg(not(feature = "mtmd"))]
#[path = "disabled.rs"]
mod imp;
mod stand_in;

pub(crate) use imp::{ImageSpan, Vision};
pub(crate) use stand_in::is_image_token;

/// The error for an image sent to an engine that cannot take it.
pub(crate) fn no_vision_error() -> Error {
    if cfg!(feature = "mtmd") {
        Error::invalid(
            "the request has an image, but this engine has no multimodal projector: set \
             mmproj_path in the engine options to the model's mmproj GGUF",
        )
    } else {
        Error::invalid(
            "the request has an image, but this library was built without vision: rebuild \
             rigllama with the cargo feature `mtmd` and set mmproj_path in the engine options",
        )
    }
}
