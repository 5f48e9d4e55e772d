//! LoRA adapters applied to the engine's context at run time: loaded from GGUF files, each
//! with its own engine-wide scale, several at once, removed again. They belong to the loaded
//! model (a reload starts with none). The KV cache was computed with the old weights, so every
//! engine-wide change empties it. A request may name its own adapters and scales instead
//! ([`Adapters::resolve`]); the scheduler sets each decode's set ([`Adapters::activate`]).

use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2::{llama_adapter_lora, llama_context};

use crate::engine::cache::adapter_set::AdapterSet;
use crate::engine::data::description::LoraInfo;
use crate::engine::data::lora::{check_scale, LoraScale, MAX_LORAS};
use crate::engine::error::{Error, Result};
use crate::engine::llama::backend::capture_problems;
use crate::engine::llama::raw::{raw_context, raw_model};

/// What to change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LoraChange {
    /// Load an adapter and apply it at `scale`.
    Add {
        path: PathBuf,
        scale: f32,
    },
    SetScale {
        id: u32,
        scale: f32,
    },
    Remove {
        id: u32,
    },
}

struct Adapter {
    id: u32,
    path: PathBuf,
    scale: f32,
    raw: NonNull<llama_adapter_lora>,
}

/// The adapters of one loaded model. llama.cpp frees any still loaded with the model.
#[derive(Default)]
pub(crate) struct Adapters {
    list: Vec<Adapter>,
    next_id: u32,
    /// The set on the context now.
    active: AdapterSet,
}

impl Adapters {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn infos(&self) -> Vec<LoraInfo> {
        self.list
            .iter()
            .map(|a| LoraInfo {
                id: a.id,
                path: a.path.to_string_lossy().into_owned(),
                scale: a.scale,
            })
            .collect()
    }

    /// Makes `change` and applies the resulting set to `ctx`. Returns the adapter's id.
    pub fn change(
        &mut self,
        change: LoraChange,
        model: &LlamaModel,
        ctx: &mut LlamaContext<'static>,
    ) -> Result<u32> {
        let raw_ctx = raw_context(ctx, model)?;
        let id = match change {
            LoraChange::Add { path, scale } => {
                check_scale("LoRA scale", scale)?;
                if self.list.len() >= MAX_LORAS {
                    return Err(Error::invalid(format!(
                        "{MAX_LORAS} LoRA adapters are applied already; remove one first"
                    )));
                }
                let raw = load_adapter(&path, model)?;
                let id = self.next_id;
                self.list.push(Adapter {
                    id,
                    path,
                    scale,
                    raw,
                });
                if let Err(error) = self.apply(raw_ctx, &self.engine_wide()) {
                    let added = self.list.pop().expect("just pushed");
                    // SAFETY: loaded above, never set on a context, freed once.
                    unsafe { llama_cpp_sys_2::llama_adapter_lora_free(added.raw.as_ptr()) };
                    return Err(error);
                }
                self.next_id += 1;
                return Ok(id);
            }
            LoraChange::SetScale { id, scale } => {
                check_scale("LoRA scale", scale)?;
                let at = self.index_of(id)?;
                self.list[at].scale = scale;
                id
            }
            LoraChange::Remove { id } => {
                let removed = self.list.remove(self.index_of(id)?);
                // Off the context first, then freed.
                self.apply(raw_ctx, &self.engine_wide())?;
                // SAFETY: loaded by llama_adapter_lora_init for this model, no longer set on
                // any context, freed once (it has left the list).
                unsafe { llama_cpp_sys_2::llama_adapter_lora_free(removed.raw.as_ptr()) };
                return Ok(id);
            }
        };
        self.apply(raw_ctx, &self.engine_wide())?;
        Ok(id)
    }

    /// The engine-wide set: every adapter at its engine-wide scale.
    pub fn engine_wide(&self) -> AdapterSet {
        AdapterSet::new(self.list.iter().map(|a| (a.id, a.scale)))
    }

    /// The set a request runs under: `None` = the engine-wide one; else exactly the listed
    /// adapters at the listed scales (checked by `Request::validate`), each of which must be
    /// loaded.
    pub fn resolve(&self, request: Option<&[LoraScale]>) -> Result<AdapterSet> {
        let Some(listed) = request else {
            return Ok(self.engine_wide());
        };
        for (i, lora) in listed.iter().enumerate() {
            self.index_of(lora.id).map_err(|_| {
                Error::invalid(format!(
                    "lora_ids[{i}] = {}: no LoRA adapter has that id on this engine (ids are \
                     given by add_lora and lost on reload)",
                    lora.id
                ))
            })?;
        }
        Ok(AdapterSet::new(listed.iter().map(|l| (l.id, l.scale))))
    }

    /// Puts `set` on the context for the next decode, when it is not there already
    /// (llama.cpp then plans its graph again: a few milliseconds).
    pub fn activate(
        &mut self,
        set: &AdapterSet,
        model: &LlamaModel,
        ctx: &mut LlamaContext<'static>,
    ) -> Result<()> {
        if self.active == *set {
            return Ok(());
        }
        self.apply(raw_context(ctx, model)?, set)
    }

    fn index_of(&self, id: u32) -> Result<usize> {
        self.list.iter().position(|a| a.id == id).ok_or_else(|| {
            Error::invalid(format!(
                "no LoRA adapter has id {id} on this engine (ids are given by add and lost on reload)"
            ))
        })
    }

    /// Sets `set` (adapters of this list) on the context.
    fn apply(&mut self, ctx: NonNull<llama_context>, set: &AdapterSet) -> Result<()> {
        let mut adapters = Vec::with_capacity(set.pairs().len());
        let mut scales = Vec::with_capacity(set.pairs().len());
        for &(id, scale) in set.pairs() {
            let adapter = &self.list[self.index_of(id)?];
            adapters.push(adapter.raw.as_ptr());
            scales.push(scale);
        }
        // SAFETY: the context and adapters belong to the same live model; llama.cpp copies
        // the arrays.
        let status = unsafe {
            llama_cpp_sys_2::llama_set_adapters_lora(
                ctx.as_ptr(),
                adapters.as_mut_ptr(),
                adapters.len(),
                scales.as_mut_ptr(),
            )
        };
        if status != 0 {
            return Err(Error::Internal(format!(
                "llama.cpp could not set the LoRA adapters (status {status})"
            )));
        }
        self.active = set.clone();
        Ok(())
    }
}

/// Checks the file (a well-formed GGUF, an adapter, for this architecture) before llama.cpp
/// reads it, then loads it; llama.cpp's own reason is passed on when it refuses.
fn load_adapter(path: &Path, model: &LlamaModel) -> Result<NonNull<llama_adapter_lora>> {
    let refused = |why: String| Error::invalid(format!("LoRA adapter {}: {why}", path.display()));
    let summary = gguf_check::check_model_file(path).map_err(|e| refused(e.to_string()))?;
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    match summary.architecture.as_deref() {
        Some(a) if a == arch => {}
        Some(a) => {
            return Err(refused(format!(
                "it is for architecture {a}, this engine's model is {arch}"
            )))
        }
        None => return Err(refused("it names no general.architecture".into())),
    }
    let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| refused("the path contains NUL".into()))?;
    let (raw, problems) = capture_problems(|| unsafe {
        // SAFETY: a live model; llama.cpp only reads it (the adapter is registered with it).
        llama_cpp_sys_2::llama_adapter_lora_init(raw_model(model).cast_mut(), c_path.as_ptr())
    });
    NonNull::new(raw).ok_or_else(|| {
        let reason = problems
            .last()
            .cloned()
            .unwrap_or_else(|| "llama.cpp could not load it".into());
        refused(format!(
            "{reason}; is it a LoRA adapter made for this model?"
        ))
    })
}
