//! A control vector (llama.cpp's `llama_set_adapter_cvec`, what llama-server's
//! `--control-vector-scaled` sets): a direction added to the output of each layer in a range,
//! read from a GGUF of `direction.N` tensors (N the layer, from 1; one F32 value per unit of
//! the model's width) and scaled by a strength. Like a LoRA change it alters what the model
//! computes, so setting or clearing it empties the KV cache; a reload drops it.

use std::path::Path;

use crate::engine::data::description::ControlVectorInfo;
use crate::engine::data::lora::MAX_LORA_SCALE;
use crate::engine::error::{Error, Result};
use crate::engine::llama::backend::capture_problems;
use crate::engine::llama::gguf_tensors::read_tensors;
use crate::engine::llama::raw::raw_context;
use crate::engine::worker::model::LoadedModel;
use crate::engine::worker::protocol::{ControlVectorChange, WorkerShared};

impl LoadedModel {
    pub fn change_control_vector(
        &mut self,
        change: ControlVectorChange,
        shared: &WorkerShared,
    ) -> Result<()> {
        let ctx = raw_context(&self.ctx, &self.model)?;
        let n_embd = self.model.n_embd();
        let info = match change {
            ControlVectorChange::Set {
                path,
                strength,
                layer_start,
                layer_end,
            } => {
                let refused = |why: String| {
                    Error::invalid(format!("control vector {}: {why}", path.display()))
                };
                if !strength.is_finite() || strength.abs() > MAX_LORA_SCALE {
                    return Err(refused(format!(
                        "strength {strength} must be finite and within ±{MAX_LORA_SCALE} \
                         (0 = no effect)"
                    )));
                }
                let n_layer = self.model.n_layer() as i32;
                let (start, end) = match (layer_start, layer_end) {
                    (0, 0) => (1, n_layer),
                    (s, e) if 1 <= s && s <= e && e <= n_layer => (s, e),
                    (s, e) => {
                        return Err(refused(format!(
                            "layer range {s}..{e} must be within 1..{n_layer} with start <= end \
                             (0, 0 = every layer)"
                        )))
                    }
                };
                let data = read_direction(&path, n_embd as usize, n_layer as usize, strength)
                    .map_err(refused)?;
                let (status, problems) = capture_problems(|| unsafe {
                    // SAFETY: a live context of this model; llama.cpp copies the data.
                    llama_cpp_sys_2::llama_set_adapter_cvec(
                        ctx.as_ptr(),
                        data.as_ptr(),
                        data.len(),
                        n_embd,
                        start,
                        end,
                    )
                });
                if status != 0 {
                    return Err(refused(
                        problems
                            .last()
                            .cloned()
                            .unwrap_or_else(|| "llama.cpp refused it".into()),
                    ));
                }
                Some(ControlVectorInfo {
                    path: path.to_string_lossy().into_owned(),
                    strength,
                    layer_start: start,
                    layer_end: end,
                })
            }
            ControlVectorChange::Clear => {
                // SAFETY: NULL data clears the vector (llama.cpp keeps its buffers).
                unsafe {
                    llama_cpp_sys_2::llama_set_adapter_cvec(
                        ctx.as_ptr(),
                        std::ptr::null(),
                        0,
                        n_embd,
                        0,
                        0,
                    )
                };
                None
            }
        };
        self.forget_cache();
        self.description.control_vector = info;
        *shared.description.lock().unwrap_or_else(|p| p.into_inner()) = self.description.clone();
        Ok(())
    }
}

/// The vector as llama.cpp takes it: `n_embd` values per layer from layer 1, times
/// `strength` (directions for the same layer add up, as llama.cpp's loader does).
fn read_direction(
    path: &Path,
    n_embd: usize,
    n_layer: usize,
    strength: f32,
) -> std::result::Result<Vec<f32>, String> {
    let tensors = read_tensors(path)?;
    if tensors.is_empty() {
        return Err("it has no direction tensors; is it a control vector?".into());
    }
    let mut data = Vec::new();
    for t in tensors {
        let layer = t
            .name
            .strip_prefix("direction.")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                format!(
                    "tensor {} is not a direction.N tensor (N a layer, from 1); is it a control \
                     vector?",
                    t.name
                )
            })?;
        if !t.is_f32 || t.n_dims != 1 {
            return Err(format!("{} is not a 1-D F32 tensor", t.name));
        }
        if t.values.len() != n_embd {
            return Err(format!(
                "{} has {} values but this model's layers are {n_embd} wide: it was made for \
                 another model",
                t.name,
                t.values.len()
            ));
        }
        if layer > n_layer {
            return Err(format!("{}: this model has {n_layer} layers", t.name));
        }
        if data.len() < n_embd * layer {
            data.resize(n_embd * layer, 0.0);
        }
        for (d, v) in data[n_embd * (layer - 1)..n_embd * layer]
            .iter_mut()
            .zip(&t.values)
        {
            *d += v * strength;
        }
    }
    Ok(data)
}
