/* Describes an image file: the model, its multimodal projector (mmproj GGUF) and the image
 * go in; the reply streams out.
 *
 *   usage: describe_image MODEL.gguf MMPROJ.gguf IMAGE [QUESTION]
 *
 * Needs a library built with vision (cargo feature `mtmd`; `make vision-tests` builds one);
 * without it, create fails with INVALID_ARGUMENT saying so. The image goes in messages_json
 * as an OpenAI image_url part holding its path (a data: URL with base64 content works too).
 * PNG, JPEG, GIF, BMP and WebP are read (decoded in Rust). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rigllama.h"

static int32_t print_piece(void *user_data, const char *piece, size_t piece_len) {
    (void)user_data;
    fwrite(piece, 1, piece_len, stdout);
    fflush(stdout);
    return 0;
}

/* `text` as a JSON string's contents (quotes, backslashes and control characters escaped)
 * appended to `out`, which has room for 6 bytes per input byte. */
static void json_escape(char *out, const char *text) {
    out += strlen(out);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\')
            out += sprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            out += sprintf(out, "\\u%04x", *c);
        else
            *out++ = (char)*c;
    }
    *out = '\0';
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf MMPROJ.gguf IMAGE [QUESTION]\n", argv[0]);
        return 2;
    }
    const char *question = argc > 4 ? argv[4] : "Describe this image in one sentence.";

    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    options.mmproj_path = argv[2];
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }

    /* [{"role":"user","content":[{"type":"image_url","image_url":{"url":PATH}},
     *                            {"type":"text","text":QUESTION}]}] */
    size_t cap = 128 + 6 * (strlen(argv[3]) + strlen(question));
    char *messages = malloc(cap);
    strcpy(messages, "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"");
    json_escape(messages, argv[3]);
    strcat(messages, "\"}},{\"type\":\"text\",\"text\":\"");
    json_escape(messages, question);
    strcat(messages, "\"}]}]");

    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.messages_json = messages;
    request.max_tokens = 64;
    request.temperature = 0.0f;

    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    rigllama_status status = rigllama_engine_stream(engine, &request, print_piece, NULL, &usage);
    printf("\n");
    free(messages);
    if (status != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "stream failed: %s: %s\n", rigllama_status_str(status), rigllama_last_error());
        rigllama_engine_destroy(engine);
        return 1;
    }
    fprintf(stderr, "[%u prompt tokens (%u for the image) in %.0f ms, %u tokens in %.0f ms]\n",
            usage.prompt_tokens, usage.image_tokens, usage.prompt_ms, usage.completion_tokens,
            usage.generation_ms);
    rigllama_engine_destroy(engine);
    return usage.image_tokens > 0 ? 0 : 1;
}
