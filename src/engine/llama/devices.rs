//! ggml's device registry: listing the devices, choosing them by name, and what a context
//! holds on each (through `csrc/memory_shim.cpp`).

use std::ffi::{c_char, c_void, CStr};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2::ggml_backend_dev_t;

use crate::engine::data::devices::MemoryUse;
use crate::engine::data::devices::{DeviceInfo, DeviceType, DeviceUse};
use crate::engine::error::{Error, Result};
use crate::engine::llama::raw::raw_context;

extern "C" {
    fn rl_memory_by_device(
        ctx: *const llama_cpp_sys_2::llama_context,
        each: unsafe extern "C" fn(*mut c_void, ggml_backend_dev_t, u64, u64, u64),
        user_data: *mut c_void,
    );
}

/// GPU backends compiled into this library (cargo features), by ggml's registry name.
pub(crate) const GPU_BACKENDS: &[&str] = &[
    #[cfg(feature = "vulkan")]
    "Vulkan",
    #[cfg(feature = "cuda")]
    "CUDA",
    #[cfg(feature = "metal")]
    "Metal",
];

/// # Safety
/// `ptr` is NULL or a NUL-terminated string that outlives the call.
unsafe fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
}

fn device(index: usize) -> ggml_backend_dev_t {
    // SAFETY: callers pass indices below ggml_backend_dev_count(); the registry never shrinks.
    unsafe { llama_cpp_sys_2::ggml_backend_dev_get(index) }
}

fn kind(dev: ggml_backend_dev_t) -> DeviceType {
    // SAFETY: a device from ggml's registry.
    match unsafe { llama_cpp_sys_2::ggml_backend_dev_type(dev) } {
        llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU => DeviceType::Cpu,
        llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_GPU => DeviceType::Gpu,
        llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_IGPU => DeviceType::Igpu,
        _ => DeviceType::Accel,
    }
}

fn name(dev: ggml_backend_dev_t) -> String {
    // SAFETY: a device from ggml's registry; the name lives as long as it.
    unsafe { text(llama_cpp_sys_2::ggml_backend_dev_name(dev)) }
}

/// (total, free) bytes, as the driver reports them now.
fn memory(dev: ggml_backend_dev_t) -> (u64, u64) {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: a device from ggml's registry; it writes the two numbers.
    unsafe { llama_cpp_sys_2::ggml_backend_dev_memory(dev, &mut free, &mut total) };
    (total as u64, free as u64)
}

/// Whether the device belongs to llama.cpp's RPC backend (another machine's device, added
/// by an engine's `rpc_servers`): not this machine's to list or choose.
fn is_remote(dev: ggml_backend_dev_t) -> bool {
    // SAFETY: a device from ggml's registry; its registry and name live as long as it.
    let reg = unsafe { llama_cpp_sys_2::ggml_backend_dev_backend_reg(dev) };
    !reg.is_null() && unsafe { text(llama_cpp_sys_2::ggml_backend_reg_name(reg)) } == "RPC"
}

/// This machine's devices, in ggml's order (RPC servers' devices left out).
fn local() -> impl Iterator<Item = (usize, ggml_backend_dev_t)> {
    // SAFETY: plain registry query.
    let count = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
    (0..count)
        .map(|i| (i, device(i)))
        .filter(|&(_, dev)| !is_remote(dev))
}

/// Every device this library can use on this machine. The backend must be initialised.
pub(crate) fn list() -> Vec<DeviceInfo> {
    local()
        .map(|(_, dev)| {
            let (memory_total, memory_free) = memory(dev);
            DeviceInfo {
                name: name(dev),
                // SAFETY: a device from ggml's registry.
                description: unsafe { text(llama_cpp_sys_2::ggml_backend_dev_description(dev)) },
                kind: kind(dev),
                memory_total,
                memory_free,
            }
        })
        .collect()
}

/// The ggml indices of the offload devices named in `names` (a CPU device's name adds none:
/// the CPU is always there). A name that is no device here is INVALID_ARGUMENT listing
/// the names there are.
pub(crate) fn choose(names: &[String]) -> Result<Vec<usize>> {
    let here: Vec<(usize, ggml_backend_dev_t)> = local().collect();
    let mut chosen = Vec::new();
    for wanted in names {
        let Some(&(index, dev)) = here.iter().find(|(_, dev)| name(*dev) == *wanted) else {
            let known: Vec<String> = here.iter().map(|(_, dev)| name(*dev)).collect();
            let backends = if GPU_BACKENDS.is_empty() {
                " (this library has no GPU backend: build it with the vulkan, cuda or metal \
                 feature)"
                    .to_owned()
            } else if gpus().is_empty() {
                format!(
                    " (the {} backend found no device it can use: no driver, no GPU, or only \
                     CPU-type devices; llama.cpp's log says more)",
                    GPU_BACKENDS.join(" and ")
                )
            } else {
                String::new()
            };
            return Err(Error::invalid(format!(
                "devices names {wanted:?}, which is not a device here; the devices are {}{backends}",
                known.join(", ")
            )));
        };
        if kind(dev) != DeviceType::Cpu {
            chosen.push(index);
        }
    }
    Ok(chosen)
}

/// This machine's GPUs (what llama.cpp offloads to by default).
pub(crate) fn gpus() -> Vec<usize> {
    local()
        .filter(|&(_, dev)| matches!(kind(dev), DeviceType::Gpu | DeviceType::Igpu))
        .map(|(i, _)| i)
        .collect()
}

/// The name of ggml device `index`.
pub(crate) fn name_of(index: usize) -> String {
    name(device(index))
}

/// The layers `placement` (llama.cpp's "layer N assigned to device NAME" lines) put on the
/// device called `name`.
pub(crate) fn layers_on(placement: &[(u32, String)], name: &str) -> Vec<u32> {
    placement
        .iter()
        .filter(|(_, device)| device == name)
        .map(|(layer, _)| *layer)
        .collect()
}

/// What `ctx` holds on each device (host memory as the CPU's), with the layers `placement`
/// (llama.cpp's "layer N assigned to device NAME" lines) put there. The CPU comes first, then
/// the other devices in ggml's order; devices holding nothing are left out.
pub(crate) fn usage(
    ctx: &LlamaContext<'static>,
    model: &LlamaModel,
    placement: &[(u32, String)],
) -> Vec<DeviceUse> {
    let Ok(ctx) = raw_context(ctx, model) else {
        return Vec::new();
    };
    unsafe extern "C" fn add(
        user_data: *mut c_void,
        dev: ggml_backend_dev_t,
        model: u64,
        context: u64,
        compute: u64,
    ) {
        // SAFETY: the Vec passed below, alive and not otherwise borrowed during the call.
        let found = unsafe { &mut *user_data.cast::<Vec<(ggml_backend_dev_t, MemoryUse)>>() };
        found.push((
            dev,
            MemoryUse {
                model_bytes: model,
                kv_cache_bytes: context,
                compute_bytes: compute,
            },
        ));
    }
    let mut found: Vec<(ggml_backend_dev_t, MemoryUse)> = Vec::new();
    // SAFETY: a live context; the shim catches every exception and calls `add` synchronously.
    unsafe { rl_memory_by_device(ctx.as_ptr(), add, std::ptr::from_mut(&mut found).cast()) };
    // SAFETY: plain registry query; every build has a CPU device.
    let cpu = unsafe {
        llama_cpp_sys_2::ggml_backend_dev_by_type(llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU)
    };
    let mut devices: Vec<(ggml_backend_dev_t, MemoryUse)> = vec![(cpu, MemoryUse::default())];
    for (dev, use_) in found {
        let dev = if dev.is_null() { cpu } else { dev };
        match devices.iter_mut().find(|(d, _)| *d == dev) {
            Some((_, sum)) => *sum += use_,
            None => devices.push((dev, use_)),
        }
    }
    devices
        .into_iter()
        .map(|(dev, memory_use)| {
            let name = name(dev);
            let (memory_total, memory_free) = memory(dev);
            DeviceUse {
                layers: layers_on(placement, &name),
                kind: kind(dev),
                name,
                memory: memory_use,
                memory_total,
                memory_free,
            }
        })
        .collect()
}
