/* Streams a reply from a model, printing each piece as it arrives.
 *
 *   usage: stream MODEL.gguf [PROMPT]
 *
 * The default model is a base (not instruction-tuned) model, so this sends the prompt as
 * plain text to be continued (raw_prompt = 1). */
#include <stdio.h>
#include <stdlib.h>

#include "rigllama.h"

static int32_t print_piece(void *user_data, const char *piece, size_t piece_len) {
    (void)user_data;
    fwrite(piece, 1, piece_len, stdout);
    fflush(stdout);
    return 0; /* 0 = keep going */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time, in a small village by the sea,";

    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];

    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }

    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = prompt;
    request.raw_prompt = 1;
    request.max_tokens = 96;
    request.temperature = 0.7f;
    request.repeat_penalty = 1.1f;

    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);

    printf("%s", prompt);
    rigllama_status status = rigllama_engine_stream(engine, &request, print_piece, NULL, &usage);
    printf("\n");
    if (status != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "stream failed: %s: %s\n", rigllama_status_str(status), rigllama_last_error());
        rigllama_engine_destroy(engine);
        return 1;
    }
    fprintf(stderr, "[%u prompt tokens in %.0f ms, %u tokens in %.0f ms: %.1f tokens/s]\n",
            usage.prompt_tokens, usage.prompt_ms, usage.completion_tokens, usage.generation_ms,
            usage.completion_tokens > 1 ? (usage.completion_tokens - 1) * 1000.0 / usage.generation_ms : 0.0);
    rigllama_engine_destroy(engine);
    return 0;
}
