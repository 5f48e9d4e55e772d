//! Fitting a model to the device memory: llama.cpp's `common_fit_params`.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::params::LlamaModelParams;

use crate::engine::data::options::{Fit, DEFAULT_FIT_MARGIN_MIB};
use crate::engine::error::{Error, Result};
use crate::engine::llama::backend::capture_problems;

extern "C" {
    /// `common` prints to stderr from its own thread; this pauses it for good (chat shim).
    fn rl_silence_common_log();
}

/// llama.cpp's fitting swaps the process-wide log callback while it runs.
static FIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Asks llama.cpp's `common_fit_params` for the GPU layers and the largest context (up to the
/// model's training context, not below `fit.min_ctx`) that leave the margins free; it
/// measures with the same context settings the engine then uses. Returns that context, or
/// `None` when the whole training context fits.
pub(crate) fn fit_to_memory(
    path: &std::path::Path,
    params: std::pin::Pin<&mut LlamaModelParams>,
    mut cparams: LlamaContextParams,
    fit: &Fit,
) -> Result<Option<u32>> {
    let max_devices = unsafe { llama_cpp_sys_2::llama_max_devices() };
    if fit.margins_mib.len() > max_devices.max(1) {
        return Err(Error::invalid(format!(
            "{} fit margins given, but llama.cpp handles at most {max_devices} devices",
            fit.margins_mib.len()
        )));
    }
    const MIB: usize = 1 << 20;
    let mut margins: Vec<usize> = (0..max_devices.max(1))
        .map(|i| {
            let mib = if fit.margins_mib.len() == 1 {
                fit.margins_mib[0]
            } else {
                fit.margins_mib
                    .get(i)
                    .copied()
                    .unwrap_or(DEFAULT_FIT_MARGIN_MIB)
            };
            (mib as usize).saturating_mul(MIB)
        })
        .collect();
    let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| Error::invalid("model_path contains NUL"))?;
    let _one_at_a_time = FIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: idempotent; only pauses common's logger.
    unsafe { rl_silence_common_log() };
    let (fitted, problems) = capture_problems(|| {
        params.fit_params(
            &c_path,
            &mut cparams,
            &mut margins,
            fit.min_ctx,
            llama_cpp_sys_2::GGML_LOG_LEVEL_INFO,
        )
    });
    match fitted {
        // n_ctx left at 0: the fit changed nothing.
        Ok(result) => Ok((result.n_ctx != 0).then_some(result.n_ctx)),
        Err(error) => {
            let why = problems
                .iter()
                .rev()
                .find(|line| line.contains("fit"))
                .cloned()
                .unwrap_or_else(|| error.to_string());
            Err(Error::ModelLoadFailed(format!(
                "fit: {} does not fit with a margin of {} MiB even with the context reduced to \
                 fit_min_ctx {} tokens ({why}); lower the margin or fit_min_ctx",
                path.display(),
                fit.margins_mib[0],
                fit.min_ctx
            )))
        }
    }
}
