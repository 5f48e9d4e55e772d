// How much memory llama.cpp allocated for a context's model weights, KV cache and compute
// buffers, summed over every device. llama.cpp reports this only through its staging C++
// API (llama-ext.h), hence a few lines of C++ compiled against the same sources.

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
