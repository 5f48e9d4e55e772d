/* The C contract of include/rigllama.h, promise by promise, against the real model.
 *
 *   usage: test_contract MODEL.gguf [SECOND_MODEL.gguf]
 *
 * Each check prints "ok" or "FAIL" with the line; the last line is "N passed, N failed".
 * An alarm() guard turns any hang into a failure. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *model_path;

static rigllama_engine *create_engine(uint32_t n_ctx) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    if (n_ctx)
        options.n_ctx = n_ctx;
    rigllama_engine *engine = NULL;
    rigllama_status status = rigllama_engine_create(&options, &engine);
    if (status != RIGLLAMA_STATUS_OK) {
        printf("FAIL: cannot create engine: %s\n", rigllama_last_error());
        exit(1);
    }
    return engine;
}

/* ---- layout ------------------------------------------------------------------------- */

#define FIELD(T, f) printf("  %-24s %-22s offset %3zu size %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))

static void test_layout_is_printed_for_bindings(void) {
    printf("struct layout (for hand-written bindings):\n");
    printf("  sizeof(rigllama_engine_options) = %zu\n", sizeof(rigllama_engine_options));
    FIELD(rigllama_engine_options, struct_size);
    FIELD(rigllama_engine_options, n_ctx);
    FIELD(rigllama_engine_options, n_batch);
    FIELD(rigllama_engine_options, n_threads);
    FIELD(rigllama_engine_options, n_gpu_layers);
    FIELD(rigllama_engine_options, model_path);
    FIELD(rigllama_engine_options, chat_template);
    FIELD(rigllama_engine_options, on_progress);
    FIELD(rigllama_engine_options, progress_user_data);
    FIELD(rigllama_engine_options, context_overflow);
    FIELD(rigllama_engine_options, n_seq);
    FIELD(rigllama_engine_options, type_k);
    FIELD(rigllama_engine_options, type_v);
    FIELD(rigllama_engine_options, flash_attention);
    FIELD(rigllama_engine_options, fit);
    FIELD(rigllama_engine_options, fit_min_ctx);
    FIELD(rigllama_engine_options, fit_margins_mib);
    FIELD(rigllama_engine_options, n_fit_margins_mib);
    FIELD(rigllama_engine_options, max_checkpoint_bytes);
    FIELD(rigllama_engine_options, max_checkpoints);
    FIELD(rigllama_engine_options, mmproj_path);
    FIELD(rigllama_engine_options, thread_priority);
    FIELD(rigllama_engine_options, rpc_servers);
    FIELD(rigllama_engine_options, model_offset);
    FIELD(rigllama_engine_options, model_size);
    FIELD(rigllama_engine_options, no_repack);
    FIELD(rigllama_engine_options, devices);
    printf("  sizeof(rigllama_request) = %zu\n", sizeof(rigllama_request));
    FIELD(rigllama_request, struct_size);
    FIELD(rigllama_request, max_tokens);
    FIELD(rigllama_request, temperature);
    FIELD(rigllama_request, top_p);
    FIELD(rigllama_request, top_k);
    FIELD(rigllama_request, min_p);
    FIELD(rigllama_request, repeat_penalty);
    FIELD(rigllama_request, seed);
    FIELD(rigllama_request, raw_prompt);
    FIELD(rigllama_request, prompt);
    FIELD(rigllama_request, system_prompt);
    FIELD(rigllama_request, messages_json);
    FIELD(rigllama_request, stop);
    FIELD(rigllama_request, n_stop);
    FIELD(rigllama_request, priority);
    FIELD(rigllama_request, grammar);
    FIELD(rigllama_request, json_schema);
    FIELD(rigllama_request, tools_json);
    FIELD(rigllama_request, tool_choice);
    FIELD(rigllama_request, reasoning);
    FIELD(rigllama_request, presence_penalty);
    FIELD(rigllama_request, frequency_penalty);
    FIELD(rigllama_request, penalty_last_n);
    FIELD(rigllama_request, dry_multiplier);
    FIELD(rigllama_request, dry_base);
    FIELD(rigllama_request, dry_allowed_length);
    FIELD(rigllama_request, dry_penalty_last_n);
    FIELD(rigllama_request, xtc_probability);
    FIELD(rigllama_request, xtc_threshold);
    FIELD(rigllama_request, typical_p);
    FIELD(rigllama_request, top_n_sigma);
    FIELD(rigllama_request, mirostat);
    FIELD(rigllama_request, mirostat_tau);
    FIELD(rigllama_request, mirostat_eta);
    FIELD(rigllama_request, n_logprobs);
    FIELD(rigllama_request, logit_bias_json);
    FIELD(rigllama_request, dry_sequence_breakers);
    FIELD(rigllama_request, n_dry_sequence_breakers);
    FIELD(rigllama_request, draft_max);
    FIELD(rigllama_request, prompt_tokens);
    FIELD(rigllama_request, n_prompt_tokens);
    FIELD(rigllama_request, suffix);
    FIELD(rigllama_request, adaptive_target);
    FIELD(rigllama_request, adaptive_decay);
    FIELD(rigllama_request, reasoning_budget);
    FIELD(rigllama_request, lora_ids);
    FIELD(rigllama_request, lora_scales);
    FIELD(rigllama_request, n_loras);
    printf("  sizeof(rigllama_usage) = %zu\n", sizeof(rigllama_usage));
    FIELD(rigllama_usage, struct_size);
    FIELD(rigllama_usage, finish_reason);
    FIELD(rigllama_usage, prompt_tokens);
    FIELD(rigllama_usage, cached_prompt_tokens);
    FIELD(rigllama_usage, completion_tokens);
    FIELD(rigllama_usage, seed);
    FIELD(rigllama_usage, prompt_ms);
    FIELD(rigllama_usage, generation_ms);
    FIELD(rigllama_usage, dropped_tokens);
    FIELD(rigllama_usage, drafted_tokens);
    FIELD(rigllama_usage, accepted_tokens);
    FIELD(rigllama_usage, image_tokens);
    /* Doubles sit at a multiple of 8 so i686 and x86-64 agree on offsets. */
    CHECK(offsetof(rigllama_usage, prompt_ms) % 8 == 0, "prompt_ms at %zu", offsetof(rigllama_usage, prompt_ms));
    CHECK(offsetof(rigllama_usage, prompt_ms) == 24, "prompt_ms at %zu", offsetof(rigllama_usage, prompt_ms));
    CHECK(offsetof(rigllama_engine_options, model_path) == 24 || sizeof(void *) == 4, "model_path offset");
    /* v0.2 fields are appended after the frozen v0.1 sizes (options 56, usage 40 on x86-64). */
    CHECK(offsetof(rigllama_engine_options, context_overflow) == 56 || sizeof(void *) == 4,
          "context_overflow at %zu", offsetof(rigllama_engine_options, context_overflow));
    CHECK(offsetof(rigllama_usage, dropped_tokens) == 40, "dropped_tokens at %zu", offsetof(rigllama_usage, dropped_tokens));
    CHECK(offsetof(rigllama_engine_options, n_seq) == 60 || sizeof(void *) == 4,
          "n_seq at %zu", offsetof(rigllama_engine_options, n_seq));
    /* The v0.1 request was 80 bytes on x86-64: priority is appended right after it. */
    CHECK(offsetof(rigllama_request, priority) == 80 || sizeof(void *) == 4,
          "priority at %zu", offsetof(rigllama_request, priority));
    /* Structured output, tools and reasoning follow priority (i686: 60, 64, 68, 72, 76; 80). */
    CHECK(offsetof(rigllama_request, grammar) == (sizeof(void *) == 8 ? 88 : 60), "grammar at %zu",
          offsetof(rigllama_request, grammar));
    CHECK(offsetof(rigllama_request, json_schema) == (sizeof(void *) == 8 ? 96 : 64), "json_schema at %zu",
          offsetof(rigllama_request, json_schema));
    CHECK(offsetof(rigllama_request, tools_json) == (sizeof(void *) == 8 ? 104 : 68), "tools_json at %zu",
          offsetof(rigllama_request, tools_json));
    CHECK(offsetof(rigllama_request, tool_choice) == (sizeof(void *) == 8 ? 112 : 72), "tool_choice at %zu",
          offsetof(rigllama_request, tool_choice));
    CHECK(offsetof(rigllama_request, reasoning) == (sizeof(void *) == 8 ? 116 : 76), "reasoning at %zu",
          offsetof(rigllama_request, reasoning));
    /* v0.2 knobs (issue 13): 4-byte fields first, then pointers, appended. */
#define AT(T, f, x64, x86)                                                                         \
    CHECK(offsetof(T, f) == (sizeof(void *) == 8 ? (x64) : (x86)), #T "." #f " at %zu", offsetof(T, f))
    AT(rigllama_engine_options, type_k, 64, 44);
    AT(rigllama_engine_options, type_v, 68, 48);
    AT(rigllama_engine_options, flash_attention, 72, 52);
    AT(rigllama_engine_options, fit, 76, 56);
    AT(rigllama_engine_options, fit_min_ctx, 80, 60);
    AT(rigllama_engine_options, fit_margins_mib, 88, 64);
    AT(rigllama_engine_options, n_fit_margins_mib, 96, 68);
    /* Checkpoints (issue 14): the 8-byte bound first, at a multiple of 8 on both. */
    AT(rigllama_engine_options, max_checkpoint_bytes, 104, 72);
    AT(rigllama_engine_options, max_checkpoints, 112, 80);
    AT(rigllama_engine_options, mmproj_path, 120, 84);
    /* v0.3: appended; x86-64 pads the struct to 136 (a multiple of its 8-byte alignment). */
    AT(rigllama_engine_options, thread_priority, 128, 88);
    /* v0.3 (issue 27): appended after thread_priority's padding on x86-64. */
    AT(rigllama_engine_options, rpc_servers, 136, 92);
    AT(rigllama_engine_options, model_offset, 144, 96);
    AT(rigllama_engine_options, model_size, 152, 104);
    AT(rigllama_engine_options, no_repack, 160, 112);
    AT(rigllama_engine_options, devices, 168, 116);
    CHECK(sizeof(rigllama_engine_options) == (sizeof(void *) == 8 ? 176 : 120), "sizeof options %zu",
          sizeof(rigllama_engine_options));
    AT(rigllama_request, presence_penalty, 120, 80);
    AT(rigllama_request, frequency_penalty, 124, 84);
    AT(rigllama_request, penalty_last_n, 128, 88);
    AT(rigllama_request, dry_multiplier, 132, 92);
    AT(rigllama_request, dry_base, 136, 96);
    AT(rigllama_request, dry_allowed_length, 140, 100);
    AT(rigllama_request, dry_penalty_last_n, 144, 104);
    AT(rigllama_request, xtc_probability, 148, 108);
    AT(rigllama_request, xtc_threshold, 152, 112);
    AT(rigllama_request, typical_p, 156, 116);
    AT(rigllama_request, top_n_sigma, 160, 120);
    AT(rigllama_request, mirostat, 164, 124);
    AT(rigllama_request, mirostat_tau, 168, 128);
    AT(rigllama_request, mirostat_eta, 172, 132);
    AT(rigllama_request, n_logprobs, 176, 136);
    AT(rigllama_request, logit_bias_json, 184, 140);
    AT(rigllama_request, dry_sequence_breakers, 192, 144);
    AT(rigllama_request, n_dry_sequence_breakers, 200, 148);
    AT(rigllama_request, draft_max, 208, 152);
    AT(rigllama_request, prompt_tokens, 216, 156);
    AT(rigllama_request, n_prompt_tokens, 224, 160);
    AT(rigllama_request, suffix, 232, 164);
    AT(rigllama_request, adaptive_target, 240, 168);
    AT(rigllama_request, adaptive_decay, 244, 172);
    AT(rigllama_request, reasoning_budget, 248, 176);
    AT(rigllama_request, lora_ids, 256, 180);
    AT(rigllama_request, lora_scales, 264, 184);
    AT(rigllama_request, n_loras, 272, 188);
    AT(rigllama_usage, drafted_tokens, 44, 44);
    AT(rigllama_usage, accepted_tokens, 48, 48);
    AT(rigllama_usage, image_tokens, 52, 52);
#undef AT
    CHECK(sizeof(rigllama_request) == (sizeof(void *) == 8 ? 280 : 192), "sizeof request %zu", sizeof(rigllama_request));
    CHECK(sizeof(rigllama_usage) == 56, "sizeof usage %zu", sizeof(rigllama_usage));
    CHECK(RIGLLAMA_EVENT_KIND_LOGPROBS == 6 && RIGLLAMA_KV_TYPE_F16 == 0 && RIGLLAMA_KV_TYPE_Q8_0 == 3 &&
              RIGLLAMA_KV_TYPE_IQ4_NL == 8 && RIGLLAMA_FLASH_ATTENTION_AUTO == 0 && RIGLLAMA_FLASH_ATTENTION_ON == 2 &&
              RIGLLAMA_MIROSTAT_V2 == 2,
          "issue 13 enum numbers");
    CHECK(RIGLLAMA_FINISH_REASON_TOOL_CALLS == 3 && RIGLLAMA_EVENT_KIND_REASONING == 4 &&
              RIGLLAMA_EVENT_KIND_TOOL_CALL == 5,
          "v0.2 enum numbers");
    CHECK(RIGLLAMA_THREAD_PRIORITY_NORMAL == 0 && RIGLLAMA_THREAD_PRIORITY_LOW == 1 &&
              RIGLLAMA_TOKENIZE_ADD_SPECIAL == 1 && RIGLLAMA_TOKENIZE_PARSE_SPECIAL == 2,
          "v0.3 numbers");
}

/* ---- version, status, last error ---------------------------------------------------- */

static void test_version_and_status_text(void) {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", RIGLLAMA_VERSION_MAJOR, RIGLLAMA_VERSION_MINOR,
             RIGLLAMA_VERSION_PATCH);
    CHECK(strcmp(rigllama_version(), expected) == 0, "version %s vs header %s", rigllama_version(), expected);
    CHECK(strcmp(rigllama_status_str(RIGLLAMA_STATUS_OK), "ok") == 0, "ok text");
    CHECK(strcmp(rigllama_status_str(99), "unknown status") == 0, "unknown status text");
    CHECK(strcmp(rigllama_status_str(-1), "unknown status") == 0, "negative status text");
    CHECK(RIGLLAMA_STATUS_INTERNAL == 8 && RIGLLAMA_STATUS_BUSY == 6, "status numbers are fixed");
    CHECK(RIGLLAMA_SEED_RANDOM == 0xFFFFFFFFu && RIGLLAMA_MAX_TOKENS_UNLIMITED == 0xFFFFFFFFu, "sentinels");
}

/* ---- struct_size rules --------------------------------------------------------------- */

static void test_init_writes_defaults_and_respects_struct_size(void) {
    rigllama_request request;
    CHECK(rigllama_request_init(&request, sizeof request) == RIGLLAMA_STATUS_OK, "init");
    CHECK(request.struct_size == sizeof request, "struct_size set");
    CHECK(request.max_tokens == 512 && request.top_k == 40 && request.seed == RIGLLAMA_SEED_RANDOM,
          "defaults max_tokens %u top_k %d", request.max_tokens, request.top_k);
    CHECK(request.temperature > 0.79f && request.temperature < 0.81f, "temperature default");
    CHECK(request.prompt == NULL && request.stop == NULL && request.n_stop == 0, "NULL defaults");

    rigllama_engine_options options;
    CHECK(rigllama_engine_options_init(&options, sizeof options) == RIGLLAMA_STATUS_OK, "init");
    CHECK(options.n_ctx == 4096 && options.n_batch == 512 && options.n_threads == 0 &&
              options.n_gpu_layers == 0 && options.model_path == NULL && options.on_progress == NULL,
          "options defaults");
    CHECK(options.thread_priority == RIGLLAMA_THREAD_PRIORITY_NORMAL, "thread_priority default %d",
          options.thread_priority);
    CHECK(options.rpc_servers == NULL, "rpc_servers default");
    CHECK(options.model_offset == 0 && options.model_size == 0 && options.no_repack == 0,
          "pack-file range and repacking defaults");
    CHECK(options.devices == NULL, "devices default");

    /* Smaller than v0.1's request (which ended where priority begins): refused, and nothing
     * written. */
    const size_t v0_1_request = offsetof(rigllama_request, priority);
    unsigned char small[sizeof(rigllama_request)];
    memset(small, 0xAB, sizeof small);
    CHECK(rigllama_request_init((rigllama_request *)small, v0_1_request - 1) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "small struct_size refused");
    CHECK(small[0] == 0xAB, "nothing written on refusal");
    /* The v0.1 size (an older caller): its fields get defaults, nothing past it is written. */
    CHECK(rigllama_request_init((rigllama_request *)small, v0_1_request) == RIGLLAMA_STATUS_OK, "v0.1 size accepted");
    CHECK(((rigllama_request *)small)->max_tokens == 512 && small[v0_1_request] == 0xAB,
          "v0.1 fields initialised, priority untouched");

    /* Larger (a newer caller): defaults written, the unknown tail zeroed, never past it. */
    union {
        unsigned char bytes[sizeof(rigllama_request) + 32];
        rigllama_request request;
    } big;
    memset(big.bytes, 0xCD, sizeof big.bytes);
    CHECK(rigllama_request_init(&big.request, sizeof(rigllama_request) + 16) == RIGLLAMA_STATUS_OK, "big init");
    CHECK(big.request.struct_size == sizeof(rigllama_request) + 16, "big struct_size");
    int tail_zero = 1;
    for (size_t i = sizeof(rigllama_request); i < sizeof(rigllama_request) + 16; i++)
        tail_zero &= big.bytes[i] == 0;
    CHECK(tail_zero, "unknown tail zeroed");
    CHECK(big.bytes[sizeof(rigllama_request) + 16] == 0xCD, "nothing written past struct_size");
}

/* ---- NULL arguments ------------------------------------------------------------------ */

static int32_t keep_going(void *user_data, const char *piece, size_t len) {
    (void)user_data;
    (void)piece;
    (void)len;
    return 0;
}

static void test_null_for_every_pointer_argument(rigllama_engine *engine) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    rigllama_request request = greedy("Hello", 4);
    rigllama_engine *out_engine = (rigllama_engine *)&options; /* must be reset to NULL */
    char *text = (char *)"sentinel";
    uint32_t tokens = 0;

    CHECK(rigllama_engine_options_init(NULL, sizeof options) == RIGLLAMA_STATUS_NULL_ARGUMENT, "options_init");
    CHECK(rigllama_request_init(NULL, sizeof request) == RIGLLAMA_STATUS_NULL_ARGUMENT, "request_init");
    CHECK(rigllama_usage_init(NULL, sizeof(rigllama_usage)) == RIGLLAMA_STATUS_NULL_ARGUMENT, "usage_init");

    CHECK(rigllama_engine_create(NULL, &out_engine) == RIGLLAMA_STATUS_NULL_ARGUMENT, "create options");
    CHECK(out_engine == NULL, "out_engine NULL on failure");
    CHECK(strstr(rigllama_last_error(), "NULL") != NULL, "message says NULL: %s", rigllama_last_error());
    CHECK(rigllama_engine_create(&options, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "create out");
    CHECK(rigllama_engine_create(&options, &out_engine) == RIGLLAMA_STATUS_NULL_ARGUMENT, "model_path NULL");
    CHECK(strstr(rigllama_last_error(), "model_path") != NULL, "names model_path: %s", rigllama_last_error());

    CHECK(rigllama_engine_complete(NULL, &request, &text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "complete engine");
    CHECK(text == NULL, "out_text NULL on failure");
    CHECK(rigllama_engine_complete(engine, NULL, &text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "complete request");
    CHECK(rigllama_engine_complete(engine, &request, NULL, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "complete out");

    CHECK(rigllama_engine_stream(NULL, &request, keep_going, NULL, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "stream engine");
    CHECK(rigllama_engine_stream(engine, NULL, keep_going, NULL, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "stream request");
    CHECK(rigllama_engine_stream(engine, &request, NULL, NULL, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "stream callback");

    CHECK(rigllama_engine_reload(NULL, &options) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reload engine");
    CHECK(rigllama_engine_reload(engine, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reload options");
    CHECK(rigllama_engine_reload(engine, &options) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reload model_path");
    CHECK(rigllama_engine_cancel(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "cancel");
    CHECK(rigllama_engine_reset(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "reset");
    CHECK(rigllama_engine_count_tokens(NULL, &request, &tokens) == RIGLLAMA_STATUS_NULL_ARGUMENT, "count engine");
    CHECK(rigllama_engine_count_tokens(engine, NULL, &tokens) == RIGLLAMA_STATUS_NULL_ARGUMENT, "count request");
    CHECK(rigllama_engine_count_tokens(engine, &request, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "count out");
    text = (char *)"sentinel";
    CHECK(rigllama_engine_describe(NULL, &text) == RIGLLAMA_STATUS_NULL_ARGUMENT, "describe engine");
    CHECK(text == NULL, "out_json NULL on failure");
    CHECK(rigllama_engine_describe(engine, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "describe out");

    /* A NULL prompt with no messages is a missing pointer; stop with NULL entries is invalid. */
    rigllama_request no_prompt = greedy(NULL, 4);
    CHECK(rigllama_engine_complete(engine, &no_prompt, &text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL prompt");
    rigllama_request stop_null = greedy("Hello", 4);
    stop_null.n_stop = 2;
    CHECK(rigllama_engine_complete(engine, &stop_null, &text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "stop NULL array");
    const char *stops[] = {"x", NULL};
    stop_null.stop = stops;
    CHECK(rigllama_engine_complete(engine, &stop_null, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "stop NULL entry");

    rigllama_engine_destroy(NULL);  /* no-op */
    rigllama_string_free(NULL);     /* no-op */
    rigllama_set_log_callback(NULL, NULL, 0);
    CHECK(1, "void functions accept NULL");
}

/* ---- bad input ----------------------------------------------------------------------- */

static void test_bad_model_files_fail_cleanly(void) {
    char dir[] = "/tmp/rigllama-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[512];
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    rigllama_engine *engine = NULL;

    options.model_path = "/nonexistent/dir/model.gguf";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "missing file");
    CHECK(strstr(rigllama_last_error(), "/nonexistent/dir/model.gguf") != NULL, "names the path: %s", rigllama_last_error());
    CHECK(engine == NULL, "no engine");

    options.model_path = dir;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "directory");
    CHECK(strstr(rigllama_last_error(), "directory") != NULL, "says directory: %s", rigllama_last_error());

    struct {
        const char *name;
        const char *bytes;
        size_t len;
        const char *expect;
    } files[] = {
        {"empty.gguf", "", 0, "too short"},
        {"text.gguf", "hello, this is not a model\n", 27, "bad magic"},
        {"page.gguf", "<!DOCTYPE html><html></html>", 28, "bad magic"},
        {"truncated.gguf", "GGUF\3\0\0\0\1\0\0\0", 12, "malformed GGUF"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        FILE *f = fopen(path, "wb");
        fwrite(files[i].bytes, 1, files[i].len, f);
        fclose(f);
        options.model_path = path;
        rigllama_status status = rigllama_engine_create(&options, &engine);
        CHECK(status == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "%s: status %d", files[i].name, status);
        CHECK(strstr(rigllama_last_error(), files[i].expect) != NULL && strstr(rigllama_last_error(), path) != NULL,
              "%s: message %s", files[i].name, rigllama_last_error());
        remove(path);
    }
    rmdir(dir);

    options.model_path = "\xff\xfe.gguf";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "invalid UTF-8 path");
    options.model_path = model_path;
    options.n_ctx = 0;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "n_ctx 0");
    CHECK(strstr(rigllama_last_error(), "n_ctx 0") != NULL, "names n_ctx: %s", rigllama_last_error());
    options.n_ctx = 4096;
    options.n_threads = -3;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "negative threads");
    options.n_threads = 0;
    options.thread_priority = 7;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT && engine == NULL,
          "unknown thread_priority");
    CHECK(strstr(rigllama_last_error(), "thread_priority 7") != NULL, "names thread_priority: %s", rigllama_last_error());
    options.thread_priority = RIGLLAMA_THREAD_PRIORITY_NORMAL;
    /* The default library has no RPC (cargo feature `rpc`): refused, saying so. */
    options.n_gpu_layers = -1;
    options.rpc_servers = "127.0.0.1:50052";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT && engine == NULL,
          "rpc_servers without the rpc feature");
    CHECK(strstr(rigllama_last_error(), "built without RPC") != NULL, "says built without RPC: %s",
          rigllama_last_error());
    options.rpc_servers = "no-port";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "bad rpc_servers");
    options.rpc_servers = NULL;
    options.n_gpu_layers = 0;
    /* A model inside a pack file: a range past the end, and bytes that are not a GGUF. */
    options.model_offset = 1ull << 40;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED && engine == NULL &&
              strstr(rigllama_last_error(), "past the end of the file"),
          "a range past the end: %s", rigllama_last_error());
    options.model_offset = 7;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED &&
              strstr(rigllama_last_error(), "not a GGUF"),
          "an offset into the middle of the file: %s", rigllama_last_error());
    options.model_offset = 0;
    options.no_repack = 2;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "no_repack 2"),
          "no_repack 2: %s", rigllama_last_error());
    options.no_repack = 0;
    /* A device that is not there: INVALID_ARGUMENT naming it and the devices there are. */
    options.devices = "NoSuchGPU0";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT && engine == NULL &&
              strstr(rigllama_last_error(), "NoSuchGPU0") && strstr(rigllama_last_error(), "CPU"),
          "an unknown device: %s", rigllama_last_error());
    options.devices = "CPU,,CPU";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "an empty device name: %s", rigllama_last_error());
    options.devices = NULL;
    options.struct_size = 8;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "small struct_size");
    CHECK(strstr(rigllama_last_error(), "rigllama_engine_options_init") != NULL, "says call init: %s", rigllama_last_error());
}

static void test_bad_requests_are_refused_before_running(rigllama_engine *engine) {
    char *text = NULL;
    rigllama_request request = greedy("\xc3\x28 invalid", 4);
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "bad UTF-8");
    CHECK(strstr(rigllama_last_error(), "UTF-8") != NULL, "says UTF-8: %s", rigllama_last_error());

    rigllama_request chat;
    rigllama_request_init(&chat, sizeof chat);
    chat.messages_json = "[{\"role\":\"user\",\"content\":";
    CHECK(rigllama_engine_complete(engine, &chat, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "bad JSON");
    chat.messages_json = "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]";
    CHECK(rigllama_engine_complete(engine, &chat, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "ends with assistant");
    chat.messages_json = "[{\"role\":\"system\",\"content\":\"be brief\"}]";
    chat.prompt = "hi";
    chat.system_prompt = "two systems";
    CHECK(rigllama_engine_complete(engine, &chat, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "two system turns");

    request = greedy("Hello", 0);
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "max_tokens 0");
    request = greedy("Hello", 4);
    request.temperature = -1.0f;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "temperature");
    request = greedy("Hello", 4);
    request.top_p = 1.5f;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "top_p");
    request = greedy("Hello", 4);
    request.raw_prompt = 2;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "raw_prompt 2");
    request = greedy("Hello", 4);
    request.system_prompt = "sys";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "raw + system");

    /* A newer caller's struct with unknown non-zero bytes is refused, naming the offset. */
    union {
        unsigned char bytes[sizeof(rigllama_request) + 8];
        rigllama_request request;
    } big;
    memset(&big, 0, sizeof big);
    rigllama_request_init(&big.request, sizeof big.bytes);
    big.request.prompt = "Hello";
    big.request.raw_prompt = 1;
    big.request.max_tokens = 2;
    big.bytes[sizeof(rigllama_request) + 3] = 1;
    CHECK(rigllama_engine_complete(engine, &big.request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "unknown bytes");
    CHECK(strstr(rigllama_last_error(), "offset") != NULL, "names offset: %s", rigllama_last_error());
    big.bytes[sizeof(rigllama_request) + 3] = 0;
    CHECK(rigllama_engine_complete(engine, &big.request, &text, NULL) == RIGLLAMA_STATUS_OK, "zero tail accepted");
    rigllama_string_free(text);
    CHECK(strcmp(rigllama_last_error(), "") == 0, "last error cleared on OK");
}

/* ---- completion and streaming -------------------------------------------------------- */

typedef struct {
    char text[8192];
    size_t len;
    int pieces;
    int bad_pieces;
    int stop_after;            /* return non-zero at this piece (0 = never) */
    int calls_after_stop;
} collector;

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

static int32_t collect(void *user_data, const char *piece, size_t len) {
    collector *c = user_data;
    if (c->stop_after && c->pieces >= c->stop_after)
        c->calls_after_stop++;
    c->pieces++;
    if (strlen(piece) != len || len == 0 || !valid_utf8((const unsigned char *)piece, len))
        c->bad_pieces++;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    return c->stop_after && c->pieces >= c->stop_after;
}

static void test_stream_pieces_concatenate_to_complete_text(rigllama_engine *engine) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = "Name three fruits and say something about each.";
    request.temperature = 0.0f;
    request.max_tokens = 64;

    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    char *text = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    CHECK(rigllama_engine_complete(engine, &request, &text, &usage) == RIGLLAMA_STATUS_OK, "complete");
    CHECK(text != NULL && strlen(text) > 0, "non-empty text");
    CHECK(usage.prompt_tokens > 5 && usage.completion_tokens > 0, "usage tokens %u %u", usage.prompt_tokens, usage.completion_tokens);
    CHECK(usage.prompt_ms > 0 && usage.generation_ms > 0, "timings %f %f", usage.prompt_ms, usage.generation_ms);

    uint32_t counted = 0;
    CHECK(rigllama_engine_count_tokens(engine, &request, &counted) == RIGLLAMA_STATUS_OK, "count_tokens");
    CHECK(counted == usage.prompt_tokens, "count_tokens %u == prompt_tokens %u", counted, usage.prompt_tokens);

    collector c;
    memset(&c, 0, sizeof c);
    rigllama_usage stream_usage;
    rigllama_usage_init(&stream_usage, sizeof stream_usage);
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    CHECK(rigllama_engine_stream(engine, &request, collect, &c, &stream_usage) == RIGLLAMA_STATUS_OK, "stream");
    CHECK(text && strcmp(c.text, text) == 0, "stream == complete:\n[%s]\n[%s]", c.text, text ? text : "");
    CHECK(c.bad_pieces == 0, "%d pieces not NUL-terminated whole UTF-8", c.bad_pieces);
    CHECK(c.pieces > 1, "several pieces (%d)", c.pieces);
    CHECK(stream_usage.completion_tokens == usage.completion_tokens, "same token count");
    rigllama_string_free(text);
}

static void test_callback_stop_gives_finish_callback(rigllama_engine *engine) {
    rigllama_request request = greedy("Count from one to one hundred: one, two, three,", 200);
    collector c;
    memset(&c, 0, sizeof c);
    c.stop_after = 5;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    CHECK(rigllama_engine_stream(engine, &request, collect, &c, &usage) == RIGLLAMA_STATUS_OK, "stream");
    CHECK(usage.finish_reason == RIGLLAMA_FINISH_REASON_CALLBACK, "finish %d", usage.finish_reason);
    CHECK(c.pieces == 5 && c.calls_after_stop == 0, "pieces %d, after stop %d", c.pieces, c.calls_after_stop);
    CHECK(usage.completion_tokens >= 5 && usage.completion_tokens < 20, "counted only delivered: %u", usage.completion_tokens);
}

static void test_usage_struct_size_is_respected(rigllama_engine *engine) {
    rigllama_request request = greedy("Hello", 3);
    /* An older caller whose usage ends after `seed`: the doubles are not written. */
    union {
        unsigned char bytes[sizeof(rigllama_usage)];
        rigllama_usage usage;
    } u;
    memset(&u, 0xEE, sizeof u);
    u.usage.struct_size = (uint32_t)offsetof(rigllama_usage, prompt_ms);
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &request, &text, &u.usage) == RIGLLAMA_STATUS_OK, "complete");
    CHECK(u.usage.completion_tokens == 3, "fields inside written");
    CHECK(u.bytes[offsetof(rigllama_usage, prompt_ms)] == 0xEE, "nothing written past struct_size");
    rigllama_string_free(text);
}

/* ---- re-entrancy from callbacks ------------------------------------------------------ */

typedef struct {
    rigllama_engine *engine;
    rigllama_status complete_status, stream_status, reload_status;
    int calls;
} reentry;

static int32_t call_back_in(void *user_data, const char *piece, size_t len) {
    reentry *r = user_data;
    (void)piece;
    (void)len;
    if (r->calls++ == 0) {
        rigllama_request request = greedy("Hi", 2);
        char *text = NULL;
        r->complete_status = rigllama_engine_complete(r->engine, &request, &text, NULL);
        rigllama_string_free(text);
        r->stream_status = rigllama_engine_stream(r->engine, &request, keep_going, NULL, NULL);
        rigllama_engine_options options;
        rigllama_engine_options_init(&options, sizeof options);
        options.model_path = model_path;
        r->reload_status = rigllama_engine_reload(r->engine, &options);
    }
    return 1;
}

static void test_blocking_calls_inside_a_callback_return_busy(rigllama_engine *engine) {
    reentry r = {engine, -1, -1, -1, 0};
    rigllama_request request = greedy("Tell me a story.", 16);
    CHECK(rigllama_engine_stream(engine, &request, call_back_in, &r, NULL) == RIGLLAMA_STATUS_OK, "outer stream");
    CHECK(r.complete_status == RIGLLAMA_STATUS_BUSY, "complete %d", r.complete_status);
    CHECK(r.stream_status == RIGLLAMA_STATUS_BUSY, "stream %d", r.stream_status);
    CHECK(r.reload_status == RIGLLAMA_STATUS_BUSY, "reload %d", r.reload_status);
    char *text = NULL;
    rigllama_request next = greedy("Hi", 2);
    CHECK(rigllama_engine_complete(engine, &next, &text, NULL) == RIGLLAMA_STATUS_OK, "engine still serves");
    rigllama_string_free(text);
}

static int32_t cancel_inside(void *user_data, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    rigllama_engine_cancel(user_data);
    return 0;
}

static void test_cancel_inside_a_callback(rigllama_engine *engine) {
    rigllama_request request = greedy("Once upon a time", 64);
    CHECK(rigllama_engine_stream(engine, &request, cancel_inside, engine, NULL) == RIGLLAMA_STATUS_CANCELLED, "cancelled");
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "next request runs");
    rigllama_string_free(text);
}

/* ---- destroy ------------------------------------------------------------------------- */

typedef struct {
    rigllama_engine *engine;
    int calls;
    int destroyed;          /* set right after destroy returned */
    int calls_after_destroy;
} destroyer;

static int32_t destroy_inside(void *user_data, const char *piece, size_t len) {
    destroyer *d = user_data;
    (void)piece;
    (void)len;
    if (d->destroyed)
        d->calls_after_destroy++;
    if (++d->calls == 3) {
        rigllama_engine_destroy(d->engine);
        d->destroyed = 1;
    }
    return 0;
}

static void test_destroy_inside_the_callback(void) {
    destroyer d = {create_engine(0), 0, 0, 0};
    rigllama_request request = greedy("Once upon a time", 200);
    double start = now_ms();
    rigllama_status status = rigllama_engine_stream(d.engine, &request, destroy_inside, &d, NULL);
    CHECK(status == RIGLLAMA_STATUS_CANCELLED, "stream returned %d", status);
    CHECK(d.calls == 3 && d.calls_after_destroy == 0, "calls %d after %d", d.calls, d.calls_after_destroy);
    CHECK(now_ms() - start < 5000 * time_scale(), "returned promptly");
}

typedef struct {
    destroyer d;
    pthread_mutex_t lock;
    pthread_cond_t started;
    rigllama_status status;
    double returned_at;
} destroy_race;

static int32_t note_piece(void *user_data, const char *piece, size_t len) {
    destroy_race *r = user_data;
    (void)piece;
    (void)len;
    pthread_mutex_lock(&r->lock);
    if (r->d.destroyed)
        r->d.calls_after_destroy++;
    if (++r->d.calls == 2)
        pthread_cond_signal(&r->started);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void *stream_until_destroyed(void *arg) {
    destroy_race *r = arg;
    rigllama_request request = greedy("Once upon a time", RIGLLAMA_MAX_TOKENS_UNLIMITED);
    r->status = rigllama_engine_stream(r->d.engine, &request, note_piece, r, NULL);
    r->returned_at = now_ms();
    return NULL;
}

static void test_destroy_from_another_thread_mid_stream(void) {
    destroy_race r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.started, NULL);
    r.d.engine = create_engine(0);
    pthread_t thread;
    pthread_create(&thread, NULL, stream_until_destroyed, &r);
    pthread_mutex_lock(&r.lock);
    while (r.d.calls < 2)
        pthread_cond_wait(&r.started, &r.lock);
    pthread_mutex_unlock(&r.lock);
    double start = now_ms();
    rigllama_engine_destroy(r.d.engine);
    double destroyed_at = now_ms();
    pthread_mutex_lock(&r.lock);
    r.d.destroyed = 1;
    pthread_mutex_unlock(&r.lock);
    pthread_join(thread, NULL);
    CHECK(r.status == RIGLLAMA_STATUS_CANCELLED, "stream returned %d", r.status);
    CHECK(r.d.calls_after_destroy == 0, "%d callbacks after destroy returned", r.d.calls_after_destroy);
    CHECK(destroyed_at - start < 1000 * time_scale(), "destroy took %.1f ms", destroyed_at - start);
    printf("  destroy mid-stream took %.1f ms; the stream returned %.1f ms after destroy began\n",
           destroyed_at - start, r.returned_at - start);
}

/* ---- other promises ------------------------------------------------------------------ */

static void test_prompt_longer_than_context_overflows(void) {
    rigllama_engine *engine = create_engine(64);
    char prompt[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(prompt, "The quick brown fox jumps. ");
    rigllama_request request = greedy(prompt, 4);
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_CONTEXT_OVERFLOW, "overflow");
    CHECK(strstr(rigllama_last_error(), "n_ctx is 64") != NULL && strstr(rigllama_last_error(), "prompt is ") != NULL,
          "both numbers: %s", rigllama_last_error());
    rigllama_request small = greedy("Hello", 4);
    CHECK(rigllama_engine_complete(engine, &small, &text, NULL) == RIGLLAMA_STATUS_OK, "small prompt still fine");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);
}

typedef struct {
    int calls;
    float last;
    pthread_t thread;
    int wrong_thread;
    int abort_at;
} progress_state;

static int32_t on_progress(void *user_data, float progress) {
    progress_state *p = user_data;
    p->calls++;
    p->last = progress;
    if (!pthread_equal(pthread_self(), p->thread))
        p->wrong_thread++;
    return p->abort_at && p->calls >= p->abort_at;
}

static void test_progress_callback_runs_on_the_calling_thread_and_can_abort(void) {
    progress_state p = {0, 0.0f, pthread_self(), 0, 0};
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.on_progress = on_progress;
    options.progress_user_data = &p;
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create");
    CHECK(p.calls > 1 && p.last == 1.0f && p.wrong_thread == 0, "calls %d last %f wrong thread %d", p.calls, p.last, p.wrong_thread);
    rigllama_engine_destroy(engine);

    progress_state abort_early = {0, 0.0f, pthread_self(), 0, 1};
    options.progress_user_data = &abort_early;
    engine = (rigllama_engine *)&options;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_CANCELLED, "aborted load");
    CHECK(engine == NULL, "no engine after abort");
}

static int log_lines;
static void count_log(void *user_data, int32_t level, const char *message) {
    (void)user_data;
    if (level >= 0 && level <= 3 && message && message[0])
        __atomic_fetch_add(&log_lines, 1, __ATOMIC_SEQ_CST);
}

static void test_logs_are_silent_by_default_and_routed_when_asked(void) {
    rigllama_set_log_callback(count_log, NULL, 0);
    rigllama_engine *engine = create_engine(0);
    rigllama_set_log_callback(NULL, NULL, 0);
    int seen = __atomic_load_n(&log_lines, __ATOMIC_SEQ_CST);
    CHECK(seen > 10, "llama.cpp's load logs reached the callback (%d lines)", seen);
    rigllama_engine_destroy(engine);
    int before = __atomic_load_n(&log_lines, __ATOMIC_SEQ_CST);
    engine = create_engine(0);
    rigllama_engine_destroy(engine);
    CHECK(__atomic_load_n(&log_lines, __ATOMIC_SEQ_CST) == before, "NULL turns logging off");
}

static void test_describe_reports_the_model(rigllama_engine *engine) {
    char *json = NULL;
    CHECK(rigllama_engine_describe(engine, &json) == RIGLLAMA_STATUS_OK, "describe");
    CHECK(json && strstr(json, "\"architecture\":\"gemma3\"") && strstr(json, "\"n_ctx\":4096") &&
              strstr(json, "\"chat_template\":\"gemma\"") && strstr(json, "\"n_threads\":"),
          "json %s", json ? json : "(null)");
    CHECK(json && strstr(json, "\"chat_template_error\":null"), "no template error in %s", json ? json : "(null)");
    /* Whether NORMAL could be applied depends on the system (a niced host), so either is fine. */
    CHECK(json && strstr(json, "\"thread_priority\":\"normal\"") && strstr(json, "\"thread_priority_applied\":"),
          "thread_priority in %s", json ? json : "(null)");
    /* n_threads is the threads used: at least one, never more than the cores online. */
    const char *threads = json ? strstr(json, "\"n_threads\":") : NULL;
    long used = threads ? strtol(threads + strlen("\"n_threads\":"), NULL, 10) : 0;
    CHECK(used >= 1 && used <= sysconf(_SC_NPROCESSORS_ONLN), "n_threads %ld of %ld cores", used,
          sysconf(_SC_NPROCESSORS_ONLN));
    rigllama_string_free(json);
}

/* The GGUF given as a range of the file (offset 0, its own size) and without repacking: it
   loads through llama.cpp's FILE* loader and answers. */
static void test_a_model_range_and_no_repack_load(void) {
    FILE *f = fopen(model_path, "rb");
    CHECK(f != NULL, "open the model");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.n_ctx = 256;
    options.model_size = (uint64_t)size;
    options.no_repack = 1;
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create: %s", rigllama_last_error());
    if (!engine)
        return;
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.raw_prompt = 1;
    request.prompt = "Once upon a time";
    request.max_tokens = 4;
    request.temperature = 0.0f;
    char *text = NULL;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK && text && *text, "answers");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);
}

/* A Jinja chat_template that llama.cpp cannot parse: describe and chat requests carry the
   parser's own message; raw prompts still work. */
static void test_a_template_that_does_not_parse_says_why(void) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.n_ctx = 512;
    options.chat_template = "{% for m in messages %}{{ m.content }}{% endfor";
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create: %s", rigllama_last_error());
    if (!engine)
        return;
    char *json = NULL;
    CHECK(rigllama_engine_describe(engine, &json) == RIGLLAMA_STATUS_OK, "describe");
    CHECK(json && strstr(json, "\"chat_template_error\":\"") && strstr(json, "Parser Error") &&
              strstr(json, "\"chat_template_source\":\"none\""),
          "describe says why: %s", json ? json : "(null)");
    rigllama_string_free(json);

    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = "Hi";
    char *text = NULL;
    CHECK(rigllama_engine_apply_template(engine, &request, &text) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "a chat request is refused");
    CHECK(strstr(rigllama_last_error(), "Parser Error") && strstr(rigllama_last_error(), "chat_template"),
          "the message gives the parser's reason and the fix: %s", rigllama_last_error());
    request.raw_prompt = 1;
    request.max_tokens = 2;
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "raw still works: %s",
          rigllama_last_error());
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);
}

/* The number after the first `"key":` at or after `from` (0 when absent). */
static unsigned long long json_number(const char *from, const char *key) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *at = from ? strstr(from, needle) : NULL;
    return at ? strtoull(at + strlen(needle), NULL, 10) : 0;
}

static void test_devices_are_listed_chosen_and_estimated(void) {
    /* This build has its CPU code built in: no modules to load, and describe says so. */
    CHECK(rigllama_set_backend_dir(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "set_backend_dir(NULL)");
    CHECK(rigllama_set_backend_dir("/tmp") == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "dynamic-backends"),
          "set_backend_dir in the static build: %s", rigllama_last_error());
    char *json = NULL;
    CHECK(rigllama_list_devices(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "list_devices(NULL)");
    CHECK(rigllama_list_devices(&json) == RIGLLAMA_STATUS_OK && json, "list_devices: %s", rigllama_last_error());
    CHECK(json && strstr(json, "{\"name\":\"CPU\"") && strstr(json, "\"type\":\"cpu\"") &&
              json_number(json, "memory_total") > (1ull << 30),
          "the CPU is listed: %s", json ? json : "");
    rigllama_string_free(json);

    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    char *estimate = NULL;
    CHECK(rigllama_estimate(NULL, &estimate) == RIGLLAMA_STATUS_NULL_ARGUMENT && !estimate, "estimate(NULL)");
    CHECK(rigllama_estimate(&options, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "estimate out NULL");
    options.fit = 1;
    CHECK(rigllama_estimate(&options, &estimate) == RIGLLAMA_STATUS_INVALID_ARGUMENT && !estimate &&
              strstr(rigllama_last_error(), "fit"),
          "estimate with fit: %s", rigllama_last_error());
    options.fit = 0;
    CHECK(rigllama_estimate(&options, &estimate) == RIGLLAMA_STATUS_OK && estimate, "estimate: %s",
          rigllama_last_error());
    const char *total = estimate ? strstr(estimate, "\"total\"") : NULL;
    CHECK(estimate && json_number(estimate, "n_ctx") == 4096 && total, "estimate: %s", estimate ? estimate : "");

    options.devices = "CPU";
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create on \"CPU\": %s",
          rigllama_last_error());
    if (engine && total) {
        char *described = NULL;
        rigllama_engine_describe(engine, &described);
        const char *memory = described ? strstr(described, "\"memory\":{") : NULL;
        CHECK(described && strstr(described, "\"devices\":[{\"name\":\"CPU\",\"type\":\"cpu\"") &&
                  strstr(described, "\"gpu_fallback\":null") &&
                  strstr(described, "\"cpu_backend\":{\"variant\":\"built-in\""),
              "describe's devices: %s", described ? described : "");
        const char *keys[] = {"model_bytes", "kv_cache_bytes", "compute_bytes"};
        for (int i = 0; i < 3; i++) {
            double planned = (double)json_number(total, keys[i]);
            double real = (double)json_number(memory, keys[i]);
            CHECK(real > 0 && planned > 0.9 * real && planned < 1.1 * real, "estimate %s %.0f vs allocated %.0f",
                  keys[i], planned, real);
        }
        rigllama_string_free(described);
        rigllama_engine_destroy(engine);
    }
    rigllama_string_free(estimate);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    guard_against_hangs(240);

    test_layout_is_printed_for_bindings();
    test_version_and_status_text();
    test_init_writes_defaults_and_respects_struct_size();
    test_bad_model_files_fail_cleanly();
    test_logs_are_silent_by_default_and_routed_when_asked();

    rigllama_engine *engine = create_engine(0);
    test_null_for_every_pointer_argument(engine);
    test_bad_requests_are_refused_before_running(engine);
    test_describe_reports_the_model(engine);
    test_stream_pieces_concatenate_to_complete_text(engine);
    test_callback_stop_gives_finish_callback(engine);
    test_usage_struct_size_is_respected(engine);
    test_blocking_calls_inside_a_callback_return_busy(engine);
    test_cancel_inside_a_callback(engine);
    rigllama_engine_destroy(engine);

    test_prompt_longer_than_context_overflows();
    test_progress_callback_runs_on_the_calling_thread_and_can_abort();
    test_destroy_inside_the_callback();
    test_destroy_from_another_thread_mid_stream();
    test_a_template_that_does_not_parse_says_why();
    test_a_model_range_and_no_repack_load();
    test_devices_are_listed_chosen_and_estimated();

    printf("test_contract: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
