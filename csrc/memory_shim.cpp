// How much memory llama.cpp allocated for a context's model weights, KV cache and compute
// buffers, summed over every device, or per device. llama.cpp reports this only through its
// staging C++ API (llama-ext.h), hence a few lines of C++ compiled against the same sources.

#include "llama-ext.h"

#include <cstdint>

extern "C" void rl_memory_use(const llama_context * ctx, uint64_t * model, uint64_t * context,
                              uint64_t * compute) {
    *model = 0;
    *context = 0;
    *compute = 0;
    try {
        for (const auto & entry : llama_get_memory_breakdown(ctx)) {
            *model += entry.second.model;
            *context += entry.second.context;
            *compute += entry.second.compute;
        }
    } catch (...) {
        // Nothing to report beats an exception crossing into Rust.
    }
}

// Calls `each` once per buffer type with the device it belongs to: NULL for host memory
// (the CPU's own buffers, and a GPU backend's pinned host buffers), as llama.cpp's fitting
// (common/fit.cpp) attributes them. Works for contexts of models loaded with no_alloc too:
// then the sizes are what a real load would allocate.
extern "C" void rl_memory_by_device(const llama_context * ctx,
                                    void (*each)(void * user_data, ggml_backend_dev_t device,
                                                 uint64_t model, uint64_t context, uint64_t compute),
                                    void * user_data) {
    try {
        for (const auto & [buft, use] : llama_get_memory_breakdown(ctx)) {
            ggml_backend_dev_t device = ggml_backend_buft_is_host(buft) ? nullptr : ggml_backend_buft_get_device(buft);
            each(user_data, device, use.model, use.context, use.compute);
        }
    } catch (...) {
        // As above: what was reported so far stands.
    }
}
