//! Where ggml's CPU code comes from. In the default build it is compiled into the library for
//! one instruction-set level (AVX2 and its companions on x86-64), so the library dies with an
//! illegal instruction on a CPU without them. With the cargo feature `dynamic-backends`,
//! ggml's backends are modules loaded at run time (GGML_BACKEND_DL), with one CPU module per
//! x86-64 level (GGML_CPU_ALL_VARIANTS: `libggml-cpu-x64.so`, `-sse42`, `-sandybridge`,
//! `-haswell`, `-skylakex`, `-zen4`, ...). ggml asks each module for a score (0 when this CPU
//! lacks an instruction it was built for) and keeps the best one.
//!
//! Until modules are loaded ggml has no backend at all, so [`ensure_loaded`] runs before
//! llama.cpp's backend init, once per process. The directory searched is, first to last:
//! [`set_backend_dir`]'s, `$RIGLLAMA_BACKEND_DIR`, then the directory of the file rigllama's
//! code was loaded from (librigllama.so, or the program it is linked into): the modules are
//! installed next to the library. ggml's own default (the executable's directory, the
//! current directory and a path fixed at build time) is never used: a library should not run
//! code from wherever its host happens to be started.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::engine::data::description::CpuBackend;
use crate::engine::error::{Error, Result};

/// The environment variable that names the module directory (below [`set_backend_dir`]).
pub const BACKEND_DIR_ENV: &str = "RIGLLAMA_BACKEND_DIR";

/// The file names of ggml's CPU modules: `libggml-cpu-<variant>.so`.
const CPU_MODULE_PREFIX: &str = "libggml-cpu-";
const MODULE_SUFFIX: &str = ".so";

/// The variant `describe` names for the static build's CPU code. Its level is in the
/// features: llama-cpp-sys-2 builds ggml without GGML_NATIVE, and on x86-64 ggml then turns
/// on SSE4.2, AVX, F16C, FMA, AVX2 and BMI2 (what its `haswell` module has).
const BUILT_IN: &str = "built-in";

struct State {
    /// `set_backend_dir`'s directory, until modules are loaded.
    requested: Option<PathBuf>,
    /// The directory the CPU module was loaded from; set once, never cleared (a loaded
    /// backend stays in ggml's registry for the life of the process).
    loaded: Option<PathBuf>,
}

static STATE: Mutex<State> = Mutex::new(State {
    requested: None,
    loaded: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    // A panic while the lock was held leaves the two paths as they were: still sound.
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads ggml's backend modules from `dir` instead of the library's own directory. Must be
/// called before the first engine is created (the modules are loaded once per process);
/// naming the directory they were loaded from again afterwards is accepted, any other one is
/// refused. `dir` must hold at least one CPU module (`libggml-cpu-*.so`). In a build without
/// the `dynamic-backends` feature there are no modules, and the call is refused.
pub fn set_backend_dir(dir: &Path) -> Result<()> {
    if !cfg!(feature = "dynamic-backends") {
        return Err(Error::invalid(format!(
            "set_backend_dir({}): this rigllama was built without the `dynamic-backends` \
             feature: its CPU code is built in (describe's cpu_backend.features says for \
             which instruction sets) and it loads no backend modules; drop the call, or use a \
             build made with --features dynamic-backends",
            dir.display()
        )));
    }
    if dir.as_os_str().is_empty() {
        return Err(Error::invalid(
            "set_backend_dir: the directory is empty; name the directory that holds \
             libggml-cpu-*.so",
        ));
    }
    let mut state = state();
    if let Some(loaded) = &state.loaded {
        if same_dir(loaded, dir) {
            return Ok(());
        }
        return Err(Error::invalid(format!(
            "set_backend_dir({}): backend modules were already loaded from {} when the first \
             engine was created, and stay loaded for the life of the process; call \
             set_backend_dir before creating any engine",
            dir.display(),
            loaded.display()
        )));
    }
    let found = cpu_modules_in(dir).map_err(|e| {
        Error::invalid(format!(
            "set_backend_dir({}): cannot read it: {e}",
            dir.display()
        ))
    })?;
    if found.is_empty() {
        return Err(Error::invalid(format!(
            "set_backend_dir({}): it holds no CPU backend module ({CPU_MODULE_PREFIX}*.so); \
             name the directory rigllama's modules were installed to (next to librigllama.so)",
            dir.display()
        )));
    }
    state.requested = Some(dir.to_path_buf());
    Ok(())
}

/// Loads ggml's backend modules if that has not happened yet in this process; when it loads
/// them now, returns the line for the log saying which CPU module from where (the caller logs
/// it: `backend` imports this file). A failure (no module this CPU can run in the directory)
/// leaves nothing marked as loaded, so a later engine, after `set_backend_dir` or with the
/// modules installed, tries again.
#[cfg(feature = "dynamic-backends")]
pub(crate) fn ensure_loaded() -> Result<Option<String>> {
    let mut state = state();
    if state.loaded.is_some() {
        return Ok(None);
    }
    let (dir, source) = choose_dir(&state)?;
    let c_dir = path_to_c(&dir).ok_or_else(|| {
        Error::ModelLoadFailed(format!(
            "the backend module directory {} ({source}) has a NUL byte in its name",
            dir.display()
        ))
    })?;
    // SAFETY: a NUL-terminated path that outlives the call. ggml dlopens the modules it finds
    // there; each CPU module's score function is built without the module's instruction sets
    // (ggml's cpu-feats target), so asking a module this CPU cannot run is safe.
    unsafe { llama_cpp_sys_2::ggml_backend_load_all_from_path(c_dir.as_ptr()) };
    if cpu_device().is_none() {
        return Err(Error::ModelLoadFailed(why_no_cpu_module(&dir, source)));
    }
    let cpu = cpu_backend();
    state.loaded = Some(dir);
    state.requested = None;
    Ok(Some(format!(
        "ggml CPU backend: {} ({}), from {} ({source})",
        cpu.variant,
        cpu.features.join(" "),
        cpu.module
    )))
}

/// The static build has its CPU backend registered by ggml itself.
#[cfg(not(feature = "dynamic-backends"))]
pub(crate) fn ensure_loaded() -> Result<Option<String>> {
    Ok(None)
}

/// Which directory to search, and what chose it (for messages).
#[cfg(feature = "dynamic-backends")]
fn choose_dir(state: &State) -> Result<(PathBuf, &'static str)> {
    if let Some(dir) = &state.requested {
        return Ok((dir.clone(), "set by set_backend_dir"));
    }
    if let Some(dir) = std::env::var_os(BACKEND_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(dir), "set by RIGLLAMA_BACKEND_DIR"));
    }
    let own = own_file().ok_or_else(|| {
        Error::ModelLoadFailed(format!(
            "cannot tell which file rigllama's code was loaded from, so cannot find the \
             backend modules next to it; set {BACKEND_DIR_ENV} to the directory that holds \
             libggml-cpu-*.so"
        ))
    })?;
    let dir = own
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((dir, "the directory rigllama was loaded from"))
}

/// The file (librigllama.so, or the executable rigllama is linked into) holding this code.
#[cfg(feature = "dynamic-backends")]
fn own_file() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        use std::ffi::CStr;
        use std::os::unix::ffi::OsStrExt;

        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let here = own_file as *const libc::c_void;
        // SAFETY: dladdr only reads the loader's tables; `info` is written on success.
        if unsafe { libc::dladdr(here, &mut info) } != 0 && !info.dli_fname.is_null() {
            let name = unsafe { CStr::from_ptr(info.dli_fname) };
            let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
            // For the main program glibc gives argv[0], which may be relative (or empty).
            if path.is_absolute() {
                return Some(path.to_path_buf());
            }
        }
    }
    std::env::current_exe().ok()
}

#[cfg(feature = "dynamic-backends")]
fn path_to_c(path: &Path) -> Option<std::ffi::CString> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(path.as_os_str().as_bytes()).ok()
    }
    #[cfg(not(unix))]
    {
        std::ffi::CString::new(path.to_str()?).ok()
    }
}

/// The message for a directory from which ggml registered no CPU backend: no module there,
/// or modules that do not load (a missing dependency: dlopen's own words) or that this CPU
/// cannot run.
#[cfg(feature = "dynamic-backends")]
fn why_no_cpu_module(dir: &Path, source: &str) -> String {
    let remedy = format!(
        "install rigllama's backend modules next to librigllama.so (`make dynback-install` \
         does), or name their directory with {BACKEND_DIR_ENV} or rigllama_set_backend_dir"
    );
    let found = match cpu_modules_in(dir) {
        Ok(found) => found,
        Err(e) => {
            return format!(
                "no CPU backend: the backend module directory {} ({source}) cannot be read: \
                 {e}; {remedy}",
                dir.display()
            )
        }
    };
    if found.is_empty() {
        return format!(
            "no CPU backend: the backend module directory {} ({source}) holds no \
             {CPU_MODULE_PREFIX}*.so; {remedy}",
            dir.display()
        );
    }
    let verdicts: Vec<String> = found
        .iter()
        .map(|name| match try_dlopen(&dir.join(name)) {
            Ok(()) => format!("{name}: needs instructions this CPU lacks"),
            Err(why) => format!("{name}: does not load: {why}"),
        })
        .collect();
    format!(
        "no CPU backend this CPU can run in {} ({source}): {}; the baseline \
         {CPU_MODULE_PREFIX}x64.so runs on every x86-64 CPU: install it there",
        dir.display(),
        verdicts.join("; ")
    )
}

/// Opens and closes a module, for dlopen's reason when it fails.
#[cfg(feature = "dynamic-backends")]
fn try_dlopen(path: &Path) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        let c_path = path_to_c(path).ok_or("NUL in the path")?;
        // SAFETY: ggml has just opened (and closed) the same file; this only repeats that to
        // read dlerror's text.
        unsafe {
            let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                let err = libc::dlerror();
                return Err(if err.is_null() {
                    "dlopen failed".to_owned()
                } else {
                    std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
                });
            }
            libc::dlclose(handle);
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// The CPU module file names in `dir`, sorted.
fn cpu_modules_in(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(CPU_MODULE_PREFIX) && name.ends_with(MODULE_SUFFIX))
        .collect();
    names.sort();
    Ok(names)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// ggml's CPU device, once a CPU backend is registered.
fn cpu_device() -> Option<llama_cpp_sys_2::ggml_backend_dev_t> {
    // SAFETY: reads ggml's registry.
    let dev = unsafe {
        llama_cpp_sys_2::ggml_backend_dev_by_type(llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU)
    };
    (!dev.is_null()).then_some(dev)
}

/// The CPU backend's registry entry (built in, or from the loaded module).
pub(crate) fn cpu_registry() -> Option<llama_cpp_sys_2::ggml_backend_reg_t> {
    let dev = cpu_device()?;
    // SAFETY: `dev` is a registered device.
    let reg = unsafe { llama_cpp_sys_2::ggml_backend_dev_backend_reg(dev) };
    (!reg.is_null()).then_some(reg)
}

/// The CPU code in use, for `describe`: the module's variant and file (or "built-in"), and
/// the instruction sets it was compiled with.
pub(crate) fn cpu_backend() -> CpuBackend {
    let Some(reg) = cpu_registry() else {
        return CpuBackend::default();
    };
    let features = cpu_features(reg);
    if !cfg!(feature = "dynamic-backends") {
        return CpuBackend {
            variant: BUILT_IN.to_owned(),
            module: String::new(),
            features,
        };
    }
    let module = module_file_of(reg.cast()).unwrap_or_default();
    let variant = Path::new(&module)
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix(CPU_MODULE_PREFIX))
        .and_then(|name| name.strip_suffix(MODULE_SUFFIX))
        .unwrap_or("unknown")
        .to_owned();
    CpuBackend {
        variant,
        module,
        features,
    }
}

/// The shared object that holds `addr` (the CPU registry entry is a static of its module).
fn module_file_of(addr: *const std::ffi::c_void) -> Option<String> {
    #[cfg(unix)]
    {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables.
        if unsafe { libc::dladdr(addr, &mut info) } != 0 && !info.dli_fname.is_null() {
            let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
            return Some(name.to_string_lossy().into_owned());
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = addr;
        None
    }
}

/// The instruction sets ggml's CPU code was compiled with ("AVX2", ...), from its
/// `ggml_backend_get_features` (compile-time checks in ggml-cpu.c), plus its build options
/// that have values ("REPACK", ...).
fn cpu_features(reg: llama_cpp_sys_2::ggml_backend_reg_t) -> Vec<String> {
    // SAFETY: a registered backend; the name is a C string literal.
    let get = unsafe {
        llama_cpp_sys_2::ggml_backend_reg_get_proc_address(
            reg,
            c"ggml_backend_get_features".as_ptr(),
        )
    };
    if get.is_null() {
        return Vec::new();
    }
    type GetFeatures = unsafe extern "C" fn(
        llama_cpp_sys_2::ggml_backend_reg_t,
    ) -> *const llama_cpp_sys_2::ggml_backend_feature;
    // SAFETY: the CPU backend's ggml_backend_get_features has this signature
    // (ggml_backend_get_features_t in ggml-backend.h).
    let get: GetFeatures = unsafe { std::mem::transmute(get) };
    let mut features = Vec::new();
    // SAFETY: a static array ended by a { NULL, NULL } entry.
    unsafe {
        let mut entry = get(reg);
        while !entry.is_null() && !(*entry).name.is_null() {
            let name = std::ffi::CStr::from_ptr((*entry).name).to_string_lossy();
            let value = if (*entry).value.is_null() {
                "1".into()
            } else {
                std::ffi::CStr::from_ptr((*entry).value).to_string_lossy()
            };
            features.push(if value == "1" {
                name.into_owned()
            } else {
                format!("{name}={value}")
            });
            entry = entry.add(1);
        }
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rigllama-modules-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn cpu_modules_are_found_by_name() {
        let dir = scratch("names");
        for name in [
            "libggml-cpu-x64.so",
            "libggml-cpu-haswell.so",
            "libggml-base.so.0",
            "libggml-cpu-x64.so.bak",
            "libggml-vulkan.so",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(
            cpu_modules_in(&dir).unwrap(),
            ["libggml-cpu-haswell.so", "libggml-cpu-x64.so"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // These only exercise refusals, which leave the process-wide choice untouched: other tests
    // in this process may create engines.
    #[test]
    fn set_backend_dir_refuses_a_directory_without_cpu_modules() {
        let dir = scratch("empty");
        let err = set_backend_dir(&dir).unwrap_err().to_string();
        if cfg!(feature = "dynamic-backends") {
            assert!(err.contains(&dir.display().to_string()), "{err}");
            assert!(err.contains("libggml-cpu-*.so"), "{err}");
        } else {
            assert!(
                err.contains("without the `dynamic-backends` feature"),
                "{err}"
            );
        }
        let missing = dir.join("missing");
        let err = set_backend_dir(&missing).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(set_backend_dir(Path::new("")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
