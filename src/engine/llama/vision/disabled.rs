//! Vision without the `mtmd` feature: types with no values, so every path that would
//! need a projector is refused before it is reached.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::engine::cancel::AbortProbe;
use crate::engine::data::message::Image;
use crate::engine::error::Result;

/// Where an image sits in a prompt's tokens (built without `mtmd`: never made).
pub(crate) struct ImageSpan {
    pub start: usize,
    pub len: usize,
    #[allow(dead_code)]
    chunk: Chunk,
}

/// Built without `mtmd`: no image chunk is ever made.
pub(crate) enum Chunk {}

/// Built without `mtmd`: no projector is ever loaded, so this has no values.
pub(crate) enum Vision {}

impl Vision {
    pub fn tokenize(
        &self,
        _text: &str,
        _images: &[&Image],
    ) -> Result<(Vec<LlamaToken>, Vec<ImageSpan>)> {
        match *self {}
    }

    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        _span: &ImageSpan,
        _ctx: &mut LlamaContext<'static>,
        _model: &LlamaModel,
        _seq_id: i32,
        _at: usize,
        _n_batch: u32,
        _probe: &AbortProbe,
    ) -> Result<()> {
        match *self {}
    }
}
