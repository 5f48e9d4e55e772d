// Smoke check for scripts/make-vision-projector: loads a text model and a vision projector
// (mmproj) with llama.cpp's mtmd, tokenizes a chat prompt holding one test image, encodes the
// image, checks its embeddings, and decodes the whole prompt through the text model.
//
// usage: mtmd-smoke MODEL.gguf MMPROJ.gguf
// stdout: key=value lines (read by make-vision-projector); llama.cpp's warnings and errors
// go to stderr. Exits 0 only if every step worked and every number is finite.
#include "llama.h"
#include "mtmd.h"
#include "mtmd-helper.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

static ggml_log_level last_level = GGML_LOG_LEVEL_NONE;

static void log_warnings(ggml_log_level level, const char * text, void *) {
    if (level != GGML_LOG_LEVEL_CONT) {
        last_level = level;
    }
    if (last_level >= GGML_LOG_LEVEL_WARN) {
        fputs(text, stderr);
    }
}

static double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// "id'piece'" for each token, special tokens rendered.
static std::string render(const llama_vocab * vocab, const llama_token * tokens, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        int len = llama_token_to_piece(vocab, tokens[i], buf, sizeof(buf), 0, true);
        std::string piece;
        for (int j = 0; j < len; j++) {  // control characters escaped: one line per chunk
            unsigned char c = (unsigned char) buf[j];
            char esc[8];
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            piece += c == '\n' ? "\\n" : c < 0x20 || c == 0x7f ? esc : std::string(1, (char) c);
        }
        out += (i ? " " : "") + std::to_string(tokens[i]) + "'" + piece + "'";
    }
    return out;
}

static int fail(const char * what) {
    fprintf(stderr, "mtmd-smoke: %s\n", what);
    return 1;
}

int main(int argc, char ** argv) {
    if (argc != 3) {
        return fail("usage: mtmd-smoke MODEL.gguf MMPROJ.gguf");
    }
    llama_log_set(log_warnings, nullptr);
    mtmd_log_set(log_warnings, nullptr);
    llama_backend_init();

    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) return fail("llama_model_load_from_file failed");
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_embd = llama_model_n_embd_inp(model);

    mtmd_context_params params = mtmd_context_params_default();
    params.use_gpu = false;
    params.n_threads = 2;
    params.print_timings = false;
    auto t0 = std::chrono::steady_clock::now();
    mtmd_context * ctx = mtmd_init_from_file(argv[2], model, params);
    if (!ctx) return fail("mtmd_init_from_file failed");
    printf("init_ms=%.1f\n", ms_since(t0));  // includes mtmd's warmup encode
    printf("vision=%d audio=%d mrope=%d\n", mtmd_support_vision(ctx), mtmd_support_audio(ctx),
           mtmd_decode_use_mrope(ctx));

    // A 64x64 RGB gradient: mtmd resizes it to the projector's image_size.
    const int nx = 64, ny = 64;
    std::vector<unsigned char> rgb(nx * ny * 3);
    for (int y = 0; y < ny; y++) {
        for (int x = 0; x < nx; x++) {
            unsigned char * p = &rgb[(y * nx + x) * 3];
            p[0] = (unsigned char) (x * 4);
            p[1] = (unsigned char) (y * 4);
            p[2] = (unsigned char) ((x + y) * 2);
        }
    }
    mtmd_bitmap * bitmap = mtmd_bitmap_init(nx, ny, rgb.data());

    std::string prompt = std::string("<start_of_turn>user\n") + mtmd_default_marker() +
                         "Describe.<end_of_turn>\n<start_of_turn>model\n";
    mtmd_input_text text = {prompt.c_str(), prompt.size(), /*add_special*/ true, /*parse_special*/ true};
    mtmd_input_chunks * chunks = mtmd_input_chunks_init();
    const mtmd_bitmap * bitmaps[] = {bitmap};
    if (int32_t rc = mtmd_tokenize(ctx, chunks, &text, bitmaps, 1); rc != 0) {
        return fail(("mtmd_tokenize returned " + std::to_string(rc)).c_str());
    }

    const size_t n_chunks = mtmd_input_chunks_size(chunks);
    printf("chunks=%zu\n", n_chunks);
    const mtmd_input_chunk * image = nullptr;
    size_t n_prompt = 0;
    for (size_t i = 0; i < n_chunks; i++) {
        const mtmd_input_chunk * chunk = mtmd_input_chunks_get(chunks, i);
        n_prompt += mtmd_input_chunk_get_n_tokens(chunk);
        if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            size_t n = 0;
            const llama_token * tokens = mtmd_input_chunk_get_tokens_text(chunk, &n);
            printf("chunk%zu=text %zu: %s\n", i, n, render(vocab, tokens, n).c_str());
        } else {
            printf("chunk%zu=media %zu tokens, %d positions\n", i,
                   mtmd_input_chunk_get_n_tokens(chunk), (int) mtmd_input_chunk_get_n_pos(chunk));
            image = chunk;
        }
    }
    if (!image) return fail("no image chunk");
    printf("non_causal=%d\n", mtmd_decode_use_non_causal(ctx, image));

    const size_t n_tokens = mtmd_input_chunk_get_n_tokens(image);
    t0 = std::chrono::steady_clock::now();
    if (mtmd_encode_chunk(ctx, image) != 0) return fail("mtmd_encode_chunk failed");
    const double encode_ms = ms_since(t0);
    const float * embd = mtmd_get_output_embd(ctx);
    size_t n_bad = 0;
    double sum_sq = 0, max_abs = 0;
    for (size_t i = 0; i < n_tokens * n_embd; i++) {
        if (!std::isfinite(embd[i])) { n_bad++; continue; }
        sum_sq += (double) embd[i] * embd[i];
        max_abs = std::fmax(max_abs, std::fabs(embd[i]));
    }
    printf("image_tokens=%zu n_embd=%d encode_ms=%.1f nonfinite=%zu rms=%.4f max_abs=%.4f\n",
           n_tokens, n_embd, encode_ms, n_bad, std::sqrt(sum_sq / (n_tokens * n_embd)), max_abs);
    if (n_bad) return fail("non-finite image embeddings");

    // The whole prompt through the text model (mtmd's helper encodes the image again and
    // decodes it non-causally when mtmd_decode_use_non_causal says so).
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 256;
    cparams.n_batch = cparams.n_ubatch = 64;
    cparams.n_threads = cparams.n_threads_batch = 2;
    llama_context * lctx = llama_init_from_model(model, cparams);
    if (!lctx) return fail("llama_init_from_model failed");
    llama_pos n_past = 0;
    t0 = std::chrono::steady_clock::now();
    if (mtmd_helper_eval_chunks(ctx, lctx, chunks, 0, 0, cparams.n_batch, true, &n_past) != 0) {
        return fail("mtmd_helper_eval_chunks failed");
    }
    const double eval_ms = ms_since(t0);
    const float * logits = llama_get_logits_ith(lctx, -1);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    int best = 0;
    size_t bad_logits = 0;
    for (int i = 0; i < n_vocab; i++) {
        if (!std::isfinite(logits[i])) bad_logits++;
        else if (logits[i] > logits[best]) best = i;
    }
    printf("prompt_tokens=%zu n_past=%d eval_ms=%.1f nonfinite_logits=%zu argmax=%s\n", n_prompt,
           (int) n_past, eval_ms, bad_logits, render(vocab, &best, 1).c_str());
    if (bad_logits) return fail("non-finite logits");

    llama_free(lctx);
    mtmd_input_chunks_free(chunks);
    mtmd_bitmap_free(bitmap);
    mtmd_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    printf("ok\n");
    return 0;
}
