/* A multi-turn chat on stdin: each line is a user turn. The whole conversation is sent every
 * turn as messages_json; the engine re-evaluates only what is new (KV prefix reuse), and
 * this prints how many prompt tokens came from the cache.
 *
 *   usage: chat MODEL.gguf < questions.txt */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rigllama.h"

/* A growing string. */
typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void append(buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) {
            perror("realloc");
            exit(1);
        }
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Appends `s` as a JSON string literal. */
static void append_json_string(buffer *b, const char *s) {
    append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            append(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            append(b, esc, 6);
        } else {
            append(b, (const char *)&c, 1);
        }
    }
    append(b, "\"", 1);
}

static void append_turn(buffer *history, const char *role, const char *content) {
    append(history, history->len > 1 ? "," : "", history->len > 1 ? 1 : 0);
    append(history, "{\"role\":\"", 9);
    append(history, role, strlen(role));
    append(history, "\",\"content\":", 12);
    append_json_string(history, content);
    append(history, "}", 1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf < questions.txt\n", argv[0]);
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

    buffer history = {0};
    append(&history, "[", 1);
    char line[4096];
    int turn = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        append_turn(&history, "user", line);
        buffer messages = {0};
        append(&messages, history.data, history.len);
        append(&messages, "]", 1);

        rigllama_request request;
        rigllama_request_init(&request, sizeof request);
        request.messages_json = messages.data;
        request.max_tokens = 48;
        request.temperature = 0.0f;

        char *reply = NULL;
        rigllama_usage usage;
        rigllama_usage_init(&usage, sizeof usage);
        rigllama_status status = rigllama_engine_complete(engine, &request, &reply, &usage);
        free(messages.data);
        if (status != RIGLLAMA_STATUS_OK) {
            fprintf(stderr, "turn %d failed: %s\n", turn + 1, rigllama_last_error());
            free(history.data);
            rigllama_engine_destroy(engine);
            return 1;
        }
        turn++;
        printf("user> %s\nmodel> %s\n", line, reply);
        printf("[turn %d: %u prompt tokens, %u from cache, %u generated, prompt %.1f ms]\n", turn,
               usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens,
               usage.prompt_ms);
        append_turn(&history, "assistant", reply);
        rigllama_string_free(reply);
    }
    free(history.data);
    rigllama_engine_destroy(engine);
    return turn > 0 ? 0 : 1;
}
