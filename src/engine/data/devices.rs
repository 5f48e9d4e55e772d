//! The compute devices llama.cpp can use, what a model puts on each, and what a load would
//! allocate before it happens (`list_devices`, `describe`'s `devices`, `estimate`).

/// What kind of device, as ggml classes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// The host CPU (always present; weights not offloaded live here).
    Cpu,
    /// A discrete GPU.
    Gpu,
    /// An integrated GPU sharing the host's memory.
    Igpu,
    /// An accelerator used beside the CPU (BLAS, ...), holding no layers of its own.
    Accel,
}

/// A device this library can use (`list_devices`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// llama.cpp's name for it ("CPU", "Vulkan0", "CUDA0", ...): what `devices` takes.
    pub name: String,
    /// The driver's description ("NVIDIA GeForce RTX 4070", "llvmpipe (LLVM 15.0.6, 256
    /// bits)", the CPU's model name).
    pub description: String,
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// Bytes of memory, and free now, as the driver reports them (the host's RAM for the
    /// CPU).
    pub memory_total: u64,
    pub memory_free: u64,
}

/// What a model holds on one device: the layers placed there and the bytes allocated, by
/// purpose. In `describe` the actual allocation; in an [`Estimate`] the planned one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceUse {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// The model's layers placed on it (llama.cpp's numbering; the output layer is
    /// `n_layer`). Empty for the CPU when the log did not say (llama.cpp reports placement
    /// only at debug level, captured during the load).
    pub layers: Vec<u32>,
    /// Bytes for the weights, the KV cache and compute buffers on this device.
    pub memory: MemoryUse,
    /// The device's memory and free memory (at load, or now for an estimate).
    pub memory_total: u64,
    pub memory_free: u64,
}

/// What creating an engine with some options would allocate, without loading the weights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Estimate {
    /// The context the engine would have (the options' `n_ctx`, capped at the model's
    /// training context).
    pub n_ctx: u32,
    /// Per device, the CPU (host memory) included.
    pub devices: Vec<DeviceUse>,
    /// The sums over all devices.
    pub total: MemoryUse,
}

/// Bytes of memory by purpose, as llama.cpp accounts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUse {
    pub model_bytes: u64,
    pub kv_cache_bytes: u64,
    pub compute_bytes: u64,
}

/// Purpose by purpose: what several devices (or buffers) hold together.
impl std::ops::AddAssign for MemoryUse {
    fn add_assign(&mut self, other: MemoryUse) {
        self.model_bytes += other.model_bytes;
        self.kv_cache_bytes += other.kv_cache_bytes;
        self.compute_bytes += other.compute_bytes;
    }
}
