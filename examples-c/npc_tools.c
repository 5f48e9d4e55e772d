/* A game NPC that decides its next action through tools: each turn the model must call one
 * of move_to, say or attack (tool_choice REQUIRED, so even a tiny model returns a valid
 * call); the game carries the action out and feeds the result back as a tool message, and
 * the world answers with the next event.
 *
 *   usage: npc_tools MODEL.gguf [TURNS]
 *
 * The assistant message comes back from rigllama_engine_chat as OpenAI-shaped JSON and is
 * appended to the conversation as is. Reading the calls out of it uses a few string
 * searches to stay dependency-free; real code would use a JSON library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rigllama.h"

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"move_to\",\"description\":\"Walk to a tile\","
    "  \"parameters\":{\"type\":\"object\",\"properties\":{"
    "    \"x\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
    "    \"y\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9}},\"required\":[\"x\",\"y\"]}}},"
    " {\"type\":\"function\",\"function\":{\"name\":\"say\",\"description\":\"Say something out loud\","
    "  \"parameters\":{\"type\":\"object\",\"properties\":{"
    "    \"text\":{\"type\":\"string\",\"maxLength\":80}},\"required\":[\"text\"]}}},"
    " {\"type\":\"function\",\"function\":{\"name\":\"attack\",\"description\":\"Attack a creature\","
    "  \"parameters\":{\"type\":\"object\",\"properties\":{"
    "    \"target\":{\"enum\":[\"goblin\",\"wolf\",\"bandit\"]}},\"required\":[\"target\"]}}}]";

static const char *EVENTS[] = {
    "A goblin appears at tile (3, 4) and shouts at you.",
    "The goblin raises its club.",
    "A wolf howls from the forest at tile (8, 1).",
    "The villagers ask you what happened.",
};

/* A growing string (the conversation as a JSON array). */
typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void append(buffer *b, const char *text) {
    size_t n = strlen(text);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) {
            abort();
        }
    }
    memcpy(b->data + b->len, text, n + 1);
    b->len += n;
}

/* Copies the JSON string value after `key` (e.g. "\"id\":\"") at or after `from`. */
static const char *string_after(const char *from, const char *key, char *out, size_t cap) {
    const char *at = strstr(from, key);
    if (!at) {
        return NULL;
    }
    at += strlen(key);
    size_t i = 0;
    while (*at && *at != '"' && i + 1 < cap) {
        if (*at == '\\' && at[1]) {
            at++;
        }
        out[i++] = *at++;
    }
    out[i] = '\0';
    return at;
}

/* Carries out one call and describes what happened (the tool's result). */
static void perform(const char *name, const char *arguments, char *result, size_t cap) {
    if (strcmp(name, "move_to") == 0) {
        int x = -1, y = -1;
        const char *px = strstr(arguments, "\"x\":");
        const char *py = strstr(arguments, "\"y\":");
        if (px) x = atoi(px + 4);
        if (py) y = atoi(py + 4);
        snprintf(result, cap, "You walked to tile (%d, %d).", x, y);
    } else if (strcmp(name, "say") == 0) {
        snprintf(result, cap, "Everyone nearby heard you.");
    } else if (strcmp(name, "attack") == 0) {
        snprintf(result, cap, "You hit it. It staggers back.");
    } else {
        snprintf(result, cap, "Nothing happens.");
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [TURNS]\n", argv[0]);
        return 2;
    }
    int turns = argc > 2 ? atoi(argv[2]) : 3;
    if (turns < 1 || turns > (int)(sizeof EVENTS / sizeof EVENTS[0])) {
        turns = 3;
    }
    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }

    buffer conversation = {0};
    append(&conversation, "[{\"role\":\"system\",\"content\":\"You are Brom, a village guard in a "
                          "fantasy game. Act through your tools.\"}");
    int calls_made = 0;
    for (int turn = 0; turn < turns; turn++) {
        printf("world: %s\n", EVENTS[turn]);
        append(&conversation, ",{\"role\":\"user\",\"content\":\"");
        append(&conversation, EVENTS[turn]); /* no quotes or backslashes in these */
        append(&conversation, "\"}");

        rigllama_request request;
        rigllama_request_init(&request, sizeof request);
        append(&conversation, "]");
        request.messages_json = conversation.data;
        request.tools_json = TOOLS;
        request.tool_choice = RIGLLAMA_TOOL_CHOICE_REQUIRED;
        request.max_tokens = 160;
        request.seed = 11 + (uint32_t)turn;

        char *message = NULL;
        rigllama_usage usage;
        rigllama_usage_init(&usage, sizeof usage);
        rigllama_status status = rigllama_engine_chat(engine, &request, &message, &usage);
        conversation.data[--conversation.len] = '\0'; /* drop the closing ']' again */
        if (status != RIGLLAMA_STATUS_OK) {
            fprintf(stderr, "chat failed: %s: %s\n", rigllama_status_str(status), rigllama_last_error());
            break;
        }
        append(&conversation, ",");
        append(&conversation, message);

        /* Each call: {"id":"...","type":"function","function":{"name":"...","arguments":"..."}} */
        const char *at = strstr(message, "\"tool_calls\"");
        char id[64], name[64], arguments[512], result[160];
        while (at && (at = string_after(at, "\"id\":\"", id, sizeof id)) &&
               (at = string_after(at, "\"name\":\"", name, sizeof name)) &&
               (at = string_after(at, "\"arguments\":\"", arguments, sizeof arguments))) {
            perform(name, arguments, result, sizeof result);
            printf("npc:   %s(%s) -> %s\n", name, arguments, result);
            append(&conversation, ",{\"role\":\"tool\",\"tool_call_id\":\"");
            append(&conversation, id);
            append(&conversation, "\",\"content\":\"");
            append(&conversation, result);
            append(&conversation, "\"}");
            calls_made++;
        }
        if (usage.finish_reason != RIGLLAMA_FINISH_REASON_TOOL_CALLS) {
            fprintf(stderr, "turn %d ended without a tool call: %s\n", turn, message);
            rigllama_string_free(message);
            break;
        }
        rigllama_string_free(message);
    }
    printf("%d tool calls in %d turns\n", calls_made, turns);
    free(conversation.data);
    rigllama_engine_destroy(engine);
    return calls_made >= turns ? 0 : 1;
}
