/* Token ids through the C ABI, promise by promise: tokenize sizes and fills the caller's
 * buffer, text -> ids -> text is exact, a request's prompt_tokens answers as its text does, and
 * bad input (ids outside the vocabulary, unknown flags, NULLs, a too-small buffer) gets a
 * status and a message naming the value. Fill-in-the-middle (request.suffix) lays out the
 * vocabulary's FIM tokens as llama-server does, on $RIGLLAMA_FIM_MODEL (scripts/make-fim-model);
 * rerank scores documents on $RIGLLAMA_RERANK_MODEL (scripts/make-reranker-model), and both are
 * refused on a model that cannot do them.
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

static rigllama_engine *create(const char *path, uint32_t n_batch) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = path;
    options.n_ctx = 1024;
    if (n_batch)
        options.n_batch = n_batch;
    rigllama_engine *engine = NULL;
    CHECK(rigllama_engine_create(&options, &engine) == RIGLLAMA_STATUS_OK, "create %s: %s", path,
          rigllama_last_error());
    return engine;
}

/* Appends the ids of `text` (no special tokens) to ids[*n]. */
static void append_plain(rigllama_engine *engine, const char *text, int32_t *ids, size_t *n, size_t cap) {
    size_t got = 0;
    CHECK(rigllama_engine_tokenize(engine, text, strlen(text), 0, ids + *n, cap - *n, &got) == RIGLLAMA_STATUS_OK,
          "tokenize %s", text);
    *n += got;
}

static void test_fill_in_the_middle(rigllama_engine *plain_model, const char *fim_path) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.raw_prompt = 1;
    request.prompt = "def add(a, b):\n    ";
    request.suffix = "\n\nprint(add(1, 2))\n";
    request.max_tokens = 8;
    request.temperature = 0.0f;
    char *text = NULL;
    CHECK(rigllama_engine_complete(plain_model, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "fill-in-the-middle tokens"),
          "a model without FIM tokens: %s", rigllama_last_error());
    request.raw_prompt = 0;
    CHECK(rigllama_engine_complete(plain_model, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "raw_prompt 1"),
          "suffix needs raw_prompt 1: %s", rigllama_last_error());
    request.raw_prompt = 1;
    if (!fim_path) {
        printf("SKIP: RIGLLAMA_FIM_MODEL is not set\n");
        return;
    }
    rigllama_engine *engine = create(fim_path, 0);
    if (!engine)
        return;
    /* llama-server's /infill layout for this vocabulary (it has FIM_REP and FIM_SEP; ids 6..10
       from scripts/make-fim-model): [REP]myproject\n[SEP]filename\n[BOS][PRE]prefix[SUF]suffix[MID]. */
    int32_t expected[256];
    size_t n = 0;
    expected[n++] = 9;
    append_plain(engine, "myproject\n", expected, &n, 256);
    expected[n++] = 10;
    append_plain(engine, "filename\n", expected, &n, 256);
    expected[n++] = 2; /* BOS */
    expected[n++] = 6;
    append_plain(engine, request.prompt, expected, &n, 256);
    expected[n++] = 7;
    append_plain(engine, request.suffix, expected, &n, 256);
    expected[n++] = 8;
    uint32_t counted = 0;
    CHECK(rigllama_engine_count_tokens(engine, &request, &counted) == RIGLLAMA_STATUS_OK && counted == n,
          "count_tokens %u == the layout's %zu", counted, n);
    char *shown = NULL;
    CHECK(rigllama_engine_apply_template(engine, &request, &shown) == RIGLLAMA_STATUS_OK, "apply_template");
    int32_t got[256];
    size_t n_got = 0;
    CHECK(shown && rigllama_engine_tokenize(engine, shown, strlen(shown), RIGLLAMA_TOKENIZE_PARSE_SPECIAL, got, 256,
                                            &n_got) == RIGLLAMA_STATUS_OK &&
              n_got == n && memcmp(got, expected, n * sizeof *got) == 0,
          "apply_template shows the layout token for token (%zu vs %zu tokens): %s", n_got, n, shown ? shown : "");
    rigllama_string_free(shown);

    /* Generation reads exactly that layout: the same text as the ids sent verbatim. */
    rigllama_usage usage;
    usage.struct_size = sizeof usage;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    CHECK(rigllama_engine_complete(engine, &request, &text, &usage) == RIGLLAMA_STATUS_OK && text && *text,
          "infill: %s", rigllama_last_error());
    CHECK(usage.prompt_tokens == n && usage.dropped_tokens == 0, "prompt_tokens %u, dropped %u", usage.prompt_tokens,
          usage.dropped_tokens);
    rigllama_request by_ids;
    rigllama_request_init(&by_ids, sizeof by_ids);
    by_ids.prompt_tokens = expected;
    by_ids.n_prompt_tokens = n;
    by_ids.max_tokens = 8;
    by_ids.temperature = 0.0f;
    char *same = NULL;
    CHECK(rigllama_engine_reset(engine) == RIGLLAMA_STATUS_OK, "reset");
    CHECK(rigllama_engine_complete(engine, &by_ids, &same, NULL) == RIGLLAMA_STATUS_OK && text && same &&
              strcmp(text, same) == 0,
          "the middle %s equals the layout's own continuation %s", text ? text : "", same ? same : "");
    rigllama_string_free(text);
    rigllama_string_free(same);

    /* Bad input: both sides empty, prompt NULL, suffix with prompt_tokens. */
    request.prompt = "";
    request.suffix = "";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "both empty"),
          "both empty: %s", rigllama_last_error());
    request.prompt = NULL;
    request.suffix = "x";
    CHECK(rigllama_engine_complete(engine, &request, &text, NULL) == RIGLLAMA_STATUS_NULL_ARGUMENT &&
              strstr(rigllama_last_error(), "request->prompt"),
          "prompt NULL: %s", rigllama_last_error());
    by_ids.suffix = "x";
    by_ids.raw_prompt = 1;
    CHECK(rigllama_engine_complete(engine, &by_ids, &text, NULL) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "prompt_tokens"),
          "suffix with prompt_tokens: %s", rigllama_last_error());
    rigllama_engine_destroy(engine);
}

static void test_rerank(rigllama_engine *plain_model, const char *rerank_path) {
    const char *documents[] = {"A cat is a small furry animal that purrs.", "Granite is a hard igneous rock.",
                               "Cats sleep for most of the day."};
    float scores[3] = {-99.0f, -99.0f, -99.0f};
    CHECK(rigllama_engine_rerank(plain_model, "what is a cat?", documents, 3, scores) ==
                  RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "not a reranker") && scores[0] == -99.0f,
          "a chat model is refused, nothing written: %s", rigllama_last_error());
    CHECK(rigllama_engine_rerank(plain_model, NULL, documents, 3, scores) == RIGLLAMA_STATUS_NULL_ARGUMENT &&
              strstr(rigllama_last_error(), "query"),
          "query NULL: %s", rigllama_last_error());
    CHECK(rigllama_engine_rerank(plain_model, "q", NULL, 3, scores) == RIGLLAMA_STATUS_NULL_ARGUMENT &&
              strstr(rigllama_last_error(), "documents"),
          "documents NULL: %s", rigllama_last_error());
    CHECK(rigllama_engine_rerank(plain_model, "q", NULL, 0, NULL) == RIGLLAMA_STATUS_OK, "no documents: OK");
    if (!rerank_path) {
        printf("SKIP: RIGLLAMA_RERANK_MODEL is not set\n");
        return;
    }
    rigllama_engine *engine = create(rerank_path, 0);
    if (!engine)
        return;
    CHECK(rigllama_engine_rerank(engine, "what is a cat?", documents, 3, scores) == RIGLLAMA_STATUS_OK,
          "rerank: %s", rigllama_last_error());
    CHECK(scores[0] == scores[0] && scores[1] == scores[1] && scores[2] == scores[2] &&
              (scores[0] != scores[1] || scores[1] != scores[2]),
          "three finite, different scores: %f %f %f", scores[0], scores[1], scores[2]);
    float again[3];
    CHECK(rigllama_engine_rerank(engine, "what is a cat?", documents, 3, again) == RIGLLAMA_STATUS_OK &&
              memcmp(scores, again, sizeof again) == 0,
          "the same scores again");
    /* One document alone scores as it does in a batch of three (to rounding). */
    float alone = 0.0f;
    CHECK(rigllama_engine_rerank(engine, "what is a cat?", documents + 1, 1, &alone) == RIGLLAMA_STATUS_OK &&
              alone - scores[1] < 1e-4f && scores[1] - alone < 1e-4f,
          "alone %f vs in a batch %f", alone, scores[1]);
    const char *with_null[] = {"fine", NULL};
    CHECK(rigllama_engine_rerank(engine, "q", with_null, 2, scores) == RIGLLAMA_STATUS_NULL_ARGUMENT &&
              strstr(rigllama_last_error(), "documents[1]"),
          "documents[1] NULL: %s", rigllama_last_error());
    const char *with_empty[] = {""};
    CHECK(rigllama_engine_rerank(engine, "q", with_empty, 1, scores) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "documents[0] is empty"),
          "an empty document: %s", rigllama_last_error());
    float vector[64];
    size_t dims = 0;
    CHECK(rigllama_engine_embed(engine, "text", vector, 64, &dims) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "reranker"),
          "a reranker has no embeddings: %s", rigllama_last_error());
    CHECK(rigllama_engine_rerank(engine, "what is a cat?", documents, 1, scores) == RIGLLAMA_STATUS_OK,
          "still serving");
    rigllama_engine_destroy(engine);
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
    test_fill_in_the_middle(engine, getenv("RIGLLAMA_FIM_MODEL"));
    test_rerank(engine, getenv("RIGLLAMA_RERANK_MODEL"));
    rigllama_engine_destroy(engine);
    printf("test_tokens: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
