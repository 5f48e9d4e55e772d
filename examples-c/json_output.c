/* Asks for a machine-readable answer: the reply is one JSON object valid against a JSON
 * Schema (sampling is constrained by a grammar made from it), so a program can read it
 * without guessing. Here, a game asks for a shop item it can add to its inventory.
 *
 *   usage: json_output MODEL.gguf [SEED] */
#include <stdio.h>
#include <stdlib.h>

#include "rigllama.h"

static const char *ITEM_SCHEMA =
    "{\"type\":\"object\","
    " \"properties\":{"
    "   \"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":30},"
    "   \"kind\":{\"enum\":[\"weapon\",\"armor\",\"potion\",\"scroll\"]},"
    "   \"price\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":500},"
    "   \"magical\":{\"type\":\"boolean\"}},"
    " \"required\":[\"name\",\"kind\",\"price\",\"magical\"],"
    " \"additionalProperties\":false}";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [SEED]\n", argv[0]);
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
    request.system_prompt = "You are the shopkeeper of a fantasy game. Answer in JSON.";
    request.prompt = "Offer me one item from your shop.";
    request.json_schema = ITEM_SCHEMA;
    request.max_tokens = 200;
    request.seed = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 7;

    char *message = NULL;
    rigllama_usage usage;
    rigllama_usage_init(&usage, sizeof usage);
    rigllama_status status = rigllama_engine_chat(engine, &request, &message, &usage);
    if (status != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "chat failed: %s: %s\n", rigllama_status_str(status), rigllama_last_error());
        rigllama_engine_destroy(engine);
        return 1;
    }
    /* The assistant message; its "content" is the JSON object, as text. */
    printf("%s\n", message);
    printf("finish_reason=%d completion_tokens=%u seed=%u\n", usage.finish_reason,
           usage.completion_tokens, usage.seed);
    rigllama_string_free(message);

    /* A schema that is not JSON is refused before anything runs, with the reason. */
    request.json_schema = "{\"type\": ";
    status = rigllama_engine_chat(engine, &request, &message, NULL);
    printf("bad schema -> %s: %s\n", rigllama_status_str(status), rigllama_last_error());

    rigllama_engine_destroy(engine);
    return status == RIGLLAMA_STATUS_INVALID_ARGUMENT ? 0 : 1;
}
