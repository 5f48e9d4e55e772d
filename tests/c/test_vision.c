/* Images through the C ABI.
 *
 *   usage: test_vision MODEL.gguf [SECOND_MODEL.gguf]
 *
 * With RIGLLAMA_MMPROJ (a projector for MODEL) and RIGLLAMA_TEST_IMAGE (a PNG) set, the
 * library must have vision (`make vision-tests` builds one with the `mtmd` feature):
 * (a) an image sent as a file path and the same bytes as a data: URL give the same greedy
 *     reply, with image_tokens counted in usage (and within prompt_tokens);
 * (b) the same request again reuses everything but its last token, image included;
 * (c) a file that is not an image, and a missing file, are INVALID_ARGUMENT with messages
 *     that say so, and the engine serves on; an engine without a projector refuses an image
 *     saying to set mmproj_path; reload with the projector swaps it in.
 * Without them (the default build, as `make c-tests` runs it): a projector is refused at
 * create, and an image part at request time, with INVALID_ARGUMENT naming the `mtmd`
 * feature; text requests still work.
 * The last line is "test_vision: N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *model_path;

static rigllama_engine *engine_with(const char *mmproj, rigllama_status *status) {
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.mmproj_path = mmproj;
    rigllama_engine *engine = NULL;
    *status = rigllama_engine_create(&options, &engine);
    return engine;
}

/* messages_json with one user turn: an image_url part holding `url`, then a question. */
static char *image_messages(const char *url) {
    size_t cap = strlen(url) + 256;
    char *json = malloc(cap);
    snprintf(json, cap,
             "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}},"
             "{\"type\":\"text\",\"text\":\"What is in this picture?\"}]}]",
             url);
    return json;
}

static rigllama_status ask(rigllama_engine *engine, const char *messages, char **text, rigllama_usage *usage) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.messages_json = messages;
    request.temperature = 0.0f;
    request.max_tokens = 8;
    rigllama_usage_init(usage, sizeof *usage);
    *text = NULL;
    return rigllama_engine_complete(engine, &request, text, usage);
}

static char *base64_of_file(const char *path) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)n);
    size_t got = fread(bytes, 1, (size_t)n, f);
    fclose(f);
    char *out = malloc(32 + 4 * ((size_t)n / 3 + 1));
    char *o = out + sprintf(out, "data:image/png;base64,");
    for (size_t i = 0; i < got; i += 3) {
        unsigned v = bytes[i] << 16 | (i + 1 < got ? bytes[i + 1] << 8 : 0) | (i + 2 < got ? bytes[i + 2] : 0);
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < got ? alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < got ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    free(bytes);
    return out;
}

static void test_with_vision(const char *mmproj, const char *image) {
    rigllama_status status;
    rigllama_engine *engine = engine_with(mmproj, &status);
    CHECK(status == RIGLLAMA_STATUS_OK && engine, "create with the projector: %d", status);
    if (!engine)
        return;
    char *json = NULL;
    CHECK(rigllama_engine_describe(engine, &json) == RIGLLAMA_STATUS_OK && strstr(json, "\"mmproj_path\":\"") &&
              strstr(json, mmproj),
          "describe names the projector");
    rigllama_string_free(json);

    char *by_path = image_messages(image);
    char *url = base64_of_file(image);
    char *by_data = image_messages(url);
    char *one = NULL, *two = NULL, *three = NULL;
    rigllama_usage first, second, third;
    CHECK(ask(engine, by_path, &one, &first) == RIGLLAMA_STATUS_OK, "an image by path");
    CHECK(first.image_tokens > 0 && first.prompt_tokens > first.image_tokens, "image tokens %u of %u",
          first.image_tokens, first.prompt_tokens);
    CHECK(ask(engine, by_path, &two, &second) == RIGLLAMA_STATUS_OK, "the same again");
    CHECK(second.cached_prompt_tokens + 1 == second.prompt_tokens, "reused %u of %u, the image included",
          second.cached_prompt_tokens, second.prompt_tokens);
    CHECK(ask(engine, by_data, &three, &third) == RIGLLAMA_STATUS_OK, "the same bytes as a data: URL");
    CHECK(one && two && three && strcmp(one, two) == 0 && strcmp(one, three) == 0,
          "greedy: one reply for path, again, and data: URL");
    CHECK(third.image_tokens == first.image_tokens, "same image tokens");
    rigllama_string_free(one);
    rigllama_string_free(two);
    rigllama_string_free(three);

    char *text = NULL;
    rigllama_usage usage;
    char *not_image = image_messages("data:image/png;base64,bm90IGFuIGltYWdl");
    CHECK(ask(engine, not_image, &text, &usage) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "could not be decoded"),
          "bytes that are not an image");
    char *missing = image_messages("/no/such/picture.png");
    CHECK(ask(engine, missing, &text, &usage) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "/no/such/picture.png"),
          "a missing file");
    CHECK(ask(engine, "[{\"role\":\"user\",\"content\":\"Hello\"}]", &text, &usage) == RIGLLAMA_STATUS_OK &&
              usage.image_tokens == 0,
          "text still works, with no image tokens");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);

    /* No projector: refused, saying what to set. Reload with one: served. */
    engine = engine_with(NULL, &status);
    CHECK(ask(engine, by_path, &text, &usage) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "mmproj_path"),
          "an engine without a projector refuses an image");
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = model_path;
    options.mmproj_path = mmproj;
    CHECK(rigllama_engine_reload(engine, &options) == RIGLLAMA_STATUS_OK, "reload with the projector");
    CHECK(ask(engine, by_path, &text, &usage) == RIGLLAMA_STATUS_OK && usage.image_tokens == first.image_tokens,
          "after the reload the image is read");
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);
    free(by_path);
    free(by_data);
    free(url);
    free(not_image);
    free(missing);
}

static void test_without_vision(void) {
    rigllama_status status;
    rigllama_engine *engine = engine_with("/any/mmproj.gguf", &status);
    CHECK(status == RIGLLAMA_STATUS_INVALID_ARGUMENT && !engine && strstr(rigllama_last_error(), "`mtmd`"),
          "a projector without the feature: %d", status);
    engine = engine_with(NULL, &status);
    CHECK(status == RIGLLAMA_STATUS_OK && engine, "create");
    if (!engine)
        return;
    char *text = NULL;
    rigllama_usage usage;
    char *messages = image_messages("data:image/png;base64,iVBORw0KGgo=");
    CHECK(ask(engine, messages, &text, &usage) == RIGLLAMA_STATUS_INVALID_ARGUMENT &&
              strstr(rigllama_last_error(), "`mtmd`"),
          "an image without the feature");
    CHECK(ask(engine, "[{\"role\":\"user\",\"content\":\"Hello\"}]", &text, &usage) == RIGLLAMA_STATUS_OK &&
              usage.image_tokens == 0,
          "text still works");
    rigllama_string_free(text);
    free(messages);
    rigllama_engine_destroy(engine);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [SECOND_MODEL.gguf]\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    guard_against_hangs(300);
    const char *mmproj = getenv("RIGLLAMA_MMPROJ");
    const char *image = getenv("RIGLLAMA_TEST_IMAGE");
    if (mmproj && image)
        test_with_vision(mmproj, image);
    else
        test_without_vision();
    printf("test_vision: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
