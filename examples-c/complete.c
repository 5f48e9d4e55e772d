/* Gets a whole reply at once and prints it with its usage.
 *
 *   usage: complete MODEL.gguf [PROMPT] */
#include <stdio.h>

#include "rigllama.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]);
        return 2;
    }
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
    request.prompt = argc > 2 ? argv[2] : "The three primary colors are";
    request.raw_prompt = 1;
    request.max_tokens = 48;
    request.temperature = 0.0f; /* greedy: the same text every run */

    char *text = NULL;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    rigllama_status status = rigllama_engine_complete(engine, &request, &text, &usage);
    if (status != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "complete failed: %s: %s\n", rigllama_status_str(status), rigllama_last_error());
        rigllama_engine_destroy(engine);
        return 1;
    }
    printf("%s%s\n", request.prompt, text);
    printf("finish_reason=%d prompt_tokens=%u completion_tokens=%u seed=%u\n",
           usage.finish_reason, usage.prompt_tokens, usage.completion_tokens, usage.seed);
    rigllama_string_free(text);
    rigllama_engine_destroy(engine);
    return 0;
}
