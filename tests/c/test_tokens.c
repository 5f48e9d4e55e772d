/* Token ids through the C ABI, promise by promise: tokenize sizes and fills the caller's
 * buffer, text -> ids -> text is exact, a request's prompt_tokens answers as its text does, and
 * bad input (ids outside the vocabulary, unknown flags, NULLs, a too-small buffer) gets a
 * status and a message naming the value.
 *
 *   usage: test_tokens MODEL.gguf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *corpus[] = {
    "Hello, world!",
    "Übergrößenträger naïve café",
    "日本語のテキスト",
    "emoji 🦀🚀",
    "<start_of_turn>user\nHi<end_of_turn>\n",
};

static const uint32_t ALL = RIGLLAMA_TOKENIZE_ADD_SPECIAL | RIGLLAMA_TOKENIZE_PARSE_SPECIAL;

static void test_tokenize_sizes_fills_and_round_trips(rigllama_engine *engine) {
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        const char *text = corpus[i];
        size_t n = 0;
        CHECK(rigllama_engine_tokenize(engine, text, strlen(text), ALL, NULL, 0, &n) == RIGLLAMA_STATUS_OK && n > 1,
              "size query for %s: %zu", text, n);
        int32_t small[1] = {-7};
        size_t needed = 0;
        CHECK(rigllama_engine_tokenize(engine, text, strlen(text), ALL, small, 1, &needed) ==
                      RIGLLAMA_STATUS_INVALID_ARGUMENT &&
                  needed == n && small[0] == -7,
              "a too-small buffer: INVALID_ARGUMENT, *out_n %zu, nothing written", needed);
        int32_t *ids = malloc(n * sizeof *ids);
        size_t got = 0;
        CHECK(rigllama_engine_tokenize(engine, text, strlen(text), ALL, ids, n, &got) == RIGLLAMA_STATUS_OK && got == n,
              "tokenize %s", text);
        char *back = NULL;
        CHECK(rigllama_engine_detokenize(engine, ids, n, ALL, &back) == RIGLLAMA_STATUS_OK && back &&
                  strcmp(back, text) == 0,
              "round trip of %s gave %s", text, back ? back : "(null)");
        rigllama_string_free(back);
        free(ids);
    }
    /* Not NUL-terminated: only `len` bytes are read. */
    size_t n = 0;
    CHECK(rigllama_engine_tokenize(engine, "HelloXYZ", 5, 0, NULL, 0, &n) == RIGLLAMA_STATUS_OK, "len bounds the text");
    int32_t ids[16];
    rigllama_engine_tokenize(engine, "HelloXYZ", 5, 0, ids, 16, &n);
    char *back = NULL;
    CHECK(rigllama_engine_detokenize(engine, ids, n, 0, &back) == RIGLLAMA_STATUS_OK && strcmp(back, "Hello") == 0,
          "only the first 5 bytes: %s", back ? back : "(null)");
    rigllama_string_free(back);
}

static void test_prompt_tokens_answer_as_the_text_does(rigllama_engine *engine) {
    const char *text = "The old lighthouse keeper looked out at the storm and";
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    CHECK(request.prompt_tokens == NULL && request.n_prompt_tokens == 0, "init: no prompt_tokens");
    request.prompt = text;
    request.raw_prompt = 1;
    request.max_tokens = 16;
    request.temperature = 0.0f;
    char *from_text = NULL;
    CHECK(rigllama_engine_complete(engine, &request, &from_text, NULL) == RIGLLAMA_STATUS_OK, "complete the text");
    rigllama_engine_reset(engine);

    int32_t ids[64];
    size_t n = 0;
    CHECK(rigllama_engine_tokenize(engine, text, strlen(text), ALL, ids, 64, &n) == RIGLLAMA_STATUS_OK, "tokenize");
    request.prompt = NULL;
    request.raw_prompt = 0;
    request.prompt_tokens = ids;
    request.n_prompt_tokens = n;
    char *from_ids = NULL;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    CHECK(rigllama_engine_complete(engine, &request, &from_ids, &usage) == RIGLLAMA_STATUS_OK && usage.prompt_tokens == n,
          "complete the ids (%u prompt tokens)", usage.prompt_tokens);
    CHECK(from_text && from_ids && strcmp(from_text, from_ids) == 0, "same text from ids as from text");
    rigllama_string_free(from_text);
    rigllama_string_free(from_ids);

    char *out = NULL;
    int32_t bad[] = {2, 7, 999999};
    request.prompt_tokens = bad;
    request.n_prompt_tokens = 3;
    CHECK(rigllama_engine_complete(engine, &request, &out, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "prompt_tokens[2] = 999999"),
          "an id outside the vocabulary is named");
    bad[1] = -3;
    CHECK(rigllama_engine_complete(engine, &request, &out, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "prompt_tokens[1] = -3"),
          "a negative id is named");
    request.prompt = "and text too";
    request.prompt_tokens = ids;
    CHECK(rigllama_engine_complete(engine, &request, &out, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "prompt and prompt_tokens together are refused");
    request.prompt = NULL;
    request.prompt_tokens = NULL;
    request.n_prompt_tokens = 4;
    CHECK(rigllama_engine_complete(engine, &request, &out, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT,
          "a count without ids is NULL_ARGUMENT");
}

static void test_bad_input_is_named(rigllama_engine *engine) {
    size_t n = 0;
    int32_t ids[4];
    char *text = NULL;
    CHECK(rigllama_engine_tokenize(engine, "x", 1, 4, NULL, 0, &n) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "0x4"),
          "unknown flags are named");
    CHECK(rigllama_engine_tokenize(NULL, "x", 1, 0, NULL, 0, &n) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL engine");
    CHECK(rigllama_engine_tokenize(engine, NULL, 3, 0, NULL, 0, &n) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL text");
    CHECK(rigllama_engine_tokenize(engine, "x", 1, 0, ids, 4, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL out_n");
    CHECK(rigllama_engine_tokenize(engine, "\xff\xfe", 2, 0, NULL, 0, &n) == RIGLLAMA_STATUS_INVALID_ARGUMENT,
          "invalid UTF-8 is refused");
    int32_t outside[] = {1, -5};
    CHECK(rigllama_engine_detokenize(engine, outside, 2, 0, &text) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              text == NULL && strstr(rigllama_last_error(), "tokens[1] = -5"),
          "detokenize names the bad id");
    CHECK(rigllama_engine_detokenize(engine, NULL, 0, 0, &text) == RIGLLAMA_STATUS_OK && text && text[0] == 0,
          "no ids: empty text");
    rigllama_string_free(text);
    CHECK(rigllama_engine_detokenize(engine, NULL, 2, 0, &text) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL ids with a count");
    CHECK(rigllama_engine_detokenize(engine, outside, 1, 0, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT, "NULL out_text");
    char *describe = NULL;
    CHECK(rigllama_engine_describe(engine, &describe) == RIGLLAMA_STATUS_OK && strstr(describe, "\"special_tokens\":{\"bos\":"),
          "describe has the special tokens");
    rigllama_string_free(describe);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    guard_against_hangs(120);
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        printf("FAIL: cannot create engine: %s\n", rigllama_last_error());
        return 1;
    }
    test_tokenize_sizes_fills_and_round_trips(engine);
    test_prompt_tokens_answer_as_the_text_does(engine);
    test_bad_input_is_named(engine);
    rigllama_engine_destroy(engine);
    printf("test_tokens: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
