/* Swaps the model of a running engine: to a second model file, then to a path that does not
 * exist, showing that a failed reload leaves the old model answering.
 *
 *   usage: reload MODEL.gguf [SECOND_MODEL.gguf] */
#include <stdio.h>

#include "rigllama.h"

static int ask(rigllama_engine *engine, const char *label) {
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.prompt = "The sun rises in the";
    request.raw_prompt = 1;
    request.max_tokens = 12;
    request.temperature = 0.0f;
    char *text = NULL;
    rigllama_status status = rigllama_engine_complete(engine, &request, &text, NULL);
    if (status != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "%s: complete failed: %s\n", label, rigllama_last_error());
        return 0;
    }
    printf("%s: %s%s\n", label, request.prompt, text);
    rigllama_string_free(text);
    return 1;
}

static int describe(rigllama_engine *engine) {
    char *json = NULL;
    if (rigllama_engine_describe(engine, &json) != RIGLLAMA_STATUS_OK)
        return 0;
    printf("  %s\n", json);
    rigllama_string_free(json);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [SECOND_MODEL.gguf]\n", argv[0]);
        return 2;
    }
    const char *second = argc > 2 ? argv[2] : argv[1];
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }
    int ok = ask(engine, "first model") && describe(engine);

    options.model_path = second;
    rigllama_status status = rigllama_engine_reload(engine, &options);
    printf("reload to %s: %s\n", second, rigllama_status_str(status));
    ok = ok && status == RIGLLAMA_STATUS_OK && ask(engine, "second model") && describe(engine);

    options.model_path = "/nonexistent/model.gguf";
    status = rigllama_engine_reload(engine, &options);
    printf("reload to a bad path: %s (%s)\n", rigllama_status_str(status), rigllama_last_error());
    ok = ok && status == RIGLLAMA_STATUS_MODEL_LOAD_FAILED;
    ok = ok && ask(engine, "still the second model");

    rigllama_engine_destroy(engine);
    return ok ? 0 : 1;
}
