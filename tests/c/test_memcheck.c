/* Every path of the C API once, with few tokens, for valgrind memcheck in CI: create (with
 * progress and log callbacks), complete, stream (callback stop, cancel from another thread,
 * destroy inside the callback), jobs (poll, cancel, free mid-generation, outliving the engine),
 * reload (good and bad), describe, count_tokens, reset, snapshots (save, load, damaged, free),
 * embeddings, context SHIFT, two sequences at once (priorities, pause/resume), and the error
 * paths (bad files, NULL arguments, bad input). Under memcheck a wrong free, a read of freed
 * memory or a leak in any of them shows. (`make test-valgrind` runs the full C tests and
 * examples too.)
 *
 *   usage: test_memcheck MODEL.gguf [SECOND_MODEL.gguf]    last line: "N passed, N failed" */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int32_t progress(void *user_data, float fraction) {
    (void)fraction;
    ++*(int *)user_data;
    return 0;
}

static int log_lines;
static void on_log(void *user_data, int32_t level, const char *message) {
    (void)user_data;
    (void)level;
    if (message[0])
        __atomic_fetch_add(&log_lines, 1, __ATOMIC_SEQ_CST);
}

static rigllama_engine *create(const char *model) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    options.n_ctx = 512;
    int calls = 0;
    options.on_progress = progress;
    options.progress_user_data = &calls;
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create");
    CHECK(calls > 0, "progress callback called");
    return engine;
}

static int32_t stop_after_two(void *user_data, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    return ++*(int *)user_data >= 2;
}

static int32_t destroy_inside(void *user_data, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    rigllama_engine_destroy(user_data);
    return 0;
}

typedef struct {
    rigllama_engine *engine;
    int pieces;
} canceller;

static int32_t cancel_on_first(void *user_data, const char *piece, size_t len) {
    canceller *c = user_data;
    (void)piece;
    (void)len;
    __atomic_fetch_add(&c->pieces, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void *cancel_soon(void *arg) {
    canceller *c = arg;
    struct timespec millisecond = {0, 1000000};
    while (__atomic_load_n(&c->pieces, __ATOMIC_SEQ_CST) == 0)
        nanosleep(&millisecond, NULL);
    rigllama_engine_cancel(c->engine);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [SECOND_MODEL.gguf]\n", argv[0]);
        return 2;
    }
    const char *model = argv[1];
    const char *second = argc > 2 ? argv[2] : argv[1];
    double started = now_ms();
    guard_against_hangs(120);

    /* Error paths: nothing is created, nothing may leak. */
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    rigllama_engine *engine = NULL;
    options.model_path = "/nonexistent/model.gguf";
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "missing file");
    char path[] = "/tmp/rigllama-memcheck-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "GGUF\3\0\0\0\1\0\0\0", 12) == 12, "write a truncated GGUF");
    close(fd);
    options.model_path = path;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "truncated GGUF");
    unlink(path);
    CHECK(rigllama_engine_create(NULL, &engine) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL options");

    rigllama_set_log_callback(on_log, NULL, 1);
    engine = create(model);
    rigllama_set_log_callback(NULL, NULL, 0);
    CHECK(log_lines > 0, "log lines");

    char *text = NULL;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    rigllama_request request = greedy("The sky is", 3);
    CHECK(rigllama_engine_complete(engine, &request, &text, &usage) == RIGLLAMA_STATUS_OK && text, "complete");
    rigllama_string_free(text);

    rigllama_request chat;
    rigllama_request_init(&chat, sizeof chat);
    chat.messages_json = "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"}]";
    chat.max_tokens = 2;
    const char *stops[] = {"\n\n"};
    chat.stop = stops;
    chat.n_stop = 1;
    CHECK(rigllama_engine_complete(engine, &chat, &text, NULL) == RIGLLAMA_STATUS_OK, "chat complete");
    rigllama_string_free(text);
    chat.messages_json = "[{\"role\":";
    CHECK(rigllama_engine_complete(engine, &chat, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "bad JSON");

    uint32_t tokens = 0;
    CHECK(rigllama_engine_count_tokens(engine, &request, &tokens) == RIGLLAMA_STATUS_OK && tokens > 0, "count");
    CHECK(rigllama_engine_describe(engine, &text) == RIGLLAMA_STATUS_OK && text, "describe");
    rigllama_string_free(text);
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");

    int pieces = 0;
    request = greedy("Once upon a time", 16);
    CHECK(rigllama_engine_stream(engine, &request, stop_after_two, &pieces, &usage) == RIGLLAMA_STATUS_OK &&
              usage.finish_reason == RIGLLAMA_FINISH_REASON_CALLBACK, "callback stop");

    canceller c = {engine, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, cancel_soon, &c);
    request = greedy("Once upon a time", 64);
    CHECK(rigllama_engine_stream(engine, &request, cancel_on_first, &c, NULL) == RIGLLAMA_STATUS_CANCELLED,
          "cancel from another thread");
    pthread_join(thread, NULL);

    /* Jobs: run one to the end, cancel one, free one mid-generation. */
    rigllama_event event;
    rigllama_event_init(&event, sizeof event);
    rigllama_job *job = NULL;
    request = greedy("Hello", 2);
    CHECK(rigllama_engine_submit(engine, &request, &job) == RIGLLAMA_STATUS_OK, "submit");
    do
        rigllama_job_poll(job, 1000, &event);
    while (event.kind == RIGLLAMA_EVENT_KIND_TEXT || event.kind == RIGLLAMA_EVENT_KIND_NONE);
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_DONE, "job done");
    CHECK(rigllama_job_usage(job, &usage) == RIGLLAMA_STATUS_OK, "job usage");
    rigllama_job_free(job);
    request = greedy("Once upon a time", 64);
    rigllama_engine_submit(engine, &request, &job);
    rigllama_job_cancel(job);
    do
        rigllama_job_poll(job, 1000, &event);
    while (event.kind == RIGLLAMA_EVENT_KIND_TEXT || event.kind == RIGLLAMA_EVENT_KIND_NONE);
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_ERROR && event.status == RIGLLAMA_STATUS_CANCELLED, "job cancel");
    rigllama_job_free(job);
    rigllama_engine_submit(engine, &request, &job);
    rigllama_job_poll(job, 1000, &event);
    rigllama_job_free(job); /* mid-generation */

    /* Snapshots: save, load back, a damaged copy refused, free. */
    request = greedy("The sky is", 2);
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "complete before save");
    rigllama_string_free(text);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    CHECK(rigllama_engine_save_snapshot(engine, &request, &blob, &blob_len) == RIGLLAMA_STATUS_OK && blob, "save");
    CHECK(rigllama_engine_load_snapshot(engine, blob, blob_len) == RIGLLAMA_STATUS_OK, "load");
    blob[blob_len / 2] ^= 0x55;
    CHECK(rigllama_engine_load_snapshot(engine, blob, blob_len) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "damaged");
    CHECK(rigllama_engine_load_snapshot(engine, blob, 10) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "truncated");
    rigllama_bytes_free(blob);
    rigllama_bytes_free(NULL);

    /* Embeddings: size query, a real vector, too small a buffer. */
    size_t dims = 0;
    CHECK(rigllama_engine_embed(engine, "a cat", NULL, 0, &dims) == RIGLLAMA_STATUS_OK && dims > 0, "embed dims");
    float *vector = malloc(dims * sizeof *vector);
    CHECK(rigllama_engine_embed(engine, "a cat", vector, dims, &dims) == RIGLLAMA_STATUS_OK, "embed");
    CHECK(rigllama_engine_embed(engine, "a cat", vector, 1, &dims) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "embed small");
    free(vector);

    /* Reload: to the second model, then to a bad path (the old one keeps serving). */
    options.model_path = second;
    CHECK(rigllama_engine_reload(engine, &options) == RIGLLAMA_STATUS_OK, "reload");
    options.model_path = "/nonexistent/model.gguf";
    CHECK(rigllama_engine_reload(engine, &options) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED, "bad reload");
    request = greedy("Hi", 2);
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "serves after bad reload");
    rigllama_string_free(text);

    /* A job that outlives its engine, then destroy from inside a stream callback. */
    request = greedy("Once upon a time", 64);
    rigllama_engine_submit(engine, &request, &job);
    rigllama_engine_destroy(engine);
    do
        rigllama_job_poll(job, 1000, &event);
    while (event.kind == RIGLLAMA_EVENT_KIND_TEXT || event.kind == RIGLLAMA_EVENT_KIND_NONE);
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_ERROR, "job after destroy");
    rigllama_job_free(job);

    /* SHIFT: a conversation longer than n_ctx 160 drops its oldest exchanges (small, since
     * everything runs ~50x slower under valgrind). */
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    options.n_ctx = 160;
    options.context_overflow = RIGLLAMA_CONTEXT_OVERFLOW_SHIFT;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create with SHIFT");
    static char long_chat[8192];
    int at = snprintf(long_chat, sizeof long_chat, "[");
    for (int i = 0; i < 8; i++)
        at += snprintf(long_chat + at, sizeof long_chat - (size_t)at,
                       "{\"role\":\"user\",\"content\":\"Question %d about the old lighthouse on the hill by the sea?\"},"
                       "{\"role\":\"assistant\",\"content\":\"Answer %d: the lamp burned all night and the keeper watched.\"},",
                       i, i);
    snprintf(long_chat + at, sizeof long_chat - (size_t)at, "{\"role\":\"user\",\"content\":\"And then?\"}]");
    rigllama_request_init(&chat, sizeof chat);
    chat.messages_json = long_chat;
    chat.max_tokens = 2;
    chat.temperature = 0;
    CHECK(rigllama_engine_complete(engine, &chat, &text, &usage) == RIGLLAMA_STATUS_OK && usage.dropped_tokens > 0,
          "SHIFT drops old turns");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);

    /* Structured output: a schema-constrained reply, a refused grammar, chat under a grammar,
     * and apply_template with tools (the C++ chat layer's allocations). One thread: valgrind runs
     * one thread at a time, and ggml's spinning barrier then makes each token cost seconds. */
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    options.n_ctx = 512;
    options.n_threads = 1;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create with one thread");
    request = greedy("The answer is", 6);
    request.json_schema = "{\"type\":\"integer\",\"minimum\":1,\"maximum\":9}";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "json_schema");
    rigllama_string_free(text);
    request.json_schema = NULL;
    request.grammar = "root ::= \"unterminated";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "bad grammar");
    request = greedy("Is the sea blue?", 4);
    request.grammar = "root ::= \"yes\" | \"no\"";
    char *json = NULL;
    CHECK(rigllama_engine_chat(engine, &request, &json, NULL) == RIGLLAMA_STATUS_OK && strstr(json, "assistant"),
          "chat under a grammar");
    rigllama_string_free(json);
    /* Tools rendered, not run: prompt evaluation under valgrind costs seconds per token. */
    rigllama_request_init(&request, sizeof request);
    request.prompt = "Go to tile 2, 3.";
    request.tools_json = "[{\"type\":\"function\",\"function\":{\"name\":\"move_to\",\"parameters\":"
                         "{\"type\":\"object\",\"properties\":{\"x\":{\"enum\":[1,2]}},\"required\":[\"x\"]}}}]";
    request.tool_choice = RIGLLAMA_TOOL_CHOICE_REQUIRED;
    CHECK(rigllama_engine_apply_template(engine, &request, &json) == RIGLLAMA_STATUS_OK && strstr(json, "move_to"),
          "apply_template with tools");
    rigllama_string_free(json);

    /* Issue 13 on the same engine: every sampler knob at once with log-probabilities through a
     * job, a refused logit bias, chat with logprobs, and a LoRA adapter added, rescaled,
     * refused and removed. */
    request = greedy("The cat sat", 3);
    request.temperature = 0.9f;
    request.seed = 5;
    request.presence_penalty = 0.5f;
    request.frequency_penalty = 0.5f;
    request.repeat_penalty = 1.1f;
    request.dry_multiplier = 0.8f;
    static const char *const breakers[] = {"\n", "."};
    request.dry_sequence_breakers = breakers;
    request.n_dry_sequence_breakers = 2;
    request.xtc_probability = 0.5f;
    request.typical_p = 0.9f;
    request.top_n_sigma = 2.0f;
    request.logit_bias_json = "[[\"the\", false], [7, 1.5]]";
    request.n_logprobs = 4;
    rigllama_job *knobs = NULL;
    CHECK(rigllama_engine_submit(engine, &request, &knobs) == RIGLLAMA_STATUS_OK, "submit with every knob");
    int logprob_events = 0;
    do {
        rigllama_job_poll(knobs, 1000, &event);
        logprob_events += event.kind == RIGLLAMA_EVENT_KIND_LOGPROBS;
    } while (event.kind != RIGLLAMA_EVENT_KIND_DONE && event.kind != RIGLLAMA_EVENT_KIND_ERROR);
    CHECK(event.kind == RIGLLAMA_EVENT_KIND_DONE && logprob_events > 0, "knobs job done with LOGPROBS");
    rigllama_job_free(knobs);
    request.mirostat = RIGLLAMA_MIROSTAT_V2;
    request.logit_bias_json = "{\"x\": 1}";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT, "bad bias");
    request = greedy("Hi", 2);
    request.raw_prompt = 0;
    request.n_logprobs = 2;
    CHECK(rigllama_engine_chat(engine, &request, &json, NULL) == RIGLLAMA_STATUS_OK && strstr(json, "top_logprobs"),
          "chat with logprobs");
    rigllama_string_free(json);
    /* Issue 15: prompt-lookup speculation, guesses evaluated and the usage counters written. */
    request = greedy("a b c d a b c d a b c d a b", 12);
    request.draft_max = 8;
    rigllama_usage guessed;
    rigllama_usage_init(&guessed, sizeof guessed);
    CHECK(rigllama_engine_complete(engine, &request, &text, &guessed) == RIGLLAMA_STATUS_OK, "speculation");
    CHECK(guessed.drafted_tokens > 0 && guessed.accepted_tokens <= guessed.drafted_tokens,
          "drafted %u, accepted %u", guessed.drafted_tokens, guessed.accepted_tokens);
    rigllama_string_free(text);
    const char *lora_dir = getenv("RIGLLAMA_LORA_DIR");
    CHECK(lora_dir != NULL, "RIGLLAMA_LORA_DIR set (scripts/make-lora-adapter)");
    if (lora_dir) {
        char path[1024];
        uint32_t id = 0, other = 0;
        snprintf(path, sizeof path, "%s/gemma3-270m-lora.gguf", lora_dir);
        CHECK(rigllama_engine_add_lora(engine, path, 0.5f, &id) == RIGLLAMA_STATUS_OK, "add_lora");
        CHECK(rigllama_engine_set_lora_scale(engine, id, 1.0f) == RIGLLAMA_STATUS_OK, "set_lora_scale");
        request = greedy("The cat sat", 2);
        CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "with an adapter");
        rigllama_string_free(text);
        snprintf(path, sizeof path, "%s/lora-wrong-shape.gguf", lora_dir);
        CHECK(rigllama_engine_add_lora(engine, path, 1.0f, &other) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
              "wrong-shape adapter refused");
        CHECK(rigllama_engine_remove_lora(engine, id) == RIGLLAMA_STATUS_OK, "remove_lora");
        /* Left applied on purpose: the model frees it on destroy. */
        snprintf(path, sizeof path, "%s/gemma3-270m-lora-second.gguf", lora_dir);
        CHECK(rigllama_engine_add_lora(engine, path, 1.0f, &other) == RIGLLAMA_STATUS_OK, "second adapter");
    }
    rigllama_engine_destroy(engine);

    /* A fit that cannot fit, and a Q8_0 cache (quantized V with flash attention). */
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    options.n_ctx = 512;
    options.n_threads = 1;
    options.fit = 1;
    const uint32_t huge_margin[] = {0xFFFFFFFFu};
    options.fit_margins_mib = huge_margin;
    options.n_fit_margins_mib = 1;
    engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_MODEL_LOAD_FAILED && !engine, "unfittable");
    options.fit = 0;
    options.type_k = options.type_v = RIGLLAMA_KV_TYPE_Q8_0;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "Q8_0 cache");
    request = greedy("The cat sat", 2);
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_OK, "Q8_0 generates");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);

    /* Two sequences: two jobs at once with different priorities, pause and resume, both end. */
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model;
    options.n_ctx = 512;
    options.n_seq = 2;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create with n_seq 2");
    rigllama_job *pair[2] = {NULL, NULL};
    CHECK(rigllama_engine_pause(engine) == RIGLLAMA_STATUS_OK, "pause");
    for (int i = 0; i < 2; i++) {
        request = greedy(i ? "The sea was" : "Once upon a time", 3);
        request.priority = i ? 5 : 0;
        CHECK(rigllama_engine_submit(engine, &request, &pair[i]) == RIGLLAMA_STATUS_OK, "submit with priority %d",
              request.priority);
    }
    CHECK(rigllama_engine_resume(engine) == RIGLLAMA_STATUS_OK, "resume");
    rigllama_job_poll(pair[0], 1000, &event);
    CHECK(rigllama_engine_pause(engine) == RIGLLAMA_STATUS_OK, "pause while two run");
    CHECK(rigllama_engine_resume(engine) == RIGLLAMA_STATUS_OK, "resume");
    for (int i = 0; i < 2; i++) {
        do
            rigllama_job_poll(pair[i], 1000, &event);
        while (event.kind == RIGLLAMA_EVENT_KIND_TEXT || event.kind == RIGLLAMA_EVENT_KIND_NONE);
        CHECK(event.kind == RIGLLAMA_EVENT_KIND_DONE, "job %d of two done", i);
        rigllama_job_free(pair[i]);
    }
    CHECK(rigllama_engine_pause(NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "pause NULL");
    rigllama_engine_destroy(engine);

    /* Two engines generating at once through the process's CPU share (one thread each, so
     * they may compute side by side), one of them at thread_priority LOW; one job cancelled
     * while the other runs. */
    rigllama_engine *both[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        rigllama_engine_options_init(&options, sizeof options);
        options.model_path = model;
        options.n_ctx = 256;
        options.n_threads = 1;
        options.thread_priority = i ? RIGLLAMA_THREAD_PRIORITY_LOW : RIGLLAMA_THREAD_PRIORITY_NORMAL;
        CHECK(rigllama_engine_create(&options, &both[i]) == RIGLLAMA_STATUS_OK, "engine %d of two", i);
        /* The second is cancelled at once: long enough that it cannot end first. */
        request = greedy(i ? "The sea was" : "Once upon a time", i ? 64 : 3);
        CHECK(rigllama_engine_submit(both[i], &request, &pair[i]) == RIGLLAMA_STATUS_OK, "submit to engine %d", i);
    }
    rigllama_job_cancel(pair[1]);
    for (int i = 0; i < 2; i++) {
        do
            rigllama_job_poll(pair[i], 1000, &event);
        while (event.kind == RIGLLAMA_EVENT_KIND_TEXT || event.kind == RIGLLAMA_EVENT_KIND_NONE);
        CHECK(event.kind == (i ? RIGLLAMA_EVENT_KIND_ERROR : RIGLLAMA_EVENT_KIND_DONE), "engine %d's job ended (kind %d)",
              i, event.kind);
        rigllama_job_free(pair[i]);
    }
    rigllama_engine_destroy(both[1]);
    rigllama_engine_destroy(both[0]);

    /* State checkpoints (a recurrent model): taken, restored for a repeated prompt, evicted
     * by the count bound, dropped by reset. */
    const char *recurrent = getenv("RIGLLAMA_RECURRENT_MODEL");
    CHECK(recurrent != NULL, "RIGLLAMA_RECURRENT_MODEL is set");
    if (recurrent) {
        rigllama_engine_options_init(&options, sizeof options);
        options.model_path = recurrent;
        options.n_ctx = 256;
        options.max_checkpoints = 2;
        CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create the recurrent model");
        const char *prompts[] = {"The river ran", "The river ran", "A mountain stood"};
        for (int i = 0; i < 3; i++) {
            request = greedy(prompts[i], 2);
            rigllama_usage_init(&usage, sizeof usage);
            CHECK(rigllama_engine_complete(engine, &request, &text, &usage) == RIGLLAMA_STATUS_OK, "recurrent %d", i);
            CHECK(i != 1 || usage.cached_prompt_tokens + 1 == usage.prompt_tokens, "resumed from a checkpoint: %u of %u",
                  usage.cached_prompt_tokens, usage.prompt_tokens);
            rigllama_string_free(text);
        }
        CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset drops the checkpoints");
        rigllama_engine_destroy(engine);
    }

    engine = create(model);
    request = greedy("Once upon a time", 64);
    CHECK(rigllama_engine_stream(engine, &request, destroy_inside, engine, NULL) == RIGLLAMA_STATUS_CANCELLED,
          "destroy inside the callback");

    printf("(%.1f s)\ntest_memcheck: %d passed, %d failed\n", (now_ms() - started) / 1e3, passed, failed);
    return failed == 0 ? 0 : 1;
}
