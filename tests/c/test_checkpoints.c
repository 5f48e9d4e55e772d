/* State checkpoints of recurrent models through the C ABI, on the tiny Mamba fixture
 * (scripts/make-recurrent-model; its path in RIGLLAMA_RECURRENT_MODEL).
 *
 *   usage: test_checkpoints MODEL.gguf [SECOND_MODEL.gguf]
 *
 * (a) the options' defaults, and an options struct that ends before the new fields gets them;
 * (b) a regenerated turn resumes from the checkpoint at the end of the first one's prompt
 *     (all but its last token cached) and gives the same greedy text; with max_checkpoints 0
 *     nothing is reused and the text is still the same;
 * (c) describe reports the checkpoints kept, within max_checkpoints, and a model whose cache
 *     can be cut back (the default model) takes none.
 * The last line is "test_checkpoints: N passed, N failed". */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *model_path;
static const char *recurrent_path;

static rigllama_engine *mamba(size_t struct_size, uint32_t max_checkpoints) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.struct_size = (uint32_t)struct_size;
    options.model_path = recurrent_path;
    options.max_checkpoints = max_checkpoints;
    rigllama_engine *engine = NULL;
    rigllama_status status = rigllama_engine_create(&options, &engine);
    CHECK(status == RIGLLAMA_STATUS_OK && engine, "create on the Mamba fixture: status %d", status);
    return engine;
}

/* A system prompt of a few hundred tokens and one user line, as messages_json. */
static char *conversation(void) {
    static const char sentence[] = "The quick brown fox jumps over the lazy dog near the quiet river bank. ";
    size_t n = 30, cap = n * sizeof sentence + 256;
    char *json = malloc(cap);
    strcpy(json, "[{\"role\":\"system\",\"content\":\"");
    for (size_t i = 0; i < n; i++)
        strcat(json, sentence);
    strcat(json, "\"},{\"role\":\"user\",\"content\":\"Tell me about rivers.\"}]");
    return json;
}

static char *chat(rigllama_engine *engine, const char *messages_json, rigllama_usage *usage) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.messages_json = messages_json;
    request.temperature = 0.0f;
    request.max_tokens = 12;
    rigllama_usage_init(usage, sizeof *usage);
    char *text = NULL;
    rigllama_status status = rigllama_engine_complete(engine, &request, &text, usage);
    CHECK(status == RIGLLAMA_STATUS_OK && text, "complete: status %d", status);
    return text;
}

/* The value of "key": in describe's "checkpoints" object, or -1. */
static long long checkpoint_figure(rigllama_engine *engine, const char *key) {
    char *json = NULL;
    if (rigllama_engine_describe(engine, &json) != RIGLLAMA_STATUS_OK)
        return -1;
    long long value = -1;
    const char *object = strstr(json, "\"checkpoints\":{");
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = object ? strstr(object, pattern) : NULL;
    if (at) {
        at += strlen(pattern);
        if (strncmp(at, "true", 4) == 0)
            value = 1;
        else if (strncmp(at, "false", 5) == 0)
            value = 0;
        else
            value = strtoll(at, NULL, 10);
    }
    rigllama_string_free(json);
    return value;
}

static void test_defaults_and_old_struct_sizes(void) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    CHECK(options.max_checkpoints == 32, "default max_checkpoints %u", options.max_checkpoints);
    CHECK(options.max_checkpoint_bytes == 512ull << 20, "default max_checkpoint_bytes %llu",
          (unsigned long long)options.max_checkpoint_bytes);
    /* A program built before these fields: its struct ends before them, and it gets the
     * defaults (the 0 written past its end is never read). */
    rigllama_engine *engine = mamba(offsetof(rigllama_engine_options, max_checkpoint_bytes), 0);
    if (!engine)
        return;
    CHECK(checkpoint_figure(engine, "active") == 1, "a recurrent model takes checkpoints");
    CHECK(checkpoint_figure(engine, "max_count") == 32, "defaults for an older struct: %lld",
          checkpoint_figure(engine, "max_count"));
    CHECK(checkpoint_figure(engine, "max_bytes") == 512ll << 20, "max_bytes %lld",
          checkpoint_figure(engine, "max_bytes"));
    rigllama_engine_destroy(engine);
}

static void test_a_regenerated_turn_resumes(void) {
    char *messages = conversation();
    char *texts[2] = {NULL, NULL};
    for (int with = 1; with >= 0; with--) {
        rigllama_engine *engine = mamba(sizeof(rigllama_engine_options), with ? 4 : 0);
        if (!engine)
            break;
        rigllama_usage first, again;
        char *one = chat(engine, messages, &first);
        char *two = chat(engine, messages, &again);
        CHECK(one && two && strcmp(one, two) == 0, "greedy: the same reply again (%s)", with ? "resumed" : "cold");
        if (with) {
            CHECK(first.prompt_tokens > 300, "a long prompt: %u tokens", first.prompt_tokens);
            CHECK(again.cached_prompt_tokens + 1 == first.prompt_tokens,
                  "all but the last of %u prompt tokens reused: %u", first.prompt_tokens,
                  again.cached_prompt_tokens);
            long long count = checkpoint_figure(engine, "count");
            CHECK(count >= 1 && count <= 4, "checkpoints kept: %lld (max 4)", count);
            CHECK(checkpoint_figure(engine, "bytes") > 0, "their bytes are counted");
        } else {
            CHECK(again.cached_prompt_tokens == 0, "max_checkpoints 0: nothing reused, %u",
                  again.cached_prompt_tokens);
            CHECK(checkpoint_figure(engine, "active") == 0 && checkpoint_figure(engine, "count") == 0,
                  "max_checkpoints 0: none taken");
        }
        texts[with] = one;
        rigllama_string_free(two);
        rigllama_engine_destroy(engine);
    }
    CHECK(texts[0] && texts[1] && strcmp(texts[0], texts[1]) == 0,
          "the same reply with and without checkpoints");
    rigllama_string_free(texts[0]);
    rigllama_string_free(texts[1]);
    free(messages);
}

static void test_other_models_take_none(void) {
    rigllama_engine *engine = default_engine(model_path);
    if (!engine)
        return;
    rigllama_usage usage;
    char *text = chat(engine, "[{\"role\":\"user\",\"content\":\"Hello\"}]", &usage);
    CHECK(checkpoint_figure(engine, "active") == 0 && checkpoint_figure(engine, "count") == 0,
          "the default model's cache is cut back instead");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [SECOND_MODEL.gguf]\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    recurrent_path = getenv("RIGLLAMA_RECURRENT_MODEL");
    if (!recurrent_path) {
        printf("FAIL: set RIGLLAMA_RECURRENT_MODEL (scripts/make-recurrent-model prints it)\n");
        return 1;
    }
    guard_against_hangs(300);
    test_defaults_and_old_struct_sizes();
    test_a_regenerated_turn_resumes();
    test_other_models_take_none();
    printf("test_checkpoints: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
