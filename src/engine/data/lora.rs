//! LoRA adapters as requests and options name them: by the id `add_lora` gave, with a scale.

use crate::engine::error::{Error, Result};

/// Scales beyond this are refused: nothing sensible comes of them, and they overflow f16.
pub const MAX_LORA_SCALE: f32 = 100.0;
/// The most adapters applied at once (engine-wide or named by one request).
pub const MAX_LORAS: usize = 64;

/// One adapter at one scale, for one request: `id` as returned by
/// [`Engine::add_lora`](crate::Engine::add_lora), `scale` within ±[`MAX_LORA_SCALE`]
/// (0 = no effect, 1 = as trained).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraScale {
    pub id: u32,
    pub scale: f32,
}

/// `scale` is finite and within ±[`MAX_LORA_SCALE`]; `what` names it in the message.
pub(crate) fn check_scale(what: &str, scale: f32) -> Result<()> {
    if scale.is_finite() && scale.abs() <= MAX_LORA_SCALE {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} {scale} must be finite and within ±{MAX_LORA_SCALE} (0 = no effect, 1 = as \
             trained)"
        )))
    }
}

/// A request's adapter list: each scale in range, no id twice, at most [`MAX_LORAS`].
pub(crate) fn check_request_loras(loras: &[LoraScale]) -> Result<()> {
    if loras.len() > MAX_LORAS {
        return Err(Error::invalid(format!(
            "the request names {} LoRA adapters, more than {MAX_LORAS}",
            loras.len()
        )));
    }
    for (i, lora) in loras.iter().enumerate() {
        check_scale(
            &format!("lora_scales[{i}] (adapter {})", lora.id),
            lora.scale,
        )?;
        if loras[..i].iter().any(|earlier| earlier.id == lora.id) {
            return Err(Error::invalid(format!(
                "lora_ids[{i}] = {} names an adapter already listed; give each adapter once",
                lora.id
            )));
        }
    }
    Ok(())
}
